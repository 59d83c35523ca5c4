"""QFEX wire format: pure functions from frames to events or control messages, and back.

Each parse function decodes the frame once (twice if the typed fast path below refuses it) and
builds events directly (this is the hot path).
Every documented reply variant is accepted (protocol §2, §3, §6): both auth-success shapes,
nested and flat error frames, ``ack``/``ack_response``, both user-trades replies, leverage
rows with ``leverage`` as a string or a number and ``max_notional`` or ``max_position``, times as
Unix seconds or RFC 3339 strings, the legacy
``v4_balances``/``v4_positions``/``balance_update``/``position_update`` envelope, JSON arrays of
messages, and numbers sent as strings. Floats become ``Decimal(str(x))``. Anything malformed
raises :class:`ParseError` carrying the raw frame, never another exception type.

JSON is decoded with ``msgspec`` (2-3x faster than ``json``, exact big integers); a frame msgspec
refuses (``NaN``, ``1e400``, an escaped lone surrogate, a BOM) is decoded again with ``json``, so
the result is what ``json.loads`` gives. (orjson is faster still, but turns integers beyond 64
bits into floats, which would change amounts.) The frequent messages (order, fill, position and
balance responses; level2, bbo, trade and mark_price) are first decoded straight into typed
msgspec Structs, another 1.5-2x; whatever those refuse takes the general path, whose results
(events and ParseError reasons) are the only ones there are.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from qfexbot.core.records import LeverageLevel, OpenOrders, TwapInfo, UserTrade
from qfexbot.core.venue import ParseError
from qfexbot.events import (
    BalanceEvent,
    BookEvent,
    CandleEvent,
    Event,
    FillEvent,
    FundingRateEvent,
    MarketStatsEvent,
    MarkPriceEvent,
    OpenInterestEvent,
    OrderUpdateEvent,
    PositionEvent,
    PriceBandEvent,
    ResyncEvent,
    StopOrderEvent,
    TradeEvent,
    TwapEvent,
    UnderlierEvent,
)

__all__ = [
    "Ack",
    "AuthResult",
    "Control",
    "ErrorFrame",
    "LeverageLevels",
    "OrdersSnapshot",
    "ParseError",
    "Reply",
    "Subscribed",
    "TradesSnapshot",
    "Unsubscribed",
    "encode_json",
    "is_terminal",
    "leverage_level",
    "parse_mds_frame",
    "parse_positions_snapshot",
    "parse_trade_frame",
    "socket_trade",
    "twap_info",
]

_ZERO = Decimal(0)


_fast_loads = msgspec.json.Decoder().decode


def _loads(data: str | bytes) -> Any:
    """``json.loads(data)``, via msgspec when it accepts the document."""
    try:
        return _fast_loads(data)
    except msgspec.DecodeError:
        return json.loads(data)


# ---------------------------------------------------------------- control messages


@dataclass(frozen=True, slots=True)
class Control:
    """A non-event message from the trade socket (replies, acks, errors)."""

    raw: Any = field(default=None, repr=False, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class AuthResult(Control):
    """``{"authenticated": bool}`` or the older ``{"type":"auth","result":"success"}``."""

    ok: bool


@dataclass(frozen=True, slots=True)
class Subscribed(Control):
    """Subscription ack for one channel."""

    channel: str


@dataclass(frozen=True, slots=True)
class Unsubscribed(Control):
    """Unsubscription ack for one channel."""

    channel: str


@dataclass(frozen=True, slots=True)
class ErrorFrame(Control):
    """An ``err`` frame (nested) or the older flat ``{"type":"error",...}`` form."""

    code: str
    message: str
    incoming: Any = None

    @property
    def incoming_type(self) -> str:
        """The ``type`` of the command the venue is complaining about, if it echoed it."""
        if isinstance(self.incoming, dict):
            return str(self.incoming.get("type", ""))
        return ""


@dataclass(frozen=True, slots=True)
class Ack(Control):
    """``{"ack":{"incoming_message":...}}`` or ``{"ack_response": true}``."""

    incoming: Any = None
    ok: bool = True


@dataclass(frozen=True, slots=True)
class OrdersSnapshot(Control):
    """Reply to get_user_orders (``all_orders_response``): open orders, active TWAPs and stop
    orders (not live updates)."""

    orders: tuple[OrderUpdateEvent, ...]
    twaps: tuple[TwapInfo, ...] = ()
    stop_orders: tuple[StopOrderEvent, ...] = ()

    def open_orders(self) -> OpenOrders:
        """The snapshot as the venue-neutral :class:`~qfexbot.core.records.OpenOrders`."""
        return OpenOrders(
            orders=self.orders, twaps=self.twaps, stop_orders=self.stop_orders, raw=self.raw
        )


@dataclass(frozen=True, slots=True)
class TradesSnapshot(Control):
    """Reply to get_user_trades (either documented shape), as fills and as trade records."""

    fills: tuple[FillEvent, ...]
    trades: tuple[UserTrade, ...] = ()


@dataclass(frozen=True, slots=True)
class LeverageLevels(Control):
    """Reply to get_user_leverage or get_available_leverage_levels; ``reply`` is which."""

    reply: str
    levels: tuple[LeverageLevel, ...]


@dataclass(frozen=True, slots=True)
class Reply(Control):
    """Any other well-formed reply (a kind not known yet, or a ``type``-tagged message)."""

    kind: str
    payload: Any = None


# ---------------------------------------------------------------- value helpers


# Decimal is immutable and ``Decimal(repr(x))`` / ``Decimal(s)`` depend only on ``x`` / ``s``,
# so converted floats and numeric strings are memoised (prices, sizes and zero fees repeat from
# frame to frame). Equal floats have equal reprs except 0.0 and -0.0, which have constants.
# Only finite results are stored; a cache is emptied when it reaches _DEC_CACHE_MAX.
_DEC_CACHE_MAX = 4096
_FLOAT_ZERO = Decimal("0.0")
_FLOAT_NEG_ZERO = Decimal("-0.0")


class _DecimalCache(dict):
    """Decimals by float or by numeric string: a hit is one C-level lookup, a miss converts
    (``Decimal(repr(x))`` / ``Decimal(s)``), refuses non-finite results and stores the rest."""

    __slots__ = ()

    def __missing__(self, value: float | str) -> Decimal:
        result = Decimal(repr(value) if type(value) is float else value)
        if not result.is_finite():
            raise ValueError(f"non-finite number {value!r}")
        if len(self) >= _DEC_CACHE_MAX:
            self.clear()
        self[value] = result
        return result


_FLOAT_DEC = _DecimalCache()
"""Non-zero floats only: 1 == 1.0 and 0.0 == -0.0 as keys, but each converts differently."""
_STR_DEC = _DecimalCache()


def _dec(value: Any) -> Decimal:
    """A JSON number or numeric string as Decimal (floats via ``str``); ``None`` is zero."""
    kind = type(value)
    if kind is float:
        if value:
            return _FLOAT_DEC[value]
        return _FLOAT_ZERO if math.copysign(1.0, value) > 0 else _FLOAT_NEG_ZERO
    if kind is str:
        return _STR_DEC[value]
    if kind is int:
        return Decimal(value)
    if value is None:
        return _ZERO
    raise TypeError(f"expected a number, got {value!r}")


def _fast_constructor(cls: type) -> Callable[..., Any]:
    """A function building ``cls`` (a frozen slots dataclass) from its fields in field order,
    by position or by keyword, that sets the slots directly: under half the cost of the frozen
    dataclass ``__init__`` (``object.__setattr__`` per field, keyword-only), a third less again
    when called by position. Same fields, same object; a field keeps its default only if every
    later field has one (so ``raw`` is required). A class with ``__post_init__``, a
    ``default_factory`` or a non-init field cannot be built this way: TypeError at import."""
    fields = dataclasses.fields(cls)
    if hasattr(cls, "__post_init__") or any(
        f.default_factory is not dataclasses.MISSING or not f.init for f in fields
    ):
        raise TypeError(f"{cls.__name__} needs its own __init__; build it with that")
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    params, body = [], []
    trailing_defaults = True
    for f in reversed(fields):
        trailing_defaults = trailing_defaults and f.default is not dataclasses.MISSING
        if trailing_defaults:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        else:
            params.append(f.name)
        namespace[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        body.append(f"    _set_{f.name}(self, {f.name})")
    params.reverse()
    body.reverse()
    code = "\n".join(["    self = _new(_cls)", *body, "    return self\n"])
    exec(f"def new({', '.join(params)}):\n{code}", namespace)
    new = namespace["new"]
    new.__name__ = new.__qualname__ = f"new_{cls.__name__}"
    return new


_OrderUpdateEvent = _fast_constructor(OrderUpdateEvent)
_FillEvent = _fast_constructor(FillEvent)
_PositionEvent = _fast_constructor(PositionEvent)
_BalanceEvent = _fast_constructor(BalanceEvent)
_BookEvent = _fast_constructor(BookEvent)
_TradeEvent = _fast_constructor(TradeEvent)
_MarkPriceEvent = _fast_constructor(MarkPriceEvent)


def _float_or_none(value: Any) -> float | None:
    if value is None or type(value) is bool:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None  # e.g. an ISO date string on stop orders: keep it in raw only


_MAX_COUNT = Decimal(10**18)
_MALFORMED = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
    ArithmeticError,
    RecursionError,
)
"""What malformed input can raise while decoding and building (RecursionError: deep nesting;
ArithmeticError: Decimal/int/float conversions). Each becomes a :class:`ParseError`."""


def _text(value: Any) -> str:
    """An optional string field: absent or empty is ``""``; any other type is malformed."""
    if value is None or value == "":
        return ""
    if type(value) is not str:
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _req_text(d: dict, key: str) -> str:
    """A required string field (e.g. ``symbol``: routing keys must be strings)."""
    value = d[key]
    if type(value) is not str:
        raise TypeError(f"{key} must be a string, got {type(value).__name__}")
    return value


def _count(value: Any) -> int:
    """A small count (``open_orders``); bounded so ``1e999999999`` cannot stall ``int()``."""
    number = _dec(value)
    if abs(number) >= _MAX_COUNT:
        raise ValueError(f"count out of range: {value!r:.40}")
    return int(number)


def _str_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


_MAX_TIME = 1e13
"""Unix seconds beyond this (year 318857) are garbage, not times."""


def _time(value: Any) -> float | None:
    """A time as Unix seconds: a JSON number, a numeric string or an RFC 3339 string (naive
    means UTC, any fraction length); absent or empty is ``None``; anything else is malformed."""
    if value is None or value == "":
        return None
    kind = type(value)
    if kind is int or kind is float:
        seconds = float(value)
    elif kind is str:
        try:
            seconds = float(value)
        except ValueError:
            moment = datetime.fromisoformat(value.upper())  # RFC 3339 allows "t" and "z"
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = moment.timestamp()
    else:
        raise TypeError(f"expected a time, got {kind.__name__}")
    if not math.isfinite(seconds) or abs(seconds) > _MAX_TIME:
        raise ValueError(f"time out of range: {value!r:.40}")
    return seconds


def _flag(value: Any) -> bool:
    """A boolean sent as true/false (or 1/0, as one third party does); absent is false."""
    if value is None:
        return False
    if type(value) is bool:
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise TypeError(f"expected a boolean, got {value!r:.40}")


_NOT_TERMINAL = frozenset(
    {"ACK", "MODIFIED", "CANNOT_MODIFY_PARTIAL_FILL", "CANNOT_MODIFY_NO_SUCH_ORDER"}
)


def is_terminal(status: str, remaining: Decimal) -> bool:
    """Whether the order is gone after this status (protocol §2.5).

    ``FILLED`` with quantity left is a partial fill; failed modifications leave the original
    order as it was, so they are not terminal either.
    """
    if status == "FILLED":
        return remaining <= 0
    return status not in _NOT_TERMINAL


# ---------------------------------------------------------------- builders


def _order(d: dict, venue: str, account_id: str, now: float, raw: Any) -> OrderUpdateEvent:
    status = _req_text(d, "status")
    remaining = _dec(d.get("quantity_remaining"))
    return _OrderUpdateEvent(
        venue=venue,
        account_id=account_id,
        received_at=now,
        raw=raw,
        order_id=str(d["order_id"]),
        client_order_id=_text(d.get("client_order_id")),
        symbol=_req_text(d, "symbol"),
        status=status,
        side=_text(d.get("side")),
        order_type=_text(d.get("type")) or _text(d.get("order_type")),
        time_in_force=_text(d.get("time_in_force")) or _text(d.get("tif")),
        price=_dec(d.get("price")),
        quantity=_dec(d.get("quantity")),
        remaining=remaining,
        trade_id=_str_or_none(d.get("trade_id")),
        update_time=_float_or_none(d.get("update_time")),
        terminal=is_terminal(status, remaining),
        take_profit=_dec(d.get("take_profit")),
        stop_loss=_dec(d.get("stop_loss")),
    )


def _fill(d: dict, venue: str, account_id: str, now: float, raw: Any) -> FillEvent:
    aggressor = d.get("aggressor_side")
    side = _text(d.get("side")) or _text(aggressor)
    return _FillEvent(
        venue=venue,
        account_id=account_id,
        received_at=now,
        raw=raw,
        trade_id=str(d["trade_id"]),
        order_id=str(d.get("order_id") or ""),
        client_order_id=_text(d.get("client_order_id")),
        symbol=_req_text(d, "symbol"),
        side=side,
        price=_dec(d["price"]),
        quantity=_dec(d["quantity"]),
        fee=_dec(d.get("fee")),
        is_taker=bool(aggressor) and "side" in d and aggressor == d["side"],
        remaining=_dec(d.get("remaining_quantity")),
        realised_pnl=_dec(d.get("realised_pnl")),
        timestamp=_float_or_none(d.get("timestamp")),
    )


def _position(d: dict, venue: str, account_id: str, now: float, raw: Any) -> PositionEvent:
    return _PositionEvent(
        venue=venue,
        account_id=account_id,
        received_at=now,
        raw=raw,
        symbol=_req_text(d, "symbol"),
        size=_dec(d["position"]),
        average_price=_dec(d.get("average_price")),
        realised_pnl=_dec(d.get("realised_pnl")),
        unrealised_pnl=_dec(d.get("unrealised_pnl")),
        net_funding=_dec(d.get("net_funding")),
        leverage=_dec(d.get("leverage")),
        open_orders=_count(d.get("open_orders")),
        open_quantity=_dec(d.get("open_quantity")),
    )


def _balance(d: dict, venue: str, account_id: str, now: float, raw: Any) -> BalanceEvent:
    return _BalanceEvent(
        venue=venue,
        account_id=account_id,
        received_at=now,
        raw=raw,
        available=_dec(d["available_balance"]),
        deposit=_dec(d.get("deposit")),
        realised_pnl=_dec(d.get("realised_pnl")),
        unrealised_pnl=_dec(d.get("unrealised_pnl")),
        order_margin=_dec(d.get("order_margin")),
        position_margin=_dec(d.get("position_margin")),
        net_funding=_dec(d.get("net_funding")),
    )


def _stop_order(d: dict, venue: str, account_id: str, now: float, raw: Any) -> StopOrderEvent:
    return StopOrderEvent(
        venue=venue,
        account_id=account_id,
        received_at=now,
        raw=raw,
        stop_order_id=str(d["stop_order_id"]),
        symbol=_req_text(d, "symbol"),
        side=_text(d.get("direction")) or _text(d.get("side")),
        stop_type=_text(d.get("stop_order_type")) or _text(d.get("type")),
        price=_dec(d.get("price")),
        quantity=_dec(d.get("quantity")),
        client_order_id=_text(d.get("client_order_id")),
        update_time=_time(d.get("update_time")),
    )


def twap_info(d: Any, raw: Any = None) -> TwapInfo:
    """A TWAP object (socket ``TwapResponse`` or REST ``HistoricTwap``) as a record."""
    filled_orders = d.get("filled_num_orders")
    return TwapInfo(
        twap_id=str(d["twap_id"]),
        client_twap_id=_text(d.get("client_twap_id")),
        symbol=_req_text(d, "symbol"),
        side=_text(d.get("side")),
        status=_text(d.get("status")),
        total_quantity=_dec(d.get("total_quantity")),
        filled_quantity=_dec(d.get("filled_quantity")),
        average_fill_price=_dec(d.get("average_fill_price")),
        total_orders=_count(d.get("total_num_orders")),
        filled_orders=None if filled_orders is None else _count(filled_orders),
        order_interval=_count(d.get("order_interval_secs")),
        reduce_only=_flag(d.get("reduce_only")),
        created_at=_time(d.get("created_at")),
        updated_at=_time(d.get("updated_at")),
        raw=d if raw is None else raw,
    )


def _twap(d: dict, venue: str, account_id: str, now: float, raw: Any) -> TwapEvent:
    info = twap_info(d)
    return TwapEvent(
        venue=venue,
        account_id=account_id,
        received_at=now,
        raw=raw,
        twap_id=info.twap_id,
        client_twap_id=info.client_twap_id,
        symbol=info.symbol,
        side=info.side,
        status=info.status,
        total_quantity=info.total_quantity,
        filled_quantity=info.filled_quantity,
        average_fill_price=info.average_fill_price,
        total_orders=info.total_orders,
        order_interval=info.order_interval,
        reduce_only=info.reduce_only,
        created_at=info.created_at,
        updated_at=info.updated_at,
    )


def leverage_level(d: Any) -> LeverageLevel:
    """A ``LeveragePublic`` row (leverage as a string or a number; ``max_notional`` or the
    older ``max_position``) as a record."""
    cap = d.get("max_notional")
    return LeverageLevel(
        symbol=_req_text(d, "symbol"),
        leverage=_dec(d["leverage"]),
        initial_margin=_dec(d.get("initial_margin")),
        maintenance_margin=_dec(d.get("maintenance_margin")),
        max_notional=_dec(d.get("max_position") if cap is None else cap),
        level_id=str(d.get("id") or ""),
        raw=d,
    )


def _taker(d: dict) -> bool | None:
    aggressor = d.get("aggressor_side")
    if not aggressor or "side" not in d:
        return None
    return aggressor == d["side"]


def socket_trade(d: Any) -> UserTrade:
    """A ``get_user_trades`` row (either documented shape) as a record."""
    return UserTrade(
        trade_id=str(d["trade_id"]),
        order_id=str(d.get("order_id") or ""),
        symbol=_req_text(d, "symbol"),
        side=_text(d.get("side")) or _text(d.get("aggressor_side")),
        price=_dec(d["price"]),
        quantity=_dec(d["quantity"]),
        fee=_dec(d.get("fee")),
        order_type=_text(d.get("order_type")),
        time_in_force=_text(d.get("tif")),
        client_order_id=_text(d.get("client_order_id")),
        timestamp=_time(d.get("timestamp")),
        realised_pnl=_dec(d.get("realised_pnl")),
        is_taker=_taker(d),
        raw=d,
    )


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value]
    raise TypeError(f"expected a list or an object, got {value!r}")


# ---------------------------------------------------------------- trade socket

_Handler = Callable[[Any, dict, str, str, float, Any], list]


def _h_order(v: Any, obj: dict, venue: str, acct: str, now: float, raw: Any) -> list:
    return [_order(v, venue, acct, now, raw)]


def _h_fill(v: Any, obj: dict, venue: str, acct: str, now: float, raw: Any) -> list:
    return [_fill(v, venue, acct, now, raw)]


def _h_position(v: Any, obj: dict, venue: str, acct: str, now: float, raw: Any) -> list:
    return [_position(v, venue, acct, now, raw)]


def _h_balance(v: Any, obj: dict, venue: str, acct: str, now: float, raw: Any) -> list:
    return [_balance(v, venue, acct, now, raw)]


def _h_authenticated(v: Any, obj: dict, venue: str, acct: str, now: float, raw: Any) -> list:
    return [AuthResult(v is True, raw=raw)]


def _h_subscribed(v: Any, obj: dict, venue: str, acct: str, now: float, raw: Any) -> list:
    return [Subscribed(str(v), raw=raw)]


def _h_unsubscribed(v: Any, obj: dict, venue: str, acct: str, now: float, raw: Any) -> list:
    return [Unsubscribed(str(v), raw=raw)]


def _error(d: Any, raw: Any) -> ErrorFrame:
    if isinstance(d, dict):
        return ErrorFrame(
            str(d.get("error_code") or d.get("code") or "Unknown"),
            str(d.get("message") or ""),
            d.get("incoming_message"),
            raw=raw,
        )
    return ErrorFrame(str(d), "", None, raw=raw)


def _h_err(v: Any, obj: dict, venue: str, acct: str, now: float, raw: Any) -> list:
    return [_error(v, raw)]


def _h_ack(v: Any, obj: dict, venue: str, acct: str, now: float, raw: Any) -> list:
    incoming = v.get("incoming_message") if isinstance(v, dict) else None
    return [Ack(incoming, raw=raw)]


def _h_ack_response(v: Any, obj: dict, venue: str, acct: str, now: float, raw: Any) -> list:
    return [Ack(None, ok=v is not False, raw=raw)]


def _h_all_orders(v: Any, obj: dict, venue: str, acct: str, now: float, raw: Any) -> list:
    orders = tuple(_order(o, venue, acct, now, raw) for o in _as_list(v.get("orders")))
    return [
        OrdersSnapshot(
            orders,
            tuple(twap_info(t) for t in _as_list(v.get("twaps"))),
            tuple(_stop_order(s, venue, acct, now, raw) for s in _as_list(v.get("stop_orders"))),
            raw=raw,
        )
    ]


def _h_user_trades(v: Any, obj: dict, venue: str, acct: str, now: float, raw: Any) -> list:
    rows = _as_list(v)
    return [
        TradesSnapshot(
            tuple(_fill(t, venue, acct, now, raw) for t in rows),
            tuple(socket_trade(t) for t in rows),
            raw=raw,
        )
    ]


def _h_twap(v: Any, obj: dict, venue: str, acct: str, now: float, raw: Any) -> list:
    return [_twap(v, venue, acct, now, raw)]


def _h_stop_order(v: Any, obj: dict, venue: str, acct: str, now: float, raw: Any) -> list:
    return [_stop_order(v, venue, acct, now, raw)]


def _leverage(reply: str) -> _Handler:
    def handler(v: Any, obj: dict, venue: str, acct: str, now: float, raw: Any) -> list:
        return [LeverageLevels(reply, tuple(leverage_level(r) for r in _as_list(v)), raw=raw)]

    return handler


_TRADE_HANDLERS: dict[str, _Handler] = {
    "order_response": _h_order,
    "fill_response": _h_fill,
    "position_response": _h_position,
    "balance_response": _h_balance,
    "authenticated": _h_authenticated,
    "subscribed": _h_subscribed,
    "unsubscribed": _h_unsubscribed,
    "err": _h_err,
    "ack": _h_ack,
    "ack_response": _h_ack_response,
    "all_orders_response": _h_all_orders,
    "user_trades_response": _h_user_trades,
    "user_trades": _h_user_trades,
    "user_leverage_response": _leverage("user_leverage_response"),
    "available_leverage_levels_response": _leverage("available_leverage_levels_response"),
    "twap_response": _h_twap,
    "stop_order_response": _h_stop_order,
}

# Legacy envelope channels / types (protocol §2.1) -> builder of one payload object.
_ENVELOPE_BUILDERS: dict[str, Callable[[dict, str, str, float, Any], Event]] = {
    "v4_balances": _balance,
    "balances": _balance,
    "balance_update": _balance,
    "v4_positions": _position,
    "positions": _position,
    "position_update": _position,
}

_FLAT_ERROR_TYPES = frozenset({"error", "Error", "err", "Err"})


def _trade_typed(kind: Any, obj: dict, venue: str, acct: str, now: float, raw: Any) -> list:
    """Messages tagged by a ``type`` field: old auth reply, flat errors, legacy envelopes."""
    if kind == "auth":
        return [AuthResult(obj.get("result") == "success", raw=raw)]
    if kind in _FLAT_ERROR_TYPES:
        return [_error(obj, raw)]
    if "contents" in obj:
        build = _ENVELOPE_BUILDERS.get(obj.get("channel") or "") or _ENVELOPE_BUILDERS.get(kind)
        if build is not None:
            return [build(c, venue, acct, now, raw) for c in _as_list(obj["contents"])]
    return [Reply(str(kind), obj, raw=raw)]


def _trade_obj(obj: Any, venue: str, acct: str, now: float, raw: Any) -> list:
    if type(obj) is not dict or not obj:
        raise TypeError("expected a non-empty JSON object")
    for key in obj:
        handler = _TRADE_HANDLERS.get(key)
        if handler is not None:
            return handler(obj[key], obj, venue, acct, now, raw)
    kind = obj.get("type")
    if kind is not None:
        return _trade_typed(kind, obj, venue, acct, now, raw)
    return [Reply(next(iter(obj)), obj, raw=raw)]


def parse_trade_frame(
    data: str | bytes, venue: str, account_id: str, now: float
) -> list[Event | Control]:
    """Parse one trade-socket frame into events (in frame order) and control messages.

    Events are stamped with ``account_id`` (the account the connection is bound to) and
    ``received_at=now``; ``raw`` is the frame. Raises :class:`ParseError` on anything malformed.
    """
    events = _fast_trade(data, venue, account_id, now)
    return _parse_trade_general(data, venue, account_id, now) if events is None else events


def _parse_trade_general(
    data: str | bytes, venue: str, account_id: str, now: float
) -> list[Event | Control]:
    """:func:`parse_trade_frame` for every documented shape: an untyped decode, then the
    handler of the object's first known key (or its ``type``)."""
    try:
        obj = _loads(data)
        if type(obj) is list:
            out: list[Event | Control] = []
            for item in obj:
                out.extend(_trade_obj(item, venue, account_id, now, data))
            return out
        return _trade_obj(obj, venue, account_id, now, data)
    except ParseError:
        raise
    except _MALFORMED as exc:
        raise ParseError(data, f"bad trade frame ({type(exc).__name__}: {exc})") from None


