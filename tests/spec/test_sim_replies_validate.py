"""Every reply, frame and body the simulator sends today, validated against the vendored spec
schemas (tests/spec/schemas, PROVENANCE.md).

The simulator is driven through real sockets by the spec-written test client (tests/sim/
sim_client.py, which imports no qfexbot client code) over every command, channel and REST path
it implements. Every frame received — also those a wait skips — goes through the validator;
each test fails listing all violations, not just the first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
import trio
from sim_client import (
    OTHER,
    PRIMARY,
    SUB1,
    USER,
    Client,
    Sim,
    connect,
    hmac_auth,
    rest_headers,
    start_sim,
    wait_until,
)
from validate import (
    ValidationError,
    validate_mds_frame,
    validate_problem,
    validate_rest,
    validate_trade_frame,
)

from qfexbot.sim import SimSymbol
from qfexbot.sim.qfex.config import default_symbols

WAIT = 5.0
TINY = "TINY-USD"  # a symbol whose max position notional one lot breaches


def _symbols() -> dict[str, SimSymbol]:
    symbols = default_symbols()
    symbols[TINY] = SimSymbol(TINY, Decimal("100.00"), max_position_notional=Decimal(50))
    return symbols


class Checked:
    """A socket whose every received frame is validated; violations are collected."""

    def __init__(self, client: Client, check: Callable[[Any], str]) -> None:
        self.client = client
        self.check = check
        self.seen: dict[str, int] = {}
        self.violations: list[str] = []

    def _validate(self, frame: Any) -> None:
        try:
            key = self.check(frame)
        except ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path)
            self.violations.append(f"{where}: {exc.message} in {json.dumps(frame)[:300]}")
            return
        self.seen[key] = self.seen.get(key, 0) + 1

    async def command(self, kind: str, **params: Any) -> None:
        await self.client.command(kind, **params)

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.client.send(message)

    async def recv(self) -> Any:
        frame = await self.client.recv()
        self._validate(frame)
        return frame

    async def recv_until(self, predicate: Callable[[Any], bool]) -> Any:
        with trio.fail_after(WAIT):
            while True:
                frame = await self.recv()
                if predicate(frame):
                    return frame

    async def reply(self, key: str) -> Any:
        """The next frame carrying ``key`` (pulses in between are validated too)."""
        return (await self.recv_until(lambda f: isinstance(f, dict) and key in f))[key]

    async def order(self) -> dict[str, Any]:
        return await self.reply("order_response")

    def assert_clean(self, *expected: str) -> None:
        missing = [k for k in expected if k not in self.seen]
        assert not self.violations, "\n".join(self.violations)
        assert not missing, f"never received {missing}; saw {self.seen}"


def limit(side: str, price: str, symbol: str = "AAPL-USD", **extra: Any) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "side": side,
        "order_type": "LIMIT",
        "order_time_in_force": "GTC",
        "quantity": 1,
        "price": float(price),
        **extra,
    }


def market(side: str, quantity: float = 1.0, **extra: Any) -> dict[str, Any]:
    return {
        "symbol": "AAPL-USD",
        "side": side,
        "order_type": "MARKET",
        "order_time_in_force": "IOC",
        "quantity": quantity,
        **extra,
    }


@pytest.fixture
async def sim(nursery: trio.Nursery) -> Sim:
    return await start_sim(nursery, symbols=_symbols())


async def test_trade_socket_session_replies_validate(sim: Sim) -> None:
    async with connect(sim.urls.trade_url) as raw:
        ws = Checked(raw, validate_trade_frame)
        await ws.send(hmac_auth(USER))
        assert (await ws.recv()) == {"authenticated": True}
        await ws.send(hmac_auth(USER))
        assert (await ws.reply("err"))["error_code"] == "AlreadyAuthenticated"
        await ws.command(
            "subscribe", channels=["order_responses", "fills", "positions", "balances"]
        )
        await ws.command("subscribe", channels=["stop_orders", "nope"])
        subscribed = set()
        with trio.fail_after(WAIT):
            while len(subscribed) < 5:
                frame = await ws.recv()
                subscribed.update([frame["subscribed"]] if "subscribed" in frame else [])
        await ws.reply("err")  # the unknown channel
        await ws.reply("balance_response")  # positions: none until the account trades
        await ws.command("unsubscribe", channels=["stop_orders"])
        assert await ws.reply("unsubscribed") == "stop_orders"
        await ws.command("cancel_on_disconnect", cancel_on_disconnect=True)
        await ws.reply("ack")
        await ws.command("cancel_on_disconnect", cancel_on_disconnect=False)
        await ws.reply("ack")
        await ws.command("cancel_on_disconnect", cancel_on_disconnect="yes")
        await ws.reply("err")
        # implemented now (F1-F3): without their required parameters they are refused
        for kind in ("modify_order", "close_position", "cancel_stop_order", "modify_stop_order"):
            await ws.command(kind)
            assert (await ws.reply("err"))["error_code"] == "InvalidParameter"
        await ws.command("fly")
        await ws.reply("err")
        await ws.send("{not json")
        assert (await ws.reply("err"))["incoming_message"] == "{not json"
        await ws.send(json.dumps([1, 2]))
        await ws.reply("err")
    ws.assert_clean(
        "authenticated",
        "subscribed",
        "unsubscribed",
        "balance_response",
        "ack",
        "err",
    )


async def test_failed_auth_and_commands_before_auth_validate(sim: Sim) -> None:
    async with connect(sim.urls.trade_url) as raw:
        ws = Checked(raw, validate_trade_frame)
        await ws.command("get_user_orders")
        assert (await ws.reply("err"))["error_code"] == "PermissionDenied"
        await ws.send(hmac_auth(USER, OTHER))
        assert (await ws.recv()) == {"authenticated": False}
    ws.assert_clean("authenticated", "err")


async def test_order_lifecycle_and_queries_validate(sim: Sim) -> None:
    async with connect(sim.urls.trade_url) as raw:
        ws = Checked(raw, validate_trade_frame)
        await ws.client.auth()
        await ws.client.subscribe("order_responses", "fills", "positions", "balances")
        # market: ACK, FILLED (+ fill) on both sides of the book
        for side in ("BUY", "SELL", "BUY"):
            await ws.command("add_order", **market(side, 2.0, client_order_id=f"m-{side}"))
            assert (await ws.order())["status"] == "ACK"
            assert (await ws.order())["status"] == "FILLED"
            await ws.reply("fill_response")
        # resting orders, then every query over them
        ids = []
        for price, coid in (("190.00", "a"), ("191.00", "b"), ("192.00", "c")):
            await ws.command("add_order", **limit("BUY", price, client_order_id=coid))
            ids.append((await ws.order())["order_id"])
        await ws.command("add_order", **limit("SELL", "210.00", take_profit=205, stop_loss=215))
        ids.append((await ws.order())["order_id"])
        await ws.command("get_user_orders")
        assert len((await ws.reply("all_orders_response"))["orders"]) == 4
        await ws.command("get_user_orders", symbol="AAPL-USD", limit=1, offset=1)
        await ws.reply("all_orders_response")
        await ws.command("get_user_orders", limit=0)
        await ws.reply("err")
        await ws.command("get_order", symbol="AAPL-USD", order_id=ids[0])
        known = await ws.order()
        assert known["order_id"] == ids[0] and known["status"] == "ACK"
        await ws.command("get_order", symbol="AAPL-USD", order_id="nope")
        assert (await ws.order())["status"] == "NO_SUCH_ORDER"
        # cancels: by id, again (NO_SUCH_ORDER), by client id, unknown client id, twap id
        await ws.command(
            "cancel_order", symbol="AAPL-USD", order_id=ids[0], cancel_order_id_type="order_id"
        )
        assert (await ws.order())["status"] == "CANCELLED"
        await ws.command("get_order", symbol="AAPL-USD", order_id=ids[0])
        assert (await ws.order())["status"] == "CANCELLED"  # terminal orders too (#7)
        await ws.command(
            "cancel_order", symbol="AAPL-USD", order_id=ids[0], cancel_order_id_type="order_id"
        )
        assert (await ws.order())["status"] == "NO_SUCH_ORDER"
        for ident, id_type in (
            ("b", "client_order_id"),
            ("zzz", "client_order_id"),
            ("t-1", "twap_id"),
            ("t-2", "client_twap_id"),
        ):
            await ws.command(
                "cancel_order", symbol="AAPL-USD", order_id=ident, cancel_order_id_type=id_type
            )
            await ws.order()
        await ws.command("cancel_order", symbol="AAPL-USD", order_id="x", cancel_order_id_type="x")
        await ws.reply("err")
        await ws.command("cancel_all_orders")
        for _ in range(2):
            assert (await ws.order())["status"] == "CANCELLED"
        await ws.reply("ack")
        # leverage: set, get (paged), bad values
        await ws.command("set_user_leverage", symbol="CL-USD", leverage=5)
        await ws.reply("ack")
        await ws.command("set_user_leverage", symbol="CL-USD", leverage=500)
        await ws.reply("err")
        await ws.command("get_user_leverage")
        rows = await ws.reply("user_leverage_response")
        assert len(rows) == len(_symbols())
        await ws.command("get_user_leverage", limit=2, offset=1)
        assert [r["symbol"] for r in await ws.reply("user_leverage_response")] == [
            r["symbol"] for r in rows[1:3]
        ]
        await ws.command("add_order", symbol="AAPL-USD", side="BUY")
        await ws.reply("err")
        await ws.command("add_order", **market("UP"))
        await ws.reply("err")
        # the pulses, now with a position
        position = await ws.reply("position_response")
        assert position["symbol"] == "AAPL-USD"
        await ws.reply("balance_response")
    ws.assert_clean(
        "order_response",
        "fill_response",
        "all_orders_response",
        "user_leverage_response",
        "position_response",
        "balance_response",
        "ack",
        "err",
    )


REJECTS = [
    (limit("BUY", "190.005"), "INVALID_TICK_SIZE_PRECISION_PRICE"),
    (limit("BUY", "190.00", quantity=0.0005), "INVALID_TICK_SIZE_PRECISION_QUANTITY"),
    (limit("BUY", "190.00", quantity=2000), "QUANTITY_GREATER_THAN_MAX_QUANTITY"),
    (limit("BUY", "2000000.00"), "PRICE_GREATER_THAN_MAX_PRICE"),
    (limit("BUY", "190.00", symbol="NOPE-USD"), "BAD_SYMBOL"),
    (market("BUY", order_time_in_force="GTC"), "INVALID_TIME_IN_FORCE"),
    # stops are supported (F3): a stop-loss with no position to close is REJECTED
    ({**limit("BUY", "190.00"), "order_type": "STOP_LOSS"}, "REJECTED"),
    ({**limit("BUY", "205.00"), "order_type": "ALO"}, "REJECTED"),
    (limit("BUY", "190.00", reduce_only=True), "REJECTED"),
    (limit("BUY", "100.00", symbol=TINY), "REJECTED_WOULD_BREACH_MAX_NOTIONAL"),
    ({**limit("BUY", "190.00"), "order_time_in_force": "FOK", "quantity": 900}, None),
]


async def test_rejects_and_odd_outcomes_validate(sim: Sim) -> None:
    async with connect(sim.urls.trade_url) as raw:
        ws = Checked(raw, validate_trade_frame)
        await ws.client.auth()
        await ws.client.subscribe("order_responses", "fills")
        for params, status in REJECTS:
            await ws.command("add_order", **params)
            reply = await ws.order()
            if status is not None:
                assert reply["status"] == status, params
        # FOK without liquidity: ACK then CANCELLED
        assert (await ws.order())["status"] == "CANCELLED"
        # an own resting order crossed: CANCELLED_STP
        await ws.command("add_order", **limit("SELL", "200.00"))
        assert (await ws.order())["status"] == "ACK"
        await ws.command("add_order", **limit("BUY", "200.00"))
        assert (await ws.order())["status"] == "ACK"
        assert (await ws.order())["status"] == "CANCELLED_STP"
        # IOC with no liquidity at its price: ACK, CANCELLED
        await ws.command("add_order", **limit("BUY", "190.00", order_time_in_force="IOC"))
        assert (await ws.order())["status"] == "ACK"
        assert (await ws.order())["status"] == "CANCELLED"
    async with connect(sim.urls.trade_url) as raw:  # the 50 USD subaccount
        sub = Checked(raw, validate_trade_frame)
        await sub.client.auth(USER, SUB1)
        await sub.client.subscribe("order_responses")
        await sub.command("add_order", **limit("BUY", "190.00", quantity=999))
        assert (await sub.order())["status"] == "FAILED_MARGIN_CHECK"
    ws.assert_clean("order_response")
    sub.assert_clean("order_response")


async def test_price_band_rejects_validate(sim: Sim) -> None:
    """Band rejects use the AsyncAPI enum's names (docs/simulator.md "Deviations")."""
    async with connect(sim.urls.trade_url) as raw:
        ws = Checked(raw, validate_trade_frame)
        await ws.client.auth()
        await ws.client.subscribe("order_responses")
        statuses = []
        for params in (limit("BUY", "250.00"), limit("SELL", "150.00")):
            await ws.command("add_order", **params)
            statuses.append((await ws.order())["status"])
        assert statuses == ["PRICE_GREATER_THAN_MAX_PRICE", "PRICE_LESS_THAN_MIN_PRICE"]
    ws.assert_clean("order_response")


