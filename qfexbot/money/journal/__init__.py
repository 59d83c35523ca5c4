"""The action journal: every transfer, order and refusal, written before it happens, as an audit trail.

A transfer's row is committed *before* its request is sent, so after any crash we know which
transfers may have moved money. States of a transfer::

    pending ──> sent ──> done
       │          ├────> failed
       │          └────> unknown ──> done | failed   (resolve: reconciliation or operator)
       ├──> failed    (definitely not sent)
       └──> unknown   (crashed or cancelled around the send)

A ``pending`` or ``sent`` row that nobody is working on (found at start-up or by reconciliation)
must be treated as ``unknown``: the request may or may not have reached the venue.
Every state change is also appended to the ``events`` table (append-only, enforced by triggers).

``Journal`` is the interface callers use; ``SqliteJournal`` is the SQLite backend (WAL,
``synchronous=FULL``), doing all database work on one dedicated thread that owns the connection,
so the trio event loop never waits on the disk. A PostgreSQL backend implements the same
``Journal`` protocol. Secrets are never written: callers pass ids, amounts and reasons only, and
``data`` must be JSON made of plain values (a ``Secret`` is rejected, not stringified).

The ``meta`` table holds small durable facts keyed by name (``get_meta``/``set_meta``), e.g.
whether a venue has been seen to reflect transfers in its ``deposit`` balance (see
``qfexbot.money.transfers``). Files written by older versions open unchanged: missing columns and
tables are added at open.

Two tables serve the money edges of ``qfexbot.money.transfers``: ``holds`` (durable per-account pauses
of money movement that only an operator releases) and ``watches`` (transfers reconciled "not
applied", watched for a late landing from the deposits read at that verdict).

Identity. A transfer row carries ``owner``: the venue user id the accounts belong to (QFEX
subaccount ids are UUIDs under one user id). ``venue`` is the configured venue *name*, kept for
display and compatibility only; everything that decides whether money may move — blocking,
reconciliation, ``min_interval`` and the rolling 24 h total — is keyed by ``(owner, account
ids)``, so renaming a venue, an account alias or a bot changes nothing. Rows written before the
column existed have ``owner`` NULL: we cannot know their user id, so they match by account ids
alone, under *every* owner (an old unresolved row blocks its accounts whatever the venue is
called now, and counts against every limit on its pair) — never forgotten, at worst too strict.

The rolling 24 h budget is checked and the intent inserted in one transaction
(``record_intent(..., budget=DailyBudget(...))``), so two concurrent transfers can never both
pass a budget only one of them fits in.

``SqliteStore.backup`` makes a consistent online copy (SQLite's backup API; a file copy of a
live WAL journal is not a backup). ``check_continuity`` refuses a journal older than the last
state seen (``JournalMark``: journal id + newest audit-event sequence number, kept beside the
journal and in the state directory) until an operator accepts it (``accept_restore``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

import outcome
import trio

from qfexbot.core.logs import get_logger, log_event

__all__ = [
    "UNRESOLVED",
    "BackupInfo",
    "BudgetExceeded",
    "DailyBudget",
    "Entry",
    "EntryKind",
    "EntryNotFound",
    "InvalidTransition",
    "Journal",
    "JournalClosed",
    "JournalMark",
    "JournalRolledBack",
    "SqliteJournal",
    "SqliteStore",
    "TransferState",
]

T = TypeVar("T")


class EntryKind:
    """Values of ``Entry.kind``."""

    TRANSFER = "transfer"
    ORDER = "order"
    CANCEL = "cancel"
    REFUSAL = "refusal"
    DRY_RUN = "dry_run"


class TransferState:
    """Values of ``Entry.state`` (transfers use the first five; the rest are final records)."""

    PENDING = "pending"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"
    UNKNOWN = "unknown"
    REFUSED = "refused"  # kind refusal
    DRY_RUN = "dry_run"  # kind dry_run: "would transfer"
    SUBMITTED = "submitted"  # kind order / cancel: handed to the venue


UNRESOLVED: tuple[str, ...] = (TransferState.PENDING, TransferState.SENT, TransferState.UNKNOWN)
"""Transfer states in which the money may or may not have moved."""

# Transfers that may have been applied: these count against the rolling daily limit.
_POSSIBLY_APPLIED = (*UNRESOLVED, TransferState.DONE)

_WATCH_STATES = ("watching", "landed", "expired", "closed")
"""A late-landing watch: still watching; saw the landing; ran its time; or closed because
its entry was settled some other way (an operator)."""

_TRANSITIONS: dict[str, frozenset[str]] = {
    TransferState.PENDING: frozenset(
        {TransferState.SENT, TransferState.FAILED, TransferState.UNKNOWN}
    ),
    TransferState.SENT: frozenset(
        {TransferState.DONE, TransferState.FAILED, TransferState.UNKNOWN}
    ),
    TransferState.UNKNOWN: frozenset({TransferState.DONE, TransferState.FAILED}),
}


class InvalidTransition(ValueError):
    """A state change the transfer state machine does not allow (e.g. done -> failed)."""


class EntryNotFound(KeyError):
    """No journal entry has this id."""


class JournalClosed(RuntimeError):
    """The journal was used after ``close()``."""


class JournalLocked(RuntimeError):
    """Another process holds this journal: one running qfexbot per journal file."""


class BudgetExceeded(Exception):
    """``record_intent`` refused: the transfer would take the rolling 24 h total over its limit.

    ``spent`` is what the window already holds (possibly applied transfers), ``limit`` the limit.
    Nothing was written.
    """

    def __init__(self, spent: Decimal, limit: Decimal, amount: Decimal) -> None:
        super().__init__(
            f"amount {amount} would bring the rolling 24 h total to {spent + amount}, "
            f"over max_daily {limit} (already {spent} in the last 24 h)"
        )
        self.spent, self.limit, self.amount = spent, limit, amount


@dataclass(frozen=True, slots=True)
class DailyBudget:
    """The rolling-window limit a transfer intent must fit in, checked atomically with its insert.

    Counted: transfer rows of ``owner`` (and ownerless legacy rows) created at or after ``since``
    that may have moved money (pending, sent, unknown, done) whose unordered account pair is in
    ``pairs`` (sets of two account ids; None: every pair). Which bot wrote them does not matter.
    """

    limit: Decimal
    since: float
    pairs: frozenset[frozenset[str]] | None


def _lock_path(path: Path) -> Path:
    # Keyed by the real path: a symlink (or a relative path) to the journal finds the same lock.
    real = Path(os.path.realpath(path))
    return real.with_name(real.name + ".lock")


def acquire_journal_lock(path: str | Path) -> int:
    """Take the journal's exclusive lock (a ``.lock`` file beside it) and return its fd.

    Two processes moving money from one journal would each reconcile the other's in-flight
    transfers as doubtful and act independently; the lock makes the second one refuse to start.
    Closing the fd (or the process dying, even by SIGKILL) releases it.

    Raises:
      JournalLocked: another process holds it (its pid is in the message).
    """
    lock = _lock_path(Path(path))
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise JournalLocked(
            f"journal {path} is in use by another qfexbot process (pid {holder}); "
            "one running qfexbot per journal"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
    return fd


def journal_holder(path: str | Path) -> str | None:
    """The pid of the running process holding the journal, or None if none holds it."""
    lock = _lock_path(Path(path))
    if not lock.exists():
        return None
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
    finally:
        os.close(fd)
    return None


@dataclass(frozen=True, slots=True)
class Entry:
    """One journal row. ``amount`` is exact; ``src_before``/``dst_before`` are the available
    balances and ``*_deposit_before`` the ``deposit`` balances read just before the transfer was
    sent (the evidence reconciliation compares against; None when not read)."""

    id: str
    kind: str
    bot: str
    plugin: str
    venue: str
    src: str | None
    dst: str | None
    amount: Decimal | None
    reason: str
    created_at: float
    updated_at: float
    state: str
    detail: str = ""
    attempts: int = 0
    sent_at: float | None = None
    resolved_by: str | None = None
    src_before: Decimal | None = None
    dst_before: Decimal | None = None
    src_deposit_before: Decimal | None = None
    dst_deposit_before: Decimal | None = None
    data: Mapping[str, Any] | None = field(default=None, compare=False)
    owner: str | None = None
    """The venue user id the accounts belong to; None on rows written before it was recorded."""

    @property
    def unresolved(self) -> bool:
        """True for a transfer whose money may or may not have moved."""
        return self.kind == EntryKind.TRANSFER and self.state in UNRESOLVED

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (Decimals as strings)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "bot": self.bot,
            "plugin": self.plugin,
            "venue": self.venue,
            "src": self.src,
            "dst": self.dst,
            "amount": None if self.amount is None else str(self.amount),
            "reason": self.reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "state": self.state,
            "detail": self.detail,
            "attempts": self.attempts,
            "sent_at": self.sent_at,
            "resolved_by": self.resolved_by,
            "src_before": None if self.src_before is None else str(self.src_before),
            "dst_before": None if self.dst_before is None else str(self.dst_before),
            "src_deposit_before": _str_or_none(self.src_deposit_before),
            "dst_deposit_before": _str_or_none(self.dst_deposit_before),
            "data": None if self.data is None else dict(self.data),
            "owner": self.owner,
        }


@dataclass(frozen=True, slots=True)
class Hold:
    """A durable pause of money movement on one account, until an operator releases it."""

    seq: int
    venue: str
    account: str
    code: str
    reason: str
    entry_id: str | None
    created_at: float
    released_at: float | None = None
    """When an operator released it (None: still active)."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "seq": self.seq,
            "venue": self.venue,
            "account": self.account,
            "code": self.code,
            "reason": self.reason,
            "entry_id": self.entry_id,
            "created_at": self.created_at,
            "released_at": self.released_at,
        }


