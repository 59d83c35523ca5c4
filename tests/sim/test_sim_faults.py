"""Each injected fault, from the Python API and from the /_sim/ admin routes."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
import trio
from sim_client import OTHER, OTHER_USER, PRIMARY, SUB1, USER, Sim, connect, hmac_auth, rest_headers
from wait_helpers import wait_until


async def post_transfer(
    client: httpx.AsyncClient, amount: float = 10, **kwargs: object
) -> httpx.Response:
    return await client.post(
        "/user/transfer",
        params={"src_account_id": PRIMARY, "dst_account_id": SUB1},
        json={"amount": amount},
        headers=rest_headers(USER),
        **kwargs,
    )


async def test_drop_connections_of_one_account(running: Sim) -> None:
    async with connect(running.urls.trade_url) as mine, connect(running.urls.trade_url) as other:
        await mine.auth()
        await other.auth(OTHER_USER)
        assert running.sim.faults.drop_connections(PRIMARY) == 1
        assert await mine.closed() == 1001
        await other.subscribe("balances")
    async with connect(running.urls.trade_url) as ws, connect(running.urls.mds_url) as mds:
        await ws.auth()
        await mds.send({"type": "subscribe", "channels": ["mark_price"], "symbols": ["*"]})
        await mds.recv()
        assert running.sim.faults.drop_connections() == 2
        assert await ws.closed() == 1001
        assert await mds.closed() == 1001


async def test_reject_next_auths(running: Sim) -> None:
    running.sim.faults.reject_next_auths(1)
    async with connect(running.urls.trade_url) as ws:
        await ws.send(hmac_auth(USER))
        assert await ws.recv() == {"authenticated": False}
    async with connect(running.urls.trade_url) as ws:
        await ws.auth()


async def test_fail_next_rest_applies_nothing(running: Sim) -> None:
    running.sim.faults.fail_next_rest(1, status=503, path="/user/transfer")
    async with httpx.AsyncClient(base_url=running.urls.rest_url) as client:
        assert (await client.get("/user/subaccounts", headers=rest_headers(USER))).is_success
        failed = await post_transfer(client)
        assert failed.status_code == 503
        assert failed.headers["content-type"] == "application/problem+json"
        assert running.sim.ledger == []
        assert (await post_transfer(client)).status_code == 204
    assert len(running.sim.ledger) == 1


async def test_delay_rest(running: Sim) -> None:
    running.sim.faults.delay_rest(0.3, n=1)
    async with httpx.AsyncClient(base_url=running.urls.rest_url) as client:
        started = trio.current_time()
        assert (await client.get("/refdata")).status_code == 200
        assert trio.current_time() - started >= 0.3
        started = trio.current_time()
        await client.get("/refdata")
        assert trio.current_time() - started < 0.3


async def test_dropped_transfer_response_timeout_is_applied(running: Sim) -> None:
    running.sim.faults.drop_transfer_response(1, mode="timeout")
    async with httpx.AsyncClient(base_url=running.urls.rest_url) as client:
        with pytest.raises(httpx.ReadTimeout):
            await post_transfer(client, 7, timeout=0.5)
    [entry] = running.sim.ledger
    assert entry.response_dropped and entry.amount == Decimal(7)
    assert running.sim.available_balance(SUB1) == Decimal(57)


async def test_dropped_transfer_response_reset_is_applied(running: Sim) -> None:
    running.sim.faults.drop_transfer_response(1, mode="reset")
    async with httpx.AsyncClient(base_url=running.urls.rest_url) as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await post_transfer(client, 3, timeout=3)
        ledger = (await client.get("/_sim/ledger")).json()["data"]
        assert [(e["amount"], e["response_dropped"]) for e in ledger] == [("3", True)]
        assert (await post_transfer(client, 1)).status_code == 204
    assert running.sim.available_balance(SUB1) == Decimal(54)


async def test_send_malformed_frame(running: Sim) -> None:
    async with connect(running.urls.trade_url) as ws:
        await ws.auth()
        assert running.sim.faults.send_malformed_frame(PRIMARY) == 1
        with trio.fail_after(3):
            raw = await ws.ws.get_message()
        with pytest.raises(ValueError):
            json.loads(raw)
        await ws.subscribe("fills")


async def test_stop_and_resume_pulses(running: Sim) -> None:
    async with connect(running.urls.trade_url) as ws:
        await ws.auth()
        await ws.subscribe("balances")
        await ws.recv_until(lambda f: "balance_response" in f)
        running.sim.faults.stop_pulses()
        await trio.sleep(0.1)  # let frames already queued drain
        with trio.fail_after(5):  # pulses must actually stop
            while True:
                with trio.move_on_after(0.3) as quiet:
                    await ws.recv()
                if quiet.cancelled_caught:
                    break
        running.sim.faults.resume_pulses()
        frame = await ws.recv_until(lambda f: "balance_response" in f, timeout=1)
        assert "balance_response" in frame


async def test_admin_routes(running: Sim) -> None:
    async with httpx.AsyncClient(base_url=running.urls.rest_url) as client:
        response = await client.post("/_sim/faults/fail_next_rest", json={"n": 1, "status": 500})
        assert response.json() == {"fault": "fail_next_rest", "result": None}
        assert (await client.get("/refdata")).status_code == 500
        assert (await client.post("/_sim/faults/explode", json={})).status_code == 404
        bad = await client.post("/_sim/faults/drop_transfer_response", json={"mode": "maybe"})
        assert bad.status_code == 422
        assert (await client.post("/_sim/faults/stop_pulses", json={})).status_code == 200
        state = (await client.get("/_sim/state")).json()
        assert state["faults"]["pulses_stopped"] is True
        assert state["accounts"][OTHER]["balance"]["available_balance"] == 1000.0
        moved = await client.post("/_sim/price", json={"symbol": "AAPL-USD", "price": 150})
        assert moved.json() == {"symbol": "AAPL-USD", "mid": "150.00"}
        async with connect(running.urls.trade_url) as ws:
            await ws.auth()
            await ws.subscribe("order_responses")
            await ws.command(
                "add_order",
                symbol="AAPL-USD",
                side="BUY",
                order_type="MARKET",
                order_time_in_force="IOC",
                quantity=1,
                price=0,
            )
            await ws.recv_until(lambda f: f.get("order_response", {}).get("status") == "FILLED")
        events = (await client.get("/_sim/events", params={"account_id": PRIMARY})).json()
        assert events["seq"] == 3 == running.sim.event_seq(PRIMARY)
        assert [e["seq"] for e in events["events"]] == [1, 2, 3]
        assert [e["channel"] for e in events["events"]] == [
            "order_responses",
            "order_responses",
            "fills",
        ]


async def test_hold_transfers_applies_the_request_after_the_client_gave_up(running: Sim) -> None:
    running.sim.faults.hold_transfers(0.6, n=1)
    async with httpx.AsyncClient(base_url=running.urls.rest_url) as client:
        with pytest.raises(httpx.ReadTimeout):
            await post_transfer(client, 7, timeout=0.2)
        assert running.sim.ledger == []  # held: nothing applied when the client gives up
        await wait_until(lambda: running.sim.ledger, within=5)
        [entry] = running.sim.ledger
        assert (entry.amount, entry.held_for, entry.outside) == (Decimal(7), 0.6, False)
        assert running.sim.available_balance(SUB1) == Decimal(57)
        # Only the next n transfer requests are held; other routes never are.
        assert (
            await client.post("/_sim/faults/hold_transfers", json={"seconds": 0.3, "n": 1})
        ).status_code == 200
        started = trio.current_time()
        assert (await client.get("/refdata")).status_code == 200
        assert trio.current_time() - started < 0.3
        assert (await client.get("/_sim/state")).json()["faults"]["transfer_holds"] == [0.3]
        assert (await post_transfer(client, 1)).status_code == 204  # held 0.3 s, then answered
        assert trio.current_time() - started >= 0.3
        bad = await client.post("/_sim/faults/hold_transfers", json={"seconds": -1})
        assert bad.status_code == 422


async def test_outside_transfer_moves_deposits_and_is_marked_in_the_ledger(running: Sim) -> None:
    row = running.sim.faults.outside_transfer(PRIMARY, SUB1, Decimal("12.5"))
    assert (row["amount"], row["outside"]) == ("12.5", True)
    assert running.sim.engine.accounts[SUB1].deposit == Decimal("62.5")
    async with httpx.AsyncClient(base_url=running.urls.rest_url) as client:
        response = await client.post(
            "/_sim/faults/outside_transfer", json={"src": SUB1, "dst": PRIMARY, "amount": 2.5}
        )
        assert response.status_code == 200 and response.json()["result"]["outside"] is True
        assert (await post_transfer(client, 1)).status_code == 204
        ledger = (await client.get("/_sim/ledger")).json()["data"]
        # The soak tells qfexbot's own transfers from other movers' by this flag.
        assert [(e["amount"], e["outside"]) for e in ledger] == [
            ("12.5", True),
            ("2.5", True),
            ("1", False),
        ]
        refused = await client.post(
            "/_sim/faults/outside_transfer", json={"src": SUB1, "dst": PRIMARY, "amount": 10**9}
        )
        assert refused.status_code == 422 and "exceeds available" in refused.text
    assert running.sim.engine.accounts[SUB1].deposit == Decimal(61)
