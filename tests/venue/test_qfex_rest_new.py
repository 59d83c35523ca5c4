"""QfexRest's methods for the whole OpenAPI against the running simulator: user history
(trades, historic orders and TWAPs, PnL, volume, fees, referral rewards, CSV exports), POST
/user/leverage, and the public market history (candles, funding, open interest, taker volume,
long/short, underlier, settlement, symbol metrics). State is made through the simulator's
engine, then read back over HTTP and compared with what the engine holds.

Also: a time parameter's forms, problem+json errors of the new routes, and that POST
/user/leverage is sent once even when the venue answers 503 (a tiny real HTTP server).
"""

from __future__ import annotations

import csv
import io
import logging
import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from venue_helpers import PRIMARY, SUB1, SimEnv

from qfexbot.core.records import (
    Candle,
    FeeRate,
    FundingRatePoint,
    HistoricOrder,
    OpenInterestPoint,
    TwapInfo,
    UserTrade,
)
from qfexbot.venues.qfex.adapter import QfexVenue
from qfexbot.venues.qfex.records import Series
from qfexbot.venues.qfex.rest import (
    QfexAmbiguousError,
    QfexApiError,
    QfexResponseError,
    QfexRest,
    iso_time,
)

D = Decimal


def market(side: str, qty: str = "1", symbol: str = "AAPL-USD", **extra: Any) -> dict[str, Any]:
    """add_order params as the trade socket hands them to the engine."""
    return {
        "symbol": symbol,
        "side": side,
        "order_type": "MARKET",
        "order_time_in_force": "IOC",
        "quantity": D(qty),
        **extra,
    }


def trade_some(simenv: SimEnv) -> list[Any]:
    """Three executions for the primary account: buy, buy, sell (distinct client ids)."""
    engine = simenv.sim.engine
    for side, coid in (("BUY", "b1"), ("BUY", "b2"), ("SELL", "s1")):
        engine.add_order(PRIMARY, market(side, client_order_id=coid))
    return list(engine.trade_log[PRIMARY])


def around_now() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(hours=1), now + timedelta(minutes=1)


# ---------------------------------------------------------------- time parameters


def test_time_parameters_in_every_form() -> None:
    moment = datetime(2026, 12, 1, 10, 0, 0, 250000, tzinfo=UTC)
    assert iso_time(moment) == "2026-12-01T10:00:00.250000Z"
    assert iso_time(moment.replace(tzinfo=None)) == "2026-12-01T10:00:00.250000Z"  # naive = UTC
    paris = moment.astimezone(timezone(timedelta(hours=1)))
    assert iso_time(paris) == "2026-12-01T10:00:00.250000Z"
    assert iso_time(moment.timestamp()) == "2026-12-01T10:00:00.250000Z"
    assert iso_time(1796119200) == "2026-12-01T10:00:00Z"
    assert iso_time("2026-12-01T10:00:00Z") == "2026-12-01T10:00:00Z"
    with pytest.raises(TypeError):
        iso_time(True)  # type: ignore[arg-type]


# ---------------------------------------------------------------- user history


async def test_refdata_of_one_ticker(venue: QfexVenue) -> None:
    (only,) = await venue.rest.refdata("AAPL-USD")
    assert only.symbol == "AAPL-USD"
    assert len(await venue.rest.refdata()) > 1


async def test_trades_newest_first_with_filters_and_paging(
    simenv: SimEnv, venue: QfexVenue
) -> None:
    log = trade_some(simenv)
    rest = venue.rest
    trades = await rest.trades()
    assert all(isinstance(t, UserTrade) for t in trades)
    assert [t.trade_id for t in trades] == [t.trade_id for t in reversed(log)]
    newest, oldest = trades[0], trades[-1]
    assert (newest.side, oldest.side) == ("SELL", "BUY")
    first = log[0]
    assert (oldest.order_id, oldest.symbol, oldest.order_type, oldest.time_in_force) == (
        first.order_id,
        "AAPL-USD",
        "MARKET",
        "IOC",
    )
    assert oldest.price == D(str(float(first.price)))
    assert oldest.quantity == D(str(float(first.quantity)))
    assert oldest.fee > 0 and oldest.margin_used > 0
    assert oldest.timestamp == pytest.approx(first.ts)
    sells = await rest.trades(side="SELL")
    assert sells and {t.side for t in sells} == {"SELL"}
    by_order = await rest.trades(order_id=first.order_id)
    assert by_order and {t.order_id for t in by_order} == {first.order_id}
    assert await rest.trades(order_type="LIMIT") == []
    page = await rest.trades(limit=1, offset=1)
    assert [t.trade_id for t in page] == [trades[1].trade_id]
    start, end = around_now()
    assert len(await rest.trades(start=start, end=end)) == len(trades)
    assert await rest.trades(start=end, end=end + timedelta(minutes=1)) == []
    assert await rest.trades(SUB1) == []  # the requested-account header is honoured
    with pytest.raises(QfexApiError) as info:
        await rest.trades(limit=1001)
    assert info.value.status == 422
    assert [e["location"] for e in info.value.errors] == ["query.limit"]


