"""Cookbook: two plugins of one bot sharing state through ``ctx.state``. ``BalanceBoard``
keeps the latest balance per account; ``RichestReporter`` reads it on a timer."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from qfexbot import BalanceEvent, BotContext, Field, TimerEvent, hookimpl

BOARD = "balance_board"  # the ctx.state key both plugins agree on


class BalanceBoard:
    subscribes = (BalanceEvent,)

    @hookimpl
    def qfexbot_startup(self, ctx: BotContext) -> None:
        ctx.state.setdefault(BOARD, {})  # startup hooks run before any event, in bots.toml order

    @hookimpl
    def qfexbot_event(self, ctx: BotContext, event: BalanceEvent) -> None:
        ctx.state[BOARD][ctx.alias_of(event.account_id)] = event.available


class RichestReporter:
    config_schema: ClassVar[dict[str, Field]] = {"every": Field("duration", default=30.0)}
    subscribes = ()  # timers only: its own timer events always arrive

    def __init__(self, config) -> None:
        self.every = float(config["every"])
        self.reports: list[tuple[str, Decimal]] = []

    @hookimpl
    def qfexbot_schedules(self, ctx: BotContext) -> list[tuple[str, float]]:
        return [("report", self.every)]

    @hookimpl
    def qfexbot_event(self, ctx: BotContext, event: TimerEvent) -> None:
        board: dict[str, Decimal] = ctx.state.get(BOARD, {})
        if board:
            alias, available = max(board.items(), key=lambda item: item[1])
            self.reports.append((alias, available))
            ctx.log.info("richest account: %s (%s)", alias, available)
