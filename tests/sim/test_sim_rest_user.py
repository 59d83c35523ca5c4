"""The private REST history routes: trades, historic orders and TWAPs, pnl, volume, fees,
leverage and the CSV exports, read back after trading through the engine and the socket.

Time-driven figures (hourly /pnl rows, daily volume, pnl samples) run on an engine with an
injected clock and call the route handlers directly; the rest go through the HTTP server.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import trio
from sim_client import (
    OTHER,
    PRIMARY,
    SUB1,
    USER,
    Sim,
    connect,
    make_config,
    rest_headers,
    wait_until,
)

from qfexbot.sim.qfex import account_history, rest_user
from qfexbot.sim.qfex.account_history import HOUR
from qfexbot.sim.qfex.engine import Engine
from qfexbot.sim.qfex.model import PrivateEvent, rfc3339
from qfexbot.sim.qfex.rest_params import HttpError, Raw, Request

D = Decimal
T0 = 1_760_000_000.0  # 2025-10-09T08:53:20Z
WAIT = 5.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def call(
    engine: Engine,
    path: str,
    account_id: str = PRIMARY,
    *,
    method: str = "GET",
    body: Any = None,
    **query: Any,
) -> Any:
    """Answer one request with the route's handler (as RestApp does after authenticating)."""
    scope = {
        "method": method,
        "path": path,
        "query_string": urlencode(query).encode(),
        "headers": [],
    }
    request = Request(scope, b"" if body is None else json.dumps(body).encode())
    status, payload = rest_user.ROUTES[(method, path)](engine, request, account_id)
    assert status == 200
    return payload


def failure(engine: Engine, path: str, **kwargs: Any) -> HttpError:
    with pytest.raises(HttpError) as caught:
        call(engine, path, **kwargs)
    return caught.value


def order(side: str, qty: str = "1", symbol: str = "AAPL-USD", **extra: Any) -> dict[str, Any]:
    """add_order params as the trade socket hands them to the engine (numbers as Decimal)."""
    params: dict[str, Any] = {
        "symbol": symbol,
        "side": side,
        "order_type": "MARKET",
        "order_time_in_force": "IOC",
        "quantity": D(qty),
    }
    params.update(extra)
    return params


def limit(side: str, price: str, qty: str = "1", **extra: Any) -> dict[str, Any]:
    return order(side, qty, order_type="LIMIT", order_time_in_force="GTC", price=D(price), **extra)


def statuses(events: list[Any]) -> list[str]:
    return [
        e.frame["order_response"]["status"]
        for e in events
        if isinstance(e, PrivateEvent) and "order_response" in e.frame
    ]


# ---------------------------------------------------------------- trades


