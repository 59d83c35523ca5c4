"""Cookbook: warn once when an account's equity falls ``max_drawdown_pct`` percent below the
highest equity seen since start; warn again only after it recovered."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from qfexbot import BalanceEvent, BotContext, Field, hookimpl


class DrawdownAlert:
    config_schema: ClassVar[dict[str, Field]] = {
        "max_drawdown_pct": Field(
            "positive_number", default=Decimal(10), doc="alert when equity is this % under its peak"
        ),
    }
    subscribes = (BalanceEvent,)

    def __init__(self, config) -> None:
        self.limit = config["max_drawdown_pct"] / 100
        self.peaks: dict[str, Decimal] = {}
        self.alerting: set[str] = set()
        self.alerts: list[tuple[str, Decimal]] = []  # (account id, drawdown fraction)

    @hookimpl
    async def qfexbot_startup(self, ctx: BotContext) -> None:
        # Seed the peaks from the venue's equity history, so a restart does not forget them.
        for alias, account in ctx.accounts.items():
            history = await ctx.account_equity(alias, duration="1d")
            if history:
                self.peaks[account] = max(equity for _, equity in history)

    @hookimpl
    def qfexbot_event(self, ctx: BotContext, event: BalanceEvent) -> None:
        account, equity = event.account_id, event.equity
        peak = max(self.peaks.get(account, equity), equity)
        self.peaks[account] = peak
        drawdown = (peak - equity) / peak if peak > 0 else Decimal(0)
        if drawdown >= self.limit and account not in self.alerting:
            self.alerting.add(account)
            self.alerts.append((account, drawdown))
            ctx.log.warning(
                "drawdown %s: equity %s is %.1f%% under its peak %s",
                ctx.alias_of(account),
                equity,
                drawdown * 100,
                peak,
            )
        elif drawdown < self.limit / 2:
            self.alerting.discard(account)  # recovered: the next drawdown alerts again
