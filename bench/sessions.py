"""N authenticated subaccount sessions against the simulator in another process: time, memory, CPU.

Starts ``qfexbot sim`` as a child process with a generated SIM.toml (one user, N subaccounts,
1 s balance pulses), then runs the real ``qfexbot.runtime.Runtime`` in this process: one bot on
all N accounts with a no-op plugin, so each session authenticates (HMAC), subscribes, resyncs
over REST and goes LIVE. Measures, for this (the qfexbot) process:

- time from starting the runtime to every session LIVE (``of=N`` in the RESULT line; if not
  all are LIVE within ``--live-timeout`` s, ``sessions=`` says how many were);
- resident memory (/proc/self/statm) once all are LIVE, and its growth per session over the
  RSS measured just before the runtime started (config, imports and plugin host included);
- CPU seconds per minute while idle with 1 s pulses, measured over ``--idle`` seconds and
  scaled to 60 s (the simulator's own CPU is printed separately).

Usage: ``python bench/sessions.py [--sessions 500] [--idle 10]``.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

import trio
from benchlib import (
    account_ids,
    app_config,
    rss_bytes,
    sim_argv,
    start_child,
    until,
    write_sim_toml,
)

from qfexbot.events import ConnectionState
from qfexbot.runtime import Runtime

SESSION_SETTINGS = {"connect_timeout": 30.0, "auth_timeout": 30.0, "request_timeout": 30.0}


async def main(n: int, idle: float, live_timeout: float) -> None:
    ids = account_ids(n)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        write_sim_toml(base / "SIM.toml", ids, pulse_interval=1.0)
        sim = start_child(sim_argv(base / "SIM.toml"))
        try:
            urls = sim.info
            app = app_config(
                ids,
                plugins={"noop": "benchlib:CountingPlugin"},
                trade_url=urls["trade_url"],
                mds_url=urls["mds_url"],
                rest_url=urls["rest_url"],
                base_dir=base,
                session=SESSION_SETTINGS,
            )
            runtime = Runtime(app)
            gc.collect()
            rss_before = rss_bytes()
            async with trio.open_nursery() as nursery:
                t0 = time.perf_counter()
                await nursery.start(runtime.run)
                sessions = list(runtime.venues["bench"].sessions.values())
                await until(
                    lambda: all(s.state is ConnectionState.LIVE for s in sessions),
                    within=live_timeout,
                )
                all_live = time.perf_counter() - t0  # the timeout if not all went LIVE
                live = sum(s.state is ConnectionState.LIVE for s in sessions)
                await trio.sleep(2.0)  # let the start-up burst settle
                gc.collect()
                rss_live = rss_bytes()
                cpu0, sim0, w0 = time.process_time(), sim.cpu_seconds(), time.perf_counter()
                await trio.sleep(idle)
                cpu1, sim1, w1 = time.process_time(), sim.cpu_seconds(), time.perf_counter()
                frames = sum(s.stats.frames for s in sessions)
                reconnects = sum(s.stats.reconnects for s in sessions)
                runtime.stop()
        finally:
            sim.stop()
    window = w1 - w0
    cpu_per_min = (cpu1 - cpu0) / window * 60
    sim_per_min = (sim1 - sim0) / window * 60
    per_session_kb = (rss_live - rss_before) / n / 1024
    verb = "LIVE in" if live == n else "LIVE (not all) after"
    print(
        f"{live}/{n} sessions {verb} {all_live:.2f} s; reconnects during the run: {reconnects}; "
        f"frames read: {frames}"
    )
    print(
        f"RSS before runtime {rss_before / 2**20:.1f} MB, all LIVE {rss_live / 2**20:.1f} MB, "
        f"{per_session_kb:.1f} KB per session"
    )
    print(
        f"idle CPU over {window:.1f} s scaled to a minute: qfexbot {cpu_per_min:.2f} s/min, "
        f"simulator {sim_per_min:.2f} s/min (1 s balance pulses to every session)"
    )
    print(
        f"RESULT sessions={live} of={n} live_s={all_live:.2f} rss_mb={rss_live / 2**20:.1f} "
        f"kb_per_session={per_session_kb:.1f} cpu_s_per_min={cpu_per_min:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--idle", type=float, default=10.0, help="idle CPU window, seconds")
    parser.add_argument(
        "--live-timeout",
        type=float,
        default=120.0,
        help="stop waiting for all sessions LIVE after this many seconds "
        "(the RESULT line then says how many were)",
    )
    args = parser.parse_args()
    trio.run(main, args.sessions, args.idle, args.live_timeout)
