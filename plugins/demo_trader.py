"""Demo plugin: trades small random market orders on the simulator so balances keep drifting.

It exists so the shipped demo shows the rebalancer at work; point it only at a simulator.
Each tick it buys or sells ``quantity`` of ``symbol`` in one of its accounts, at market (IOC).
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import ClassVar

from qfexbot import ActionUnavailable, BotContext, Field, TimerEvent, hookimpl


class DemoTrader:
    """Random-walk trader: one market order per tick on a random account of the bot."""

    config_schema: ClassVar[dict[str, Field]] = {
        "symbol": Field("str", default="AAPL-USD", doc="symbol to trade"),
        "quantity": Field("positive_number", default=Decimal(1), doc="order size"),
        "interval": Field("duration", default=2.0, doc="seconds between orders"),
        "seed": Field("int", default=7, doc="random seed, so runs repeat"),
    }

    def __init__(self, config):
        self.config = config
        self.rng = random.Random(int(config["seed"]))

    @hookimpl
    def qfexbot_schedules(self, ctx: BotContext) -> list[tuple[str, float]]:
        """One timer: the trading tick."""
        return [("trade", float(self.config["interval"]))]

    @hookimpl
    async def qfexbot_event(self, ctx: BotContext, event: object) -> None:
        """On each tick, send one market order on a random account of the bot."""
        if not isinstance(event, TimerEvent) or event.name != "trade":
            return
        alias = self.rng.choice(sorted(ctx.accounts))
        side = self.rng.choice(("BUY", "SELL"))
        try:
            await ctx.add_order(
                alias,
                symbol=self.config["symbol"],
                side=side,
                order_type="MARKET",
                quantity=self.config["quantity"],
                time_in_force="IOC",
            )
        except ActionUnavailable as exc:
            # Expected while the account's session reconnects: skip this tick.
            ctx.log.info("demo order skipped account=%s: %s", alias, exc)
            return
        ctx.log.info(
            "demo order account=%s side=%s quantity=%s", alias, side, self.config["quantity"]
        )
