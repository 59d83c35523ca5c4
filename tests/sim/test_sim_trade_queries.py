"""Trade-socket queries: get_user_trades, get_order over stops, get_user_orders with stops, and
the leverage levels (get_available_leverage_levels, set_user_leverage, tiered max notional)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sim_client import OTHER, PRIMARY, SUB1, Sim, connect, make_config

from qfexbot.sim.qfex.engine import LEVERAGE_LEVELS, Engine
from qfexbot.sim.qfex.model import CommandError, PrivateEvent

D = Decimal
AAPL = "AAPL-USD"


class Clock:
    def __init__(self, now: float = 1_760_000_000.25) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def market(side: str, quantity: str, symbol: str = AAPL) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "side": side,
        "order_type": "MARKET",
        "order_time_in_force": "IOC",
        "quantity": D(quantity),
        "client_order_id": f"{side}-{quantity}",
    }


def order_id(events: list) -> str:
    return next(
        e.frame["order_response"]["order_id"]
        for e in events
        if isinstance(e, PrivateEvent) and "order_response" in e.frame
    )


# ----------------------------------------------------------------- get_user_trades


def test_user_trades_newest_first_filtered_by_order_and_inclusive_seconds() -> None:
    clock = Clock()
    eng = Engine(make_config(), clock)
    ids = []
    for quantity in ("1", "2", "3"):
        ids.append(order_id(eng.add_order(PRIMARY, market("BUY", quantity))))
        clock.now += 10
    trades = eng.user_trades(PRIMARY)
    assert [t.order_id for t in trades] == ids[::-1]
    assert [t.quantity for t in trades] == [3, 2, 1]
    assert [t.order_id for t in eng.user_trades(PRIMARY, order_id=ids[1])] == [ids[1]]
    start = int(trades[1].ts)  # the second trade's whole second: included at both ends
    assert [t.order_id for t in eng.user_trades(PRIMARY, start=start, end=start)] == [ids[1]]
    assert [t.order_id for t in eng.user_trades(PRIMARY, start=start)] == ids[:0:-1]
    assert [t.order_id for t in eng.user_trades(PRIMARY, end=start - 1)] == [ids[0]]
    assert eng.user_trades(SUB1) == [] and eng.user_trades(OTHER, order_id=ids[0]) == []


async def test_get_user_trades_over_the_socket(running: Sim) -> None:
    engine = running.sim.engine
    async with connect(running.urls.trade_url) as ws:
        await ws.auth()
        for quantity in ("1", "2", "3"):
            running.sim.deliver(engine.add_order(PRIMARY, market("BUY", quantity)))
        await ws.command("get_user_trades")
        rows = (await ws.recv())["user_trades_response"]
        assert [r["quantity"] for r in rows] == [3.0, 2.0, 1.0]
        newest = rows[0]
        assert set(newest) == {
            "trade_id",
            "symbol",
            "price",
            "quantity",
            "side",
            "order_id",
            "fee",
            "order_type",
            "tif",
            "aggressor_side",
            "client_order_id",
            "timestamp",
        }
        assert (newest["side"], newest["aggressor_side"], newest["client_order_id"]) == (
            "BUY",
            "BUY",
            "BUY-3",
        )
        assert (newest["order_type"], newest["tif"]) == ("MARKET", "IOC")
        await ws.command("get_user_trades", limit=1, offset=1)
        assert [r["quantity"] for r in (await ws.recv())["user_trades_response"]] == [2.0]
        await ws.command("get_user_trades", order_id=rows[2]["order_id"])
        assert [r["trade_id"] for r in (await ws.recv())["user_trades_response"]] == [
            rows[2]["trade_id"]
        ]
        second = int(newest["timestamp"])
        await ws.command("get_user_trades", start_ts=second + 1)
        assert (await ws.recv())["user_trades_response"] == []
        await ws.command("get_user_trades", start_ts=second - 60, end_ts=second)
        assert len((await ws.recv())["user_trades_response"]) == 3
        for bad, code in (
            ({"limit": 0}, "InvalidParameter"),
            ({"limit": 1001}, "InvalidParameter"),
            ({"offset": -1}, "InvalidParameter"),
            ({"start_ts": "yesterday"}, "InvalidJSONFormat"),
            ({"end_ts": 1.5}, "InvalidJSONFormat"),
            ({"order_id": 7}, "InvalidJSONFormat"),
        ):
            await ws.command("get_user_trades", **bad)
            assert (await ws.recv())["err"]["error_code"] == code, bad


# ----------------------------------------------------------------- orders and stops


async def test_get_order_and_get_user_orders_see_waiting_and_fired_stops(running: Sim) -> None:
    engine = running.sim.engine
    running.sim.deliver(engine.add_order(PRIMARY, market("BUY", "2")))
    stop_params = {
        "symbol": AAPL,
        "side": "SELL",
        "order_type": "TAKE_PROFIT",
        "order_time_in_force": "IOC",
        "quantity": D("1"),
        "price": D("250.00"),
    }
    tp = order_id(engine.add_order(PRIMARY, stop_params))
    sm = order_id(
        engine.add_order(
            PRIMARY, {**stop_params, "order_type": "STOP_MARKET", "side": "BUY", "price": D("260")}
        )
    )
    async with connect(running.urls.trade_url) as ws:
        await ws.auth()
        await ws.command("get_user_orders")
        listing = (await ws.recv())["all_orders_response"]
        assert [o["order_id"] for o in listing["orders"]] == [tp, sm]
        assert [o["type"] for o in listing["orders"]] == ["TAKE_PROFIT", "STOP_MARKET"]
        assert [s["stop_order_id"] for s in listing["stop_orders"]] == [tp]  # Q29
        await ws.command("get_user_orders", limit=1, offset=1)
        page = (await ws.recv())["all_orders_response"]
        assert [o["order_id"] for o in page["orders"]] == [sm] and page["stop_orders"] == []
        await ws.command("get_order", symbol=AAPL, order_id=tp)
        assert (await ws.recv())["order_response"]["status"] == "ACK"
        running.sim.set_price(AAPL, D("251"))
        await ws.command("get_order", symbol=AAPL, order_id=tp)
        fired = (await ws.recv())["order_response"]
        assert (fired["type"], fired["status"], fired["quantity_remaining"]) == (
            "TAKE_PROFIT",
            "FILLED",
            0.0,
        )
        await ws.command("get_user_orders")
        assert [o["order_id"] for o in (await ws.recv())["all_orders_response"]["orders"]] == [sm]


# ----------------------------------------------------------------- leverage levels


def test_leverage_levels_and_their_tiered_max_notional() -> None:
    eng = Engine(make_config(), Clock())
    assert eng.leverage_levels(AAPL) == (1, 2, 3, 5, 10)  # AAPL's maximum is 10
    assert eng.leverage_levels("CL-USD") == (1, 2, 3, 5, 10, 20)
    assert eng.leverage_levels("US500-USD") == (1, 2, 3, 5, 10, 20, 25, 30)
    assert set(eng.leverage_levels("EUR-USD")) == set(LEVERAGE_LEVELS)
    rows = eng.available_leverage_levels()
    assert len(rows) == sum(len(eng.leverage_levels(s)) for s in eng.markets)
    by_level = {r.leverage: r for r in rows if r.symbol == AAPL}
    base = eng.markets[AAPL].spec.max_position_notional
    assert by_level[10].max_notional == base and by_level[10].initial_margin == D("0.1")
    assert by_level[5].max_notional == base * 2 and by_level[1].initial_margin == 1
    assert len({r.id for r in rows}) == len(rows)


def test_set_leverage_takes_only_listed_levels_and_moves_the_notional_limit() -> None:
    symbols_config = make_config()
    eng = Engine(symbols_config, Clock())
    for bad in (4, 7, 11, 0):
        try:
            eng.set_leverage(PRIMARY, "CL-USD", bad)
        except CommandError as exc:
            assert exc.error_code == "InvalidParameter" and "available levels" in exc.message
        else:
            raise AssertionError(f"leverage {bad} accepted")
    eng.set_leverage(PRIMARY, "CL-USD", D("5.0"))
    assert eng.accounts[PRIMARY].leverage["CL-USD"] == 5
    (row,) = [r for r in eng.leverages(PRIMARY) if r.symbol == "CL-USD"]
    base = eng.markets["CL-USD"].spec.max_position_notional
    assert (row.leverage, row.max_notional) == (5, base * 2)
    assert eng.max_notional(PRIMARY, "CL-USD") == base * 2
    assert eng.max_notional(SUB1, "CL-USD") == base


async def test_get_available_leverage_levels_over_the_socket(running: Sim) -> None:
    engine = running.sim.engine
    async with connect(running.urls.trade_url) as ws:
        await ws.auth()
        await ws.command("get_available_leverage_levels")
        rows = (await ws.recv())["available_leverage_levels_response"]
        assert len(rows) == len(engine.available_leverage_levels())
        aapl = [r for r in rows if r["symbol"] == AAPL]
        assert [r["leverage"] for r in aapl] == ["1", "2", "3", "5", "10"]
        assert aapl[0]["initial_margin"] == 1.0 and aapl[-1]["initial_margin"] == 0.1
        await ws.command("get_available_leverage_levels", limit=2, offset=3)
        assert (await ws.recv())["available_leverage_levels_response"] == rows[3:5]
        await ws.send('{"type": "get_available_leverage_levels", "params": {"limit": 1.0}}')
        assert (await ws.recv())["available_leverage_levels_response"] == rows[:1]
        for bad, code in (
            ({"limit": 0}, "InvalidParameter"),
            ({"offset": 0.5}, "InvalidJSONFormat"),
        ):
            await ws.command("get_available_leverage_levels", **bad)
            assert (await ws.recv())["err"]["error_code"] == code
        await ws.command("set_user_leverage", symbol="CL-USD", leverage=20)
        assert "ack" in await ws.recv()
        await ws.command("set_user_leverage", symbol="CL-USD", leverage=15)
        assert (await ws.recv())["err"]["error_code"] == "InvalidParameter"
