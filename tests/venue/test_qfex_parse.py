"""QFEX frame parsing: every documented reply variant, numbers, malformed frames, encoding."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from qfexbot.events import (
    BalanceEvent,
    BookEvent,
    FillEvent,
    MarkPriceEvent,
    OrderUpdateEvent,
    PositionEvent,
    TradeEvent,
)
from qfexbot.venues.qfex.parse import (
    Ack,
    AuthResult,
    ErrorFrame,
    OrdersSnapshot,
    ParseError,
    Reply,
    Subscribed,
    TradesSnapshot,
    Unsubscribed,
    encode_json,
    is_terminal,
    parse_mds_frame,
    parse_positions_snapshot,
    parse_trade_frame,
)

FRAMES = json.loads((Path(__file__).parent / "frames" / "qfex_frames.json").read_text())
TRADE = FRAMES["trade"]
MDS = FRAMES["mds"]
ACCT = "11111111-1111-4111-8111-111111111111"
NOW = 1_700_000_000.25


def trade(name: str) -> list:
    return parse_trade_frame(TRADE[name], "qfex", ACCT, NOW)


def one(name: str):
    items = trade(name)
    assert len(items) == 1, items
    return items[0]


@pytest.mark.parametrize(
    "name, ok",
    [("authenticated", True), ("authenticated_false", False), ("auth_result_success", True)],
)
def test_auth_replies_both_shapes(name: str, ok: bool) -> None:
    assert one(name) == AuthResult(ok)


def test_auth_failure_result_in_old_shape() -> None:
    items = parse_trade_frame('{"type":"auth","result":"failure"}', "qfex", ACCT, NOW)
    assert items == [AuthResult(False)]


def test_subscription_acks() -> None:
    assert one("subscribed") == Subscribed("fills")
    assert one("unsubscribed") == Unsubscribed("fills")


def test_order_response() -> None:
    ev = one("order_response")
    assert isinstance(ev, OrderUpdateEvent)
    assert ev.order_id == "5b309929-206f-40ec-804d-cbe46e81afc1"
    assert (ev.symbol, ev.status, ev.side, ev.order_type, ev.time_in_force) == (
        "AAPL-USD",
        "ACK",
        "BUY",
        "LIMIT",
        "GTC",
    )
    assert ev.price == Decimal("200.0") and ev.quantity == Decimal("1.0")
    assert ev.remaining == Decimal("1.0")
    assert ev.trade_id is None and ev.client_order_id == ""
    assert ev.update_time == pytest.approx(1758208770.5512846)
    assert ev.terminal is False
    assert (ev.venue, ev.account_id, ev.received_at) == ("qfex", ACCT, NOW)
    assert ev.raw == TRADE["order_response"]


def test_fill_response_decimal_from_float_text() -> None:
    ev = one("fill_response")
    assert isinstance(ev, FillEvent)
    assert ev.price == Decimal("25242.0")
    assert ev.quantity == Decimal("0.004")  # not 0.00400000000000000008...
    assert ev.fee == Decimal("0.00045")
    assert ev.side == "SELL" and ev.is_taker is True
    assert ev.remaining == Decimal("0.0") and ev.realised_pnl == Decimal("0.0")
    assert ev.client_order_id == "REDACTED" and ev.order_id.startswith("0aeae7d0")
    assert ev.timestamp == pytest.approx(1769439642.8484282)


def test_fill_maker_when_aggressor_differs() -> None:
    frame = TRADE["fill_response"].replace('"aggressor_side":"SELL"', '"aggressor_side":"BUY"')
    (ev,) = parse_trade_frame(frame, "qfex", ACCT, NOW)
    assert ev.is_taker is False


def test_position_response() -> None:
    ev = one("position_response")
    assert isinstance(ev, PositionEvent)
    assert ev.symbol == "AAPL-USD" and ev.size == Decimal("0.0")
    assert ev.leverage == Decimal("20.0") and ev.open_orders == 0
    assert ev.account_id == ACCT


def test_balance_response() -> None:
    ev = one("balance_response")
    assert isinstance(ev, BalanceEvent)
    assert ev.available == Decimal("9990000000.0")
    assert ev.deposit == Decimal("9990000000.0")
    assert ev.equity == Decimal("9990000000.0")


def test_numbers_as_strings_are_accepted() -> None:
    frame = json.dumps(
        {"balance_response": {"available_balance": "12.345", "deposit": "10", "order_margin": 1}}
    )
    (ev,) = parse_trade_frame(frame, "qfex", ACCT, NOW)
    assert ev.available == Decimal("12.345") and ev.deposit == Decimal(10)
    assert ev.order_margin == Decimal(1)


def test_all_orders_response_is_a_snapshot_not_events() -> None:
    snap = one("all_orders_response")
    assert isinstance(snap, OrdersSnapshot)
    (order,) = snap.orders
    assert order.order_id == "2f05173c-992a-426b-bcaf-6b341644bb62"
    assert order.quantity == Decimal("2.708") and order.remaining == Decimal("2.708")
    assert snap.stop_orders == () and snap.twaps == ()


def test_user_trades_both_shapes() -> None:
    spec = one("user_trades_response")
    doc = one("user_trades")
    assert isinstance(spec, TradesSnapshot) and isinstance(doc, TradesSnapshot)
    assert spec.fills[0].side == "BUY" and spec.fills[0].trade_id == "t-1"
    fill = doc.fills[0]
    assert fill.side == "BUY" and fill.client_order_id == "my-client-oid"
    assert fill.fee == Decimal("0.002") and fill.timestamp == 1746908400.0


def test_acks_both_shapes() -> None:
    ack = one("ack")
    assert isinstance(ack, Ack) and ack.incoming["type"] == "cancel_on_disconnect"
    assert one("ack_response") == Ack(None, ok=True)


def test_error_frames_nested_and_flat() -> None:
    nested = one("err")
    assert isinstance(nested, ErrorFrame)
    assert nested.code == "RateLimited" and nested.incoming_type == "add_order"
    flat = one("err_flat")
    assert (flat.code, flat.message) == ("PermissionDenied", "not authenticated")
    assert flat.incoming_type == ""  # echoed as a string
    capital = one("err_flat_capital")
    assert capital.code == "InvalidParameter"


def test_other_replies_are_kept_as_reply() -> None:
    # Leverage replies are typed now (LeverageLevels, tests/venue/test_qfex_parse_new.py);
    # a kind the parser does not know is still kept whole.
    (reply,) = parse_trade_frame('{"some_new_reply":[{"leverage":"20"}]}', "qfex", "a", 1.0)
    assert isinstance(reply, Reply) and reply.kind == "some_new_reply"
    assert reply.payload["some_new_reply"][0]["leverage"] == "20"


def test_legacy_envelopes() -> None:
    (bal,) = trade("envelope_v4_balances")
    assert isinstance(bal, BalanceEvent) and bal.available == Decimal("100.5")
    aapl, eur = trade("envelope_v4_positions")
    assert aapl.size == Decimal("-2.5") and eur.size == Decimal(1000)
    assert eur.average_price == Decimal("1.0825")
    (upd,) = trade("envelope_balance_update")
    assert upd.available == Decimal("42.0")
    (pos,) = trade("envelope_position_update")
    assert pos.symbol == "CL-USD" and pos.size == Decimal("3.0")


def test_array_of_messages_keeps_order() -> None:
    frame = f"[{TRADE['subscribed']},{TRADE['order_response']},{TRADE['balance_response']}]"
    items = parse_trade_frame(frame, "qfex", ACCT, NOW)
    assert [type(i) for i in items] == [Subscribed, OrderUpdateEvent, BalanceEvent]


@pytest.mark.parametrize(
    "status, remaining, terminal",
    [
        ("ACK", "1", False),
        ("MODIFIED", "1", False),
        ("FILLED", "0.5", False),
        ("FILLED", "0", True),
        ("CANCELLED", "1", True),
        ("REJECTED", "1", True),
        ("NO_SUCH_ORDER", "0", True),
        ("CANNOT_MODIFY_PARTIAL_FILL", "0.5", False),
    ],
)
def test_terminal_statuses(status: str, remaining: str, terminal: bool) -> None:
    assert is_terminal(status, Decimal(remaining)) is terminal


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        b"\xff\xfe",
        "",
        "42",
        "{}",
        '{"order_response":{"symbol":"AAPL-USD"}}',  # missing order_id / status
        '{"balance_response":{"available_balance":"lots"}}',
        '{"fill_response":{"trade_id":"t","symbol":"X","price":NaN,"quantity":1}}',
        '{"position_response":{"symbol":"X","position":[1]}}',
    ],
)
def test_malformed_trade_frames_raise_parse_error_with_raw(frame) -> None:
    with pytest.raises(ParseError) as info:
        parse_trade_frame(frame, "qfex", ACCT, NOW)
    assert info.value.raw == frame


def test_parse_error_preview_is_truncated() -> None:
    frame = "x" * 5000
    with pytest.raises(ParseError) as info:
        parse_trade_frame(frame, "qfex", ACCT, NOW)
    assert len(str(info.value)) < 600 and "5000 chars" in info.value.preview


def test_positions_snapshot_body() -> None:
    body = {
        "balance": {
            "deposit": 1000.0,
            "realised_pnl": 0.0,
            "order_margin": 0.0,
            "position_margin": 12.5,
            "unrealised_pnl": -1.25,
            "net_funding": 0.0,
            "available_balance": 987.5,
        },
        "positions": [
            {
                "symbol": "AAPL-USD",
                "position": 1.5,
                "realised_pnl": 0,
                "unrealised_pnl": -1.25,
                "net_funding": 0,
                "open_orders": 2,
                "open_quantity": 3.0,
                "leverage": 10.0,
                "initial_margin": 0.1,
                "maintenance_margin": 0.0666,
                "average_price": 200.1,
            },
        ],
    }
    snap = parse_positions_snapshot(body, "qfex", ACCT, NOW)
    assert snap.balance.available == Decimal("987.5")
    assert snap.balance.account_id == ACCT
    (pos,) = snap.positions
    assert pos.size == Decimal("1.5") and pos.open_orders == 2
    assert pos.average_price == Decimal("200.1")
    with pytest.raises(ParseError):
        parse_positions_snapshot({"balance": {"deposit": 1}}, "qfex", ACCT, NOW)


# ---------------------------------------------------------------- market data


def mds(name: str) -> list:
    return parse_mds_frame(MDS[name], "qfex", NOW)


def test_level2_and_bbo() -> None:
    (book,) = mds("level2")
    assert isinstance(book, BookEvent) and book.channel == "level2"
    assert book.bids[0] == (Decimal("10101.10"), Decimal("0.45054140"))
    assert book.asks[-1] == (Decimal("10102.65"), Decimal("0.57753524"))
    assert book.sequence == 30272539 and book.account_id == "" and not book.is_private
    (sig,) = mds("level2_sig_figs")
    assert sig.sequence is None and sig.bids[1] == (Decimal("560.3"), Decimal("0.001"))
    (bbo,) = mds("bbo")
    assert bbo.channel == "bbo" and len(bbo.bids) == 1


def test_public_trade_current_and_old_shape() -> None:
    (tr,) = mds("trade")
    assert isinstance(tr, TradeEvent)
    assert (tr.symbol, tr.side, tr.price, tr.size) == (
        "PLTR-USD",
        "SELL",
        Decimal("157.025000"),
        Decimal("0.100000"),
    )
    (old,) = mds("trade_old_lowercase")
    assert old.side == "SELL" and old.price == Decimal("157.025")


def test_mark_price() -> None:
    (mark,) = mds("mark_price")
    assert isinstance(mark, MarkPriceEvent) and mark.price == Decimal("437.45")


def test_unknown_channels_parse_to_nothing() -> None:
    # The six channels that once had no event type are typed now (test_qfex_parse_new.py).
    assert parse_mds_frame('{"type":"refdata","symbol":"AAPL-USD"}', "qfex", 1.0) == []


def test_mds_array_and_envelope() -> None:
    assert [e.symbol for e in mds("array")] == ["AAPL-USD", "EUR-USD"]
    (env,) = mds("envelope")
    assert isinstance(env, MarkPriceEvent) and env.price == Decimal("2.5")


@pytest.mark.parametrize(
    "frame",
    [
        "{",
        '{"symbol":"AAPL-USD"}',
        '{"type":"level2","bid":[]}',
        '{"type":"level2","symbol":"A","bid":[["1"]]}',
        '{"type":"mark_price","symbol":"A","price":"abc"}',
        '"text"',
    ],
)
def test_malformed_mds_frames(frame: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_mds_frame(frame, "qfex", NOW)
    assert info.value.raw == frame


# ---------------------------------------------------------------- encoding


def test_encode_json_writes_decimals_exactly() -> None:
    text = encode_json(
        {
            "type": "add_order",
            "params": {
                "quantity": Decimal("0.1"),
                "price": Decimal("1E+3"),
                "flags": [True, None],
                "s": 'x"y',
            },
        }
    )
    assert text == (
        '{"type":"add_order","params":{"quantity":0.1,"price":1000,'
        '"flags":[true,null],"s":"x\\"y"}}'
    )
    assert json.loads(text, parse_float=Decimal)["params"]["quantity"] == Decimal("0.1")
    big = encode_json({"amount": Decimal("12345678901234567890.123456789")})
    assert big == '{"amount":12345678901234567890.123456789}'
    with pytest.raises(ValueError):
        encode_json({"amount": Decimal("NaN")})


def _get_order_reply(**fields: object) -> str:
    """A get_order reply as the simulator now sends it (qfex.md §6 #7 revised)."""
    order = {
        "order_id": "5b309929-206f-40ec-804d-cbe46e81afc1",
        "symbol": "AAPL-USD",
        "status": "ACK",
        "quantity": 1.0,
        "price": 190.0,
        "take_profit": 0.0,
        "stop_loss": 0.0,
        "side": "SELL",
        "type": "LIMIT",
        "time_in_force": "GTC",
        "user_id": ACCT,
        "client_order_id": "c",
        "quantity_remaining": 1.0,
        "update_time": 1760545414.5,
        "trade_id": None,
        **fields,
    }
    return json.dumps({"order_response": order})


def test_get_order_reply_as_order_response_parses_as_an_order_update() -> None:
    """get_order now answers one ``order_response`` (was ``all_orders_response``): the client
    reads it through the same handler as live order updates; both shapes stay readable."""
    (open_order,) = parse_trade_frame(_get_order_reply(), "qfex", ACCT, NOW)
    assert isinstance(open_order, OrderUpdateEvent)
    assert (open_order.status, open_order.side, open_order.terminal) == ("ACK", "SELL", False)
    assert open_order.price == Decimal("190.0") and open_order.remaining == Decimal("1.0")
    (finished,) = parse_trade_frame(_get_order_reply(status="CANCELLED"), "qfex", ACCT, NOW)
    assert finished.status == "CANCELLED" and finished.terminal
    missing = _get_order_reply(
        order_id="nope",
        status="NO_SUCH_ORDER",
        quantity=0.0,
        price=0.0,
        side="BUY",
        client_order_id="",
        quantity_remaining=0.0,
    )
    (unknown,) = parse_trade_frame(missing, "qfex", ACCT, NOW)
    assert (unknown.order_id, unknown.status, unknown.terminal) == ("nope", "NO_SUCH_ORDER", True)
    assert (unknown.side, unknown.order_type, unknown.time_in_force) == ("BUY", "LIMIT", "GTC")
    old = json.dumps(
        {
            "all_orders_response": {
                "orders": [json.loads(_get_order_reply())["order_response"]],
                "twaps": [],
            }
        }
    )
    (snapshot,) = parse_trade_frame(old, "qfex", ACCT, NOW)
    assert (
        isinstance(snapshot, OrdersSnapshot) and snapshot.orders[0].order_id == open_order.order_id
    )
