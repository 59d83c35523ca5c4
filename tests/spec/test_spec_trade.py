"""The trade-socket commands added for issue 14 (modify_order, close_position, stop orders,
cancel/modify_stop_order, get_user_trades, get_available_leverage_levels), driven through raw
WebSockets with hand-written JSON; every frame received is validated against the vendored
AsyncAPI schemas (tests/spec/schemas), replies of every outcome included: MODIFIED,
CANNOT_MODIFY_*, NO_SUCH_ORDER, rejects, ``stop_order_response``, ``err``."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import trio
from sim_client import OTHER_USER, SUB1, USER, Client, Sim, connect, start_sim
from validate import ValidationError, validate_trade_frame

from qfexbot.sim import SimSymbol
from qfexbot.sim.qfex.config import default_symbols

WAIT = 5.0
AAPL = "AAPL-USD"
TINY = "TINY-USD"  # one whole unit breaches its max position notional


class Validated:
    """A raw trade socket whose every received frame goes through ``validate_trade_frame``."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: dict[str, int] = {}
        self.violations: list[str] = []

    async def command(self, kind: str, **params: Any) -> None:
        await self.client.send(json.dumps({"type": kind, "params": params}))

    async def recv(self) -> dict[str, Any]:
        frame = await self.client.recv()
        try:
            key = validate_trade_frame(frame)
        except ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path)
            self.violations.append(f"{where}: {exc.message} in {json.dumps(frame)[:300]}")
        else:
            self.seen[key] = self.seen.get(key, 0) + 1
        return frame

    async def reply(self, key: str) -> Any:
        """The next frame carrying ``key`` (frames in between are validated too)."""
        with trio.fail_after(WAIT):
            while True:
                frame = await self.recv()
                if key in frame:
                    return frame[key]

    async def order(self) -> dict[str, Any]:
        return await self.reply("order_response")

    def assert_clean(self, *expected: str) -> None:
        missing = [k for k in expected if k not in self.seen]
        assert not self.violations, "\n".join(self.violations)
        assert not missing, f"never received {missing}; saw {self.seen}"


def _symbols() -> dict[str, SimSymbol]:
    symbols = default_symbols()
    symbols[TINY] = SimSymbol(TINY, Decimal("100.00"), max_position_notional=Decimal(50))
    return symbols


@pytest.fixture
async def sim(nursery: trio.Nursery) -> Sim:
    return await start_sim(nursery, symbols=_symbols())


def limit(side: str, price: float, quantity: float = 1.0, **extra: Any) -> dict[str, Any]:
    return {
        "symbol": AAPL,
        "side": side,
        "order_type": "LIMIT",
        "order_time_in_force": "GTC",
        "quantity": quantity,
        "price": price,
        **extra,
    }


def market(side: str, quantity: float, **extra: Any) -> dict[str, Any]:
    return {
        "symbol": AAPL,
        "side": side,
        "order_type": "MARKET",
        "order_time_in_force": "IOC",
        "quantity": quantity,
        **extra,
    }


def stop(kind: str, side: str, trigger: float, quantity: float) -> dict[str, Any]:
    return {
        "symbol": AAPL,
        "side": side,
        "order_type": kind,
        "order_time_in_force": "IOC",
        "quantity": quantity,
        "price": trigger,
    }


async def _open(raw: Client, account: str | None = None, user: Any = USER) -> Validated:
    """The socket authenticated and subscribed to every private channel, validating."""
    ws = Validated(raw)
    await raw.auth(user, account)
    await ws.command(
        "subscribe", channels=["order_responses", "fills", "stop_orders", "positions", "balances"]
    )
    for _ in range(5):
        await ws.reply("subscribed")
    return ws


