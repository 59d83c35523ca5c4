"""The PostgreSQL journal backend: one database shared by several qfexbot processes.

``PostgresStore`` runs ``JournalStore``'s operations on a psycopg 3 (sync) connection;
``PostgresJournal`` runs one on its worker thread, as ``SqliteJournal`` does. Every write is one
transaction (READ COMMITTED) that locks the rows it reads (``FOR UPDATE``), so two processes on
one database never both move one entry; a budget check and its insert take a transaction-level
advisory lock per owner (class ``BUDGET_LOCK_CLASS``). There is no database-wide lock: which
process may move money for an account group is leadership (``qfexbot_leaders``, issue 18).

The DSN names no password: it is passed apart (a ``Secret``) or found by libpq
(``PGPASSWORD``, ``~/.pgpass``); ``describe_dsn`` is what logs and errors show.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Unpack

import trio

from qfexbot.core.logs import get_logger, log_event
from qfexbot.core.secrets import Secret
from qfexbot.errors import JournalError
from qfexbot.money.journal.model import Entry, GuardLost, JournalLocked, Order
from qfexbot.money.journal.protocol import Journal
from qfexbot.money.journal.store import (
    INDEXES_ON_ADDED,
    Connection,
    Cursor,
    JournalStore,
    schema,
)
from qfexbot.money.journal.threaded import ThreadedJournal, forwarding

try:
    import psycopg
    from psycopg import conninfo
    from psycopg.pq import TransactionStatus
except ImportError:  # the error names the extra, at open
    psycopg = None

OPEN_ERRORS: tuple[type[BaseException], ...] = (
    (JournalError,) if psycopg is None else (JournalError, psycopg.Error)
)
"""What opening a PostgreSQL journal raises when the server, the login or the DSN is wrong."""

__all__ = [
    "BUDGET_LOCK_CLASS",
    "OPEN_ERRORS",
    "PROCESS_LOCK_CLASS",
    "SCHEMA_LOCK_CLASS",
    "PostgresJournal",
    "PostgresStore",
    "describe_dsn",
    "is_postgres_dsn",
]

_log = get_logger("qfexbot.money.journal")

SCHEMA_LOCK_CLASS = 0x71667801
"""Advisory lock class (first key of the two-key form) serialising schema creation."""
BUDGET_LOCK_CLASS = 0x71667802
"""Advisory lock class serialising the budget check + insert per owner (key: hashtext(owner))."""
PROCESS_LOCK_CLASS = 0x71667803
"""Advisory lock class (key 0) of the one-process guard, ``PostgresJournal.open(exclusive=True)``:
what ``qfexbot run`` holds until leadership per account group replaces it (issue 18 part B)."""


def _bounded(dsn: str) -> dict[str, Any]:
    """Every connection's bounds: a dead peer or a half-open connection is noticed in ~10 s
    (TCP keepalives, unacknowledged data), and no statement waits on a lock or runs for ever, so
    a journal call (and the guard's probe) fails instead of hanging the runtime. The DSN's own
    ``options`` (a search_path, say) are kept."""
    own = conninfo.conninfo_to_dict(dsn).get("options") or ""
    return {
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": 10_000,
        "options": f"{own} -c lock_timeout=10s -c statement_timeout=30s".strip(),
    }


_SCHEMA = (
    schema(
        real="DOUBLE PRECISION",
        serial="BIGSERIAL PRIMARY KEY",
        rowid="rowid BIGSERIAL UNIQUE,\n    ",
        added=True,
        leaders="qfexbot_leaders",
    )
    + ";\n".join(INDEXES_ON_ADDED)
    + """;
CREATE OR REPLACE FUNCTION qfexbot_events_append_only() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'journal events are append-only'; END $$;
CREATE OR REPLACE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
FOR EACH ROW EXECUTE FUNCTION qfexbot_events_append_only();
"""
)
"""The tables (``rowid``: insertion order, which SQLite has built in), indexes and the
append-only trigger of the audit events."""


def is_postgres_dsn(value: str) -> bool:
    """True when a ``journal`` setting names a PostgreSQL database rather than a file."""
    return value.startswith(("postgresql://", "postgres://"))


def _require_psycopg() -> None:
    if psycopg is None:
        raise JournalError(
            "the PostgreSQL journal needs psycopg 3: pip install 'qfexbot[postgres]'"
        )


def describe_dsn(dsn: str) -> str:
    """``postgresql://user@host:port/dbname``: the DSN without password or options, to show.

    Raises:
      JournalError: the DSN cannot be parsed (the message does not repeat it), or psycopg is
        not installed.
    """
    _require_psycopg()
    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise JournalError("the journal's PostgreSQL DSN cannot be parsed") from None
    user = parts.get("user") or ""
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    return f"postgresql://{user}{'@' if user else ''}{host}:{port}/{parts.get('dbname') or ''}"


class _Qmark:
    """The store's ``Connection`` over psycopg: ``?`` placeholders become ``%s``."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor:
        return self.conn.execute(sql.replace("%", "%%").replace("?", "%s"), tuple(params))


class PostgresStore(JournalStore):
    """Synchronous PostgreSQL journal store; one instance (one connection) per thread.

    Creates the schema when missing (under an advisory lock, so processes opening one new
    database together do not race). Each method is one transaction, committed before it returns.

    Args:
      dsn: ``postgresql://user@host:port/dbname`` (no password: see ``password``).
      password: the password, kept a ``Secret`` until it is handed to libpq.
      clock: wall-clock seconds for ``created_at``/``updated_at``.
      connect_timeout: seconds to wait for the server.

    Raises:
      JournalError: the DSN carries a password, or psycopg is missing.
      psycopg.OperationalError: the server cannot be reached or refuses the login.
    """

    _LOCK = " FOR UPDATE"
    _LEADERS = "qfexbot_leaders"

    def __init__(
        self,
        dsn: str,
        *,
        password: Secret | None = None,
        clock: Callable[[], float] = time.time,
        connect_timeout: float = 10.0,
        guard: Any = None,
    ) -> None:
        _require_psycopg()
        self._guard = guard  # the one-process guard's connection (exclusive journals), or None
        self.label = describe_dsn(dsn)
        if "password" in conninfo.conninfo_to_dict(dsn):
            raise JournalError(
                f"journal {self.label}: the DSN must not hold the password; give it as a secret "
                "reference (journal_password) or through PGPASSWORD / ~/.pgpass"
            )
        self._clock = clock
        extra = {} if password is None else {"password": password.reveal()}
        self._connect = functools.partial(
            psycopg.connect,
            dsn,
            autocommit=True,
            connect_timeout=max(1, round(connect_timeout)),
            **_bounded(dsn),
            **extra,
        )
        self._conn = self._connect()
        self._db: Connection = _Qmark(self._conn)
        try:
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (SCHEMA_LOCK_CLASS,))
                self._conn.execute(_SCHEMA)
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()

    def _in_transaction(self) -> bool:
        return self._conn.info.transaction_status != TransactionStatus.IDLE

    def heal(self) -> None:
        """Reconnect if the connection was lost (the call that met the loss raised, and its
        transaction was rolled back by the server); called before each operation, never inside
        one, so no transaction is ever continued on a new connection."""
        if not self._conn.broken:
            return
        log_event(
            _log,
            logging.WARNING,
            "journal connection to PostgreSQL was lost: reconnecting (the operation that met "
            "the loss failed and wrote nothing)",
            journal=self.label,
        )
        self._conn.close()
        self._conn = self._connect()
        self._db = _Qmark(self._conn)

    def _after_commit(self) -> None:
        """Nothing to do: the database is the reference (no mark files; see the docs)."""

    def mark_sent(self, entry_id: str, *, fence: tuple[str, int] | None = None) -> Entry:
        self._check_guard(f"transfer {entry_id}")
        return super().mark_sent(entry_id, fence=fence)

    def record_order(
        self, *, fence: tuple[str, int] | None = None, **order: Unpack[Order]
    ) -> Entry:
        self._check_guard("order")
        return super().record_order(fence=fence, **order)

    def _check_guard(self, what: str) -> None:
        """Before anything is handed to a venue: the one-process guard is still held. Its
        session ends with its connection (a server restart, a failover, a network cut, a
        terminated backend), and then another process may be moving this journal's money.

        Raises:
          GuardLost: the guard's connection is gone (nothing was written).
        """
        if self._guard is None:
            return
        try:
            if self._guard.broken or self._guard.closed:
                raise OSError("connection closed")
            self._guard.execute("SELECT 1")
        except Exception as exc:
            raise GuardLost(
                f"{what} not sent: this process lost the journal's one-process guard (its "
                f"PostgreSQL session ended: {type(exc).__name__}); another qfexbot may be moving "
                "this journal's money now; restart this process once you know which one runs"
            ) from None

    def _serialise_budget(self, db: Connection, owner: str) -> None:
        db.execute("SELECT pg_advisory_xact_lock(?, hashtext(?))", (BUDGET_LOCK_CLASS, owner))


