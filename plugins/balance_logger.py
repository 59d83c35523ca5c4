"""Example plugin: logs every balance change of the bot's subaccounts, and connection changes.

The smallest useful plugin: one sync hook, no state beyond the last balance seen per account so
the 1 s pulses only log when something moved (or every ``heartbeat`` seconds regardless).
"""

from __future__ import annotations

import time
from decimal import Decimal

from qfexbot import BalanceEvent, BotContext, ConnectionStateEvent, Field, hookimpl

config_schema = {
    "heartbeat": Field("duration", default=30.0, doc="log an unchanged balance this often"),
}

_last: dict[tuple[str, str], tuple[Decimal, float]] = {}


@hookimpl
def qfexbot_event(ctx: BotContext, event: object) -> None:
    """Log balance changes (and a periodic heartbeat) and session state changes."""
    if isinstance(event, BalanceEvent):
        key = (ctx.bot, event.account_id)
        now = time.monotonic()
        previous = _last.get(key)
        if (
            previous is None
            or previous[0] != event.available
            or now - previous[1] >= float(ctx.config["heartbeat"])
        ):
            _last[key] = (event.available, now)
            ctx.log.info(
                "balance account=%s available=%s equity=%s",
                ctx.alias_of(event.account_id),
                event.available,
                event.equity,
            )
    elif isinstance(event, ConnectionStateEvent):
        ctx.log.info(
            "session account=%s state=%s reason=%s",
            ctx.alias_of(event.account_id),
            event.state.value,
            event.reason,
        )
