"""Simulator TWAPs over the trade socket, every frame validated against the vendored spec:
``add_twap`` → ``twap_response`` progress, children as ordinary orders, ``all_orders_response
.twaps``, cancel by ``twap_id`` / ``client_twap_id``, unknown ids and refused TWAPs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from sim_client import USER, Client, Sim, connect, make_config
from validate import validate_trade_frame

from qfexbot.sim import QfexSimulator
from qfexbot.sim.qfex.twap import TwapBook

WAIT = 10.0
INTERVAL = 1  # seconds: the book's minimum is lowered to it (the venue's is 30)


class Validated:
    """A trade socket whose every received frame must validate (a violation fails the test)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: list[dict[str, Any]] = []

    async def command(self, kind: str, **params: Any) -> None:
        await self.client.command(kind, **params)

    async def reply(self, key: str, **match: Any) -> dict[str, Any]:
        """The next frame carrying ``key`` whose fields equal ``match``; frames in between are
        validated and kept in ``seen``."""
        with trio.fail_after(WAIT):
            while True:
                frame = await self.client.recv()
                validate_trade_frame(frame)
                self.seen.append(frame)
                body = frame.get(key)
                if body is not None and all(body.get(k) == v for k, v in match.items()):
                    return body


@pytest.fixture
async def sim(nursery: trio.Nursery) -> Sim:
    simulator = QfexSimulator(make_config())
    simulator.engine.twaps = TwapBook(simulator.engine, min_interval=INTERVAL, tick=0.05)
    urls = await nursery.start(simulator.serve, "127.0.0.1")
    return Sim(simulator, urls)


@asynccontextmanager
async def trade(sim: Sim) -> AsyncIterator[Validated]:
    async with connect(sim.urls.trade_url) as client:
        await client.auth(USER)
        await client.subscribe("order_responses", "fills")
        yield Validated(client)


def add_twap(client_twap_id: str | None, interval: int, **extra: Any) -> dict[str, Any]:
    return {
        "symbol": "AAPL-USD",
        "side": "BUY",
        "total_quantity": 0.003,
        "num_orders": 3,
        "order_interval_secs": interval,
        "reduce_only": False,
        "client_twap_id": client_twap_id,
        **extra,
    }


async def test_a_twap_runs_to_completion_with_ordinary_children(sim: Sim) -> None:
    async with trade(sim) as ws:
        await ws.command("add_twap", **add_twap("spec-1", INTERVAL))
        done = await ws.reply("twap_response", status="COMPLETED")
        reports = [f["twap_response"] for f in ws.seen if "twap_response" in f]
        assert [r["status"] for r in reports] == ["ACTIVE"] * 3 + ["COMPLETED"]
        assert [r["filled_quantity"] for r in reports] == [0.0, 0.001, 0.002, 0.003]
        assert {r["twap_id"] for r in reports} == {done["twap_id"]}
        assert done["client_twap_id"] == "spec-1" and done["total_num_orders"] == 3
        assert done["order_interval_secs"] == INTERVAL and done["average_fill_price"] > 0
        acks = [
            f["order_response"]
            for f in ws.seen
            if f.get("order_response", {}).get("status") == "ACK"
        ]
        assert [a["client_order_id"] for a in acks] == ["spec-1:1", "spec-1:2", "spec-1:3"]
        for n, ack in enumerate(acks):
            assert ack["type"] == "MARKET" and ack["time_in_force"] == "IOC"
            assert ack["update_time"] >= done["created_at"] + n * INTERVAL
        fills = [f["fill_response"] for f in ws.seen if "fill_response" in f]
        assert sorted(f["client_order_id"] for f in fills) == ["spec-1:1", "spec-1:2", "spec-1:3"]
        await ws.command("get_user_orders")
        listing = await ws.reply("all_orders_response")
        assert listing["twaps"] == [] and listing["orders"] == []  # finished ones are not listed
    assert [t.status for t in sim.sim.engine.twaps.finished(USER.account_id)] == ["COMPLETED"]


async def test_active_twaps_are_listed_and_cancelled_by_either_id(sim: Sim) -> None:
    async with trade(sim) as ws:
        await ws.command("add_twap", **add_twap("spec-2", 60))
        first = await ws.reply("twap_response")
        await ws.reply("twap_response", filled_quantity=0.001)  # after the first child
        await ws.command("add_twap", **add_twap(None, 60, side="SELL"))
        second = await ws.reply("twap_response")
        assert second["client_twap_id"] is None and second["side"] == "SELL"
        await ws.reply("twap_response", twap_id=second["twap_id"], filled_quantity=0.001)

        await ws.command("get_user_orders")
        listing = await ws.reply("all_orders_response")
        assert [t["twap_id"] for t in listing["twaps"]] == [first["twap_id"], second["twap_id"]]
        assert {t["status"] for t in listing["twaps"]} == {"ACTIVE"}
        await ws.command("get_user_orders", symbol="EUR-USD")
        assert (await ws.reply("all_orders_response"))["twaps"] == []

        await ws.command(
            "cancel_order",
            symbol="AAPL-USD",
            order_id="spec-2",
            cancel_order_id_type="client_twap_id",
        )
        cancelled = await ws.reply("twap_response")
        assert (cancelled["twap_id"], cancelled["status"]) == (first["twap_id"], "CANCELLED")
        await ws.command(
            "cancel_order",
            symbol="AAPL-USD",
            order_id=second["twap_id"],
            cancel_order_id_type="twap_id",
        )
        cancelled = await ws.reply("twap_response")
        assert (cancelled["twap_id"], cancelled["status"]) == (second["twap_id"], "CANCELLED")
        assert cancelled["filled_quantity"] == 0.001

        for ident, id_type in ((second["twap_id"], "twap_id"), ("spec-2", "client_twap_id")):
            await ws.command(
                "cancel_order", symbol="AAPL-USD", order_id=ident, cancel_order_id_type=id_type
            )
            missing = await ws.reply("order_response")
            assert missing["status"] == "NO_SUCH_ORDER"
            assert ident in (missing["order_id"], missing["client_order_id"])
        await ws.command("get_user_orders")
        assert (await ws.reply("all_orders_response"))["twaps"] == []


async def test_refused_twaps_are_err_frames_naming_the_field(sim: Sim) -> None:
    async with trade(sim) as ws:
        for params, code, field in (
            (add_twap("x", INTERVAL, num_orders=1), "InvalidParameter", "num_orders"),
            (add_twap("x", 0), "InvalidParameter", "order_interval_secs"),
            (add_twap("x", INTERVAL, total_quantity=0.002), "InvalidParameter", "min_quantity"),
            (add_twap("x", INTERVAL, symbol="NOPE-USD"), "InvalidParameter", "symbol"),
            (add_twap("x", INTERVAL, side="HOLD"), "InvalidJSONFormat", "side"),
            (add_twap("x", 1.5), "InvalidJSONFormat", "order_interval_secs"),
        ):
            await ws.command("add_twap", **params)
            err = await ws.reply("err")
            assert err["error_code"] == code and field in err["message"]
            assert err["incoming_message"] == {"type": "add_twap", "params": params}
        await ws.command("cancel_order", symbol="AAPL-USD", cancel_order_id_type="twap_id")
        assert (await ws.reply("err"))["error_code"] == "InvalidParameter"
    assert sim.sim.engine.twaps.active(USER.account_id) == []