async def test_modify_order_replies_validate(sim: Sim) -> None:
    async with connect(sim.urls.trade_url) as raw, connect(sim.urls.trade_url) as raw_other:
        ws = await _open(raw)
        other = await _open(raw_other, user=OTHER_USER)
        await ws.command("add_order", **limit("BUY", 190.0, client_order_id="mod-1"))
        order_id = (await ws.order())["order_id"]
        await ws.command(
            "modify_order",
            symbol=AAPL,
            order_id=order_id,
            side="BUY",
            order_type="LIMIT",
            price=191.0,
            quantity=2,
            take_profit=195.0,
            stop_loss=185.0,
        )
        modified = await ws.order()
        assert (modified["status"], modified["price"], modified["take_profit"]) == (
            "MODIFIED",
            191.0,
            195.0,
        )
        for params, status in (
            (
                {"order_id": "nope", "side": "SELL", "order_type": "ALO"},
                "CANNOT_MODIFY_NO_SUCH_ORDER",
            ),
            ({"order_id": order_id, "side": "SELL"}, "CANNOT_MODIFY_NO_SUCH_ORDER"),
            ({"order_id": order_id, "price": 191.005}, "INVALID_TICK_SIZE_PRECISION_PRICE"),
            ({"order_id": order_id, "price": 250.0}, "PRICE_GREATER_THAN_MAX_PRICE"),
            ({"order_id": order_id, "take_profit": 180.0}, "INVALID_TAKEPROFIT_PRICE"),
            ({"order_id": order_id, "stop_loss": 199.0}, "INVALID_STOPLOSS_PRICE"),
        ):
            request = {"symbol": AAPL, "side": "BUY", "order_type": "LIMIT", **params}
            await ws.command("modify_order", **request)
            assert (await ws.order())["status"] == status, params
        # a partly filled order (the best bid): CANNOT_MODIFY_PARTIAL_FILL
        await ws.command("add_order", **limit("BUY", 200.0, 2))
        order_id = (await ws.order())["order_id"]
        await other.command("add_order", **market("SELL", 0.5))
        assert (await other.order())["status"] == "ACK"
        await other.reply("fill_response")
        assert (await ws.order())["status"] == "FILLED"
        await ws.reply("fill_response")
        await ws.command(
            "modify_order",
            symbol=AAPL,
            order_id=order_id,
            side="BUY",
            order_type="LIMIT",
            price=199.0,
        )
        assert (await ws.order())["status"] == "CANNOT_MODIFY_PARTIAL_FILL"
        # a modify that crosses trades as taker
        await ws.command("add_order", **limit("BUY", 180.0))
        second = (await ws.order())["order_id"]
        await ws.command(
            "modify_order",
            symbol=AAPL,
            order_id=second,
            side="BUY",
            order_type="LIMIT",
            price=200.5,
        )
        assert (await ws.order())["status"] == "MODIFIED"
        assert (await ws.order())["status"] == "FILLED"
        await ws.command("modify_order", symbol=AAPL, order_id=order_id)
        assert (await ws.reply("err"))["error_code"] == "InvalidParameter"
        await ws.command(
            "modify_order", symbol=AAPL, order_id=order_id, side="UP", order_type="LIMIT"
        )
        assert (await ws.reply("err"))["error_code"] == "InvalidJSONFormat"
    async with connect(sim.urls.trade_url) as raw:  # the 50 USD subaccount: risk rejects
        tiny = await _open(raw, SUB1)
        await tiny.command("add_order", **{**limit("BUY", 99.0, 0.1), "symbol": TINY})
        tiny_id = (await tiny.order())["order_id"]
        await tiny.command(
            "modify_order",
            symbol=TINY,
            order_id=tiny_id,
            side="BUY",
            order_type="LIMIT",
            quantity=1,
        )
        assert (await tiny.order())["status"] == "REJECTED_WOULD_BREACH_MAX_NOTIONAL"
        await tiny.command("add_order", **limit("BUY", 190.0, 0.1))
        small = (await tiny.order())["order_id"]
        await tiny.command(
            "modify_order", symbol=AAPL, order_id=small, side="BUY", order_type="LIMIT", quantity=10
        )
        assert (await tiny.order())["status"] == "FAILED_MARGIN_CHECK"
    ws.assert_clean("order_response", "fill_response", "err")
    other.assert_clean("order_response", "fill_response")
    tiny.assert_clean("order_response")


