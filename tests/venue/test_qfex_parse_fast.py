"""The typed fast path of the QFEX parser agrees with the general path on every frame.

``parse_trade_frame`` / ``parse_mds_frame`` first try msgspec Structs for the frequent messages
(order/fill/position/balance responses; level2, bbo, trade, mark_price) and fall back to the
general path for anything those refuse. These properties generate frames of each of those kinds,
mostly well formed and often not (a field absent, null, of another type, a numeric string, a
non-finite or huge number, a duplicated key, an extra key, two messages in one object, an
envelope, a BOM, bytes), and require the same outcome as the general path alone: the same
events field by field (``repr`` shows each Decimal's exact digits and exponent, and ``raw`` is
the frame itself) or a ParseError with the same reason.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qfexbot.events import (
    BalanceEvent,
    BookEvent,
    Event,
    FillEvent,
    MarkPriceEvent,
    OrderUpdateEvent,
    PositionEvent,
    TradeEvent,
)
from qfexbot.venues.qfex import parse
from qfexbot.venues.qfex.parse import ParseError, parse_mds_frame, parse_trade_frame

ACCOUNT = "11111111-1111-4111-8111-111111111111"
NOW = 1700000000.0
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# JSON texts of values. Number literals are written out, so their exact spelling is tested.
# The typical values of a field (what its strategy in TRADE_FIELDS / MDS_FIELDS draws) are valid;
# the others come in through ANY_VALUE.
NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["0.0", "-0.0", "-0", "1.50", "1e5", "1E-7", "2.5e+3", "1" * 400]),
    st.sampled_from(["0.1000000000000000055511151", "123456789012345678901234567890.5"]),
    st.decimals(allow_nan=False, allow_infinity=False, places=8).map(lambda d: f'"{d}"'),
    st.sampled_from(["1.5", "-0.0", "0", "200.00", "0.45000000", "1e-7", " 2 ", "1_000", "٣"]).map(
        json.dumps
    ),
)
BAD_NUMBERS = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]),
    st.sampled_from(["NaN", "sNaN", "inf", "abc", "", "1e999999", "0x10"]).map(json.dumps),
)
TEXTS = st.one_of(
    st.text(max_size=8).map(json.dumps),
    st.sampled_from(["BUY", "sell", "ACK", "FILLED", "LIMIT", "GTC", ""]).map(json.dumps),
)
OTHER = st.sampled_from(
    [
        "null",
        "true",
        "false",
        "[]",
        "{}",
        '["1","2"]',
        '[["1.5","2"]]',
        '{"a":1}',
        "[1,2]",
        '"\\ud800"',
        '"\\u0000"',
        '"\\\\"',
    ]
)
ANY_VALUE = st.one_of(NUMBERS, BAD_NUMBERS, TEXTS, OTHER)
SECONDS = st.one_of(
    st.floats(min_value=0, max_value=2e9).map(repr), st.integers(0, 2 * 10**9).map(str)
)
COUNT = st.integers(-5, 50).map(str)
SEQUENCE = st.integers(0, 2**70).map(str)
STRING_LEVEL = st.tuples(
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.decimals(min_value=0, allow_nan=False, allow_infinity=False, places=8),
).map(lambda pair: f'["{pair[0]}","{pair[1]}"]')
ODD_LEVEL = st.one_of(
    st.tuples(NUMBERS, NUMBERS).map(lambda pair: f"[{pair[0]},{pair[1]}]"),
    st.tuples(BAD_NUMBERS, NUMBERS).map(lambda pair: f"[{pair[0]},{pair[1]}]"),
    st.sampled_from(['["1.5"]', '["1.5","2","3"]', "null", '"1.5"', "{}"]),
)
CLEAN_LEVELS = st.lists(STRING_LEVEL, max_size=6).map(lambda ls: f"[{','.join(ls)}]")
LEVELS = st.one_of(
    CLEAN_LEVELS,
    CLEAN_LEVELS,
    st.lists(st.one_of(STRING_LEVEL, ODD_LEVEL), max_size=6).map(lambda ls: f"[{','.join(ls)}]"),
)

# Per kind, each field the builders read and what a typical value of it looks like.
TRADE_FIELDS: dict[str, dict[str, st.SearchStrategy[str]]] = {
    "order_response": {
        "order_id": TEXTS,
        "symbol": TEXTS,
        "status": TEXTS,
        "client_order_id": TEXTS,
        "side": TEXTS,
        "type": TEXTS,
        "order_type": TEXTS,
        "time_in_force": TEXTS,
        "tif": TEXTS,
        "price": NUMBERS,
        "quantity": NUMBERS,
        "quantity_remaining": NUMBERS,
        "trade_id": TEXTS,
        "update_time": SECONDS,
        "take_profit": NUMBERS,
        "stop_loss": NUMBERS,
    },
    "fill_response": {
        "trade_id": TEXTS,
        "symbol": TEXTS,
        "price": NUMBERS,
        "quantity": NUMBERS,
        "order_id": TEXTS,
        "client_order_id": TEXTS,
        "side": TEXTS,
        "aggressor_side": TEXTS,
        "fee": NUMBERS,
        "remaining_quantity": NUMBERS,
        "realised_pnl": NUMBERS,
        "timestamp": SECONDS,
    },
    "position_response": {
        "symbol": TEXTS,
        "position": NUMBERS,
        "average_price": NUMBERS,
        "realised_pnl": NUMBERS,
        "unrealised_pnl": NUMBERS,
        "net_funding": NUMBERS,
        "leverage": NUMBERS,
        "open_orders": COUNT,
        "open_quantity": NUMBERS,
    },
    "balance_response": {
        "available_balance": NUMBERS,
        "deposit": NUMBERS,
        "realised_pnl": NUMBERS,
        "unrealised_pnl": NUMBERS,
        "order_margin": NUMBERS,
        "position_margin": NUMBERS,
        "net_funding": NUMBERS,
    },
}
BOOK_FIELDS = {
    "symbol": TEXTS,
    "bid": LEVELS,
    "ask": LEVELS,
    "sequence": SEQUENCE,
    "time": st.just('"2025-09-04T09:26:39.545268322Z"'),
}
MDS_FIELDS: dict[str, dict[str, st.SearchStrategy[str]]] = {
    "level2": BOOK_FIELDS,
    "bbo": BOOK_FIELDS,
    "trade": {
        "symbol": TEXTS,
        "price": NUMBERS,
        "size": NUMBERS,
        "trade_id": TEXTS,
        "side": TEXTS,
    },
    "mark_price": {"symbol": TEXTS, "price": NUMBERS},
}


def obj(pairs: list[tuple[str, str]]) -> str:
    """A JSON object text from (key, value text) pairs, duplicates kept."""
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in pairs) + "}"


@st.composite
def body(
    draw: st.DrawFn, fields: dict[str, st.SearchStrategy[str]], odd: bool
) -> list[tuple[str, str]]:
    """One message's (key, value) pairs: each field typical or, when ``odd``, absent, null or
    any other value; then maybe an unknown key or a repeated one, in any order."""
    pairs = []
    typical_weight = draw(st.sampled_from([60, 12, 3]))  # frames from nearly clean to noisy
    choices = ["typical"] * typical_weight + (["absent", "null", "any"] if odd else [])
    for name, typical in fields.items():
        choice = draw(st.sampled_from(choices))
        if choice == "typical":
            pairs.append((name, draw(typical)))
        elif choice == "null":
            pairs.append((name, "null"))
        elif choice == "any":
            pairs.append((name, draw(ANY_VALUE)))
    if odd and draw(st.booleans()):
        pairs.append((draw(st.sampled_from(["user_id", "extra", "contents", "type"])), "1"))
    if odd and pairs and draw(st.booleans()):
        pairs.append((draw(st.sampled_from(pairs))[0], draw(ANY_VALUE)))
    return draw(st.permutations(pairs)) if odd else pairs


@st.composite
def trade_frame(draw: st.DrawFn) -> str:
    """A trade-socket frame around one frequent message; sometimes another message, the same
    key again, a ``type``, a body that is no object, or the whole in an array."""
    kind = draw(st.sampled_from(sorted(TRADE_FIELDS)))
    pairs = [(kind, obj(draw(body(TRADE_FIELDS[kind], odd=True))))]
    extra = draw(st.sampled_from(["none"] * 10 + ["other", "same", "type", "value", "array"]))
    if extra == "other":
        other = draw(st.sampled_from(sorted(TRADE_FIELDS)))
        pairs.append((other, obj(draw(body(TRADE_FIELDS[other], odd=True)))))
    elif extra == "same":
        pairs.append((kind, draw(st.one_of(body(TRADE_FIELDS[kind], odd=True).map(obj), OTHER))))
    elif extra == "type":
        pairs.append(("type", '"order_response"'))
    elif extra == "value":
        pairs = [(kind, draw(ANY_VALUE))]
    text = obj(draw(st.permutations(pairs)))
    return f"[{text}]" if extra == "array" else text


@st.composite
def mds_frame(draw: st.DrawFn) -> str:
    """A market-data frame: one frequent message with its ``type``; sometimes another type, a
    repeated one, none, or ``contents`` (the envelope form)."""
    kind = draw(st.sampled_from(sorted(MDS_FIELDS)))
    tag = [("type", json.dumps(kind))]
    tag = draw(
        st.sampled_from(
            [tag] * 10
            + [[], [("type", '"candle"')], [*tag, ("type", '"trade"')], [("type", "7")]]
            + [[*tag, ("contents", "[]")], [*tag, ("contents", "null")]]
        )
    )
    return obj(draw(st.permutations(tag + draw(body(MDS_FIELDS[kind], odd=True)))))


def encoded(draw: st.DrawFn, text: str) -> str | bytes:
    """The frame as str or bytes, sometimes with a BOM, surrounding whitespace, or its escaped
    lone surrogates written raw."""
    form = draw(st.sampled_from(["str"] * 3 + ["bytes"] * 2 + ["bom", "space", "surrogate"]))
    if form == "bytes":
        return text.encode()
    if form == "bom":
        return "\ufeff" + text
    if form == "space":
        return f" {text}\n"
    if form == "surrogate":
        return text.replace("\\ud800", "\ud800")  # a raw lone surrogate in a str frame
    return text


def outcome(parser: Callable[..., list[Any]], data: str | bytes, *args: Any) -> Any:
    """What a parser gives, comparable: each item's type, repr and whether raw is the frame, or
    the ParseError's reason."""
    try:
        items = parser(data, *args)
    except ParseError as exc:
        assert exc.raw is data
        return ("ParseError", str(exc))
    return [
        (type(item), repr(item), item.raw is data if isinstance(item, Event) else None)
        for item in items
    ]


