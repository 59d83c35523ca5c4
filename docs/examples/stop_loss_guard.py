"""Cookbook: give every new position a stop-loss ``pct`` percent through its entry price, placed
once per position; when the position is flat again the guard forgets it (a stop that fires
with nothing left to close is cancelled by the venue)."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import ClassVar

from qfexbot import BotContext, Field, PositionEvent, hookimpl


class StopLossGuard:
    config_schema: ClassVar[dict[str, Field]] = {
        "pct": Field("positive_number", default=Decimal(5), doc="stop distance, % of entry"),
        "tick": Field("positive_number", default=Decimal("0.01"), doc="the symbols' price tick"),
    }
    subscribes = (PositionEvent,)

    def __init__(self, config) -> None:
        self.fraction = config["pct"] / 100
        self.tick = config["tick"]
        self.guarded: dict[tuple[str, str], Decimal] = {}  # (account, symbol) -> stop trigger

    @hookimpl
    async def qfexbot_event(self, ctx: BotContext, event: PositionEvent) -> None:
        key = (event.account_id, event.symbol)
        if event.size == 0:
            self.guarded.pop(key, None)  # closed: the next position gets its own stop
            return
        if key in self.guarded or event.average_price <= 0:
            return
        long = event.size > 0
        # Below the entry for a long (rounded down to the tick), above it for a short.
        distance = 1 - self.fraction if long else 1 + self.fraction
        raw = event.average_price * distance / self.tick
        trigger = raw.to_integral_value(ROUND_DOWN if long else ROUND_UP) * self.tick
        await ctx.place_stop_order(
            event.account_id,
            symbol=event.symbol,
            side="SELL" if long else "BUY",
            stop_type="STOP_LOSS",
            trigger_price=trigger,
            quantity=abs(event.size),
        )
        # Only once it was sent: if the session was down (ActionUnavailable), the next
        # position event tries again.
        self.guarded[key] = trigger
        ctx.log.info(
            "stop-loss for %s %s %s at %s (entry %s)",
            ctx.alias_of(event.account_id),
            event.size,
            event.symbol,
            trigger,
            event.average_price,
        )
