"""The shipped settler plugin on the standalone Finery simulator: a desk that owes a
counterparty more than ``max_owed`` settles the debt once, stays quiet while the settlement is
open, and has nothing more to settle after the counterparty committed it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import trio
from runtime_files import demo_toml, running, runtime_in
from wait_helpers import wait_until

from plugins.settler import debt_to_settle
from qfexbot.config import load_config
from qfexbot.core.secrets import Secret
from qfexbot.runtime import Runtime
from qfexbot.sim.finery import FinerySimulator
from qfexbot.sim.finery.config import demo_finery_config
from qfexbot.sim.finery.server import FineryUrls
from qfexbot.venues.finery.rest import FineryRest

REPO = Path(__file__).resolve().parents[2]


BOTS = """
[bots.settle]
venue = "fm"
accounts = ["desk"]
channels = ["positions", "balances"]

[bots.settle.limits]
allowed_pairs = [["desk", "maker"]]
max_transfer = "1000"
min_interval = 0

[bots.settle.plugins.settler]
desk = "desk"
counterparties = ["maker"]
max_owed = 100
interval = 0.05

[bots.settle.plugins.seen]
use = "seen:Seen"
"""


def bots_toml(urls: FineryUrls) -> str:
    return demo_toml(
        BOTS, urls, "taker", {"desk": "primary", "maker": 2},
        request_timeout=2.0, plugin_dirs=("plugins", str(REPO / "plugins")),
    )  # fmt: skip


SEEN = '''
"""Test plugin: the order in which the desk's events arrive."""
from qfexbot import ConnectionStateEvent, SettlementEvent, hookimpl


class Seen:
    def __init__(self, config):
        self.order = []

    @hookimpl
    def qfexbot_event(self, ctx, event):
        if isinstance(event, ConnectionStateEvent):
            self.order.append(event.state.value)
        elif isinstance(event, SettlementEvent):
            self.order.append(f"settlement {event.action}")
'''


def test_debt_to_settle_only_past_the_threshold() -> None:
    rows = (("2", Decimal("-250.509")), ("3", Decimal("40")))
    assert debt_to_settle(rows, "2", Decimal(100)) == Decimal("250.50")
    assert debt_to_settle(rows, "2", Decimal(300)) == 0
    assert debt_to_settle(rows, "3", Decimal(0)) == 0  # owed to the desk: not ours to pay
    assert debt_to_settle(rows, "4", Decimal(0)) == 0


async def test_settler_settles_a_debt_once_and_stops_after_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FM_TEST_TAKER_SECRET", "fm_taker_secret_demo")
    monkeypatch.chdir(tmp_path)
    config = demo_finery_config()
    clients = tuple(
        c.__class__(**{**c.__dict__, "positions": (("USD", 2, Decimal("-250.5")),)})
        if c.client_id == 1
        else c
        for c in config.clients
    )
    sim = FinerySimulator(config.replace(clients=clients))
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(sim.serve, "127.0.0.1")
            async with running(runtime_in(tmp_path, bots_toml(urls), {"seen": SEEN})) as runtime:
                settler = runtime.hosts["settle"].slots[0].plugin
                await wait_until(lambda: settler.open.get("2"), what="a settlement", within=8)
                await trio.sleep(0.4)  # eight more looks: none may settle again
                assert settler.settled == 1
            # A restart knows nothing of the open settlement but what the venue says.
            runtime = Runtime(load_config(tmp_path / "bots.toml"))
            await nursery.start(runtime.run)
            settler = runtime.hosts["settle"].slots[0].plugin
            await wait_until(lambda: settler.live, what="the second run live", within=8)
            assert settler.open.get("2")
            # learnt from the resync, before LIVE (the N feed's snapshot only follows LIVE)
            order = runtime.hosts["settle"].slots[1].plugin.order
            assert order.index("settlement snapshot") < order.index("live")
            await trio.sleep(0.4)
            assert settler.settled == 0
            desk = runtime.venues["fm"].venue.rest
            maker = FineryRest(urls.rest_url, "fm_maker_demo", Secret("fm_maker_secret_demo"))
            try:
                (txn,) = (await desk.settlement_transactions())[1]
                assert (txn[0], txn[1], txn[2]) == (2, "USD", 25050000000)
                # the operator sends the payment, the counterparty confirms it
                await desk.call("sendOutgoingSettlementTransaction",
                                {"transactionId": txn[10], "txId": "wire-1"})  # fmt: skip
                await maker.call("commitIncomingSettlementTransaction",
                                 {"transactionId": txn[10]})  # fmt: skip
                await wait_until(lambda: settler.open.get("2") == set(), what="commit", within=5)
                await trio.sleep(0.4)
                assert settler.settled == 0  # the debt is gone: nothing more to settle
                assert (await desk.settlement_transactions())[1] == []
                history = await desk.settlement_transaction_history()
                assert [row[10] for row in history] == [txn[10]]
            finally:
                await maker.aclose()
            runtime.stop()
            nursery.cancel_scope.cancel()
