"""Property-based fuzzing of the QFEX frame and REST body parsers: any input yields
events/controls/records or ParseError.

Inputs: arbitrary bytes and text (non-UTF-8, binary), arbitrary JSON values (wrong types, huge
numbers, NaN/Infinity), canonical frames with one field replaced or removed, and very deep
nesting. Every event returned must be well typed (strings are str, money finite Decimal), so a
plugin or the market-data fan-out never trips over a venue's garbage. The REST body parsers
(venues/qfex/records.py) get the same: arbitrary JSON, and each canonical body (frames/
qfex_frames.json "rest") with one field replaced or removed; what they return is well typed too.
"""

from __future__ import annotations

import dataclasses
import json
import random
import typing
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from reliability_helpers import JSON_VALUES, _is_instance, assert_well_typed, deep_object, nested

from qfexbot.events import Event
from qfexbot.venues.qfex import records
from qfexbot.venues.qfex.driver import QfexMarketDataDriver
from qfexbot.venues.qfex.parse import (
    Control,
    LeverageLevels,
    OrdersSnapshot,
    ParseError,
    TradesSnapshot,
    parse_mds_frame,
    parse_trade_frame,
)

FRAMES = json.loads(
    (Path(__file__).parents[1] / "venue" / "frames" / "qfex_frames.json").read_text()
)
TRADE = sorted(FRAMES["trade"].items())
MDS = sorted(FRAMES["mds"].items())
REST = sorted(FRAMES["rest"].items())
ACCOUNT = "11111111-1111-4111-8111-111111111111"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUTER = QfexMarketDataDriver(url="ws://127.0.0.1:1/", venue="qfex")


def run_trade(data: str | bytes) -> list[Any]:
    """Parse a trade frame; only ParseError may escape, and what comes back is well typed."""
    try:
        items = parse_trade_frame(data, "qfex", ACCOUNT, 1700000000.0)
    except ParseError as exc:
        assert exc.raw is data
        assert len(exc.preview) < 400
        str(exc)  # renders
        return []
    assert isinstance(items, list)
    for item in items:
        assert isinstance(item, (Event, Control)), item
        if isinstance(item, Event):
            assert_well_typed(item)
            assert item.account_id == ACCOUNT
        else:
            assert_control_typed(item)
    return items


def assert_record_typed(record: Any) -> None:
    """Every declared field of a record (core/records.py) has its declared type."""
    hints = typing.get_type_hints(type(record))
    for f in dataclasses.fields(record):
        if f.name != "raw":
            value = getattr(record, f.name)
            assert _is_instance(value, hints[f.name]), f"{type(record).__name__}.{f.name}={value!r}"


def assert_control_typed(item: Control) -> None:
    """The typed replies hold well-typed events and records."""
    if isinstance(item, OrdersSnapshot):
        for event in (*item.orders, *item.stop_orders):
            assert_well_typed(event)
        for twap in item.twaps:
            assert_record_typed(twap)
    elif isinstance(item, TradesSnapshot):
        for fill in item.fills:
            assert_well_typed(fill)
        for trade in item.trades:
            assert_record_typed(trade)
    elif isinstance(item, LeverageLevels):
        for level in item.levels:
            assert_record_typed(level)


def run_mds(data: str | bytes) -> list[Any]:
    """Parse a market-data frame; events must be routable (hashable channel, symbol)."""
    try:
        items = parse_mds_frame(data, "qfex", 1700000000.0)
    except ParseError as exc:
        assert exc.raw is data
        assert len(exc.preview) < 400
        str(exc)
        return []
    assert isinstance(items, list)
    for item in items:
        assert isinstance(item, Event), item
        assert_well_typed(item)
        hash(ROUTER.route(item))  # the fan-out looks routes up in a dict
    return items


