"""The public market-data REST routes over HTTP: every 200 body validated against its vendored
OpenAPI component, each documented parameter, 422 problems (``validate_problem``), 404 for an
unknown symbol, 405 for a wrong method. The simulator runs on an injected clock so the history
it reports is known exactly.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
import trio
from sim_client import OTHER, PRIMARY, make_config, market_order
from validate import validate_problem, validate_rest

from qfexbot.sim import QfexSimulator
from qfexbot.sim.qfex.market_history import RESOLUTIONS
from qfexbot.sim.qfex.rest_market import INTERVALS

D = Decimal
T0 = 1_759_968_000.0  # 2025-10-09T00:00:00Z
DAY0 = "2025-10-09T00:00:00Z"
WAIT = 5.0
MINUTE_ROUTES = (
    ("/funding/AAPL-USD", "FundingHistoricResponseBody"),
    ("/open-interest/AAPL-USD", "OpenInterestHistoricResponseBody"),
    ("/taker-volume/AAPL-USD", "TakerVolumeHistoricResponseBody"),
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Market:
    """A simulator with a known history: two trades, a price move, an underlier offset."""

    def __init__(self, sim: QfexSimulator, clock: Clock, client: httpx.AsyncClient) -> None:
        self.sim = sim
        self.clock = clock
        self.client = client

    async def ok(self, path: str, component: str, **params: Any) -> Any:
        response = await self.client.get(path, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        validate_rest(component, body)
        return body

    async def problem(self, path: str, status: int, location: str | None, **params: Any) -> Any:
        response = await self.client.get(path, params=params)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        validate_problem(body)
        assert body["status"] == status
        if location is not None:
            assert [e["location"] for e in body["errors"]] == [location]
        return body


@pytest.fixture
async def market(nursery: trio.Nursery) -> Any:
    clock = Clock()
    sim = QfexSimulator(make_config(), clock)
    urls = await nursery.start(sim.serve, "127.0.0.1")
    engine = sim.engine
    engine.market_history.sample()
    clock.now = T0 + 10
    sim.deliver(engine.add_order(PRIMARY, market_order("BUY", 2)))  # 200.01 x 2
    clock.now = T0 + 70
    sim.deliver(engine.add_order(OTHER, market_order("SELL", 1)))  # 199.99 x 1
    clock.now = T0 + 130
    engine.economics.underlier_offsets["AAPL-USD"] = D("-1.00")
    sim.set_price("AAPL-USD", D("205.00"))
    async with httpx.AsyncClient(base_url=urls.rest_url, timeout=WAIT) as client:
        yield Market(sim, clock, client)


def window(path: str, **params: Any) -> tuple[str, dict[str, Any]]:
    return path, {"fromISO": "2025-10-08T23:58:00Z", "toISO": "2025-10-09T00:03:10Z", **params}


async def test_candles(market: Market) -> None:
    body = await market.ok(
        "/candles/AAPL-USD",
        "CandlesResponseBody",
        resolution="1MIN",
        fromISO=DAY0,
        toISO="2025-10-09T00:03:00Z",
    )
    first, second, third = body["candles"]
    assert first["startedAt"].startswith("2025-10-09T00:00:00") and first["ticker"] == "AAPL-USD"
    assert (first["trades"], first["baseTokenVolume"], first["usdVolume"]) == (1, "2", "400.02")
    assert (first["open"], first["high"], first["startingOpenInterest"]) == (
        "200.00",
        "200.01",
        "0",
    )
    assert (second["trades"], second["startingOpenInterest"], second["low"]) == (1, "2", "199.99")
    assert third["trades"] == 0 and third["orderbookMidPriceClose"] == "205.00"
    day = await market.ok(
        "/candles/AAPL-USD", "CandlesResponseBody", resolution="1DAY", fromISO=DAY0, toISO=DAY0
    )
    assert [(c["resolution"], c["trades"]) for c in day["candles"]] == [("1DAY", 2)]
    naive = await market.ok(  # fromISO/toISO are plain strings: no offset means UTC
        "/candles/AAPL-USD",
        "CandlesResponseBody",
        resolution="1HOUR",
        fromISO="2025-10-09T00:00:00",
        toISO="2025-10-09T00:30:00",
    )
    assert naive["candles"][0]["startedAt"].startswith("2025-10-09T00:00:00")
    for resolution in RESOLUTIONS:
        await market.ok(
            "/candles/EUR-USD",
            "CandlesResponseBody",
            resolution=resolution,
            fromISO=DAY0,
            toISO=DAY0,
        )
    empty = await market.ok(
        "/candles/AAPL-USD",
        "CandlesResponseBody",
        resolution="1MIN",
        fromISO="2025-10-08T00:00:00Z",
        toISO="2025-10-08T01:00:00Z",
    )
    assert empty["candles"] == []


async def test_candle_parameter_problems(market: Market) -> None:
    path = "/candles/AAPL-USD"
    good = {"resolution": "1MIN", "fromISO": DAY0, "toISO": DAY0}
    body = await market.problem(path, 422, "query.resolution", **{**good, "resolution": "2MINS"})
    assert body["errors"][0]["value"] == "2MINS"  # the refused value, as Huma reports it
    for name in good:
        params = {k: v for k, v in good.items() if k != name}
        body = await market.problem(path, 422, f"query.{name}", **params)
        assert body["errors"][0]["message"] == "required query parameter is missing"
    body = await market.problem(path, 422, "query.toISO", **{**good, "toISO": "yesterday"})
    assert body["errors"][0]["message"] == "expected string to be RFC 3339 date-time"
    assert body["errors"][0]["value"] == "yesterday"
    await market.problem(path, 422, "query.fromISO", **{**good, "fromISO": "2025-10-10T00:00:00Z"})
    await market.problem(path, 422, "query.toISO", **{**good, "toISO": "2025-10-20T00:00:00Z"})
    await market.problem("/candles/NOPE-USD", 404, "path.symbol", **good)
    response = await market.client.post(path, params=good)
    assert response.status_code == 405
    validate_problem(response.json())


async def test_funding_and_open_interest_forward_fill(market: Market) -> None:
    path, params = window("/funding/AAPL-USD", intervalMinutes=1)
    body = await market.ok(path, "FundingHistoricResponseBody", **params)
    rates = [point["rate"] for point in body["data"]]
    assert body["count"] == len(rates) == 6 and rates[:2] == [None, None]
    engine = market.sim.engine
    now_rate = float(engine.economics.funding_rate("AAPL-USD", market.clock.now))
    assert rates[2] == pytest.approx(0.01 / 200)  # mark 200.01 (the last trade) over mid 200
    assert rates[4] == rates[5] == pytest.approx(now_rate) and now_rate > 0
    assert {p["intervalMinutes"] for p in body["data"]} == {1}
    assert body["data"][2]["windowStart"].startswith("2025-10-09T00:00:00")
    path, params = window("/open-interest/AAPL-USD", intervalMinutes=1)
    body = await market.ok(path, "OpenInterestHistoricResponseBody", **params)
    assert [p["openInterest"] for p in body["data"]] == [None, None, 2.0, 2.0, 2.0, 2.0]
    hourly = await market.ok(
        "/open-interest/AAPL-USD",
        "OpenInterestHistoricResponseBody",
        intervalMinutes=60,
        fromISO=DAY0,
        toISO="2025-10-09T02:00:00Z",
    )
    assert [p["openInterest"] for p in hourly["data"]] == [2.0, 2.0, 2.0]  # filled forward
    bounds = (
        ("0", "expected number >= 1"),
        ("1441", "expected number <= 1440"),
        ("x", "expected integer"),
    )
    for route, component in MINUTE_ROUTES:
        path, params = window(route, intervalMinutes=1440)
        await market.ok(path, component, **params)
        for bad, message in bounds:
            path, params = window(route, intervalMinutes=bad)
            body = await market.problem(path, 422, "query.intervalMinutes", **params)
            assert body["errors"][0]["message"] == message
        path, params = window(route)
        await market.problem(path, 422, "query.intervalMinutes", **params)
        path, params = window(route.replace("AAPL", "NOPE"), intervalMinutes=1)
        await market.problem(path, 404, "path.symbol", **params)


async def test_taker_volume(market: Market) -> None:
    path, params = window("/taker-volume/AAPL-USD", intervalMinutes=1)
    body = await market.ok(path, "TakerVolumeHistoricResponseBody", **params)
    by_start = {p["windowStart"][:19]: p for p in body["data"]}
    buy, sell = by_start["2025-10-09T00:00:00"], by_start["2025-10-09T00:01:00"]
    assert (buy["takerBuyQty"], buy["takerBuyNotional"], buy["netTakerQty"]) == (2.0, 400.02, 2.0)
    assert (sell["takerSellQty"], sell["takerSellNotional"], sell["netTakerQty"]) == (
        1.0,
        199.99,
        -1.0,
    )
    daily = await market.ok(
        "/taker-volume/AAPL-USD",
        "TakerVolumeHistoricResponseBody",
        intervalMinutes=1440,
        fromISO=DAY0,
        toISO=DAY0,
    )
    (point,) = daily["data"]
    assert (point["takerBuyQty"], point["takerSellQty"], point["netTakerQty"]) == (2.0, 1.0, 1.0)


async def test_long_short_and_underlier(market: Market) -> None:
    path, params = window("/symbol-long-short/AAPL-USD", interval="1m")
    body = await market.ok(path, "SymbolLongShortHistoricResponseBody", **params)
    counts = [(p["longUsers"], p["shortUsers"]) for p in body["data"]]
    assert counts == [(0, 0), (0, 0), (1, 0), (1, 1), (1, 1), (1, 1)]
    assert {p["interval"] for p in body["data"]} == {"1m"}
    path, params = window("/underlier/AAPL-USD", interval="1m")
    body = await market.ok(path, "UnderlierHistoricResponseBody", **params)
    points = {p["windowStart"][:19]: p for p in body["data"]}
    assert "2025-10-08T23:59:00" not in points  # before the first sample: left out
    assert points["2025-10-09T00:00:00"]["openPrice"] == 200.0
    moved = points["2025-10-09T00:02:00"]
    assert (moved["openPrice"], moved["closePrice"], moved["highPrice"]) == (204.0, 204.0, 204.0)
    filled = points["2025-10-09T00:03:00"]
    assert filled["openPrice"] == filled["lowPrice"] == filled["closePrice"] == 204.0
    for interval in INTERVALS:
        for route, component in (
            ("/symbol-long-short/AAPL-USD", "SymbolLongShortHistoricResponseBody"),
            ("/underlier/AAPL-USD", "UnderlierHistoricResponseBody"),
        ):
            path, params = window(route, interval=interval)
            await market.ok(path, component, **params)
    for route in ("/symbol-long-short/AAPL-USD", "/underlier/AAPL-USD"):
        path, params = window(route, interval="2h")
        await market.problem(path, 422, "query.interval", **params)
        path, params = window(route)
        await market.problem(path, 422, "query.interval", **params)


async def test_settlement_calendar(market: Market) -> None:
    body = await market.ok(
        "/settlement-calendar",
        "SettlementCalendarEntry",
        symbol="CL-USD",
        time="2026-04-13T00:00:00Z",
    )
    assert body == {
        "$schema": "https://api.qfex.com/schemas/SettlementCalendarEntry.json",
        "expiration": "2026-04-21T21:30:00Z",
        "active_until": "2026-04-13T21:30:00Z",
        "future_symbol": "CLK6",
        "qfex_symbol": "CL-USD",
    }
    current = await market.ok("/settlement-calendar", "SettlementCalendarEntry", symbol="CL-USD")
    assert current["future_symbol"] == "CLX5"  # 2025-10-09: November, active until 10-13
    await market.problem("/settlement-calendar", 404, "query.symbol", symbol="AAPL-USD")
    await market.problem("/settlement-calendar", 404, "query.symbol", symbol="NOPE-USD")
    await market.problem("/settlement-calendar", 422, "query.symbol")
    for bad in ("soon", "2026-04-13T00:00:00", "2026-04-13"):  # date-time: RFC 3339, offset
        await market.problem("/settlement-calendar", 422, "query.time", symbol="CL-USD", time=bad)


async def test_settlement_prices(market: Market) -> None:
    empty = await market.ok("/settlement-prices", "SettlementPricesResponseBody")
    assert (empty["data"], empty["count"]) == ([], 0)
    engine = market.sim.engine
    for day in range(3):
        market.clock.now = T0 + day * 86_400 + 21.5 * 3600 + 5
        engine.market_history.sample()
    body = await market.ok("/settlement-prices", "SettlementPricesResponseBody", symbol="CL-USD")
    assert [row["asof"] for row in body["data"]] == ["2025-10-11", "2025-10-10", "2025-10-09"]
    row = body["data"][0]
    assert row["symbol"] == "CL-USD" and row["future_symbol"] == "CLX5"
    assert row["future_settlement_price"] == row["spot_settlement_price"] == 70.0
    assert row["spot_to_future_ratio"] == 1.0
    limited = await market.ok("/settlement-prices", "SettlementPricesResponseBody", limit=1)
    assert [r["asof"] for r in limited["data"]] == ["2025-10-11"] and limited["count"] == 1
    await market.ok("/settlement-prices", "SettlementPricesResponseBody", limit=1000)
    windowed = await market.ok(
        "/settlement-prices",
        "SettlementPricesResponseBody",
        start="2025-10-10T00:00:00Z",
        end="2025-10-10T23:59:59Z",
    )
    assert [r["asof"] for r in windowed["data"]] == ["2025-10-10"]
    other = await market.ok("/settlement-prices", "SettlementPricesResponseBody", symbol="EUR-USD")
    assert other["data"] == []
    for bad, message in (("0", "expected number >= 1"), ("1001", "expected number <= 1000")):
        body = await market.problem("/settlement-prices", 422, "query.limit", limit=bad)
        assert body["errors"][0]["message"] == message
    await market.problem("/settlement-prices", 422, "query.start", start="today")
    await market.problem("/settlement-prices", 404, "query.symbol", symbol="NOPE-USD")


async def test_symbol_metrics_and_refdata_change(market: Market) -> None:
    engine = market.sim.engine
    body = await market.ok("/symbols/metrics", "SymbolMetricsResponseBody")
    assert body["count"] == len(engine.markets)
    row = next(r for r in body["data"] if r["symbol"] == "AAPL-USD")
    mark = engine.mark_price("AAPL-USD")
    assert row["current_mark_price"] == float(mark)
    assert row["volume_24h_usd_notional"] == pytest.approx(400.02 + 199.99)
    assert row["open_interest"] == 2.0
    assert row["mark_price_change_24h_pct"] == pytest.approx(float((mark - 200) / 200 * 100))
    rate = engine.economics.funding_rate("AAPL-USD", market.clock.now)
    assert row["funding_rate_bps"] == pytest.approx(float(rate * 10_000))
    refdata = await market.ok("/refdata", "RefdataResponse")
    changes = {r["symbol"]: r["price_change_24h"] for r in refdata["data"]}
    assert D(changes["AAPL-USD"]) == mark - D("200.00") and D(changes["EUR-USD"]) == 0
