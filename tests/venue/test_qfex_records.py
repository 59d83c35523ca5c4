"""REST body parsers (venues/qfex/records.py): every documented body, checked against the
vendored OpenAPI component first, then parsed; ``data: null``, numbers sent as strings, and
malformed bodies (ParseError only)."""

from __future__ import annotations

import copy
import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from qfexbot.core.records import (
    Candle,
    FeeRate,
    FundingRatePoint,
    HistoricOrder,
    OpenInterestPoint,
    TwapInfo,
    UserTrade,
)
from qfexbot.venues.qfex import records
from qfexbot.venues.qfex.records import SERIES, ParseError, Series

SPEC_TESTS = str(Path(__file__).parents[1] / "spec")  # validate.py, as tests/spec imports it
if SPEC_TESTS not in sys.path:
    sys.path.append(SPEC_TESTS)

from validate import validate_rest  # noqa: E402

SCHEMA = "https://api.qfex.com/schemas/{}.json"
T0 = "2026-12-01T10:00:00Z"
T1 = "2026-12-01T11:00:00.123456789Z"


def utc(text: str) -> float:
    return datetime.fromisoformat(text).astimezone(UTC).timestamp()


def body(component: str, **fields: Any) -> dict[str, Any]:
    return {"$schema": SCHEMA.format(component), **fields}


BODIES: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "frames" / "qfex_frames.json").read_text()
)["rest"]
"""One body per component, shared with tests/reliability/test_fuzz_qfex_parse.py."""
TRADE_ROW = BODIES["TradesResponseBody"]["data"][0]
ORDER_ROW = BODIES["HistoricOrdersResponseBody"]["data"][0]
TWAP_ROW = BODIES["HistoricTwapsResponseBody"]["data"][0]
CANDLE_ROW = BODIES["CandlesResponseBody"]["candles"][0]
METRICS_ROW = BODIES["SymbolMetricsResponseBody"]["data"][0]

PARSERS = {
    "TradesResponseBody": records.parse_trades,
    "HistoricOrdersResponseBody": records.parse_historic_orders,
    "HistoricTwapsResponseBody": records.parse_historic_twaps,
    "FeesResponseBody": records.parse_fees,
    "CandlesResponseBody": records.parse_candles,
    "FundingHistoricResponseBody": records.parse_funding_history,
    "OpenInterestHistoricResponseBody": records.parse_open_interest_history,
    "SetUserLeverageResponseBody": records.parse_leverage,
    "SettlementCalendarEntry": records.parse_settlement_calendar,
    **{name: (lambda b, name=name: records.parse_series(b, name)) for name in SERIES},
}
LISTS = {
    "TradesResponseBody": "data",
    "HistoricOrdersResponseBody": "data",
    "HistoricTwapsResponseBody": "data",
    "CandlesResponseBody": "candles",
    "FundingHistoricResponseBody": "data",
    "OpenInterestHistoricResponseBody": "data",
    **dict.fromkeys(SERIES, "data"),
}


def test_every_parser_has_a_fixture() -> None:
    assert sorted(PARSERS) == sorted(BODIES)


@pytest.mark.parametrize("component", sorted(BODIES))
def test_fixtures_follow_the_vendored_schema(component: str) -> None:
    validate_rest(component, BODIES[component])


@pytest.mark.parametrize("component", sorted(LISTS))
def test_null_and_absent_lists_are_empty(component: str) -> None:
    nulled = copy.deepcopy(BODIES[component])
    nulled[LISTS[component]] = None
    validate_rest(component, nulled)  # the schema allows null
    result = PARSERS[component](nulled)
    rows = result.rows if isinstance(result, Series) else result
    assert len(rows) == 0


def test_trades() -> None:
    (trade,) = records.parse_trades(BODIES["TradesResponseBody"])
    assert isinstance(trade, UserTrade)
    assert (trade.trade_id, trade.order_id, trade.symbol, trade.side) == (
        "t-1",
        "o-1",
        "AAPL-USD",
        "BUY",
    )
    assert (trade.price, trade.quantity, trade.fee) == (
        Decimal("200.5"),
        Decimal("2.0"),
        Decimal("0.04"),
    )
    assert (trade.margin_used, trade.realised_pnl) == (Decimal("20.05"), Decimal("-1.5"))
    assert (trade.order_type, trade.time_in_force, trade.timestamp) == (
        "LIMIT",
        "GTC",
        1764583200.25,
    )
    assert trade.is_taker is None and trade.raw is TRADE_ROW


