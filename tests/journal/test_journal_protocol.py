"""The backend seam: each async facade and its store follow their journal protocol (SQLite:
``RecoverableJournal``; PostgreSQL: ``Journal``)."""

from __future__ import annotations

import inspect

import pytest

from qfexbot.money.journal import Journal, RecoverableJournal, SqliteJournal, SqliteStore
from qfexbot.money.journal.postgres import PostgresJournal, PostgresStore
from qfexbot.money.journal.threaded import operations

BACKENDS = [
    (RecoverableJournal, SqliteJournal, SqliteStore),
    (Journal, PostgresJournal, PostgresStore),
]


@pytest.mark.parametrize(("protocol", "facade", "store"), BACKENDS)
def test_the_facade_offers_every_protocol_operation_with_its_signature(protocol, facade, store):
    for name, spec in operations(protocol).items():
        method = getattr(facade, name)
        assert inspect.iscoroutinefunction(method), name
        assert inspect.signature(method) == inspect.signature(spec), name


@pytest.mark.parametrize(("protocol", "facade", "store"), BACKENDS)
def test_the_store_implements_every_protocol_operation_with_the_same_parameters(
    protocol, facade, store
):
    for name, spec in operations(protocol).items():
        assert inspect.signature(getattr(store, name)) == inspect.signature(spec), name


def test_the_facades_close_themselves_and_only_sqlite_is_recoverable():
    assert PostgresJournal.close is SqliteJournal.close  # ThreadedJournal's, not a forwarder
    assert not issubclass(PostgresJournal, RecoverableJournal)
    assert issubclass(SqliteJournal, RecoverableJournal)