@dataclass(frozen=True, slots=True)
class Watch:
    """A transfer reconciled "not applied", watched for a late landing from its deposits then."""

    entry_id: str
    venue: str
    src: str
    dst: str
    amount: Decimal
    src_deposit: Decimal
    dst_deposit: Decimal
    started_at: float
    last_src: Decimal
    last_dst: Decimal


@runtime_checkable
class Journal(Protocol):
    """What callers need from a journal backend. Every write is committed before it returns."""

    async def record_intent(
        self,
        *,
        bot: str,
        plugin: str,
        venue: str,
        src: str,
        dst: str,
        amount: Decimal,
        reason: str,
        src_before: Decimal | None = None,
        dst_before: Decimal | None = None,
        src_deposit_before: Decimal | None = None,
        dst_deposit_before: Decimal | None = None,
        owner: str | None = None,
        budget: DailyBudget | None = None,
    ) -> Entry:
        """Write a ``pending`` transfer row (call before sending the request).

        ``owner`` is the venue user id of the accounts. With ``budget``, the window sum is
        checked and the row inserted in one transaction (a backend shared by several processes
        must serialise it, e.g. PostgreSQL SERIALIZABLE or an advisory lock on ``owner``).

        Raises:
          BudgetExceeded: the transfer does not fit in ``budget``; nothing was written.
        """
        ...

    async def get_meta(self, key: str) -> str | None:
        """The value stored under ``key`` in the meta table, or None."""
        ...

    async def set_meta(self, key: str, value: str, detail: str = "") -> None:
        """Store ``value`` under ``key`` (replacing any earlier value), with a note why."""
        ...

    async def mark_sent(self, entry_id: str) -> Entry:
        """pending -> sent (the request is about to be handed to the transport)."""
        ...

    async def mark_done(self, entry_id: str, detail: str = "") -> Entry:
        """sent -> done (the venue confirmed)."""
        ...

    async def mark_failed(self, entry_id: str, detail: str) -> Entry:
        """pending|sent -> failed (definitely not applied; ``detail`` says why)."""
        ...

    async def mark_unknown(self, entry_id: str, detail: str) -> Entry:
        """pending|sent -> unknown (may have been applied)."""
        ...

    async def resolve(
        self,
        entry_id: str,
        applied: bool,
        by: str,
        detail: str = "",
        watch_from: tuple[Decimal, Decimal] | None = None,
    ) -> Entry:
        """pending|sent|unknown -> done (applied) or failed, recording who decided.

        "Not applied" also starts the late-landing watch in the same transaction, from the
        deposits ``watch_from`` (src, dst), else from the deposits recorded at intent (no
        watch if neither is known): whoever decided, a late landing is never missed.
        """
        ...

    async def annotate(self, entry_id: str, detail: str) -> Entry:
        """Replace the detail and add an audit event without changing state."""
        ...

    async def get(self, entry_id: str) -> Entry | None:
        """The entry, or None."""
        ...

    async def list(
        self, state: str | None = None, limit: int = 100, kind: str | None = None
    ) -> list[Entry]:
        """Newest first."""
        ...

    async def unresolved(
        self,
        venue: str | None = None,
        *,
        owner: str | None = None,
    ) -> list[Entry]:
        """Transfers in pending/sent/unknown, oldest first.

        With ``owner`` (reconciliation): that user id's rows whatever their venue name, plus
        ownerless (legacy) rows whose venue name is ``venue`` (all of them when it is None): a
        legacy row is only reconciled with the balances of the venue that wrote it. Without
        ``owner``: every row, or those whose venue name is ``venue``.
        """
        ...

    async def unresolved_for_pair(self, venue: str, a: str, b: str) -> list[Entry]:
        """Unresolved transfers between ``a`` and ``b`` in either direction."""
        ...

    async def unresolved_for_accounts(
        self, venue: str, accounts: Iterable[str], *, owner: str | None = None
    ) -> list[Entry]:
        """Unresolved transfers touching any of ``accounts`` (as src or dst); with ``owner``,
        those of that user id or ownerless, whatever their venue name."""
        ...

    async def transfers_since(self, bot: str, since: float) -> list[Entry]:
        """Transfers of ``bot`` created at or after ``since`` that may have moved money
        (pending, sent, unknown, done)."""
        ...

    async def last_transfer_at(
        self, venue: str, a: str, b: str, *, owner: str | None = None
    ) -> float | None:
        """Creation time of the newest transfer row on the pair (either direction, any state);
        with ``owner``, rows of that user id or ownerless, whatever their venue name."""
        ...

    async def window_transfers(
        self, owner: str, pairs: frozenset[frozenset[str]] | None, since: float
    ) -> list[Entry]:
        """The transfers ``DailyBudget(limit, since, pairs)`` of ``owner`` counts (see there)."""
        ...

    async def events(self, entry_id: str) -> list[dict[str, Any]]:
        """The audit trail of one entry, oldest first."""
        ...

    async def record_refusal(
        self,
        *,
        bot: str,
        plugin: str,
        venue: str,
        action: str,
        code: str,
        detail: str,
        reason: str = "",
        src: str | None = None,
        dst: str | None = None,
        amount: Decimal | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Entry:
        """An action refused by policy (state ``refused``)."""
        ...

    async def record_dry_run(
        self,
        *,
        bot: str,
        plugin: str,
        venue: str,
        detail: str,
        reason: str = "",
        src: str | None = None,
        dst: str | None = None,
        amount: Decimal | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Entry:
        """An action that would have been taken (state ``dry_run``); nothing was sent."""
        ...

    async def record_order(
        self,
        *,
        bot: str,
        plugin: str,
        venue: str,
        account: str,
        data: Mapping[str, Any],
        kind: str = EntryKind.ORDER,
        reason: str = "",
        detail: str = "",
    ) -> Entry:
        """An order or cancel command handed to the venue (state ``submitted``)."""
        ...

    async def close(self) -> None:
        """Finish pending writes and release the backend."""
        ...

    # -- account holds and the late-landing watch (see qfexbot.money.transfers) --------------------

    async def place_hold(
        self,
        venue: str,
        account: str,
        code: str,
        reason: str,
        entry_id: str | None = None,
        owner: str | None = None,
    ) -> Hold:
        """Pause all money movement on ``account`` (of venue user ``owner``) until an operator
        releases it (durable); ``venue`` is the display name of the venue table that placed it."""
        ...

    async def active_holds(self, venue: str | None = None, owner: str | None = None) -> list[Hold]:
        """Holds not released yet, oldest first (of ``owner`` when given: keyed by the venue
        user id, so a renamed venue table still sees them)."""
        ...

    async def release_holds(self, venue: str | None, account: str, by: str, note: str = "") -> int:
        """Release every active hold on ``account`` (of ``venue``; None: any); returns how many."""
        ...

    async def entry_holds(self, entry_id: str) -> list[Hold]:
        """Every hold ever placed because of ``entry_id``, released ones included, oldest
        first: a durable mark that reconciliation once could not explain its accounts."""
        ...

    async def watches(self, venue: str, owner: str | None = None) -> list[Watch]:
        """Active watches of ``venue`` (of venue user ``owner`` instead, when given), oldest
        first."""
        ...

    async def update_watch(
        self, entry_id: str, state: str, last_src: Decimal, last_dst: Decimal
    ) -> None:
        """Record a watch's state (``watching``, ``landed``, ``expired``, or ``closed``: the
        entry was settled some other way) and the unexplained deposit changes it saw last."""
        ...

    async def transfers_after(
        self, entry_id: str, venue: str, accounts: Iterable[str], owner: str | None = None
    ) -> list[Entry]:
        """Transfers of ``venue`` (of venue user ``owner`` instead, when given; rows without an
        owner match any) touching ``accounts`` written after ``entry_id`` (row order, not clock
        order: a clock step cannot reorder them)."""
        ...

    async def record_late_landing(
        self,
        entry_id: str,
        by: str,
        detail: str,
        venue: str,
        owner: str | None,
        last_src: Decimal,
        last_dst: Decimal,
    ) -> tuple[Entry, list[Hold]]:
        """One transaction: failed -> done (a transfer concluded "not applied" was later seen
        to land), a ``late_landing`` hold on both its accounts (unless one is active) and its
        watch marked ``landed``. Returns the entry and the holds it placed."""
        ...


# ---------------------------------------------------------------------------------------------
# SQLite backend: a synchronous store used by exactly one thread
# ---------------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    bot TEXT NOT NULL,
    plugin TEXT NOT NULL,
    venue TEXT NOT NULL,
    src TEXT,
    dst TEXT,
    amount TEXT,
    reason TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_at REAL,
    resolved_by TEXT CHECK (resolved_by IN ('reconcile', 'operator')),
    src_before TEXT,
    dst_before TEXT,
    data TEXT
);
CREATE INDEX IF NOT EXISTS entries_kind_state ON entries (kind, state);
CREATE INDEX IF NOT EXISTS entries_bot_created ON entries (bot, created_at);
CREATE INDEX IF NOT EXISTS entries_pair ON entries (venue, src, dst, created_at);
CREATE INDEX IF NOT EXISTS entries_created ON entries (created_at);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id TEXT NOT NULL REFERENCES entries (id),
    at REAL NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    by TEXT
);
CREATE INDEX IF NOT EXISTS events_entry ON events (entry_id, seq);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL
);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END;
CREATE TABLE IF NOT EXISTS holds (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    venue TEXT NOT NULL,
    owner TEXT,
    account TEXT NOT NULL,
    code TEXT NOT NULL,
    reason TEXT NOT NULL,
    entry_id TEXT,
    created_at REAL NOT NULL,
    released_at REAL,
    released_by TEXT,
    release_note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS holds_active ON holds (venue, account, released_at);
CREATE TABLE IF NOT EXISTS watches (
    entry_id TEXT PRIMARY KEY REFERENCES entries (id),
    venue TEXT NOT NULL,
    owner TEXT,
    src TEXT NOT NULL,
    dst TEXT NOT NULL,
    amount TEXT NOT NULL,
    src_deposit TEXT NOT NULL,
    dst_deposit TEXT NOT NULL,
    started_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'watching',
    last_src TEXT NOT NULL DEFAULT '0',
    last_dst TEXT NOT NULL DEFAULT '0',
    updated_at REAL NOT NULL
);
"""

_COLUMNS = (
    "id, kind, bot, plugin, venue, src, dst, amount, reason, created_at, updated_at, state, "
    "detail, attempts, sent_at, resolved_by, src_before, dst_before, data, "
    "src_deposit_before, dst_deposit_before, owner"
)

# Columns added after the first release: (name, type), added with ALTER TABLE when missing.
_ADDED_COLUMNS = (
    ("src_deposit_before", "TEXT"),
    ("dst_deposit_before", "TEXT"),
    ("owner", "TEXT"),
)


def _str_or_none(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _money(value: Decimal | int | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        raise TypeError("money must be Decimal, int or str, not float")
    return str(Decimal(value))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(
        f"journal data may hold only plain JSON values and Decimal, not {type(value).__name__}"
    )


def _row_to_entry(row: Sequence[Any]) -> Entry:
    return Entry(
        id=row[0],
        kind=row[1],
        bot=row[2],
        plugin=row[3],
        venue=row[4],
        src=row[5],
        dst=row[6],
        amount=_dec(row[7]),
        reason=row[8],
        created_at=row[9],
        updated_at=row[10],
        state=row[11],
        detail=row[12],
        attempts=row[13],
        sent_at=row[14],
        resolved_by=row[15],
        src_before=_dec(row[16]),
        dst_before=_dec(row[17]),
        data=None if row[18] is None else json.loads(row[18]),
        src_deposit_before=_dec(row[19]),
        dst_deposit_before=_dec(row[20]),
        owner=row[21],
    )


class SqliteStore:
    """Synchronous SQLite journal store; one instance is used by one thread only.

    ``SqliteJournal`` runs one of these on its worker thread; the CLI uses one directly (no
    event loop there). Each method is one transaction, committed before it returns.
    """

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
        for name, kind in _ADDED_COLUMNS:
            if name not in have:
                self._db.execute(f"ALTER TABLE entries ADD COLUMN {name} {kind}")
        # Pair lookups keyed by account ids whatever the venue name (min_interval).
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS entries_accounts ON entries (src, dst, created_at)"
        )

    # -- transactions ------------------------------------------------------------------------

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(self._db)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self._after_commit()
        return result

    def _fetch(self, db: sqlite3.Connection, entry_id: str) -> Entry:
        row = db.execute(f"SELECT {_COLUMNS} FROM entries WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            raise EntryNotFound(entry_id)
        return _row_to_entry(row)

    def _insert(
        self, db: sqlite3.Connection, values: dict[str, Any], by: str | None = None
    ) -> Entry:
        now = self._clock()
        values = {"id": str(uuid.uuid4()), "created_at": now, "updated_at": now, **values}
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        db.execute(f"INSERT INTO entries ({names}) VALUES ({marks})", tuple(values.values()))
        db.execute(
            "INSERT INTO events (entry_id, at, from_state, to_state, detail, by) VALUES (?, ?, NULL, ?, ?, ?)",
            (values["id"], now, values["state"], values.get("detail", ""), by),
        )
        return self._fetch(db, values["id"])

    def _transition(
        self,
        entry_id: str,
        to_state: str,
        detail: str | None,
        *,
        allowed_from: Iterable[str] | None = None,
        by: str | None = None,
    ) -> Entry:
        return self._write(
            lambda db: self._transition_in(
                db, entry_id, to_state, detail, allowed_from=allowed_from, by=by
            )
        )

    def _transition_in(
        self,
        db: sqlite3.Connection,
        entry_id: str,
        to_state: str,
        detail: str | None,
        *,
        allowed_from: Iterable[str] | None = None,
        by: str | None = None,
    ) -> Entry:
        """One state change and its audit event, inside the caller's transaction."""
        entry = self._fetch(db, entry_id)
        if entry.kind != EntryKind.TRANSFER:
            raise InvalidTransition(f"entry {entry_id} is a {entry.kind}, not a transfer")
        legal = _TRANSITIONS.get(entry.state, frozenset())
        if allowed_from is not None and entry.state not in allowed_from:
            legal = frozenset()
        if to_state not in legal:
            raise InvalidTransition(
                f"transfer {entry_id} cannot go from {entry.state} to {to_state}"
            )
        now = self._clock()
        sets = ["state = ?", "updated_at = ?"]
        params: list[Any] = [to_state, now]
        if detail is not None:
            sets.append("detail = ?")
            params.append(detail)
        if to_state == TransferState.SENT:
            sets += ["attempts = attempts + 1", "sent_at = ?"]
            params.append(now)
        if by is not None:
            sets.append("resolved_by = ?")
            params.append(by)
        db.execute(f"UPDATE entries SET {', '.join(sets)} WHERE id = ?", (*params, entry_id))
        db.execute(
            "INSERT INTO events (entry_id, at, from_state, to_state, detail, by) VALUES (?, ?, ?, ?, ?, ?)",
            (entry_id, now, entry.state, to_state, detail or "", by),
        )
        return self._fetch(db, entry_id)

    # -- writes ------------------------------------------------------------------------------

    def record_intent(
        self,
        *,
        bot: str,
        plugin: str,
        venue: str,
        src: str,
        dst: str,
        amount: Decimal,
        reason: str,
        src_before: Decimal | None = None,
        dst_before: Decimal | None = None,
        src_deposit_before: Decimal | None = None,
        dst_deposit_before: Decimal | None = None,
        owner: str | None = None,
        budget: DailyBudget | None = None,
    ) -> Entry:
        if Decimal(amount) <= 0:
            raise ValueError(f"transfer amount must be positive, got {amount}")
        if budget is not None and owner is None:
            raise ValueError("a budget is counted per owner: pass owner with budget")
        values = {
            "kind": EntryKind.TRANSFER,
            "bot": bot,
            "plugin": plugin,
            "venue": venue,
            "src": src,
            "dst": dst,
            "amount": _money(amount),
            "reason": reason,
            "state": TransferState.PENDING,
            "src_before": _money(src_before),
            "dst_before": _money(dst_before),
            "src_deposit_before": _money(src_deposit_before),
            "dst_deposit_before": _money(dst_deposit_before),
            "owner": owner,
        }

        def run(db: sqlite3.Connection) -> Entry:
            if budget is not None:
                assert owner is not None
                window = self._window(db, owner, budget.pairs, budget.since)
                spent = sum((e.amount or Decimal(0) for e in window), Decimal(0))
                if spent + Decimal(amount) > budget.limit:
                    raise BudgetExceeded(spent, budget.limit, Decimal(amount))
            return self._insert(db, values)

        # BEGIN IMMEDIATE: the window read and the insert are one write transaction.
        return self._write(run)

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str, detail: str = "") -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO meta (key, value, detail, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "detail = excluded.detail, updated_at = excluded.updated_at",
                (key, value, detail, self._clock()),
            )

        self._write(run)

    def mark_sent(self, entry_id: str) -> Entry:
        return self._transition(entry_id, TransferState.SENT, None)

    def mark_done(self, entry_id: str, detail: str = "") -> Entry:
        return self._transition(
            entry_id, TransferState.DONE, detail, allowed_from=(TransferState.SENT,)
        )

    def mark_failed(self, entry_id: str, detail: str) -> Entry:
        return self._transition(
            entry_id,
            TransferState.FAILED,
            detail,
            allowed_from=(TransferState.PENDING, TransferState.SENT),
        )

    def mark_unknown(self, entry_id: str, detail: str) -> Entry:
        return self._transition(entry_id, TransferState.UNKNOWN, detail)

    def resolve(
        self,
        entry_id: str,
        applied: bool,
        by: str,
        detail: str = "",
        watch_from: tuple[Decimal, Decimal] | None = None,
    ) -> Entry:
        if by not in ("reconcile", "operator"):
            raise ValueError(f"resolved_by must be 'reconcile' or 'operator', got {by!r}")

        def run(db: sqlite3.Connection) -> Entry:
            entry = self._fetch(db, entry_id)
            if entry.kind != EntryKind.TRANSFER or not entry.unresolved:
                raise InvalidTransition(
                    f"transfer {entry_id} is {entry.state}; only pending, sent or unknown can be "
                    f"resolved"
                )
            if entry.state != TransferState.UNKNOWN:
                # A pending/sent row being resolved means nobody is working on it: in doubt.
                self._transition_in(
                    db, entry_id, TransferState.UNKNOWN,
                    f"found {entry.state} at resolution: outcome unknown",
                )  # fmt: skip
            to_state = TransferState.DONE if applied else TransferState.FAILED
            text = detail or f"resolved by {by}: {'applied' if applied else 'not applied'}"
            resolved = self._transition_in(db, entry_id, to_state, text, by=by)
            baseline = watch_from or (entry.src_deposit_before, entry.dst_deposit_before)
            if not applied and None not in baseline:
                self._add_watch(db, resolved, baseline[0], baseline[1])  # type: ignore[arg-type]
            return resolved

        return self._write(run)

    def annotate(self, entry_id: str, detail: str) -> Entry:
        def run(db: sqlite3.Connection) -> Entry:
            entry = self._fetch(db, entry_id)
            now = self._clock()
            db.execute(
                "UPDATE entries SET detail = ?, updated_at = ? WHERE id = ?",
                (detail, now, entry_id),
            )
            db.execute(
                "INSERT INTO events (entry_id, at, from_state, to_state, detail, by) VALUES (?, ?, ?, ?, ?, NULL)",
                (entry_id, now, entry.state, entry.state, detail),
            )
            return self._fetch(db, entry_id)

        return self._write(run)

    def _record_final(
        self,
        kind: str,
        state: str,
        *,
        bot: str,
        plugin: str,
        venue: str,
        detail: str,
        reason: str,
        src: str | None,
        dst: str | None,
        amount: Decimal | None,
        data: Mapping[str, Any] | None,
    ) -> Entry:
        values = {
            "kind": kind,
            "bot": bot,
            "plugin": plugin,
            "venue": venue,
            "src": src,
            "dst": dst,
            "amount": _money(amount),
            "reason": reason,
            "state": state,
            "detail": detail,
            "data": None if data is None else json.dumps(dict(data), default=_json_default),
        }
        return self._write(lambda db: self._insert(db, values))

    def record_refusal(
        self,
        *,
        bot: str,
        plugin: str,
        venue: str,
        action: str,
        code: str,
        detail: str,
        reason: str = "",
        src: str | None = None,
        dst: str | None = None,
        amount: Decimal | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Entry:
        merged = {"action": action, "code": code, **(data or {})}
        return self._record_final(
            EntryKind.REFUSAL, TransferState.REFUSED, bot=bot, plugin=plugin, venue=venue,
            detail=detail, reason=reason, src=src, dst=dst, amount=amount, data=merged,
        )  # fmt: skip

    def record_dry_run(
        self,
        *,
        bot: str,
        plugin: str,
        venue: str,
        detail: str,
        reason: str = "",
        src: str | None = None,
        dst: str | None = None,
        amount: Decimal | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Entry:
        return self._record_final(
            EntryKind.DRY_RUN, TransferState.DRY_RUN, bot=bot, plugin=plugin, venue=venue,
            detail=detail, reason=reason, src=src, dst=dst, amount=amount, data=data,
        )  # fmt: skip

    def record_order(
        self,
        *,
        bot: str,
        plugin: str,
        venue: str,
        account: str,
        data: Mapping[str, Any],
        kind: str = EntryKind.ORDER,
        reason: str = "",
        detail: str = "",
    ) -> Entry:
        if kind not in (EntryKind.ORDER, EntryKind.CANCEL):
            raise ValueError(f"record_order kind must be 'order' or 'cancel', got {kind!r}")
        return self._record_final(
            kind, TransferState.SUBMITTED, bot=bot, plugin=plugin, venue=venue, detail=detail,
            reason=reason, src=account, dst=None, amount=None, data=data,
        )  # fmt: skip

    # -- reads -------------------------------------------------------------------------------

    def _select(
        self, where: str, params: Sequence[Any], order: str, limit: int | None = None
    ) -> list[Entry]:
        sql = f"SELECT {_COLUMNS} FROM entries WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_row_to_entry(row) for row in self._db.execute(sql, tuple(params))]

    def get(self, entry_id: str) -> Entry | None:
        rows = self._select("id = ?", (entry_id,), "id")
        return rows[0] if rows else None

    def list(
        self, state: str | None = None, limit: int = 100, kind: str | None = None
    ) -> list[Entry]:
        clauses, params = ["1 = 1"], []
        if state is not None:
            clauses.append("state = ?")
            params.append(state)
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        return self._select(" AND ".join(clauses), params, "created_at DESC, rowid DESC", limit)

    def unresolved(
        self,
        venue: str | None = None,
        *,
        owner: str | None = None,
    ) -> list[Entry]:
        where = f"kind = 'transfer' AND state IN ({', '.join('?' for _ in UNRESOLVED)})"
        params: list[Any] = list(UNRESOLVED)
        if owner is not None:
            rows = self._select(where + " AND (owner = ? OR owner IS NULL)",
                                (*params, owner), "created_at, rowid")  # fmt: skip
            return [e for e in rows if e.owner is not None or venue is None or e.venue == venue]
        if venue is not None:
            where += " AND venue = ?"
            params.append(venue)
        return self._select(where, params, "created_at, rowid")

    def unresolved_for_pair(self, venue: str, a: str, b: str) -> list[Entry]:
        return [e for e in self.unresolved(venue) if {e.src, e.dst} == {a, b}]

    def unresolved_for_accounts(
        self, venue: str, accounts: Iterable[str], *, owner: str | None = None
    ) -> list[Entry]:
        wanted = set(accounts)
        rows = self.unresolved(owner=owner) if owner is not None else self.unresolved(venue)
        return [e for e in rows if e.src in wanted or e.dst in wanted]

    def transfers_since(self, bot: str, since: float) -> list[Entry]:
        marks = ", ".join("?" for _ in _POSSIBLY_APPLIED)
        return self._select(
            f"kind = 'transfer' AND bot = ? AND created_at >= ? AND state IN ({marks})",
            (bot, since, *_POSSIBLY_APPLIED),
            "created_at, rowid",
        )

    def last_transfer_at(
        self, venue: str, a: str, b: str, *, owner: str | None = None
    ) -> float | None:
        if owner is not None:
            row = self._db.execute(
                "SELECT MAX(created_at) FROM entries WHERE kind = 'transfer' AND (owner = ? OR "
                "owner IS NULL) AND ((src = ? AND dst = ?) OR (src = ? AND dst = ?))",
                (owner, a, b, b, a),
            ).fetchone()
            return row[0]
        row = self._db.execute(
            "SELECT MAX(created_at) FROM entries WHERE kind = 'transfer' AND venue = ? "
            "AND ((src = ? AND dst = ?) OR (src = ? AND dst = ?))",
            (venue, a, b, b, a),
        ).fetchone()
        return row[0]

    def _window(
        self,
        db: sqlite3.Connection,
        owner: str,
        pairs: frozenset[frozenset[str]] | None,
        since: float,
    ) -> list[Entry]:
        # A row reconciled "not applied" and still watched may yet land: it counts too.
        marks = ", ".join("?" for _ in _POSSIBLY_APPLIED)
        sql = (
            f"SELECT {_COLUMNS} FROM entries WHERE kind = 'transfer' AND created_at >= ? "
            f"AND (state IN ({marks}) OR (state = 'failed' AND id IN "
            "(SELECT entry_id FROM watches WHERE state = 'watching'))) "
            "AND (owner = ? OR owner IS NULL) ORDER BY created_at, rowid"
        )
        rows = [_row_to_entry(r) for r in db.execute(sql, (since, *_POSSIBLY_APPLIED, owner))]
        return [e for e in rows if pairs is None or frozenset((e.src, e.dst)) in pairs]

    def window_transfers(
        self, owner: str, pairs: frozenset[frozenset[str]] | None, since: float
    ) -> list[Entry]:
        return self._window(self._db, owner, pairs, since)

    def events(self, entry_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT at, from_state, to_state, detail, by FROM events WHERE entry_id = ? ORDER BY seq",
            (entry_id,),
        )
        return [
            {"at": at, "from_state": f, "to_state": t, "detail": d, "by": by}
            for at, f, t, d, by in rows
        ]

    # -- account holds and the late-landing watch --------------------------------------------

    def place_hold(
        self,
        venue: str,
        account: str,
        code: str,
        reason: str,
        entry_id: str | None = None,
        owner: str | None = None,
    ) -> Hold:
        return self._write(
            lambda db: self._place_hold(db, venue, account, code, reason, entry_id, owner)
        )

    def _place_hold(
        self,
        db: sqlite3.Connection,
        venue: str,
        account: str,
        code: str,
        reason: str,
        entry_id: str | None,
        owner: str | None,
    ) -> Hold:
        now = self._clock()
        cursor = db.execute(
            "INSERT INTO holds (venue, owner, account, code, reason, entry_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (venue, owner or venue, account, code, reason, entry_id, now),
        )
        return Hold(int(cursor.lastrowid or 0), venue, account, code, reason, entry_id, now)

    def entry_holds(self, entry_id: str) -> list[Hold]:
        rows = self._db.execute(
            "SELECT seq, venue, account, code, reason, entry_id, created_at, released_at "
            "FROM holds WHERE entry_id = ? ORDER BY seq",
            (entry_id,),
        )
        return [Hold(*row) for row in rows]

    def active_holds(self, venue: str | None = None, owner: str | None = None) -> list[Hold]:
        sql = ("SELECT seq, venue, account, code, reason, entry_id, created_at FROM holds "
               "WHERE released_at IS NULL")  # fmt: skip
        params: tuple[Any, ...] = ()
        if owner is not None:
            sql += " AND (owner = ? OR owner IS NULL)"
            params = (owner,)
        elif venue is not None:
            sql += " AND venue = ?"
            params = (venue,)
        return [Hold(*row) for row in self._db.execute(sql + " ORDER BY seq", params)]

    def release_holds(self, venue: str | None, account: str, by: str, note: str = "") -> int:
        def run(db: sqlite3.Connection) -> int:
            sql = ("UPDATE holds SET released_at = ?, released_by = ?, release_note = ? "
                   "WHERE released_at IS NULL AND account = ?")  # fmt: skip
            params: list[Any] = [self._clock(), by, note, account]
            if venue is not None:
                sql += " AND venue = ?"
                params.append(venue)
            return db.execute(sql, tuple(params)).rowcount

        return self._write(run)

    def _add_watch(
        self, db: sqlite3.Connection, entry: Entry, src_deposit: Decimal, dst_deposit: Decimal
    ) -> None:
        """Watch ``entry`` (just concluded "not applied") for a late landing from these
        deposits, inside the caller's transaction."""
        now = self._clock()
        db.execute(
            "INSERT OR REPLACE INTO watches (entry_id, venue, owner, src, dst, amount, "
            "src_deposit, dst_deposit, started_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (entry.id, entry.venue, entry.owner or entry.venue, entry.src, entry.dst,
             _money(entry.amount), _money(src_deposit), _money(dst_deposit), now, now),
        )  # fmt: skip

    def watches(self, venue: str, owner: str | None = None) -> list[Watch]:
        key = "owner" if owner is not None else "venue"
        rows = self._db.execute(
            "SELECT entry_id, venue, src, dst, amount, src_deposit, dst_deposit, started_at, "
            f"last_src, last_dst FROM watches WHERE {key} = ? AND state = 'watching' "
            "ORDER BY started_at, rowid",
            (owner if owner is not None else venue,),
        )
        return [
            Watch(e, v, s, d, Decimal(a), Decimal(sd), Decimal(dd), at, Decimal(ls), Decimal(ld))
            for e, v, s, d, a, sd, dd, at, ls, ld in rows
        ]

    def update_watch(self, entry_id: str, state: str, last_src: Decimal, last_dst: Decimal) -> None:
        self._write(lambda db: self._update_watch(db, entry_id, state, last_src, last_dst))

    def _update_watch(
        self,
        db: sqlite3.Connection,
        entry_id: str,
        state: str,
        last_src: Decimal,
        last_dst: Decimal,
    ) -> None:
        if state not in _WATCH_STATES:
            raise ValueError(
                f"watch state must be one of {', '.join(_WATCH_STATES)}, got {state!r}"
            )
        db.execute(
            "UPDATE watches SET state = ?, last_src = ?, last_dst = ?, updated_at = ? "
            "WHERE entry_id = ?",
            (state, _money(last_src), _money(last_dst), self._clock(), entry_id),
        )

    def transfers_after(
        self, entry_id: str, venue: str, accounts: Iterable[str], owner: str | None = None
    ) -> list[Entry]:
        wanted = tuple(accounts)
        marks = ", ".join("?" for _ in wanted)
        scope = "venue = ?" if owner is None else "(owner = ? OR owner IS NULL)"
        return self._select(
            f"kind = 'transfer' AND {scope} AND rowid > (SELECT rowid FROM entries WHERE id = ?) "
            f"AND (src IN ({marks}) OR dst IN ({marks}))",
            (venue if owner is None else owner, entry_id, *wanted, *wanted),
            "rowid",
        )

    def record_late_landing(
        self,
        entry_id: str,
        by: str,
        detail: str,
        venue: str,
        owner: str | None,
        last_src: Decimal,
        last_dst: Decimal,
    ) -> tuple[Entry, list[Hold]]:
        if by not in ("reconcile", "operator"):
            raise ValueError(f"resolved_by must be 'reconcile' or 'operator', got {by!r}")

        def run(db: sqlite3.Connection) -> tuple[Entry, list[Hold]]:
            entry = self._fetch(db, entry_id)
            if entry.kind != EntryKind.TRANSFER or entry.state != TransferState.FAILED:
                raise InvalidTransition(
                    f"transfer {entry_id} is {entry.state}; only a failed transfer can be "
                    f"re-marked applied"
                )
            now = self._clock()
            db.execute(
                "UPDATE entries SET state = ?, updated_at = ?, detail = ?, resolved_by = ? "
                "WHERE id = ?",
                (TransferState.DONE, now, detail, by, entry_id),
            )
            db.execute(
                "INSERT INTO events (entry_id, at, from_state, to_state, detail, by) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (entry_id, now, TransferState.FAILED, TransferState.DONE, detail, by),
            )
            active = {(h.account, h.code) for h in self._entry_active_holds(db, entry_id)}
            placed = [
                self._place_hold(db, venue, account, "late_landing", detail, entry_id, owner)
                for account in dict.fromkeys((entry.src or "", entry.dst or ""))
                if (account, "late_landing") not in active
            ]
            self._update_watch(db, entry_id, "landed", last_src, last_dst)
            return self._fetch(db, entry_id), placed

        return self._write(run)

    def _entry_active_holds(self, db: sqlite3.Connection, entry_id: str) -> list[Hold]:
        rows = db.execute(
            "SELECT seq, venue, account, code, reason, entry_id, created_at, released_at "
            "FROM holds WHERE entry_id = ? AND released_at IS NULL ORDER BY seq",
            (entry_id,),
        )
        return [Hold(*row) for row in rows]

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

    def last_seq(self) -> int:
        """The sequence number of the newest audit event (0 for an empty journal)."""
        return self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]

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
        seen, problem = _first_problem(read_marks(marks), found, self.last_seq())
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
        seen, problem = _first_problem(read_marks(marks), found, self.last_seq())
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
        """A consistent copy of the journal at ``dest`` (mode 0600), taken online.

        Uses SQLite's backup API from this connection, so it sees one committed snapshot even
        while another process writes; the copy is one self-contained file (not WAL), checked
        with ``integrity_check``, then moved into place. A plain file copy of a live WAL journal
        is *not* a backup: its commits may still be in ``-wal``.

        Raises:
          FileExistsError: ``dest`` exists and ``overwrite`` is false.
          ValueError: ``dest`` is the journal itself.
          sqlite3.Error, OSError: the copy could not be written (nothing is left at ``dest``).
        """
        dest = Path(dest)
        if dest.resolve() == self.path.resolve():
            raise ValueError(f"backup target {dest} is the journal itself")
        if dest.exists() and not overwrite:
            raise FileExistsError(f"{dest} exists; pass --force to overwrite it")
        partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        os.chmod(partial, 0o600)
        try:
            copy = sqlite3.connect(partial, isolation_level=None)
            try:
                self._db.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")
                status = copy.execute("PRAGMA integrity_check").fetchone()[0]
                if status != "ok":
                    raise sqlite3.DatabaseError(f"backup failed integrity_check: {status}")
                info = _backup_info(copy, dest)
            finally:
                copy.close()
            _fsync_path(partial)
            if overwrite:
                os.replace(partial, dest)
            else:
                os.link(partial, dest)  # fails if dest appeared meanwhile: never overwrite
                os.unlink(partial)
            _fsync_path(dest.parent)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return info

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


