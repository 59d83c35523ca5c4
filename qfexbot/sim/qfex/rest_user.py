"""The private REST routes of one account's history: trades, historic orders and TWAPs, pnl,
volume, fees, referral rewards, leverage, and the CSV exports (plan F10).

``ROUTES`` maps ``(method, path)`` to a handler ``(engine, request, account_id) -> (status,
body)``; ``rest.RestApp`` authenticates the request (the account is the signer's, or the owned
``x-qfex-requested-account-id``) before calling it. History is newest first, time series oldest
first; ``count`` is the number of rows returned (docs/simulator.md "Deviations").
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from qfexbot.sim.qfex.account_history import DAY, HOUR, PnlSample, day_start
from qfexbot.sim.qfex.engine import Engine
from qfexbot.sim.qfex.model import ORDER_TYPES, SIDES, CommandError, Order, TradeRecord, rfc3339
from qfexbot.sim.qfex.rest_params import (
    SCHEMA_BASE,
    HttpError,
    Raw,
    Request,
    duration_window,
    int_param,
    iso_param,
    limit_offset,
    symbols_param,
)
from qfexbot.sim.qfex.twap import Twap

__all__ = [
    "CSV_COLUMNS",
    "FEE_SCALE",
    "LIVE_STATUSES",
    "ROUTES",
    "UserHandler",
    "historic_order_row",
    "terminal_orders",
    "trade_row",
    "twap_row",
]

UserHandler = Callable[[Engine, Request, str], tuple[int, Any]]
"""(engine, request, account id) -> (status, JSON body or ``Raw``); raises ``HttpError``."""

FEE_SCALE = Decimal(10) ** 8
"""``/user/fees`` integers are the fee fraction x 1e8 (10000 = 0.0001 = 1 bp; plan Q16)."""
LIVE_STATUSES = frozenset({"ACK", "MODIFIED"})
"""Statuses of an order that is not finished although it may rest outside the book (a stop
waiting for its trigger): never a historic order."""
CSV_TYPE = "text/csv; charset=utf-8"


def _schema(name: str) -> str:
    return f"{SCHEMA_BASE}/{name}.json"


def _page(rows: list[dict[str, Any]], component: str) -> dict[str, Any]:
    return {"$schema": _schema(component), "count": len(rows), "data": rows}


def _window(start: float | None, end: float | None, location: str) -> None:
    if start is not None and end is not None and start > end:
        raise HttpError(422, "start must not be after end", location)


# ---------------------------------------------------------------- trades


def trade_row(record: TradeRecord) -> dict[str, Any]:
    """A ``Trade`` of ``/user/trade`` (``order_timestamp`` = the execution's Unix seconds)."""
    return {
        "id": record.trade_id,
        "order_timestamp": record.ts,
        "symbol": record.symbol,
        "price": float(record.price),
        "quantity": float(record.quantity),
        "side": record.side,
        "fee": float(record.fee),
        "margin_used": float(record.margin_used),
        "order_type": record.order_type,
        "tif": record.tif,
        "order_id": record.order_id,
        "realised_pnl_change": float(record.realised_pnl),
    }


def _enum(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query.get(name)
    if not value:
        return None
    if value.upper() not in allowed:
        raise HttpError(
            422, f"{name} must be one of {', '.join(allowed)}", f"query.{name}", value=value
        )
    return value.upper()


def _trade_window(request: Request) -> tuple[float | None, float | None]:
    """``start``/``end`` or their aliases ``start_time``/``end_time`` (not both pairs)."""
    plain = iso_param(request, "start"), iso_param(request, "end")
    timed = iso_param(request, "start_time"), iso_param(request, "end_time")
    if plain != (None, None) and timed != (None, None):
        raise HttpError(422, "give start/end or start_time/end_time, not both", "query.start_time")
    start, end = plain if plain != (None, None) else timed
    _window(start, end, "query.start")
    return start, end


def _trades(engine: Engine, request: Request, account_id: str) -> list[TradeRecord]:
    """The account's trades matching the query's filters, newest first."""
    order_id = request.query.get("exchange_order_id") or None
    symbol = request.query.get("symbol") or None
    order_type = _enum(request, "ordertype", ORDER_TYPES)
    side = _enum(request, "orderdirection", SIDES)
    start, end = _trade_window(request)
    return [
        t
        for t in reversed(engine.trade_log.get(account_id, ()))
        if order_id in (None, t.order_id)
        and symbol in (None, t.symbol)
        and order_type in (None, t.order_type)
        and side in (None, t.side)
        and (start is None or t.ts >= start)
        and (end is None or t.ts <= end)
    ]


def get_trades(engine: Engine, request: Request, account_id: str) -> tuple[int, Any]:
    """GET /user/trade: the account's trades, filtered and paged, newest first."""
    limit, offset = limit_offset(request)
    rows = [trade_row(t) for t in _trades(engine, request, account_id)[offset : offset + limit]]
    return 200, _page(rows, "TradesResponseBody")


def trades_csv(engine: Engine, request: Request, account_id: str) -> tuple[int, Any]:
    """GET /trades-csv: every trade of the account, newest first, one ``Trade`` per row."""
    return 200, _csv(
        CSV_COLUMNS["Trade"],
        (trade_row(t) for t in reversed(engine.trade_log.get(account_id, ()))),
    )


# ---------------------------------------------------------------- historic orders


def terminal_orders(engine: Engine, account_id: str) -> list[Order]:
    """The account's finished orders (filled, cancelled, rejected) still in the order log,
    newest (last status change) first; their fills are absorbed into the history first."""
    engine.account_history.absorb()
    finished = [
        o
        for o in engine.order_log.values()
        if o.account_id == account_id
        and o.order_id not in engine.orders
        and o.status not in LIVE_STATUSES
    ]
    finished.reverse()
    finished.sort(key=lambda o: o.update_time, reverse=True)
    return finished


def historic_order_row(engine: Engine, order: Order) -> dict[str, Any]:
    """A ``HistoricOrder``: fill figures from the trade history; ``execution_state`` FILLED,
    PARTIALLY_FILLED or UNFILLED and ``passive_qty`` the quantity filled as maker (plan Q25)."""
    fills = engine.account_history.order_fills(order.order_id)
    if fills.filled >= order.quantity:
        state, terminal = "FILLED", "FILLED"
    else:
        state = "PARTIALLY_FILLED" if fills.filled else "UNFILLED"
        # an IOC's last event is its partial fill; what was left of it was cancelled
        terminal = "CANCELLED" if order.status == "FILLED" else order.status
    average = fills.average_price
    return {
        "order_id": order.order_id,
        "terminal_status": terminal,
        "status_ts": rfc3339(order.update_time),
        "symbol": order.symbol,
        "side": order.side,
        "type": order.order_type,
        "time_in_force": order.tif,
        "quantity": float(order.quantity),
        "price": float(order.price),
        "client_order_id": order.client_order_id,
        "passive_qty": float(fills.passive),
        "filled_qty": float(fills.filled),
        "avg_price": None if average is None else float(average),
        "first_fill_ts": None if fills.first_ts is None else rfc3339(fills.first_ts),
        "last_fill_ts": None if fills.last_ts is None else rfc3339(fills.last_ts),
        "execution_state": state,
    }


def get_historic_orders(engine: Engine, request: Request, account_id: str) -> tuple[int, Any]:
    """GET /user/historic-orders: finished orders by symbol, client_order_id and status time."""
    limit, offset = limit_offset(request)
    symbol = request.query.get("symbol") or None
    client_order_id = request.query.get("client_order_id")
    start, end = iso_param(request, "start"), iso_param(request, "end")
    _window(start, end, "query.start")
    orders = [
        o
        for o in terminal_orders(engine, account_id)
        if symbol in (None, o.symbol)
        and client_order_id in (None, o.client_order_id)
        and (start is None or o.update_time >= start)
        and (end is None or o.update_time <= end)
    ]
    rows = [historic_order_row(engine, o) for o in orders[offset : offset + limit]]
    return 200, _page(rows, "HistoricOrdersResponseBody")


def historic_orders_csv(engine: Engine, request: Request, account_id: str) -> tuple[int, Any]:
    """GET /historic-orders-csv: every finished order of the account, newest first."""
    return 200, _csv(
        CSV_COLUMNS["HistoricOrder"],
        (historic_order_row(engine, o) for o in terminal_orders(engine, account_id)),
    )


# ---------------------------------------------------------------- historic TWAPs


def twap_row(twap: Twap) -> dict[str, Any]:
    """A ``HistoricTwap`` (times as RFC 3339, where the socket's ``twap_response`` has floats)."""
    return {
        "twap_id": twap.twap_id,
        "client_twap_id": twap.client_twap_id,
        "status": twap.status,
        "symbol": twap.symbol,
        "total_quantity": float(twap.total_quantity),
        "filled_quantity": float(twap.filled_quantity),
        "average_fill_price": float(twap.average_fill_price),
        "total_num_orders": twap.num_orders,
        "filled_num_orders": twap.filled_orders,
        "order_interval_secs": int(twap.interval),
        "reduce_only": twap.reduce_only,
        "side": twap.side,
        "updated_at": rfc3339(twap.updated_at),
        "created_at": rfc3339(twap.created_at),
    }


def _twaps(engine: Engine, request: Request, account_id: str) -> list[Twap]:
    symbol = request.query.get("symbol") or None
    finished = engine.twaps.finished(account_id)
    return [t for t in reversed(finished) if symbol in (None, t.symbol)]


def get_historic_twaps(engine: Engine, request: Request, account_id: str) -> tuple[int, Any]:
    """GET /user/historic-twaps: completed and cancelled TWAPs, newest first (no ``offset``)."""
    limit, _ = limit_offset(request, offset=False)
    rows = [twap_row(t) for t in _twaps(engine, request, account_id)[:limit]]
    return 200, _page(rows, "HistoricTwapsResponseBody")


def historic_twaps_csv(engine: Engine, request: Request, account_id: str) -> tuple[int, Any]:
    """GET /historic-twaps-csv: every finished TWAP (of ``symbol``), newest first."""
    return 200, _csv(
        CSV_COLUMNS["HistoricTwap"],
        (twap_row(t) for t in _twaps(engine, request, account_id)),
    )


# ---------------------------------------------------------------- pnl


def _percent(change: Decimal, base: Decimal) -> Decimal:
    return change / base * 100 if base else Decimal(0)


def get_historic_pnl(engine: Engine, request: Request, account_id: str) -> tuple[int, Any]:
    """GET /user/historic-pnl: the pnl change since the window's start at each sample.

    pnl = realised + funding - fees + unrealised of the chosen symbols; ``unit=percent`` divides
    the change by the account's equity at the window's start (plan Q21).
    """
    now = engine.clock()
    duration, start = duration_window(request, "duration", now)
    unit = request.query.get("unit") or "number"
    if unit not in ("number", "percent"):
        raise HttpError(422, "unit must be one of number, percent", "query.unit", value=unit)
    symbols = symbols_param(request)
    samples = engine.account_history.samples(account_id)
    before = [s for s in samples if s.ts < start]
    inside = [s for s in samples if s.ts >= start]
    base: PnlSample | None = before[-1] if before else None
    base_pnl = base.total(symbols) if base else Decimal(0)
    base_equity = base.equity if base else (inside[0].equity if inside else Decimal(0))
    data = []
    for sample in inside:
        change = sample.total(symbols) - base_pnl
        value = _percent(change, base_equity) if unit == "percent" else change
        data.append({"window_start": rfc3339(sample.ts), "value": float(value)})
    body: dict[str, Any] = {
        "$schema": _schema("HistoricUserPnlResponseBody"),
        "duration": duration,
        "unit": unit,
        "interval_minutes": max(1, round(engine.config.equity_interval / 60)),
        "start": rfc3339(start),
        "end": rfc3339(now),
        "data": data,
        "count": len(data),
    }
    if symbols is not None:
        body["symbols"] = symbols
    return 200, body


def get_hourly_pnl(engine: Engine, request: Request, account_id: str) -> tuple[int, Any]:
    """GET /pnl: each position's first sample in each UTC hour, oldest first, for at most
    ``limit_hours`` hours (the latest ones) between ``start`` and ``end`` (plan Q22)."""
    limit_hours = int_param(request, "limit_hours", 168, 1, 2160)
    start, end = iso_param(request, "start"), iso_param(request, "end")
    _window(start, end, "query.start")
    symbols = symbols_param(request)
    engine.account_history.record_hours()
    rows = [
        r
        for r in engine.account_history.hours(account_id)
        if (symbols is None or r.symbol in symbols)
        and (start is None or r.hour >= start - start % HOUR)
        and (end is None or r.hour <= end)
    ]
    hours = sorted({r.hour for r in rows})[-limit_hours:]
    kept = [r for r in rows if hours and r.hour >= hours[0]]
    data = [
        {
            "symbol": r.symbol,
            "hour": rfc3339(r.hour),
            "realised_pnl": float(r.realised_pnl),
            "unrealised_pnl": float(r.unrealised_pnl),
            "net_funding": float(r.net_funding),
            "fees": float(r.fees),
            "quantity": float(r.quantity),
            "cost": float(r.cost),
        }
        for r in kept
    ]
    return 200, _page(data, "HourlyPnlResponseBody")


# ---------------------------------------------------------------- volume, fees, rewards

VOLUME_RANGES = ("1d", "1w", "1m", "3m", "ytd", "all")


def get_volume(engine: Engine, request: Request, account_id: str) -> tuple[int, Any]:
    """GET /user/volume: maker/taker notional per UTC day (every day of the range, oldest first;
    ``all`` starts at the account's first trading day)."""
    now = engine.clock()
    range_, start = duration_window(request, "range", now, names=VOLUME_RANGES)
    symbols = symbols_param(request)
    history = engine.account_history
    history.absorb()
    volume = history.volume(account_id)
    if range_ == "all":
        start = history.first_day(account_id) or now
    data = []
    totals = [Decimal(0), Decimal(0)]
    day = day_start(start)
    while day <= now:
        maker = taker = Decimal(0)
        for symbol, (m, t) in volume.get(day, {}).items():
            if symbols is None or symbol in symbols:
                maker, taker = maker + m, taker + t
        totals = [totals[0] + maker, totals[1] + taker]
        data.append(
            {
                "date": rfc3339(day),
                "maker_volume": float(maker),
                "taker_volume": float(taker),
                "volume": float(maker + taker),
            }
        )
        day += DAY
    body: dict[str, Any] = {
        "$schema": _schema("UserVolumeResponseBody"),
        "range": range_,
        "interval": "1d",
        "start": rfc3339(day_start(start)),
        "end": rfc3339(now),
        "data": data,
        "count": len(data),
        "total_maker_volume": float(totals[0]),
        "total_taker_volume": float(totals[1]),
        "total_volume": float(totals[0] + totals[1]),
    }
    if symbols is not None:
        body["symbols"] = symbols
    return 200, body


def fee_units(rate: Decimal) -> int:
    """A fee fraction in ``/user/fees`` units (x 1e8, rounded to the nearest integer)."""
    return int((rate * FEE_SCALE).to_integral_value())


def get_fees(engine: Engine, request: Request, account_id: str) -> tuple[int, Any]:
    """GET /user/fees: the account's maker and taker fee of every symbol (negative = rebate)."""
    economics = engine.economics
    fees = {
        symbol: {
            "maker_fee": fee_units(economics.fee_rate(account_id, symbol, maker=True)),
            "taker_fee": fee_units(economics.fee_rate(account_id, symbol, maker=False)),
        }
        for symbol in engine.markets
    }
    return 200, {"$schema": _schema("FeesResponseBody"), "fees": fees}


def get_referral_rewards(engine: Engine, request: Request, account_id: str) -> tuple[int, Any]:
    """GET /user/referral-rewards: the simulator has no referrals, so never a reward (Q23)."""
    now = engine.clock()
    duration, start = duration_window(request, "duration", now)
    return 200, {
        "$schema": _schema("ReferralRewardsResponseBody"),
        "duration": duration,
        "interval": "1d",
        "start": rfc3339(start),
        "end": rfc3339(now),
        "data": [],
        "count": 0,
        "total_amount": 0.0,
    }


# ---------------------------------------------------------------- leverage

LEVERAGE_BODY = {"$schema": str, "symbol": str, "leverage": (int, Decimal)}


def _leverage_body(request: Request) -> tuple[str, Decimal]:
    """``{symbol, leverage}`` checked as ``SetUserLeverageRequestBody`` (no other property)."""
    body = request.json()
    if not isinstance(body, dict):
        raise HttpError(422, "expected object", "body", value=body)
    for name in body:
        if name not in LEVERAGE_BODY:
            raise HttpError(422, "unexpected property", f"body.{name}", value=body[name])
    for name in ("symbol", "leverage"):
        if name not in body:
            raise HttpError(422, "expected required property to be present", f"body.{name}")
    for name, kind in LEVERAGE_BODY.items():
        value = body.get(name)
        if name in body and (isinstance(value, bool) or not isinstance(value, kind)):
            expected = "string" if kind is str else "number"
            raise HttpError(422, f"expected {expected}", f"body.{name}", value=_plain(value))
    return body["symbol"], Decimal(body["leverage"])


def set_leverage(engine: Engine, request: Request, account_id: str) -> tuple[int, Any]:
    """POST /user/leverage: ``Engine.set_leverage`` rules; a refusal is 422 with its reason."""
    symbol, leverage = _leverage_body(request)
    try:
        engine.set_leverage(account_id, symbol, leverage)
    except CommandError as exc:
        location = "body.symbol" if symbol not in engine.markets else "body.leverage"
        raise HttpError(422, exc.message, location, value=_plain(leverage)) from None
    body = {"$schema": _schema("SetUserLeverageResponseBody"), "leverage": float(leverage)}
    return 200, Raw("application/json", json.dumps(body).encode(), headers=(("statuscode", "200"),))


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


# ---------------------------------------------------------------- CSV


CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "Trade": (
        "id",
        "order_timestamp",
        "symbol",
        "price",
        "quantity",
        "side",
        "fee",
        "margin_used",
        "order_type",
        "tif",
        "order_id",
        "realised_pnl_change",
    ),
    "HistoricOrder": (
        "order_id",
        "terminal_status",
        "status_ts",
        "symbol",
        "side",
        "type",
        "time_in_force",
        "quantity",
        "price",
        "client_order_id",
        "passive_qty",
        "filled_qty",
        "avg_price",
        "first_fill_ts",
        "last_fill_ts",
        "execution_state",
    ),
    "HistoricTwap": (
        "twap_id",
        "client_twap_id",
        "status",
        "symbol",
        "total_quantity",
        "filled_quantity",
        "average_fill_price",
        "total_num_orders",
        "filled_num_orders",
        "order_interval_secs",
        "reduce_only",
        "side",
        "updated_at",
        "created_at",
    ),
}
"""The columns of each CSV export: the field names of its JSON twin's row (plan Q24)."""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _csv(columns: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> Raw:
    """An RFC 4180 CSV (CRLF, minimal quoting) with a header row; null cells are empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in columns])
    return Raw(CSV_TYPE, out.getvalue().encode())


ROUTES: dict[tuple[str, str], UserHandler] = {
    ("GET", "/user/trade"): get_trades,
    ("GET", "/user/historic-orders"): get_historic_orders,
    ("GET", "/user/historic-twaps"): get_historic_twaps,
    ("GET", "/user/historic-pnl"): get_historic_pnl,
    ("GET", "/pnl"): get_hourly_pnl,
    ("GET", "/user/volume"): get_volume,
    ("GET", "/user/fees"): get_fees,
    ("GET", "/user/referral-rewards"): get_referral_rewards,
    ("POST", "/user/leverage"): set_leverage,
    ("GET", "/trades-csv"): trades_csv,
    ("GET", "/historic-orders-csv"): historic_orders_csv,
    ("GET", "/historic-twaps-csv"): historic_twaps_csv,
}
