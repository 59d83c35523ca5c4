"""Reconciling on accounts that trade: deposit evidence, venue verification, old journal files."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
import trio
from journal_helpers import ACCOUNTS, DESK_A, TREASURY, FakeVenue, make_limits

from qfexbot.money.evidence import classify_evidence
from qfexbot.money.journal import SqliteJournal
from qfexbot.money.transfers import (
    BalanceReading,
    TransferService,
    deposit_meta_key,
)

d = Decimal
KEY = deposit_meta_key("demo")


@dataclass
class DepositVenue(FakeVenue):
    """A fake venue whose accounts also have a ``deposit``: transfers move it (when
    ``reflects_deposit``), trading moves only the available balance."""

    deposits: dict[str, Decimal] = field(default_factory=dict)
    reflects_deposit: bool = True
    reads: int = 0

    def apply(self, src: str, dst: str, amount: Decimal) -> None:
        super().apply(src, dst, amount)
        if self.reflects_deposit:
            self.deposits[src] -= amount
            self.deposits[dst] += amount

    def trade(self, account: str, pnl: str) -> None:
        """Fees, PnL and margin: available moves, deposit does not."""
        self.balances[account] += Decimal(pnl)

    async def read_balance(self, account: str) -> BalanceReading:
        self.reads += 1
        available = await self.read_available(account)
        return BalanceReading(available, self.deposits[account])


@pytest.fixture
def dvenue() -> DepositVenue:
    return DepositVenue(
        balances={TREASURY: d(10000), DESK_A: d(100)},
        deposits={TREASURY: d(10000), DESK_A: d(100)},
    )


def service(journal, venue, clock, **kw):
    return TransferService(
        journal, venue.send, venue.read_balance, venue="demo", accounts=ACCOUNTS,
        limits={"bot1": make_limits()}, clock=clock, **kw,
    )  # fmt: skip


async def move(svc, amount="50"):
    return await svc.transfer("bot1", "rebalancer", TREASURY, DESK_A, d(amount), "top-up")


# -- the classification table ----------------------------------------------------------------

BEFORE = (d(100), d(5))
APPLIED = (*BEFORE, d(90), d(15))  # src -10, dst +10
UNTOUCHED = (*BEFORE, d(100), d(5))
TRADED = (*BEFORE, d(100), d("3.7"))  # dst traded: unclear on its own
TRADED_AND_APPLIED = (*BEFORE, d(90), d("13.7"))
ODD = (*BEFORE, d(95), d(5))  # deposit moved by something else
NOT_VERIFIED = (
    "balances moved by something else; deposits unchanged, but this venue is {} to "
    "reflect transfers in deposit"
)


@pytest.mark.parametrize(
    ("available", "deposit", "verified", "expected"),
    [
        # rule 1: deposits moved by exactly +-amount -> applied, verified or not
        (TRADED_AND_APPLIED, APPLIED, None, ("applied", "deposit")),
        (TRADED_AND_APPLIED, APPLIED, False, ("applied", "deposit")),
        (TRADED_AND_APPLIED, APPLIED, True, ("applied", "deposit")),
        (APPLIED, APPLIED, None, ("applied", "deposit")),
        (
            UNTOUCHED,
            APPLIED,
            True,
            ("unclear", "deposits moved by the amount but available balances are unchanged"),
        ),
        # rule 2: unchanged deposits -> not applied only on a verified venue
        (TRADED, UNTOUCHED, True, ("not_applied", "deposit")),
        (UNTOUCHED, UNTOUCHED, True, ("not_applied", "deposit")),
        (
            APPLIED,
            UNTOUCHED,
            True,
            ("unclear", "deposits unchanged but an available balance moved by exactly the amount"),
        ),
        (TRADED, ODD, True, ("unclear", "deposits moved by something else")),
        (UNTOUCHED, ODD, True, ("unclear", "deposits moved by something else")),
        # rule 3: otherwise the available balances decide
        (TRADED, UNTOUCHED, None, ("unclear", NOT_VERIFIED.format("not verified"))),
        (TRADED, UNTOUCHED, False, ("unclear", NOT_VERIFIED.format("known NOT"))),
        (UNTOUCHED, UNTOUCHED, None, ("not_applied", "available")),
        (UNTOUCHED, UNTOUCHED, False, ("not_applied", "available")),
        (APPLIED, UNTOUCHED, False, ("applied", "available")),
        (APPLIED, ODD, None, ("applied", "available")),
        (APPLIED, None, None, ("applied", "available")),
        (UNTOUCHED, None, True, ("not_applied", "available")),
        # rule 4: nothing clean
        (TRADED, None, True, ("unclear", "balances moved by something else")),
        (TRADED, ODD, None, ("unclear", "balances moved by something else")),
    ],
)
def test_classification_table(available, deposit, verified, expected):
    assert classify_evidence(d(10), available, deposit, deposit_verified=verified) == expected


def test_classification_tolerance():
    float_noise = (*BEFORE, d("90.0000000001"), d("14.9999999999"))
    assert classify_evidence(d(10), TRADED, float_noise, deposit_verified=None)[0] == "applied"
    off_by_a_cent = (*BEFORE, d("90.01"), d(15))
    assert classify_evidence(d(10), TRADED, off_by_a_cent, deposit_verified=True)[0] == "unclear"


# -- the verification state machine ---------------------------------------------------------


async def test_intent_records_deposits_before(journal, dvenue, clock):
    result = await move(service(journal, dvenue, clock), "30")
    entry = await journal.get(result.entry_id)
    assert (entry.src_deposit_before, entry.dst_deposit_before) == (d(10000), d(100))
    assert entry.to_json()["src_deposit_before"] == "10000"


async def test_confirmed_transfer_verifies_the_venue_once(journal, dvenue, clock, caplog):
    svc = service(journal, dvenue, clock)
    assert await svc.deposit_verified() is None
    caplog.set_level(logging.INFO, logger="qfexbot.money.transfers")
    assert (await move(svc)).ok
    assert await journal.get_meta(KEY) == "true" and await svc.deposit_verified() is True
    assert any("venue verified" in r.getMessage() for r in caplog.records)
    reads = dvenue.reads
    assert (await move(svc)).ok
    assert dvenue.reads - reads == 2  # only the pre-send reads: verification is done
    # Persisted: a new service over the same journal knows without another transfer.
    assert await service(journal, dvenue, clock).deposit_verified() is True


async def test_venue_whose_deposit_ignores_transfers_is_marked_false_loudly(
    journal, dvenue, clock, caplog
):
    dvenue.reflects_deposit = False
    svc = service(journal, dvenue, clock)
    assert (await move(svc)).ok
    assert await journal.get_meta(KEY) == "false"
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "does NOT reflect transfers in deposit" in error.getMessage()
    # Sticky: even a later transfer that does move deposits does not flip it back.
    dvenue.reflects_deposit = True
    assert (await move(svc)).ok
    assert await svc.deposit_verified() is False
    # And unchanged deposits are no evidence of "not applied" on this venue.
    dvenue.outcomes = ["fail_before_apply"]
    result = await move(svc)
    dvenue.trade(DESK_A, "-2.5")
    [outcome] = await svc.reconcile()
    assert outcome.state == "unknown" and "known NOT to reflect" in outcome.detail
    assert (await journal.get(result.entry_id)).state == "unknown"


async def test_inconclusive_observation_leaves_the_venue_unverified(journal, dvenue, clock):
    async def send_and_foreign_deposit(src, dst, amount):
        await dvenue.send(src, dst, amount)
        dvenue.deposits[DESK_A] += d(7)  # someone else funded the desk meanwhile

    svc = TransferService(
        journal, send_and_foreign_deposit, dvenue.read_balance, venue="demo", accounts=ACCOUNTS,
        limits={"bot1": make_limits()}, clock=clock,
    )  # fmt: skip
    assert (await move(svc)).ok
    assert await journal.get_meta(KEY) is None
    assert (await move(service(journal, dvenue, clock))).ok  # the next clean one verifies
    assert await journal.get_meta(KEY) == "true"


async def test_unknown_outcomes_and_failures_never_verify(journal, dvenue, clock):
    svc = service(journal, dvenue, clock)
    dvenue.outcomes = ["lost_response", "reject"]
    await move(svc)
    await svc.reconcile()  # applied by deposit: still not a venue confirmation
    assert (await move(svc)).state == "failed"
    assert await journal.get_meta(KEY) is None


async def test_reader_without_deposit_never_uses_or_verifies_deposits(journal, venue, clock):
    svc = TransferService(
        journal, venue.send, venue.read_available, venue="demo", accounts=ACCOUNTS,
        limits={"bot1": make_limits()}, clock=clock,
    )  # fmt: skip
    assert (await move(svc)).ok
    assert await journal.get_meta(KEY) is None
    entry = (await journal.list(kind="transfer"))[0]
    assert entry.src_deposit_before is None and entry.dst_deposit_before is None


# -- reconciliation on trading accounts -------------------------------------------------------


async def test_lost_response_on_a_trading_desk_is_applied_by_deposit(journal, dvenue, clock):
    svc = service(journal, dvenue, clock)
    dvenue.outcomes = ["lost_response"]
    result = await move(svc, "40")
    dvenue.trade(DESK_A, "-1.23")
    dvenue.trade(TREASURY, "0.5")
    [outcome] = await svc.reconcile()
    assert outcome.state == "done" and "applied (by deposit)" in outcome.detail
    assert (await journal.get(result.entry_id)).resolved_by == "reconcile"
    assert dvenue.ledger == [(TREASURY, DESK_A, d(40))]


async def test_failure_before_apply_on_a_trading_desk_needs_a_verified_venue(
    journal, dvenue, clock, autojump_clock
):
    svc = service(journal, dvenue, clock, settle_seconds=10.0)
    dvenue.outcomes = ["fail_before_apply"]
    unverified = await move(svc, "40")
    dvenue.trade(DESK_A, "-1.23")
    clock.advance(60)
    [outcome] = await svc.reconcile()
    assert outcome.state == "unknown" and "not verified" in outcome.detail
    await journal.resolve(unverified.entry_id, False, "operator")

    assert (await move(svc, "5")).ok  # a confirmed transfer verifies the venue
    dvenue.outcomes = ["fail_before_apply"]
    result = await move(svc, "40")
    dvenue.trade(DESK_A, "2.5")
    [early] = await svc.reconcile()  # the quiet-time rule holds for deposit evidence too
    assert early.state == "unknown" and "in doubt for less than 10 s" in early.detail
    await trio.sleep(11)
    [late] = await svc.reconcile()
    assert late.state == "failed" and "not applied (by deposit)" in late.detail
    assert (late.entry_id, dvenue.ledger) == (result.entry_id, [(TREASURY, DESK_A, d(5))])


async def test_reconciler_runs_soon_after_an_unknown_outcome(journal, dvenue, clock):
    svc = service(journal, dvenue, clock)
    passes: list[list] = []
    reported = trio.Event()

    def report(results: list) -> None:
        passes.append(results)
        reported.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: svc.run_reconciler(interval=3600.0, report=report))
        dvenue.outcomes = ["lost_response"]
        await move(svc, "40")
        dvenue.trade(DESK_A, "-0.75")
        with trio.fail_after(10):
            await reported.wait()
        nursery.cancel_scope.cancel()
    assert [r.state for r in passes[0]] == ["done"]


async def test_the_early_pass_never_declares_not_applied(journal, dvenue, clock):
    svc = service(journal, dvenue, clock)
    assert (await move(svc, "5")).ok  # verified
    dvenue.outcomes = ["fail_before_apply"]
    result = await move(svc, "40")
    detail = (await journal.get(result.entry_id)).detail
    [early] = await svc.reconcile(allow_not_applied=False)
    assert (early.entry_id, early.state) == (result.entry_id, "unknown")
    entry = await journal.get(result.entry_id)
    assert (entry.state, entry.detail) == ("unknown", detail)  # untouched, no audit noise
    [full] = await svc.reconcile()
    assert full.state == "failed"


# -- old journal files -------------------------------------------------------------------------

OLD_SCHEMA = """
CREATE TABLE entries (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, bot TEXT NOT NULL, plugin TEXT NOT NULL,
    venue TEXT NOT NULL, src TEXT, dst TEXT, amount TEXT, reason TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL, updated_at REAL NOT NULL, state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0, sent_at REAL,
    resolved_by TEXT CHECK (resolved_by IN ('reconcile', 'operator')), src_before TEXT,
    dst_before TEXT, data TEXT
);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, entry_id TEXT NOT NULL REFERENCES entries (id),
    at REAL NOT NULL, from_state TEXT, to_state TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '',
    by TEXT
);
INSERT INTO entries (id, kind, bot, plugin, venue, src, dst, amount, created_at, updated_at,
    state, src_before, dst_before)
