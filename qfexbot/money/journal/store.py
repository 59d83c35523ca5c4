"""The journal's operations, written once for every backend: each one transaction.

``JournalStore`` holds the logic (state machines, audit events, the budget check, holds,
watches, fencing) over a DB-API-like connection whose ``execute(sql, params)`` takes ``?``
placeholders; a backend subclass (``SqliteStore``, ``PostgresStore``) opens the connection,
creates the schema and says how a write transaction begins and locks what it reads.
"""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol, TypeVar, Unpack

from qfexbot.money.journal.model import (
    MACHINES,
    ORDER_UNSETTLED,
    POSSIBLY_APPLIED,
    TRANSITIONS,
    UNRESOLVED,
    WATCH_STATES,
    AuditEvent,
    BudgetExceeded,
    DryRun,
    Entry,
    EntryKind,
    EntryNotFound,
    EntryState,
    Hold,
    Intent,
    InvalidTransition,
    Order,
    Refusal,
    StaleEpoch,
    Watch,
    check_fields,
)

__all__ = ["ADDED_COLUMNS", "INDEXES_ON_ADDED", "Connection", "Cursor", "JournalStore", "schema"]

T = TypeVar("T")


class Cursor(Protocol):
    """What the store reads from a statement's result."""

    rowcount: int

    def fetchone(self) -> Any: ...

    def __iter__(self) -> Any: ...


