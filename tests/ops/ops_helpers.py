"""Helpers for ops tests: a bots.toml with an embedded simulator and deciding plugins."""

from __future__ import annotations

from pathlib import Path

from demo_config import DESK_A, DESK_B, PRIMARY, SIM, demo_venue, runtime_table, watch_bot

from qfexbot.config import AppConfig, load_config

__all__ = ["ACTOR", "DECIDER", "DESK_A", "DESK_B", "FLAKY", "PRIMARY", "TICKER", "write_config"]

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


ACTOR = '''
"""Test plugin: the order actions beyond add/cancel, with data-dependent arguments."""
from decimal import Decimal
from qfexbot import BalanceEvent, hookimpl


class Actor:
    def __init__(self):
        self.seen = 0
        self.decided = 0

    @hookimpl
    async def qfexbot_event(self, ctx, event):
        if not isinstance(event, BalanceEvent) or event.account_id != ctx.account_id("desk-b"):
            return
        self.seen += 1
        if self.seen == 2:
            await ctx.set_leverage("desk-b", symbol="AAPL-USD", leverage=Decimal(5))
            await ctx.modify_order("desk-b", symbol="AAPL-USD", order_id=f"o-{event.available}",
                                   side="BUY", order_type="LIMIT", price=Decimal("151"))
            await ctx.cancel_all("desk-b")
            self.decided += 3
'''

FLAKY = '''
"""Test plugin: every event fails while ``broken`` (the test sets it); counts the timer
ticks it handles otherwise (a tick every 0.05 s)."""
from qfexbot import hookimpl


class Flaky:
    broken = False
    ticks = 0

    @hookimpl
    def qfexbot_schedules(self, ctx):
        return [("tick", 0.05)]

    @hookimpl
    def qfexbot_event(self, ctx, event):
        if self.broken:
            raise RuntimeError(f"{event.kind} failed: the test broke it")
        if event.kind == "timer":
            self.ticks += 1
'''


def write_config(
    tmp_path: Path, *, plugin: str = "decider", runtime_extra: str = "", name: str = "bots.toml"
) -> AppConfig:
    """A bots.toml with an embedded simulator, two desks and one test plugin
    (decider|ticker|actor)."""
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "decider.py").write_text(DECIDER)
    (plugins / "ticker.py").write_text(TICKER)
    (plugins / "actor.py").write_text(ACTOR)
    cls = {"decider": "Decider", "ticker": "Ticker", "actor": "Actor"}[plugin]
    venue = demo_venue(
        public_key="qfex_pub_ops",
        secret='"qfex_secret_ops_test"',
        session={
            "stale_after": 5.0,
            "backoff_initial": 0.05,
            "backoff_max": 0.2,
            "request_timeout": 3.0,
        },
        sim=SIM,
    )
    bot = watch_bot(
        channels=["balances", "positions", "order_responses"],
        instance=plugin,
        use=f"{plugin}:{cls}",
    )
    path = tmp_path / name
    path.write_text(runtime_table(log_level="info", more=runtime_extra) + venue + bot)
    (tmp_path / "var").mkdir(exist_ok=True)
    return load_config(path)
