"""modify_order and close_position: the engine's rules (injected clock) and the trade socket."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sim_client import OTHER, PRIMARY, SUB1, Sim, connect, make_config, order_status

from qfexbot.sim.qfex.engine import Engine
from qfexbot.sim.qfex.model import CommandError, PrivateEvent

D = Decimal


class Clock:
    def __init__(self, now: float = 1_760_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def engine() -> tuple[Engine, Clock]:
    clock = Clock()
    return Engine(make_config(), clock), clock


def limit(side: str = "BUY", price: str = "190.00", **extra: Any) -> dict[str, Any]:
    return {
        "symbol": "AAPL-USD",
        "side": side,
        "order_type": "LIMIT",
        "order_time_in_force": "GTC",
        "quantity": D("1"),
        "price": D(price),
        **extra,
    }


def market(side: str, quantity: str) -> dict[str, Any]:
    return {
        "symbol": "AAPL-USD",
        "side": side,
        "order_type": "MARKET",
        "order_time_in_force": "IOC",
        "quantity": D(quantity),
    }


def replies(events: list) -> list[dict[str, Any]]:
    return [
        e.frame["order_response"]
        for e in events
        if isinstance(e, PrivateEvent) and "order_response" in e.frame
    ]


def statuses(events: list) -> list[str]:
    return [r["status"] for r in replies(events)]


def fills(events: list) -> list[dict[str, Any]]:
    return [
        e.frame["fill_response"]
        for e in events
        if isinstance(e, PrivateEvent) and "fill_response" in e.frame
    ]


def place(eng: Engine, params: dict[str, Any], account: str = PRIMARY) -> str:
    events = eng.add_order(account, params)
    assert statuses(events)[0] == "ACK", statuses(events)
    return replies(events)[0]["order_id"]


def modify(order_id: str, side: str = "BUY", order_type: str = "LIMIT", **values: Any) -> dict:
    return {
        "symbol": "AAPL-USD",
        "order_id": order_id,
        "side": side,
        "order_type": order_type,
        **values,
    }


# ----------------------------------------------------------------- modify_order


def test_modify_changes_price_and_quantity_and_reports_modified() -> None:
    eng, clock = engine()
    order_id = place(eng, limit(price="190.00"))
    margin_before = eng.order_margin(PRIMARY)
    clock.now += 5
    events = eng.modify_order(PRIMARY, modify(order_id, price=D("191.50"), quantity=D("2")))
    (reply,) = replies(events)
    assert reply["status"] == "MODIFIED"
    assert (reply["price"], reply["quantity"], reply["quantity_remaining"]) == (191.5, 2.0, 2.0)
    assert reply["order_id"] == order_id and reply["update_time"] == clock.now
    (resting,) = eng.open_orders(PRIMARY)
    assert resting.price == D("191.50") and resting.remaining == 2
    assert eng.order_margin(PRIMARY) > margin_before
    found = eng.find_order(PRIMARY, order_id)
    assert found is not None and found.status == "MODIFIED"


def test_modify_keeps_priority_on_a_smaller_quantity_and_loses_it_on_a_new_price() -> None:
    eng, _ = engine()
    first = place(eng, limit(price="200.00", quantity=D("2")))
    second = place(eng, limit(price="200.00", quantity=D("2")), account=SUB1)
    eng.modify_order(PRIMARY, modify(first, quantity=D("1")))  # smaller: stays first
    events = eng.add_order(OTHER, market("SELL", "0.5"))
    assert [f["order_id"] for f in fills(events) if f["user_id"] != OTHER] == [first]
    # a partly filled order cannot be modified
    assert statuses(eng.modify_order(PRIMARY, modify(first, price=D("200.01")))) == [
        "CANNOT_MODIFY_PARTIAL_FILL"
    ]
    # the other way round: SUB1's order moves away and back, it is now behind a new one
    third = place(eng, limit(price="199.99"))
    eng.modify_order(SUB1, modify(second, price=D("199.98")))
    eng.modify_order(SUB1, modify(second, price=D("199.99")))
    bids = eng.markets["AAPL-USD"].bids
    assert [o.order_id for o in bids if o.price == D("199.99")] == [third, second]


def test_modify_of_an_unknown_or_mismatched_order_is_cannot_modify_no_such_order() -> None:
    eng, _ = engine()
    order_id = place(eng, limit(price="190.00"))
    cases = [
        (modify("nope"), "BUY", "LIMIT"),
        (modify(order_id, side="SELL"), "SELL", "LIMIT"),  # wrong side
        (modify(order_id, order_type="ALO"), "BUY", "ALO"),  # wrong type
        ({**modify(order_id), "symbol": "CL-USD"}, "BUY", "LIMIT"),
    ]
    for params, side, order_type in cases:
        (reply,) = replies(eng.modify_order(PRIMARY, {**params, "price": D("195")}))
        assert reply["status"] == "CANNOT_MODIFY_NO_SUCH_ORDER"
        assert (reply["side"], reply["type"]) == (side, order_type)
    # another account cannot address it either; the order is untouched
    (reply,) = replies(eng.modify_order(SUB1, modify(order_id, price=D("195"))))
    assert reply["status"] == "CANNOT_MODIFY_NO_SUCH_ORDER"
    assert eng.open_orders(PRIMARY)[0].price == D("190.00")


def test_a_refused_modify_answers_the_reject_and_leaves_the_order() -> None:
    eng, _ = engine()
    order_id = place(eng, limit(price="190.00", quantity=D("0.1")), account=SUB1)
    for values, status in (
        ({"price": D("190.005")}, "INVALID_TICK_SIZE_PRECISION_PRICE"),
        ({"quantity": D("0.0005")}, "INVALID_TICK_SIZE_PRECISION_QUANTITY"),
        ({"price": D("250.00")}, "PRICE_GREATER_THAN_MAX_PRICE"),  # outside the band
        ({"quantity": D("50")}, "FAILED_MARGIN_CHECK"),  # SUB1 holds 50 USD
        ({"take_profit": D("180.00")}, "INVALID_TAKEPROFIT_PRICE"),
        ({"stop_loss": D("195.00")}, "INVALID_STOPLOSS_PRICE"),
    ):
        assert statuses(eng.modify_order(SUB1, modify(order_id, **values))) == [status], values
    (resting,) = eng.open_orders(SUB1)
    assert (resting.price, resting.quantity, resting.status) == (D("190.00"), D("0.1"), "ACK")
    assert resting.take_profit == 0 and resting.stop_loss == 0


def test_modify_parameters_are_checked() -> None:
    eng, _ = engine()
    order_id = place(eng, limit())
    for params, code in (
        ({"order_id": order_id, "side": "BUY", "order_type": "LIMIT"}, "InvalidParameter"),
        ({**modify(order_id), "side": "UP"}, "InvalidJSONFormat"),
        ({**modify(order_id), "order_type": "BEST"}, "InvalidJSONFormat"),
        ({**modify(order_id), "price": "cheap"}, "InvalidJSONFormat"),
    ):
        try:
            eng.modify_order(PRIMARY, params)
        except CommandError as exc:
            assert exc.error_code == code
        else:
            raise AssertionError(f"accepted {params}")


def test_a_modified_price_that_crosses_trades_as_taker() -> None:
    eng, _ = engine()
    order_id = place(eng, limit(price="190.00"))
    events = eng.modify_order(PRIMARY, modify(order_id, price=D("200.05")))
    assert statuses(events)[:2] == ["MODIFIED", "FILLED"]
    (fill,) = fills(events)
    assert fill["order_id"] == order_id and fill["aggressor_side"] == "BUY"
    assert D(str(fill["price"])) == D("200.01")
    assert eng.open_orders(PRIMARY) == []
    assert eng.accounts[PRIMARY].positions["AAPL-USD"].size == 1


def test_an_alo_modified_to_cross_is_rejected_and_removed() -> None:
    eng, _ = engine()
    order_id = place(eng, {**limit(price="190.00"), "order_type": "ALO"})
    events = eng.modify_order(PRIMARY, modify(order_id, order_type="ALO", price=D("200.05")))
    assert statuses(events) == ["REJECTED"]
    assert eng.open_orders(PRIMARY) == []
    found = eng.find_order(PRIMARY, order_id)
    assert found is not None and found.status == "REJECTED"


def test_modify_sets_and_clears_take_profit_and_stop_loss() -> None:
    eng, _ = engine()
    order_id = place(eng, limit(price="190.00"))
    (reply,) = replies(
        eng.modify_order(PRIMARY, modify(order_id, take_profit=D("195"), stop_loss=D("185")))
    )
    assert (reply["take_profit"], reply["stop_loss"]) == (195.0, 185.0)
    (reply,) = replies(eng.modify_order(PRIMARY, modify(order_id, stop_loss=D("0"))))
    assert (reply["take_profit"], reply["stop_loss"]) == (195.0, 0.0)


# ----------------------------------------------------------------- close_position


def test_close_position_sells_a_long_with_a_reduce_only_ioc_through_the_mark() -> None:
    eng, _ = engine()
    eng.add_order(PRIMARY, market("BUY", "2"))
    resting = place(eng, limit(price="150.00"))
    mark = eng.mark_price("AAPL-USD")
    events = eng.close_position(PRIMARY, {"symbol": "AAPL-USD", "client_order_id": "flat-1"})
    ack = replies(events)[0]
    assert ack["status"] == "ACK" and ack["side"] == "SELL"
    assert (ack["type"], ack["time_in_force"], ack["quantity"]) == ("LIMIT", "IOC", 2.0)
    assert ack["client_order_id"] == "flat-1"
    # 10 bps through the mark, rounded to the tick away from it
    assert D(str(ack["price"])) == (mark * D("0.999")).quantize(D("0.01"), rounding="ROUND_FLOOR")
    assert "FILLED" in statuses(events) and sum(f["quantity"] for f in fills(events)) == 2.0
    assert eng.accounts[PRIMARY].positions["AAPL-USD"].size == 0
    assert [o.order_id for o in eng.open_orders(PRIMARY)] == [resting]  # resting orders stay
    found = eng.find_order(PRIMARY, ack["order_id"])
    assert found is not None and found.reduce_only


def test_close_position_buys_back_a_short() -> None:
    eng, _ = engine()
    eng.add_order(PRIMARY, market("SELL", "1.5"))
    mark = eng.mark_price("AAPL-USD")
    events = eng.close_position(PRIMARY, {"symbol": "AAPL-USD"})
    ack = replies(events)[0]
    assert (ack["status"], ack["side"], ack["quantity"]) == ("ACK", "BUY", 1.5)
    assert D(str(ack["price"])) == (mark * D("1.001")).quantize(D("0.01"), rounding="ROUND_CEILING")
    assert eng.accounts[PRIMARY].positions["AAPL-USD"].size == 0


def test_close_position_without_a_position_is_rejected() -> None:
    eng, _ = engine()
    (reply,) = replies(eng.close_position(PRIMARY, {"symbol": "AAPL-USD"}))
    assert (reply["status"], reply["quantity"]) == ("REJECTED", 0.0)
    eng.add_order(PRIMARY, market("BUY", "1"))
    eng.add_order(PRIMARY, market("SELL", "1"))  # flat again
    assert statuses(eng.close_position(PRIMARY, {"symbol": "AAPL-USD"})) == ["REJECTED"]
    assert statuses(eng.close_position(PRIMARY, {"symbol": "NOPE-USD"})) == ["BAD_SYMBOL"]
    for params, code in (({}, "InvalidParameter"), ({"symbol": 7}, "InvalidJSONFormat")):
        try:
            eng.close_position(PRIMARY, params)
        except CommandError as exc:
            assert exc.error_code == code
        else:
            raise AssertionError(f"accepted {params}")


# ----------------------------------------------------------------- over the socket


async def test_modify_and_close_over_the_trade_socket(running: Sim) -> None:
    async with connect(running.urls.trade_url) as ws:
        await ws.auth()
        await ws.subscribe("order_responses", "fills")
        await ws.command("add_order", **_wire(limit(price="190.00", client_order_id="m1")))
        ack = await ws.recv_until(lambda f: order_status(f) == "ACK")
        order_id = ack["order_response"]["order_id"]
        await ws.command(
            "modify_order",
            symbol="AAPL-USD",
            order_id=order_id,
            side="BUY",
            order_type="LIMIT",
            price=191.0,
            quantity=3,
        )
        modified = (await ws.recv_until(order_status))["order_response"]
        assert (modified["status"], modified["price"], modified["quantity"]) == (
            "MODIFIED",
            191.0,
            3.0,
        )
        await ws.command(
            "modify_order", symbol="AAPL-USD", order_id="nope", side="SELL", order_type="ALO"
        )
        missing = (await ws.recv_until(order_status))["order_response"]
        assert (missing["status"], missing["side"], missing["type"]) == (
            "CANNOT_MODIFY_NO_SUCH_ORDER",
            "SELL",
            "ALO",
        )
        await ws.command("modify_order", symbol="AAPL-USD")
        assert (await ws.recv())["err"]["error_code"] == "InvalidParameter"
        await ws.command("add_order", **_wire(market("BUY", "2")))
        await ws.recv_until(lambda f: "fill_response" in f)
        await ws.command("close_position", symbol="AAPL-USD", client_order_id="close")
        ack = await ws.recv_until(lambda f: order_status(f) == "ACK")
        assert ack["order_response"]["client_order_id"] == "close"
        await ws.recv_until(lambda f: order_status(f) == "FILLED")
        # the engine applied the fill before it sent it
        assert running.sim.engine.accounts[PRIMARY].positions["AAPL-USD"].size == 0
        await ws.command("close_position", symbol="AAPL-USD")
        assert order_status(await ws.recv_until(order_status)) == "REJECTED"


def _wire(params: dict[str, Any]) -> dict[str, Any]:
    """Engine params (Decimals) as JSON numbers."""
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in params.items()}
