"""The ``qfexbot`` command line: run, check, plugins, sim, journal, pause, resume."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    """All subcommands and their flags."""
    parser = argparse.ArgumentParser(prog="qfexbot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("sim", help="run the local exchange simulator")
    sim.add_argument("--config", help="SIM.toml (default: built-in demo configuration)")
    sim.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sim.add_argument("--venue", default="qfex", choices=["qfex"], help="which venue to simulate")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    if args.command == "sim":
        from qfexbot.sim.command import run_sim_command

        return run_sim_command(config=args.config, host=args.host, venue=args.venue)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
