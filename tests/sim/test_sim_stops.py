"""Stop orders: TAKE_PROFIT, STOP_LOSS, STOP_MARKET, attached take_profit / stop_loss,
cancel_stop_order, modify_stop_order and the stop_orders channel (engine with an injected clock,
then over the trade socket)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sim_client import OTHER, PRIMARY, SUB1, Sim, connect, make_config, order_status

from qfexbot.sim import SimSymbol
from qfexbot.sim.qfex.config import default_symbols
from qfexbot.sim.qfex.engine import Engine
from qfexbot.sim.qfex.model import CommandError, PrivateEvent

D = Decimal
AAPL = "AAPL-USD"


class Clock:
    def __init__(self, now: float = 1_760_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def engine(**overrides: Any) -> Engine:
    return Engine(make_config(**overrides), Clock())


def replies(events: list, key: str = "order_response") -> list[dict[str, Any]]:
    return [e.frame[key] for e in events if isinstance(e, PrivateEvent) and key in e.frame]


def statuses(events: list) -> list[str]:
    return [r["status"] for r in replies(events)]


def market(side: str, quantity: str, **extra: Any) -> dict[str, Any]:
    return {
        "symbol": AAPL,
        "side": side,
        "order_type": "MARKET",
        "order_time_in_force": "IOC",
        "quantity": D(quantity),
        **extra,
    }


def stop(kind: str, side: str, trigger: str, quantity: str, tif: str = "GTC") -> dict[str, Any]:
    return {
        "symbol": AAPL,
        "side": side,
        "order_type": kind,
        "order_time_in_force": tif,
        "quantity": D(quantity),
        "price": D(trigger),
    }


def place_stop(eng: Engine, params: dict[str, Any], account: str = PRIMARY) -> str:
    events = eng.add_order(account, params)
    assert statuses(events) == ["ACK"], statuses(events)
    return replies(events)[0]["order_id"]


def size(eng: Engine, account: str = PRIMARY) -> Decimal:
    return eng.accounts[account].positions[AAPL].size


def test_a_stop_loss_waits_then_sells_the_long_at_market_when_the_mark_falls() -> None:
    eng = engine()
    eng.add_order(PRIMARY, market("BUY", "2"))
    events = eng.add_order(PRIMARY, stop("STOP_LOSS", "SELL", "195.00", "2"))
    (ack,) = replies(events)
    assert (ack["status"], ack["type"], ack["time_in_force"]) == ("ACK", "STOP_LOSS", "IOC")
    (row,) = replies(events, "stop_order_response")
    assert (row["stop_order_id"], row["stop_order_type"], row["direction"]) == (
        ack["order_id"],
        "STOP_LOSS",
        "SELL",
    )
    assert (row["price"], row["quantity"]) == (195.0, 2.0)
    assert row["update_time"].startswith("2025-10-09T")  # RFC 3339 of the injected clock
    stop_id = ack["order_id"]
    assert eng.set_price(AAPL, D("196")) == [] and stop_id in eng.stops  # not reached
    assert eng.order_margin(PRIMARY) == 0  # stops hold no order margin
    events = eng.set_price(AAPL, D("194"))
    assert "FILLED" in statuses(events) and size(eng) == 0
    fills = replies(events, "fill_response")
    assert {f["order_id"] for f in fills} == {stop_id}
    assert {(f["order_type"], f["tif"]) for f in fills} == {("STOP_LOSS", "IOC")}
    assert {f["execution_type"] for f in fills} == {"NEW"}  # Q30
    assert stop_id not in eng.stops
    found = eng.find_order(PRIMARY, stop_id)
    assert found is not None and found.triggered and found.status == "FILLED"
    assert eng.trade_log[PRIMARY][-1].order_type == "STOP_LOSS"
    assert eng.order_log[stop_id] is found


def test_take_profits_and_buy_stops_trigger_on_their_side_of_the_mark() -> None:
    eng = engine()
    eng.add_order(PRIMARY, market("BUY", "1"))
    eng.add_order(SUB1, market("SELL", "0.1"))
    long_tp = place_stop(eng, stop("TAKE_PROFIT", "SELL", "205.00", "1"))
    short_tp = place_stop(eng, stop("TAKE_PROFIT", "BUY", "195.00", "0.1"), account=SUB1)
    short_sl = place_stop(eng, stop("STOP_LOSS", "BUY", "204.00", "0.1"), account=SUB1)
    assert eng.set_price(AAPL, D("203")) == []
    events = eng.set_price(AAPL, D("206"))  # up: the long's TP and the short's SL fire
    assert {f["order_id"] for f in replies(events, "fill_response")} == {long_tp, short_sl}
    assert size(eng) == 0 and size(eng, SUB1) == 0
    # the short's TP has nothing left to close when it fires: CANCELLED
    events = eng.set_price(AAPL, D("190"))
    assert replies(events) and replies(events)[-1]["order_id"] == short_tp
    assert statuses(events) == ["CANCELLED"]


def test_a_stop_market_opens_a_position_when_the_mark_rises() -> None:
    eng = engine()
    stop_id = place_stop(eng, stop("STOP_MARKET", "BUY", "202.00", "1", tif="FOK"))
    events = eng.set_price(AAPL, D("203"))
    assert "FILLED" in statuses(events) and size(eng) == 1
    assert replies(events, "stop_order_response") == []  # not a TP/SL (Q29)
    assert {f["order_type"] for f in replies(events, "fill_response")} == {"STOP_MARKET"}
    # a SELL STOP_MARKET fires when the mark falls; without margin it is refused then
    place_stop(eng, stop("STOP_MARKET", "SELL", "150.00", "500"), account=SUB1)
    assert statuses(eng.set_price(AAPL, D("149"))) == ["FAILED_MARGIN_CHECK"]
    assert eng.stops == {} and stop_id in eng.order_log


def test_stops_are_checked_after_every_price_step() -> None:
    symbols = default_symbols()
    symbols[AAPL] = SimSymbol(AAPL, D("200.00"), volatility=D("0.002"))
    eng = engine(symbols=symbols)
    eng.add_order(PRIMARY, market("BUY", "2"))
    mark = eng.mark_price(AAPL)
    tp = place_stop(eng, stop("TAKE_PROFIT", "SELL", str(mark + D("0.05")), "1"))
    sl = place_stop(eng, stop("STOP_LOSS", "SELL", str(mark - D("0.05")), "1"))
    for _ in range(1000):
        events = eng.step_prices()
        if len(eng.stops) < 2:
            break
    fired = {f["order_id"] for f in replies(events, "fill_response")}
    assert len(fired) == 1 and fired <= {tp, sl}
    assert (sl if tp in fired else tp) in eng.stops
    rose = eng.mark_price(AAPL) > mark
    assert fired == ({tp} if rose else {sl})


def test_a_stop_already_reached_fires_as_soon_as_it_is_placed() -> None:
    eng = engine()
    eng.add_order(PRIMARY, market("BUY", "1"))
    events = eng.add_order(PRIMARY, stop("TAKE_PROFIT", "SELL", "199.00", "1"))
    assert statuses(events)[:2] == ["ACK", "FILLED"] and size(eng) == 0


def test_stop_placement_is_checked() -> None:
    eng = engine()
    assert statuses(eng.add_order(PRIMARY, stop("STOP_LOSS", "SELL", "190.00", "1"))) == [
        "REJECTED"  # nothing to close
    ]
    eng.add_order(PRIMARY, market("BUY", "1"))
    for params, status in (
        (stop("STOP_LOSS", "SELL", "190.00", "2"), "REJECTED"),  # more than the position
        (stop("TAKE_PROFIT", "BUY", "190.00", "1"), "REJECTED"),  # would add to it
        (stop("STOP_LOSS", "SELL", "190.005", "1"), "INVALID_TICK_SIZE_PRECISION_PRICE"),
        (stop("STOP_LOSS", "SELL", "190.00", "0.0005"), "INVALID_TICK_SIZE_PRECISION_QUANTITY"),
        ({**stop("STOP_LOSS", "SELL", "190.00", "1"), "symbol": "NOPE-USD"}, "BAD_SYMBOL"),
    ):
        assert statuses(eng.add_order(PRIMARY, params)) == [status], params
    # a quantity below min_quantity is fine for a stop (lot grid only)
    place_stop(eng, stop("STOP_LOSS", "SELL", "190.00", "0.001"))
    assert len(eng.stops) == 1


def test_a_stop_is_clipped_to_the_position_left_when_it_fires() -> None:
    eng = engine()
    eng.add_order(PRIMARY, market("BUY", "2"))
    stop_id = place_stop(eng, stop("STOP_LOSS", "SELL", "195.00", "2"))
    eng.add_order(PRIMARY, market("SELL", "1.5"))
    events = eng.set_price(AAPL, D("190"))
    assert replies(events)[0]["quantity"] == 0.5
    assert sum(f["quantity"] for f in replies(events, "fill_response")) == 0.5
    assert size(eng) == 0 and eng.order_log[stop_id].quantity == D("0.5")


def test_cancel_and_modify_stop_orders() -> None:
    eng = engine()
    eng.add_order(PRIMARY, market("BUY", "2"))
    stop_id = place_stop(eng, stop("STOP_LOSS", "SELL", "195.00", "1"))
    modify = {"stop_order_id": stop_id, "symbol": AAPL, "price": D("196.50"), "quantity": D("2")}
    events = eng.modify_stop_order(PRIMARY, modify)
    (reply,) = replies(events)
    assert (reply["status"], reply["price"], reply["quantity"]) == ("MODIFIED", 196.5, 2.0)
    assert replies(events, "stop_order_response")[0]["price"] == 196.5
    # refused values leave it as it was
    for values, status in (
        ({"quantity": D("3")}, "REJECTED"),
        ({"price": D("196.505")}, "INVALID_TICK_SIZE_PRECISION_PRICE"),
    ):
        assert statuses(eng.modify_stop_order(PRIMARY, {**modify, **values})) == [status]
    assert (eng.stops[stop_id].price, eng.stops[stop_id].status) == (D("196.50"), "MODIFIED")
    for params in (
        {**modify, "stop_order_id": "nope"},
        {**modify, "symbol": "CL-USD"},
    ):
        assert statuses(eng.modify_stop_order(PRIMARY, params)) == ["CANNOT_MODIFY_NO_SUCH_ORDER"]
    assert statuses(eng.modify_stop_order(SUB1, modify)) == ["CANNOT_MODIFY_NO_SUCH_ORDER"]
    assert statuses(eng.cancel_stop_order(SUB1, {"stop_order_id": stop_id})) == ["NO_SUCH_ORDER"]
    (reply,) = replies(eng.cancel_stop_order(PRIMARY, {"stop_order_id": stop_id}))
    assert (reply["status"], reply["order_id"], reply["type"]) == (
        "CANCELLED",
        stop_id,
        "STOP_LOSS",
    )
    assert eng.stops == {}
    assert statuses(eng.cancel_stop_order(PRIMARY, {"stop_order_id": stop_id})) == ["NO_SUCH_ORDER"]
    assert statuses(eng.set_price(AAPL, D("150"))) == []  # cancelled: never fires
    for call, params, code in (
        (eng.cancel_stop_order, {}, "InvalidParameter"),
        (eng.cancel_stop_order, {"stop_order_id": 5}, "InvalidJSONFormat"),
        (eng.modify_stop_order, {"stop_order_id": stop_id, "symbol": AAPL}, "InvalidParameter"),
        (eng.modify_stop_order, {**modify, "price": "x"}, "InvalidJSONFormat"),
    ):
        try:
            call(PRIMARY, params)
        except CommandError as exc:
            assert exc.error_code == code
        else:
            raise AssertionError(f"accepted {params}")


def test_cancel_order_and_cancel_all_reach_stops_too() -> None:
    eng = engine()
    eng.add_order(PRIMARY, market("BUY", "2"))
    first = place_stop(eng, stop("STOP_LOSS", "SELL", "195.00", "1"))
    place_stop(eng, stop("TAKE_PROFIT", "SELL", "205.00", "1"))
    by_id = eng.cancel_order(PRIMARY, {"symbol": AAPL, "order_id": first})
    assert statuses(by_id) == ["CANCELLED"]
    assert statuses(eng.cancel_all(PRIMARY)) == ["CANCELLED"] and eng.stops == {}


def test_attached_take_profit_and_stop_loss_stage_on_fill_and_grow() -> None:
    eng = engine()
    parent = {
        "symbol": AAPL,
        "side": "BUY",
        "order_type": "LIMIT",
        "order_time_in_force": "GTC",
        "quantity": D("2"),
        "price": D("200.00"),
        "take_profit": D("210.00"),
        "stop_loss": D("190.00"),
        "client_order_id": "with-brackets",
    }
    events = eng.add_order(PRIMARY, parent)
    assert statuses(events) == ["ACK"] and eng.stops == {}  # nothing staged before a fill
    parent_id = replies(events)[0]["order_id"]
    events = eng.add_order(OTHER, market("SELL", "0.5"))
    staged = {
        r["type"]: r for r in replies(events) if r["user_id"] == PRIMARY and r["status"] == "ACK"
    }
    assert set(staged) == {"TAKE_PROFIT", "STOP_LOSS"}
    for kind, trigger in (("TAKE_PROFIT", 210.0), ("STOP_LOSS", 190.0)):
        row = staged[kind]
        assert (row["side"], row["price"], row["quantity"]) == ("SELL", trigger, 0.5)
        assert row["client_order_id"] == "with-brackets"
        child = eng.stops[row["order_id"]]
        assert child.parent_id == parent_id and child.reduce_only
    assert len(replies(events, "stop_order_response")) == 2
    events = eng.add_order(OTHER, market("SELL", "1"))
    grown = [r for r in replies(events) if r["status"] == "MODIFIED"]
    assert sorted((r["type"], r["quantity"]) for r in grown) == [
        ("STOP_LOSS", 1.5),
        ("TAKE_PROFIT", 1.5),
    ]
    # the parent cancelled now: its stops still protect the 1.5 filled
    eng.cancel_order(PRIMARY, {"symbol": AAPL, "order_id": parent_id})
    events = eng.set_price(AAPL, D("189"))
    assert size(eng) == 0
    fired = {f["order_type"] for f in replies(events, "fill_response") if f["user_id"] == PRIMARY}
    assert fired == {"STOP_LOSS"}


def test_attached_prices_must_be_on_the_right_side() -> None:
    eng = engine()
    buy = {
        "symbol": AAPL,
        "side": "BUY",
        "order_type": "LIMIT",
        "order_time_in_force": "GTC",
        "quantity": D("1"),
        "price": D("199.00"),
    }
    sell_market = market("SELL", "1")
    for params, status in (
        ({**buy, "take_profit": D("199.00")}, "INVALID_TAKEPROFIT_PRICE"),
        ({**buy, "take_profit": D("201.005")}, "INVALID_TAKEPROFIT_PRICE"),
        ({**buy, "stop_loss": D("199.50")}, "INVALID_STOPLOSS_PRICE"),
        ({**sell_market, "take_profit": D("201.00")}, "INVALID_TAKEPROFIT_PRICE"),  # vs the mark
        ({**sell_market, "stop_loss": D("199.00")}, "INVALID_STOPLOSS_PRICE"),
    ):
        assert statuses(eng.add_order(PRIMARY, params)) == [status], params
    good = {**buy, "take_profit": D("205.00"), "stop_loss": D("195.00")}
    assert statuses(eng.add_order(PRIMARY, good)) == ["ACK"]


def test_leverage_cannot_change_while_a_stop_waits() -> None:
    eng = engine()
    eng.add_order(PRIMARY, market("BUY", "1"))
    place_stop(eng, stop("STOP_LOSS", "SELL", "195.00", "1"))
    eng.add_order(PRIMARY, market("SELL", "1"))
    try:
        eng.set_leverage(PRIMARY, AAPL, 5)
    except CommandError as exc:
        assert "open orders" in exc.message
    else:
        raise AssertionError("leverage changed with a stop waiting")


# ----------------------------------------------------------------- over the socket


async def test_stops_over_the_trade_socket(running: Sim) -> None:
    async with connect(running.urls.trade_url) as ws:
        await ws.auth()
        await ws.subscribe("order_responses", "fills", "stop_orders")
        await ws.command("add_order", **_wire(market("BUY", "2")))
        await ws.recv_until(lambda f: "fill_response" in f)
        await ws.command("add_order", **_wire(stop("STOP_LOSS", "SELL", "195.00", "2")))
        ack = (await ws.recv_until(order_status))["order_response"]
        assert (ack["status"], ack["type"]) == ("ACK", "STOP_LOSS")
        row = (await ws.recv_until(lambda f: "stop_order_response" in f))["stop_order_response"]
        assert row["stop_order_id"] == ack["order_id"]
        await ws.command("get_user_orders")
        listing = (await ws.recv_until(lambda f: "all_orders_response" in f))["all_orders_response"]
        assert [o["order_id"] for o in listing["orders"]] == [ack["order_id"]]
        assert [s["stop_order_id"] for s in listing["stop_orders"]] == [ack["order_id"]]
        await ws.command(
            "modify_stop_order", stop_order_id=ack["order_id"], symbol=AAPL, price=196, quantity=1
        )
        assert order_status(await ws.recv_until(order_status)) == "MODIFIED"
        running.sim.set_price(AAPL, D("190"))
        fill = (await ws.recv_until(lambda f: "fill_response" in f))["fill_response"]
        assert (fill["order_id"], fill["order_type"]) == (ack["order_id"], "STOP_LOSS")
        await ws.command("get_order", symbol=AAPL, order_id=ack["order_id"])
        got = (await ws.recv_until(order_status))["order_response"]
        assert (got["type"], got["status"]) == ("STOP_LOSS", "FILLED")
        await ws.command("cancel_stop_order", stop_order_id=ack["order_id"])
        assert order_status(await ws.recv_until(order_status)) == "NO_SUCH_ORDER"
        await ws.command("cancel_stop_order")
        assert (await ws.recv_until(lambda f: "err" in f))["err"][
            "error_code"
        ] == "InvalidParameter"
        assert running.sim.engine.accounts[PRIMARY].positions[AAPL].size == 1  # 2 - 1 stopped


def _wire(params: dict[str, Any]) -> dict[str, Any]:
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in params.items()}