def test_trades_newest_first_with_filters_and_paging() -> None:
    clock = Clock()
    eng = Engine(make_config(), clock)
    placed = [("BUY", "AAPL-USD", "b1"), ("BUY", "AAPL-USD", "b2"), ("SELL", "AAPL-USD", "s1")]
    placed.append(("BUY", "CL-USD", "c1"))
    for step, (side, symbol, coid) in enumerate(placed):
        clock.now = T0 + step
        eng.add_order(PRIMARY, order(side, symbol=symbol, client_order_id=coid))
    log = list(eng.trade_log[PRIMARY])
    body = call(eng, "/user/trade")
    rows = body["data"]
    assert body["count"] == len(rows) == len(log) >= 4
    assert [r["id"] for r in rows] == [t.trade_id for t in reversed(log)]
    stamps = [r["order_timestamp"] for r in rows]
    assert stamps == sorted(stamps, reverse=True) and stamps[0] == T0 + 3
    first = log[0]
    oldest = rows[-1]
    assert oldest == {
        "id": first.trade_id,
        "order_timestamp": T0,
        "symbol": "AAPL-USD",
        "price": float(first.price),
        "quantity": float(first.quantity),
        "side": "BUY",
        "fee": float(first.quantity * first.price * D("0.0002")),
        "margin_used": float(first.quantity * first.price / 10),
        "order_type": "MARKET",
        "tif": "IOC",
        "order_id": first.order_id,
        "realised_pnl_change": 0.0,
    }
    sells = call(eng, "/user/trade", orderdirection="SELL")["data"]
    assert {r["side"] for r in sells} == {"SELL"} and sells
    assert sum(r["realised_pnl_change"] for r in sells) == pytest.approx(
        float(sum(t.realised_pnl for t in log if t.side == "SELL"))
    )
    assert {r["symbol"] for r in call(eng, "/user/trade", symbol="CL-USD")["data"]} == {"CL-USD"}
    by_order = call(eng, "/user/trade", exchange_order_id=first.order_id)["data"]
    assert by_order and {r["order_id"] for r in by_order} == {first.order_id}
    assert call(eng, "/user/trade", ordertype="LIMIT")["count"] == 0
    assert call(eng, "/user/trade", ordertype="market")["count"] == len(log)
    page = call(eng, "/user/trade", limit=2, offset=1)["data"]
    assert [r["id"] for r in page] == [r["id"] for r in rows[1:3]]
    assert call(eng, "/user/trade", offset=len(log))["data"] == []
    window = call(eng, "/user/trade", start=rfc3339(T0 + 1), end=rfc3339(T0 + 2))["data"]
    assert {r["order_timestamp"] for r in window} == {T0 + 1, T0 + 2}
    aliased = call(eng, "/user/trade", start_time=rfc3339(T0 + 1), end_time=rfc3339(T0 + 2))
    assert aliased["data"] == window
    both = failure(eng, "/user/trade", start=rfc3339(T0), start_time=rfc3339(T0))
    assert (both.status, both.location) == (422, "query.start_time")
    reversed_window = failure(eng, "/user/trade", start=rfc3339(T0 + 5), end=rfc3339(T0))
    assert (reversed_window.status, reversed_window.location) == (422, "query.start")
    assert failure(eng, "/user/trade", orderdirection="UP").location == "query.orderdirection"
    assert call(eng, "/user/trade", account_id=SUB1)["data"] == []


def _filled(client_order_id: str, frame: Any) -> bool:
    reply = frame.get("order_response", {})
    return reply.get("status") == "FILLED" and reply["client_order_id"] == client_order_id


async def test_trades_made_over_the_socket_read_back_over_http(running: Sim) -> None:
    async with connect(running.urls.trade_url) as ws:
        await ws.auth()
        await ws.subscribe("order_responses")
        for coid in ("first", "second"):
            await ws.command(
                "add_order",
                symbol="AAPL-USD",
                side="BUY",
                order_type="MARKET",
                order_time_in_force="IOC",
                quantity=1,
                client_order_id=coid,
            )
            await ws.recv_until(partial(_filled, coid))
    async with httpx.AsyncClient(base_url=running.urls.rest_url, timeout=WAIT) as client:
        response = await client.get("/user/trade", headers=rest_headers(USER))
        assert response.status_code == 200
        rows = response.json()["data"]
        log = running.sim.engine.trade_log[PRIMARY]
        assert [r["id"] for r in rows] == [t.trade_id for t in reversed(log)]
        coids = {t.order_id: t.client_order_id for t in log}
        assert coids[rows[0]["order_id"]] == "second" and coids[rows[-1]["order_id"]] == "first"
        sub = await client.get("/user/trade", headers=rest_headers(USER, SUB1))
        assert sub.json() == {
            "$schema": "https://api.qfex.com/schemas/TradesResponseBody.json",
            "count": 0,
            "data": [],
        }
        exported = await client.get("/trades-csv", headers=rest_headers(USER))
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"
    table = list(csv.reader(io.StringIO(exported.text)))
    assert table[0] == list(rest_user.CSV_COLUMNS["Trade"])
    assert [row[0] for row in table[1:]] == [r["id"] for r in rows]
    assert float(table[1][3]) == rows[0]["price"]
    assert exported.text.endswith("\r\n")


# ---------------------------------------------------------------- historic orders


