"""Fixtures of the journal tests: a real journal on each backend (a SQLite file in tmp_path, a
fresh database on the session's throwaway PostgreSQL cluster), a fake clock and venue.

``journal`` and ``journal_factory`` run every test that uses them on both backends
(``journal_backend`` = sqlite | postgres); a test that reaches into the SQLite file itself
(it asks for ``journal_path``) runs on SQLite only.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from journal_helpers import DESK_A, DESK_B, TREASURY, FakeClock, FakeVenue
from pg_cluster import psycopg

from qfexbot.money.journal import Journal, SqliteJournal
from qfexbot.money.journal.postgres import PostgresJournal

BACKENDS = ("sqlite", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "journal_backend" in metafunc.fixturenames:
        file_bound = "journal_path" in metafunc.fixturenames
        metafunc.parametrize("journal_backend", BACKENDS[:1] if file_bound else BACKENDS)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _sqlite_file(tmp_path: Path) -> Path:
    return tmp_path / "var" / "journal.sqlite"


@pytest.fixture
def journal_path(tmp_path):
    return _sqlite_file(tmp_path)


@pytest.fixture
def journal_factory(
    journal_backend: str, tmp_path: Path, request: pytest.FixtureRequest, clock: FakeClock
) -> Callable[..., Awaitable[Journal]]:
    """Opens a journal on this test's store (the same file or database each time), on the
    backend of ``journal_backend``; ``clock`` defaults to the test's fake clock."""
    if journal_backend == "sqlite":
        path = _sqlite_file(tmp_path)

        async def open_sqlite(*, clock: Callable[[], float] = clock) -> Journal:
            return await SqliteJournal.open(path, clock=clock)

        return open_sqlite
    dsn = request.getfixturevalue("pg_database")

    async def open_postgres(*, clock: Callable[[], float] = clock) -> Journal:
        return await PostgresJournal.open(dsn, clock=clock)

    return open_postgres


@pytest.fixture
def raw_sql(
    journal_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[..., list[tuple[Any, ...]]]:
    """Runs one statement (``?`` placeholders) on this test's store over a connection of its
    own, committed, and returns its rows: another process's view, on either backend."""
    if journal_backend == "sqlite":
        path = _sqlite_file(tmp_path)

        def run_sqlite(sql: str, *params: Any) -> list[tuple[Any, ...]]:
            with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
                return db.execute(sql, params).fetchall()

        return run_sqlite
    dsn = request.getfixturevalue("pg_database")  # skips (or fails in CI) without psycopg
    assert psycopg is not None

    def run_postgres(sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            cursor = conn.execute(sql.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []

    return run_postgres


@pytest.fixture
def leaders_table(journal_backend: str) -> str:
    """The backend's leadership table (fencing)."""
    return "leaders" if journal_backend == "sqlite" else "qfexbot_leaders"


@pytest.fixture
async def journal(journal_factory):
    j = await journal_factory()
    try:
        yield j
    finally:
        await j.close()


@pytest.fixture
def venue() -> FakeVenue:
    return FakeVenue(
        balances={TREASURY: Decimal(10000), DESK_A: Decimal(100), DESK_B: Decimal(100)}
    )
