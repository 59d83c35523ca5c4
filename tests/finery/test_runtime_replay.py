"""Record a live run on the embedded Finery simulator, replay it with ``qfexbot replay``'s engine,
and get the same decisions from the same books and snapshots."""

from __future__ import annotations

from pathlib import Path

import trio
from runtime_files import finery_toml, running, runtime_files
from wait_helpers import wait_until

from qfexbot.config import load_config
from qfexbot.ops.recorder import with_recording
from qfexbot.ops.replay import read_recording, recording_files, replay
from qfexbot.runtime import Runtime

DECIDER = '''
"""Test plugin: a (dry-run) quote at the best bid of each of the first books, and a cancel
naming the number of positions of each resync, so decisions depend on the events."""
from decimal import Decimal
from qfexbot import BookEvent, ResyncEvent, hookimpl


class Decider:
    def __init__(self, config):
        self.decided = 0
        self.books = 0

    @hookimpl
    async def qfexbot_event(self, ctx, event):
        if isinstance(event, BookEvent) and event.bids and self.books < 6:
            self.books += 1
            self.decided += 1
            price, size = event.bids[0]
            await ctx.add_order("desk", symbol=event.symbol, side="BUY", order_type="LIMIT",
                                quantity=size, price=price)
        elif isinstance(event, ResyncEvent):
            self.decided += 1
            await ctx.cancel_order("desk", symbol="BTC-USD",
                                   order_id=str(100 + len(event.positions)))
'''

BOTS = """
[bots.watch]
venue = "fm"
accounts = ["desk"]
dry_run = true
channels = ["order_responses", "fills", "positions", "balances"]
market_data = { channels = ["level2"], symbols = ["BTC-USD"] }

[bots.watch.plugins.decider]
use = "decider:Decider"
"""
CONFIG = finery_toml(
    BOTS, user_id=1, key="fm_key_replay", secret='"fm_secret_replay"',
    accounts={"desk": "primary"}, pulse_interval=0.05, session=False,
)  # fmt: skip


def test_replay_of_a_finery_recording_reproduces_the_decisions(tmp_path: Path) -> None:
    path = runtime_files(tmp_path, CONFIG, {"decider": DECIDER})
    rec_dir = tmp_path / "rec"
    app = with_recording(load_config(path), rec_dir)

    async def live() -> None:
        runtime = Runtime(app)
        with trio.fail_after(20):
            async with running(runtime):
                plugin = runtime.hosts["watch"].slots[0].plugin
                await wait_until(lambda: plugin.decided >= 7, what="live decisions", within=10)

    trio.run(live)
    records = [r for r, _ in read_recording(recording_files(rec_dir))]
    assert {("fm", "1", "trade"), ("fm", "", "mds")} <= {
        (r["venue"], r["account"], r.get("ch", "trade")) for r in records if r["type"] == "frame"
    }
    assert any(r["type"] == "snapshot" for r in records)
    recorded = [r for r in records if r["type"] == "decision"]
    assert {r["action"] for r in recorded} == {"add_order", "cancel_order"}

    result = replay(load_config(path), rec_dir)
    assert result.parse_errors == 0 and result.frames > 0
    assert ("fm", "1") in result.accounts
    assert len(result.decisions) == len(recorded)
    assert result.mismatches() == []
