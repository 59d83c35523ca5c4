"""The runtime end to end: embedded simulator → sessions → bus → a real plugin, and back."""

from __future__ import annotations

import logging
import sqlite3
import time
from decimal import Decimal

import trio
from runtime_helpers import DESK_A, DESK_B, PRIMARY, recorder, write_config
from wait_helpers import wait_until

from qfexbot.cli.run import check_command
from qfexbot.config import load_config
from qfexbot.events import (
    BalanceEvent,
    ConnectionState,
    ConnectionStateEvent,
    ResyncEvent,
    TransferOutcomeEvent,
)
from qfexbot.money.journal import SqliteJournal
from qfexbot.runtime import Runtime


def states(events, account_id):
    return [
        e.state
        for e in events
        if isinstance(e, ConnectionStateEvent) and e.account_id == account_id
    ]


async def test_events_reach_plugin_in_order_for_every_account(tmp_path, nursery):
    runtime = Runtime(write_config(tmp_path))
    await nursery.start(runtime.run)
    plugin = recorder(runtime)
    for account in (DESK_A, DESK_B):
        await wait_until(
            lambda account=account: (
                sum(
                    1
                    for e in plugin.events
                    if isinstance(e, BalanceEvent) and e.account_id == account
                )
                >= 3
            ),
            what=f"balance pulses of {account}",
            within=10,
        )
    for account in (DESK_A, DESK_B):
        mine = [e for e in plugin.events if e.account_id == account]
        assert states(mine, account)[:5] == [
            ConnectionState.CONNECTING,
            ConnectionState.AUTHENTICATING,
            ConnectionState.SUBSCRIBING,
            ConnectionState.RESYNCING,
            ConnectionState.LIVE,
        ]
        resync = next(i for i, e in enumerate(mine) if isinstance(e, ResyncEvent))
        live = next(
            i for i, e in enumerate(mine) if getattr(e, "state", None) is ConnectionState.LIVE
        )
        assert resync < live, "the resync snapshot is delivered before the session is LIVE"
        times = [e.received_at for e in mine]
        assert times == sorted(times), "events arrive in the order they were received"
    balances = {e.account_id: e.available for e in plugin.events if isinstance(e, BalanceEvent)}
    assert balances == {DESK_A: Decimal(50), DESK_B: Decimal(5000)}
    runtime.stop()


async def test_reconnect_after_drop_resyncs_and_events_keep_flowing(tmp_path, nursery):
    runtime = Runtime(write_config(tmp_path))
    await nursery.start(runtime.run)
    plugin = recorder(runtime)
    await wait_until(
        lambda: ConnectionState.LIVE in states(plugin.events, DESK_A), what="first LIVE", within=10
    )
    sim = runtime.simulators["demo"]
    sim.faults.drop_connections(DESK_A)
    await wait_until(
        lambda: states(plugin.events, DESK_A).count(ConnectionState.LIVE) >= 2,
        what="LIVE again",
        within=10,
    )
    resyncs = [e for e in plugin.events if isinstance(e, ResyncEvent) and e.account_id == DESK_A]
    assert len(resyncs) >= 2, "state is re-read from REST after the reconnect"
    # Money moved while reconnected shows up in later balance events.
    sim.engine.transfer(PRIMARY, PRIMARY, DESK_A, Decimal("25"))
    await wait_until(
        lambda: any(
            isinstance(e, BalanceEvent) and e.account_id == DESK_A and e.available == Decimal(75)
            for e in plugin.events
        ),
        what="balance after the reconnect",
        within=10,
    )
    # desk-b was never dropped: one LIVE only.
    assert states(plugin.events, DESK_B).count(ConnectionState.LIVE) == 1
    runtime.stop()


async def test_plugin_transfer_is_journaled_sent_once_and_reported(tmp_path):
    app = write_config(tmp_path, recorder_options="transfer_amount = 100")
    runtime = Runtime(app)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            plugin = recorder(runtime)
            await wait_until(lambda: plugin.results, what="the plugin's transfer", within=10)
            assert plugin.results[0].state == "done"
            sim = runtime.simulators["demo"]
            assert [(e.dst, e.amount) for e in sim.ledger] == [(DESK_A, Decimal(100))]
            await wait_until(
                lambda: any(
                    isinstance(e, BalanceEvent)
                    and e.account_id == DESK_A
                    and e.available == Decimal(150)
                    for e in plugin.events
                ),
                what="desk-a balance after the transfer",
                within=10,
            )
            runtime.stop()
    outcomes = [
        e for e in plugin.events if isinstance(e, TransferOutcomeEvent) and e.state == "done"
    ]
    assert outcomes and outcomes[0].amount == Decimal(100)
    with sqlite3.connect(app.runtime.journal) as db:
        rows = db.execute("select state, amount from entries where kind = 'transfer'").fetchall()
    assert rows == [("done", "100")]