def parse_positions_snapshot(body: Any, venue: str, account_id: str, now: float) -> ResyncEvent:
    """The REST ``GET /user/positions`` body as a :class:`ResyncEvent` (balance + positions)."""
    try:
        balance = body.get("balance")
        return ResyncEvent(
            venue=venue,
            account_id=account_id,
            received_at=now,
            raw=body,
            balance=_balance(balance, venue, account_id, now, body) if balance else None,
            positions=tuple(
                _position(p, venue, account_id, now, body) for p in _as_list(body.get("positions"))
            ),
        )
    except _MALFORMED as exc:
        raise ParseError(body, f"bad positions body ({type(exc).__name__}: {exc})") from None


# ---------------------------------------------------------------- market-data socket

_MDS_ACCOUNT = ""  # market data belongs to no account


def _levels(levels: Any) -> tuple[tuple[Decimal, Decimal], ...]:
    return tuple((_dec(level[0]), _dec(level[1])) for level in (levels or ()))


def _m_book(d: dict, kind: str, venue: str, now: float, raw: Any) -> Event:
    seq = d.get("sequence")
    return _BookEvent(
        venue=venue,
        account_id=_MDS_ACCOUNT,
        received_at=now,
        raw=raw,
        symbol=_req_text(d, "symbol"),
        bids=_levels(d.get("bid")),
        asks=_levels(d.get("ask")),
        sequence=int(seq) if seq is not None else None,
        channel=kind,
    )


