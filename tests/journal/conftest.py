"""Fixtures of the journal tests: a real SQLite journal file in tmp_path, a fake clock and venue."""

from __future__ import annotations

from decimal import Decimal

import pytest
from journal_helpers import DESK_A, DESK_B, TREASURY, FakeClock, FakeVenue

from qfexbot.money.journal import SqliteJournal


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def journal_path(tmp_path):
    return tmp_path / "var" / "journal.sqlite"


@pytest.fixture
async def journal(journal_path, clock):
    j = await SqliteJournal.open(journal_path, clock=clock)
    try:
        yield j
    finally:
        await j.close()


@pytest.fixture
def venue() -> FakeVenue:
    return FakeVenue(
        balances={TREASURY: Decimal(10000), DESK_A: Decimal(100), DESK_B: Decimal(100)}
    )
