"""qfexbot.testing: run_bot starts a real bot on the embedded simulator; a test acts on it."""

from __future__ import annotations

import textwrap
from decimal import Decimal

import pytest

from qfexbot import (
    BalanceEvent,
    ConnectionState,
    ConnectionStateEvent,
    MarkPriceEvent,
    TransferOutcomeEvent,
    hookimpl,
)
from qfexbot.config import load_config
from qfexbot.core.plugins import PluginLoadError
from qfexbot.testing import account_uuid, run_bot, write_bots_toml


class Recorder:
    """Records events; transfers ``amount`` to desk-a when it sees an injected low balance."""

    def __init__(self) -> None:
        self.events = []
        self.results = []
        self.shutdown = False

    @hookimpl
    async def qfexbot_event(self, ctx, event):
        self.events.append(event)
        if isinstance(event, BalanceEvent) and event.available == Decimal("0.01"):
            self.results.append(await ctx.transfer("treasury", "desk-a", Decimal("12.5"), "test"))

    @hookimpl
    def qfexbot_shutdown(self, ctx):
        self.shutdown = True


async def test_plugin_by_name_sees_session_and_injected_events(tmp_path):
    plugins = tmp_path / "my_plugins"
    plugins.mkdir()
    (plugins / "counter.py").write_text(
        textwrap.dedent('''
        """Counts balance events per account."""
        from qfexbot import BalanceEvent, Field, hookimpl

        class Counter:
            config_schema = {"label": Field("str")}
            subscribes = (BalanceEvent,)

            def __init__(self, config):
                self.label = config["label"]
                self.seen = []

            @hookimpl
            def qfexbot_event(self, event):
                self.seen.append(event)
    ''')
    )
    async with run_bot(
        "counter",
        plugin_dirs=[plugins],
        tmp_path=tmp_path / "bot",
        options={"label": "x"},
        accounts={"desk-a": 10, "desk-b": 20},
    ) as bot:
        assert bot.plugin.label == "x" and bot.ctx.plugin == "counter"
        assert bot.ctx.accounts == {
            "desk-a": account_uuid("desk-a"),
            "desk-b": account_uuid("desk-b"),
        }
        await bot.wait_for(lambda: {e.available for e in bot.plugin.seen} >= {10, 20})
        injected = await bot.inject(BalanceEvent, "desk-b", available=Decimal("7.5"))
        await bot.wait_for(lambda: injected in bot.plugin.seen, what="the injected event")
        assert injected.account_id == account_uuid("desk-b") and injected.venue == "sim"
        # The harness's own log saw it too, and the ConnectionStateEvents the plugin filtered out.
        assert injected in bot.events_of(BalanceEvent, "desk-b")
        assert bot.events_of(ConnectionStateEvent, "desk-a")
        # Market data (account "") goes on the first account's bus and still arrives.
        price = await bot.inject(
            MarkPriceEvent(
                venue="sim", account_id="", received_at=0.0, symbol="AAPL-USD", price=Decimal(201)
            )
        )
        await bot.wait_for(lambda: price in bot.events)
    assert (tmp_path / "bot" / "bots.toml").is_file()


async def test_transfer_reaches_ledger_journal_and_outcome_events(tmp_path):
    async with run_bot(Recorder, tmp_path=tmp_path, accounts={"desk-a": 100}) as bot:
        await bot.inject(BalanceEvent, "desk-a", available=Decimal("0.01"))
        await bot.wait_for(lambda: bot.plugin.results, what="the transfer")
        assert bot.plugin.results[0].state == "done"
        assert [(t.src, t.dst, t.amount) for t in bot.transfers] == [
            (bot.account_id("treasury"), bot.account_id("desk-a"), Decimal("12.5"))
        ]
        assert bot.balance("desk-a") == Decimal("112.5")
        entries = await bot.journal_entries(kind="transfer")
        assert [(e.state, e.plugin, e.amount) for e in entries] == [
            ("done", "Recorder", Decimal("12.5"))
        ]
        await bot.wait_for(
            lambda: any(
                isinstance(e, TransferOutcomeEvent) and e.state == "done" for e in bot.plugin.events
            )
        )
    assert bot.plugin.shutdown, "leaving the block stops the bot gracefully"


