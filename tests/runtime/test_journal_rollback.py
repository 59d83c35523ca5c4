"""A restored journal that is older than what qfexbot last saw stops money movement.

The real runtime against its embedded simulator: transfers, a plain file copy and a
``journal backup`` taken while it runs, more transfers, then each copy restored and the runtime
restarted. Both are refused before any bot acts; after ``journal accept-restore`` it runs.
"""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import trio
from runtime_helpers import DESK_A, recorder, write_config
from wait_helpers import wait_until

from qfexbot import hookimpl
from qfexbot.cli.journal import journal_accept_restore, journal_backup
from qfexbot.config import AppConfig, ConfigError
from qfexbot.money.journal import STATE_DIR_ENV, mark_paths
from qfexbot.runtime import Runtime
from qfexbot.testing import run_bot


def _entries(path: Path) -> int:
    """Journal entries in the file (0 when it has no tables: nothing of the journal in it)."""
    with closing(sqlite3.connect(path)) as db:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'entries'").fetchone() is None:
            return 0
        return db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]


def _restore(copy: Path, journal: Path) -> None:
    """docs/operations.md's restore: remove the old -wal/-shm, copy the file into place."""
    for suffix in ("-wal", "-shm"):
        journal.with_name(journal.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(copy, journal)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


async def _refused(app: AppConfig) -> tuple[str, Runtime]:
    """Start the runtime, expecting it to refuse; the refusal text and the runtime."""
    runtime = Runtime(app)
    try:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                await nursery.start(runtime.run)
                runtime.stop()
    except BaseException as exc:
        [leaf] = _leaves(exc)
        assert isinstance(leaf, ConfigError), repr(leaf)
        return str(leaf), runtime
    raise AssertionError("the runtime started on a rolled-back journal")


async def test_restored_plain_copy_and_older_backup_are_refused_until_accepted(tmp_path):
    app = write_config(tmp_path, recorder_options="transfer_amount = 10")
    journal = app.runtime.journal
    plain, backup = tmp_path / "plain-copy.sqlite", tmp_path / "backup.sqlite"
    runtime = Runtime(app)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            plugin = recorder(runtime)
            await wait_until(lambda: plugin.results, what="the plugin's first transfer", within=10)
            assert plugin.results[0].state == "done"
            shutil.copyfile(journal, plain)  # a naive copy of the live WAL journal
            out = await trio.to_thread.run_sync(journal_backup, journal, backup)
            assert "1 entries, 0 transfers in doubt" in out
            ctx = runtime.hosts["watch"].slots[0].ctx
            for amount in (11, 12):
                result = await ctx.transfer("treasury", "desk-a", Decimal(amount), "after backup")
                assert result.state == "done"
            runtime.stop()
    assert [e.amount for e in runtime.simulators["demo"].ledger] == [10, 11, 12]
    assert _entries(journal) == 3 and _entries(backup) == 1
    assert _entries(plain) < _entries(backup)  # the plain copy lost committed rows (in -wal)

    for copy, why in ((plain, "has no journal id"), (backup, "ends at audit event")):
        _restore(copy, journal)
        before = _entries(journal)
        text, refused = await _refused(app)
        assert why in text and "accept-restore" in text and "runtime.journal" in text
        assert refused.simulators["demo"].ledger == []  # nothing moved
        assert recorder(refused).events == []  # no bot saw anything
        assert _entries(journal) == before

    # The backup is in place; the operator checked the venue and accepts it.
    assert "accepted as the reference" in journal_accept_restore(journal, "balances checked")
    runtime = Runtime(app)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            plugin = recorder(runtime)
            await wait_until(
                lambda: plugin.results, what="the transfer after acceptance", within=10
            )
            runtime.stop()
    assert plugin.results[0].state == "done"
    assert [(e.dst, e.amount) for e in runtime.simulators["demo"].ledger] == [(DESK_A, Decimal(10))]
    assert _entries(journal) == 2


class _Quiet:
    """A plugin that only needs to load."""

    @hookimpl
    async def qfexbot_event(self, ctx, event):
        pass


async def test_plugin_test_harness_keeps_the_journal_mark_in_its_own_directory(
    tmp_path, monkeypatch
):
    home_state = tmp_path / "home-state"  # stands for ~/.local/state of a plugin author
    monkeypatch.setenv(STATE_DIR_ENV, str(home_state))
    async with run_bot(_Quiet, tmp_path=tmp_path / "bot", wait_live=False) as bot:
        journal = bot.runtime.app.runtime.journal
    assert mark_paths(journal, tmp_path / "bot" / "var" / "state")[1].exists()
    assert not home_state.exists()