def _m_trade(d: dict, kind: str, venue: str, now: float, raw: Any) -> Event:
    return _TradeEvent(
        venue=venue,
        account_id=_MDS_ACCOUNT,
        received_at=now,
        raw=raw,
        symbol=_req_text(d, "symbol"),
        trade_id=str(d.get("trade_id") or ""),
        price=_dec(d["price"]),
        size=_dec(d["size"]),
        side=str(d.get("side") or "").upper(),
    )


def _m_mark(d: dict, kind: str, venue: str, now: float, raw: Any) -> Event:
    return _MarkPriceEvent(
        venue=venue,
        account_id=_MDS_ACCOUNT,
        received_at=now,
        raw=raw,
        symbol=_req_text(d, "symbol"),
        price=_dec(d["price"]),
    )


def _m_candle(d: dict, kind: str, venue: str, now: float, raw: Any) -> Event:
    return CandleEvent(
        venue=venue,
        account_id=_MDS_ACCOUNT,
        received_at=now,
        raw=raw,
        symbol=_req_text(d, "symbol"),
        resolution=_req_text(d, "resolution"),
        start=_time(d.get("start")),
        open=_dec(d["open"]),
        high=_dec(d["high"]),
        low=_dec(d["low"]),
        close=_dec(d["close"]),
        usd_volume=_dec(d.get("usdVolume")),
        trades=_count(d.get("trades")),
    )


