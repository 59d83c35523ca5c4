"""Example plugin: logs top-of-book imbalance of the bot's market-data symbols, and its fills.

Venue-neutral: it only reads ``BookEvent`` and ``FillEvent``, so the same plugin runs on QFEX
(``level2`` from the public feed) and on Finery (the ``F`` tradable book) with only bots.toml
changed. Imbalance = (bid size - ask size) / (bid size + ask size) over the top ``depth``
levels: +1 means only bids, -1 only asks.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import ClassVar

from qfexbot import BookEvent, BotContext, Field, FillEvent, hookimpl

_PLACES = Decimal("0.0001")


def imbalance(
    bids: tuple[tuple[Decimal, Decimal], ...], asks: tuple[tuple[Decimal, Decimal], ...], depth: int
) -> tuple[Decimal, Decimal, Decimal] | None:
    """``(bid size, ask size, imbalance)`` over the top ``depth`` levels; None if both empty."""
    bid = sum((size for _, size in bids[:depth]), Decimal(0))
    ask = sum((size for _, size in asks[:depth]), Decimal(0))
    if bid + ask == 0:
        return None
    return bid, ask, ((bid - ask) / (bid + ask)).quantize(_PLACES)


class BookImbalance:
    """One log line per book update of each symbol (at most one per ``min_interval``)."""

    config_schema: ClassVar[dict[str, Field]] = {
        "depth": Field("positive_int", default=5, doc="levels per side to sum"),
        "min_interval": Field(
            "duration",
            default=5.0,
            doc="seconds between two lines of one symbol (0 = every update)",
        ),
    }

    def __init__(self, config) -> None:
        self.config = config
        self._last_logged: dict[str, float] = {}

    @hookimpl
    def qfexbot_event(self, ctx: BotContext, event: object) -> None:
        """Log book imbalance (rate-limited per symbol) and every fill."""
        if isinstance(event, BookEvent):
            now = time.monotonic()
            last = self._last_logged.get(event.symbol)
            if last is not None and now - last < float(self.config["min_interval"]):
                return
            result = imbalance(event.bids, event.asks, int(self.config["depth"]))
            if result is None:
                return
            self._last_logged[event.symbol] = now
            bid, ask, value = result
            best_bid = event.bids[0][0] if event.bids else None
            best_ask = event.asks[0][0] if event.asks else None
            ctx.log.info(
                "imbalance symbol=%s imbalance=%s bid_size=%s ask_size=%s best_bid=%s best_ask=%s",
                event.symbol,
                value,
                bid,
                ask,
                best_bid,
                best_ask,
            )
        elif isinstance(event, FillEvent):
            ctx.log.info(
                "fill account=%s symbol=%s side=%s quantity=%s price=%s",
                ctx.alias_of(event.account_id),
                event.symbol,
                event.side,
                event.quantity,
                event.price,
            )
