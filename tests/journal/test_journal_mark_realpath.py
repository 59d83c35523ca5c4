"""Audit finding 13: rollback marks are keyed by the journal's real path (as its lock is), so an
older copy restored in place and opened through a symlink or another spelling still meets them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from qfexbot.money.journal import JournalRolledBack, SqliteJournal, mark_paths


async def _transfer(journal: SqliteJournal, amount: int) -> None:
    entry = await journal.record_intent(
        bot="b", plugin="p", venue="demo", src="a", dst="b", amount=Decimal(amount), reason="x",
    )  # fmt: skip
    await journal.mark_sent(entry.id)
    await journal.mark_done(entry.id)


@pytest.mark.parametrize("spelling", ["file-link", "dir-link"])
async def test_an_older_copy_opened_through_a_symlink_finds_the_marks(tmp_path, spelling):
    state = tmp_path / "state"
    real = tmp_path / "var" / "journal.sqlite"
    backup = tmp_path / "backup.sqlite"
    async with await SqliteJournal.open(real) as journal:
        await journal.check_continuity(state)
        await _transfer(journal, 10)
        await journal.backup(backup)
        await _transfer(journal, 11)
        await journal.check_continuity(state)  # the mark is now past the backup
    if spelling == "file-link":
        opened = tmp_path / "elsewhere" / "journal.sqlite"
        opened.parent.mkdir()
        opened.symlink_to(real)
    else:
        (tmp_path / "var-link").symlink_to(real.parent)
        opened = tmp_path / "var-link" / ".." / "var" / "journal.sqlite"
    for suffix in ("-wal", "-shm"):
        real.with_name(real.name + suffix).unlink(missing_ok=True)
    real.write_bytes(backup.read_bytes())  # the operator restores the older copy in place
    async with await SqliteJournal.open(opened) as journal:
        with pytest.raises(JournalRolledBack, match="ends at audit event"):
            await journal.check_continuity(state)
    assert mark_paths(opened, state) == mark_paths(real, state)
