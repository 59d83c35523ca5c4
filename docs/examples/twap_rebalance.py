"""Cookbook: bring each account's position in ``symbol`` to ``target`` with a TWAP (``orders``
market orders, one every ``interval`` seconds) instead of one large order; when a TWAP ends
the position is read again and the rest, if any, gets another TWAP."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from qfexbot import (
    BotContext,
    ConnectionState,
    ConnectionStateEvent,
    Event,
    Field,
    TwapEvent,
    hookimpl,
)


class TwapRebalance:
    config_schema: ClassVar[dict[str, Field]] = {
        "symbol": Field("str", doc="the symbol whose position is rebalanced"),
        "target": Field("number", doc="the signed position to reach (long > 0)"),
        "orders": Field("positive_int", default=5, doc="child orders per TWAP"),
        "interval": Field("positive_int", default=60, doc="seconds between child orders"),
        "min_step": Field("positive_number", default=Decimal("0.001"), doc="smaller: done"),
    }
    subscribes = (ConnectionStateEvent, TwapEvent)

    def __init__(self, config) -> None:
        self.config = config
        self.running: dict[str, str] = {}  # account id -> client_twap_id of its TWAP
        self.started = 0
        self.finished: list[TwapEvent] = []

    @hookimpl
    async def qfexbot_event(self, ctx: BotContext, event: Event) -> None:
        if isinstance(event, ConnectionStateEvent) and event.state is ConnectionState.LIVE:
            await self._rebalance(ctx, event.account_id)
        elif isinstance(event, TwapEvent) and self._ends_ours(event):
            del self.running[event.account_id]
            self.finished.append(event)
            await self._rebalance(ctx, event.account_id)

    def _ends_ours(self, event: TwapEvent) -> bool:
        """The end of this account's TWAP (a TWAP started by hand is left alone)."""
        ended = event.status in ("COMPLETED", "CANCELLED")
        return ended and self.running.get(event.account_id) == event.client_twap_id

    async def _rebalance(self, ctx: BotContext, account: str) -> None:
        if account in self.running:
            return  # one TWAP per account at a time
        symbol, target = self.config["symbol"], self.config["target"]
        snapshot = await ctx.positions(account)
        size = sum((p.size for p in snapshot.positions if p.symbol == symbol), Decimal(0))
        delta = target - size
        if abs(delta) < self.config["min_step"]:
            return
        self.started += 1
        twap_id = f"rebalance-{account[:8]}-{self.started}"
        self.running[account] = twap_id
        await ctx.start_twap(
            account,
            symbol=symbol,
            side="BUY" if delta > 0 else "SELL",
            total_quantity=abs(delta),
            num_orders=self.config["orders"],
            interval_seconds=self.config["interval"],
            client_twap_id=twap_id,
        )
        ctx.log.info(
            "rebalancing %s %s from %s to %s in %d orders",
            ctx.alias_of(account),
            symbol,
            size,
            target,
            self.config["orders"],
        )
