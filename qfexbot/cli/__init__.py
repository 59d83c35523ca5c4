"""The ``qfexbot`` command line: the parser of every command and the dispatch to its family's
module (``run``: run, check, plugins; ``status``; ``replay``; ``journal``: journal, pause,
resume; ``scaffold``: init, new-plugin; ``sim``)."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from qfexbot.config import AppConfig, ConfigError, load_config
from qfexbot.venues import registry

__all__ = ["build_parser", "main", "parse_args"]

DEFAULT_CONFIG = "bots.toml"


def build_parser() -> argparse.ArgumentParser:
    """All subcommands and their flags."""
    parser = argparse.ArgumentParser(
        prog="qfexbot", description="Event-driven bots for QFEX subaccounts."
    )
    parser.add_argument(
        "--version", action="version", version=f"qfexbot {importlib.metadata.version('qfexbot')}"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the bots declared in CONFIG")
    run.add_argument("config", nargs="?", default=DEFAULT_CONFIG, help="bots.toml path")
    run.add_argument("--duration", type=float, help="stop gracefully after this many seconds")
    run.add_argument("--log-format", choices=["text", "json"], help="override runtime.log_format")
    run.add_argument("--log-level", help="override runtime.log_level")
    run.add_argument(
        "--record",
        metavar="DIR",
        help="record every raw frame into DIR (overrides runtime.record.dir)",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="every bot runs dry: actions are journaled as 'would do', nothing is sent "
        "(= runtime.dry_run = true)",
    )

    status = sub.add_parser(
        "status",
        help="sessions, bots, balances and transfers of the "
        "running process (asks its ops endpoint)",
    )
    status.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
    status.add_argument("--url", help="status URL (default: from runtime.ops_listen)")
    status.add_argument("--json", action="store_true", help="print the status document as JSON")

    replay = sub.add_parser(
        "replay",
        help="feed a recording through the bots of CONFIG, "
        "actions dry, and compare decisions with the live run",
    )
    replay.add_argument("recording", help="a recording file, or a directory of rotated files")
    replay.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
    replay.add_argument(
        "--speed",
        choices=["max", "recorded"],
        default="max",
        help="max: virtual clock, as fast as possible (default); recorded: real time",
    )
    replay.add_argument(
        "--decisions",
        metavar="FILE",
        help="write decisions as JSON lines to FILE instead of stdout",
    )
    replay.add_argument(
        "--log-format", choices=["text", "json"], help="override runtime.log_format"
    )
    replay.add_argument("--log-level", help="override runtime.log_level")

    check = sub.add_parser("check", help="validate CONFIG and its plugins")
    check.add_argument("config", nargs="?", default=DEFAULT_CONFIG)

    plugins = sub.add_parser("plugins", help="list discovered plugins and their hooks")
    plugins.add_argument("config", nargs="?", default=DEFAULT_CONFIG)

    sim = sub.add_parser("sim", help="run the local exchange simulator")
    sim.add_argument("--config", help="SIM.toml (default: built-in demo configuration)")
    sim.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sim.add_argument(
        "--venue",
        default=registry.DEFAULT_KIND,
        choices=registry.kinds(),
        help="venue to simulate",
    )

    journal = sub.add_parser(
        "journal",
        help="list journal entries (or: journal resolve|backup|accept-restore ...)",
        epilog="To resolve an unknown transfer by hand: "
        "qfexbot journal resolve ID [CONFIG] --applied|--not-applied. "
        "To back the journal up (online, consistent): qfexbot journal backup PATH [CONFIG] "
        "[--force]. After restoring an older journal: qfexbot journal accept-restore [CONFIG] "
        "[--reason TEXT].",
    )
    journal.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
    journal.add_argument("--state", help="only entries in this state (e.g. unknown)")
    journal.add_argument("--json", action="store_true", help="one JSON object per line")
    # argparse cannot mix an optional positional with a subcommand, so `journal resolve ...`
    # is routed to this parser by main() before parsing.
    resolve = sub.add_parser("journal-resolve")  # no help=: not listed
    resolve.add_argument("entry_id")
    how = resolve.add_mutually_exclusive_group(required=True)
    how.add_argument("--applied", dest="applied", action="store_true")
    how.add_argument("--not-applied", dest="applied", action="store_false")
    release = sub.add_parser("journal-release")  # `journal release ACCOUNT`: lift account holds
    release.add_argument("account", help="account alias or id")
    for command in (resolve, release):
        # CONFIG positional as everywhere; --config kept for the scripts that use it.
        command.add_argument("config_pos", nargs="?", metavar="config", default=None)
        command.add_argument("--config", dest="config_opt", default=None)
    # `journal backup PATH [CONFIG]` and `journal accept-restore [CONFIG]`, routed by main()
    backup = sub.add_parser("journal-backup", prog="qfexbot journal backup")
    backup.add_argument("path", help="where to write the backup (a new file, mode 0600)")
    backup.add_argument("config", nargs="?", default=DEFAULT_CONFIG, help="bots.toml path")
    backup.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    accept = sub.add_parser("journal-accept-restore", prog="qfexbot journal accept-restore")
    accept.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
    accept.add_argument(
        "--reason",
        default="restored journal checked by operator",
        help="why the restored journal is accepted (kept in its meta table)",
    )

    pause = sub.add_parser("pause", help="pause all money movement (kill switch)")
    pause.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
    pause.add_argument("--reason", default="paused by operator")
    resume = sub.add_parser("resume", help="resume money movement")
    resume.add_argument("config", nargs="?", default=DEFAULT_CONFIG)

    _add_scaffold_commands(sub)
    return parser


def _load(path: str) -> AppConfig:
    """The validated bots.toml at ``path``; on a problem, print them all and exit 1."""
    try:
        return load_config(Path(path))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(1) from None


def _add_scaffold_commands(sub: Any) -> None:
    """``init`` and ``new-plugin``: the commands that write files for a new user."""
    init = sub.add_parser(
        "init",
        help="write a starter directory: bots.toml for the simulator, a real-account "
        "template, a plugin with its test",
    )
    init.add_argument(
        "directory", help="where to write it (created if missing; nothing is ever overwritten)"
    )

    new_plugin = sub.add_parser(
        "new-plugin", help="scaffold a plugin module (or --package) and a passing test"
    )
    new_plugin.add_argument("name", help="plugin name: lower-case letters, digits, underscores")
    new_plugin.add_argument(
        "--dir",
        help="where to write: plugin module dir (default plugins), or with --package "
        "the parent of the package directory (default .)",
    )
    new_plugin.add_argument("--tests", default="tests", help="test directory (default tests)")
    new_plugin.add_argument(
        "--package",
        action="store_true",
        help="an installable package (src layout, qfexbot.plugins entry point)",
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, so a closed pipe is handled below and not at exit
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` (or a pager that quit): stop quietly, as Unix tools do.
        # Point stdout at /dev/null so the interpreter's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by the pipe
    except (sqlite3.Error, OSError) as exc:
        # A journal that is not a database, a path under a file, a recording dir that exists:
        # the operator needs the path and the reason, not a traceback.
        command = " ".join(sys.argv[1:2]) or "qfexbot"
        print(f"qfexbot {command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


_JOURNAL_COMMANDS = (
    "journal",
    "journal-resolve",
    "journal-release",
    "journal-backup",
    "journal-accept-restore",
    "pause",
    "resume",
)

# Each command family is imported only when its command runs: `qfexbot journal` or `status`
# would otherwise pay about half a second importing the runtime, the venues and the simulators.


def parse_args(argv: list[str]) -> argparse.Namespace:
    """``argv`` (without the program name) as the command line reads it, or ``SystemExit(2)``
    with argparse's message: what ``main`` runs, and what the docs' commands are checked with."""
    if argv[:1] == ["journal"] and argv[1:2] in (
        ["resolve"],
        ["release"],
        ["backup"],
        ["accept-restore"],
    ):
        argv = [f"journal-{argv[1]}", *argv[2:]]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("journal-resolve", "journal-release"):
        if args.config_pos and args.config_opt and args.config_pos != args.config_opt:
            parser.error(f"two configs given: {args.config_pos} and --config {args.config_opt}")
        args.config = args.config_pos or args.config_opt or DEFAULT_CONFIG
    return args


def _main(argv: list[str] | None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command == "sim":
        from qfexbot.cli.sim import run_sim_command  # noqa: PLC0415

        return run_sim_command(config=args.config, host=args.host, venue=args.venue)
    if args.command == "init":
        from qfexbot.cli.scaffold import init_command  # noqa: PLC0415

        return init_command(Path(args.directory))
    if args.command == "new-plugin":
        from qfexbot.cli.scaffold import new_plugin_command  # noqa: PLC0415

        return new_plugin_command(
            args.name, directory=args.dir, tests=args.tests, package=args.package
        )
    if args.command == "check":
        # Not through _load: a file with problems still has its valid bots' plugins checked.
        from qfexbot.cli.run import check_file  # noqa: PLC0415

        return check_file(Path(args.config))
    if (
        args.command == "plugins"
        and args.config == DEFAULT_CONFIG
        and not Path(args.config).exists()
    ):
        # Nothing configured yet: list what a new bots.toml here would find.
        from qfexbot.cli.run import list_plugins  # noqa: PLC0415

        return list_plugins([Path("plugins")])
    return _config_command(_load(args.config), args)


def _config_command(app: AppConfig, args: argparse.Namespace) -> int:
    """The commands that read a bots.toml (``app``)."""
    if args.command == "run":
        from qfexbot.cli.run import run_command  # noqa: PLC0415

        return run_command(
            app,
            duration=args.duration,
            log_format=args.log_format,
            log_level=args.log_level,
            record=args.record,
            dry_run=args.dry_run,
        )
    if args.command == "plugins":
        from qfexbot.cli.run import plugins_command  # noqa: PLC0415

        return plugins_command(app)
    if args.command == "status":
        from qfexbot.cli.status import status_command  # noqa: PLC0415

        return status_command(app, url=args.url, as_json=args.json)
    if args.command == "replay":
        from qfexbot.cli.replay import replay_command  # noqa: PLC0415

        return replay_command(
            app,
            args.recording,
            speed=args.speed,
            decisions_out=args.decisions,
            log_format=args.log_format,
            log_level=args.log_level,
        )
    if args.command in _JOURNAL_COMMANDS:
        from qfexbot.cli.journal import journal_command  # noqa: PLC0415

        return journal_command(app, args)
    raise AssertionError(f"unhandled command {args.command}")
