"""The SQLite journal backend: the schema, its migrations, the file's identity and backups.

``SqliteStore`` is synchronous and used by one thread only: ``SqliteJournal`` runs one on its
worker thread, the CLI uses one directly. WAL mode, ``synchronous=FULL``; files written by older
versions open unchanged (missing columns and tables are added at open). The operations
themselves are ``JournalStore``'s (shared with the PostgreSQL backend).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from qfexbot.core.logs import get_logger, log_event
from qfexbot.money.journal.model import BackupInfo, JournalMark, JournalRolledBack
from qfexbot.money.journal.recovery import (
    JOURNAL_ID_KEY,
    RESTORE_ACCEPTED_KEY,
    copy_database,
    first_problem,
    mark_paths,
    read_marks,
    update_mark,
    write_mark,
)
from qfexbot.money.journal.store import (
    ADDED_COLUMNS,
    INDEXES_ON_ADDED,
    JournalStore,
    schema,
)

__all__ = ["SqliteStore"]

_log = get_logger("qfexbot.money.journal")

_SCHEMA = (
    schema(real="REAL", serial="INTEGER PRIMARY KEY AUTOINCREMENT", rowid="", added=False)
    + """
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END;
"""
)
"""The tables as the first release wrote them (a file written then opens unchanged), the
triggers; ``_migrate`` adds ``ADDED_COLUMNS`` and the indexes on them."""


class SqliteStore(JournalStore):
    """Synchronous SQLite journal store; one instance is used by one thread only.

    ``SqliteJournal`` runs one of these on its worker thread; the CLI uses one directly (no
    event loop there). Each method is one transaction, committed before it returns;
    ``BEGIN IMMEDIATE`` takes the file's write lock, so reads inside a write need no row locks.
    """

    _BEGIN = "BEGIN IMMEDIATE"

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._db.close()

    def _migrate(self) -> None:
        """Add the columns a file written by an older version lacks (tables: ``_SCHEMA``)."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(entries)")}
        for name, kind in ADDED_COLUMNS:
            if name not in have:
                self._db.execute(f"ALTER TABLE entries ADD COLUMN {name} {kind}")
        for index in INDEXES_ON_ADDED:
            self._db.execute(index)

    def _in_transaction(self) -> bool:
        return self._db.in_transaction

    def heal(self) -> None:
        """Nothing to do: a file connection is not lost."""

    def _serialise_budget(self, db: sqlite3.Connection, owner: str) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already lets one writer in at a time."""

    # -- identity, high-water mark and backup (see ``JournalMark``) --------------------------

    _marks: tuple[Path, ...] = ()
    """Mark files rewritten after every commit once ``check_continuity`` has passed."""
    _marked_id: str = ""
    _mark_failed: bool = False

    def identity(self) -> JournalMark | None:
        """This file's journal id and last audit-event sequence number; None if it has no id."""
        journal_id = self.get_meta(JOURNAL_ID_KEY)
        if journal_id is None:
            return None
        return JournalMark(journal_id, self.last_seq(), self._clock())

    def check_continuity(self, state_dir: str | Path | None = None) -> JournalMark:
        """Refuse a journal older than the last state seen; then keep the mark current.

        A journal without an id and no mark anywhere is new: it gets an id. Otherwise the
        file must carry the mark's journal id and at least its event sequence number.
        ``state_dir``: where the second mark lives (``runtime.state_dir``; see ``mark_paths``).

        Raises:
          JournalRolledBack: the file is an older copy, another journal, or has lost its id.
          OSError: a mark file cannot be written (qfexbot must not run without its mark).
        """
        marks = mark_paths(self.path, state_dir)
        found = self.identity()
        seen, problem = first_problem(read_marks(marks), found, self.last_seq())
        if seen is not None:
            raise JournalRolledBack(self.path, seen, problem)
        if found is None:
            self._new_identity()
            found = self.identity()
            assert found is not None
        write_mark(marks, found)
        self._marks, self._marked_id = marks, found.journal_id
        return found

    def accept_restore(self, reason: str, by: str, state_dir: str | Path | None = None) -> str:
        """Make this file the reference after an operator checked it (``accept-restore``).

        Records the acceptance in the meta table (key ``journal.restore_accepted.<time>``) and
        rewrites the mark. Returns what was accepted, for the operator.
        """
        marks = mark_paths(self.path, state_dir)
        found = self.identity()
        seen, problem = first_problem(read_marks(marks), found, self.last_seq())
        if seen is None:
            return f"nothing to accept: journal {self.path} continues the last state seen"
        if found is None:
            self._new_identity()
        now = self._clock()
        record = {
            "by": by, "reason": reason, "problem": problem, "seen_journal_id": seen.journal_id,
            "seen_seq": seen.seq, "seen_at": seen.at, "found_seq": self.last_seq(),
        }  # fmt: skip
        key = f"{RESTORE_ACCEPTED_KEY}.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}"
        self.set_meta(key, json.dumps(record, sort_keys=True), f"accepted by {by}: {reason}")
        accepted = self.identity()
        assert accepted is not None
        write_mark(marks, accepted)
        return (
            f"journal {self.path} accepted as the reference (journal id {accepted.journal_id}, "
            f"last event {accepted.seq}; before: {problem}); recorded in its meta as {key}"
        )

    def backup(self, dest: str | Path, *, overwrite: bool = False) -> BackupInfo:
        """A consistent online copy of the journal at ``dest`` (see ``copy_database``)."""
        return copy_database(self._db, self.path, dest, overwrite=overwrite)

    def _new_identity(self) -> None:
        self.set_meta(JOURNAL_ID_KEY, str(uuid.uuid4()), "journal identity, for rollback checks")

    def _after_commit(self) -> None:
        """Move the mark up to the newest event (after a commit, so it never runs ahead).

        A mark that cannot be written is logged once and does not fail the committed write:
        detection then works from the last mark written (older, so no false alarm).
        """
        if not self._marks:
            return
        try:
            update_mark(self._marks, JournalMark(self._marked_id, self.last_seq(), self._clock()))
        except OSError as exc:
            if not self._mark_failed:
                self._mark_failed = True
                log_event(
                    _log,
                    logging.ERROR,
                    "journal mark cannot be written: a later restore "
                    "of an older journal copy may go unnoticed",
                    journal=str(self.path),
                    error=str(exc),
                )
