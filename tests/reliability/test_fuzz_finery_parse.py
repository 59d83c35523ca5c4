"""Property-based fuzzing of the Finery frame parser: events/control records or ParseError only.

Finery frames are ``[feed, feedId, action, data]`` arrays or request-reply objects, and the
parser keeps state (books, reference data, positions), so besides single frames the fuzzer
feeds sequences of frames through one parser. Floats (including NaN/Infinity) must be refused.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from reliability_helpers import JSON_VALUES, assert_well_typed, deep_object, nested

from qfexbot.events import Event

finery = pytest.importorskip("qfexbot.venues.finery.parse")

FEEDS = ["X", "B", "F", "MD", "O", "K", "L", "I", "C", "R", "T", "zz"]
ACTIONS = ["S", "+", "-", "M", "~", "D", "U", "Z", "Q"]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INTS = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.integers())
FEED_PAYLOADS = st.recursive(
    st.one_of(INTS, st.text(max_size=8), st.none(), st.booleans()),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=25,
)
FRAMES = st.builds(
    lambda feed, feed_id, action, payload: [feed, feed_id, action, payload],
    st.sampled_from(FEEDS),
    st.one_of(st.text(max_size=6), INTS, JSON_VALUES),
    st.sampled_from(ACTIONS),
    st.one_of(FEED_PAYLOADS, JSON_VALUES),
)


def run(parser: Any, data: str | bytes) -> list[Any]:
    try:
        items = parser.parse(data, 1700000000.0)
    except finery.ParseError as exc:
        assert exc.raw is data
        assert len(exc.preview) < 400
        str(exc)
        return []
    assert isinstance(items, list)
    for item in items:
        if isinstance(item, Event):
            assert_well_typed(item)
    return items


def new_parser() -> Any:
    return finery.FineryParser("fm", "7", clock=lambda: 1.0)


@FUZZ
@given(st.binary(max_size=200))
@example(b"\xff\xfe\x00\x00")
def test_arbitrary_bytes(data: bytes) -> None:
    run(new_parser(), data)


@FUZZ
@given(JSON_VALUES)
def test_arbitrary_json_values(value: Any) -> None:
    run(new_parser(), json.dumps(value, allow_nan=True))


@FUZZ
@given(st.lists(FRAMES, min_size=1, max_size=8))
def test_sequences_of_feed_frames_through_one_parser(frames: list[Any]) -> None:
    parser = new_parser()
    for frame in frames:
        run(parser, json.dumps(frame, allow_nan=True))


@pytest.mark.parametrize(
    "text",
    [
        '["B", 1, "S", [[[1, NaN]], []]]',
        '["K", 1, "S", [["USD", 1, Infinity]]]',
        '{"reply": NaN}',
        '["X", 0, "Z", -Infinity]',
    ],
)
def test_nan_and_infinity_are_refused_like_floats(text: str) -> None:
    with pytest.raises(finery.ParseError):
        new_parser().parse(text, 1.0)


@pytest.mark.parametrize("depth", [100, 5000, 100_000])
def test_deeply_nested_frames(depth: int) -> None:
    for text in (
        nested(depth),
        deep_object(depth),
        '["B", ' + nested(depth) + ', "S", []]',
        '["zz", 1, "S", ' + nested(depth) + "]",
    ):
        run(new_parser(), text)
