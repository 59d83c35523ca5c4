"""``ctx.transfer`` on Finery is a settlement transaction under the transfer discipline, end to
end against the standalone simulator: journaled before sending, the venue's answer lost after
it applied the request -> ``unknown`` -> reconciled from the venue's settlement state, once;
the settlement feeds deliver it as ``SettlementEvent`` s."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from wait_helpers import wait_until

from qfexbot.config import load_config
from qfexbot.events import SettlementEvent
from qfexbot.runtime import Runtime
from qfexbot.sim.finery import FinerySimulator
from qfexbot.sim.finery.config import demo_finery_config

PAYER = '''
"""Test plugin: once LIVE, settles 12.5 USD to the counterparty; then, when that transfer is
reconciled, asks for a second one (which must be allowed and sent once)."""
from decimal import Decimal
from qfexbot import ConnectionState, ConnectionStateEvent, TransferOutcomeEvent, hookimpl


class Payer:
    def __init__(self, config):
        self.events = []
        self.results = []

    @hookimpl
    async def qfexbot_event(self, ctx, event):
        self.events.append(event)
        if (not self.results and isinstance(event, ConnectionStateEvent)
                and event.state is ConnectionState.LIVE and event.account_id == "1"):
            self.results.append(await ctx.transfer("desk", "maker", Decimal("12.5"), "settle"))
        elif (len(self.results) == 1 and isinstance(event, TransferOutcomeEvent)
                and event.state == "done" and event.account_id == "1"):
            self.results.append(await ctx.transfer("desk", "maker", Decimal("1"), "again"))
'''


def bots_toml(ws_url: str, rest_url: str) -> str:
    return f"""
[runtime]
journal = "var/journal.sqlite"
plugin_dirs = ["plugins"]
kill_switch_file = "var/PAUSED"

[venues.fm]
kind = "finery"
trade_url = "{ws_url}"
rest_url = "{rest_url}"
user_id = 1
public_key = "fm_taker_demo"
secret = {{ env = "FM_TEST_TAKER_SECRET" }}
[venues.fm.accounts]
desk = "primary"
maker = 2
[venues.fm.session]
backoff_initial = 0.05
backoff_max = 0.2
request_timeout = 0.5

[bots.payer]
venue = "fm"
accounts = ["desk"]
channels = ["balances"]

[bots.payer.limits]
allowed_pairs = [["desk", "maker"]]
max_transfer = "100"
min_interval = 0

[bots.payer.plugins.payer]
use = "payer:Payer"
"""


async def test_lost_settlement_answer_is_reconciled_from_venue_state_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FM_TEST_TAKER_SECRET", "fm_taker_secret_demo")
    (tmp_path / "var").mkdir()
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "payer.py").write_text(PAYER)
    monkeypatch.chdir(tmp_path)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            sim = FinerySimulator(demo_finery_config())
            urls = await nursery.start(sim.serve, "127.0.0.1")
            # applied by the venue, answer held past the client's timeout (then a bare 504)
            sim.faults.lose_next_answers(1, method="addOutgoingSettlementTransaction", hold=1.0)
            (tmp_path / "bots.toml").write_text(bots_toml(urls.ws_url, urls.rest_url))
            runtime = Runtime(load_config(tmp_path / "bots.toml"))
            await nursery.start(runtime.run)
            plugin = runtime.hosts["payer"].slots[0].plugin
            await wait_until(
                lambda: (
                    len(plugin.results) == 2
                    and sum(isinstance(e, SettlementEvent) for e in plugin.events) >= 2
                ),
                what="the lost settlement reconciled, a second one sent, both on the N feed",
                within=12,
            )
            assert runtime.journal is not None
            entries = {e.id: e for e in await runtime.journal.list() if e.kind == "transfer"}
            history = await runtime.venues["fm"].venue.rest.settlement_transactions()
            runtime.stop()
            nursery.cancel_scope.cancel()
    first, second = plugin.results
    assert first.state == "unknown"  # the answer was lost: never guessed
    assert entries[first.entry_id].state == "done"  # reconciled from settlementTransactions
    assert "the venue has the request" in entries[first.entry_id].detail
    assert second.state == "done" and entries[second.entry_id].state == "done"
    # exactly one transaction per journal entry on the venue: the lost one was not sent again
    outgoing = history[1]
    comments = sorted(row[4] for row in outgoing)
    assert comments == sorted(f"qfexbot:{r.entry_id}" for r in (first, second))
    amounts = {row[4]: row[2] for row in outgoing}
    assert amounts[f"qfexbot:{first.entry_id}"] == 1250000000  # 12.5 USD in 1e-8 units
    seen = [e for e in plugin.events if isinstance(e, SettlementEvent) and e.action == "added"]
    assert {(e.record, e.direction, e.counterparty, e.currency) for e in seen} == {
        ("transaction", "outgoing", "2", "USD")
    }
    assert {e.comment for e in seen} == set(comments)
