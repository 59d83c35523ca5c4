"""The Finery simulator of a ``simulator = true`` table, with house liquidity.

:func:`embedded_config` gives the bot's key its client (and a master's sub-accounts theirs) and
adds a *house maker* client; :func:`start_embedded` serves the simulator and starts its
:class:`~qfexbot.sim.finery.house.HouseMaker`, so books are quoted before any bot connects.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

import trio

from qfexbot.sim.common.embedded import EmbeddedTable
from qfexbot.sim.finery.config import FinerySimClient, FinerySimConfig
from qfexbot.sim.finery.house import HouseMaker
from qfexbot.sim.finery.server import HOUSE_KEY, FinerySimulator, FineryUrls

__all__ = ["HOUSE_KEY", "embedded_config", "start_embedded"]


def embedded_config(
    user_id: str, account_ids: Iterable[str], key: str, secret: str
) -> tuple[FinerySimConfig, FinerySimClient]:
    """The simulator clients for one bots.toml venue, and the house maker among them.

    The key's client is a taker, or a master when the venue lists other accounts (its
    sub-accounts, takers with keys of their own that nobody uses). The house maker gets the
    next free client id.
    """
    own = int(user_id)
    subs = sorted({int(a) for a in account_ids} - {own})
    clients = [
        FinerySimClient(key, secret, own, "master" if subs else "taker", subaccounts=tuple(subs))
    ]
    clients += [FinerySimClient(f"sub-{sub}", secrets.token_hex(16), sub, "taker") for sub in subs]
    house = FinerySimClient(HOUSE_KEY, secrets.token_hex(16), max([own, *subs]) + 1, "maker")
    return FinerySimConfig(clients=(*clients, house)), house


async def start_embedded(
    root: trio.Nursery, table: EmbeddedTable
) -> tuple[FinerySimulator, FineryUrls]:
    """Serve the table's simulator on localhost in ``root``, its books already quoted.

    The house maker replaces a quote every ``pulse_interval`` seconds (default 1.0) with sizes
    drawn from ``seed`` (default 1); both run until ``root`` is cancelled.
    """
    sim_config, house = embedded_config(
        table.user_id, table.accounts.values(), table.public_key, table.secret
    )
    sim = FinerySimulator(sim_config)
    urls = await root.start(sim.serve, "127.0.0.1")
    maker = HouseMaker(
        sim,
        house,
        interval=table.options.get("pulse_interval", 1.0),
        seed=table.options.get("seed", 1),
    )
    await root.start(maker.run)
    return sim, urls
