"""Money edge 3a (issue 11): the journal lock is keyed by the journal's real path, so a symlink
(or another spelling of the path) to a journal in use finds the same lock."""

from __future__ import annotations

import os

import pytest

from qfexbot.money.journal import JournalLocked, SqliteJournal, journal_holder


async def test_a_symlink_to_a_journal_in_use_finds_its_lock(tmp_path):
    real = tmp_path / "var" / "journal.sqlite"
    link = tmp_path / "elsewhere" / "journal.sqlite"
    link.parent.mkdir()
    async with await SqliteJournal.open(real):
        link.symlink_to(real)
        assert journal_holder(link) == str(os.getpid())
        with pytest.raises(JournalLocked, match="in use by another qfexbot process"):
            await SqliteJournal.open(link)
        # A relative spelling through a symlinked directory is the same file too.
        (tmp_path / "dir-link").symlink_to(real.parent)
        with pytest.raises(JournalLocked):
            await SqliteJournal.open(tmp_path / "dir-link" / ".." / "var" / "journal.sqlite")
        with pytest.raises(JournalLocked):
            await SqliteJournal.open(tmp_path / "dir-link" / "journal.sqlite")
    assert journal_holder(link) is None
    async with await SqliteJournal.open(link):  # free again once the first one closed
        assert journal_holder(real) == str(os.getpid())
