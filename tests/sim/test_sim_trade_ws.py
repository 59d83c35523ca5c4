"""The trade WebSocket through real sockets: auth, channels, pulses, orders, limits, pings."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import httpx
import trio
from sim_client import (
    OTHER,
    OTHER_USER,
    PRIMARY,
    SUB1,
    USER,
    Sim,
    connect,
    hmac_auth,
    order_status,
    rest_headers,
    start_sim,
)


def market_buy(quantity: float = 1.0, **extra: object) -> dict:
    return {
        "symbol": "AAPL-USD",
        "side": "BUY",
        "order_type": "MARKET",
        "order_time_in_force": "IOC",
        "quantity": quantity,
        "price": 0,
        **extra,
    }


def limit(side: str, price: float, **extra: object) -> dict:
    return {
        "symbol": "AAPL-USD",
        "side": side,
        "order_type": "LIMIT",
        "order_time_in_force": "GTC",
        "quantity": 1,
        "price": price,
        **extra,
    }


async def test_hmac_auth_success_with_api_key_query(running: Sim) -> None:
    async with connect(running.urls.trade_url + f"?api_key={USER.public_key}") as ws:
        await ws.send(hmac_auth(USER))
        assert await ws.recv() == {"authenticated": True}
        await ws.send(hmac_auth(USER))
        err = (await ws.recv())["err"]
        assert err["error_code"] == "AlreadyAuthenticated"
        assert err["incoming_message"]["type"] == "auth"


async def test_bad_signature_fails_and_closes_1008(running: Sim) -> None:
    async with connect(running.urls.trade_url) as ws:
        await ws.send(hmac_auth(USER, secret="wrong"))
        assert await ws.recv() == {"authenticated": False}
        assert await ws.closed() == 1008


async def test_api_key_mismatch_fails(running: Sim) -> None:
    async with connect(running.urls.trade_url + "?api_key=qfex_pub_someone_else") as ws:
        await ws.send(hmac_auth(USER))
        assert await ws.recv() == {"authenticated": False}


async def test_commands_before_auth_are_permission_denied(running: Sim) -> None:
    async with connect(running.urls.trade_url) as ws:
        await ws.command("subscribe", channels=["balances"])
        assert (await ws.recv())["err"]["error_code"] == "PermissionDenied"
        await ws.auth()


async def test_no_auth_within_deadline_closes(nursery: trio.Nursery) -> None:
    sim = await start_sim(nursery, auth_deadline=0.3)
    started = trio.current_time()
    async with connect(sim.urls.trade_url) as ws:
        assert await ws.closed() == 1008
    assert trio.current_time() - started >= 0.3


async def test_nonce_replay_and_skew_are_refused(running: Sim) -> None:
    replayed = hmac_auth(USER, nonce="abc123")
    async with connect(running.urls.trade_url) as ws:
        await ws.send(replayed)
        assert await ws.recv() == {"authenticated": True}
    async with connect(running.urls.trade_url) as ws:
        await ws.send(replayed)
        assert await ws.recv() == {"authenticated": False}
    async with connect(running.urls.trade_url) as ws:
        await ws.send(hmac_auth(USER, ts=int(time.time()) - 301))
        assert await ws.recv() == {"authenticated": False}
    # the nonce cache is shared with REST
    async with httpx.AsyncClient(base_url=running.urls.rest_url) as client:
        response = await client.get("/user/subaccounts", headers=rest_headers(USER, nonce="beef"))
        assert response.status_code == 200
    async with connect(running.urls.trade_url) as ws:
        await ws.send(hmac_auth(USER, nonce="beef"))
        assert await ws.recv() == {"authenticated": False}


async def test_jwt_auth(running: Sim) -> None:
    token = running.sim.issue_jwt(PRIMARY)
    async with connect(running.urls.trade_url) as ws:
        await ws.send({"type": "auth", "params": {"jwt": token, "account_id": SUB1}})
        assert await ws.recv() == {"authenticated": True}
        await ws.subscribe("balances")
        balance = await ws.recv_until(lambda f: "balance_response" in f)
        assert balance["balance_response"]["id"] == SUB1
    async with connect(running.urls.trade_url) as ws:
        await ws.send({"type": "auth", "params": {"jwt": token[:-4] + "AAAA"}})
        assert await ws.recv() == {"authenticated": False}


async def test_subaccount_binding_and_foreign_account(running: Sim) -> None:
    async with connect(running.urls.trade_url) as ws:
        await ws.auth(USER, SUB1)
        await ws.subscribe("balances", "positions")
        balance = (await ws.recv_until(lambda f: "balance_response" in f))["balance_response"]
        assert balance["id"] == balance["user_id"] == SUB1
        assert balance["available_balance"] == 50.0
    async with connect(running.urls.trade_url) as ws:
        await ws.send(hmac_auth(USER, OTHER))
        assert await ws.recv() == {"authenticated": False}
        assert await ws.closed() == 1008


async def test_subscriptions_pulses_and_unknown_channel(running: Sim) -> None:
    async with connect(running.urls.trade_url) as ws:
        await ws.auth()
        await ws.command("subscribe", channels=["balances", "nope"])
        assert await ws.recv() == {"subscribed": "balances"}
        err = await ws.recv_until(lambda f: "err" in f)
        assert err["err"]["error_code"] == "InvalidParameter"
        for _ in range(3):
            with trio.fail_after(1):
                balance = await ws.recv_until(lambda f: "balance_response" in f)
            assert balance["balance_response"]["deposit"] == 100000.0
        await ws.command("unsubscribe", channels=["balances"])
        await ws.recv_until(lambda f: f == {"unsubscribed": "balances"})
        with trio.move_on_after(0.3) as quiet:
            await ws.recv_until(lambda f: "balance_response" in f)
        assert quiet.cancelled_caught


async def test_order_lifecycle_ack_filled_balance(running: Sim) -> None:
    async with connect(running.urls.trade_url) as ws:
        await ws.auth()
        await ws.subscribe("order_responses", "fills", "positions", "balances")
        await ws.command("add_order", **market_buy(2.0, client_order_id="life-1"))
        ack = await ws.recv_until(lambda f: order_status(f) is not None)
        assert ack["order_response"]["status"] == "ACK"
        assert ack["order_response"]["client_order_id"] == "life-1"
        filled = await ws.recv_until(lambda f: order_status(f) is not None)
        assert filled["order_response"]["status"] == "FILLED"
        assert filled["order_response"]["quantity_remaining"] == 0.0
        assert filled["order_response"]["trade_id"]
        fill = (await ws.recv_until(lambda f: "fill_response" in f))["fill_response"]
        assert fill["trade_id"] == filled["order_response"]["trade_id"]
        assert fill["quantity"] == 2.0 and fill["fee"] > 0
        position = await ws.recv_until(lambda f: "position_response" in f)
        assert position["position_response"]["position"] == 2.0
        balance = (await ws.recv_until(lambda f: "balance_response" in f))["balance_response"]
        assert balance["position_margin"] > 0 and balance["available_balance"] < 100000.0
        expected = float(running.sim.available_balance(PRIMARY))
        assert abs(balance["available_balance"] - expected) < 1e-6


async def test_without_order_responses_subscription_no_ack_but_fill(running: Sim) -> None:
    async with connect(running.urls.trade_url) as ws:
        await ws.auth()
        await ws.subscribe("fills")
        await ws.command("add_order", **market_buy())
        frame = await ws.recv()
        assert "fill_response" in frame


async def test_limit_rests_then_fills_on_every_connection_of_the_account(running: Sim) -> None:
    async with connect(running.urls.trade_url) as first, connect(running.urls.trade_url) as second:
        for ws in (first, second):
            await ws.auth()
            await ws.subscribe("order_responses", "fills")
        await first.command("add_order", **limit("BUY", 195.0))
        for ws in (first, second):
            assert order_status(await ws.recv()) == "ACK"
        await first.command("get_user_orders")
        listing = (await first.recv())["all_orders_response"]
        assert [o["price"] for o in listing["orders"]] == [195.0]
        assert listing["twaps"] == [] and listing["stop_orders"] == []
        running.sim.set_price("AAPL-USD", Decimal(194))
        for ws in (first, second):
            filled = await ws.recv()
            assert order_status(filled) == "FILLED"
            assert (await ws.recv())["fill_response"]["price"] == 195.0


async def test_reject_is_single_order_response(running: Sim) -> None:
    async with connect(running.urls.trade_url) as ws:
        await ws.auth()
        await ws.subscribe("order_responses")
        await ws.command("add_order", **limit("BUY", 195.005))
        assert order_status(await ws.recv()) == "INVALID_TICK_SIZE_PRECISION_PRICE"
        await ws.command("add_order", **market_buy(order_time_in_force="GTC"))
        assert order_status(await ws.recv()) == "INVALID_TIME_IN_FORCE"
        await ws.command("get_user_orders")
        assert (await ws.recv())["all_orders_response"]["orders"] == []


async def test_cancel_get_order_and_cancel_all(running: Sim) -> None:
    async with connect(running.urls.trade_url) as ws:
        await ws.auth()
        await ws.subscribe("order_responses")
        ids = []
        for price, coid in ((190.0, "a"), (191.0, "b"), (192.0, "c")):
            await ws.command("add_order", **limit("BUY", price, client_order_id=coid))
            ids.append((await ws.recv())["order_response"]["order_id"])
        # get_order answers one order_response (qfex.md §6 #7 revised; was all_orders_response)
        await ws.command("get_order", symbol="AAPL-USD", order_id=ids[0])
        known = (await ws.recv())["order_response"]
        assert (known["order_id"], known["status"], known["price"]) == (ids[0], "ACK", 190.0)
        await ws.command("get_order", symbol="AAPL-USD", order_id="no-such-id")
        unknown = (await ws.recv())["order_response"]
        assert (unknown["order_id"], unknown["status"]) == ("no-such-id", "NO_SUCH_ORDER")
        assert (unknown["side"], unknown["type"], unknown["time_in_force"]) == (
            "BUY",
            "LIMIT",
            "GTC",
        )
        await ws.command(
            "cancel_order", symbol="AAPL-USD", order_id=ids[0], cancel_order_id_type="order_id"
        )
        assert (await ws.recv())["order_response"]["status"] == "CANCELLED"
        await ws.command(
            "cancel_order", symbol="AAPL-USD", order_id=ids[0], cancel_order_id_type="order_id"
        )
        assert order_status(await ws.recv()) == "NO_SUCH_ORDER"
        await ws.command(
            "cancel_order", symbol="AAPL-USD", order_id="b", cancel_order_id_type="client_order_id"
        )
        cancelled = (await ws.recv())["order_response"]
        assert cancelled["status"] == "CANCELLED" and cancelled["order_id"] == ids[1]
        await ws.command("cancel_all_orders")
        assert (await ws.recv())["order_response"]["order_id"] == ids[2]
        assert (await ws.recv())["ack"]["incoming_message"]["type"] == "cancel_all_orders"
        # finished orders too, from the simulator's order history
        await ws.command("get_order", symbol="AAPL-USD", order_id=ids[2])
        finished = (await ws.recv())["order_response"]
        assert (finished["order_id"], finished["status"]) == (ids[2], "CANCELLED")
        assert finished["client_order_id"] == "c" and finished["quantity_remaining"] == 1.0
        await ws.command("get_order", symbol="US500-USD", order_id=ids[2])
        assert order_status(await ws.recv()) == "NO_SUCH_ORDER"


async def test_cancel_on_disconnect_only_on_unexpected_drop(running: Sim) -> None:
    async with connect(running.urls.trade_url) as watcher:
        await watcher.auth()
        await watcher.subscribe("order_responses")
        async with connect(running.urls.trade_url) as ws:
            await ws.auth()
            await ws.command("cancel_on_disconnect", cancel_on_disconnect=True)
            assert "ack" in await ws.recv()
            await ws.command("add_order", **limit("BUY", 190.0))
            assert order_status(await watcher.recv()) == "ACK"
        # a clean client close (1000) keeps the orders
        with trio.move_on_after(0.3):
            assert order_status(await watcher.recv()) is None
        assert len(running.sim.engine.open_orders(PRIMARY)) == 1
        async with connect(running.urls.trade_url) as ws:
            await ws.auth()
            await ws.command("cancel_on_disconnect", cancel_on_disconnect=True)
            assert "ack" in await ws.recv()
            await ws.ws._stream.aclose()  # the network goes away: no close handshake
        assert order_status(await watcher.recv()) == "CANCELLED"
        assert running.sim.engine.open_orders(PRIMARY) == []


async def test_rate_limited_with_retry_hint_and_cancel_bucket(nursery: trio.Nursery) -> None:
    sim = await start_sim(nursery, rate_limit_budget=Decimal(5))
    async with connect(sim.urls.trade_url) as ws:
        await ws.auth()
        await ws.subscribe("order_responses")  # 0.1
        for _ in range(4):
            await ws.command("add_order", **limit("BUY", 190.0))
            assert order_status(await ws.recv()) == "ACK"
        await ws.command("add_order", **limit("BUY", 190.0))
        err = (await ws.recv())["err"]
        assert err["error_code"] == "RateLimited" and "retry after" in err["message"]
        assert err["incoming_message"]["type"] == "add_order"
        await ws.command("cancel_all_orders")
        frames = [await ws.recv() for _ in range(5)]
        assert [order_status(f) for f in frames[:4]] == ["CANCELLED"] * 4
        assert "ack" in frames[4]


async def test_malformed_input_never_crashes(running: Sim) -> None:
    async with connect(running.urls.trade_url) as ws:
        await ws.send("{not json")
        err = (await ws.recv())["err"]
        assert err["error_code"] == "InvalidJSONFormat" and err["incoming_message"] == "{not json"
        await ws.auth()
        for bad in ([1, 2], {"type": "add_order"}, {"type": "fly", "params": {}}):
            await ws.send(json.dumps(bad))
            err = (await ws.recv())["err"]
            assert err["error_code"] == "InvalidJSONFormat"
            # the spec's incoming_message is an object or a string: non-objects come back as text
            assert err["incoming_message"] == (bad if isinstance(bad, dict) else json.dumps(bad))
        await ws.command("add_order", symbol="AAPL-USD", side="BUY")
        assert (await ws.recv())["err"]["error_code"] == "InvalidParameter"
        await ws.ws.send_message(b"\xff\xfe")
        assert (await ws.recv())["err"]["error_code"] == "InvalidJSONFormat"
        await ws.subscribe("balances")


async def test_pings_keep_a_reading_client_and_drop_a_silent_one(nursery: trio.Nursery) -> None:
    sim = await start_sim(nursery, ping_interval=0.05, pong_timeout=0.3, pulse_interval=0.01)
    async with connect(sim.urls.trade_url) as healthy:
        await healthy.auth()
        await healthy.subscribe("balances")
        async with connect(sim.urls.trade_url, queue_size=1) as silent:
            await silent.auth(OTHER_USER)
            await silent.subscribe("balances", "positions")
            # stop reading: its queue fills, its reader stalls and no pong goes back
            with trio.fail_after(5):
                while sim.sim.connection_count(OTHER):
                    await healthy.recv()
        assert sim.sim.connection_count(PRIMARY) == 1


async def test_get_user_leverage_pages_with_limit_and_offset(running: Sim) -> None:
    """D6: limit/offset page the rows (they were ignored); `number` in the spec, so 2.0 is 2."""
    async with connect(running.urls.trade_url) as ws:
        await ws.auth()
        await ws.command("get_user_leverage")
        rows = (await ws.recv())["user_leverage_response"]
        symbols = [r["symbol"] for r in rows]
        assert len(symbols) == len(running.sim.config.symbols) >= 3
        await ws.command("get_user_leverage", limit=2, offset=1)
        assert [r["symbol"] for r in (await ws.recv())["user_leverage_response"]] == symbols[1:3]
        await ws.send('{"type": "get_user_leverage", "params": {"limit": 1.0, "offset": 2.0}}')
        assert [r["symbol"] for r in (await ws.recv())["user_leverage_response"]] == symbols[2:3]
        await ws.command("get_user_leverage", offset=len(symbols))
        assert (await ws.recv())["user_leverage_response"] == []
        for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}):
            await ws.command("get_user_leverage", **bad)
            assert (await ws.recv())["err"]["error_code"] == "InvalidParameter"
        await ws.command("get_user_leverage", limit=1.5)
        assert (await ws.recv())["err"]["error_code"] == "InvalidJSONFormat"