def _m_funding(d: dict, kind: str, venue: str, now: float, raw: Any) -> Event:
    remaining = _time(d.get("time_remaining"))
    return FundingRateEvent(
        venue=venue,
        account_id=_MDS_ACCOUNT,
        received_at=now,
        raw=raw,
        symbol=_req_text(d, "symbol"),
        rate=_dec(d.get("funding_rate")),
        time_remaining=0.0 if remaining is None else remaining,
        timestamp=_time(d.get("time")),
    )


def _open_interest(d: Any, venue: str, now: float, raw: Any) -> OpenInterestEvent:
    return OpenInterestEvent(
        venue=venue,
        account_id=_MDS_ACCOUNT,
        received_at=now,
        raw=raw,
        symbol=_req_text(d, "symbol"),
        open_interest=_dec(d["open_interest"]),
        timestamp=_time(d.get("time")),
    )


def _m_open_interest(d: dict, kind: str, venue: str, now: float, raw: Any) -> Event:
    return _open_interest(d, venue, now, raw)


def _m_underlier(d: dict, kind: str, venue: str, now: float, raw: Any) -> Event:
    return UnderlierEvent(
        venue=venue,
        account_id=_MDS_ACCOUNT,
        received_at=now,
        raw=raw,
        symbol=_req_text(d, "symbol"),
        price=_dec(d["price"]),
        source=_text(d.get("source")),
        timestamp=_time(d.get("time")),
    )


