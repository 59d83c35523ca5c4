"""``qfexbot sim``: run a venue simulator in the foreground, print READY, stop on SIGINT/SIGTERM."""

from __future__ import annotations

import sys
from functools import partial

import trio

from qfexbot.sim.common.serve import serve_until_signal
from qfexbot.sim.finery.config import (
    FinerySimConfigError,
    demo_finery_config,
    load_finery_sim_config,
)
from qfexbot.sim.finery.server import FinerySimulator
from qfexbot.sim.qfex.config import SimConfigError, demo_sim_config, load_sim_config
from qfexbot.sim.qfex.server import QfexSimulator

__all__ = ["run_finery_sim_command", "run_sim_command"]


def run_sim_command(config: str | None, host: str, venue: str) -> int:
    """Serve the QFEX simulator of SIM.toml (the demo set without ``config``).

    Prints exactly one ``READY {"trade_url": ..., "mds_url": ..., "rest_url": ...}`` line on
    stdout once every server listens, then runs until SIGINT or SIGTERM.

    Returns:
        0 after a signal, 2 for an unsupported venue or a bad configuration (told on stderr).
    """
    if venue != "qfex":
        print(f"qfexbot sim: unsupported venue {venue!r}", file=sys.stderr)
        return 2
    try:
        sim_config = load_sim_config(config) if config else demo_sim_config()
    except SimConfigError as exc:
        print(f"qfexbot sim: {exc}", file=sys.stderr)
        return 2
    trio.run(serve_until_signal, partial(QfexSimulator, sim_config), host)
    return 0


def run_finery_sim_command(config: str | None, host: str = "127.0.0.1") -> int:
    """Serve the Finery simulator of SIM.toml's ``[finery]`` part (the demo set without it).

    Prints exactly one line ``READY {"ws_url": "...", "rest_url": "..."}`` once both servers
    listen, then runs until SIGINT or SIGTERM.

    Returns:
        0 after a signal, 2 if the configuration is invalid (the problems go to stderr).
    """
    try:
        sim_config = load_finery_sim_config(config) if config else demo_finery_config()
    except FinerySimConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    trio.run(serve_until_signal, partial(FinerySimulator, sim_config), host)
    return 0