def test_historic_orders_terminal_only_with_fill_figures() -> None:
    clock = Clock()
    eng = Engine(make_config(), clock)
    mid = eng.markets["AAPL-USD"].mid
    # a resting bid filled as maker when the price walks through it
    eng.add_order(PRIMARY, limit("BUY", str(mid - 1), client_order_id="maker"))
    clock.now = T0 + 10
    assert "FILLED" in statuses(eng.set_price("AAPL-USD", mid - 3))
    clock.now = T0 + 20
    eng.add_order(PRIMARY, order("BUY", client_order_id="taker"))
    clock.now = T0 + 30
    rejected = eng.add_order(PRIMARY, limit("BUY", "1.001", client_order_id="bad-tick"))
    assert statuses(rejected) == ["INVALID_TICK_SIZE_PRECISION_PRICE"]
    clock.now = T0 + 40
    eng.add_order(PRIMARY, limit("BUY", str(mid - 20), client_order_id="cancelled"))
    eng.add_order(PRIMARY, limit("BUY", str(mid - 21), client_order_id="resting"))
    clock.now = T0 + 50
    eng.cancel_order(PRIMARY, {"cancel_order_id_type": "client_order_id", "order_id": "cancelled"})
    rows = call(eng, "/user/historic-orders")["data"]
    assert [r["client_order_id"] for r in rows] == ["cancelled", "bad-tick", "taker", "maker"]
    by_coid = {r["client_order_id"]: r for r in rows}
    maker = by_coid["maker"]
    assert maker["terminal_status"] == "FILLED" and maker["execution_state"] == "FILLED"
    assert maker["passive_qty"] == maker["filled_qty"] == 1.0
    assert maker["avg_price"] == float(mid - 1) == maker["price"]
    assert maker["first_fill_ts"] == maker["last_fill_ts"] == rfc3339(T0 + 10)
    assert maker["status_ts"] == rfc3339(T0 + 10)
    taker = by_coid["taker"]
    assert (taker["passive_qty"], taker["filled_qty"], taker["type"]) == (0.0, 1.0, "MARKET")
    assert taker["time_in_force"] == "IOC" and taker["price"] == 0.0
    bad = by_coid["bad-tick"]
    assert bad["terminal_status"] == "INVALID_TICK_SIZE_PRECISION_PRICE"
    assert bad["execution_state"] == "UNFILLED" and bad["avg_price"] is None
    assert bad["first_fill_ts"] is None and bad["last_fill_ts"] is None
    cancelled = by_coid["cancelled"]
    assert (cancelled["terminal_status"], cancelled["status_ts"]) == ("CANCELLED", rfc3339(T0 + 50))
    only = call(eng, "/user/historic-orders", client_order_id="taker")
    assert only["count"] == 1 and only["data"][0] == taker
    assert call(eng, "/user/historic-orders", client_order_id="resting")["count"] == 0
    assert call(eng, "/user/historic-orders", symbol="CL-USD")["count"] == 0
    page = call(eng, "/user/historic-orders", limit=2, offset=1)["data"]
    assert [r["client_order_id"] for r in page] == ["bad-tick", "taker"]
    window = call(eng, "/user/historic-orders", start=rfc3339(T0 + 15), end=rfc3339(T0 + 35))
    assert [r["client_order_id"] for r in window["data"]] == ["bad-tick", "taker"]
    assert call(eng, "/user/historic-orders", account_id=SUB1)["data"] == []
    exported = call(eng, "/historic-orders-csv")
    assert isinstance(exported, Raw)
    table = list(csv.DictReader(io.StringIO(exported.body.decode())))
    assert [r["client_order_id"] for r in table] == [r["client_order_id"] for r in rows]
    assert table[1]["avg_price"] == "" and table[3]["passive_qty"] == "1.0"


def test_partially_filled_ioc_is_cancelled_with_its_fills() -> None:
    eng = Engine(make_config(), Clock())
    book_ask_qty = sum(eng.markets["AAPL-USD"].synthetic["SELL"].values())
    best_ask = eng.best_ask("AAPL-USD")
    assert best_ask is not None
    top = eng.markets["AAPL-USD"].synthetic["SELL"][best_ask]
    assert top < book_ask_qty
    eng.add_order(
        PRIMARY,
        order(
            "BUY",
            str(top + 1),
            order_type="LIMIT",
            price=best_ask,
            client_order_id="ioc",
        ),
    )
    (row,) = call(eng, "/user/historic-orders", client_order_id="ioc")["data"]
    assert row["terminal_status"] == "CANCELLED"
    assert row["execution_state"] == "PARTIALLY_FILLED"
    assert row["filled_qty"] == float(top) and row["avg_price"] == float(best_ask)


# ---------------------------------------------------------------- pnl, volume, fees