@forwarding
class PostgresJournal(ThreadedJournal, Journal):
    """The PostgreSQL ``Journal``: async methods, all database work on one dedicated thread
    (``PostgresStore``'s, generated by ``forwarding`` from the protocol).

    Use ``async with await PostgresJournal.open(dsn, password=...) as journal``.
    """

    def __init__(
        self,
        dsn: str,
        *,
        password: Secret | None = None,
        clock: Callable[[], float] = time.time,
        guard: Any = None,
    ) -> None:
        self.dsn_label = describe_dsn(dsn)
        self._lock_conn: Any = None

        def store() -> PostgresStore:
            return PostgresStore(dsn, password=password, clock=clock, guard=guard)

        super().__init__(self.dsn_label, store)

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        password: Secret | None = None,
        clock: Callable[[], float] = time.time,
        exclusive: bool = False,
    ) -> PostgresJournal:
        """Connect, create the schema if missing, and return the open journal.

        ``exclusive``: first take the one-process guard (a session advisory lock on a
        connection of its own, released at ``close()`` or when the process dies), so a second
        ``qfexbot run`` on this journal refuses to start, as with a SQLite file's lock.

        Raises:
          JournalLocked: ``exclusive`` and another process holds the guard.
        """
        lock_conn = None
        if exclusive:
            lock_conn = await trio.to_thread.run_sync(_take_process_lock, dsn, password)
        try:
            journal = cls(dsn, password=password, clock=clock, guard=lock_conn)
        except BaseException:
            if lock_conn is not None:
                lock_conn.close()
            raise
        journal._lock_conn = lock_conn
        await journal._started()
        return journal

    def _closed_hook(self) -> None:
        if self._lock_conn is not None:
            self._lock_conn.close()
            self._lock_conn = None


def _take_process_lock(dsn: str, password: Secret | None) -> Any:
    """A connection holding the journal's one-process guard (``PROCESS_LOCK_CLASS``, key 0).

    Raises:
      JournalLocked: another process holds it.
    """
    _require_psycopg()
    extra = {} if password is None else {"password": password.reveal()}
    conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10, **_bounded(dsn), **extra)
    try:
        row = conn.execute("SELECT pg_try_advisory_lock(%s, 0)", (PROCESS_LOCK_CLASS,)).fetchone()
    except BaseException:
        conn.close()
        raise
    if not row[0]:
        conn.close()
        raise JournalLocked(
            f"journal {describe_dsn(dsn)} is in use by another qfexbot process (it holds the "
            "journal's advisory lock); one running qfexbot per PostgreSQL journal"
        )
    return conn
