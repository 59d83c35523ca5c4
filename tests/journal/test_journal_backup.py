"""Journal backup (online, consistent, 0600) and rollback detection (identity + high-water mark).

A plain file copy of a live WAL journal is not a backup: its commits are in ``-wal``. Restoring
an older journal (with or without the files beside it) must be noticed before money moves.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from decimal import Decimal
from pathlib import Path

import pytest
from journal_helpers import DESK_A, DESK_B, TREASURY

from qfexbot.cli.journal import JournalCommandError, journal_accept_restore, journal_backup
from qfexbot.money.journal import (
    JOURNAL_ID_KEY,
    RESTORE_ACCEPTED_KEY,
    JournalRolledBack,
    SqliteJournal,
    SqliteStore,
    mark_paths,
    read_marks,
)


def _transfer(store: SqliteStore, amount: int, *, settle: bool = True) -> str:
    entry = store.record_intent(bot="keep-funded", plugin="rebalancer", venue="demo", src=TREASURY,
                                dst=DESK_A, amount=Decimal(amount), reason="top-up")  # fmt: skip
    store.mark_sent(entry.id)
    if settle:
        store.mark_done(entry.id, "venue confirmed")
    return entry.id


def _restore(copy: Path, journal: Path) -> None:
    """What docs/operations.md tells the operator: drop -wal/-shm, copy the backup into place."""
    for suffix in ("-wal", "-shm"):
        journal.with_name(journal.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(copy, journal)


def _checked(path: Path) -> SqliteStore:
    store = SqliteStore(path)
    try:
        store.check_continuity()
    except BaseException:
        store.close()
        raise
    return store


async def test_backup_while_the_journal_is_live_holds_every_entry_and_the_plain_copy_does_not(
    journal_path, clock
):
    journal = await SqliteJournal.open(journal_path, clock=clock)
    try:
        await journal.check_continuity()
        done = await journal.record_intent(
            bot="b",
            plugin="p",
            venue="demo",
            src=TREASURY,
            dst=DESK_A,
            amount=Decimal(5),
            reason="top-up",
        )
        await journal.mark_sent(done.id)
        await journal.mark_done(done.id, "ok")
        doubt = await journal.record_intent(
            bot="b",
            plugin="p",
            venue="demo",
            src=DESK_B,
            dst=TREASURY,
            amount=Decimal(7),
            reason="sweep",
        )
        await journal.mark_sent(doubt.id)
        await journal.mark_unknown(doubt.id, "read timeout")
        await journal.set_meta("deposit.demo", "true", "seen")
        plain = journal_path.with_name("plain-copy.sqlite")
        shutil.copyfile(journal_path, plain)  # what a naive "cp journal.sqlite" gives
        # The CLI's backup, from another connection, while this process holds the journal.
        out = journal_backup(journal_path, journal_path.with_name("cli.sqlite"))
        # The same from the journal's own worker thread.
        info = await journal.backup(journal_path.with_name("own.sqlite"))
        live = await journal.list(limit=1000)
        live_events = await journal.events(doubt.id)
    finally:
        await journal.close()
    assert "2 entries, 1 transfers in doubt" in out
    assert (info.entries, info.unresolved) == (2, 1)
    for name in ("cli.sqlite", "own.sqlite"):
        path = journal_path.with_name(name)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert not path.with_name(name + "-wal").exists()  # one self-contained file
        copy = SqliteStore(path)
        try:
            assert copy.list(limit=1000) == live
            assert [e.id for e in copy.unresolved()] == [doubt.id]
            assert [e.id for e in copy.transfers_since("b", 0)] == [done.id, doubt.id]
            assert copy.events(doubt.id) == live_events
            assert copy.get_meta("deposit.demo") == "true"
            assert copy.get_meta(JOURNAL_ID_KEY) is not None
        finally:
            copy.close()
    naive = SqliteStore(plain)
    try:
        assert len(naive.list(limit=1000)) < len(live)  # the commits were in -wal
    finally:
        naive.close()
    assert not list(journal_path.parent.glob("*.partial"))


def test_backup_refuses_to_overwrite_unless_forced(tmp_path):
    path = tmp_path / "journal.sqlite"
    store = SqliteStore(path)
    try:
        _transfer(store, 1)
    finally:
        store.close()
    target = tmp_path / "backup.sqlite"
    target.write_text("keep me")
    with pytest.raises(JournalCommandError, match="exists; pass --force"):
        journal_backup(path, target)
    assert target.read_text() == "keep me"
    with pytest.raises(JournalCommandError, match="is the journal itself"):
        journal_backup(path, path)
    with pytest.raises(JournalCommandError, match="no journal at"):
        journal_backup(tmp_path / "missing.sqlite", tmp_path / "b2.sqlite")
    journal_backup(path, target, overwrite=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    copy = SqliteStore(target)
    try:
        assert len(copy.list()) == 1
    finally:
        copy.close()


def test_marks_follow_every_commit_and_a_reopened_journal_passes(tmp_path):
    path = tmp_path / "journal.sqlite"
    store = _checked(path)
    try:
        _transfer(store, 1)
        assert {m.seq for m in read_marks(mark_paths(path))} == {store.last_seq()} != {0}
    finally:
        store.close()
    beside, elsewhere = mark_paths(path)
    assert beside.parent == path.parent
    assert elsewhere.parent.parent == Path(os.environ["QFEXBOT_STATE_DIR"])
    for mark in (beside, elsewhere):
        assert stat.S_IMODE(mark.stat().st_mode) == 0o600
    again = _checked(path)  # no false alarm after a restart
    again.close()


def _journal_with_backup(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A checked journal with a transfer, a backup and a snapshot of its directory, then more
    transfers (one still in doubt): the backup and the snapshot are older than the mark."""
    path = tmp_path / "var" / "journal.sqlite"
    path.parent.mkdir()
    store = _checked(path)
    try:
        _transfer(store, 10)
        backup = tmp_path / "backup.sqlite"
        store.backup(backup)
        snapshot = tmp_path / "snapshot"
        shutil.copytree(path.parent, snapshot)  # journal, -wal and .mark: a directory snapshot
        _transfer(store, 20)
        _transfer(store, 30, settle=False)  # a transfer in doubt the backup does not know
    finally:
        store.close()
    return path, backup, snapshot