async def test_historic_orders_by_client_order_id(simenv: SimEnv, venue: QfexVenue) -> None:
    trade_some(simenv)
    rest = venue.rest
    orders = await rest.historic_orders()
    assert {o.client_order_id for o in orders} >= {"b1", "b2", "s1"}
    (b1,) = await rest.historic_orders(client_order_id="b1")
    assert isinstance(b1, HistoricOrder)
    assert (b1.status, b1.side, b1.order_type, b1.symbol) == ("FILLED", "BUY", "MARKET", "AAPL-USD")
    assert b1.filled_quantity == D(1) and b1.average_price is not None
    assert b1.first_fill_time is not None and b1.status_time is not None
    assert await rest.historic_orders(client_order_id="never-sent") == []
    (one,) = await rest.historic_orders(limit=1)
    assert one.order_id == orders[0].order_id


async def test_historic_twaps_and_their_csv(simenv: SimEnv, venue: QfexVenue) -> None:
    engine = simenv.sim.engine
    engine.twaps.add(
        PRIMARY,
        {
            "symbol": "AAPL-USD",
            "side": "BUY",
            "total_quantity": D(2),
            "num_orders": 2,
            "order_interval_secs": 30,
            "reduce_only": False,
            "client_twap_id": "rebalance-1",
        },
    )
    (running,) = engine.twaps.active(PRIMARY)
    engine.twaps.cancel(
        PRIMARY,
        {"symbol": "AAPL-USD", "order_id": running.twap_id, "cancel_order_id_type": "twap_id"},
    )
    (twap,) = await venue.rest.historic_twaps()
    assert isinstance(twap, TwapInfo)
    assert (twap.twap_id, twap.client_twap_id, twap.status) == (
        running.twap_id,
        "rebalance-1",
        "CANCELLED",
    )
    assert (twap.total_quantity, twap.total_orders, twap.order_interval) == (D(2), 2, 30)
    assert twap.filled_orders == 1 and twap.filled_quantity == D(1)
    assert twap.created_at == pytest.approx(running.created_at)
    assert await venue.rest.historic_twaps(symbol="CL-USD") == []
    text = await venue.rest.historic_twaps_csv()
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert "twap_id" in header and len(rows) == 1
    assert rows[0][header.index("twap_id")] == running.twap_id
    assert await venue.rest.historic_twaps_csv(symbol="CL-USD") == text.splitlines(True)[0]


async def test_csv_exports_are_text(simenv: SimEnv, venue: QfexVenue) -> None:
    log = trade_some(simenv)
    trades_header, *trade_rows = list(csv.reader(io.StringIO(await venue.rest.trades_csv())))
    assert "id" in trades_header and len(trade_rows) == len(log)
    ids = {row[trades_header.index("id")] for row in trade_rows}
    assert ids == {t.trade_id for t in log}
    orders = list(csv.reader(io.StringIO(await venue.rest.historic_orders_csv())))
    assert "client_order_id" in orders[0]
    coids = {row[orders[0].index("client_order_id")] for row in orders[1:]}
    assert coids >= {"b1", "b2", "s1"}
    (sub_header,) = list(csv.reader(io.StringIO(await venue.rest.trades_csv(SUB1))))
    assert sub_header == trades_header


async def test_fees_are_fractions(venue: QfexVenue) -> None:
    fees = await venue.rest.fees()
    aapl = fees["AAPL-USD"]
    assert isinstance(aapl, FeeRate)
    assert (aapl.maker, aapl.taker) == (D("0.0001"), D("0.0002"))  # the simulator's defaults
    assert set(fees) == {s.symbol for s in await venue.rest.refdata()}


