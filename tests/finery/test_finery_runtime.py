"""The runtime on a Finery venue: embedded simulator, sessions, orders, refused transfers, and the
book-imbalance example plugin running unchanged on QFEX and on Finery."""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from pathlib import Path

import trio
from wait_helpers import wait_until

from qfexbot.config import load_config
from qfexbot.events import (
    BookEvent,
    ConnectionState,
    ConnectionStateEvent,
    FillEvent,
    OrderUpdateEvent,
    PositionEvent,
    ResyncEvent,
)
from qfexbot.runtime import Runtime

REPO = Path(__file__).resolve().parents[2]
QFEX_PRIMARY = "0020ce8e-eaee-480e-8d7f-b9241d756ee5"

COMMON = """
[runtime]
journal = "var/journal.sqlite"
plugin_dirs = ["{plugins}", "plugins"]
kill_switch_file = "var/PAUSED"
"""

QFEX_VENUE = f"""
[venues.demo]
kind = "qfex"
simulator = true
user_id = "{QFEX_PRIMARY}"
public_key = "qfex_pub_imbalance"
secret = "qfex_secret_imbalance"
[venues.demo.accounts]
desk = "primary"
[venues.demo.sim]
pulse_interval = 0.1
"""

FINERY_VENUE = """
[venues.demo]
kind = "finery"
simulator = true
user_id = 1
public_key = "fm_key_imbalance"
secret = "fm_secret_imbalance"
[venues.demo.accounts]
desk = "primary"
[venues.demo.sim]
pulse_interval = 0.1
"""

BOT = """
[venues.demo.session]
backoff_initial = 0.05
backoff_max = 0.2
request_timeout = 3.0

[bots.watch]
venue = "demo"
accounts = ["desk"]
market_data = {{ channels = ["level2"], symbols = ["{symbol}"] }}

[bots.watch.plugins.book_imbalance]
use = "book_imbalance:BookImbalance"
min_interval = 0
"""

RECORDER = '''
"""Test plugin: records events; once LIVE: a transfer, two orders and a positions read."""
from decimal import Decimal
from qfexbot import ConnectionState, ConnectionStateEvent, hookimpl


class Recorder:
    def __init__(self, config):
        self.events = []
        self.transfer = None
        self.order_error = None
        self.snapshot = None

    @hookimpl
    async def qfexbot_event(self, ctx, event):
        self.events.append(event)
        if (self.transfer is None and isinstance(event, ConnectionStateEvent)
                and event.state is ConnectionState.LIVE
                and event.account_id == ctx.account_id("desk")):
            self.transfer = await ctx.transfer("desk", "other", Decimal(5), "test")
            await ctx.add_order("desk", symbol="BTC-USD", side="BUY", order_type="MARKET",
                                quantity=Decimal("0.01"), time_in_force="IOC")
            try:
                await ctx.add_order("desk", symbol="BTC-USD", side="BUY", order_type="MARKET",
                                    quantity=Decimal("0.01"), time_in_force="GTC")
            except Exception as exc:
                self.order_error = exc
            self.snapshot = await ctx.positions("desk")
'''


def bots_toml(venue: str, symbol: str) -> str:
    """A bots.toml for the imbalance plugin; only ``venue`` and ``symbol`` vary."""
    return COMMON.format(plugins=REPO / "plugins") + venue + BOT.format(symbol=symbol)


def write(tmp_path: Path, text: str):
    (tmp_path / "var").mkdir(exist_ok=True)
    (tmp_path / "plugins").mkdir(exist_ok=True)
    path = tmp_path / "bots.toml"
    path.write_text(text)
    return load_config(path)


_LINE = re.compile(
    r"imbalance symbol=(\S+) imbalance=(\S+) bid_size=(\S+) ask_size=(\S+) "
    r"best_bid=(\S+) best_ask=(\S+)"
)


async def run_imbalance(tmp_path: Path, caplog, venue: str, symbol: str) -> list[tuple[str, ...]]:
    """Run the runtime with the shipped plugin until it logged 3 imbalance lines."""
    caplog.set_level(logging.INFO, logger="plugins")
    runtime = Runtime(write(tmp_path, bots_toml(venue, symbol)))

    def lines() -> list[tuple[str, ...]]:
        return [
            m.groups()
            for r in caplog.records
            if r.name == "plugins.watch.book_imbalance" and (m := _LINE.fullmatch(r.getMessage()))
        ]

    with trio.fail_after(25):
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            await wait_until(lambda: len(lines()) >= 3, what="imbalance lines", within=15)
            runtime.stop()
    return lines()


def test_the_two_configs_differ_only_in_the_venue_table_and_symbol() -> None:
    qfex, finery = bots_toml(QFEX_VENUE, "AAPL-USD"), bots_toml(FINERY_VENUE, "BTC-USD")
    assert qfex.replace(QFEX_VENUE, "").replace("AAPL-USD", "S") == finery.replace(
        FINERY_VENUE, ""
    ).replace("BTC-USD", "S")