def test_restoring_an_older_backup_is_refused_until_the_operator_accepts(tmp_path):
    path, backup, _ = _journal_with_backup(tmp_path)
    _restore(backup, path)
    with pytest.raises(JournalRolledBack, match=r"ends at audit event .* but event .* seen") as exc:
        _checked(path)
    assert "accept-restore" in str(exc.value)
    out = journal_accept_restore(path, "checked balances on the venue")
    assert "accepted as the reference" in out
    store = _checked(path)  # accepted: it runs
    try:
        [key] = [
            k
            for (k,) in store._db.execute(
                "SELECT key FROM meta WHERE key LIKE ?", (RESTORE_ACCEPTED_KEY + ".%",)
            )
        ]
        record = json.loads(store.get_meta(key))
        assert record["reason"] == "checked balances on the venue"
        assert record["by"].startswith("operator ")
        assert record["found_seq"] < record["seen_seq"]
    finally:
        store.close()
    assert "nothing to accept" in journal_accept_restore(path, "again")


def test_restoring_the_journal_directory_with_its_mark_is_still_detected(tmp_path):
    path, _, snapshot = _journal_with_backup(tmp_path)
    shutil.rmtree(path.parent)
    shutil.copytree(snapshot, path.parent)  # the beside-mark is rolled back with the journal
    with pytest.raises(JournalRolledBack):
        _checked(path)


def test_restoring_with_the_state_directory_mark_lost_is_still_detected(tmp_path):
    path, backup, _ = _journal_with_backup(tmp_path)
    mark_paths(path)[1].unlink()
    _restore(backup, path)
    with pytest.raises(JournalRolledBack):
        _checked(path)


def test_a_deleted_or_foreign_journal_is_refused(tmp_path):
    path, _, _ = _journal_with_backup(tmp_path)
    other = tmp_path / "other.sqlite"
    _checked(other).close()
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        (path.parent / name).unlink(missing_ok=True)
    with pytest.raises(JournalRolledBack, match="has no journal id"):
        _checked(path)  # a fresh empty file where the journal was
    path.unlink()
    shutil.copyfile(other, path)
    with pytest.raises(JournalRolledBack, match=r"it is journal .*, but journal"):
        _checked(path)


async def test_accept_restore_refuses_while_a_process_holds_the_journal(tmp_path):
    path, backup, _ = _journal_with_backup(tmp_path)
    _restore(backup, path)
    journal = await SqliteJournal.open(path)
    try:
        with pytest.raises(JournalCommandError, match="in use by another qfexbot process"):
            journal_accept_restore(path, "too early")
        with pytest.raises(JournalRolledBack):
            await journal.check_continuity()
    finally:
        await journal.close()


def test_state_dir_setting_moves_the_second_mark_and_is_used_by_accept_restore(tmp_path):
    path = tmp_path / "var" / "journal.sqlite"
    path.parent.mkdir()
    state = tmp_path / "elsewhere"
    store = SqliteStore(path)
    try:
        store.check_continuity(state)
        backup = tmp_path / "backup.sqlite"
        store.backup(backup)
        _transfer(store, 5)
    finally:
        store.close()
    beside, second = mark_paths(path, state)
    assert second.parent == state / "marks" and second.exists()
    assert not mark_paths(path)[1].exists()  # nothing written to $QFEXBOT_STATE_DIR
    beside.unlink()  # only the mark in state_dir is left
    _restore(backup, path)
    store = SqliteStore(path)
    try:
        store.check_continuity()  # looking elsewhere, it cannot know
        with pytest.raises(JournalRolledBack):
            store.check_continuity(state)
    finally:
        store.close()
    assert "accepted" in journal_accept_restore(path, "checked", state)
    store = SqliteStore(path)
    try:
        store.check_continuity(state)
    finally:
        store.close()
