"""``qfexbot replay``: feed a recording through the bots of a config (actions dry) and compare
their decisions with the live run's; the engine is ``qfexbot.ops.replay``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from qfexbot.config import AppConfig
from qfexbot.core.logs import configure_logging
from qfexbot.core.plugins import PluginLoadError
from qfexbot.ops.replay import RecordingError, replay

__all__ = ["replay_command"]


def replay_command(
    app: AppConfig,
    recording: str,
    *,
    speed: str = "max",
    decisions_out: str | None = None,
    log_format: str | None = None,
    log_level: str | None = None,
) -> int:
    """``qfexbot replay``: print each decision as a JSON line, then a summary on stderr; exit 1
    if the recording holds live decisions and the replay's differ (or on a load problem).

    ``log_format`` and ``log_level`` override the config's ``runtime.log_*``, as for ``run``.
    """
    configure_logging(log_level or app.runtime.log_level, log_format or app.runtime.log_format)
    started = time.monotonic()
    try:
        result = replay(app, recording, speed=speed)
    except (RecordingError, PluginLoadError) as exc:
        print(f"qfexbot replay: {exc}", file=sys.stderr)
        return 1
    lines = [json.dumps(d.to_json(), sort_keys=True) for d in result.decisions]
    if decisions_out:
        Path(decisions_out).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    else:
        for line in lines:
            print(line)
    print(
        f"replayed {result.records} records ({result.frames} frames, {result.parse_errors} "
        f"malformed) of {len(result.accounts)} connections, {result.recorded_seconds:.1f} s "
        f"recorded, in {time.monotonic() - started:.1f} s: {len(result.decisions)} decisions",
        file=sys.stderr,
    )
    if not result.recorded_decisions:
        print("the recording holds no live decisions to compare with", file=sys.stderr)
        return 0
    problems = result.mismatches()
    if problems:
        print(
            f"DIFFERENT from the {len(result.recorded_decisions)} recorded decisions:",
            file=sys.stderr,
        )
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(
        f"same as the {len(result.recorded_decisions)} decisions of the live run", file=sys.stderr
    )
    return 0
