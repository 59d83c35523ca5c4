"""Finery WebSocket frames -> qfexbot events (pure parsing plus the small state books need).

Feed traffic is ``[feed, feedId, action, data]``; request replies are JSON objects. A
:class:`FineryParser` turns one frame into a list of items: qfexbot events (``BookEvent``,
``OrderUpdateEvent``, ``FillEvent``, ``PositionEvent``, ``BalanceEvent``) and the venue-control
records defined here (status, feed error, unbind ack, request reply, reference data, any other
feed message). Amounts are 1e-8 integers converted exactly; a float anywhere is a ParseError.
See docs/venues/finery.md for the mapping.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from qfexbot.core.venue import ParseError as _BaseParseError
from qfexbot.errors import VenueError
from qfexbot.events import (
    BalanceEvent,
    BookEvent,
    Event,
    FillEvent,
    OrderUpdateEvent,
    PositionEvent,
    SettlementEvent,
)
from qfexbot.venues.finery.config import BOOK_FEEDS
from qfexbot.venues.finery.numbers import from_units

__all__ = [
    "CANCEL_REASONS",
    "ERROR_MESSAGES",
    "ORDER_TYPES",
    "TAKER_ORDER_TYPES",
    "Book",
    "Bound",
    "FeedError",
    "FeedMessage",
    "FineryError",
    "FineryParser",
    "ParseError",
    "ReferenceData",
    "RequestReply",
    "StatusMessage",
    "Unbound",
    "decode",
    "error_message",
    "events_only",
    "feed_key",
]

ERROR_MESSAGES: dict[int, str] = {
    0: "ok",
    1: "not implemented",
    2: "not connected (venue backend down)",
    3: "not authorised (the key lacks this permission)",
    4: "already authorised",
    5: "invalid password",
    6: "invalid nonce",
    7: "invalid timestamp",
    8: "API method not available",
    9: "API method parameter is invalid",
    10: "internal error",
    11: "invalid MFA code",
    12: "MFA not enabled",
    13: "user agreement not signed",
    14: "invalid signature",
    15: "link expired",
    23: "invalid currency name",
    26: "currency not found",
    28: "invalid currency type",
    31: "invalid instrument name",
    34: "instrument not found",
    36: "instrument forbidden (not whitelisted by a counterparty)",
    42: "invalid client name",
    45: "client not found",
    50: "invalid limit flags",
    51: "invalid limit net limit",
    52: "invalid limit gross limit",
    53: "limit not found",
    54: "limit clients are identical",
    55: "limit client types are identical",
    61: "invalid settlement size",
    64: "settlement not found",
    65: "settlement order is from a transaction",
    70: "invalid order size",
    71: "invalid order price",
    72: "invalid order flags",
    73: "order type not allowed",
    74: "client order id already in use",
    75: "add failed: post-only order would cross",
    76: "add failed: IOC found no orders to match",
    77: "add failed: FOK found not enough liquidity",
    78: "add failed: self-trade prevention",
    79: "add failed: limits",
    80: "del failed: order not found",
    81: "either volume or size should be specified",
    82: "orders by volume are not supported for makers",
    83: "invalid order volume",
    84: "trading not allowed",
    85: "no open positions in order currencies",
    90: "mod failed: no size left after decrement",
    91: "mod failed: side mismatch",
    100: "binding already exists (feed already bound)",
    101: "binding not found (feed was not bound)",
    102: "invalid feed name",
    103: "invalid feed id",
    104: "database out of sync",
    110: "field required",
    111: "field invalid",
    120: "max number of keys reached",
    121: "key not found",
}

ORDER_TYPES: dict[int, str] = {
    0: "limit",
    1: "postOnly",
    2: "limitIOC",
    3: "limitFOK",
    4: "marketIOC",
    5: "marketFOK",
    6: "manualTrade",
    7: "pendingLimit",
    9: "rfq",
}
TAKER_ORDER_TYPES = frozenset({2, 3, 4, 5})
CANCEL_REASONS: dict[int, str] = {
    0: "in place or filled",
    1: "cancelled by client",
    2: "remainder cancelled (non-book order)",
    3: "self-trade prevention",
    4: "cancel-on-disconnect",
}
# qfexbot's venue-neutral order vocabulary (as QFEX uses it): type and time in force.
_ORDER_STYLE: dict[int, tuple[str, str]] = {
    0: ("LIMIT", "GTC"),
    1: ("ALO", "GTC"),
    2: ("LIMIT", "IOC"),
    3: ("LIMIT", "FOK"),
    4: ("MARKET", "IOC"),
    5: ("MARKET", "FOK"),
}
_SIDES = {0: "BUY", 1: "SELL"}


def error_message(code: int) -> str:
    """Operator-readable text of a Finery error code."""
    if 20 <= code <= 28 and code not in ERROR_MESSAGES:
        return f"currency error {code}"
    if 30 <= code <= 36 and code not in ERROR_MESSAGES:
        return f"instrument error {code}"
    return ERROR_MESSAGES.get(code, f"error {code}")


class ParseError(_BaseParseError):
    """A frame that does not match the protocol; ``raw`` is the frame as received."""


class FineryError(VenueError):
    """The venue answered a request or bind with a non-zero error code."""

    def __init__(
        self, code: int, *, method: str = "", param: str | None = None, detail: Any = None
    ) -> None:
        text = f"Finery error {code}: {error_message(code)}"
        if method:
            text = f"{method}: {text}"
        if param:
            text += f" (parameter {param!r})"
        super().__init__(text)
        self.code = code
        self.method = method
        self.param = param
        self.detail = detail


def decode(data: str | bytes) -> Any:
    """JSON text -> Python; big integers stay exact ints, a float is refused."""

    def no_float(text: str) -> Any:
        raise ParseError(data, f"non-integer number {text!r} (Finery numbers are integers)")

    try:
        # NaN/Infinity are refused like any other float; deep nesting is not JSON we accept.
        return json.loads(data, parse_float=no_float, parse_constant=no_float)
    except ParseError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ParseError(data, f"not JSON: {type(exc).__name__}: {exc}"[:300]) from None


def feed_key(feed_id: Any) -> str:
    """A hashable, canonical key of a feedId (name, number or object)."""
    return json.dumps(feed_id, sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------- control records


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """``['X', 0, 'Z', code]``: 0 = venue backend connected; anything else = bindings lost."""

    code: int
    raw: Any = field(default=None, repr=False, compare=False)

    @property
    def connected(self) -> bool:
        return self.code == 0

    @property
    def message(self) -> str:
        return error_message(self.code)


@dataclass(frozen=True, slots=True)
class FeedError:
    """``[feed, feedId, 'Z', code]``: a bind, unbind or feed failed."""

    feed: str
    feed_id: Any
    code: int
    raw: Any = field(default=None, repr=False, compare=False)

    @property
    def message(self) -> str:
        return f"feed {self.feed} {self.feed_id!r}: {error_message(self.code)} (code {self.code})"


@dataclass(frozen=True, slots=True)
class Bound:
    """A feed's snapshot arrived (the venue's bind acknowledgement); its events precede it."""

    feed: str
    feed_id: Any
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Unbound:
    """``[feed, feedId, 'U', 0]``: an unbind was acknowledged."""

    feed: str
    feed_id: Any
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class RequestReply:
    """Reply to a WS ``request`` (or the legacy ``auth``): ``error`` 0 means success."""

    req_id: int | None
    reply: Any
    error: int = 0
    param: str | None = None
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class ReferenceData:
    """Currencies and instruments known so far (after an ``I`` snapshot or a ``C``/``I`` update)."""

    currencies: dict[str, tuple[Any, ...]]
    instruments: dict[str, tuple[Any, ...]]
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class FeedMessage:
    """A feed message qfexbot does not map to events (settlements, legacy feeds, ...)."""

    feed: str
    feed_id: Any
    action: str
    data: Any
    raw: Any = field(default=None, repr=False, compare=False)


Control = StatusMessage | FeedError | Bound | Unbound | RequestReply | ReferenceData | FeedMessage


# --------------------------------------------------------------------------- order books


class Book:
    """One side-pair of price levels maintained from snapshots and ``+``/``M``/``-``/``~`` updates.

    Prices and sizes are kept as the venue's integers; :meth:`levels` converts.
    """

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    def apply_snapshot(self, data: Any) -> None:
        """``[[bid level...], [ask level...]]`` replaces the whole book."""
        bids, asks = _pair(data, "book snapshot")
        self.bids = {_int(p): _int(s) for p, s in (_level(x) for x in bids)}
        self.asks = {_int(p): _int(s) for p, s in (_level(x) for x in asks)}

    def apply_updates(self, data: Any) -> None:
        """``[[bid update...], [ask update...]]`` where an update is ``[action, price, size]``."""
        bids, asks = _pair(data, "book update")
        for updates, levels, is_bid in ((bids, self.bids, True), (asks, self.asks, False)):
            for update in updates:
                if not isinstance(update, list) or len(update) != 3:
                    raise ValueError(f"book update must be [action, price, size]: {update!r}")
                action, price, size = update[0], _int(update[1]), _int(update[2])
                if action in ("+", "M"):
                    levels[price] = size
                elif action == "-":
                    levels.pop(price, None)
                elif action == "~":
                    # Drop levels from the top down to `price`; [price, size] is the new top.
                    for level in list(levels):
                        if (level > price) if is_bid else (level < price):
                            del levels[level]
                    if price == 0 and size == 0:
                        levels.clear()
                    elif size > 0:
                        levels[price] = size
                    else:
                        levels.pop(price, None)
                else:
                    raise ValueError(f"unknown book update action {action!r}")

    def levels(
        self, depth: int | None = None
    ) -> tuple[tuple[tuple[Decimal, Decimal], ...], tuple[tuple[Decimal, Decimal], ...]]:
        """``(bids, asks)`` best first, as Decimals."""
        bids = sorted(self.bids.items(), key=lambda kv: -kv[0])[:depth]
        asks = sorted(self.asks.items())[:depth]
        return _decimal_levels(bids), _decimal_levels(asks)


def _decimal_levels(items: list[tuple[int, int]]) -> tuple[tuple[Decimal, Decimal], ...]:
    return tuple((from_units(price), from_units(size)) for price, size in items)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _level(value: Any) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) < 2:
        raise ValueError(f"book level must be [price, size]: {value!r}")
    return value[0], value[1]


def _pair(data: Any, what: str) -> tuple[list[Any], list[Any]]:
    if not isinstance(data, list) or len(data) != 2 or not all(isinstance(x, list) for x in data):
        raise ValueError(f"{what} must be [[bids], [asks]]")
    return data[0], data[1]


_SETTLEMENT_ACTIONS = {
    "S": "snapshot",
    "+": "added",
    "M": "modified",
    "D": "committed",
    "-": "removed",
}
"""Settlement feed actions -> ``SettlementEvent.action``."""


# --------------------------------------------------------------------------- the parser

_BOOK_CHANNELS = {feed: channel for channel, feed in BOOK_FEEDS.items()}
"""Book feed -> the ``BookEvent.channel`` (the bots.toml channel that binds it)."""


class FineryParser:
    """Frame -> events and control records for one connection of one account.

    Holds what the protocol makes stateful: books (updates apply to a snapshot), reference data
    (numeric instrument ids) and positions (events carry the net per currency across all
    counterparties; the per-counterparty rows stay on ``raw``).

    Args:
        venue: venue name to stamp on events (the bots.toml venue name).
        account_id: the Finery client id of this connection, as text.
        clock: receive-time source (default ``time.time``).
    """

    def __init__(
        self, venue: str, account_id: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.venue = venue
        self.account_id = account_id
        self._clock = clock
        self.books: dict[tuple[str, str], Book] = {}
        self._book_seq: dict[tuple[str, str], int] = {}
        self.currencies: dict[str, tuple[Any, ...]] = {}
        self.instruments: dict[str, tuple[Any, ...]] = {}
        self._instrument_names: dict[int, str] = {}
        self.positions: dict[tuple[str, int], int] = {}
        self._now: float | None = None

    def _clock_now(self) -> float:
        return self._now if self._now is not None else self._clock()

    # -- entry points

    def parse(self, data: str | bytes, now: float | None = None) -> list[Event | Control]:
        """Decode and interpret one frame (``now`` = receive time, default the clock).

        A feed snapshot yields its events followed by a :class:`Bound` record.

        Raises:
            ParseError: not JSON, a float, an unknown shape or inconsistent data.
        """
        message = decode(data)
        try:
            return self.interpret(message, now)
        except ParseError:
            raise
        except (
            ValueError,
            TypeError,
            IndexError,
            KeyError,
            AttributeError,
            ArithmeticError,
            RecursionError,
        ) as exc:
            raise ParseError(data, str(exc)[:300] or type(exc).__name__) from None

    def interpret(self, message: Any, now: float | None = None) -> list[Event | Control]:
        """Interpret an already-decoded frame (see :meth:`parse`)."""
        self._now = now
        if isinstance(message, dict):
            return [self._object(message)]
        if not isinstance(message, list) or len(message) != 4 or not isinstance(message[0], str):
            raise ValueError("a feed message must be [feed, feedId, action, data]")
        feed, feed_id, action, payload = message
        if not isinstance(action, str):
            raise ValueError(f"action must be a string, got {action!r}")
        if feed == "X":
            if action != "Z":
                raise ValueError(f"status message with action {action!r}")
            return [StatusMessage(_code(payload), raw=message)]
        if action == "Z":
            return [FeedError(feed, feed_id, _code(payload), raw=message)]
        if action == "U":
            self.forget(feed, feed_id)
            return [Unbound(feed, feed_id, raw=message)]
        handler = {
            "B": self._book,
            "F": self._book,
            "MD": self._book,
            "O": self._orders,
            "K": self._positions,
            "L": self._limits,
            "S": self._settlement_orders,
            "R": self._settlement_lists,
            "N": self._settlement_lists,
            "I": self._reference,
            "C": self._reference,
        }.get(feed)
        if handler is None:
            items = [FeedMessage(feed, feed_id, action, payload, raw=message)]
        else:
            items = handler(feed, feed_id, action, payload, message)
        if action == "S":
            items.append(Bound(feed, feed_id, raw=message))
        return items

    def forget(self, feed: str, feed_id: Any) -> None:
        """Drop state of a feed (it was unbound, or bindings were lost)."""
        key = (feed, feed_key(feed_id))
        self.books.pop(key, None)
        self._book_seq.pop(key, None)

    def reset(self) -> None:
        """Drop all feed state (the connection or the venue backend went away)."""
        self.books.clear()
        self._book_seq.clear()

    def instrument_name(self, ident: Any) -> str:
        """Instrument name of a feedId: a name, a numeric id (if ``I`` was seen), or an object."""
        if isinstance(ident, dict):
            ident = ident.get("instrument", "")
        if isinstance(ident, int) and not isinstance(ident, bool):
            return self._instrument_names.get(ident, str(ident))
        return str(ident)

    # -- objects (request replies, auth replies, pongs)

    def _object(self, obj: dict[str, Any]) -> RequestReply:
        error = obj.get("error", 0)
        reply = obj.get("reply")
        if isinstance(reply, dict) and reply.get("error"):
            error = reply["error"]  # mod's special form: {"reply": {"error": 74, ...}}
        req_id = obj.get("reqId")
        if req_id is not None:
            req_id = _int(req_id)
        return RequestReply(req_id, reply, _code(error or 0), obj.get("param"), raw=obj)

    # -- books

    def _book(
        self, feed: str, feed_id: Any, action: str, payload: Any, raw: Any
    ) -> list[Event | Control]:
        key = (feed, feed_key(feed_id))
        if action == "S":
            book = self.books.setdefault(key, Book())
            book.apply_snapshot(payload)
        elif action == "M":
            book = self.books.get(key)
            if book is None:
                raise ValueError(f"book update for {feed} {feed_id!r} before its snapshot")
            book.apply_updates(payload)
        else:
            return [FeedMessage(feed, feed_id, action, payload, raw=raw)]
        seq = self._book_seq[key] = self._book_seq.get(key, 0) + 1
        bids, asks = book.levels()
        return [
            BookEvent(
                venue=self.venue,
                account_id=self._account_for(feed_id),
                received_at=self._clock_now(),
                raw=raw,
                symbol=self.instrument_name(feed_id),
                bids=bids,
                asks=asks,
                sequence=seq,
                channel=_BOOK_CHANNELS[feed],
            )
        ]

    def _account_for(self, feed_id: Any) -> str:
        # A master binding on behalf of a sub-account: the events belong to that sub-account.
        if isinstance(feed_id, dict) and isinstance(feed_id.get("clientId"), int):
            return str(feed_id["clientId"])
        return self.account_id

    # -- orders and deals

    def _orders(
        self, feed: str, feed_id: Any, action: str, payload: Any, raw: Any
    ) -> list[Event | Control]:
        now = self._clock_now()
        if action == "S":
            return [self._order_event(o, "ACK", now, raw) for o in _list(payload, "orders")]
        if action == "+":
            return [self._order_event(payload, "ACK", now, raw)]
        if action == "-":
            reason = _int(payload[3])
            if reason == 0 and _int(payload[8]) == 0:
                return []  # fully filled: the last 'D' already reported the terminal FILLED
            status = "CANCELLED_STP" if reason == 3 else "CANCELLED"
            return [self._order_event(payload, status, now, raw, terminal=True)]
        if action == "D":
            return self._deal(payload, now, raw)
        return [FeedMessage(feed, feed_id, action, payload, raw=raw)]

    def _order_event(
        self,
        order: Any,
        status: str,
        now: float,
        raw: Any,
        *,
        terminal: bool = False,
        trade_id: str | None = None,
        update_time: float | None = None,
    ) -> OrderUpdateEvent:
        if not isinstance(order, list) or len(order) < 10:
            raise ValueError(f"order must have at least 10 fields: {order!r}")
        order_type = _int(order[1])
        style, tif = _ORDER_STYLE.get(
            order_type, (ORDER_TYPES.get(order_type, str(order_type)), "GTC")
        )
        return OrderUpdateEvent(
            venue=self.venue,
            account_id=self.account_id,
            received_at=now,
            raw=raw,
            order_id=str(_int(order[4])),
            client_order_id=_client_order_id(order[5]),
            symbol=str(order[0]),
            status=status,
            side=_side(order[2]),
            order_type=style,
            time_in_force=tif,
            price=from_units(_int(order[6])),
            quantity=from_units(_int(order[7])),
            remaining=from_units(_int(order[8])),
            trade_id=trade_id,
            update_time=update_time if update_time is not None else _int(order[9]) / 1000,
            terminal=terminal,
        )

    def _deal(self, deal: Any, now: float, raw: Any) -> list[Event | Control]:
        if not isinstance(deal, list) or len(deal) < 19:
            raise ValueError(f"deal must have at least 19 fields, got {deal!r}")
        order_type = _int(deal[1])
        left = _int(deal[8])
        moment = _int(deal[10]) / 1000
        trade_id = str(_int(deal[11]))
        fill = FillEvent(
            venue=self.venue,
            account_id=self.account_id,
            received_at=now,
            raw=raw,
            trade_id=trade_id,
            order_id=str(_int(deal[4])),
            client_order_id=_client_order_id(deal[5]),
            symbol=str(deal[0]),
            side=_side(deal[2]),
            price=from_units(_int(deal[13])),
            quantity=from_units(_int(deal[14])),
            is_taker=order_type in TAKER_ORDER_TYPES,
            remaining=from_units(left),
            timestamp=moment,
        )
        order = self._order_event(
            deal, "FILLED", now, raw, terminal=left == 0, trade_id=trade_id, update_time=moment
        )
        return [order, fill]

    # -- positions

    def _positions(
        self, feed: str, feed_id: Any, action: str, payload: Any, raw: Any
    ) -> list[Event | Control]:
        touched: set[str] = set()
        if action == "S":
            rows = payload
            if isinstance(payload, list) and payload and isinstance(payload[0], int):
                rows = payload[1]  # older shape: [nextId, [position...]]
            touched.update(currency for currency, _ in self.positions)
            self.positions.clear()
            for row in _list(rows, "positions"):
                currency, value, cp = _position(row)
                self.positions[(currency, cp)] = value
                touched.add(currency)
        elif action in ("+", "M", "-"):
            currency, value, cp = _position(payload)
            if action == "-":
                self.positions.pop((currency, cp), None)
            else:
                self.positions[(currency, cp)] = value
            touched.add(currency)
        else:
            return [FeedMessage(feed, feed_id, action, payload, raw=raw)]
        now = self._clock_now()
        return [
            PositionEvent(
                venue=self.venue,
                account_id=self.account_id,
                received_at=now,
                raw=raw,
                symbol=currency,
                size=self.net_position(currency),
                by_counterparty=tuple(
                    (str(cp), from_units(v))
                    for (c, cp), v in sorted(self.positions.items())
                    if c == currency
                ),
            )
            for currency in sorted(touched)
        ]

    def net_position(self, currency: str) -> Decimal:
        """Net position in ``currency`` across all counterparties."""
        return from_units(sum(v for (c, _), v in self.positions.items() if c == currency))

    # -- settlements (S orders, R requests, N transactions)

    def _settlement(self, raw: Any, **fields: Any) -> SettlementEvent:
        return SettlementEvent(
            venue=self.venue, account_id=self.account_id, received_at=self._clock_now(), raw=raw,
            **fields,
        )  # fmt: skip

    def _settlement_orders(
        self, feed: str, feed_id: Any, action: str, payload: Any, raw: Any
    ) -> list[Event | Control]:
        """``S``: settlement orders, objects (current) or arrays (legacy, one per update)."""
        if action not in _SETTLEMENT_ACTIONS:
            return [FeedMessage(feed, feed_id, action, payload, raw=raw)]
        rows = _list(payload, "settlement orders")
        if rows and not isinstance(rows[0], (list, dict)):
            rows = [rows]  # legacy: a single array per update
        events: list[Event | Control] = []
        for row in rows:
            if isinstance(row, dict):
                order_id, cp = row["settlementOrderId"], row["counterpartyId"]
                legs = tuple(row.get(k) for k in ("currency1", "size1", "currency2", "size2"))
                comment = str(row.get("comment") or "")
            else:
                order_id, cp, comment = row[0], row[6], ""
                legs = (row[1], row[3], row[2], row[4])
            currency1, size1, currency2, size2 = legs  # the client pays 1, is paid 2
            pay, get = (currency1, size1 or 0), (currency2 or "", size2 or 0)
            direction = "outgoing" if _int(pay[1]) != 0 or not get[0] else "incoming"
            first, second = (pay, get) if direction == "outgoing" else (get, pay)
            events.append(
                self._settlement(
                    raw,
                    record="order",
                    action=_SETTLEMENT_ACTIONS[action],
                    settlement_id=str(_int(order_id)),
                    counterparty=str(_int(cp)),
                    currency=str(first[0] or ""),
                    amount=from_units(_int(first[1])),
                    direction=direction,
                    counter_currency=str(second[0] or ""),
                    counter_amount=from_units(_int(second[1])),
                    comment=comment,
                    committed=action == "D",
                )
            )
        return events

    def _settlement_lists(
        self, feed: str, feed_id: Any, action: str, payload: Any, raw: Any
    ) -> list[Event | Control]:
        """``R`` requests / ``N`` transactions: ``[[incoming...], [outgoing...]]`` (an ``N``
        snapshot has a reserved number first)."""
        if action not in _SETTLEMENT_ACTIONS:
            return [FeedMessage(feed, feed_id, action, payload, raw=raw)]
        lists = _list(payload, f"{feed} payload")
        if feed == "N" and len(lists) == 3 and not isinstance(lists[0], list):
            lists = lists[1:]
        incoming, outgoing = _pair(lists, f"{feed} payload")
        events: list[Event | Control] = []
        for direction, rows in (("incoming", incoming), ("outgoing", outgoing)):
            for row in rows:
                if not isinstance(row, list) or len(row) < 5:
                    raise ValueError(f"{feed} row too short: {row!r}")
                if feed == "R":  # [cp, currency, flags, amount, comment, expiry, network, id, ts]
                    ident, amount = (row[7] if len(row) > 7 else None), row[3]
                else:  # [cp, currency, amount, orderId, comment, ..., 10 transactionId, ...]
                    ident, amount = (row[10] if len(row) > 10 else None), row[2]
                events.append(
                    self._settlement(
                        raw,
                        record="request" if feed == "R" else "transaction",
                        action=_SETTLEMENT_ACTIONS[action],
                        settlement_id="" if ident is None else str(_int(ident)),
                        counterparty=str(_int(row[0])),
                        currency=str(row[1]),
                        amount=from_units(_int(amount)),
                        direction=direction,
                        comment=str(row[4] or ""),
                        committed=action == "D",
                    )
                )
        return events

    def settlement_reply(self, method: str, reply: Any) -> list[SettlementEvent]:
        """A ``settlementTransactions`` / ``settlementRequests`` reply as ``SettlementEvent`` s
        (``action="snapshot"``), e.g. to find a transaction by the comment it was sent with.

        Raises:
          ValueError: the reply is not ``[[incoming...], [outgoing...]]`` of valid rows.
        """
        feed = {"settlementTransactions": "N", "settlementRequests": "R"}[method]
        items = self._settlement_lists(feed, 0, "S", reply, reply)
        return [e for e in items if isinstance(e, SettlementEvent)]

    # -- limits

    def _limits(
        self, feed: str, feed_id: Any, action: str, payload: Any, raw: Any
    ) -> list[Event | Control]:
        if action == "S":
            rows = _list(payload, "limits")
        elif action in ("+", "M", "-"):
            rows = [payload]
        else:
            return [FeedMessage(feed, feed_id, action, payload, raw=raw)]
        now = self._clock_now()
        events: list[Event | Control] = []
        for row in rows:
            headroom = _limit_headroom(row)
            if headroom is None:
                continue
            currency, available, equity, counterparty = headroom
            if action == "-":
                available = equity = Decimal(0)
            events.append(
                BalanceEvent(
                    venue=self.venue,
                    account_id=self.account_id,
                    received_at=now,
                    raw=raw,
                    available=available,
                    deposit=equity,
                    currency=currency,
                    counterparty=counterparty,
                )
            )
        return events

    # -- reference data

    def _reference(
        self, feed: str, feed_id: Any, action: str, payload: Any, raw: Any
    ) -> list[Event | Control]:
        if feed == "I" and action == "S":
            currencies, instruments = _pair(payload, "I snapshot")
            self.currencies = {str(c[0]): tuple(c) for c in currencies}
            self.instruments = {}
            self._instrument_names = {}
            for row in instruments:
                self._add_instrument(row)
        elif action in ("+", "M", "-"):
            if not isinstance(payload, list) or not payload:
                raise ValueError(f"{feed} update must be an array")
            if feed == "C":
                if action == "-":
                    self.currencies.pop(str(payload[0]), None)
                else:
                    self.currencies[str(payload[0])] = tuple(payload)
            elif action == "-":
                self.instruments.pop(str(payload[0]), None)
                self._instrument_names = {
                    i: n for i, n in self._instrument_names.items() if n != payload[0]
                }
            else:
                self._add_instrument(payload)
        else:
            return [FeedMessage(feed, feed_id, action, payload, raw=raw)]
        return [ReferenceData(dict(self.currencies), dict(self.instruments), raw=raw)]

    def _add_instrument(self, row: Any) -> None:
        if not isinstance(row, list) or len(row) < 4:
            raise ValueError(f"instrument must be [name, id, asset, balance]: {row!r}")
        self.instruments[str(row[0])] = tuple(row)
        self._instrument_names[_int(row[1])] = str(row[0])


def _code(value: Any) -> int:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]  # the code sometimes arrives wrapped as [code]
    return _int(value)


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what} must be an array")
    return value


def _side(value: Any) -> str:
    try:
        return _SIDES[_int(value)]
    except KeyError:
        raise ValueError(f"unknown side {value!r}") from None


def _client_order_id(value: Any) -> str:
    return "" if value in (0, None) else str(_int(value))


def _position(row: Any) -> tuple[str, int, int]:
    if not isinstance(row, list) or len(row) < 3:
        raise ValueError(f"position must be [currency, value, counterpartyId, ...]: {row!r}")
    return str(row[0]), _int(row[1]), _int(row[2])


def _limit_headroom(row: Any) -> tuple[str, Decimal, Decimal, str] | None:
    """``(currency, grossLimit - utilisation, equity, counterparty id)`` of one limit row in
    any generation."""
    if isinstance(row, dict):
        own = row.get("ownLimit")
        if not isinstance(own, dict):
            return None
        gross, used = _int(own.get("grossLimit", 0)), _int(own.get("limitUtilization", 0))
        return (
            str(own.get("asset", "")),
            from_units(gross - used),
            from_units(_int(own.get("equity", 0))),
            str(_int(row.get("counterpartyId", 0))),
        )
    if isinstance(row, list) and len(row) >= 12 and isinstance(row[0], int):
        headroom = from_units(_int(row[2]) - _int(row[5]))
        return str(row[1]), headroom, from_units(_int(row[9])), str(row[0])
    if isinstance(row, list) and len(row) >= 7 and isinstance(row[0], str):
        return str(row[0]), from_units(_int(row[2]) - _int(row[4])), Decimal(0), str(_int(row[6]))
    raise ValueError(f"unknown limit shape: {row!r}")


def events_only(items: Iterable[Event | Control]) -> list[Event]:
    """The qfexbot events among parsed items."""
    return [item for item in items if isinstance(item, Event)]