@PROPERTY
@given(st.data())
def test_trade_frames_parse_as_the_general_path_parses_them(data: st.DataObject) -> None:
    frame = encoded(data.draw, data.draw(trade_frame()))
    args = ("qfex", ACCOUNT, NOW)
    assert outcome(parse_trade_frame, frame, *args) == outcome(
        parse._parse_trade_general, frame, *args
    )


@PROPERTY
@given(st.data())
def test_market_data_frames_parse_as_the_general_path_parses_them(data: st.DataObject) -> None:
    frame = encoded(data.draw, data.draw(mds_frame()))
    args = ("qfex", NOW)
    assert outcome(parse_mds_frame, frame, *args) == outcome(parse._parse_mds_general, frame, *args)


def well_formed(fields: dict[str, st.SearchStrategy[str]]) -> dict[str, st.SearchStrategy[str]]:
    """The same fields, book levels only as QFEX sends them: [price, size] as strings."""
    return {name: CLEAN_LEVELS if value is LEVELS else value for name, value in fields.items()}


@pytest.mark.parametrize("kind", sorted(TRADE_FIELDS))
@PROPERTY
@given(data=st.data())
def test_well_formed_trade_messages_take_the_fast_path(kind: str, data: st.DataObject) -> None:
    frame = obj([(kind, obj(data.draw(body(well_formed(TRADE_FIELDS[kind]), odd=False))))])
    fast = parse._fast_trade(frame, "qfex", ACCOUNT, NOW)
    assert fast is not None, frame
    general = outcome(parse._parse_trade_general, frame, "qfex", ACCOUNT, NOW)
    assert outcome(lambda *_: fast, frame) == general


