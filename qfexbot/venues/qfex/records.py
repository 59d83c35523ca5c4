"""QFEX REST response bodies as records: pure parsers, one per body the OpenAPI documents.

Bodies that ``ctx`` queries return become the neutral records of :mod:`qfexbot.core.records`
(trades, historic orders and TWAPs, fees, candles, funding and open-interest history). The
others (PnL, volume, referral rewards, taker volume, long/short, underlier, settlement, symbol
metrics) become a :class:`Series`: rows with their documented fields converted (money as
``Decimal``, times as Unix seconds) plus the body's other fields in ``meta``.

Every parser accepts numbers sent as strings (qfex.md §3.1), ``data: null`` (= no rows) and
fields the spec does not list, and raises only :class:`ParseError` on anything else.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

from qfexbot.core.records import (
    Candle,
    FeeRate,
    FundingRatePoint,
    HistoricOrder,
    OpenInterestPoint,
    TwapInfo,
    UserTrade,
)
from qfexbot.core.venue import ParseError
from qfexbot.venues.qfex.parse import _MALFORMED, _count, _dec, _req_text, _text, _time, twap_info

__all__ = [
    "FEE_SCALE",
    "SERIES",
    "Series",
    "parse_candles",
    "parse_fees",
    "parse_funding_history",
    "parse_historic_orders",
    "parse_historic_twaps",
    "parse_leverage",
    "parse_open_interest_history",
    "parse_series",
    "parse_settlement_calendar",
    "parse_trades",
]

FEE_SCALE = Decimal(100_000_000)
"""``/user/fees`` integers are fractions of notional times 1e8 (10000 = 0.0001 = 0.01 %; the vendor
CLI divides by 1e6 to print percent)."""

_P = ParamSpec("_P")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class Series:
    """A documented list body: ``rows`` with converted fields, ``meta`` = the other fields."""

    rows: tuple[Mapping[str, Any], ...]
    meta: Mapping[str, Any]
    raw: Any = field(default=None, repr=False, compare=False)


def _body_parser(what: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Turn every malformed-input exception of a body parser into :class:`ParseError`."""

    def wrap(parse: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(parse)
        def parser(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return parse(*args, **kwargs)
            except ParseError:
                raise
            except _MALFORMED as exc:
                body = args[0] if args else None
                raise ParseError(body, f"bad {what} body ({type(exc).__name__}: {exc})") from None

        return parser

    return wrap


def _rows(body: Any, key: str = "data") -> list[dict]:
    """The list under ``key`` (``null`` or absent = none); each row must be an object."""
    if type(body) is not dict:
        raise TypeError(f"expected a JSON object, got {type(body).__name__}")
    rows = body.get(key)
    if rows is None:
        return []
    if type(rows) is not list:
        raise TypeError(f"{key} must be a list, got {type(rows).__name__}")
    for row in rows:
        if type(row) is not dict:
            raise TypeError(f"a {key} row must be an object, got {type(row).__name__}")
    return rows


def _dec_or_none(value: Any) -> Decimal | None:
    return None if value is None else _dec(value)


def _id(d: dict, key: str) -> str:
    """A required identifier: a string, or a number some venues send for ids."""
    value = d[key]
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    raise TypeError(f"{key} must be a string, got {type(value).__name__}")


# ---------------------------------------------------------------- records for ctx


@_body_parser("/user/trade")
def parse_trades(body: Any) -> list[UserTrade]:
    """``TradesResponseBody`` (``GET /user/trade``) as trades, in the venue's order."""
    return [
        UserTrade(
            trade_id=_id(d, "id"),
            order_id=_id(d, "order_id"),
            symbol=_req_text(d, "symbol"),
            side=_text(d.get("side")),
            price=_dec(d["price"]),
            quantity=_dec(d["quantity"]),
            fee=_dec(d.get("fee")),
            order_type=_text(d.get("order_type")),
            time_in_force=_text(d.get("tif")),
            client_order_id=_text(d.get("client_order_id")),
            timestamp=_time(d.get("order_timestamp")),
            realised_pnl=_dec(d.get("realised_pnl_change")),
            margin_used=_dec(d.get("margin_used")),
            raw=d,
        )
        for d in _rows(body)
    ]


@_body_parser("/user/historic-orders")
def parse_historic_orders(body: Any) -> list[HistoricOrder]:
    """``HistoricOrdersResponseBody`` as terminal orders."""
    return [
        HistoricOrder(
            order_id=_id(d, "order_id"),
            client_order_id=_text(d.get("client_order_id")),
            symbol=_req_text(d, "symbol"),
            side=_text(d.get("side")),
            order_type=_text(d.get("type")),
            time_in_force=_text(d.get("time_in_force")),
            quantity=_dec(d.get("quantity")),
            price=_dec(d.get("price")),
            status=_req_text(d, "terminal_status"),
            status_time=_time(d.get("status_ts")),
            filled_quantity=_dec(d.get("filled_qty")),
            passive_quantity=_dec(d.get("passive_qty")),
            average_price=_dec_or_none(d.get("avg_price")),
            first_fill_time=_time(d.get("first_fill_ts")),
            last_fill_time=_time(d.get("last_fill_ts")),
            execution_state=_text(d.get("execution_state")),
            raw=d,
        )
        for d in _rows(body)
    ]


@_body_parser("/user/historic-twaps")
def parse_historic_twaps(body: Any) -> list[TwapInfo]:
    """``HistoricTwapsResponseBody`` as finished TWAPs (times: RFC 3339 or numbers)."""
    return [twap_info(d) for d in _rows(body)]


@_body_parser("/user/fees")
def parse_fees(body: Any) -> dict[str, FeeRate]:
    """``FeesResponseBody`` as fee rates (fractions) by symbol."""
    if type(body) is not dict:
        raise TypeError(f"expected a JSON object, got {type(body).__name__}")
    fees = body.get("fees")
    if fees is None:
        return {}
    if type(fees) is not dict:
        raise TypeError(f"fees must be an object, got {type(fees).__name__}")
    out: dict[str, FeeRate] = {}
    for symbol, entry in fees.items():
        if type(entry) is not dict:
            raise TypeError(f"fees[{symbol!r}] must be an object")
        out[symbol] = FeeRate(
            symbol=symbol,
            maker=_dec(entry["maker_fee"]) / FEE_SCALE,
            taker=_dec(entry["taker_fee"]) / FEE_SCALE,
            raw=entry,
        )
    return out


@_body_parser("/candles")
def parse_candles(body: Any) -> list[Candle]:
    """``CandlesResponseBody`` as candles (``candles: null`` = none)."""
    return [
        Candle(
            symbol=_req_text(d, "ticker"),
            resolution=_req_text(d, "resolution"),
            start=_time(d.get("startedAt")),
            open=_dec(d["open"]),
            high=_dec(d["high"]),
            low=_dec(d["low"]),
            close=_dec(d["close"]),
            base_volume=_dec(d.get("baseTokenVolume")),
            usd_volume=_dec(d.get("usdVolume")),
            trades=_count(d.get("trades")),
            starting_open_interest=_dec(d.get("startingOpenInterest")),
            mid_open=_dec(d.get("orderbookMidPriceOpen")),
            mid_close=_dec(d.get("orderbookMidPriceClose")),
            raw=d,
        )
        for d in _rows(body, "candles")
    ]


@_body_parser("/funding")
def parse_funding_history(body: Any) -> list[FundingRatePoint]:
    """``FundingHistoricResponseBody`` as one point per window (``rate`` may be null)."""
    return [
        FundingRatePoint(
            symbol=_req_text(d, "symbol"),
            interval_minutes=_count(d["intervalMinutes"]),
            window_start=_time(d.get("windowStart")),
            rate=_dec_or_none(d.get("rate")),
            raw=d,
        )
        for d in _rows(body)
    ]


@_body_parser("/open-interest")
def parse_open_interest_history(body: Any) -> list[OpenInterestPoint]:
    """``OpenInterestHistoricResponseBody`` as one point per window (value may be null)."""
    return [
        OpenInterestPoint(
            symbol=_req_text(d, "symbol"),
            interval_minutes=_count(d["intervalMinutes"]),
            window_start=_time(d.get("windowStart")),
            open_interest=_dec_or_none(d.get("openInterest")),
            raw=d,
        )
        for d in _rows(body)
    ]


@_body_parser("/user/leverage")
def parse_leverage(body: Any) -> Decimal:
    """``SetUserLeverageResponseBody``: the leverage now set."""
    return _dec(body["leverage"])


# ---------------------------------------------------------------- series for QfexRest only

_Convert = Callable[[Any], Any]


def _str(value: Any) -> str:
    if type(value) is not str:
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _str_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if type(value) is not list:
        raise TypeError(f"expected a list of strings, got {type(value).__name__}")
    return tuple(_str(v) for v in value)


_S, _D, _I, _T = _str, _dec, _count, _time

_WINDOW = {"symbol": _S, "intervalMinutes": _I, "windowStart": _T}
_PERIOD_META = {"duration": _S, "interval": _S, "start": _T, "end": _T, "count": _I}

SERIES: dict[str, tuple[dict[str, _Convert], dict[str, _Convert]]] = {
    "HistoricUserPnlResponseBody": (
        {"window_start": _T, "value": _D},
        {"duration": _S, "unit": _S, "interval_minutes": _I, "start": _T, "end": _T}
        | {"count": _I, "symbols": _str_list},
    ),
    "UserVolumeResponseBody": (
        {"date": _T, "maker_volume": _D, "taker_volume": _D, "volume": _D},
        {"range": _S, "interval": _S, "start": _T, "end": _T, "count": _I}
        | {"symbols": _str_list, "total_maker_volume": _D, "total_taker_volume": _D}
        | {"total_volume": _D},
    ),
    "ReferralRewardsResponseBody": (
        {"reward_date": _T, "amount": _D},
        _PERIOD_META | {"total_amount": _D},
    ),
    "HourlyPnlResponseBody": (
        {"symbol": _S, "hour": _T, "realised_pnl": _D, "unrealised_pnl": _D}
        | {"net_funding": _D, "fees": _D, "quantity": _D, "cost": _D},
        {"count": _I},
    ),
    "TakerVolumeHistoricResponseBody": (
        _WINDOW
        | {"takerBuyQty": _D, "takerSellQty": _D, "takerBuyNotional": _D}
        | {"takerSellNotional": _D, "netTakerQty": _D},
        {"count": _I},
    ),
    "SymbolLongShortHistoricResponseBody": (
        {"symbol": _S, "interval": _S, "windowStart": _T, "longUsers": _I, "shortUsers": _I},
        {"count": _I},
    ),
    "UnderlierHistoricResponseBody": (
        {"symbol": _S, "interval": _S, "windowStart": _T, "openPrice": _D}
        | {"closePrice": _D, "highPrice": _D, "lowPrice": _D},
        {"count": _I},
    ),
    "SettlementPricesResponseBody": (
        {"symbol": _S, "future_symbol": _S, "future_settlement_price": _D}
        | {"spot_settlement_price": _D, "asof": _S, "inserted_at": _T}
        | {"spot_to_future_ratio": _D},
        {"count": _I},
    ),
    "SymbolMetricsResponseBody": (
        {"symbol": _S, "current_mark_price": _D, "volume_24h_usd_notional": _D}
        | {"mark_price_change_24h_pct": _D, "open_interest": _D, "funding_rate_bps": _D},
        {"count": _I},
    ),
}
"""Component name -> (row fields, meta fields) with their converters; every row field is
required, meta fields are optional."""

_CALENDAR = {"expiration": _T, "active_until": _T, "future_symbol": _S, "qfex_symbol": _S}


def _convert_row(row: dict, spec: Mapping[str, _Convert]) -> dict[str, Any]:
    """``row`` with each spec field converted (all required); other fields kept as sent."""
    out = dict(row)
    for name, convert in spec.items():
        out[name] = convert(row[name])
    return out


@_body_parser("series")
def parse_series(body: Any, component: str) -> Series:
    """A list body named by its OpenAPI component (a key of :data:`SERIES`) as a
    :class:`Series`."""
    row_spec, meta_spec = SERIES[component]
    rows = tuple(_convert_row(row, row_spec) for row in _rows(body))
    meta = {
        name: (meta_spec[name](value) if name in meta_spec else value)
        for name, value in body.items()
        if name not in ("data", "$schema")
    }
    return Series(rows, meta, raw=body)


@_body_parser("/settlement-calendar")
def parse_settlement_calendar(body: Any) -> dict[str, Any]:
    """``SettlementCalendarEntry``: expiration and active-until as Unix seconds."""
    if type(body) is not dict:
        raise TypeError(f"expected a JSON object, got {type(body).__name__}")
    entry = _convert_row(body, _CALENDAR)
    entry.pop("$schema", None)
    return entry
