"""``qfexbot sim --venue finery``: run the Finery simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import json
import signal
import sys

import trio

from qfexbot.sim.finery.config import (
    FinerySimConfig,
    FinerySimConfigError,
    demo_finery_config,
    load_finery_sim_config,
)
from qfexbot.sim.finery.server import FinerySimulator

__all__ = ["run_finery_sim_command"]


def run_finery_sim_command(config: str | None, host: str = "127.0.0.1") -> int:
    """Serve the simulator of SIM.toml's ``[finery]`` part (the demo set without ``config``).

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
    trio.run(_serve_until_signal, sim_config, host)
    return 0


async def _serve_until_signal(config: FinerySimConfig, host: str) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(FinerySimulator(config).serve, host)
            print(
                "READY " + json.dumps({"ws_url": urls.ws_url, "rest_url": urls.rest_url}),
                flush=True,
            )
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break