@pytest.mark.parametrize("kind", sorted(MDS_FIELDS))
@PROPERTY
@given(data=st.data())
def test_well_formed_market_data_takes_the_fast_path(kind: str, data: st.DataObject) -> None:
    pairs = data.draw(body(well_formed(MDS_FIELDS[kind]), odd=False))
    frame = obj([("type", json.dumps(kind)), *pairs])
    fast = parse._fast_mds(frame, "qfex", NOW)
    assert fast is not None, frame
    assert outcome(lambda *_: fast, frame) == outcome(parse._parse_mds_general, frame, "qfex", NOW)


TRADE_EVENTS = {
    "order_response": OrderUpdateEvent,
    "fill_response": FillEvent,
    "position_response": PositionEvent,
    "balance_response": BalanceEvent,
}


@PROPERTY
@given(data=st.data(), kinds=st.permutations(sorted(TRADE_FIELDS)))
def test_an_object_with_two_messages_is_the_message_of_its_first_key(
    data: st.DataObject, kinds: list[str]
) -> None:
    first = kinds[0]
    frame = obj(
        [
            (kind, obj(data.draw(body(well_formed(TRADE_FIELDS[kind]), odd=False))))
            for kind in kinds[:2]
        ]
    )
    items = parse_trade_frame(frame, "qfex", ACCOUNT, NOW)
    assert [type(item) for item in items] == [TRADE_EVENTS[first]]
    assert outcome(parse_trade_frame, frame, "qfex", ACCOUNT, NOW) == outcome(
        parse._parse_trade_general, frame, "qfex", ACCOUNT, NOW
    )


