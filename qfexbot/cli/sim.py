"""``qfexbot sim``: run a venue simulator in the foreground, print READY, stop on SIGINT/SIGTERM."""

from __future__ import annotations

import sys

import trio

from qfexbot.sim.common.serve import serve_until_signal
from qfexbot.sim.standalone import NoSimulator, StandaloneConfigError, standalone

__all__ = ["run_sim_command"]


def run_sim_command(config: str | None, host: str, venue: str) -> int:
    """Serve the simulator of ``venue`` for SIM.toml ``config`` (its demo set without one).

    Prints exactly one ``READY {...}`` line on stdout once every server listens (the URLs the
    simulator serves on), then runs until SIGINT or SIGTERM.

    Returns:
        0 after a signal, 2 for a venue with no simulator or a bad configuration (told on
        stderr).
    """
    try:
        factory = standalone(venue, config)
    except NoSimulator:
        print(f"qfexbot sim: unsupported venue {venue!r}", file=sys.stderr)
        return 2
    except StandaloneConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    trio.run(serve_until_signal, factory, host)
    return 0