# ---------------------------------------------------------------------------------------------
# The async facade: one worker thread owns the store
# ---------------------------------------------------------------------------------------------

_STOP = object()


class SqliteJournal:
    """The SQLite ``Journal``: async methods, all database work on one dedicated thread.

    Use ``async with await SqliteJournal.open(path) as journal`` (or call ``close()``). A call
    that was submitted always completes on the worker thread and its result is awaited even if
    the caller is cancelled meanwhile (the cancellation is delivered at the caller's next
    checkpoint), so a committed write is never silently lost to its caller.

    Args:
      path: the SQLite file (parent directories are created).
      clock: wall-clock seconds for ``created_at``/``updated_at`` (tests inject one).

    Raises:
      sqlite3.Error: from ``open()`` if the file cannot be opened or migrated.
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self._lock_fd: int | None = None
        self.path = Path(path)
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, args=(clock,), name=f"qfexbot-journal:{self.path.name}", daemon=True
        )
        self._thread.start()

    @classmethod
    async def open(
        cls, path: str | Path, *, clock: Callable[[], float] = time.time
    ) -> SqliteJournal:
        """Create the journal and wait until the file is open and migrated."""
        lock_fd = acquire_journal_lock(path)
        try:
            journal = cls(path, clock=clock)
        except BaseException:
            os.close(lock_fd)
            raise
        journal._lock_fd = lock_fd
        await trio.to_thread.run_sync(journal._opened.wait)
        if journal._open_error is not None:
            await journal.close()
            raise journal._open_error
        return journal

    def _run(self, clock: Callable[[], float]) -> None:
        try:
            store = SqliteStore(self.path, clock=clock)
        except BaseException as exc:
            self._open_error = exc
            self._opened.set()
            store = None
        else:
            self._opened.set()
        try:
            while True:
                job = self._jobs.get()
                if job is _STOP:
                    return
                job(store)
        finally:
            if store is not None:
                store.close()

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise JournalClosed(f"journal {self.path} is closed")
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        box: list[outcome.Outcome[Any]] = []

        def job(store: SqliteStore | None) -> None:
            if store is None:
                box.append(
                    outcome.Error(
                        JournalClosed(f"journal {self.path} failed to open: {self._open_error!r}")
                    )
                )
            else:
                box.append(outcome.capture(getattr(store, method), *args, **kwargs))
            try:
                token.run_sync_soon(done.set)
            except trio.RunFinishedError:
                pass

        self._jobs.put(job)
        with trio.CancelScope(shield=True):
            await done.wait()
        return box[0].unwrap()

    async def close(self) -> None:
        """Finish queued work, close the connection and join the worker thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(_STOP)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._thread.join)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- Journal protocol --------------------------------------------------------------------

    async def record_intent(
        self,
        *,
        bot: str,
        plugin: str,
        venue: str,
        src: str,
        dst: str,
        amount: Decimal,
        reason: str,
        src_before: Decimal | None = None,
        dst_before: Decimal | None = None,
        src_deposit_before: Decimal | None = None,
        dst_deposit_before: Decimal | None = None,
        owner: str | None = None,
        budget: DailyBudget | None = None,
    ) -> Entry:
        """See ``Journal.record_intent``."""
        return await self._call(
            "record_intent", bot=bot, plugin=plugin, venue=venue, src=src, dst=dst, amount=amount,
            reason=reason, src_before=src_before, dst_before=dst_before,
            src_deposit_before=src_deposit_before, dst_deposit_before=dst_deposit_before,
            owner=owner, budget=budget,
        )  # fmt: skip

    async def get_meta(self, key: str) -> str | None:
        """See ``Journal.get_meta``."""
        return await self._call("get_meta", key)

    async def set_meta(self, key: str, value: str, detail: str = "") -> None:
        """See ``Journal.set_meta``."""
        await self._call("set_meta", key, value, detail)

    async def mark_sent(self, entry_id: str) -> Entry:
        """See ``Journal.mark_sent``."""
        return await self._call("mark_sent", entry_id)

    async def mark_done(self, entry_id: str, detail: str = "") -> Entry:
        """See ``Journal.mark_done``."""
        return await self._call("mark_done", entry_id, detail)

    async def mark_failed(self, entry_id: str, detail: str) -> Entry:
        """See ``Journal.mark_failed``."""
        return await self._call("mark_failed", entry_id, detail)

    async def mark_unknown(self, entry_id: str, detail: str) -> Entry:
        """See ``Journal.mark_unknown``."""
        return await self._call("mark_unknown", entry_id, detail)

    async def resolve(
        self,
        entry_id: str,
        applied: bool,
        by: str,
        detail: str = "",
        watch_from: tuple[Decimal, Decimal] | None = None,
    ) -> Entry:
        """See ``Journal.resolve``."""
        return await self._call("resolve", entry_id, applied, by, detail, watch_from)

    async def annotate(self, entry_id: str, detail: str) -> Entry:
        """See ``Journal.annotate``."""
        return await self._call("annotate", entry_id, detail)

    async def get(self, entry_id: str) -> Entry | None:
        """See ``Journal.get``."""
        return await self._call("get", entry_id)

    async def list(
        self, state: str | None = None, limit: int = 100, kind: str | None = None
    ) -> list[Entry]:
        """See ``Journal.list``."""
        return await self._call("list", state, limit, kind)

    async def unresolved(
        self,
        venue: str | None = None,
        *,
        owner: str | None = None,
    ) -> list[Entry]:
        """See ``Journal.unresolved``."""
        return await self._call("unresolved", venue, owner=owner)

    async def unresolved_for_pair(self, venue: str, a: str, b: str) -> list[Entry]:
        """See ``Journal.unresolved_for_pair``."""
        return await self._call("unresolved_for_pair", venue, a, b)

    async def unresolved_for_accounts(
        self, venue: str, accounts: Iterable[str], *, owner: str | None = None
    ) -> list[Entry]:
        """See ``Journal.unresolved_for_accounts``."""
        return await self._call("unresolved_for_accounts", venue, tuple(accounts), owner=owner)

    async def transfers_since(self, bot: str, since: float) -> list[Entry]:
        """See ``Journal.transfers_since``."""
        return await self._call("transfers_since", bot, since)

    async def last_transfer_at(
        self, venue: str, a: str, b: str, *, owner: str | None = None
    ) -> float | None:
        """See ``Journal.last_transfer_at``."""
        return await self._call("last_transfer_at", venue, a, b, owner=owner)

    async def window_transfers(
        self, owner: str, pairs: frozenset[frozenset[str]] | None, since: float
    ) -> list[Entry]:
        """See ``Journal.window_transfers``."""
        return await self._call("window_transfers", owner, pairs, since)

    async def events(self, entry_id: str) -> list[dict[str, Any]]:
        """See ``Journal.events``."""
        return await self._call("events", entry_id)

    async def record_refusal(
        self,
        *,
        bot: str,
        plugin: str,
        venue: str,
        action: str,
        code: str,
        detail: str,
        reason: str = "",
        src: str | None = None,
        dst: str | None = None,
        amount: Decimal | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Entry:
        """See ``Journal.record_refusal``."""
        return await self._call(
            "record_refusal", bot=bot, plugin=plugin, venue=venue, action=action, code=code,
            detail=detail, reason=reason, src=src, dst=dst, amount=amount, data=data,
        )  # fmt: skip

    async def record_dry_run(
        self,
        *,
        bot: str,
        plugin: str,
        venue: str,
        detail: str,
        reason: str = "",
        src: str | None = None,
        dst: str | None = None,
        amount: Decimal | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Entry:
        """See ``Journal.record_dry_run``."""
        return await self._call(
            "record_dry_run", bot=bot, plugin=plugin, venue=venue, detail=detail, reason=reason,
            src=src, dst=dst, amount=amount, data=data,
        )  # fmt: skip

    async def record_order(
        self,
        *,
        bot: str,
        plugin: str,
        venue: str,
        account: str,
        data: Mapping[str, Any],
        kind: str = EntryKind.ORDER,
        reason: str = "",
        detail: str = "",
    ) -> Entry:
        """See ``Journal.record_order``."""
        return await self._call(
            "record_order", bot=bot, plugin=plugin, venue=venue, account=account, data=data,
            kind=kind, reason=reason, detail=detail,
        )  # fmt: skip

    # -- account holds and the late-landing watch --------------------------------------------

    async def place_hold(
        self,
        venue: str,
        account: str,
        code: str,
        reason: str,
        entry_id: str | None = None,
        owner: str | None = None,
    ) -> Hold:
        """See ``Journal.place_hold``."""
        return await self._call("place_hold", venue, account, code, reason, entry_id, owner)

    async def active_holds(self, venue: str | None = None, owner: str | None = None) -> list[Hold]:
        """See ``Journal.active_holds``."""
        return await self._call("active_holds", venue, owner)

    async def release_holds(self, venue: str | None, account: str, by: str, note: str = "") -> int:
        """See ``Journal.release_holds``."""
        return await self._call("release_holds", venue, account, by, note)

    async def entry_holds(self, entry_id: str) -> list[Hold]:
        """See ``Journal.entry_holds``."""
        return await self._call("entry_holds", entry_id)

    async def watches(self, venue: str, owner: str | None = None) -> list[Watch]:
        """See ``Journal.watches``."""
        return await self._call("watches", venue, owner)

    async def update_watch(
        self, entry_id: str, state: str, last_src: Decimal, last_dst: Decimal
    ) -> None:
        """See ``Journal.update_watch``."""
        await self._call("update_watch", entry_id, state, last_src, last_dst)

    async def transfers_after(
        self, entry_id: str, venue: str, accounts: Iterable[str], owner: str | None = None
    ) -> list[Entry]:
        """See ``Journal.transfers_after``."""
        return await self._call("transfers_after", entry_id, venue, tuple(accounts), owner)

    async def record_late_landing(
        self,
        entry_id: str,
        by: str,
        detail: str,
        venue: str,
        owner: str | None,
        last_src: Decimal,
        last_dst: Decimal,
    ) -> tuple[Entry, list[Hold]]:
        """See ``Journal.record_late_landing``."""
        return await self._call(
            "record_late_landing", entry_id, by, detail, venue, owner, last_src, last_dst
        )

    async def check_continuity(self, state_dir: str | Path | None = None) -> JournalMark:
        """See ``SqliteStore.check_continuity`` (runs on the journal's worker thread)."""
        return await self._call("check_continuity", state_dir)

    async def backup(self, dest: str | Path, *, overwrite: bool = False) -> BackupInfo:
        """See ``SqliteStore.backup`` (runs on the journal's worker thread)."""
        return await self._call("backup", dest, overwrite=overwrite)


# ---------------------------------------------------------------------------------------------
# Rollback detection: the journal's identity and a high-water mark kept outside it
# ---------------------------------------------------------------------------------------------

JOURNAL_ID_KEY = "journal.id"
"""Meta key of the journal's identity (a UUID given when the file is first checked)."""
RESTORE_ACCEPTED_KEY = "journal.restore_accepted"
"""Meta key prefix of the records ``qfexbot journal accept-restore`` leaves."""
STATE_DIR_ENV = "QFEXBOT_STATE_DIR"
"""Directory of the second mark copy when ``runtime.state_dir`` is not set (default
``$XDG_STATE_HOME/qfexbot``, else ``~/.local/state/qfexbot``): outside the journal's directory,
so restoring that directory does not roll the mark back with it."""

_log = get_logger("qfexbot.money.journal")


@dataclass(frozen=True, slots=True)
class JournalMark:
    """The newest state of a journal that this machine's qfexbot processes saw: its id, its
    last audit-event sequence number (events are append-only, so this only grows) and when."""

    journal_id: str
    seq: int
    at: float


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What a backup holds: where, journal id, entries, transfers in doubt, last event."""

    path: Path
    journal_id: str | None
    entries: int
    unresolved: int
    last_seq: int


class JournalRolledBack(RuntimeError):
    """The journal is older than the last state seen: restored, replaced or copied while live.

    Money must not move from it until an operator checks it and runs
    ``qfexbot journal accept-restore``.
    """

    def __init__(self, path: Path, seen: JournalMark, problem: str) -> None:
        self.path = path
        self.seen = seen
        self.problem = problem
        super().__init__(
            f"journal {path} is older than the last state qfexbot saw: {problem}. It was restored "
            "from an older copy, replaced, or copied while qfexbot was running: transfers in doubt "
            "and the 24 h history it lacks are forgotten, so qfexbot refuses to move money from "
            "it. Check the venue's balances against `qfexbot journal`, then run "
            "`qfexbot journal accept-restore [CONFIG]` to make this file the reference"
        )


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + "Z"


def _rollback_problem(seen: JournalMark, found: JournalMark | None, last_seq: int) -> str:
    """Why a journal does not continue ``seen`` ("" when it does)."""
    if found is None:
        return (
            f"it has no journal id and {last_seq} audit events (a new or emptied file, or a plain "
            f"copy of a live journal whose -wal was left behind), while journal "
            f"{seen.journal_id} with {seen.seq} events was seen at {_when(seen.at)}"
        )
    if found.journal_id != seen.journal_id:
        return (
            f"it is journal {found.journal_id}, but journal {seen.journal_id} "
            f"({seen.seq} events) was seen here at {_when(seen.at)}"
        )
    if found.seq < seen.seq:
        return (
            f"it ends at audit event {found.seq}, but event {seen.seq} of this journal "
            f"({seen.journal_id}) was seen at {_when(seen.at)}"
        )
    return ""


def mark_paths(journal_path: str | Path, state_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Where the journal's mark is kept: beside the journal and in the state directory
    (``state_dir``, else ``$QFEXBOT_STATE_DIR``, else the XDG state directory). Keyed by the
    journal's real path, as its lock is: a copy opened through a symlink or another spelling
    of the path still finds its marks."""
    path = Path(os.path.realpath(journal_path))
    beside = path.with_name(path.name + ".mark")
    base = str(state_dir) if state_dir is not None else os.environ.get(STATE_DIR_ENV)
    if not base:
        xdg = os.environ.get("XDG_STATE_HOME")
        base = str(Path(xdg) / "qfexbot") if xdg else str(Path.home() / ".local/state/qfexbot")
    digest = hashlib.sha256(str(path).encode("utf-8")).hexdigest()[:32]
    return beside, Path(base) / "marks" / f"{digest}.json"


def _first_problem(
    marks: Iterable[JournalMark], found: JournalMark | None, last_seq: int
) -> tuple[JournalMark | None, str]:
    """The first mark the journal does not continue, and why; ``(None, "")`` if none.

    Every mark must agree: the two copies are written together, so one that differs was
    restored (or could not be written, and is then older: harmless)."""
    for mark in marks:
        problem = _rollback_problem(mark, found, last_seq)
        if problem:
            return mark, problem
    return None, ""


def read_marks(paths: Iterable[Path]) -> list[JournalMark]:
    """The marks stored at ``paths`` (missing or unreadable files are skipped)."""
    marks: list[JournalMark] = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text("utf-8"))
            marks.append(JournalMark(str(data["journal_id"]), int(data["seq"]), float(data["at"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return marks


_MARK_BYTES = 240


def _mark_record(mark: JournalMark) -> bytes:
    """A mark as fixed-width JSON, so an update rewrites it in place without truncating."""
    text = json.dumps({"journal_id": mark.journal_id, "seq": mark.seq, "at": mark.at})
    return text.encode("utf-8").ljust(_MARK_BYTES - 1) + b"\n"


def write_mark(paths: Iterable[Path], mark: JournalMark) -> None:
    """Replace every mark file with ``mark`` atomically (mode 0600), creating directories."""
    record = _mark_record(mark)
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, record)
        finally:
            os.close(fd)
        os.replace(partial, path)


def update_mark(paths: Iterable[Path], mark: JournalMark) -> None:
    """Rewrite existing mark files in place: one small write each, cheap enough for every
    commit (a rename per commit would make ext4 flush each time). A torn write leaves that
    copy unreadable, which counts as no mark; the other copy still holds."""
    record = _mark_record(mark)
    for path in paths:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, record, 0)
        finally:
            os.close(fd)


def _backup_info(db: sqlite3.Connection, path: Path) -> BackupInfo:
    marks = ", ".join("?" for _ in UNRESOLVED)
    row = db.execute("SELECT value FROM meta WHERE key = ?", (JOURNAL_ID_KEY,)).fetchone()
    return BackupInfo(
        path=path,
        journal_id=None if row is None else row[0],
        entries=db.execute("SELECT COUNT(*) FROM entries").fetchone()[0],
        unresolved=db.execute(
            f"SELECT COUNT(*) FROM entries WHERE kind = 'transfer' AND state IN ({marks})",
            UNRESOLVED,
        ).fetchone()[0],
        last_seq=db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0],
    )


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
