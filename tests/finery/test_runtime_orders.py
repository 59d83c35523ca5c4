"""The runtime on a standalone Finery simulator as a maker: ``ctx.modify_order`` is Finery's
``mod`` and ``ctx.cancel_all`` its ``delAll``, both journaled like every order action."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
import trio
from runtime_files import demo_toml, runtime_on_simulator
from wait_helpers import wait_until

from qfexbot.core.venue import CancelAll, OrderChange, OrderRequest
from qfexbot.errors import ActionError
from qfexbot.events import OrderUpdateEvent
from qfexbot.sim.finery.server import FineryUrls
from qfexbot.venues.finery.orders import finery_cancel_all, finery_modify

MAKER = '''
"""Test plugin: once LIVE rests a bid, moves it with mod, then cancels everything."""
from decimal import Decimal
from qfexbot import ConnectionState, ConnectionStateEvent, OrderUpdateEvent, hookimpl


class Maker:
    def __init__(self, config):
        self.events = []
        self.step = "start"
        self.errors = []

    @hookimpl
    async def qfexbot_event(self, ctx, event):
        self.events.append(event)
        if (self.step == "start" and isinstance(event, ConnectionStateEvent)
                and event.state is ConnectionState.LIVE and event.account_id == "2"):
            self.step = "placed"
            await ctx.add_order("desk", symbol="BTC-USD", side="BUY", order_type="LIMIT",
                                quantity=Decimal("0.02"), price=Decimal("59000"),
                                client_order_id="41")
        elif (self.step == "placed" and isinstance(event, OrderUpdateEvent)
                and event.status == "ACK" and event.client_order_id == "41"):
            self.step = "modified"
            try:  # mod needs both price and size: refused before anything is journaled
                await ctx.modify_order("desk", symbol="BTC-USD", order_id=event.order_id,
                                       side="BUY", order_type="LIMIT", price=Decimal("58000"))
            except Exception as exc:
                self.errors.append(exc)
            await ctx.modify_order("desk", symbol="BTC-USD", order_id=event.order_id,
                                   side="BUY", order_type="LIMIT", price=Decimal("58500"),
                                   quantity=Decimal("0.03"))
        elif (self.step == "modified" and isinstance(event, OrderUpdateEvent)
                and event.status == "ACK" and event.price == Decimal("58500")):
            self.step = "cancelled"
            await ctx.cancel_all("desk")
'''


BOTS = """
[bots.maker]
venue = "fm"
accounts = ["desk"]
channels = ["order_responses", "fills"]

[bots.maker.plugins.maker]
use = "maker:Maker"
"""


def bots_toml(urls: FineryUrls) -> str:
    return demo_toml(
        BOTS, urls, "maker", {"desk": "primary"},
        request_timeout=3.0,
    )  # fmt: skip


async def test_mod_and_del_all_through_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FM_TEST_MAKER_SECRET", "fm_maker_secret_demo")
    monkeypatch.chdir(tmp_path)
    with trio.fail_after(20):
        async with runtime_on_simulator(tmp_path, bots_toml, {"maker": MAKER}) as (_, runtime):
            plugin = runtime.hosts["maker"].slots[0].plugin

            def cancelled() -> list[OrderUpdateEvent]:
                return [
                    e
                    for e in plugin.events
                    if isinstance(e, OrderUpdateEvent) and e.status == "CANCELLED"
                ]

            await wait_until(
                lambda: plugin.step == "cancelled" and len(cancelled()) >= 2,
                what="the placed order replaced by mod, then removed by delAll",
                within=10,
            )
            assert runtime.journal is not None
            entries = await runtime.journal.list()
    acks = [e for e in plugin.events if isinstance(e, OrderUpdateEvent) and e.status == "ACK"]
    placed = next(e for e in acks if e.price == Decimal(59000))
    moved = next(e for e in acks if e.price == Decimal(58500))
    # mod = the old order removed and a new one (a new id) with the new price and size.
    assert moved.order_id != placed.order_id and moved.quantity == Decimal("0.03")
    assert {e.order_id for e in cancelled()} == {placed.order_id, moved.order_id}
    assert "both the new price and the new quantity" in str(plugin.errors[0])
    requests = sorted(e.data["type"] for e in entries if e.kind == "request")
    assert requests == ["delAll", "mod"]  # the refused mod is neither journaled nor sent
    assert all(e.state == "sent" for e in entries if e.kind == "request")
    mod = next(e for e in entries if e.data["type"] == "mod")
    assert mod.data["params"] == {"order_id": int(placed.order_id), "price": "58500",
                                  "size": "0.03"}  # fmt: skip


def test_mod_and_del_all_mapping_refuses_what_finery_lacks() -> None:
    change = OrderChange("BTC-USD", "12", "BUY", "LIMIT", price=Decimal(1), quantity=Decimal(2))
    assert finery_modify(change) == OrderRequest(
        "mod", {"order_id": 12, "price": Decimal(1), "size": Decimal(2)}
    )
    for bad, reason in (
        (replace(change, order_id="o-12"), "order id is an integer"),
        (replace(change, quantity=None), "both the new price and the new quantity"),
        (replace(change, take_profit=Decimal(3)), "no attached take-profit"),
    ):
        with pytest.raises(ActionError, match=reason):
            finery_modify(bad)
    assert finery_cancel_all(CancelAll()) == OrderRequest("delAll", {})
