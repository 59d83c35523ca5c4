"""The public market-data REST routes (candles, funding, open interest, ...), read from the
simulator's own market history.

``ROUTES`` maps a path template to its handler; ``rest.RestApp`` answers GETs that match one.
Windows start at multiples of the interval (``windowStart`` = floor(ts / interval) x interval)
from ``fromISO`` up to the window containing ``toISO``; funding, open interest and long/short
counts are forward filled from the last value seen (``null`` / 0 before the first one).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from qfexbot.sim.qfex.engine import Engine
from qfexbot.sim.qfex.market_history import (
    RESOLUTIONS,
    SETTLEMENT_ROOTS,
    CandleBar,
    MinuteBar,
    bucket,
    settlement_contract,
)
from qfexbot.sim.qfex.model import rfc3339
from qfexbot.sim.qfex.rest_params import SCHEMA_BASE, HttpError, Request

__all__ = ["INTERVALS", "MAX_WINDOWS", "ROUTES", "MarketHandler"]

MarketHandler = Callable[[Engine, Request, dict[str, str]], tuple[int, Any]]
"""(engine, request, path values) -> (status, JSON body); raises ``HttpError``."""

INTERVALS = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "4h": 14400, "1d": 86400}
"""The ``interval`` strings of /symbol-long-short and /underlier (qfex.md §6 #18: 1h, 4h, 1d)."""
MAX_WINDOWS = 5000
"""More windows than this in one request is a 422 (the venue's bound is unpublished)."""
MAX_INTERVAL_MINUTES = 1440
LIMIT_DEFAULT, LIMIT_MAX = 100, 1000
DATE_TIME = "expected string to be RFC 3339 date-time"

Window = tuple[int, list[MinuteBar], MinuteBar | None]
"""A window start, the minute bars inside it, and the last bar up to its end (forward fill)."""


# ------------------------------------------------------------ parameters


def _symbol(engine: Engine, values: dict[str, str]) -> str:
    symbol = values["symbol"]
    if symbol not in engine.markets:
        raise HttpError(404, f"unknown symbol {symbol!r}", "path.symbol")
    return symbol


def _required(request: Request, name: str) -> str:
    value = request.query.get(name)
    if not value:
        raise HttpError(422, "required query parameter is missing", f"query.{name}")
    return value


def _time(value: str, name: str, *, strict: bool = False) -> float:
    """An ISO 8601 time as Unix seconds. ``fromISO``/``toISO`` (plain strings in the spec) may
    omit the offset (UTC); ``strict`` (the ``date-time`` parameters) wants RFC 3339."""
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise HttpError(422, DATE_TIME, f"query.{name}", value=value) from None
    if moment.tzinfo is None:
        if strict or "T" not in value.upper():
            raise HttpError(422, DATE_TIME, f"query.{name}", value=value)
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _optional_time(request: Request, name: str) -> float | None:
    value = request.query.get(name)
    return None if value is None else _time(value, name, strict=True)


def _integer(request: Request, name: str, low: int, high: int, default: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        if default is None:
            raise HttpError(422, "required query parameter is missing", f"query.{name}")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HttpError(422, "expected integer", f"query.{name}", value=raw) from None
    if value < low:
        raise HttpError(422, f"expected number >= {low}", f"query.{name}", value=value)
    if value > high:
        raise HttpError(422, f"expected number <= {high}", f"query.{name}", value=value)
    return value


def _choice(request: Request, name: str, choices: dict[str, int]) -> str:
    value = _required(request, name)
    if value not in choices:
        raise HttpError(
            422,
            f"expected value to be one of {', '.join(choices)}",
            f"query.{name}",
            value=value,
        )
    return value


def _windows(request: Request, seconds: int) -> list[int]:
    """The window starts from ``fromISO`` to the window containing ``toISO``."""
    start = _time(_required(request, "fromISO"), "fromISO")
    end = _time(_required(request, "toISO"), "toISO")
    if start > end:
        raise HttpError(
            422, "fromISO must not be after toISO", "query.fromISO", value=request.query["fromISO"]
        )
    first, last = bucket(start, seconds), bucket(end, seconds)
    if (last - first) // seconds + 1 > MAX_WINDOWS:
        raise HttpError(422, f"more than {MAX_WINDOWS} windows requested", "query.toISO")
    return list(range(first, last + 1, seconds))


def _series(engine: Engine, symbol: str, windows: list[int], seconds: int) -> list[Window]:
    """Each window with its minute bars and the last bar seen by its end."""
    history = engine.market_history
    bars = history.minutes(symbol, windows[0], windows[-1] + seconds)
    last = history.before(symbol, windows[0])
    out: list[Window] = []
    index = 0
    for start in windows:
        inside = []
        while index < len(bars) and bars[index].start < start + seconds:
            inside.append(bars[index])
            index += 1
        if inside:
            last = inside[-1]
        out.append((start, inside, last))
    return out


def _listing(component: str, data: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    return 200, {"$schema": f"{SCHEMA_BASE}/{component}.json", "data": data, "count": len(data)}


# ------------------------------------------------------------ routes


def candles(engine: Engine, request: Request, values: dict[str, str]) -> tuple[int, Any]:
    """GET /candles/{symbol}: the bars that exist in the range, oldest first."""
    symbol = _symbol(engine, values)
    resolution = _choice(request, "resolution", RESOLUTIONS)
    windows = _windows(request, RESOLUTIONS[resolution])
    bars = engine.market_history.candles(symbol, resolution, windows[0], windows[-1])
    return 200, {
        "$schema": f"{SCHEMA_BASE}/CandlesResponseBody.json",
        "candles": [_candle_row(symbol, bar) for bar in bars],
    }


def _candle_row(symbol: str, bar: CandleBar) -> dict[str, Any]:
    return {
        "startedAt": rfc3339(bar.start),
        "ticker": symbol,
        "resolution": bar.resolution,
        "low": str(bar.low),
        "high": str(bar.high),
        "open": str(bar.open),
        "close": str(bar.close),
        "baseTokenVolume": str(bar.base_volume),
        "usdVolume": str(bar.usd_volume),
        "trades": bar.trades,
        "startingOpenInterest": str(bar.starting_open_interest),
        "orderbookMidPriceOpen": str(bar.mid_open),
        "orderbookMidPriceClose": str(bar.mid_close),
    }


def _minutes_series(
    engine: Engine, request: Request, values: dict[str, str]
) -> tuple[str, int, list[Window]]:
    """Symbol, ``intervalMinutes`` and the windows of the intervalMinutes routes."""
    symbol = _symbol(engine, values)
    minutes = _integer(request, "intervalMinutes", 1, MAX_INTERVAL_MINUTES)
    windows = _windows(request, minutes * 60)
    return symbol, minutes, _series(engine, symbol, windows, minutes * 60)


def funding(engine: Engine, request: Request, values: dict[str, str]) -> tuple[int, Any]:
    """GET /funding/{symbol}: the implied rate at each window's end, forward filled."""
    symbol, minutes, series = _minutes_series(engine, request, values)
    data = [
        {
            "symbol": symbol,
            "intervalMinutes": minutes,
            "windowStart": rfc3339(start),
            "rate": None if last is None else float(last.funding_rate),
        }
        for start, _, last in series
    ]
    return _listing("FundingHistoricResponseBody", data)


def open_interest(engine: Engine, request: Request, values: dict[str, str]) -> tuple[int, Any]:
    """GET /open-interest/{symbol}: open interest at each window's end, forward filled."""
    symbol, minutes, series = _minutes_series(engine, request, values)
    data = [
        {
            "symbol": symbol,
            "intervalMinutes": minutes,
            "windowStart": rfc3339(start),
            "openInterest": None if last is None else float(last.open_interest),
        }
        for start, _, last in series
    ]
    return _listing("OpenInterestHistoricResponseBody", data)


def taker_volume(engine: Engine, request: Request, values: dict[str, str]) -> tuple[int, Any]:
    """GET /taker-volume/{symbol}: aggressor buy/sell quantity and notional per window."""
    symbol, minutes, series = _minutes_series(engine, request, values)
    data = []
    for start, inside, _ in series:
        buy = sum((b.taker_buy_qty for b in inside), Decimal(0))
        sell = sum((b.taker_sell_qty for b in inside), Decimal(0))
        data.append(
            {
                "symbol": symbol,
                "intervalMinutes": minutes,
                "windowStart": rfc3339(start),
                "takerBuyQty": float(buy),
                "takerSellQty": float(sell),
                "takerBuyNotional": float(sum((b.taker_buy_notional for b in inside), Decimal(0))),
                "takerSellNotional": float(
                    sum((b.taker_sell_notional for b in inside), Decimal(0))
                ),
                "netTakerQty": float(buy - sell),
            }
        )
    return _listing("TakerVolumeHistoricResponseBody", data)


def _interval_series(
    engine: Engine, request: Request, values: dict[str, str]
) -> tuple[str, str, list[Window]]:
    """Symbol, ``interval`` and the windows of the interval-string routes."""
    symbol = _symbol(engine, values)
    interval = _choice(request, "interval", INTERVALS)
    windows = _windows(request, INTERVALS[interval])
    return symbol, interval, _series(engine, symbol, windows, INTERVALS[interval])


def long_short(engine: Engine, request: Request, values: dict[str, str]) -> tuple[int, Any]:
    """GET /symbol-long-short/{symbol}: accounts long and short at each window's end."""
    symbol, interval, series = _interval_series(engine, request, values)
    data = [
        {
            "symbol": symbol,
            "interval": interval,
            "windowStart": rfc3339(start),
            "longUsers": 0 if last is None else last.long_accounts,
            "shortUsers": 0 if last is None else last.short_accounts,
        }
        for start, _, last in series
    ]
    return _listing("SymbolLongShortHistoricResponseBody", data)


def underlier(engine: Engine, request: Request, values: dict[str, str]) -> tuple[int, Any]:
    """GET /underlier/{symbol}: underlier OHLC per window; a window without samples repeats
    the last close, windows before the first sample are left out."""
    symbol, interval, series = _interval_series(engine, request, values)
    data = []
    for start, inside, last in series:
        if last is None:
            continue
        if inside:
            prices = (
                inside[0].underlier_open,
                inside[-1].underlier_close,
                max(b.underlier_high for b in inside),
                min(b.underlier_low for b in inside),
            )
        else:
            prices = (last.underlier_close,) * 4
        data.append(
            {
                "symbol": symbol,
                "interval": interval,
                "windowStart": rfc3339(start),
                "openPrice": float(prices[0]),
                "closePrice": float(prices[1]),
                "highPrice": float(prices[2]),
                "lowPrice": float(prices[3]),
            }
        )
    return _listing("UnderlierHistoricResponseBody", data)


def settlement_calendar(
    engine: Engine, request: Request, values: dict[str, str]
) -> tuple[int, Any]:
    """GET /settlement-calendar: the dated future a futures-referenced symbol follows at ``time``
    (default now)."""
    symbol = _required(request, "symbol")
    if symbol not in engine.markets:
        raise HttpError(404, f"unknown symbol {symbol!r}", "query.symbol")
    at = _optional_time(request, "time")
    contract = settlement_contract(symbol, engine.clock() if at is None else at)
    if contract is None:
        raise HttpError(404, f"{symbol} does not reference a dated future", "query.symbol")
    future_symbol, expiration, active_until = contract
    return 200, {
        "$schema": f"{SCHEMA_BASE}/SettlementCalendarEntry.json",
        "expiration": _seconds(expiration),
        "active_until": _seconds(active_until),
        "future_symbol": future_symbol,
        "qfex_symbol": symbol,
    }


def settlement_prices(engine: Engine, request: Request, values: dict[str, str]) -> tuple[int, Any]:
    """GET /settlement-prices: daily settlements, newest first, filtered and limited."""
    symbol = request.query.get("symbol")
    if symbol is not None and symbol not in engine.markets:
        raise HttpError(404, f"unknown symbol {symbol!r}", "query.symbol")
    start, end = _optional_time(request, "start"), _optional_time(request, "end")
    limit = _integer(request, "limit", 1, LIMIT_MAX, LIMIT_DEFAULT)
    names = [symbol] if symbol is not None else list(SETTLEMENT_ROOTS)
    rows = [
        row
        for name in names
        if name in engine.markets
        for row in engine.market_history.settlements(name)
        if (start is None or row.inserted_at >= start) and (end is None or row.inserted_at <= end)
    ]
    rows.sort(key=lambda row: row.inserted_at, reverse=True)
    data = [
        {
            "symbol": row.symbol,
            "future_symbol": row.future_symbol,
            "future_settlement_price": float(row.future_price),
            "spot_settlement_price": float(row.spot_price),
            "asof": row.asof,
            "inserted_at": rfc3339(row.inserted_at),
            "spot_to_future_ratio": float(row.future_price / row.spot_price),
        }
        for row in rows[:limit]
    ]
    return _listing("SettlementPricesResponseBody", data)


def symbol_metrics(engine: Engine, request: Request, values: dict[str, str]) -> tuple[int, Any]:
    """GET /symbols/metrics: mark, 24 h volume and change, open interest, funding (bps)."""
    history = engine.market_history
    now = engine.clock()
    data = []
    for symbol in engine.markets:
        snap = history.snapshot(symbol)
        before = history.price_24h_ago(symbol, now)
        change = (snap.mark - before) / before * 100 if before else Decimal(0)
        data.append(
            {
                "symbol": symbol,
                "current_mark_price": float(snap.mark),
                "volume_24h_usd_notional": float(history.volume_24h(symbol, now)),
                "mark_price_change_24h_pct": float(change),
                "open_interest": float(snap.open_interest),
                "funding_rate_bps": float(snap.funding_rate * 10_000),
            }
        )
    return _listing("SymbolMetricsResponseBody", data)


def _seconds(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


ROUTES: dict[str, MarketHandler] = {
    "/candles/{symbol}": candles,
    "/funding/{symbol}": funding,
    "/open-interest/{symbol}": open_interest,
    "/taker-volume/{symbol}": taker_volume,
    "/symbol-long-short/{symbol}": long_short,
    "/underlier/{symbol}": underlier,
    "/settlement-calendar": settlement_calendar,
    "/settlement-prices": settlement_prices,
    "/symbols/metrics": symbol_metrics,
}