def mutate(frame: Any, rng: random.Random, replacement: Any, delete: bool) -> Any:
    """``frame`` with one randomly chosen nested value replaced (or its key deleted)."""
    containers: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in node:
                containers.append((node, key))
                walk(node[key])
        elif isinstance(node, list):
            for i in range(len(node)):
                containers.append((node, i))
                walk(node[i])

    walk(frame)
    if not containers:
        return replacement
    parent, key = rng.choice(containers)
    if delete and isinstance(parent, dict):
        del parent[key]
    else:
        parent[key] = replacement
    return frame


def dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


# --------------------------------------------------------------------------- raw input


@FUZZ
@given(st.binary(max_size=200))
@example(b"\xff\xfe\x00\x00")
@example(b"\x80abc")
@example(b'{"balance_response": {"available_balance": "\xff"}}')
def test_arbitrary_bytes(data: bytes) -> None:
    run_trade(data)
    run_mds(data)


@FUZZ
@given(st.text(max_size=200))
@example("\ud800")  # lone surrogate
@example("")
def test_arbitrary_text(data: str) -> None:
    run_trade(data)
    run_mds(data)


@FUZZ
@given(JSON_VALUES)
def test_arbitrary_json_values(value: Any) -> None:
    text = dumps(value)
    run_trade(text)
    run_trade(text.encode())
    run_mds(text)


@pytest.mark.parametrize("depth", [50, 1000, 100_000])
def test_deeply_nested_frames(depth: int) -> None:
    for text in (
        nested(depth),
        deep_object(depth),
        '{"order_response":' + nested(depth) + "}",
        '{"type":"level2","symbol":"X","bid":' + nested(depth) + "}",
        '{"type":"x","contents":' + nested(depth) + "}",
    ):
        run_trade(text)
        run_mds(text)


def test_nested_arrays_of_messages_are_bounded() -> None:
    # An array of arrays of ... of real messages: parsed or refused, never a crash.
    text = FRAMES["mds"]["trade"]
    for _ in range(2000):
        text = f"[{text}]"
    run_mds(text)


# --------------------------------------------------------------------------- mutated frames


@FUZZ
@given(st.sampled_from(TRADE), JSON_VALUES, st.booleans(), st.randoms(use_true_random=False))
def test_mutated_trade_frames(
    named: tuple[str, str], replacement: Any, delete: bool, rng: random.Random
) -> None:
    _, text = named
    frame = mutate(json.loads(text), rng, replacement, delete)
    run_trade(dumps(frame))


@FUZZ
@given(st.sampled_from(MDS), JSON_VALUES, st.booleans(), st.randoms(use_true_random=False))
def test_mutated_mds_frames(
    named: tuple[str, str], replacement: Any, delete: bool, rng: random.Random
) -> None:
    _, text = named
    frame = mutate(json.loads(text), rng, replacement, delete)
    run_mds(dumps(frame))


@pytest.mark.parametrize(
    "text",
    [
        '{"type":"level2","symbol":"X","sequence":Infinity}',
        '{"type":"level2","symbol":"X","sequence":NaN}',
        '{"type":"level2","symbol":"X","sequence":1e400}',
        '{"type":"level2","symbol":["X"],"bid":[]}',
        '{"type":"mark_price","symbol":{"a":1},"price":1}',
        '{"type":"trade","symbol":"X","price":1,"size":1,"trade_id":[1]}',
        '{"type":"level2","symbol":"X","bid":[["1","2","3"]]}',
    ],
)
def test_known_nasty_mds_frames(text: str) -> None:
    run_mds(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"order_response":{"order_id":"o","symbol":"X","status":"ACK","update_time":1'
        + "0" * 400
        + "}}",
        '{"fill_response":{"trade_id":"t","symbol":"X","price":1,"quantity":1,"timestamp":1'
        + "0" * 400
        + "}}",
        '{"position_response":{"symbol":"X","position":1,"open_orders":"1e999999999"}}',
        '{"position_response":{"symbol":"X","position":1,"open_orders":1.5}}',
        '{"order_response":{"order_id":"o","symbol":["X"],"status":"ACK"}}',
        '{"order_response":{"order_id":"o","symbol":"X","status":["ACK"]}}',
        '{"order_response":{"order_id":"o","symbol":"X","status":"ACK","side":7}}',
        '{"fill_response":{"trade_id":"t","symbol":"X","price":1,"quantity":1,"side":{}}}',
        '{"balance_response":{"available_balance":true}}',
        '{"subscribed":' + nested(5000) + "}",
        '{"type":' + nested(5000) + "}",
        '{"err":' + deep_object(5000) + "}",
    ],
)
def test_known_nasty_trade_frames(text: str) -> None:
    run_trade(text)