class Connection(Protocol):
    """What the store needs of a connection: ``execute`` with ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...


ADDED_COLUMNS = (
    ("src_deposit_before", "TEXT"),
    ("dst_deposit_before", "TEXT"),
    ("owner", "TEXT"),
    # An order's own fields (its account is ``src``), added with the order states.
    ("symbol", "TEXT"),
    ("side", "TEXT"),
    ("quantity", "TEXT"),
    ("price", "TEXT"),
    ("client_order_id", "TEXT"),
    ("venue_order_id", "TEXT"),
    # The leadership epoch and account group the row was written under (fencing, issue 18).
    ("epoch", "BIGINT NOT NULL DEFAULT 0"),
    ("grp", "TEXT NOT NULL DEFAULT ''"),
)
"""Columns of ``entries`` added after the first release, (name, type): the SQLite backend adds
the missing ones to an older file with ALTER TABLE; a new PostgreSQL schema has them all."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    {rowid}id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    bot TEXT NOT NULL,
    plugin TEXT NOT NULL,
    venue TEXT NOT NULL,
    src TEXT,
    dst TEXT,
    amount TEXT,
    reason TEXT NOT NULL DEFAULT '',
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_at {real},
    resolved_by TEXT CHECK (resolved_by IN ('reconcile', 'operator')),
    src_before TEXT,
    dst_before TEXT,
    data TEXT{added}
);
CREATE INDEX IF NOT EXISTS entries_kind_state ON entries (kind, state);
CREATE INDEX IF NOT EXISTS entries_bot_created ON entries (bot, created_at);
CREATE INDEX IF NOT EXISTS entries_pair ON entries (venue, src, dst, created_at);
CREATE INDEX IF NOT EXISTS entries_created ON entries (created_at);
CREATE TABLE IF NOT EXISTS events (
    seq {serial},
    entry_id TEXT NOT NULL REFERENCES entries (id),
    at {real} NOT NULL,
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
    updated_at {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS holds (
    seq {serial},
    venue TEXT NOT NULL,
    owner TEXT,
    account TEXT NOT NULL,
    code TEXT NOT NULL,
    reason TEXT NOT NULL,
    entry_id TEXT,
    created_at {real} NOT NULL,
    released_at {real},
    released_by TEXT,
    release_note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS holds_active ON holds (venue, account, released_at);
CREATE TABLE IF NOT EXISTS watches (
    {rowid}entry_id TEXT PRIMARY KEY REFERENCES entries (id),
    venue TEXT NOT NULL,
    owner TEXT,
    src TEXT NOT NULL,
    dst TEXT NOT NULL,
    amount TEXT NOT NULL,
    src_deposit TEXT NOT NULL,
    dst_deposit TEXT NOT NULL,
    started_at {real} NOT NULL,
    state TEXT NOT NULL DEFAULT 'watching',
    last_src TEXT NOT NULL DEFAULT '0',
    last_dst TEXT NOT NULL DEFAULT '0',
    updated_at {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS {leaders} (
    grp TEXT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    holder TEXT NOT NULL,
    acquired_at {real} NOT NULL
);
"""

INDEXES_ON_ADDED = (
    # Pair lookups keyed by account ids whatever the venue name (min_interval).
    "CREATE INDEX IF NOT EXISTS entries_accounts ON entries (src, dst, created_at)",
    # Replies and reconciliation find an order by its client order id.
    "CREATE INDEX IF NOT EXISTS entries_client_order ON entries (client_order_id)",
)
"""Indexes created after ``ADDED_COLUMNS`` exist (SQLite: after the migration)."""


def schema(*, real: str, serial: str, rowid: str, added: bool, leaders: str = "leaders") -> str:
    """The journal's tables in one backend's types: ``real`` (seconds), ``serial`` (an
    auto-numbered primary key), ``rowid`` (an insertion-order column, or "" where the engine
    has one), ``added`` (include ``ADDED_COLUMNS``), ``leaders`` (the leadership table)."""
    more = "".join(f",\n    {name} {kind}" for name, kind in ADDED_COLUMNS) if added else ""
    return _SCHEMA.format(real=real, serial=serial, rowid=rowid, added=more, leaders=leaders)


_COLUMNS = (
    "id, kind, bot, plugin, venue, src, dst, amount, reason, created_at, updated_at, state, "
    "detail, attempts, sent_at, resolved_by, src_before, dst_before, data, "
    "src_deposit_before, dst_deposit_before, owner, symbol, side, quantity, price, "
    "client_order_id, venue_order_id, epoch, grp"
)

_INSERT_EVENT = (
    "INSERT INTO events (entry_id, at, from_state, to_state, detail, by) VALUES (?, ?, ?, ?, ?, ?)"
)
"""One audit event (append-only): every state change, and each row's first state."""


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


_COLUMN_NAMES = tuple(_COLUMNS.split(", "))
_MONEY_COLUMNS = (
    "amount",
    "src_before",
    "dst_before",
    "src_deposit_before",
    "dst_deposit_before",
    "quantity",
    "price",
)
_ORDER_FIELDS = ("symbol", "side", "quantity", "price", "client_order_id", "venue_order_id")


def _row_to_entry(row: Sequence[Any]) -> Entry:
    """An ``entries`` row (columns ``_COLUMNS``, named as ``Entry``'s fields) as an Entry."""
    values = dict(zip(_COLUMN_NAMES, row, strict=True))
    values["group"] = values.pop("grp")  # ``group`` is an SQL keyword
    for name in _MONEY_COLUMNS:
        values[name] = _dec(values[name])
    if values["data"] is not None:
        values["data"] = json.loads(values["data"])
    return Entry(**values)


class JournalStore(ABC):
    """The journal operations over ``self._db``; one instance is used by one thread only.

    A subclass sets ``_db`` (a ``Connection``), ``_clock``, ``_BEGIN`` (the statement opening a
    write transaction), ``_LOCK`` (the suffix making a read inside one lock its rows: PostgreSQL's
    `` FOR UPDATE``, nothing where the transaction already excludes other writers) and
    ``_LEADERS`` (the leadership table), and implements ``_in_transaction``.
    """

    _db: Connection
    _clock: Callable[[], float]
    _BEGIN = "BEGIN"
    _LOCK = ""
    _LEADERS = "leaders"

    @abstractmethod
    def _in_transaction(self) -> bool:
        """True while a write transaction is open on ``_db``."""

    @abstractmethod
    def heal(self) -> None:
        """Make the store usable again after a lost connection (between operations only)."""

    @abstractmethod
    def _after_commit(self) -> None:
        """Called after each committed write (the SQLite backend moves its mark up)."""

    @abstractmethod
    def _serialise_budget(self, db: Connection, owner: str) -> None:
        """Make concurrent budget checks of ``owner`` take turns (inside the transaction)."""

    # -- transactions ------------------------------------------------------------------------

    def _write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` as one write transaction. Called inside another write it joins that one,
        so a composite write (``resolve``, ``record_late_landing``) commits all or nothing."""
        if self._in_transaction():
            return fn(self._db)
        self._db.execute(self._BEGIN)
        try:
            result = fn(self._db)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self._after_commit()
        return result

    def _fetch(self, db: Connection, entry_id: str) -> Entry:
        """The entry, its row locked (``_LOCK``) when read inside a write transaction."""
        lock = self._LOCK if self._in_transaction() else ""
        sql = f"SELECT {_COLUMNS} FROM entries WHERE id = ?{lock}"
        row = db.execute(sql, (entry_id,)).fetchone()
        if row is None:
            raise EntryNotFound(entry_id)
        return _row_to_entry(row)

    def _insert(self, db: Connection, values: dict[str, Any], by: str | None = None) -> Entry:
        now = self._clock()
        values = {"id": str(uuid.uuid4()), "created_at": now, "updated_at": now, **values}
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        db.execute(f"INSERT INTO entries ({names}) VALUES ({marks})", tuple(values.values()))
        db.execute(
            _INSERT_EVENT,
            (values["id"], now, None, values["state"], values.get("detail", ""), by),
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
        """One state change and its audit event (in the caller's transaction, if any)."""

        def run(db: Connection) -> Entry:
            entry = self._fetch(db, entry_id)
            if entry.kind != EntryKind.TRANSFER:
                raise InvalidTransition(f"entry {entry_id} is a {entry.kind}, not a transfer")
            legal = TRANSITIONS.get(entry.state, frozenset())
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
            if to_state == EntryState.SENT:
                sets += ["attempts = attempts + 1", "sent_at = ?"]
                params.append(now)
            if by is not None:
                sets.append("resolved_by = ?")
                params.append(by)
            db.execute(f"UPDATE entries SET {', '.join(sets)} WHERE id = ?", (*params, entry_id))
            db.execute(
                _INSERT_EVENT,
                (entry_id, now, entry.state, to_state, detail or "", by),
            )
            return self._fetch(db, entry_id)

        return self._write(run)

    # -- writes ------------------------------------------------------------------------------

    def record_intent(self, **intent: Unpack[Intent]) -> Entry:
        check_fields(Intent, intent, "record_intent")
        amount, owner, budget = intent["amount"], intent.get("owner"), intent.get("budget")
        if Decimal(amount) <= 0:
            raise ValueError(f"transfer amount must be positive, got {amount}")
        if budget is not None and owner is None:
            raise ValueError("a budget is counted per owner: pass owner with budget")
        values = {
            "kind": EntryKind.TRANSFER,
            "bot": intent["bot"],
            "plugin": intent["plugin"],
            "venue": intent["venue"],
            "src": intent["src"],
            "dst": intent["dst"],
            "amount": _money(amount),
            "reason": intent["reason"],
            "state": EntryState.PENDING,
            "src_before": _money(intent.get("src_before")),
            "dst_before": _money(intent.get("dst_before")),
            "src_deposit_before": _money(intent.get("src_deposit_before")),
            "dst_deposit_before": _money(intent.get("dst_deposit_before")),
            "owner": owner,
            "epoch": int(intent.get("epoch", 0)),
            "grp": intent.get("group", ""),
        }

        def run(db: Connection) -> Entry:
            if budget is not None:
                assert owner is not None
                self._serialise_budget(db, owner)
                window = self._window(db, owner, budget.pairs, budget.since)
                spent = sum((e.amount or Decimal(0) for e in window), Decimal(0))
                if spent + Decimal(amount) > budget.limit:
                    raise BudgetExceeded(spent, budget.limit, Decimal(amount))
            return self._insert(db, values)

        # The window read and the insert are one write transaction.
        return self._write(run)

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str, detail: str = "") -> None:
        def run(db: Connection) -> None:
            db.execute(
                "INSERT INTO meta (key, value, detail, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "detail = excluded.detail, updated_at = excluded.updated_at",
                (key, value, detail, self._clock()),
            )

        self._write(run)

    def mark_sent(self, entry_id: str, *, fence: tuple[str, int] | None = None) -> Entry:
        if fence is None:
            return self._transition(entry_id, EntryState.SENT, None)

        def run(db: Connection) -> Entry:
            entry = self._fetch(db, entry_id)
            self._check_fence(db, fence, entry.epoch, f"transfer {entry_id}")
            return self._transition(entry_id, EntryState.SENT, None)

        return self._write(run)

    def _check_fence(self, db: Connection, fence: tuple[str, int], written: int, what: str) -> None:
        """Inside the caller's write: the group's leaders row (locked) and the epoch the row
        was written under must both be the fence's epoch.

        Raises:
          StaleEpoch: they are not.
        """
        group, epoch = fence
        row = db.execute(
            f"SELECT epoch FROM {self._LEADERS} WHERE grp = ?{self._LOCK}", (group,)
        ).fetchone()
        current = None if row is None else int(row[0])
        if current != epoch or written != epoch:
            raise StaleEpoch(
                f"{what} (written under epoch {written}) not sent: group {group!r} is led under "
                f"epoch {current}, this process holds {epoch}"
            )

    def get_leader(self, group: str) -> tuple[int, str, float] | None:
        row = self._db.execute(
            f"SELECT epoch, holder, acquired_at FROM {self._LEADERS} WHERE grp = ?", (group,)
        ).fetchone()
        return None if row is None else (int(row[0]), row[1], float(row[2]))

    def mark_done(self, entry_id: str, detail: str = "") -> Entry:
        return self._transition(entry_id, EntryState.DONE, detail, allowed_from=(EntryState.SENT,))

    def mark_failed(self, entry_id: str, detail: str) -> Entry:
        return self._transition(
            entry_id,
            EntryState.FAILED,
            detail,
            allowed_from=(EntryState.PENDING, EntryState.SENT),
        )

    def mark_unknown(self, entry_id: str, detail: str) -> Entry:
        return self._transition(entry_id, EntryState.UNKNOWN, detail)

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

        def run(db: Connection) -> Entry:
            entry = self._fetch(db, entry_id)
            if entry.kind != EntryKind.TRANSFER or not entry.unresolved:
                raise InvalidTransition(
                    f"transfer {entry_id} is {entry.state}; only pending, sent or unknown can be "
                    f"resolved"
                )
            if entry.state != EntryState.UNKNOWN:
                # A pending/sent row being resolved means nobody is working on it: in doubt.
                self._transition(
                    entry_id,
                    EntryState.UNKNOWN,
                    f"found {entry.state} at resolution: outcome unknown",
                )
            to_state = EntryState.DONE if applied else EntryState.FAILED
            text = detail or f"resolved by {by}: {'applied' if applied else 'not applied'}"
            resolved = self._transition(entry_id, to_state, text, by=by)
            baseline = watch_from or (entry.src_deposit_before, entry.dst_deposit_before)
            if not applied and None not in baseline:
                self._add_watch(db, resolved, baseline[0], baseline[1])  # type: ignore[arg-type]
            return resolved

        return self._write(run)

    def annotate(self, entry_id: str, detail: str) -> Entry:
        def run(db: Connection) -> Entry:
            entry = self._fetch(db, entry_id)
            now = self._clock()
            db.execute(
                "UPDATE entries SET detail = ?, updated_at = ? WHERE id = ?",
                (detail, now, entry_id),
            )
            db.execute(
                _INSERT_EVENT,
                (entry_id, now, entry.state, entry.state, detail, None),
            )
            return self._fetch(db, entry_id)

        return self._write(run)

    def _record_final(
        self,
        kind: str,
        state: str,
        record: Mapping[str, Any],
        extra: Mapping[str, Any] | None = None,
        fence: tuple[str, int] | None = None,
    ) -> Entry:
        """Insert a refusal, dry run, order or cancel row (``extra``: more columns), checking
        ``fence`` in the same transaction when given."""
        data = record.get("data")
        values = {
            "kind": kind,
            "bot": record["bot"],
            "plugin": record["plugin"],
            "venue": record["venue"],
            "src": record.get("src"),
            "dst": record.get("dst"),
            "amount": _money(record.get("amount")),
            "reason": record.get("reason", ""),
            "state": state,
            "detail": record.get("detail", ""),
            "data": None if data is None else json.dumps(dict(data), default=_json_default),
            "epoch": int(record.get("epoch", 0)),
            "grp": record.get("group", ""),
            **(extra or {}),
        }

        def run(db: Connection) -> Entry:
            if fence is not None:
                self._check_fence(db, fence, values["epoch"], f"{kind} for {values['src']}")
            return self._insert(db, values)

        return self._write(run)

    def record_refusal(self, **refusal: Unpack[Refusal]) -> Entry:
        check_fields(Refusal, refusal, "record_refusal")
        data = {"action": refusal["action"], "code": refusal["code"], **(refusal.get("data") or {})}
        return self._record_final(EntryKind.REFUSAL, EntryState.REFUSED, {**refusal, "data": data})

    def record_dry_run(self, **dry_run: Unpack[DryRun]) -> Entry:
        check_fields(DryRun, dry_run, "record_dry_run")
        return self._record_final(EntryKind.DRY_RUN, EntryState.DRY_RUN, dry_run)

    def record_order(
        self, *, fence: tuple[str, int] | None = None, **order: Unpack[Order]
    ) -> Entry:
        check_fields(Order, order, "record_order")
        kind = order.get("kind", EntryKind.ORDER)
        if kind not in MACHINES:
            raise ValueError(
                f"record_order kind must be 'order', 'cancel' or 'request', got {kind!r}"
            )
        row = {**order, "src": order["account"], "dst": None, "amount": None}
        fields = {name: order.get(name) for name in _ORDER_FIELDS}
        fields["quantity"] = _money(fields["quantity"])
        fields["price"] = _money(fields["price"])
        return self._record_final(kind, EntryState.SUBMITTED, row, fields, fence)

    def mark_order(
        self,
        entry_id: str,
        state: str,
        detail: str = "",
        *,
        venue_order_id: str | None = None,
        by: str | None = None,
    ) -> Entry:
        if by not in (None, "reconcile", "operator"):
            raise ValueError(f"resolved_by must be 'reconcile' or 'operator', got {by!r}")

        def run(db: Connection) -> Entry:
            entry = self._fetch(db, entry_id)
            if entry.kind not in MACHINES:
                raise InvalidTransition(f"entry {entry_id} is a {entry.kind}, not an order")
            if state not in MACHINES[entry.kind].get(entry.state, frozenset()):
                raise InvalidTransition(
                    f"{entry.kind} {entry_id} cannot go from {entry.state} to {state}"
                )
            now = self._clock()
            db.execute(
                "UPDATE entries SET state = ?, updated_at = ?, detail = ?, "
                "venue_order_id = COALESCE(?, venue_order_id), "
                "resolved_by = COALESCE(?, resolved_by) WHERE id = ?",
                (state, now, detail, venue_order_id, by, entry_id),
            )
            db.execute(_INSERT_EVENT, (entry_id, now, entry.state, state, detail, by))
            return self._fetch(db, entry_id)

        return self._write(run)

    def amend_order(
        self,
        entry_id: str,
        *,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
        detail: str = "",
    ) -> Entry:
        def run(db: Connection) -> Entry:
            entry = self._fetch(db, entry_id)
            if entry.kind != EntryKind.ORDER or entry.state != EntryState.ACKED:
                raise InvalidTransition(
                    f"{entry.kind} {entry_id} ({entry.state}) is not a resting order"
                )
            now = self._clock()
            db.execute(
                "UPDATE entries SET price = COALESCE(?, price), quantity = COALESCE(?, quantity), "
                "updated_at = ?, detail = ? WHERE id = ?",
                (_money(price), _money(quantity), now, detail, entry_id),
            )
            db.execute(_INSERT_EVENT, (entry_id, now, entry.state, entry.state, detail, None))
            return self._fetch(db, entry_id)

        return self._write(run)

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

    def counts_since(self, since: float) -> dict[str, dict[str, int]]:
        rows = self._db.execute(
            "SELECT kind, state, COUNT(*) FROM entries WHERE created_at >= ? GROUP BY kind, state",
            (since,),
        )
        counts: dict[str, dict[str, int]] = {}
        for kind, state, count in rows:
            counts.setdefault(kind, {})[state] = count
        return counts

    def unsettled_orders(self, venue: str | None = None) -> list[Entry]:
        marks = ", ".join("?" for _ in ORDER_UNSETTLED)
        where = f"kind IN ('order', 'cancel') AND state IN ({marks})"
        params: list[Any] = list(ORDER_UNSETTLED)
        if venue is not None:
            where += " AND venue = ?"
            params.append(venue)
        return self._select(where, params, "created_at, rowid")

    def orders_by_client_id(self, venue: str, account: str, client_order_id: str) -> list[Entry]:
        return self._select(
            "client_order_id = ? AND kind = 'order' AND venue = ? AND src = ?",
            (client_order_id, venue, account),
            "created_at DESC, rowid DESC",
        )

    def unresolved_for_pair(self, venue: str, a: str, b: str) -> list[Entry]:
        return [e for e in self.unresolved(venue) if {e.src, e.dst} == {a, b}]

    def unresolved_for_accounts(
        self, venue: str, accounts: Iterable[str], *, owner: str | None = None
    ) -> list[Entry]:
        wanted = set(accounts)
        rows = self.unresolved(owner=owner) if owner is not None else self.unresolved(venue)
        return [e for e in rows if e.src in wanted or e.dst in wanted]

    def transfers_since(self, bot: str, since: float) -> list[Entry]:
        marks = ", ".join("?" for _ in POSSIBLY_APPLIED)
        return self._select(
            f"kind = 'transfer' AND bot = ? AND created_at >= ? AND state IN ({marks})",
            (bot, since, *POSSIBLY_APPLIED),
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
        db: Connection,
        owner: str,
        pairs: frozenset[frozenset[str]] | None,
        since: float,
    ) -> list[Entry]:
        # A row reconciled "not applied" and still watched may yet land: it counts too.
        marks = ", ".join("?" for _ in POSSIBLY_APPLIED)
        sql = (
            f"SELECT {_COLUMNS} FROM entries WHERE kind = 'transfer' AND created_at >= ? "
            f"AND (state IN ({marks}) OR (state = 'failed' AND id IN "
            "(SELECT entry_id FROM watches WHERE state = 'watching'))) "
            "AND (owner = ? OR owner IS NULL) ORDER BY created_at, rowid"
        )
        rows = [_row_to_entry(r) for r in db.execute(sql, (since, *POSSIBLY_APPLIED, owner))]
        return [e for e in rows if pairs is None or frozenset((e.src, e.dst)) in pairs]

    def window_transfers(
        self, owner: str, pairs: frozenset[frozenset[str]] | None, since: float
    ) -> list[Entry]:
        return self._window(self._db, owner, pairs, since)

    def events(self, entry_id: str) -> list[AuditEvent]:
        rows = self._db.execute(
            "SELECT at, from_state, to_state, detail, by FROM events WHERE entry_id = ? "
            "ORDER BY seq",
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
        def run(db: Connection) -> Hold:
            now = self._clock()
            (seq,) = db.execute(
                "INSERT INTO holds (venue, owner, account, code, reason, entry_id, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq",
                (venue, owner or venue, account, code, reason, entry_id, now),
            ).fetchone()
            return Hold(int(seq), venue, account, code, reason, entry_id, now)

        return self._write(run)

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
        def run(db: Connection) -> int:
            sql = ("UPDATE holds SET released_at = ?, released_by = ?, release_note = ? "
                   "WHERE released_at IS NULL AND account = ?")  # fmt: skip
            params: list[Any] = [self._clock(), by, note, account]
            if venue is not None:
                sql += " AND venue = ?"
                params.append(venue)
            return db.execute(sql, tuple(params)).rowcount

        return self._write(run)

    def _add_watch(
        self, db: Connection, entry: Entry, src_deposit: Decimal, dst_deposit: Decimal
    ) -> None:
        """Watch ``entry`` (just concluded "not applied") for a late landing from these
        deposits, inside the caller's transaction."""
        now = self._clock()
        db.execute(
            "INSERT INTO watches (entry_id, venue, owner, src, dst, amount, "
            "src_deposit, dst_deposit, started_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (entry_id) DO UPDATE SET "
            "venue = excluded.venue, owner = excluded.owner, src = excluded.src, "
            "dst = excluded.dst, amount = excluded.amount, src_deposit = excluded.src_deposit, "
            "dst_deposit = excluded.dst_deposit, started_at = excluded.started_at, "
            "updated_at = excluded.updated_at, state = 'watching', last_src = '0', "
            "last_dst = '0'",
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
        db: Connection,
        entry_id: str,
        state: str,
        last_src: Decimal,
        last_dst: Decimal,
    ) -> None:
        if state not in WATCH_STATES:
            raise ValueError(f"watch state must be one of {', '.join(WATCH_STATES)}, got {state!r}")
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

        def run(db: Connection) -> tuple[Entry, list[Hold]]:
            entry = self._fetch(db, entry_id)
            if entry.kind != EntryKind.TRANSFER or entry.state != EntryState.FAILED:
                raise InvalidTransition(
                    f"transfer {entry_id} is {entry.state}; only a failed transfer can be "
                    f"re-marked applied"
                )
            now = self._clock()
            db.execute(
                "UPDATE entries SET state = ?, updated_at = ?, detail = ?, resolved_by = ? "
                "WHERE id = ?",
                (EntryState.DONE, now, detail, by, entry_id),
            )
            db.execute(
                _INSERT_EVENT,
                (entry_id, now, EntryState.FAILED, EntryState.DONE, detail, by),
            )
            active = {(h.account, h.code) for h in self._entry_active_holds(db, entry_id)}
            placed = [
                self.place_hold(venue, account, "late_landing", detail, entry_id, owner)
                for account in dict.fromkeys((entry.src or "", entry.dst or ""))
                if (account, "late_landing") not in active
            ]
            self._update_watch(db, entry_id, "landed", last_src, last_dst)
            return self._fetch(db, entry_id), placed

        return self._write(run)

    def _entry_active_holds(self, db: Connection, entry_id: str) -> list[Hold]:
        rows = db.execute(
            "SELECT seq, venue, account, code, reason, entry_id, created_at, released_at "
            "FROM holds WHERE entry_id = ? AND released_at IS NULL ORDER BY seq",
            (entry_id,),
        )
        return [Hold(*row) for row in rows]

    def last_seq(self) -> int:
        """The sequence number of the newest audit event (0 for an empty journal)."""
        return self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]

    # ``list`` last: below it, ``list[...]`` in this class body would name the method.

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
