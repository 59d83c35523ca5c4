"""Example plugin: logs every balance change of the bot's subaccounts.

The smallest useful plugin: one sync hook, no state beyond the last balance seen per account so
the 1 s pulses only log when something moved by a cent or more (or every ``heartbeat`` seconds
regardless). Amounts are shown to the cent; the events keep the venue's exact values. Session
changes are logged by qfexbot itself (``core.session``), once each.
"""

from __future__ import annotations

import time
from decimal import Decimal

from qfexbot import BalanceEvent, BotContext, Field, hookimpl

config_schema = {
    "heartbeat": Field("duration", default=30.0, doc="log an unchanged balance this often"),
}

_last: dict[tuple[str, str], tuple[tuple[Decimal, Decimal], float]] = {}
CENT = Decimal("0.01")


@hookimpl
def qfexbot_event(ctx: BotContext, event: object) -> None:
    """Log a balance that changed (to the cent), or an unchanged one every ``heartbeat`` s."""
    if not isinstance(event, BalanceEvent):
        return
    key = (ctx.bot, event.account_id)
    now = time.monotonic()
    shown = (event.available.quantize(CENT), event.equity.quantize(CENT))
    previous = _last.get(key)
    if (
        previous is None
        or previous[0] != shown
        or now - previous[1] >= float(ctx.config["heartbeat"])
    ):
        _last[key] = (shown, now)
        ctx.log.info(
            "balance account=%s available=%s equity=%s",
            ctx.alias_of(event.account_id),
            *shown,
        )