def test_hourly_pnl_rows_and_historic_pnl_values() -> None:
    clock = Clock()
    eng = Engine(make_config(), clock)
    history = eng.account_history
    history.sample()  # before trading: every account's pnl is 0
    eng.add_order(PRIMARY, order("BUY", "2"))
    (buy,) = eng.trade_log[PRIMARY]
    clock.now = T0 + 60
    history.sample()
    held = 2 * (eng.mark_price("AAPL-USD") - buy.price)
    clock.now = T0 + HOUR
    eng.set_price("AAPL-USD", eng.markets["AAPL-USD"].mid + 10)
    history.sample()
    clock.now = T0 + HOUR + 60
    eng.add_order(PRIMARY, order("SELL", "2"))
    sell = eng.trade_log[PRIMARY][-1]
    history.sample()
    fees = buy.fee + sell.fee
    realised = sell.realised_pnl
    assert realised == 2 * (sell.price - buy.price)

    rows = call(eng, "/pnl")["data"]
    hour0 = T0 - T0 % HOUR
    assert [(r["symbol"], r["hour"]) for r in rows] == [
        ("AAPL-USD", rfc3339(hour0)),
        ("AAPL-USD", rfc3339(hour0 + HOUR)),
    ]
    first = rows[0]
    assert first["quantity"] == 2.0 and first["cost"] == float(2 * buy.price)
    assert first["fees"] == float(buy.fee) and first["realised_pnl"] == 0.0
    assert first["net_funding"] == 0.0
    second = rows[1]  # the hour's first sample: still long, price up
    assert second["quantity"] == 2.0 and second["unrealised_pnl"] > 0
    assert call(eng, "/pnl", limit_hours=1)["data"] == [second]
    assert call(eng, "/pnl", end=rfc3339(hour0 + 1))["data"] == [first]
    assert call(eng, "/pnl", start=rfc3339(hour0 + HOUR + 5))["data"] == [second]
    assert call(eng, "/pnl", symbol="CL-USD")["data"] == []

    pnl = call(eng, "/user/historic-pnl", duration="1d")
    values = [p["value"] for p in pnl["data"]]
    assert pnl["count"] == len(values) == 4 and values[0] == 0.0
    assert values[-1] == pytest.approx(float(realised - fees))
    assert values[1] == pytest.approx(float(held - buy.fee))
    assert values[2] > values[1]  # the price rose while long
    assert [p["window_start"] for p in pnl["data"]][-1] == rfc3339(T0 + HOUR + 60)
    assert pnl["unit"] == "number" and "symbols" not in pnl
    percent = call(eng, "/user/historic-pnl", duration="1d", unit="percent")
    deposit = float(eng.accounts[PRIMARY].deposit)
    assert percent["data"][-1]["value"] == pytest.approx(float(realised - fees) / deposit * 100)
    other = call(eng, "/user/historic-pnl", duration="1d", symbol="CL-USD,EUR-USD")
    assert other["symbols"] == ["CL-USD", "EUR-USD"]
    assert {p["value"] for p in other["data"]} == {0.0}
    assert failure(eng, "/user/historic-pnl", unit="bps").location == "query.unit"
    assert failure(eng, "/user/historic-pnl", duration="2w").location == "query.duration"