async def test_graceful_stop_runs_shutdown_and_closes_everything(tmp_path):
    runtime = Runtime(write_config(tmp_path))
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            await wait_until(
                lambda: ConnectionState.LIVE in states(recorder(runtime).events, DESK_B), within=10
            )
            runtime.stop()
    # run() returned on its own: every session reported STOPPED to the plugin.
    events = recorder(runtime).events
    assert states(events, DESK_A)[-1] is ConnectionState.STOPPED
    assert states(events, DESK_B)[-1] is ConnectionState.STOPPED


async def test_secrets_never_appear_in_logs_reprs_or_journal(tmp_path, caplog):
    sentinel = "qfex_secret_SENTINEL_5f1d2c9e"
    caplog.set_level(logging.DEBUG)
    app = write_config(tmp_path, secret=sentinel, recorder_options="transfer_amount = 10")
    runtime = Runtime(app)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            await wait_until(lambda: recorder(runtime).results, within=10)
            texts = [
                repr(runtime),
                repr(app),
                repr(app.venues["demo"]),
                str(app.venues["demo"].secret),
            ]
            texts += [repr(e) for e in recorder(runtime).events]
            runtime.stop()
    logged = "\n".join(r.getMessage() + repr(getattr(r, "fields", "")) for r in caplog.records)
    assert "session live" in logged  # we did capture the run's logs
    journal = (tmp_path / "var" / "journal.sqlite").read_bytes()
    for text in [logged, *texts]:
        assert sentinel not in text
    assert sentinel.encode() not in journal


def test_check_accepts_a_good_config_and_lists_bad_plugin_options(tmp_path, capsys):
    assert check_command(write_config(tmp_path)) == 0
    assert "OK" in capsys.readouterr().out
    bad = write_config(tmp_path, recorder_options='transfer_amount = "lots"')
    assert check_command(bad) == 1
    err = capsys.readouterr().err
    assert (
        'bots.watch.plugins.recorder.transfer_amount: expected a non-negative number, got "lots"'
        in err
    )


async def test_journal_left_in_doubt_is_reconciled_before_any_bot_acts(tmp_path):
    app = write_config(tmp_path)

    # A previous run died a minute ago after sending; the venue never applied it (balances are
    # as before). "Not applied" needs transfer_settle of quiet time counted by this process (a
    # wall-clock stamp from before the restart is no evidence), so it is examined before any
    # bot acts and stays unknown, blocking its accounts, until then.
    journal = await SqliteJournal.open(app.runtime.journal, clock=lambda: time.time() - 60)
    entry = await journal.record_intent(
        bot="watch",
        plugin="recorder",
        venue="demo",
        src=PRIMARY,
        dst=DESK_A,
        amount=Decimal(30),
        reason="crashed run",
        src_before=Decimal(100000),
        dst_before=Decimal(50),
    )
    await journal.mark_sent(entry.id)
    await journal.close()
    runtime = Runtime(app)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            settled = await runtime.journal.get(entry.id)
            # Examined by the time run() reports started, i.e. before sessions feed any plugin.
            assert settled.state == "unknown" and "in doubt for less than" in settled.detail
            first_live = [
                e
                for e in recorder(runtime).events
                if getattr(e, "state", None) is ConnectionState.LIVE
            ]
            assert first_live == []
            runtime.stop()
    assert runtime.simulators["demo"].ledger == []


async def test_transfer_from_a_plugin_with_a_full_inbox_does_not_deadlock(tmp_path):
    # While the plugin waits in ctx.transfer its one-slot inbox fills with balance pulses;
    # the transfer's outcome must not be published into that inbox under the accounts' locks.
    app = write_config(tmp_path, recorder_options="transfer_amount = 100\n        inbox_size = 1")
    text = app.path.read_text().replace("pulse_interval = 0.1", "pulse_interval = 0.01")
    app.path.write_text(text)
    runtime = Runtime(load_config(app.path))
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            plugin = recorder(runtime)
            await wait_until(lambda: plugin.results, what="the transfer to return", within=10)
            assert plugin.results[0].state == "done"
            await wait_until(
                lambda: any(isinstance(e, TransferOutcomeEvent) for e in plugin.events),
                what="the outcome event, delivered after the transfer returned",
                within=10,
            )
            runtime.stop()