async def test_pnl_volume_and_referral_series(simenv: SimEnv, venue: QfexVenue) -> None:
    trade_some(simenv)
    simenv.sim.engine.account_history.sample()
    rest = venue.rest
    pnl = await rest.historic_pnl(duration="1d", symbols=["AAPL-USD"])
    assert isinstance(pnl, Series)
    assert (pnl.meta["duration"], pnl.meta["unit"]) == ("1d", "number")
    assert pnl.meta["symbols"] == ("AAPL-USD",)
    assert pnl.meta["count"] == len(pnl.rows) >= 1
    assert all(isinstance(r["value"], Decimal) for r in pnl.rows)
    percent = await rest.historic_pnl(duration="1d", unit="percent")
    assert percent.meta["unit"] == "percent"
    volume = await rest.volume(period="1w")
    assert volume.meta["range"] == "1w" and volume.meta["interval"] == "1d"
    assert volume.meta["total_volume"] == sum(r["volume"] for r in volume.rows) > 0
    assert volume.meta["total_taker_volume"] > 0
    hourly = await rest.hourly_pnl(symbol="AAPL-USD")
    assert hourly.rows and {r["symbol"] for r in hourly.rows} == {"AAPL-USD"}
    assert all(isinstance(r["hour"], float) for r in hourly.rows)
    rewards = await rest.referral_rewards(duration="1w")
    assert rewards.rows == () and rewards.meta["total_amount"] == 0
    with pytest.raises(QfexApiError) as info:
        await rest.historic_pnl(duration="forever")
    assert info.value.status == 422


async def test_set_leverage_is_applied(simenv: SimEnv, venue: QfexVenue) -> None:
    engine = simenv.sim.engine
    assert await venue.rest.set_leverage("AAPL-USD", 5, SUB1) == D(5)
    assert engine.accounts[SUB1].leverage["AAPL-USD"] == 5
    assert await venue.rest.set_leverage("AAPL-USD", D(2)) == D(2)  # the primary account
    assert engine.accounts[PRIMARY].leverage["AAPL-USD"] == 2
    with pytest.raises(QfexApiError) as info:
        await venue.rest.set_leverage("AAPL-USD", 1000, SUB1)  # beyond the symbol's maximum
    assert info.value.status == 422
    trade_some(simenv)
    with pytest.raises(QfexApiError) as info:
        await venue.rest.set_leverage("AAPL-USD", 3)  # not while a position is open
    assert info.value.status == 422 and engine.accounts[PRIMARY].leverage["AAPL-USD"] == 2
    with pytest.raises(TypeError):
        await venue.rest.set_leverage("AAPL-USD", 2.5, SUB1)  # type: ignore[arg-type]


# ---------------------------------------------------------------- public market history


async def test_candles_funding_and_open_interest(simenv: SimEnv, venue: QfexVenue) -> None:
    trade_some(simenv)  # a trade and an open interest for the history
    simenv.sim.engine.market_history.sample()
    rest = venue.rest
    start, end = around_now()
    candles = await rest.candles("AAPL-USD", "1MIN", start, end)
    assert candles and all(isinstance(c, Candle) for c in candles)
    last = candles[-1]
    assert (last.symbol, last.resolution) == ("AAPL-USD", "1MIN")
    assert last.low <= min(last.open, last.close) <= max(last.open, last.close) <= last.high
    assert sum(c.trades for c in candles) >= 3
    assert last.start is not None and last.start % 60 == 0
    funding = await rest.funding_history("AAPL-USD", 60, start, end)
    assert funding and all(isinstance(p, FundingRatePoint) for p in funding)
    assert {p.interval_minutes for p in funding} == {60}
    starts = [p.window_start for p in funding]
    assert starts == sorted(starts)
    interest = await rest.open_interest_history("AAPL-USD", 5, start, end)
    assert interest and all(isinstance(p, OpenInterestPoint) for p in interest)
    assert interest[-1].open_interest == D(1)  # bought 2, sold 1
    for unknown in ("NOPE-USD", "AAPL-USD/../../user/fees", "AAPL-USD?resolution=1MIN"):
        with pytest.raises(QfexApiError) as info:
            await rest.candles(unknown, "1MIN", start, end)  # the symbol stays one path segment
        assert info.value.status == 404
    with pytest.raises(QfexApiError) as info:
        await rest.candles("AAPL-USD", "2MINS", start, end)
    assert info.value.status == 422
    assert [e["location"] for e in info.value.errors] == ["query.resolution"]
    with pytest.raises(QfexApiError) as info:
        await rest.funding_history("AAPL-USD", 60, end, start)  # reversed window
    assert info.value.status == 422