def test_historic_orders() -> None:
    (order,) = records.parse_historic_orders(BODIES["HistoricOrdersResponseBody"])
    assert isinstance(order, HistoricOrder)
    assert (order.order_id, order.client_order_id, order.status) == ("o-2", "c-2", "FILLED")
    assert (order.side, order.order_type, order.time_in_force) == ("SELL", "LIMIT", "GTC")
    assert (order.quantity, order.filled_quantity, order.passive_quantity) == (
        Decimal("3.0"),
        Decimal("3.0"),
        Decimal("1.0"),
    )
    assert order.average_price == Decimal("201.0") and order.execution_state == "FILLED"
    assert order.first_fill_time == utc(T0)
    assert order.status_time == pytest.approx(utc("2026-12-01T11:00:00.123456+00:00"))
    unfilled = dict(ORDER_ROW, avg_price=None, first_fill_ts=None, last_fill_ts=None)
    unfilled |= {"terminal_status": "CANCELLED", "filled_qty": 0}
    (cancelled,) = records.parse_historic_orders(
        body("HistoricOrdersResponseBody", data=[unfilled])
    )
    assert cancelled.average_price is None and cancelled.first_fill_time is None


def test_historic_twaps_with_date_time_strings() -> None:
    (twap,) = records.parse_historic_twaps(BODIES["HistoricTwapsResponseBody"])
    assert isinstance(twap, TwapInfo)
    assert (twap.twap_id, twap.client_twap_id, twap.status) == ("w-1", "", "COMPLETED")
    assert (twap.total_orders, twap.filled_orders, twap.order_interval) == (4, 3, 30)
    assert twap.created_at == utc(T0) and twap.updated_at == pytest.approx(utc(T1))


def test_fees_are_fractions_of_notional() -> None:
    fees = records.parse_fees(BODIES["FeesResponseBody"])
    assert set(fees) == {"AAPL-USD", "EUR-USD"}
    aapl = fees["AAPL-USD"]
    assert isinstance(aapl, FeeRate)
    assert (aapl.maker, aapl.taker) == (Decimal("0.0001"), Decimal("0.0002"))
    assert fees["EUR-USD"].maker == Decimal("-0.00005")  # a rebate
    strings = {"fees": {"X": {"maker_fee": "10000", "taker_fee": "0"}}}
    assert records.parse_fees(strings)["X"].maker == Decimal("0.0001")
    assert records.parse_fees({"fees": None}) == {}


def test_candles() -> None:
    (candle,) = records.parse_candles(BODIES["CandlesResponseBody"])
    assert isinstance(candle, Candle)
    assert (candle.symbol, candle.resolution, candle.start) == ("AAPL-USD", "1HOUR", utc(T0))
    assert (candle.open, candle.high, candle.low, candle.close) == (
        Decimal(200),
        Decimal("201.25"),
        Decimal("199.5"),
        Decimal(201),
    )
    assert (candle.base_volume, candle.usd_volume, candle.trades) == (
        Decimal("12.5"),
        Decimal("2512.5"),
        7,
    )
    assert (candle.starting_open_interest, candle.mid_open, candle.mid_close) == (
        Decimal(40),
        Decimal("200.01"),
        Decimal("200.99"),
    )


def test_funding_and_open_interest_history_forward_fill_nulls() -> None:
    first, second = records.parse_funding_history(BODIES["FundingHistoricResponseBody"])
    assert isinstance(first, FundingRatePoint)
    assert (first.rate, first.interval_minutes, first.window_start) == (None, 60, utc(T0))
    assert second.rate == Decimal("0.0001")
    (oi,) = records.parse_open_interest_history(BODIES["OpenInterestHistoricResponseBody"])
    assert isinstance(oi, OpenInterestPoint) and oi.open_interest == Decimal(42)
    nulled = body(
        "OpenInterestHistoricResponseBody",
        data=[{"symbol": "X", "intervalMinutes": 5, "windowStart": T0, "openInterest": None}],
        count=1,
    )
    validate_rest("OpenInterestHistoricResponseBody", nulled)
    assert records.parse_open_interest_history(nulled)[0].open_interest is None


def test_set_leverage_and_settlement_calendar() -> None:
    assert records.parse_leverage(BODIES["SetUserLeverageResponseBody"]) == Decimal("10.0")
    entry = records.parse_settlement_calendar(BODIES["SettlementCalendarEntry"])
    assert entry == {
        "expiration": utc("2026-12-19T19:30:00Z"),
        "active_until": utc("2026-12-11T19:30:00Z"),
        "future_symbol": "CLF7",
        "qfex_symbol": "CL-USD",
    }


