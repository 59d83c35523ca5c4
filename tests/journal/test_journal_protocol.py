"""The backend seam: the async facade and the SQLite store both follow the ``Journal`` protocol."""

from __future__ import annotations

import inspect

from qfexbot.money.journal import RecoverableJournal, SqliteJournal, SqliteStore
from qfexbot.money.journal.threaded import operations


def test_the_facade_offers_every_protocol_operation_with_its_signature():
    for name, spec in operations(RecoverableJournal).items():
        method = getattr(SqliteJournal, name)
        assert inspect.iscoroutinefunction(method), name
        assert inspect.signature(method) == inspect.signature(spec), name


def test_the_store_implements_every_protocol_operation_with_the_same_parameters():
    for name, spec in operations(RecoverableJournal).items():
        assert inspect.signature(getattr(SqliteStore, name)) == inspect.signature(spec), name