def _m_price_band(d: dict, kind: str, venue: str, now: float, raw: Any) -> Event:
    return PriceBandEvent(
        venue=venue,
        account_id=_MDS_ACCOUNT,
        received_at=now,
        raw=raw,
        symbol=_req_text(d, "symbol"),
        min_price=_dec(d["min_price"]),
        max_price=_dec(d["max_price"]),
        timestamp=_time(d.get("time")),
    )


def _daily_volume(d: Any) -> tuple[str, Decimal]:
    return _req_text(d, "symbol"), _dec(d.get("volume"))


def _m_market_stats(d: dict, kind: str, venue: str, now: float, raw: Any) -> Event:
    seq = d.get("sequence")
    return MarketStatsEvent(
        venue=venue,
        account_id=_MDS_ACCOUNT,
        received_at=now,
        raw=raw,
        symbol=_text(d.get("symbol")) or "*",
        bbos=tuple(_m_book(b, "bbo", venue, now, raw) for b in _as_list(d.get("bbos"))),
        mark_prices=tuple(
            _m_mark(m, "mark_price", venue, now, raw) for m in _as_list(d.get("mark_prices"))
        ),
        open_interests=tuple(
            _open_interest(o, venue, now, raw) for o in _as_list(d.get("open_interests"))
        ),
        daily_volumes=tuple(_daily_volume(v) for v in _as_list(d.get("daily_volumes"))),
        sequence=_count(seq) if seq is not None else None,
        timestamp=_time(d.get("time")),
    )


