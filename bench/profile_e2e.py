"""Where one e2e round's time goes: cProfile of qfexbot's side of bench/e2e.py, by package.

Runs the frame server, one warm-up round, then one profiled round of ``run_qfexbot`` and prints
the top functions by own time and the own time grouped by package (shares of the profiled
total, and µs per frame: cProfile inflates every call, so compare shares, not µs).
Usage: ``python bench/profile_e2e.py [--frames N] [--top K]``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
from pathlib import Path

import trio
from benchlib import start_frame_server
from e2e import run_qfexbot

GROUPS = (
    "trio_websocket",
    "wsproto",
    "websockets",
    "trio/",
    "qfexbot/core/session",
    "qfexbot/core/wire",
    "qfexbot/core/bus",
    "qfexbot/core/dispatch",
    "qfexbot/venues/qfex/parse",
    "qfexbot",
)
"""Path fragments, first match wins; anything else is "other" (builtins are named)."""


def _group(file: str, fn: str) -> str:
    if file == "~":
        return "builtin " + fn[:40]
    return next((g for g in GROUPS if g in file), "other")


def main(frames: int, top: int) -> None:
    """Profile one round of ``frames`` and print the two tables."""
    n_l2 = frames // 4
    server = start_frame_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            trio.run(run_qfexbot, server.info["port"], frames - n_l2, n_l2, Path(tmp))
            profile = cProfile.Profile()
            profile.enable()
            elapsed, stats = trio.run(
                run_qfexbot, server.info["port"], frames - n_l2, n_l2, Path(tmp)
            )
            profile.disable()
    finally:
        server.stop()
    text = io.StringIO()
    ps = pstats.Stats(profile, stream=text).sort_stats("tottime")
    ps.print_stats(top)
    print(text.getvalue())
    own: dict[str, float] = {}
    for (file, _line, fn), (_cc, _nc, tottime, _ct, _callers) in ps.stats.items():  # type: ignore[attr-defined]
        key = _group(file, fn)
        own[key] = own.get(key, 0.0) + tottime
    total = sum(own.values())
    print(f"profiled round: {frames} frames in {elapsed:.2f} s ({frames / elapsed:,.0f}/s) {stats}")
    for key, seconds in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        share = seconds / total * 100
        print(f"{key:48s} {share:5.1f} %  {seconds / frames * 1e6:7.2f} us/frame")
    print(f"RESULT profiled_us_per_frame={total / frames * 1e6:.1f} frames={frames}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40_000, help="frames in the profiled round")
    parser.add_argument("--top", type=int, default=25, help="rows of each table")
    args = parser.parse_args()
    main(args.frames, args.top)
