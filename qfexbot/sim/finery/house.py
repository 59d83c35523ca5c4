"""House liquidity for an embedded Finery simulator.

A real Finery book only has what makers rest in it; an embedded simulator with no other client
would show empty books. :class:`HouseMaker` keeps quoting every instrument around a fixed mid
(the currencies' USD prices) as a maker client of the simulator, acting in-process through the
simulator's own request path (:meth:`FinerySimulator.act`), and replaces one random quote (new
size, same price) every ``interval`` seconds so books keep moving.
"""

from __future__ import annotations

import logging
import random
from decimal import Decimal
from typing import Any, Protocol

import trio

from qfexbot.core.logs import get_logger, log_event
from qfexbot.sim.finery.config import FinerySimClient, FinerySimConfig
from qfexbot.sim.finery.engine import EngineError
from qfexbot.sim.finery.units import to_units

__all__ = ["HouseMaker", "QuotedVenue"]

log = get_logger(__name__)

ALREADY_FILLED = 80
"""Error code of a ``del`` whose order a taker has filled meanwhile."""


class QuotedVenue(Protocol):
    """What the house maker needs of the simulator (which starts it: no import of the server)."""

    config: FinerySimConfig

    def act(self, client: FinerySimClient, method: str, content: dict[str, Any]) -> Any:
        """Run one API method for an in-process client."""


class HouseMaker:
    """Keeps ``levels`` limit orders per side resting on every instrument of the simulator.

    Args:
      sim: the simulator it quotes in (its configuration gives currencies and instruments).
      client: the house maker client, a ``maker`` among ``sim``'s clients.
      interval: seconds between quote replacements.
      seed: random seed for sizes and the order replaced.
      levels: quotes per side; spacing ``spread`` (a fraction of the mid), rounded to the step.
    """

    def __init__(
        self,
        sim: QuotedVenue,
        client: FinerySimClient,
        *,
        interval: float = 1.0,
        seed: int = 1,
        levels: int = 5,
        spread: Decimal = Decimal("0.0005"),
    ) -> None:
        self.sim = sim
        self.client = client
        self.interval = interval
        self.levels = levels
        self._rng = random.Random(seed)
        currencies = {c.name: c for c in sim.config.currencies}
        self._slots: list[tuple[str, str, int, int]] = []  # instrument, side, price, size step
        for inst in sim.config.instruments:
            asset, quote = currencies[inst.asset], currencies[inst.balance]
            step = quote.balance_step
            mid = to_units(Decimal(asset.usd_price) / Decimal(quote.usd_price)) // step * step
            tick = max(step, int(mid * spread) // step * step)
            lot = max(asset.balance_step, to_units(Decimal("0.01")))
            for level in range(1, levels + 1):
                self._slots.append((inst.name, "bid", mid - level * tick, lot))
                self._slots.append((inst.name, "ask", mid + level * tick, lot))
        self._orders: dict[int, int] = {}  # slot index -> resting order id

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Quote every slot, report started, then replace one random quote per ``interval``."""
        for index in range(len(self._slots)):
            self._quote(index)
        task_status.started()
        while True:
            await trio.sleep(self.interval)
            self._quote(self._rng.randrange(len(self._slots)))

    def _quote(self, index: int) -> None:
        instrument, side, price, lot = self._slots[index]
        try:
            # The new quote joins the level before the old one leaves: the level never vanishes.
            size = lot * self._rng.randint(1, 100)
            reply = self.sim.act(
                self.client,
                "add",
                {
                    "instrument": instrument,
                    "side": side,
                    "type": "limit",
                    "price": price,
                    "size": size,
                },
            )
            old = self._orders.pop(index, None)
            self._orders[index] = reply["id"]
            if old is not None:
                try:
                    self.sim.act(self.client, "del", {"orderId": old})
                except EngineError as exc:
                    if exc.code != ALREADY_FILLED:
                        raise
        except EngineError as exc:
            log_event(
                log,
                logging.WARNING,
                "house maker quote failed",
                instrument=instrument,
                side=side,
                error=str(exc),
            )