async def test_rate_limited_err_validates(nursery: trio.Nursery) -> None:
    sim = await start_sim(nursery, rate_limit_budget=Decimal(6))
    async with connect(sim.urls.trade_url) as raw:
        ws = Checked(raw, validate_trade_frame)
        await ws.client.auth()
        for _ in range(4):
            await ws.command("get_user_orders")
        frames = [await ws.recv() for _ in range(2)]
        assert any("err" in f and f["err"]["error_code"] == "RateLimited" for f in frames)
    ws.assert_clean("err")


async def test_market_data_frames_validate(sim: Sim) -> None:
    async with connect(sim.urls.mds_url) as raw:
        ws = Checked(raw, validate_mds_frame)
        await ws.send(
            {
                "type": "subscribe",
                "channels": ["level2", "bbo", "trade", "mark_price"],
                "symbols": ["*"],
            }
        )
        await ws.send({"type": "subscribe", "channels": ["trade"], "symbols": ["AAPL-USD"]})
        await ws.recv_until(lambda f: f.get("type") == "level2")
        sim.sim.deliver(sim.sim.engine.add_order(PRIMARY, _engine_market("SELL")))
        sim.sim.deliver(sim.sim.engine.add_order(PRIMARY, _engine_market("BUY")))
        await ws.recv_until(lambda f: f.get("type") == "trade")
        sim.sim.set_price("EUR-USD", Decimal("1.2"))
        counts: dict[tuple[str, str], int] = {}
        with trio.fail_after(WAIT):
            while len(counts) < 3 * len(_symbols()) or min(counts.values()) < 2:
                frame = await ws.recv()
                if frame.get("type") != "trade":
                    key = (frame["type"], frame["symbol"])
                    counts[key] = counts.get(key, 0) + 1
    ws.assert_clean("level2", "bbo", "trade", "mark_price")


