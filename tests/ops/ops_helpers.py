"""Helpers for ops tests: a bots.toml with an embedded simulator and deciding plugins."""

from __future__ import annotations

import textwrap
from pathlib import Path

from qfexbot.config import AppConfig, load_config

PRIMARY = "0020ce8e-eaee-480e-8d7f-b9241d756ee5"
DESK_A = "11111111-1111-4111-8111-111111111111"
DESK_B = "22222222-2222-4222-8222-222222222222"

DECIDER = '''
"""Test plugin: decides on connection state and on balance events (data-dependent args)."""
from decimal import Decimal
from qfexbot import BalanceEvent, ConnectionState, ConnectionStateEvent, hookimpl


class Decider:
    def __init__(self):
        self.balances = {}
        self.decided = 0
        self.lives = 0

    @hookimpl
    async def qfexbot_event(self, ctx, event):
        if isinstance(event, ConnectionStateEvent) and event.state is ConnectionState.LIVE:
            if event.account_id == ctx.account_id("desk-a"):
                self.lives += 1
            if event.account_id == ctx.account_id("desk-a") and self.lives == 1:
                self.decided += 1
                await ctx.cancel_order(
                    "desk-a", symbol="AAPL-USD", order_id=f"on-live-{event.previous.value}"
                )
        if isinstance(event, BalanceEvent):
            n = self.balances[event.account_id] = self.balances.get(event.account_id, 0) + 1
            alias = "desk-a" if event.account_id == ctx.account_id("desk-a") else "desk-b"
            if alias == "desk-a" and n in (2, 5):
                self.decided += 1
                await ctx.transfer("treasury", "desk-a", Decimal("1.5") * n,
                                   f"balance #{n} was {event.available}")
            if n == 3:
                self.decided += 1
                await ctx.add_order(alias, symbol="AAPL-USD", side="BUY", order_type="LIMIT",
                                    quantity=Decimal("0.01"), price=Decimal("150"),
                                    client_order_id=f"{alias}-{n}-{event.available}")
'''

TICKER = '''
"""Test plugin: decides on timer ticks, with the number of balance events seen so far."""
from decimal import Decimal
from qfexbot import BalanceEvent, hookimpl


class Ticker:
    def __init__(self):
        self.seen = 0
        self.ticks = 0

    @hookimpl
    def qfexbot_schedules(self, ctx):
        return [("tick", 0.15)]

    @hookimpl
    async def qfexbot_event(self, ctx, event):
        if isinstance(event, BalanceEvent):
            self.seen += 1
        elif event.kind == "timer":
            self.ticks += 1
            await ctx.cancel_order("desk-a", symbol="AAPL-USD",
                                   order_id=f"tick-{self.ticks}-seen-{self.seen}")
'''


def write_config(
    tmp_path: Path, *, plugin: str = "decider", runtime_extra: str = "", name: str = "bots.toml"
) -> AppConfig:
    """A bots.toml with an embedded simulator, two desks and one test plugin (decider|ticker)."""
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "decider.py").write_text(DECIDER)
    (plugins / "ticker.py").write_text(TICKER)
    cls = {"decider": "Decider", "ticker": "Ticker"}[plugin]
    text = textwrap.dedent(
        f'''
        [runtime]
        journal = "var/journal.sqlite"
        plugin_dirs = ["plugins"]
        kill_switch_file = "var/PAUSED"
        log_level = "info"
        {runtime_extra}

        [venues.demo]
        kind = "qfex"
        simulator = true
        user_id = "{PRIMARY}"
        public_key = "qfex_pub_ops"
        secret = "qfex_secret_ops_test"

        [venues.demo.accounts]
        treasury = "primary"
        desk-a = "{DESK_A}"
        desk-b = "{DESK_B}"

        [venues.demo.session]
        stale_after = 5.0
        backoff_initial = 0.05
        backoff_max = 0.2
        request_timeout = 3.0

        [venues.demo.sim]
        pulse_interval = 0.1
        deposits = {{ treasury = 100000, desk-a = 50, desk-b = 5000 }}

        [bots.watch]
        venue = "demo"
        accounts = ["desk-a", "desk-b"]
        channels = ["balances", "positions", "order_responses"]

        [bots.watch.limits]
        allowed_pairs = [["treasury", "desk-a"]]
        min_interval = 0

        [bots.watch.plugins.{plugin}]
        use = "{plugin}:{cls}"
        '''
    )
    path = tmp_path / name
    path.write_text(text)
    (tmp_path / "var").mkdir(exist_ok=True)
    return load_config(path)
