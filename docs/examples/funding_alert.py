"""Cookbook: warn once when a symbol's implied funding rate passes ``max_bps`` basis points
either way (longs pay when it is positive, shorts when it is negative); warn again only after
it came back under half of that. Needs the ``funding`` market-data channel."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from qfexbot import BotContext, Field, FundingRateEvent, hookimpl


class FundingAlert:
    config_schema: ClassVar[dict[str, Field]] = {
        "max_bps": Field("positive_number", default=Decimal(10), doc="alert above this |rate|"),
    }
    subscribes = (FundingRateEvent,)

    def __init__(self, config) -> None:
        self.limit = config["max_bps"] / 10_000
        self.alerting: set[str] = set()
        self.alerts: list[tuple[str, Decimal]] = []  # (symbol, rate)

    @hookimpl
    def qfexbot_event(self, ctx: BotContext, event: FundingRateEvent) -> None:
        size = abs(event.rate)
        if size >= self.limit and event.symbol not in self.alerting:
            self.alerting.add(event.symbol)
            self.alerts.append((event.symbol, event.rate))
            payer = "longs pay shorts" if event.rate > 0 else "shorts pay longs"
            ctx.log.warning(
                "funding %s: implied rate %.2f bps (%s), window ends in %.0fs",
                event.symbol,
                event.rate * 10_000,
                payer,
                event.time_remaining,
            )
        elif size < self.limit / 2:
            self.alerting.discard(event.symbol)  # back to normal: the next spike alerts again
