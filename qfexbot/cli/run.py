"""``qfexbot run``, ``check`` and ``plugins``: run the bots of a config, validate it, list the
plugins it can load.

``run`` owns the process around the runtime: logging, the signals (first one: graceful stop;
second one: exit now) and turning start-up problems into messages instead of tracebacks.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from qfexbot.config import AppConfig, ConfigError, load_config
from qfexbot.core.logs import configure_logging, get_logger, log_event
from qfexbot.core.plugins import PluginLoadError, discover_plugins
from qfexbot.ops.recorder import with_recording
from qfexbot.runtime import Runtime

__all__ = ["check_command", "plugins_command", "run_command"]

# The signal lines have always been logged as qfexbot.runtime; log filters rely on the name.
log = get_logger("qfexbot.runtime")

EXIT_START_FAILED = 1
EXIT_SESSIONS_FAILED = 3
EXIT_CODES = {
    0: "stopped gracefully (signal, --duration)",
    EXIT_START_FAILED: "could not start: configuration, plugins, journal, a port, credentials",
    2: "bad command line (argparse)",
    EXIT_SESSIONS_FAILED: "stopped: every account session FAILED (credentials refused)",
    130: "interrupted (Ctrl-C before the signal handler was installed)",
}
"""``qfexbot run``'s exit codes, as docs/operations.md lists them."""


async def _serve_signals(runtime: Runtime) -> None:
    """First SIGINT/SIGTERM: graceful stop. Second: cancel everything now."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        count = 0
        async for signum in signals:
            count += 1
            if count == 1:
                log_event(
                    log,
                    logging.WARNING,
                    "signal received: stopping gracefully (again to force)",
                    signal=signal.Signals(signum).name,
                )
                runtime.stop()
            else:
                # Shutdown hooks run shielded, so cancelling cannot stop a hung one: exit now.
                # Safe for money: the journal commits intent before sending, and the next start
                # reconciles whatever this leaves in doubt.
                log_event(log, logging.ERROR, "second signal: forcing exit")
                for handler in logging.getLogger("qfexbot").handlers:
                    handler.flush()
                os._exit(128 + signum)


def run_command(
    app: AppConfig,
    *,
    duration: float | None = None,
    log_format: str | None = None,
    log_level: str | None = None,
    record: str | None = None,
    dry_run: bool = False,
) -> int:
    """``qfexbot run``: run the bots; returns the exit code (:data:`EXIT_CODES`): 0 after a
    graceful stop, 1 when it cannot start, 3 when it stopped because every account session
    FAILED.

    ``log_format`` and ``log_level`` override ``runtime.log_*``; ``record`` (a directory)
    overrides ``runtime.record.dir``; ``dry_run`` sets ``runtime.dry_run``.
    """
    if record:
        app = with_recording(app, record)
    if dry_run:
        app = dataclasses.replace(app, runtime=dataclasses.replace(app.runtime, dry_run=True))
    configure_logging(log_level or app.runtime.log_level, log_format or app.runtime.log_format)
    runtime = Runtime(app)
    runtime.announce = lambda line: print(line, flush=True)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_serve_signals, runtime)
            await runtime.run(duration=duration)
            nursery.cancel_scope.cancel()

    problems: list[str] = []
    try:
        trio.run(main)
    except* (ConfigError, PluginLoadError) as group:
        # Raised inside trio's nurseries, so they arrive grouped: show each, no traceback.
        problems.extend(str(exc) for exc in _leaves(group))
    except* (sqlite3.Error, OSError) as group:
        problems.extend(f"qfexbot run: {type(exc).__name__}: {exc}" for exc in _leaves(group))
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return EXIT_START_FAILED
    if runtime.failure is not None:
        print(f"qfexbot run: {runtime.failure}", file=sys.stderr)
        return EXIT_SESSIONS_FAILED
    return 0


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    """The exceptions inside ``group``, however deeply nurseries nested it."""
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        leaves.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return leaves


def check_file(path: Path) -> int:
    """``qfexbot check``: the file's problems and, in the same pass, those of the plugins of
    every bot that has none of its own (loaded, not started); nothing is connected."""
    try:
        app = load_config(path)
    except ConfigError as exc:
        errors = list(exc.errors)
        if exc.partial is not None:
            errors.extend(Runtime(exc.partial).check())
        _print_problems(path, errors)
        return 1
    return check_command(app)


def _print_problems(path: object, errors: list[str]) -> None:
    print(f"{path}: {len(errors)} problem(s)", file=sys.stderr)
    for line in errors:
        print(f"  {line}", file=sys.stderr)


def check_command(app: AppConfig) -> int:
    """``qfexbot check`` of a valid file: load and validate every bot's plugins without
    connecting anything."""
    runtime = Runtime(app)
    errors = runtime.check()
    if errors:
        _print_problems(app.path, errors)
        return 1
    plugins = sum(len(host.slots) for host in runtime.hosts.values())
    print(f"{app.path}: OK ({len(app.bots)} bots, {len(app.venues)} venues, {plugins} plugins)")
    return 0


def plugins_command(app: AppConfig) -> int:
    """``qfexbot plugins``: every discoverable plugin, where it comes from, and its hooks."""
    return list_plugins(app.runtime.plugin_dirs)


def list_plugins(plugin_dirs: Sequence[Path]) -> int:
    """Print the plugins of ``plugin_dirs`` and of the installed entry points; returns 0."""
    for info in discover_plugins(plugin_dirs):
        hooks = ", ".join(info.hooks) if info.hooks else "-"
        line = f"{info.name:<24} {info.source:<40} hooks: {hooks}"
        if info.error:
            line += f"  ERROR: {info.error}"
        if info.shadowed_by:
            line += f"  (shadowed by {info.shadowed_by})"
        print(line)
    return 0