# --------------------------------------------------------------------------- REST bodies


def _series(component: str) -> Callable[[Any], records.Series]:
    return lambda body: records.parse_series(body, component)


REST_PARSERS: dict[str, Callable[[Any], Any]] = {
    "TradesResponseBody": records.parse_trades,
    "HistoricOrdersResponseBody": records.parse_historic_orders,
    "HistoricTwapsResponseBody": records.parse_historic_twaps,
    "FeesResponseBody": records.parse_fees,
    "CandlesResponseBody": records.parse_candles,
    "FundingHistoricResponseBody": records.parse_funding_history,
    "OpenInterestHistoricResponseBody": records.parse_open_interest_history,
    "SetUserLeverageResponseBody": records.parse_leverage,
    "SettlementCalendarEntry": records.parse_settlement_calendar,
    **{name: _series(name) for name in records.SERIES},
}
_CONVERTED = (Decimal, int, float, str, tuple, type(None))


def _assert_converted(value: Any) -> None:
    assert isinstance(value, _CONVERTED), value
    if isinstance(value, Decimal):
        assert value.is_finite()


def run_rest(component: str, body: Any) -> Any:
    """Parse a REST body; only ParseError may escape, and the result is well typed."""
    try:
        result = REST_PARSERS[component](body)
    except ParseError as exc:
        assert exc.raw is body
        assert len(exc.preview) < 400
        str(exc)
        return None
    if isinstance(result, records.Series):
        row_spec, _ = records.SERIES[component]
        for row in result.rows:
            for name in row_spec:
                _assert_converted(row[name])
    elif isinstance(result, dict):
        for value in result.values():
            if dataclasses.is_dataclass(value):
                assert_record_typed(value)
            else:
                _assert_converted(value)
    elif isinstance(result, list):
        for record in result:
            assert_record_typed(record)
    else:
        _assert_converted(result)
    return result


def test_every_rest_parser_has_a_canonical_body() -> None:
    assert sorted(REST_PARSERS) == [name for name, _ in REST]
    for name, body in REST:
        assert run_rest(name, body) is not None, name


@FUZZ
@given(st.sampled_from(sorted(REST_PARSERS)), JSON_VALUES)
def test_rest_parsers_on_arbitrary_json(component: str, value: Any) -> None:
    run_rest(component, value)


@FUZZ
@given(st.sampled_from(REST), JSON_VALUES, st.booleans(), st.randoms(use_true_random=False))
def test_mutated_rest_bodies(
    named: tuple[str, dict], replacement: Any, delete: bool, rng: random.Random
) -> None:
    component, body = named
    mutated = mutate(json.loads(json.dumps(body)), rng, replacement, delete)
    run_rest(component, json.loads(dumps(mutated)))


@pytest.mark.parametrize("component", sorted(REST_PARSERS))
@pytest.mark.parametrize("depth", [50, 100_000])
def test_deeply_nested_rest_bodies(component: str, depth: int) -> None:
    for text in (nested(depth), deep_object(depth), '{"data":' + nested(depth) + "}"):
        try:
            value = json.loads(text)
        except RecursionError:
            continue  # the HTTP client would have failed to decode it first
        run_rest(component, value)