async def test_taker_volume_long_short_and_underlier(simenv: SimEnv, venue: QfexVenue) -> None:
    trade_some(simenv)
    simenv.sim.engine.market_history.sample()
    rest = venue.rest
    start, end = around_now()
    taker = await rest.taker_volume("AAPL-USD", 60, start, end)
    assert sum(r["takerBuyQty"] for r in taker.rows) == D(2)
    assert sum(r["takerSellQty"] for r in taker.rows) == D(1)
    assert taker.meta["count"] == len(taker.rows)
    sides = await rest.long_short("AAPL-USD", "1h", start, end)
    assert sides.rows and sides.rows[-1]["longUsers"] >= 1
    assert {r["interval"] for r in sides.rows} == {"1h"}
    under = await rest.underlier_history("AAPL-USD", "1h", start, end)
    assert under.rows
    row = under.rows[-1]
    assert row["lowPrice"] <= row["openPrice"] <= row["highPrice"]
    assert isinstance(row["windowStart"], float)


async def test_settlement_and_symbol_metrics(venue: QfexVenue) -> None:
    rest = venue.rest
    entry = await rest.settlement_calendar("CL-USD")
    assert entry["qfex_symbol"] == "CL-USD" and entry["future_symbol"].startswith("CL")
    assert entry["active_until"] < entry["expiration"]
    assert entry["active_until"] > time.time()
    later = await rest.settlement_calendar("CL-USD", at=entry["active_until"] + 1)
    assert later["expiration"] > entry["expiration"]
    with pytest.raises(QfexApiError) as info:
        await rest.settlement_calendar("AAPL-USD")
    assert info.value.status == 404
    prices = await rest.settlement_prices("CL-USD", limit=3)
    assert isinstance(prices, Series) and len(prices.rows) <= 3
    assert all(r["symbol"] == "CL-USD" for r in prices.rows)
    metrics = await rest.symbol_metrics()
    by_symbol = {r["symbol"]: r for r in metrics.rows}
    assert set(by_symbol) == {s.symbol for s in await rest.refdata()}
    assert by_symbol["AAPL-USD"]["current_mark_price"] > 0


# ---------------------------------------------------------------- a tiny real server


async def _fixed_app(seen: list[str], status: int, body: bytes, scope, receive, send) -> None:
    """Answer every request with ``status`` and ``body``; record ``METHOD path``."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            done = message["type"] != "lifespan.startup"
            await send({"type": f"{message['type']}.complete"})
            if done:
                return
    while (await receive()).get("more_body"):
        pass
    seen.append(f"{scope['method']} {scope['path']}")
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _serving(nursery: trio.Nursery, seen: list[str], status: int, body: bytes) -> str:
    """Start a tiny real HTTP server on 127.0.0.1; returns its base URL."""
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = logging.getLogger("tests.venue.hypercorn")
    config.graceful_timeout = 0.5
    app = partial(_fixed_app, seen, status, body)
    binds = await nursery.start(partial(hypercorn_serve, app, config))
    return binds[0]


async def test_set_leverage_is_never_retried(nursery: trio.Nursery) -> None:
    seen: list[str] = []
    url = await _serving(nursery, seen, 503, b'{"title":"Service Unavailable","status":503}')
    async with QfexRest(url, None, max_retries=3, backoff_initial=0.01) as rest:
        with trio.fail_after(10), pytest.raises(QfexAmbiguousError) as info:
            await rest.set_leverage("AAPL-USD", 5)
        assert info.value.status == 503
        assert seen == ["POST /user/leverage"]
        with trio.fail_after(10), pytest.raises(QfexApiError):
            await rest.fees()  # a GET is retried: 1 + 3 attempts
    assert seen.count("GET /user/fees") == 4


async def test_an_undocumented_success_body_is_a_response_error(nursery: trio.Nursery) -> None:
    seen: list[str] = []
    url = await _serving(nursery, seen, 200, b'{"leverage":"high","data":{"x":1}}')
    async with QfexRest(url, None) as rest:
        with trio.fail_after(10), pytest.raises(QfexResponseError, match="POST /user/leverage"):
            await rest.set_leverage("AAPL-USD", 5)
        with trio.fail_after(10), pytest.raises(QfexResponseError, match="GET /user/trade"):
            await rest.trades()
        start, end = around_now()
        with trio.fail_after(10), pytest.raises(QfexResponseError, match="/taker-volume/X"):
            await rest.taker_volume("X", 60, start, end)
