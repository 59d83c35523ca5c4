"""The QFEX simulator of a ``simulator = true`` table, started in the runtime's nursery."""

from __future__ import annotations

from decimal import Decimal

import trio

from qfexbot.sim.common.embedded import EmbeddedTable
from qfexbot.sim.qfex.config import SimConfig, parse_sim_config
from qfexbot.sim.qfex.server import QfexSimulator, SimUrls

__all__ = ["embedded_config", "start_embedded"]


def embedded_config(table: EmbeddedTable) -> SimConfig:
    """The simulator configuration of one table: its user, sub-accounts, deposits and options.

    ``deposits`` in the table's options are by alias; the simulator's are by account id.
    """
    deposits = {
        table.accounts[alias]: str(amount)
        for alias, amount in table.options.get("deposits", {}).items()
    }
    # bots.toml's checks give Decimals; SIM.toml values are what TOML gives (str is exact).
    sim_table = {
        key: str(value) if isinstance(value, Decimal) else value
        for key, value in table.options.items()
        if key != "deposits"
    }
    user = {
        "public_key": table.public_key,
        "secret": table.secret,
        "account_id": table.user_id,
        "subaccounts": sorted({a for a in table.accounts.values() if a != table.user_id}),
        "deposits": deposits,
    }
    return parse_sim_config({"users": [user], "sim": sim_table})


async def start_embedded(root: trio.Nursery, table: EmbeddedTable) -> tuple[QfexSimulator, SimUrls]:
    """Serve the table's simulator on localhost in ``root`` until it is cancelled."""
    sim = QfexSimulator(embedded_config(table))
    return sim, await root.start(sim.serve, "127.0.0.1")