async def test_close_position_replies_validate(sim: Sim) -> None:
    async with connect(sim.urls.trade_url) as raw:
        ws = await _open(raw)
        await ws.command("close_position", symbol=AAPL)
        flat = await ws.order()
        assert (flat["status"], flat["quantity"]) == ("REJECTED", 0.0)
        await ws.command("close_position", symbol="NOPE-USD")
        assert (await ws.order())["status"] == "BAD_SYMBOL"
        await ws.command("add_order", **market("SELL", 1.5))
        assert (await ws.order())["status"] == "ACK"
        await ws.reply("fill_response")
        await ws.command("close_position", symbol=AAPL, client_order_id="close-1")
        ack = await ws.order()
        assert (ack["status"], ack["type"], ack["time_in_force"], ack["side"]) == (
            "ACK",
            "LIMIT",
            "IOC",
            "BUY",
        )
        assert (await ws.order())["status"] == "FILLED"
        fill = await ws.reply("fill_response")
        assert (fill["client_order_id"], fill["tif"]) == ("close-1", "IOC")
        position = await ws.reply("position_response")
        assert position["position"] == 0.0
        await ws.command("close_position")
        assert (await ws.reply("err"))["error_code"] == "InvalidParameter"
    ws.assert_clean("order_response", "fill_response", "position_response", "err")


async def test_stop_order_replies_validate(sim: Sim) -> None:
    async with connect(sim.urls.trade_url) as raw:
        ws = await _open(raw)
        await ws.command("add_order", **stop("STOP_LOSS", "SELL", 195.0, 1))
        assert (await ws.order())["status"] == "REJECTED"  # no position yet
        await ws.command("add_order", **market("BUY", 2))
        await ws.reply("fill_response")
        await ws.command("add_order", **stop("STOP_LOSS", "SELL", 195.0, 2))
        sl = await ws.order()
        assert (sl["status"], sl["type"]) == ("ACK", "STOP_LOSS")
        row = await ws.reply("stop_order_response")
        assert row["stop_order_id"] == sl["order_id"]
        await ws.command("add_order", **stop("TAKE_PROFIT", "SELL", 205.0, 1))
        tp = await ws.order()
        await ws.reply("stop_order_response")
        await ws.command("add_order", **stop("STOP_MARKET", "BUY", 230.0, 1))
        sm = await ws.order()
        assert (sm["status"], sm["type"]) == ("ACK", "STOP_MARKET")
        await ws.command("add_order", **stop("TAKE_PROFIT", "SELL", 205.005, 1))
        assert (await ws.order())["status"] == "INVALID_TICK_SIZE_PRECISION_PRICE"
        await ws.command("get_user_orders")
        listing = await ws.reply("all_orders_response")
        assert [o["order_id"] for o in listing["orders"]] == [
            sl["order_id"],
            tp["order_id"],
            sm["order_id"],
        ]
        assert len(listing["stop_orders"]) == 2
        await ws.command("get_order", symbol=AAPL, order_id=tp["order_id"])
        assert (await ws.order())["type"] == "TAKE_PROFIT"
        # modify_stop_order: MODIFIED (+ stop_order_response), misses, rejects
        await ws.command(
            "modify_stop_order", stop_order_id=tp["order_id"], symbol=AAPL, price=206.0, quantity=1
        )
        assert (await ws.order())["status"] == "MODIFIED"
        assert (await ws.reply("stop_order_response"))["price"] == 206.0
        await ws.command(
            "modify_stop_order", stop_order_id="nope", symbol=AAPL, price=206.0, quantity=1
        )
        assert (await ws.order())["status"] == "CANNOT_MODIFY_NO_SUCH_ORDER"
        await ws.command(
            "modify_stop_order", stop_order_id=tp["order_id"], symbol=AAPL, price=206.0, quantity=5
        )
        assert (await ws.order())["status"] == "REJECTED"
        await ws.command("modify_stop_order", stop_order_id=tp["order_id"], symbol=AAPL)
        assert (await ws.reply("err"))["error_code"] == "InvalidParameter"
        # cancel_stop_order: CANCELLED, then NO_SUCH_ORDER
        for status in ("CANCELLED", "NO_SUCH_ORDER"):
            await ws.command("cancel_stop_order", stop_order_id=tp["order_id"])
            assert (await ws.order())["status"] == status
        await ws.command("cancel_stop_order", stop_order_id=17)
        assert (await ws.reply("err"))["error_code"] == "InvalidJSONFormat"
        # the stop-loss fires when the mark falls: a fill of type STOP_LOSS
        sim.sim.set_price(AAPL, Decimal("190"))
        fired = await ws.order()
        assert (fired["order_id"], fired["status"], fired["type"]) == (
            sl["order_id"],
            "FILLED",
            "STOP_LOSS",
        )
        fill = await ws.reply("fill_response")
        assert fill["order_type"] == "STOP_LOSS"
        await ws.command("cancel_order", symbol=AAPL, order_id=sm["order_id"])
        assert (await ws.order())["status"] == "CANCELLED"
    ws.assert_clean("order_response", "fill_response", "stop_order_response", "all_orders_response")