def test_volume_per_utc_day_and_fees_table() -> None:
    day0 = 1_760_054_400.0  # 2025-10-10T00:00:00Z
    clock = Clock(day0 + 3600)
    eng = Engine(make_config(), clock)
    mid = eng.markets["AAPL-USD"].mid
    eng.add_order(PRIMARY, limit("SELL", str(mid + 1)))
    clock.now = day0 + 86400 + 60
    eng.set_price("AAPL-USD", mid + 5)  # the resting ask fills as maker on day 2
    eng.add_order(PRIMARY, order("BUY", "3", symbol="CL-USD"))
    maker, *cl_trades = eng.trade_log[PRIMARY]
    assert maker.maker and not any(t.maker for t in cl_trades)
    taker_notional = float(sum(t.price * t.quantity for t in cl_trades))
    body = call(eng, "/user/volume", range="1w")
    days = body["data"]
    assert body["count"] == len(days) == 8 and body["interval"] == "1d"
    assert days[-1]["date"] == rfc3339(day0 + 86400)
    assert days[-1]["maker_volume"] == float(maker.price * maker.quantity)
    assert days[-1]["taker_volume"] == pytest.approx(taker_notional)
    assert days[-1]["volume"] == pytest.approx(days[-1]["maker_volume"] + taker_notional)
    assert sum(d["volume"] for d in days[:-1]) == 0.0
    assert body["total_volume"] == pytest.approx(days[-1]["volume"])
    only_cl = call(eng, "/user/volume", symbol="CL-USD")
    assert only_cl["total_maker_volume"] == 0.0 and only_cl["symbols"] == ["CL-USD"]
    everything = call(eng, "/user/volume", range="all")
    assert [d["date"] for d in everything["data"]] == [rfc3339(day0 + 86400)]
    assert call(eng, "/user/volume", range="all", account_id=SUB1)["count"] == 1
    assert failure(eng, "/user/volume", range="2y").location == "query.range"

    fees = call(eng, "/user/fees")["fees"]
    assert set(fees) == set(eng.markets)
    assert fees["AAPL-USD"] == {"maker_fee": 10000, "taker_fee": 20000}
    rebate = Engine(make_config(maker_fee=D("-0.00005")), Clock())
    assert call(rebate, "/user/fees")["fees"]["EUR-USD"]["maker_fee"] == -5000

    rewards = call(eng, "/user/referral-rewards", duration="1m")
    assert (rewards["data"], rewards["count"], rewards["total_amount"]) == ([], 0, 0.0)
    assert rewards["start"] == rfc3339(clock.now - 30 * 86400)


# ---------------------------------------------------------------- TWAPs, leverage


def test_historic_twaps_finished_newest_first_and_csv() -> None:
    clock = Clock()
    eng = Engine(make_config(), clock)
    base = {
        "side": "BUY",
        "total_quantity": D(2),
        "num_orders": 2,
        "order_interval_secs": 30,
        "reduce_only": False,
    }
    eng.twaps.add(PRIMARY, {**base, "symbol": "AAPL-USD", "client_twap_id": "a"})
    eng.twaps.add(PRIMARY, {**base, "symbol": "CL-USD", "client_twap_id": "c"})
    running = {**base, "symbol": "AAPL-USD", "client_twap_id": "running", "num_orders": 3}
    eng.twaps.add(PRIMARY, running)
    assert call(eng, "/user/historic-twaps")["data"] == []
    clock.now = T0 + 30
    eng.twaps.step(clock.now)
    eng.twaps.cancel(PRIMARY, {"cancel_order_id_type": "client_twap_id", "order_id": "running"})
    rows = call(eng, "/user/historic-twaps")["data"]
    statuses_ = [(r["client_twap_id"], r["status"]) for r in rows]
    assert statuses_[0] == ("running", "CANCELLED")
    assert sorted(statuses_[1:]) == [("a", "COMPLETED"), ("c", "COMPLETED")]
    done = next(r for r in rows if r["client_twap_id"] == "a")
    assert done["filled_quantity"] == 2.0 and done["filled_num_orders"] == 2
    assert done["total_num_orders"] == 2 and done["order_interval_secs"] == 30
    assert done["created_at"] == rfc3339(T0) and done["updated_at"] == rfc3339(T0 + 30)
    assert done["average_fill_price"] > 0
    assert call(eng, "/user/historic-twaps", limit=1)["data"] == rows[:1]
    aapl = call(eng, "/user/historic-twaps", symbol="AAPL-USD")["data"]
    assert {r["client_twap_id"] for r in aapl} == {"a", "running"}
    exported = call(eng, "/historic-twaps-csv", symbol="CL-USD")
    table = list(csv.DictReader(io.StringIO(exported.body.decode())))
    assert [r["client_twap_id"] for r in table] == ["c"]
    assert table[0]["reduce_only"] == "false" and table[0]["status"] == "COMPLETED"
    assert call(eng, "/user/historic-twaps", account_id=OTHER)["data"] == []