@PROPERTY
@given(data=st.data(), kinds=st.permutations(sorted(TRADE_FIELDS)))
def test_a_null_message_beside_a_real_one_parses_as_the_general_path_parses_it(
    data: st.DataObject, kinds: list[str]
) -> None:
    """``{"fill_response": null, "order_response": {...}}``: the general path reads the first
    known key (null: a ParseError); the fast path once took the one non-null body (issue-16
    audit). Every order of the keys, the null one first or second."""
    null, real = kinds[0], kinds[1]
    message = obj(data.draw(body(well_formed(TRADE_FIELDS[real]), odd=False)))
    pairs = [(null, "null"), (real, message)]
    if data.draw(st.booleans()):
        pairs.reverse()
    frame = obj(pairs)
    assert outcome(parse_trade_frame, frame, "qfex", ACCOUNT, NOW) == outcome(
        parse._parse_trade_general, frame, "qfex", ACCOUNT, NOW
    )


@pytest.mark.parametrize(
    "cls",
    [
        OrderUpdateEvent,
        FillEvent,
        PositionEvent,
        BalanceEvent,
        BookEvent,
        TradeEvent,
        MarkPriceEvent,
    ],
)
def test_the_direct_constructors_build_what_the_dataclass_init_builds(cls: type) -> None:
    fields = dataclasses.fields(cls)
    values = {f.name: f"value-{i}" for i, f in enumerate(fields)}
    expected = cls(**values)
    for built in (
        parse._fast_constructor(cls)(*values.values()),
        parse._fast_constructor(cls)(**values),
    ):
        assert type(built) is cls
        assert built == expected
        assert repr(built) == repr(expected)
        assert [getattr(built, f.name) for f in fields] == list(values.values())
    required = {f.name: values[f.name] for f in fields if f.default is dataclasses.MISSING}
    required["raw"] = None
    assert repr(parse._fast_constructor(cls)(**required)) == repr(cls(**required))