def _engine_market(side: str) -> dict[str, Any]:
    return {**market(side), "quantity": Decimal(1)}


def _problem(response: httpx.Response, status: int, problems: list[str]) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    try:
        validate_problem(response.json())
    except ValidationError as exc:
        problems.append(f"{response.request.url.path} {status}: {exc.message}")


def _body(response: httpx.Response, component: str, problems: list[str]) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    try:
        validate_rest(component, body)
    except ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        problems.append(f"{response.request.url.path} {component} {where}: {exc.message}")
    schema = body.get("$schema")
    if schema is not None and schema != f"https://api.qfex.com/schemas/{component}.json":
        problems.append(f"{response.request.url.path}: $schema {schema} names no {component}")
    return body


async def test_rest_bodies_and_problems_validate(sim: Sim) -> None:
    problems: list[str] = []
    # a position and some equity history, so no list in the bodies is empty
    sim.sim.deliver(sim.sim.engine.add_order(PRIMARY, _engine_market("BUY")))
    with trio.fail_after(WAIT):
        await wait_until(lambda: len(sim.sim.engine.accounts[PRIMARY].equity_history) >= 3)
    h = rest_headers
    async with httpx.AsyncClient(base_url=sim.urls.rest_url, timeout=WAIT) as client:
        refdata = _body(await client.get("/refdata"), "RefdataResponse", problems)
        assert len(refdata["data"]) == len(_symbols())
        _body(
            await client.get("/refdata", params={"ticker": "AAPL-USD"}), "RefdataResponse", problems
        )
        positions = _body(
            await client.get("/user/positions", headers=h(USER)),
            "PositionsBalanceResponseBody",
            problems,
        )
        assert positions["positions"]
        _body(
            await client.get("/user/positions", headers=h(USER, SUB1)),
            "PositionsBalanceResponseBody",
            problems,
        )
        for duration in (None, "1d", "1w", "1m", "3m", "ytd", "all"):
            params = {"duration": duration} if duration else {}
            equity = _body(
                await client.get("/user/account-equity", params=params, headers=h(USER)),
                "AccountEquityResponseBody",
                problems,
            )
            assert equity["data"]
        _body(
            await client.get("/user/subaccounts", headers=h(USER)),
            "ListSubaccountsResponseBody",
            problems,
        )
        created = _body(
            await client.post("/user/subaccounts", json={}, headers=h(USER)),
            "CreateSubaccountResponseBody",
            problems,
        )
        moved = await client.post(
            "/user/transfer",
            params={"src_account_id": PRIMARY, "dst_account_id": created["account_id"]},
            json={"amount": 5},
            headers=h(USER),
        )
        assert moved.status_code == 204 and moved.content == b""
        bearer = {"authorization": f"Bearer {sim.sim.issue_jwt(PRIMARY)}"}
        _body(
            await client.get("/user/subaccounts", headers=bearer),
            "ListSubaccountsResponseBody",
            problems,
        )
        # problem+json: 400, 401, 403, 404, 405, 422
        transfer = {"src_account_id": PRIMARY, "dst_account_id": SUB1}
        _problem(
            await client.post("/user/transfer", params=transfer, content=b"{nope", headers=h(USER)),
            400,
            problems,
        )
        _problem(
            await client.post(
                "/user/transfer",
                params={"src_account_id": PRIMARY, "dst_account_id": PRIMARY},
                json={"amount": 1},
                headers=h(USER),
            ),
            400,
            problems,
        )
        _problem(await client.get("/user/positions"), 401, problems)
        _problem(await client.get("/user/positions", headers=h(USER, OTHER)), 403, problems)
        _problem(
            await client.post(
                "/user/transfer",
                params={"src_account_id": PRIMARY, "dst_account_id": OTHER},
                json={"amount": 1},
                headers=h(USER),
            ),
            403,
            problems,
        )
        _problem(await client.get("/nowhere"), 404, problems)
        _problem(await client.delete("/user/positions", headers=h(USER)), 405, problems)
        _problem(
            await client.post(
                "/user/transfer", params={"src_account_id": PRIMARY}, json={}, headers=h(USER)
            ),
            422,
            problems,
        )
        for amount in ("ten", -1, 10**9):
            _problem(
                await client.post(
                    "/user/transfer", params=transfer, json={"amount": amount}, headers=h(USER)
                ),
                422,
                problems,
            )
        _problem(
            await client.get("/user/account-equity", params={"duration": "2y"}, headers=h(USER)),
            422,
            problems,
        )
    assert not problems, "\n".join(problems)