def test_set_leverage_changes_the_account_and_refusals_are_422() -> None:
    eng = Engine(make_config(), Clock())
    # 5: one of the symbol's leverage levels (get_available_leverage_levels), which are all
    # set_user_leverage accepts.
    body = call(eng, "/user/leverage", method="POST", body={"symbol": "AAPL-USD", "leverage": 5})
    assert isinstance(body, Raw) and ("statuscode", "200") in body.headers
    assert json.loads(body.body)["leverage"] == 5.0
    assert eng.accounts[PRIMARY].leverage["AAPL-USD"] == 5
    with_schema = {"$schema": "x", "symbol": "CL-USD", "leverage": 2.0}
    call(eng, "/user/leverage", method="POST", body=with_schema, account_id=SUB1)
    assert eng.accounts[SUB1].leverage == {"CL-USD": 2}
    cases = [
        ({"symbol": "AAPL-USD", "leverage": 5, "x": 1}, "body.x"),
        ({"symbol": "AAPL-USD"}, "body.leverage"),
        ({"leverage": 5}, "body.symbol"),
        ({"symbol": 7, "leverage": 5}, "body.symbol"),
        ({"symbol": "AAPL-USD", "leverage": "5"}, "body.leverage"),
        ({"symbol": "NOPE-USD", "leverage": 5}, "body.symbol"),
        ({"symbol": "AAPL-USD", "leverage": 11}, "body.leverage"),
        ({"symbol": "AAPL-USD", "leverage": 2.5}, "body.leverage"),
        ([1], "body"),
    ]
    for sent, location in cases:
        error = failure(eng, "/user/leverage", method="POST", body=sent)
        assert (error.status, error.location) == (422, location), sent
    eng.add_order(PRIMARY, order("BUY"))
    busy = failure(eng, "/user/leverage", method="POST", body={"symbol": "AAPL-USD", "leverage": 2})
    assert "position" in busy.detail
    assert eng.accounts[PRIMARY].leverage["AAPL-USD"] == 5


async def test_leverage_and_history_over_http_honour_the_requested_account(running: Sim) -> None:
    engine = running.sim.engine
    running.sim.deliver(engine.add_order(SUB1, order("BUY", "0.001", client_order_id="sub")))
    async with httpx.AsyncClient(base_url=running.urls.rest_url, timeout=WAIT) as client:
        sent = await client.post(
            "/user/leverage",
            json={"symbol": "CL-USD", "leverage": 3},
            headers=rest_headers(USER, SUB1),
        )
        assert sent.status_code == 200 and sent.json()["leverage"] == 3.0
        assert sent.headers["statuscode"] == "200"
        assert engine.accounts[SUB1].leverage == {"CL-USD": 3}
        orders = await client.get(
            "/user/historic-orders",
            params={"client_order_id": "sub"},
            headers=rest_headers(USER, SUB1),
        )
        assert [r["client_order_id"] for r in orders.json()["data"]] == ["sub"]
        primary = await client.get("/user/historic-orders", headers=rest_headers(USER))
        assert primary.json()["data"] == []
        with trio.fail_after(WAIT):
            await wait_until(lambda: bool(engine.account_history.samples(SUB1)))
        pnl = await client.get("/pnl", headers=rest_headers(USER, SUB1))
        assert [r["symbol"] for r in pnl.json()["data"]] == ["AAPL-USD"]


def test_history_stores_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(account_history, "PNL_SAMPLES_MAX", 3)
    monkeypatch.setattr(account_history, "PNL_HOURS_MAX", 2)
    monkeypatch.setattr(account_history, "VOLUME_DAYS_MAX", 2)
    monkeypatch.setattr(account_history, "ORDER_FILLS_MAX", 2)
    clock = Clock()
    eng = Engine(make_config(), clock)
    for day in range(4):
        clock.now = T0 + day * 86400
        eng.add_order(PRIMARY, order("BUY", client_order_id=f"day{day}"))
        eng.account_history.sample()
    history = eng.account_history
    assert [s.ts for s in history.samples(PRIMARY)] == [T0 + d * 86400 for d in (1, 2, 3)]
    assert [r.hour for r in history.hours(PRIMARY)] == [T0 + d * 86400 - T0 % HOUR for d in (2, 3)]
    assert list(history.volume(PRIMARY)) == [
        account_history.day_start(T0 + d * 86400) for d in (2, 3)
    ]
    # the fills of the two oldest orders are forgotten (the orders themselves stay in the log)
    rows = call(eng, "/user/historic-orders")["data"]
    assert [r["execution_state"] for r in rows] == ["FILLED", "FILLED", "UNFILLED", "UNFILLED"]
