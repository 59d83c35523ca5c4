"""The frame kinds issue 14 types: stop orders, TWAPs, leverage levels, open-order snapshots with
TWAPs and stops, attached take-profit / stop-loss, and the six newer market-data channels.

Fixtures are in frames/qfex_frames.json. Those written to the vendor's schema are checked
against the vendored schemas first (tests/spec/validate.py), so the parser is tested on what
the spec says arrives; the ``*_as_strings`` / ``*_number`` variants are the ones qfex.md §3.1
documents beyond the schema (numbers sent as strings and the other way round).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from qfexbot.core.records import LeverageLevel, OpenOrders, TwapInfo
from qfexbot.events import (
    BookEvent,
    CandleEvent,
    FundingRateEvent,
    MarketStatsEvent,
    MarkPriceEvent,
    OpenInterestEvent,
    OrderUpdateEvent,
    PriceBandEvent,
    StopOrderEvent,
    TwapEvent,
    UnderlierEvent,
)
from qfexbot.venues.qfex.parse import (
    LeverageLevels,
    OrdersSnapshot,
    ParseError,
    TradesSnapshot,
    parse_mds_frame,
    parse_trade_frame,
)

SPEC_TESTS = str(Path(__file__).parents[1] / "spec")  # validate.py, as tests/spec imports it
if SPEC_TESTS not in sys.path:
    sys.path.append(SPEC_TESTS)

from validate import ValidationError, validate_mds_frame, validate_trade_frame  # noqa: E402

FRAMES = json.loads((Path(__file__).parent / "frames" / "qfex_frames.json").read_text())
TRADE, MDS = FRAMES["trade"], FRAMES["mds"]
ACCT = "0020ce8e-eaee-480e-8d7f-b9241d756ee5"
NOW = 1758208771.0

SCHEMA_TRADE = [
    "order_response_tp_sl",
    "order_response_stop_loss",
    "stop_order_response",
    "twap_response",
    "twap_response_nulls",
    "all_orders_response_twaps",
    "all_orders_response_empty",
    "available_leverage_levels_response",
    "user_trades_response_full",
]
SCHEMA_MDS = [
    "candle",
    "funding",
    "underlier",
    "underlier_internal",
    "open_interest",
    "minmax_price",
    "market_stats",
    "market_stats_empty",
]
BEYOND_SCHEMA_MDS = [
    "candle_numbers_as_strings",
    "funding_numbers_as_strings",
    "open_interest_number",
    "minmax_price_numbers",
]


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def one(name: str):
    (item,) = parse_trade_frame(TRADE[name], "qfex", ACCT, NOW)
    return item


def mds_one(name: str):
    (event,) = parse_mds_frame(MDS[name], "qfex", NOW)
    return event


@pytest.mark.parametrize("name", SCHEMA_TRADE)
def test_trade_fixtures_follow_the_vendored_schema(name: str) -> None:
    validate_trade_frame(json.loads(TRADE[name]))


@pytest.mark.parametrize("name", SCHEMA_MDS)
def test_mds_fixtures_follow_the_vendored_schema(name: str) -> None:
    validate_mds_frame(json.loads(MDS[name]))


@pytest.mark.parametrize("name", BEYOND_SCHEMA_MDS)
def test_beyond_schema_fixtures_are_really_outside_it(name: str) -> None:
    # They exist to test what the schema does not cover; if the schema covered them, the
    # variants above would be the same test twice.
    with pytest.raises(ValidationError):
        validate_mds_frame(json.loads(MDS[name]))


# ---------------------------------------------------------------- trade socket


def test_order_response_carries_attached_take_profit_and_stop_loss() -> None:
    order = one("order_response_tp_sl")
    assert isinstance(order, OrderUpdateEvent)
    assert (order.take_profit, order.stop_loss) == (Decimal("210.0"), Decimal("190.0"))
    plain = one("order_response")  # 0 = none
    assert (plain.take_profit, plain.stop_loss) == (0, 0)


def test_stop_loss_reported_as_an_order_response() -> None:
    order = one("order_response_stop_loss")
    assert (order.order_type, order.time_in_force, order.side) == ("STOP_LOSS", "IOC", "SELL")
    assert order.price == Decimal("190.5") and not order.terminal


def test_stop_order_response() -> None:
    stop = one("stop_order_response")
    assert isinstance(stop, StopOrderEvent) and stop.is_private
    assert stop.stop_order_id == "9d1c4b7e-1111-4a2b-8c3d-0e5f6a7b8c9d"
    assert (stop.symbol, stop.side, stop.stop_type) == ("AAPL-USD", "SELL", "STOP_LOSS")
    assert (stop.price, stop.quantity) == (Decimal("190.5"), Decimal("1.0"))
    assert stop.client_order_id == "guard-1" and stop.account_id == ACCT
    # nanosecond RFC 3339 time, to the microsecond
    assert stop.update_time == pytest.approx(utc("2025-09-18T15:19:30.551284"), abs=1e-6)


def test_twap_response() -> None:
    twap = one("twap_response")
    assert isinstance(twap, TwapEvent) and twap.is_private
    assert (twap.twap_id, twap.client_twap_id) == (
        "0c7c8e4d-f67e-4aa5-9c64-36a1a622ac35",
        "rebalance-aapl-001",
    )
    assert (twap.symbol, twap.side, twap.status) == ("GOOG-USD", "BUY", "ACTIVE")
    assert (twap.total_quantity, twap.filled_quantity) == (Decimal(5), Decimal(1))
    assert twap.average_fill_price == Decimal("251.25")
    assert (twap.total_orders, twap.order_interval, twap.reduce_only) == (5, 30, False)
    assert (twap.created_at, twap.updated_at) == (1758208770.5512846, 1758208800.25)


def test_twap_response_with_the_nullable_fields_null() -> None:
    twap = one("twap_response_nulls")
    assert twap.client_twap_id == "" and twap.created_at is None and twap.updated_at is None
    assert twap.status == "ENGINE_STATUS" and twap.reduce_only is True  # status is free text


def test_open_orders_snapshot_with_twaps_and_stop_orders() -> None:
    snap = one("all_orders_response_twaps")
    assert isinstance(snap, OrdersSnapshot)
    (order,) = snap.orders
    assert order.order_type == "STOP_LOSS"
    (twap,) = snap.twaps
    assert isinstance(twap, TwapInfo) and twap.client_twap_id == "rebalance-aapl-001"
    assert twap.filled_orders is None  # the socket does not send it
    (stop,) = snap.stop_orders
    assert isinstance(stop, StopOrderEvent) and stop.stop_type == "STOP_LOSS"
    neutral = snap.open_orders()
    assert isinstance(neutral, OpenOrders)
    assert (neutral.orders, neutral.twaps, neutral.stop_orders) == (
        snap.orders,
        snap.twaps,
        snap.stop_orders,
    )
    empty = one("all_orders_response_empty")
    assert (empty.orders, empty.twaps, empty.stop_orders) == ((), (), ())
    older = one("all_orders_response")  # the get_order example: no twaps key at all
    assert older.twaps == () and len(older.orders) == 1


def test_leverage_levels_both_cap_names() -> None:
    reply = one("available_leverage_levels_response")
    assert isinstance(reply, LeverageLevels)
    assert reply.reply == "available_leverage_levels_response"
    legacy, current = reply.levels
    assert isinstance(legacy, LeverageLevel)
    assert (legacy.symbol, legacy.leverage, legacy.max_notional) == (
        "META-USD",
        Decimal(1),
        Decimal("195000.0"),
    )
    assert legacy.initial_margin == Decimal("1.0") and legacy.level_id == "04349aaf-0000"
    assert (current.leverage, current.max_notional) == (Decimal(20), Decimal("97500.0"))


def test_user_leverage_with_leverage_as_a_string_or_a_number() -> None:
    (level,) = one("user_leverage_response").levels
    assert level.leverage == Decimal(20) and level.max_notional == Decimal("100000.0")
    reply = one("user_leverage_response_number")
    assert reply.reply == "user_leverage_response"
    (number,) = reply.levels
    assert number.leverage == Decimal("10.0") and number.max_notional == Decimal(50000)


def test_user_trades_as_records_in_both_shapes() -> None:
    snap = one("user_trades_response_full")
    assert isinstance(snap, TradesSnapshot)
    (trade,) = snap.trades
    assert (trade.trade_id, trade.order_id, trade.side) == ("t-9", "o-9", "SELL")
    assert (trade.order_type, trade.time_in_force) == ("STOP_LOSS", "IOC")
    assert (trade.price, trade.quantity, trade.fee) == (
        Decimal("200.5"),
        Decimal("2.0"),
        Decimal("0.04"),
    )
    assert trade.is_taker is True and trade.client_order_id == "guard-1"
    assert trade.timestamp == 1758208771.25
    (fill,) = snap.fills  # the fills view is unchanged
    assert fill.trade_id == "t-9"
    (page,) = one("user_trades").trades  # the docs page shape: aggressor_side, no side
    assert page.side == "BUY" and page.is_taker is None and page.timestamp == 1746908400.0
    (spec,) = one("user_trades_response").trades  # the AsyncAPI shape
    assert spec.timestamp is None and spec.is_taker is None


# ---------------------------------------------------------------- market data


def test_candle() -> None:
    candle = mds_one("candle")
    assert isinstance(candle, CandleEvent) and not candle.is_private
    assert (candle.symbol, candle.resolution) == ("PLTR-USD", "1MIN")
    assert candle.start == utc("2025-08-20T09:27:00")
    assert (candle.open, candle.high, candle.low, candle.close) == (
        Decimal("156.475000"),
        Decimal("157.225000"),
        Decimal("155.700000"),
        Decimal("156.900000"),
    )
    assert (candle.usd_volume, candle.trades) == (Decimal(16700), 16)
    assert candle.account_id == "" and candle.received_at == NOW


def test_candle_with_numbers_as_strings_and_strings_as_numbers() -> None:
    candle = mds_one("candle_numbers_as_strings")
    assert (candle.usd_volume, candle.trades, candle.resolution) == (Decimal(16700), 16, "5MINS")
    assert candle.low == Decimal("155.7") and candle.high == Decimal("157.225")


def test_funding_rate() -> None:
    funding = mds_one("funding")
    assert isinstance(funding, FundingRateEvent) and not funding.is_private
    assert (funding.symbol, funding.rate, funding.time_remaining) == (
        "AAPL-USD",
        Decimal("0.021"),
        30.0,
    )
    assert funding.timestamp == pytest.approx(utc("2014-11-07T08:19:27.028459"))
    variant = mds_one("funding_numbers_as_strings")
    assert (variant.rate, variant.time_remaining) == (Decimal("-0.0005"), 30.0)


def test_open_interest() -> None:
    oi = mds_one("open_interest")
    assert isinstance(oi, OpenInterestEvent) and oi.open_interest == Decimal(1000000)
    assert oi.timestamp == utc("2025-05-08T20:52:48")
    assert mds_one("open_interest_number").open_interest == Decimal("12.5")


def test_underlier_both_sources() -> None:
    external = mds_one("underlier")
    assert isinstance(external, UnderlierEvent)
    assert (external.price, external.source) == (Decimal("437.45"), "external")
    assert mds_one("underlier_internal").source == "internal"


def test_price_band() -> None:
    band = mds_one("minmax_price")
    assert isinstance(band, PriceBandEvent)
    assert (band.min_price, band.max_price) == (Decimal("400.00"), Decimal("450.00"))
    numbers = mds_one("minmax_price_numbers")
    assert (numbers.min_price, numbers.max_price) == (Decimal(400), Decimal("450.5"))


def test_market_stats() -> None:
    stats = mds_one("market_stats")
    assert isinstance(stats, MarketStatsEvent) and stats.symbol == "*"
    assert stats.sequence == 30272540 and stats.timestamp == utc("2025-09-04T09:26:40")
    (bbo,) = stats.bbos
    assert isinstance(bbo, BookEvent) and bbo.channel == "bbo"
    assert bbo.bids == ((Decimal("10101.1"), Decimal("0.4505414")),)
    (mark,) = stats.mark_prices
    assert isinstance(mark, MarkPriceEvent) and mark.price == Decimal(10102)
    (oi,) = stats.open_interests
    assert oi.symbol == "AAPL-USD" and oi.open_interest == Decimal("12.5")
    assert stats.daily_volumes == (("AAPL-USD", Decimal("12.5")),)
    empty = mds_one("market_stats_empty")
    assert (empty.symbol, empty.bbos, empty.daily_volumes) == ("AAPL-USD", (), ())


def test_times_in_every_rfc3339_spelling() -> None:
    for spelling in ("2025-05-08T20:52:48Z", "2025-05-08t20:52:48z", "2025-05-08T22:52:48+02:00"):
        frame = json.dumps({"type": "underlier", "symbol": "X", "price": "1", "time": spelling})
        (event,) = parse_mds_frame(frame, "qfex", NOW)
        assert event.timestamp == utc("2025-05-08T20:52:48"), spelling
    naive = '{"type":"underlier","symbol":"X","price":"1","time":"2025-05-08T20:52:48"}'
    assert parse_mds_frame(naive, "qfex", NOW)[0].timestamp == utc("2025-05-08T20:52:48")


def test_new_channels_in_an_envelope_and_an_array() -> None:
    envelope = json.dumps(
        {
            "type": "channel_data",
            "channel": "open_interest",
            "contents": [{"symbol": "AAPL-USD", "open_interest": "3"}],
        }
    )
    (oi,) = parse_mds_frame(envelope, "qfex", NOW)
    assert isinstance(oi, OpenInterestEvent) and oi.timestamp is None
    array = "[" + MDS["candle"] + "," + MDS["funding"] + "]"
    assert [type(e) for e in parse_mds_frame(array, "qfex", NOW)] == [CandleEvent, FundingRateEvent]


@pytest.mark.parametrize(
    "text",
    [
        '{"type":"candle","symbol":"X","resolution":"1MIN","open":"1","high":"1","low":"1"}',
        '{"type":"candle","symbol":"X","resolution":"1MIN","open":"1","high":"1","low":"1",'
        '"close":"1","start":"yesterday"}',
        '{"type":"funding","symbol":"X","funding_rate":"0.1","time_remaining":"32 //in seconds"}',
        '{"type":"minmax_price","symbol":"X","min_price":"1"}',
        '{"type":"market_stats","symbol":"*","daily_volumes":[{"volume":"1"}]}',
        '{"type":"underlier","symbol":"X","price":"1","time":1e300}',
    ],
)
def test_malformed_new_channel_frames_raise_parse_error(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_mds_frame(text, "qfex", NOW)
    assert info.value.raw is text


@pytest.mark.parametrize(
    "text",
    [
        '{"stop_order_response":{"symbol":"X"}}',
        '{"stop_order_response":{"stop_order_id":"s","symbol":"X","update_time":"soon"}}',
        '{"twap_response":{"twap_id":"t","symbol":"X","reduce_only":"yes"}}',
        '{"twap_response":{"twap_id":"t","symbol":"X","total_num_orders":1e30}}',
        '{"available_leverage_levels_response":[{"symbol":"X"}]}',
        '{"user_leverage_response":{"symbol":"X","leverage":"high"}}',
        '{"all_orders_response":{"orders":[],"twaps":[7]}}',
    ],
)
def test_malformed_new_trade_frames_raise_parse_error(text: str) -> None:
    with pytest.raises(ParseError):
        parse_trade_frame(text, "qfex", ACCT, NOW)
