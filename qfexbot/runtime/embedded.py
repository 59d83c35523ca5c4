"""The embedded Finery simulator of a ``simulator = true`` Finery venue, with house liquidity.

The one bridge between client and simulator (ARCHITECTURE.md rule 6): the house maker trades
through the client's own signed REST API, so it lives in runtime, not in ``qfexbot.sim``.

A real Finery book only has what makers rest in it; an embedded simulator with no other client
would show empty books. :func:`embedded_config` therefore adds a *house maker* client next to the
bot's own client (and a master's sub-accounts), and :class:`HouseMaker` keeps quoting every
instrument around a fixed mid (the currencies' USD prices) through the simulator's own signed
REST API, replacing one random quote (new size, same price) every ``interval`` seconds so books
keep moving.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import trio

from qfexbot.core.logs import get_logger, log_event
from qfexbot.core.secrets import Secret
from qfexbot.sim.finery.config import FinerySimClient, FinerySimConfig
from qfexbot.venues.finery.numbers import to_units
from qfexbot.venues.finery.parse import FineryError
from qfexbot.venues.finery.rest import FineryHttpError, FineryRest

__all__ = ["HOUSE_KEY", "HouseMaker", "embedded_config"]

log = get_logger(__name__)

HOUSE_KEY = "house-maker"
"""API key of the simulator's house maker client."""


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


class HouseMaker:
    """Keeps ``levels`` limit orders per side resting on every instrument of the simulator.

    Args:
      client: the house maker client (from :func:`embedded_config`).
      config: the simulator configuration (currencies and instruments).
      interval: seconds between quote replacements.
      seed: random seed for sizes and the order replaced.
      levels: quotes per side; spacing ``spread`` (a fraction of the mid), rounded to the step.
    """

    def __init__(
        self,
        client: FinerySimClient,
        config: FinerySimConfig,
        *,
        interval: float = 1.0,
        seed: int = 1,
        levels: int = 5,
        spread: Decimal = Decimal("0.0005"),
    ) -> None:
        self.client = client
        self.interval = interval
        self.levels = levels
        self._rng = random.Random(seed)
        currencies = {c.name: c for c in config.currencies}
        self._slots: list[tuple[str, str, int, int]] = []  # instrument, side, price, size step
        for inst in config.instruments:
            asset, quote = currencies[inst.asset], currencies[inst.balance]
            step = quote.balance_step
            mid = to_units(Decimal(asset.usd_price) / Decimal(quote.usd_price)) // step * step
            tick = max(step, int(mid * spread) // step * step)
            lot = max(asset.balance_step, to_units(Decimal("0.01")))
            for level in range(1, levels + 1):
                self._slots.append((inst.name, "bid", mid - level * tick, lot))
                self._slots.append((inst.name, "ask", mid + level * tick, lot))
        self._orders: dict[int, int] = {}  # slot index -> resting order id

    async def run(self, rest_url: str, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Quote every slot, report started, then replace one random quote per ``interval``."""
        rest = FineryRest(rest_url, self.client.key, Secret(self.client.secret), timeout=5.0)
        try:
            for index in range(len(self._slots)):
                await self._quote(rest, index)
            task_status.started()
            while True:
                await trio.sleep(self.interval)
                await self._quote(rest, self._rng.randrange(len(self._slots)))
        finally:
            with trio.CancelScope(shield=True):
                await rest.aclose()

    async def _quote(self, rest: FineryRest, index: int) -> None:
        instrument, side, price, lot = self._slots[index]
        try:
            # The new quote joins the level before the old one leaves: the level never vanishes.
            size = lot * self._rng.randint(1, 100)
            reply = await rest.call(
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
                    await rest.call("del", {"orderId": old})
                except FineryError as exc:
                    if exc.code != 80:  # 80: already filled by a taker
                        raise
        except (FineryError, FineryHttpError) as exc:
            log_event(
                log,
                logging.WARNING,
                "house maker quote failed",
                instrument=instrument,
                side=side,
                error=str(exc),
            )