_MDS_BUILDERS: dict[str, Callable[[dict, str, str, float, Any], Event]] = {
    "level2": _m_book,
    "bbo": _m_book,
    "trade": _m_trade,
    "mark_price": _m_mark,
    "candle": _m_candle,
    "funding": _m_funding,
    "open_interest": _m_open_interest,
    "underlier": _m_underlier,
    "minmax_price": _m_price_band,
    "market_stats": _m_market_stats,
}


def _mds_obj(obj: Any, venue: str, now: float, raw: Any, out: list[Event]) -> None:
    if type(obj) is list:
        for item in obj:
            _mds_obj(item, venue, now, raw, out)
        return
    if type(obj) is not dict:
        raise TypeError("expected a JSON object")
    kind = obj.get("type")
    if "contents" in obj:  # envelope form: {"type","channel","contents":[...]}
        channel = obj.get("channel") or kind
        for content in _as_list(obj["contents"]):
            item = (
                {**content, "type": channel}
                if type(content) is dict and "type" not in content
                else content
            )
            _mds_obj(item, venue, now, raw, out)
        return
    build = _MDS_BUILDERS.get(kind)  # type: ignore[arg-type]
    if build is not None:
        out.append(build(obj, kind, venue, now, raw))
    elif kind is None and "err" not in obj:
        raise TypeError("message without a type")
    # Unknown channels (e.g. the legacy refdata) and error frames: no event type.


