"""A master key on the embedded Finery simulator: a sub-account's session binds ``O``/``K`` with
``{"clientId": sub}``, so its orders, fills and positions arrive on the sub-account's bus."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import trio
from runtime_files import finery_toml, running, runtime_in
from wait_helpers import wait_until

from qfexbot.events import FillEvent, OrderUpdateEvent, PositionEvent

TAKER = '''
"""Test plugin: once the sub-account is LIVE, buys 0.01 BTC for it."""
from decimal import Decimal
from qfexbot import ConnectionState, ConnectionStateEvent, hookimpl


class Taker:
    def __init__(self, config):
        self.events = []
        self.sent = False

    @hookimpl
    async def qfexbot_event(self, ctx, event):
        self.events.append(event)
        if (not self.sent and isinstance(event, ConnectionStateEvent)
                and event.state is ConnectionState.LIVE
                and event.account_id == ctx.account_id("sub")):
            self.sent = True
            await ctx.add_order("sub", symbol="BTC-USD", side="BUY", order_type="MARKET",
                                quantity=Decimal("0.01"), time_in_force="IOC")
'''

BOTS = """
[bots.master]
venue = "fm"
accounts = ["desk", "sub"]
channels = ["order_responses", "fills", "positions"]

[bots.master.plugins.taker]
use = "taker:Taker"
"""
CONFIG = finery_toml(
    BOTS, user_id=10, key="fm_key_master", secret='"fm_secret_master"',
    accounts={"desk": "primary", "sub": 11}, pulse_interval=0.2,
)  # fmt: skip


async def test_sub_account_orders_fills_and_positions_reach_its_bus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runtime = runtime_in(tmp_path, CONFIG, {"taker": TAKER})
    with trio.fail_after(20):
        async with running(runtime):
            plugin = runtime.hosts["master"].slots[0].plugin

            def sub_events(kind: type) -> list:
                return [e for e in plugin.events if isinstance(e, kind) and e.account_id == "11"]

            await wait_until(
                lambda: (
                    sub_events(FillEvent)
                    and any(e.symbol == "BTC" for e in sub_events(PositionEvent))
                ),
                what="the sub-account's fill and BTC position",
                within=10,
            )
    (fill,) = sub_events(FillEvent)
    assert (fill.symbol, fill.side, fill.quantity) == ("BTC-USD", "BUY", Decimal("0.01"))
    assert any(e.status == "FILLED" for e in sub_events(OrderUpdateEvent))
    btc = [e for e in sub_events(PositionEvent) if e.symbol == "BTC"]
    assert btc[-1].size == Decimal("0.01")
    # bilateral: the whole position is against one counterparty, the house maker
    ((counterparty, size),) = btc[-1].by_counterparty
    assert size == Decimal("0.01") and counterparty not in ("10", "11")
    # The master's own buses saw none of it: the sub-account's events are its own.
    assert not [e for e in plugin.events if isinstance(e, FillEvent) and e.account_id == "10"]
