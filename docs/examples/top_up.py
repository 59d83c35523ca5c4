"""Cookbook: keep each account's available balance above ``min`` by topping it up to ``target``
from the treasury. One transfer in flight per account; the outcome event clears it."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from qfexbot import BalanceEvent, BotContext, Event, Field, TransferOutcomeEvent, hookimpl


class TopUp:
    config_schema: ClassVar[dict[str, Field]] = {
        "source": Field("account", default="treasury", doc="where the money comes from"),
        "min": Field("positive_number", doc="top up below this available balance"),
        "target": Field("positive_number", doc="... back up to this"),
    }
    subscribes = (BalanceEvent, TransferOutcomeEvent)

    def __init__(self, config) -> None:
        self.config = config
        self.in_flight: set[str] = set()  # accounts with a transfer not yet settled

    @hookimpl
    async def qfexbot_event(self, ctx: BotContext, event: Event) -> None:
        match event:
            case BalanceEvent(account_id=account, available=available):
                if available >= self.config["min"] or account in self.in_flight:
                    return
                amount: Decimal = self.config["target"] - available
                self.in_flight.add(account)
                result = await ctx.transfer(
                    self.config["source"],
                    account,
                    amount,
                    reason=f"top up below {self.config['min']}",
                )
                ctx.log.info("top-up %s %s: %s", ctx.alias_of(account), amount, result.state)
                if result.state != "done":
                    self.in_flight.discard(account)  # refused or failed: retry on a later event
            case TransferOutcomeEvent(dst=dst, state="done") if dst == event.account_id:
                self.in_flight.discard(dst)
