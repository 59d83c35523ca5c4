"""``qfexbot sim``: run the simulator in the foreground, print READY, stop on SIGINT/SIGTERM."""

from __future__ import annotations

import json
import signal
import sys

import trio

from qfexbot.sim.qfex.config import SimConfig, SimConfigError, demo_sim_config, load_sim_config
from qfexbot.sim.qfex.server import QfexSimulator

__all__ = ["run_sim_command"]


def run_sim_command(config: str | None, host: str, venue: str) -> int:
    """Run until SIGINT/SIGTERM; exit code 0 on a signal, 2 on a bad configuration.

    Prints exactly one ``READY {"trade_url": ..., "mds_url": ..., "rest_url": ...}`` line on
    stdout once every server listens.
    """
    if venue != "qfex":
        print(f"qfexbot sim: unsupported venue {venue!r}", file=sys.stderr)
        return 2
    try:
        sim_config = load_sim_config(config) if config else demo_sim_config()
    except SimConfigError as exc:
        print(f"qfexbot sim: {exc}", file=sys.stderr)
        return 2
    trio.run(_run, sim_config, host)
    return 0


async def _run(config: SimConfig, host: str) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(QfexSimulator(config).serve, host)
            print("READY " + json.dumps(urls.as_dict()), flush=True)
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()