VALUES ('old-1', 'transfer', 'bot1', 'rebalancer', 'demo',
    '00000000-0000-4000-8000-000000000000', '11111111-1111-4111-8111-111111111111', '40',
    1.0, 1.0, 'unknown', '10000', '100');
"""


async def test_an_old_schema_journal_opens_and_gains_the_new_columns(tmp_path, dvenue, clock):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.close()
    journal = await SqliteJournal.open(path, clock=clock)
    try:
        old = await journal.get("old-1")
        assert old.state == "unknown" and old.src_deposit_before is None
        assert (old.epoch, old.group) == (0, "")  # written before fencing: unfenced
        assert await journal.get_meta(KEY) is None
        # The old in-doubt row reconciles from available balances as before (desk untouched).
        dvenue.balances[DESK_A] = d(140)
        dvenue.balances[TREASURY] = d(9960)
        [outcome] = await service(journal, dvenue, clock).reconcile()
        assert outcome.state == "done" and "(by available)" in outcome.detail
        result = await move(service(journal, dvenue, clock), "10")
        new = await journal.get(result.entry_id)
        assert new.src_deposit_before == d(10000) and await journal.get_meta(KEY) == "true"
    finally:
        await journal.close()
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(entries)")}
    assert {"src_deposit_before", "dst_deposit_before", "epoch", "grp"} <= columns
    again = await SqliteJournal.open(path, clock=clock)  # reopening a migrated file is a no-op
    await again.close()