async def test_dry_run_journals_and_moves_nothing(tmp_path):
    async with run_bot(Recorder, tmp_path=tmp_path, dry_run=True) as bot:
        await bot.inject(BalanceEvent, "desk-a", available=Decimal("0.01"))
        await bot.wait_for(lambda: bot.plugin.results)
        assert bot.plugin.results[0].state == "dry_run"
        assert [e.kind for e in await bot.journal_entries()] == ["dry_run"]
        assert bot.transfers == []


async def test_faults_reach_the_plugin_as_a_reconnect(tmp_path):
    async with run_bot(Recorder, tmp_path=tmp_path) as bot:
        bot.sim.faults.drop_connections(bot.account_id("desk-a"))

        def lives():
            return [
                e
                for e in bot.events_of(ConnectionStateEvent, "desk-a")
                if e.state is ConnectionState.LIVE
            ]

        await bot.wait_for(lambda: len(lives()) == 2, what="LIVE again")
        await bot.wait_live()
        assert len(lives()) == 2


async def test_without_tmp_path_uses_a_temporary_directory():
    async with run_bot(Recorder) as bot:
        directory = bot.config_path.parent
        assert directory.is_dir()
        assert list(bot.accounts) == ["treasury", "desk-a"]
    assert not directory.exists()


async def test_bad_options_raise_the_loaders_error_unwrapped(tmp_path):
    with pytest.raises(PluginLoadError) as info:
        async with run_bot(Recorder, tmp_path=tmp_path, options={"nope": 1}):
            raise AssertionError("must not start")
    assert "bots.bot.plugins.Recorder.nope" in str(info.value)


async def test_an_error_in_the_block_comes_out_as_itself_after_a_graceful_stop(tmp_path):
    with pytest.raises(KeyError, match="boom"):
        async with run_bot(Recorder, tmp_path=tmp_path) as bot:
            raise KeyError("boom")
    assert bot.plugin.shutdown


async def test_wait_for_fails_with_what_it_waited_for(tmp_path):
    async with run_bot(Recorder, tmp_path=tmp_path) as bot:
        with pytest.raises(AssertionError, match=r"timed out after 0.05 s waiting for never"):
            await bot.wait_for(lambda: False, timeout=0.05, what="never")
        await bot.inject(BalanceEvent, "desk-a", available=Decimal("0.01"))
        # An async predicate is awaited, and its truthy value returned.
        entries = await bot.wait_for(lambda: bot.journal_entries(state="done"))
        assert [e.kind for e in entries] == ["transfer"]


def test_generated_config_keeps_numbers_exact_and_quotes_keys(tmp_path):
    path = write_bots_toml(
        tmp_path,
        {"p": ("qfexbot.testing:EventLog", {})},
        accounts={"desk-a": Decimal("0.123456789012345678"), "desk b?": 1},
        treasury="5",
        limits={"max_transfer": Decimal("2.5")},
        sim={"seed": 3},
    )
    text = path.read_text()
    assert '"desk b?"' in text
    # The odd alias is rejected by the config loader, not by the writer: names are the loader's.
    with pytest.raises(Exception, match="desk b"):
        load_config(path)
    path = write_bots_toml(
        tmp_path / "ok",
        {"p": ("qfexbot.testing:EventLog", {})},
        accounts={"desk-a": Decimal("1e3")},
        limits={"max_transfer": Decimal("2.5")},
    )
    app = load_config(path)
    assert app.venues["sim"].sim["deposits"]["desk-a"] == Decimal(1000)
    assert app.bots["bot"].limits.max_transfer == Decimal("2.5")
    assert app.bots["bot"].limits.allowed_pairs == {("treasury", "desk-a"), ("desk-a", "treasury")}