def parse_mds_frame(data: str | bytes, venue: str, now: float) -> list[Event]:
    """Parse one market-data frame (object, array, or envelope) into events.

    ``level2``/``bbo`` → :class:`BookEvent`, ``trade`` → :class:`TradeEvent`, ``mark_price`` →
    :class:`MarkPriceEvent`, ``candle`` → :class:`CandleEvent`, ``funding`` →
    :class:`FundingRateEvent`, ``open_interest`` → :class:`OpenInterestEvent`, ``underlier`` →
    :class:`UnderlierEvent`, ``minmax_price`` → :class:`PriceBandEvent`, ``market_stats`` →
    :class:`MarketStatsEvent`; unknown channels produce no events.
    """
    events = _fast_mds(data, venue, now)
    return _parse_mds_general(data, venue, now) if events is None else events


def _parse_mds_general(data: str | bytes, venue: str, now: float) -> list[Event]:
    """:func:`parse_mds_frame` for every documented shape: an untyped decode, then the builder
    of each message's ``type``."""
    try:
        out: list[Event] = []
        _mds_obj(_loads(data), venue, now, data, out)
        return out
    except _MALFORMED as exc:
        raise ParseError(data, f"bad market-data frame ({type(exc).__name__}: {exc})") from None


# ---------------------------------------------------------------- typed fast path

# The messages that make up nearly all traffic are first decoded by msgspec into Structs that
# declare what the builders above accept in the common case: required strings as ``str``,
# optional ones as ``str | None``, numbers as ``int | float | str | None`` (an int stays an int,
# as in the untyped decode). msgspec then does the key lookups and type checks in C, and the
# events are built from attributes. Whatever it refuses (invalid JSON, another kind, an extra
# top-level key, two messages in one object, a value of another type) or a conversion rejects
# is parsed again by the general path, so its events and ParseError reasons are the only ones a
# caller ever sees; tests/venue/test_qfex_parse_fast.py checks the two agree. The events are
# built by position, in the order of the dataclass fields (see _fast_constructor).

_Num = int | float | str | None
"""A number field as :func:`_dec` takes it."""
_Seconds = int | float | None
"""A time field :func:`_float_or_none` turns into a float (strings take the general path)."""
_Levels = list[tuple[str, str]] | None
"""Book levels as QFEX sends them: [price, size] as strings (numbers take the general path)."""


def _opt_float(value: int | float | None) -> float | None:
    return None if value is None else float(value)


class _OrderBody(msgspec.Struct):
    """``order_response``, as :func:`_order` reads it."""

    order_id: str
    symbol: str
    status: str
    client_order_id: str | None = None
    side: str | None = None
    type: str | None = None
    order_type: str | None = None
    time_in_force: str | None = None
    tif: str | None = None
    price: _Num = None
    quantity: _Num = None
    quantity_remaining: _Num = None
    trade_id: str | None = None
    update_time: _Seconds = None
    take_profit: _Num = None
    stop_loss: _Num = None

    def event(self, venue: str, account_id: str, now: float, raw: Any) -> OrderUpdateEvent:
        status = self.status
        remaining = _dec(self.quantity_remaining)
        return _OrderUpdateEvent(
            venue,
            account_id,
            now,
            raw,
            self.order_id,
            self.client_order_id or "",
            self.symbol,
            status,
            self.side or "",
            self.type or self.order_type or "",
            self.time_in_force or self.tif or "",
            _dec(self.price),
            _dec(self.quantity),
            remaining,
            self.trade_id or None,
            _opt_float(self.update_time),
            is_terminal(status, remaining),
            _dec(self.take_profit),
            _dec(self.stop_loss),
        )


class _FillBody(msgspec.Struct):
    """``fill_response``, as :func:`_fill` reads it."""

    trade_id: str
    symbol: str
    price: _Num
    quantity: _Num
    order_id: str | None = None
    client_order_id: str | None = None
    side: str | None = None
    aggressor_side: str | None = None
    fee: _Num = None
    remaining_quantity: _Num = None
    realised_pnl: _Num = None
    timestamp: _Seconds = None

    def event(self, venue: str, account_id: str, now: float, raw: Any) -> FillEvent:
        side, aggressor = self.side, self.aggressor_side
        return _FillEvent(
            venue,
            account_id,
            now,
            raw,
            self.trade_id,
            self.order_id or "",
            self.client_order_id or "",
            self.symbol,
            side or aggressor or "",
            _dec(self.price),
            _dec(self.quantity),
            _dec(self.fee),
            bool(aggressor) and aggressor == side,  # is_taker (side absent or null: None)
            _dec(self.remaining_quantity),
            _dec(self.realised_pnl),
            _opt_float(self.timestamp),
        )


class _PositionBody(msgspec.Struct):
    """``position_response``, as :func:`_position` reads it."""

    symbol: str
    position: _Num
    average_price: _Num = None
    realised_pnl: _Num = None
    unrealised_pnl: _Num = None
    net_funding: _Num = None
    leverage: _Num = None
    open_orders: _Num = None
    open_quantity: _Num = None

    def event(self, venue: str, account_id: str, now: float, raw: Any) -> PositionEvent:
        return _PositionEvent(
            venue,
            account_id,
            now,
            raw,
            self.symbol,
            _dec(self.position),
            _dec(self.average_price),
            _dec(self.realised_pnl),
            _dec(self.unrealised_pnl),
            _dec(self.net_funding),
            _dec(self.leverage),
            _count(self.open_orders),
            _dec(self.open_quantity),
        )