async def test_attached_take_profit_and_stop_loss_replies_validate(sim: Sim) -> None:
    async with connect(sim.urls.trade_url) as raw:
        ws = await _open(raw)
        for extra, status in (
            ({"take_profit": 199.0}, "INVALID_TAKEPROFIT_PRICE"),
            ({"stop_loss": 201.0}, "INVALID_STOPLOSS_PRICE"),
        ):
            await ws.command("add_order", **market("BUY", 1, **extra))
            assert (await ws.order())["status"] == status
        await ws.command(
            "add_order", **market("BUY", 1, take_profit=210.0, stop_loss=190.0, client_order_id="b")
        )
        staged = []
        with trio.fail_after(WAIT):
            while len(staged) < 2:
                reply = await ws.order()
                if reply["type"] in ("TAKE_PROFIT", "STOP_LOSS"):
                    staged.append(reply)
        assert {(r["type"], r["status"], r["client_order_id"]) for r in staged} == {
            ("TAKE_PROFIT", "ACK", "b"),
            ("STOP_LOSS", "ACK", "b"),
        }
        await ws.reply("stop_order_response")
    ws.assert_clean("order_response", "fill_response", "stop_order_response")


async def test_trade_and_leverage_queries_validate(sim: Sim) -> None:
    async with connect(sim.urls.trade_url) as raw:
        ws = await _open(raw, SUB1)
        await ws.command("get_user_trades")
        assert await ws.reply("user_trades_response") == []
        await ws.command("add_order", **market("BUY", 0.1, client_order_id="t-1"))
        await ws.reply("fill_response")
        for params in ({}, {"limit": 1, "offset": 0}, {"start_ts": 0, "end_ts": 4_000_000_000}):
            await ws.command("get_user_trades", **params)
            (row,) = await ws.reply("user_trades_response")
            assert (row["client_order_id"], row["order_type"]) == ("t-1", "MARKET")
        await ws.command("get_user_trades", limit=5000)
        assert (await ws.reply("err"))["error_code"] == "InvalidParameter"
        await ws.command("get_available_leverage_levels")
        levels = await ws.reply("available_leverage_levels_response")
        assert {r["symbol"] for r in levels} == set(_symbols())
        await ws.command("get_available_leverage_levels", limit=3, offset=2)
        assert len(await ws.reply("available_leverage_levels_response")) == 3
        await ws.command("get_available_leverage_levels", limit=-1)
        assert (await ws.reply("err"))["error_code"] == "InvalidParameter"
        await ws.command("set_user_leverage", symbol="CL-USD", leverage=3)
        await ws.reply("ack")
        await ws.command("set_user_leverage", symbol="CL-USD", leverage=4)
        assert (await ws.reply("err"))["error_code"] == "InvalidParameter"
        await ws.command("get_user_leverage")
        rows = await ws.reply("user_leverage_response")
        assert [r["leverage"] for r in rows if r["symbol"] == "CL-USD"] == ["3"]
    ws.assert_clean(
        "user_trades_response",
        "available_leverage_levels_response",
        "user_leverage_response",
        "ack",
        "err",
    )
