"""Finery adapter pure parts: signatures, exact amounts, book maintenance, frame parsing."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from qfexbot.core.secrets import Secret
from qfexbot.events import BalanceEvent, BookEvent, FillEvent, OrderUpdateEvent, PositionEvent
from qfexbot.venues.finery.auth import FineryAuth, NonceSource, rest_body, sign, ws_auth_headers
from qfexbot.venues.finery.numbers import from_units, to_units
from qfexbot.venues.finery.parse import (
    Book,
    Bound,
    FeedError,
    FineryParser,
    ParseError,
    ReferenceData,
    RequestReply,
    StatusMessage,
    Unbound,
    events_only,
)

SECRET = "cZpZ1vwzOaXuiONfIQVg8h6za97FoHhrwwgoSCNwDAR"
KEY = "RlZ4sKsHSr5zmYKIzbtf772J9y9gx8nekd8COrawI5V"
REST_VECTOR = (
    'add{"nonce": 49856723467362345, "timestamp": 1628489110490, "instrument": '
    '"BTC-USD", "clientOrderId": 1, "size": 1, "side": "ask", "type": "MarketIOC"}'
)
WS_VECTOR = '{"nonce": 49856723467362345, "timestamp": 1628489110490}'


def test_official_rest_signature_vector() -> None:
    assert sign(SECRET, REST_VECTOR) == (
        "xvWE5m9bLUOx6TubJsXbnHPfdmYGvlbma2kuRPma0smOq47yRsG4LCak/hozAiQq"
    )


def test_official_ws_signature_vector() -> None:
    assert sign(Secret(SECRET), WS_VECTOR.encode()) == (
        "KCn9rlqILiifROYfgpGmRtvgBzSCJa/2KJ31oPKbcyE6D+BaTVfFMXo8kDwQtBC/"
    )


def test_ws_headers_sign_the_content_header() -> None:
    nonces = NonceSource(clock=lambda: 1628489110.490)
    headers = dict(ws_auth_headers(KEY, Secret(SECRET), nonces))
    content = headers[b"EFX-Content"].decode()
    assert json.loads(content) == {"nonce": 1628489110490000, "timestamp": 1628489110490}
    assert headers[b"EFX-Sign"].decode() == sign(SECRET, content)
    assert headers[b"EFX-Key"] == KEY.encode()


def test_nonces_strictly_increase_even_with_a_stuck_or_backward_clock() -> None:
    times = iter([100.0, 100.0, 100.0, 99.0, 101.0])
    nonces = NonceSource(clock=lambda: next(times))
    values = [nonces.next()[0] for _ in range(5)]
    assert values == sorted(set(values))
    assert values[:4] == [100_000_000, 100_000_001, 100_000_002, 100_000_003]


def test_rest_auth_signs_method_and_exact_body_bytes() -> None:
    body = rest_body({"instrument": "BTC-USD"}, NonceSource(clock=lambda: 5.0))
    assert body == b'{"nonce":5000000,"timestamp":5000,"instrument":"BTC-USD"}'
    request = httpx.Request("POST", "http://x/api/pending/add", content=body)
    flow = FineryAuth(KEY, Secret(SECRET)).auth_flow(request)
    signed = next(flow)
    assert signed.headers["EFX-Sign"] == sign(SECRET, b"pending/add" + body)
    assert signed.headers["EFX-Key"] == KEY
    with pytest.raises(ValueError):
        rest_body({"nonce": 1}, NonceSource())


def test_amounts_are_exact_above_2_to_the_53() -> None:
    big = 2**63 - 1
    assert from_units(big) == Decimal("92233720368.54775807")
    assert to_units(from_units(big)) == big
    assert from_units(100_000_000_000_000_000) == Decimal(1000000000)  # 1e9 USD
    assert to_units(Decimal("0.00000001")) == 1
    assert to_units("-1.5") == -150_000_000
    assert to_units(3) == 300_000_000
    with pytest.raises(ValueError):
        to_units(Decimal("0.000000001"))
    with pytest.raises(TypeError):
        to_units(0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        from_units(1.0)  # type: ignore[arg-type]


def test_book_updates_including_tilde() -> None:
    book = Book()
    book.apply_snapshot([[[300, 1], [200, 2], [100, 3]], [[400, 4], [500, 5], [600, 6]]])
    book.apply_updates([[["+", 250, 7], ["M", 100, 9], ["-", 200, 0]], [["~", 500, 8]]])
    assert book.bids == {300: 1, 250: 7, 100: 9}
    assert book.asks == {500: 8, 600: 6}
    book.apply_updates([[["~", 120, 1]], [["~", 0, 0]]])  # drop to 120 (new level); asks empty
    assert book.bids == {120: 1, 100: 9}
    assert book.asks == {}
    bids, asks = book.levels()
    assert bids == (
        (Decimal("0.0000012"), Decimal("0.00000001")),
        (Decimal("0.000001"), Decimal("0.00000009")),
    )
    assert asks == ()


def parser() -> FineryParser:
    return FineryParser("fm", "1", clock=lambda: 42.0)


def test_status_feed_errors_and_unbind() -> None:
    p = parser()
    (status,) = p.parse('["X",0,"Z",0]')
    assert isinstance(status, StatusMessage) and status.connected
    (down,) = p.parse('["X",0,"Z",2]')
    assert not down.connected and "not connected" in down.message
    messages = {}
    for code in (100, 101, 102, 103, 3):
        (err,) = p.parse(json.dumps(["B", "BTC-EUR", "Z", [code] if code == 3 else code]))
        assert isinstance(err, FeedError) and err.code == code
        messages[code] = err.message
    assert "already exists" in messages[100] and "not found" in messages[101]
    assert "feed name" in messages[102] and "feed id" in messages[103]
    assert "not authorised" in messages[3]
    (unbound,) = p.parse('["F","BTC-USD","U",0]')
    assert isinstance(unbound, Unbound) and unbound.feed_id == "BTC-USD"


def test_book_feeds_incremental_and_repeated_snapshots() -> None:
    p = parser()
    book, bound = p.parse(
        '["F","BTC-USD","S",[[[1100000000000,11000000]],'
        "[[1100100000000,80000000],[1100200000000,200000000]]]]"
    )
    assert isinstance(bound, Bound)
    assert isinstance(book, BookEvent) and book.channel == "level2" and book.symbol == "BTC-USD"
    assert book.asks[0] == (Decimal(11001), Decimal("0.8"))
    (book,) = p.parse(
        '["F","BTC-USD","M",[[["+",1099900000000,100000000]],[["~",1100200000000,100000000]]]]'
    )
    assert book.bids == ((Decimal(11000), Decimal("0.11")), (Decimal(10999), Decimal(1)))
    assert book.asks == ((Decimal(11002), Decimal(1)),)
    assert book.sequence == 2
    # Global book in the current style: repeated full snapshots; numeric feed id resolved.
    p.parse(
        '["I",0,"S",[[["USD",1,1000000,100000000,"fiat"]],[["BTC-USD",4955410050,"BTC","USD"]]]]'
    )
    first = events_only(p.parse('["B",4955410050,"S",[[[5,1]],[]]]'))[0]
    second = events_only(p.parse('["B",4955410050,"S",[[],[[7,2]]]]'))[0]
    assert first.symbol == second.symbol == "BTC-USD" and first.channel == "global_book"
    assert second.bids == () and second.asks == ((Decimal("7E-8"), Decimal("2E-8")),)
    with pytest.raises(ParseError):
        p.parse('["F","ETH-USD","M",[[],[]]]')  # update before snapshot
    # A master's binding for a sub-account belongs to that sub-account.
    sub = events_only(p.parse('["F",{"instrument":"BTC-USD","clientId":5},"S",[[],[]]]'))[0]
    assert sub.account_id == "5" and sub.symbol == "BTC-USD"


def test_reference_feed() -> None:
    p = parser()
    ref, _ = p.parse(
        '["I",0,"S",[[["USD",1,1000000,100000000,"fiat"]],[["BTC-USD",35462742745,"BTC","USD"]]]]'
    )
    assert isinstance(ref, ReferenceData) and set(ref.instruments) == {"BTC-USD"}
    (ref,) = p.parse('["C",0,"+",["BTC",3,1,6000000000000,"crypto"]]')
    assert set(ref.currencies) == {"USD", "BTC"}
    (ref,) = p.parse('["I",0,"+",["ETH-USD",7,"ETH","USD"]]')
    assert p.instrument_name(7) == "ETH-USD"
    (ref,) = p.parse('["I",0,"-",["ETH-USD",7,"ETH","USD"]]')
    assert "ETH-USD" not in ref.instruments


ORDER = ["BTC-USD", 0, 1, 0, 1234, 77, 999900000000, 10000000, 10000000, 1558051200000, 0]
DEAL_24 = [
    "BTC-USD",
    0,
    0,
    0,
    1234,
    0,
    9900000000,
    10000000,
    9998000,
    1558051200000,
    1558052600000,
    12,
    1,
    9900000000,
    2000,
    19800000000000,
    100000,
    14,
    0,
    10,
    0,
    0,
    15,
    0,
]
DEAL_21 = [
    "BTC-USDT",
    4,
    0,
    0,
    48221507535,
    0,
    0,
    100000000,
    0,
    1709716088000,
    1709716088000,
    1864944,
    0,
    6674859047619,
    85000000,
    5673630190500,
    0,
    87,
    0,
    0,
    1864943,
]


def test_order_feed_lifecycle_and_deal_lengths() -> None:
    p = parser()
    items = p.parse(json.dumps(["O", 0, "S", [ORDER]]))
    (ack,) = events_only(items)
    assert isinstance(ack, OrderUpdateEvent) and ack.status == "ACK" and ack.side == "SELL"
    assert ack.client_order_id == "77" and ack.price == Decimal(9999)
    assert ack.order_type == "LIMIT" and ack.time_in_force == "GTC"
    for deal in (DEAL_24, DEAL_21, DEAL_21[:19]):
        order, fill = p.parse(json.dumps(["O", 0, "D", deal]))
        assert isinstance(fill, FillEvent) and fill.trade_id == str(deal[11])
        assert fill.quantity == from_units(deal[14]) and fill.price == from_units(deal[13])
        assert order.status == "FILLED" and order.terminal == (deal[8] == 0)
    _, fill = p.parse(json.dumps(["O", 0, "D", DEAL_21]))
    assert fill.is_taker and fill.side == "BUY" and fill.remaining == 0
    with pytest.raises(ParseError):
        p.parse(json.dumps(["O", 0, "D", DEAL_21[:18]]))
    cancelled = [*ORDER[:3], 4, *ORDER[4:]]
    (update,) = p.parse(json.dumps(["O", 0, "-", cancelled]))
    assert update.status == "CANCELLED" and update.terminal
    filled = [*ORDER[:8], 0, *ORDER[9:]]
    assert p.parse(json.dumps(["O", 0, "-", filled])) == []  # the deal already said FILLED


def test_positions_both_snapshot_shapes_and_net_per_currency() -> None:
    rows = [
        ["BTC", -10000000, 2, 0, -10000000],
        ["USD", 100000000000, 2, 100000000000, 0],
        ["BTC", 30000000, 3, 30000000, 0],
    ]
    for payload in (rows, [5, rows]):
        p = parser()
        events = events_only(p.parse(json.dumps(["K", 0, "S", payload])))
        assert {(e.symbol, e.size) for e in events} == {
            ("BTC", Decimal("0.2")),
            ("USD", Decimal(1000)),
        }
    (btc,) = p.parse('["K",0,"M",["BTC",0,3,0,0]]')
    assert isinstance(btc, PositionEvent) and btc.size == Decimal("-0.1")
    (usd,) = p.parse('["K",0,"-",["USD",0,2,0,0]]')
    assert usd.size == 0
    # A resnapshot reports currencies that disappeared as zero.
    events = events_only(p.parse('["K",0,"S",[]]'))
    assert {(e.symbol, e.size) for e in events} == {("BTC", 0)}


def test_limits_map_to_balance_headroom() -> None:
    p = parser()
    obj = {
        "counterpartyId": 12,
        "tradingPermissions": {},
        "ownLimit": {
            "grossLimit": 100000000000,
            "asset": "USD",
            "limitUtilization": 2500000000,
            "equity": -2500000000,
            "maintenanceMargin": 0,
            "restrictedTrading": 0,
            "initialMargin": 0,
        },
    }
    items = p.parse(json.dumps(["L", 0, "S", [obj, {"counterpartyId": 13}]]))
    (bal,) = events_only(items)
    assert isinstance(bal, BalanceEvent) and bal.currency == "USD"
    assert bal.available == Decimal(975) and bal.deposit == Decimal(-25)
    intermediate = [12, "USD", 500000000, None, None, 100000000, 0, 0, 0, 0, 0, 0]
    (bal,) = p.parse(json.dumps(["L", 0, "M", intermediate]))
    assert bal.available == Decimal(4)
    oldest = ["USD", 0, 500000000, 0, 200000000, 0, 12, 0]
    (bal,) = p.parse(json.dumps(["L", 0, "+", oldest]))
    assert bal.available == Decimal(3)


def test_request_replies_and_bad_frames() -> None:
    p = parser()
    (ok,) = p.parse('{"event":"request","reqId":7,"reply":{"id":1}}')
    assert isinstance(ok, RequestReply) and ok.req_id == 7 and ok.error == 0
    (bad,) = p.parse('{"event":"request","reqId":8,"error":74,"param":"clientOrderId"}')
    assert bad.error == 74 and bad.param == "clientOrderId"
    (mod,) = p.parse('{"event":"request","reqId":9,"reply":{"error":74,"origId":42}}')
    assert mod.error == 74
    for frame in (
        '["O",0,"D",[not json',
        '["K",0,"S",[["USD",1.5,2,0,0]]]',
        "[1,2]",
        '["X",0,"S",0]',
    ):
        with pytest.raises(ParseError) as info:
            p.parse(frame)
        assert info.value.raw == frame