class _BalanceBody(msgspec.Struct):
    """``balance_response``, as :func:`_balance` reads it."""

    available_balance: _Num
    deposit: _Num = None
    realised_pnl: _Num = None
    unrealised_pnl: _Num = None
    order_margin: _Num = None
    position_margin: _Num = None
    net_funding: _Num = None

    def event(self, venue: str, account_id: str, now: float, raw: Any) -> BalanceEvent:
        return _BalanceEvent(
            venue,
            account_id,
            now,
            raw,
            _dec(self.available_balance),
            _dec(self.deposit),
            _dec(self.realised_pnl),
            _dec(self.unrealised_pnl),
            _dec(self.order_margin),
            _dec(self.position_margin),
            _dec(self.net_funding),
        )


class _TradeFrame(msgspec.Struct, forbid_unknown_fields=True):
    """A trade-socket object whose only keys are these messages (one of them, checked after)."""

    # UNSET, not None, for "absent": a key present with null goes to the general path, which
    # reads the first known key (null there is a ParseError, whatever follows it).
    order_response: _OrderBody | msgspec.UnsetType = msgspec.UNSET
    fill_response: _FillBody | msgspec.UnsetType = msgspec.UNSET
    position_response: _PositionBody | msgspec.UnsetType = msgspec.UNSET
    balance_response: _BalanceBody | msgspec.UnsetType = msgspec.UNSET


class _MdsMessage(msgspec.Struct, tag_field="type", kw_only=True):
    """A market-data message tagged by ``type``; ``contents`` present means the envelope form."""

    contents: Any = msgspec.UNSET


class _LevelCache(dict):
    """Decimal [price, size] pairs by their string pair: a book snapshot repeats most levels of
    the one before, so a level is mostly one C-level lookup (bounded like the Decimal caches)."""

    __slots__ = ()

    def __missing__(self, level: tuple[str, str]) -> tuple[Decimal, Decimal]:
        price, size = level
        result = (_STR_DEC[price], _STR_DEC[size])
        if len(self) >= _DEC_CACHE_MAX:
            self.clear()
        self[level] = result
        return result


_level_decimals = _LevelCache().__getitem__


def _book_levels(levels: _Levels) -> tuple[tuple[Decimal, Decimal], ...]:
    return tuple(map(_level_decimals, levels)) if levels else ()


class _Level2(_MdsMessage, tag="level2"):
    """``level2``, as :func:`_m_book` reads it."""

    symbol: str
    bid: _Levels = None
    ask: _Levels = None
    sequence: int | None = None

    channel = "level2"

    def event(self, venue: str, now: float, raw: Any) -> BookEvent:
        return _BookEvent(
            venue,
            _MDS_ACCOUNT,
            now,
            raw,
            self.symbol,
            _book_levels(self.bid),
            _book_levels(self.ask),
            self.sequence,
            self.channel,
        )


class _Bbo(_Level2, tag="bbo"):
    """``bbo``: the same fields as ``level2``."""

    channel = "bbo"


class _Trade(_MdsMessage, tag="trade"):
    """``trade``, as :func:`_m_trade` reads it."""

    symbol: str
    price: _Num
    size: _Num
    trade_id: str | None = None
    side: str | None = None

    def event(self, venue: str, now: float, raw: Any) -> TradeEvent:
        return _TradeEvent(
            venue,
            _MDS_ACCOUNT,
            now,
            raw,
            self.symbol,
            self.trade_id or "",
            _dec(self.price),
            _dec(self.size),
            (self.side or "").upper(),
        )


class _Mark(_MdsMessage, tag="mark_price"):
    """``mark_price``, as :func:`_m_mark` reads it."""

    symbol: str
    price: _Num

    def event(self, venue: str, now: float, raw: Any) -> MarkPriceEvent:
        return _MarkPriceEvent(
            venue,
            _MDS_ACCOUNT,
            now,
            raw,
            self.symbol,
            _dec(self.price),
        )


_decode_trade = msgspec.json.Decoder(_TradeFrame).decode
_decode_mds = msgspec.json.Decoder(_Level2 | _Bbo | _Trade | _Mark).decode
_REFUSED = (msgspec.DecodeError, *_MALFORMED)
"""What the fast path gives up on (msgspec.ValidationError is a DecodeError)."""


def _fast_trade(data: str | bytes, venue: str, account_id: str, now: float) -> list | None:
    """The events of a trade frame holding one frequent message; ``None``: use the general
    path."""
    try:
        found = None
        for body in msgspec.structs.astuple(_decode_trade(data)):
            if body is not msgspec.UNSET:
                if found is not None:
                    return None  # two messages in one object: the general path orders them
                found = body
        if found is not None:
            return [found.event(venue, account_id, now, data)]
    except _REFUSED:
        pass
    return None


def _fast_mds(data: str | bytes, venue: str, now: float) -> list | None:
    """The event of a level2, bbo, trade or mark_price frame; ``None``: use the general path."""
    try:
        message = _decode_mds(data)
        if message.contents is msgspec.UNSET:
            return [message.event(venue, now, data)]
    except _REFUSED:
        pass
    return None


# ---------------------------------------------------------------- encoding


def encode_json(obj: Any) -> str:
    """Compact JSON where ``Decimal`` is written as an exact JSON number (no float rounding)."""
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise ValueError(f"cannot send a non-finite number: {obj}")
        return format(obj, "f")
    if isinstance(obj, dict):
        return (
            "{" + ",".join(f"{json.dumps(str(k))}:{encode_json(v)}" for k, v in obj.items()) + "}"
        )
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(encode_json(v) for v in obj) + "]"
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)
