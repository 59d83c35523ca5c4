"""Toy frames -> qfexbot events, pure: the live drivers and the replay driver share them.

The frames are those of the protocol in ``toyvenue.adapter``'s docstring. Every function raises
``qfexbot.core.venue.ParseError`` (with the raw frame) for what the protocol does not have.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from qfexbot.core.venue import ParseError
from qfexbot.events import BalanceEvent, BookEvent, Event, FillEvent, ResyncEvent

__all__ = [
    "BBO",
    "Reply",
    "balance_event",
    "load",
    "parse_private",
    "parse_public",
    "resync_events",
    "route",
]

BBO = "bbo"
"""The one market-data channel."""

_CONTROL_OPS = frozenset({"hello", "auth", "subscribed", "snapshot", "ack", "transferred", "error"})


@dataclass(frozen=True, slots=True)
class Reply:
    """A control message (hello, auth, subscribed, snapshot, ack, transferred, error)."""

    op: str
    body: Mapping[str, Any]


def load(frame: str | bytes) -> dict[str, Any]:
    """One frame as its JSON object (which has an ``op``)."""
    try:
        body = json.loads(frame)
    except ValueError:
        raise ParseError(frame, "not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("op"), str):
        raise ParseError(frame, "not an object with an op")
    return body


def _decimal(raw: Any, body: Mapping[str, Any], key: str) -> Decimal:
    value = body.get(key)
    if not isinstance(value, str):
        raise ParseError(raw, f"{key!r} is not a decimal string")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ParseError(raw, f"{key!r} is not a decimal: {value!r}") from None


def balance_event(body: Mapping[str, Any], venue: str, now: float) -> BalanceEvent:
    """A ``balance`` or ``snapshot`` frame's balance."""
    return BalanceEvent(
        venue=venue,
        account_id=str(body.get("account", "")),
        received_at=now,
        raw=body,
        available=_decimal(body, body, "available"),
        deposit=_decimal(body, body, "deposit"),
    )


def resync_events(body: Mapping[str, Any], venue: str, account_id: str, now: float) -> list[Event]:
    """What a session publishes for a ``snapshot`` reply: one ``ResyncEvent`` with its balance."""
    if body.get("account") != account_id:
        raise ParseError(body, f"snapshot of another account than {account_id}")
    balance = balance_event(body, venue, now)
    return [
        ResyncEvent(venue=venue, account_id=account_id, received_at=now, raw=body, balance=balance)
    ]


def _fill(frame: str | bytes, body: Mapping[str, Any], venue: str, now: float) -> FillEvent:
    side = body.get("side")
    if side not in ("buy", "sell"):
        raise ParseError(frame, f"unknown side {side!r}")
    return FillEvent(
        venue=venue,
        account_id=str(body["account"]),
        received_at=now,
        raw=body,
        trade_id=str(body.get("trade_id", "")),
        order_id=str(body.get("order_id", "")),
        client_order_id=str(body.get("client_order_id") or ""),
        symbol=str(body.get("symbol", "")),
        side=side.upper(),
        price=_decimal(frame, body, "price"),
        quantity=_decimal(frame, body, "quantity"),
        fee=_decimal(frame, body, "fee"),
    )


def parse_private(frame: str | bytes, venue: str, account_id: str, now: float) -> list[Any]:
    """A private session's frame: balance and fill frames of ``account_id`` as events, control
    messages as :class:`Reply`; a frame for another account is refused (it must not reach this
    account's bus)."""
    body = load(frame)
    op = body["op"]
    if op in _CONTROL_OPS:
        return [Reply(op, body)]
    if op not in ("balance", "fill"):
        raise ParseError(frame, f"unknown op {op!r}")
    if body.get("account") != account_id:
        raise ParseError(frame, f"{op} frame for another account than {account_id}")
    if op == "balance":
        try:
            return [balance_event(body, venue, now)]
        except ParseError as exc:
            raise ParseError(frame, exc.reason) from None
    return [_fill(frame, body, venue, now)]


def parse_public(frame: str | bytes, venue: str, now: float) -> list[Event]:
    """A public feed's ``bbo`` frame as a one-level ``BookEvent`` (``account_id=""``)."""
    body = load(frame)
    if body["op"] != BBO:
        raise ParseError(frame, f"unknown op {body['op']!r}")
    bid, ask = _decimal(frame, body, "bid"), _decimal(frame, body, "ask")
    return [
        BookEvent(
            venue=venue,
            account_id="",
            received_at=now,
            raw=body,
            symbol=str(body.get("symbol", "")),
            bids=((bid, _decimal(frame, body, "bid_size")),),
            asks=((ask, _decimal(frame, body, "ask_size")),),
            channel=BBO,
        )
    ]


def route(event: Event) -> tuple[str, str]:
    """The (channel, symbol) a public event is fanned out by."""
    return (BBO, getattr(event, "symbol", ""))
