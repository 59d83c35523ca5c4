"""Cookbook: place a resting limit order once the account's session is live, then cancel it as
soon as the venue acknowledges it. Shows the order life cycle as events."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from qfexbot import (
    BotContext,
    ConnectionState,
    ConnectionStateEvent,
    Event,
    Field,
    OrderUpdateEvent,
    hookimpl,
)


class OrderThenCancel:
    config_schema: ClassVar[dict[str, Field]] = {
        "account": Field("account", doc="the account to trade on (one of the bot's)"),
        "symbol": Field("str", default="AAPL-USD"),
        "price": Field("positive_number", default=Decimal(100), doc="far below the market"),
    }

    def __init__(self, config) -> None:
        self.config = config
        self.placed = False
        self.statuses: list[str] = []  # every status of our order, in order

    @hookimpl
    async def qfexbot_event(self, ctx: BotContext, event: Event) -> None:
        account = ctx.account_id(self.config["account"])
        match event:
            case ConnectionStateEvent(state=ConnectionState.LIVE) if (
                event.account_id == account and not self.placed
            ):
                self.placed = True
                await ctx.add_order(
                    account,
                    symbol=self.config["symbol"],
                    side="BUY",
                    order_type="LIMIT",
                    quantity=Decimal(1),
                    price=self.config["price"],
                    client_order_id="cookbook-1",
                )
            case OrderUpdateEvent(client_order_id="cookbook-1", status=status):
                self.statuses.append(status)
                ctx.log.info("order %s: %s", event.order_id, status)
                if status == "ACK":
                    await ctx.cancel_order(account, symbol=event.symbol, order_id=event.order_id)