async def test_book_imbalance_plugin_on_qfex(tmp_path, caplog) -> None:
    lines = await run_imbalance(tmp_path, caplog, QFEX_VENUE, "AAPL-USD")
    for symbol, value, bid, ask, best_bid, best_ask in lines:
        assert symbol == "AAPL-USD"
        assert Decimal(bid) > 0 and Decimal(ask) > 0 and -1 < Decimal(value) < 1
        assert Decimal(best_bid) < Decimal(best_ask)
        assert Decimal(value) == (
            (Decimal(bid) - Decimal(ask)) / (Decimal(bid) + Decimal(ask))
        ).quantize(Decimal("0.0001"))


async def test_book_imbalance_plugin_on_finery(tmp_path, caplog) -> None:
    lines = await run_imbalance(tmp_path, caplog, FINERY_VENUE, "BTC-USD")
    for symbol, value, bid, ask, best_bid, best_ask in lines:
        assert symbol == "BTC-USD"
        assert Decimal(bid) > 0 and Decimal(ask) > 0 and -1 < Decimal(value) < 1
        # The house maker quotes around 60000 (BTC 60000 USD / USD 1) in 30 USD steps.
        assert Decimal(best_bid) == Decimal(59970) and Decimal(best_ask) == Decimal(60030)
    # Sizes change as the house maker replaces quotes: later lines come from book updates.
    assert len({line[2:4] for line in lines}) > 1


async def test_finery_account_session_orders_positions_and_refused_transfer(tmp_path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "recorder.py").write_text(RECORDER)
    text = bots_toml(FINERY_VENUE, "BTC-USD").replace(
        'desk = "primary"', 'desk = "primary"\nother = 2'
    )
    text = text.replace(
        'accounts = ["desk"]',
        'accounts = ["desk"]\nchannels = ["order_responses", "fills", "positions", "balances"]',
    )
    text += '\n[bots.watch.plugins.recorder]\nuse = "recorder:Recorder"\n'
    runtime = Runtime(write(tmp_path, text))
    with trio.fail_after(25):
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            plugin = runtime.hosts["watch"].slots[1].plugin
            await wait_until(
                lambda: (
                    plugin.snapshot is not None
                    and any(isinstance(e, FillEvent) for e in plugin.events)
                    and any(
                        isinstance(e, PositionEvent)
                        and e.symbol == "BTC"
                        and e.size == Decimal("0.01")
                        for e in plugin.events
                    )
                ),
                what="the fill and the BTC position",
                within=15,
            )
            assert runtime.journal is not None
            entries = await runtime.journal.list()
            runtime.stop()
    desk = [e for e in plugin.events if e.account_id == "1"]
    states = [e.state for e in desk if isinstance(e, ConnectionStateEvent)]
    assert states[:5] == [
        ConnectionState.CONNECTING,
        ConnectionState.AUTHENTICATING,
        ConnectionState.SUBSCRIBING,
        ConnectionState.RESYNCING,
        ConnectionState.LIVE,
    ]
    assert any(isinstance(e, ResyncEvent) for e in desk)
    fill = next(e for e in desk if isinstance(e, FillEvent))
    assert (fill.symbol, fill.side, fill.quantity, fill.is_taker) == (
        "BTC-USD",
        "BUY",
        Decimal("0.01"),
        True,
    )
    assert fill.price == Decimal(60030)  # the best house ask
    assert any(
        isinstance(e, OrderUpdateEvent) and e.order_type == "MARKET" and e.time_in_force == "IOC"
        for e in desk
    )
    usd = [e for e in desk if isinstance(e, PositionEvent) and e.symbol == "USD"]
    assert usd[-1].size == Decimal("-600.30")
    assert any(isinstance(e, BookEvent) and e.symbol == "BTC-USD" for e in plugin.events)
    # A transfer on Finery is a settlement under the transfer policy: no pair is allowed here.
    assert plugin.transfer.state == "refused" and plugin.transfer.code == "pair_not_allowed"
    assert "MARKET+GTC" in str(plugin.order_error)
    assert isinstance(plugin.snapshot, ResyncEvent) and plugin.snapshot.account_id == "1"
    refusal = next(e for e in entries if e.kind == "refusal")
    assert (refusal.src, refusal.dst, refusal.amount, refusal.state) == (
        "1",
        "2",
        Decimal(5),
        "refused",
    )
    orders = [e for e in entries if e.kind == "order"]
    assert len(orders) == 1, "the refused MARKET+GTC order is never journaled or sent"
    assert orders[0].data["type"] == "add"
    assert orders[0].data["params"]["order_type"] == "marketIOC"


def test_example_config_loads() -> None:
    app = load_config(REPO / "docs" / "examples" / "finery.toml")
    venue = app.venues["finery-sim"]
    assert (venue.kind, venue.simulator, venue.user_id) == ("finery", True, "1")
    assert app.bots["imbalance"].market_data.symbols == ("BTC-USD", "ETH-USD")
