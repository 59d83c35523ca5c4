"""The REST API through a real hypercorn server: auth, subaccounts, transfers, positions."""

from __future__ import annotations

import time

import httpx
import pytest
from sim_client import OTHER, OTHER_USER, PRIMARY, SUB1, SUB2, USER, Sim, connect, rest_headers


def problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


async def transfer(
    client: httpx.AsyncClient, src: str, dst: str, amount: object, **headers: str
) -> httpx.Response:
    return await client.post(
        "/user/transfer",
        params={"src_account_id": src, "dst_account_id": dst},
        json={"amount": amount},
        headers=headers or rest_headers(USER),
    )


async def test_auth_headers_bearer_and_failures(running: Sim) -> None:
    async with httpx.AsyncClient(base_url=running.urls.rest_url) as client:
        ok = await client.get("/user/subaccounts", headers=rest_headers(USER))
        assert ok.status_code == 200 and ok.json()["account_ids"] == [SUB1, SUB2]
        bearer = {"authorization": f"Bearer {running.sim.issue_jwt(PRIMARY)}"}
        assert (await client.get("/user/subaccounts", headers=bearer)).status_code == 200
        problem(await client.get("/user/subaccounts"), 401)
        bad = rest_headers(USER)
        bad["x-qfex-hmac-signature"] = "00" * 32
        problem(await client.get("/user/subaccounts", headers=bad), 401)
        replay = rest_headers(USER, nonce="c0ffee")
        assert (await client.get("/user/subaccounts", headers=replay)).status_code == 200
        problem(await client.get("/user/subaccounts", headers=replay), 401)
        stale = rest_headers(USER, ts=int(time.time()) - 600)
        problem(await client.get("/user/subaccounts", headers=stale), 401)
        problem(
            await client.get("/user/subaccounts", headers={"authorization": "Bearer not.a.jwt"}),
            401,
        )
        problem(await client.get("/nowhere", headers=rest_headers(USER)), 404)


async def test_requested_account_is_honoured_and_foreign_is_forbidden(running: Sim) -> None:
    async with httpx.AsyncClient(base_url=running.urls.rest_url) as client:
        primary = (await client.get("/user/positions", headers=rest_headers(USER))).json()
        # D4: $schema names the OpenAPI component
        assert (
            primary["$schema"] == "https://api.qfex.com/schemas/PositionsBalanceResponseBody.json"
        )
        assert primary["balance"]["available_balance"] == 100000.0
        sub = await client.get("/user/positions", headers=rest_headers(USER, SUB1))
        assert sub.json()["balance"]["available_balance"] == 50.0
        assert sub.json()["positions"] == []
        problem(await client.get("/user/positions", headers=rest_headers(USER, OTHER)), 403)


async def test_create_subaccount_then_fund_it(running: Sim) -> None:
    async with httpx.AsyncClient(base_url=running.urls.rest_url) as client:
        created = await client.post("/user/subaccounts", json={}, headers=rest_headers(USER))
        new_id = created.json()["account_id"]
        listed = (await client.get("/user/subaccounts", headers=rest_headers(USER))).json()
        assert new_id in listed["account_ids"]
        assert (await transfer(client, PRIMARY, new_id, 25)).status_code == 204
    assert running.sim.available_balance(new_id) == 25


async def test_transfer_applies_once_and_shows_in_next_pulse_of_both(running: Sim) -> None:
    async with (
        connect(running.urls.trade_url) as src_ws,
        connect(running.urls.trade_url) as dst_ws,
        httpx.AsyncClient(base_url=running.urls.rest_url) as client,
    ):
        await src_ws.auth(USER, SUB1)
        await dst_ws.auth(USER, SUB2)
        for ws in (src_ws, dst_ws):
            await ws.subscribe("balances")
        response = await transfer(client, SUB1, SUB2, 12.25)
        assert response.status_code == 204 and response.content == b""
        src = await src_ws.recv_until(
            lambda f: f.get("balance_response", {}).get("available_balance") == 37.75
        )
        dst = await dst_ws.recv_until(
            lambda f: f.get("balance_response", {}).get("available_balance") == 12.25
        )
        assert src["balance_response"]["id"] == SUB1 and dst["balance_response"]["id"] == SUB2
        ledger = (await client.get("/_sim/ledger")).json()["data"]
        assert [(e["src"], e["dst"], e["amount"], e["response_dropped"]) for e in ledger] == [
            (SUB1, SUB2, "12.25", False)
        ]


@pytest.mark.parametrize(
    ("src", "dst", "amount", "status"),
    [
        (PRIMARY, SUB1, 0, 422),
        (PRIMARY, SUB1, -5, 422),
        (SUB1, PRIMARY, 50.01, 422),
        (PRIMARY, SUB1, "ten", 422),
        (SUB1, SUB1, 1, 400),
        (PRIMARY, OTHER, 1, 403),
        (OTHER, PRIMARY, 1, 403),
    ],
)
async def test_transfer_errors(
    running: Sim, src: str, dst: str, amount: object, status: int
) -> None:
    async with httpx.AsyncClient(base_url=running.urls.rest_url) as client:
        problem(await transfer(client, src, dst, amount), status)
    assert running.sim.ledger == []


async def test_transfer_bad_auth_is_401_and_moves_nothing(running: Sim) -> None:
    async with httpx.AsyncClient(base_url=running.urls.rest_url) as client:
        headers = rest_headers(OTHER_USER)
        headers["x-qfex-public-key"] = USER.public_key
        problem(await transfer(client, PRIMARY, SUB1, 1, **headers), 401)
    assert running.sim.ledger == []


async def test_account_equity_and_refdata(running: Sim) -> None:
    async with httpx.AsyncClient(base_url=running.urls.rest_url) as client:
        equity = (
            await client.get(
                "/user/account-equity", params={"duration": "1d"}, headers=rest_headers(USER)
            )
        ).json()
        assert equity["count"] == len(equity["data"]) >= 1
        assert equity["data"][0]["value"] == 100000.0 and equity["duration"] == "1d"
        # D3: int64 whole minutes even for the tests' 0.05 s sampling
        assert equity["interval_minutes"] == 1 and isinstance(equity["interval_minutes"], int)
        problem(
            await client.get(
                "/user/account-equity", params={"duration": "5y"}, headers=rest_headers(USER)
            ),
            422,
        )
        refdata = (await client.get("/refdata")).json()["data"]
        aapl = next(r for r in refdata if r["symbol"] == "AAPL-USD")
        assert aapl["tick_size"] == "0.01" and aapl["lot_size"] == "0.001"
        assert isinstance(aapl["min_quantity"], str) and aapl["status"] == "ACTIVE"