def test_series_convert_rows_and_meta() -> None:
    pnl = records.parse_series(BODIES["HistoricUserPnlResponseBody"], "HistoricUserPnlResponseBody")
    assert pnl.rows == ({"window_start": utc(T0), "value": Decimal("-2.5")},)
    assert pnl.meta["unit"] == "number" and pnl.meta["interval_minutes"] == 60
    assert pnl.meta["symbols"] == ("AAPL-USD",) and pnl.meta["end"] == pytest.approx(utc(T1))
    volume = records.parse_series(BODIES["UserVolumeResponseBody"], "UserVolumeResponseBody")
    assert volume.meta["total_volume"] == Decimal("150.5") and volume.meta["symbols"] == ()
    assert volume.rows[0]["taker_volume"] == Decimal("50.5")
    (taker,) = records.parse_series(
        BODIES["TakerVolumeHistoricResponseBody"], "TakerVolumeHistoricResponseBody"
    ).rows
    assert taker["netTakerQty"] == Decimal(2) and taker["intervalMinutes"] == 60
    (ls,) = records.parse_series(
        BODIES["SymbolLongShortHistoricResponseBody"], "SymbolLongShortHistoricResponseBody"
    ).rows
    assert (ls["longUsers"], ls["shortUsers"], ls["interval"]) == (3, 1, "1h")
    (metrics,) = records.parse_series(
        BODIES["SymbolMetricsResponseBody"], "SymbolMetricsResponseBody"
    ).rows
    assert metrics["funding_rate_bps"] == Decimal("0.5")
    assert metrics["volume_24h_usd_notional"] == Decimal("1000000.0")
    (price,) = records.parse_series(
        BODIES["SettlementPricesResponseBody"], "SettlementPricesResponseBody"
    ).rows
    assert price["asof"] == "2026-12-01" and price["inserted_at"] == pytest.approx(utc(T1))
    (hour,) = records.parse_series(BODIES["HourlyPnlResponseBody"], "HourlyPnlResponseBody").rows
    assert hour["cost"] == Decimal("400.5") and hour["hour"] == utc(T0)
    rewards = records.parse_series(
        BODIES["ReferralRewardsResponseBody"], "ReferralRewardsResponseBody"
    )
    assert rewards.rows == () and rewards.meta["total_amount"] == Decimal(0)
    (under,) = records.parse_series(
        BODIES["UnderlierHistoricResponseBody"], "UnderlierHistoricResponseBody"
    ).rows
    assert under["lowPrice"] == Decimal("199.25")


def test_numbers_sent_as_strings_are_accepted() -> None:
    row = dict(TRADE_ROW, price="200.5", quantity="2", fee="0.04", order_timestamp="1764583200")
    (trade,) = records.parse_trades({"data": [row], "count": 1})
    assert (trade.price, trade.quantity, trade.timestamp) == (
        Decimal("200.5"),
        Decimal(2),
        1764583200.0,
    )
    candle = dict(CANDLE_ROW, trades="7", open=200)
    assert records.parse_candles({"candles": [candle]})[0].trades == 7


@pytest.mark.parametrize(
    ("component", "bad"),
    [
        ("TradesResponseBody", {"data": [{"id": "t"}]}),
        ("TradesResponseBody", {"data": {"id": "t"}}),
        ("TradesResponseBody", []),
        ("TradesResponseBody", {"data": [dict(TRADE_ROW, price="lots")]}),
        ("HistoricOrdersResponseBody", {"data": [dict(ORDER_ROW, status_ts="later")]}),
        ("HistoricOrdersResponseBody", {"data": [dict(ORDER_ROW, terminal_status=None)]}),
        ("HistoricOrdersResponseBody", {"data": [dict(ORDER_ROW, price=None)]}),
        ("HistoricTwapsResponseBody", {"data": [dict(TWAP_ROW, reduce_only="no")]}),
        ("FeesResponseBody", {"fees": {"X": {"maker_fee": 1}}}),
        ("FeesResponseBody", {"fees": [1, 2]}),
        ("CandlesResponseBody", {"candles": [dict(CANDLE_ROW, trades=1e30)]}),
        ("FundingHistoricResponseBody", {"data": [{"symbol": "X"}]}),
        ("SetUserLeverageResponseBody", {"leverage": None}),
        ("SetUserLeverageResponseBody", "10"),
        ("SettlementCalendarEntry", {"expiration": 5}),
        ("HistoricUserPnlResponseBody", {"data": [{"value": 1}]}),
        ("UserVolumeResponseBody", {"data": [], "symbols": "AAPL-USD"}),
        ("SymbolMetricsResponseBody", {"data": [1]}),
        ("SymbolMetricsResponseBody", {"data": [dict(METRICS_ROW, open_interest=None)]}),
        ("TradesResponseBody", {"data": [dict(TRADE_ROW, quantity=None)]}),
    ],
)
def test_malformed_bodies_raise_parse_error(component: str, bad: Any) -> None:
    with pytest.raises(ParseError) as info:
        PARSERS[component](bad)
    assert info.value.raw is bad
