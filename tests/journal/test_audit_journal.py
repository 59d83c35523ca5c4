"""Audit findings 3, 6, 9, 12 and 14: journal transactions, the operator CLI, classification.

Through the real SqliteStore/SqliteJournal, ``journal_cli`` and ``qfexbot.cli.main`` on a
journal file; TransferService where the reconciliation path matters. Each failed on the code
before its fix (docs/reliability.md "Money edges").
"""

from __future__ import annotations

import logging
import sqlite3
from decimal import Decimal

import pytest
from journal_helpers import DESK_A, TREASURY, FakeVenue, make_limits

from qfexbot.cli import journal as journal_cli
from qfexbot.cli import main
from qfexbot.cli.journal import JournalCommandError, journal_resolve
from qfexbot.money.evidence import classify_evidence
from qfexbot.money.journal import BudgetExceeded, DailyBudget, SqliteJournal, SqliteStore
from qfexbot.money.transfers import BalanceReading, TransferService

d = Decimal
OTHER_TREASURY = "33333333-3333-4333-8333-333333333333"


def intent(store: SqliteStore, amount: str = "100", deposits: bool = True) -> str:
    """A transfer treasury -> desk-a left unknown, with (or without) deposits recorded."""
    entry = store.record_intent(
        bot="b", plugin="p", venue="demo", src=TREASURY, dst=DESK_A, amount=d(amount),
        reason="r", src_before=d(1000), dst_before=d(10),
        src_deposit_before=d(1000) if deposits else None,
        dst_deposit_before=d(10) if deposits else None, owner="user",
    )  # fmt: skip
    store.mark_sent(entry.id)
    store.mark_unknown(entry.id, "outcome unknown: read timeout")
    return entry.id


# -- finding 14 ------------------------------------------------------------------------------


@pytest.mark.parametrize("available", [
    (d(100), d(5), d(90), d("3.7")),  # src exactly -10, dst traded
    (d(100), d(5), d("97.2"), d(15)),  # dst exactly +10, src traded
])  # fmt: skip
def test_either_account_moving_by_the_amount_contradicts_not_applied(available):
    # The test failed before this change: only both accounts moving made it unclear.
    untouched = (d(100), d(5), d(100), d(5))
    verdict, why = classify_evidence(d(10), available, untouched, deposit_verified=True)
    assert (verdict, why) == (
        "unclear",
        "deposits unchanged but an available balance moved by exactly the amount",
    )
    # Moving the other way (a sweep's direction) is no contradiction.
    away = (d(100), d(5), d(110), d("3.7"))
    assert classify_evidence(d(10), away, untouched, deposit_verified=True)[0] == "not_applied"


# -- finding 3: the operator's "not applied" starts a watch in the same transaction -----------


def test_operator_not_applied_watches_from_the_recorded_deposits(tmp_path):
    # The test failed before this change: the operator's resolve left no watch.
    path = tmp_path / "j.sqlite"
    store = SqliteStore(path)
    try:
        watched, blind = intent(store), intent(store, deposits=False)
    finally:
        store.close()
    assert "watched for a late landing from the deposits before its send (1000 / 10)" in (
        journal_resolve(path, watched, applied=False)
    )
    assert "no deposits were recorded" in journal_resolve(path, blind, applied=False)
    store = SqliteStore(path)
    try:
        [watch] = store.watches("demo", owner="user")
        assert (watch.entry_id, watch.src_deposit, watch.dst_deposit) == (watched, d(1000), d(10))
        assert (watch.src, watch.dst, watch.amount) == (TREASURY, DESK_A, d(100))
    finally:
        store.close()


async def test_applied_evidence_without_a_watch_holds_both_accounts(tmp_path, caplog):
    # The test failed before this change: the evidence was dropped at INFO and nothing held.
    venue = FakeVenue(balances={TREASURY: d(10000), DESK_A: d(100)})
    journal = await SqliteJournal.open(tmp_path / "j.sqlite")
    try:
        svc = TransferService(journal, venue.send, venue.read_available, venue="demo",
                              accounts={"treasury": TREASURY, "desk-a": DESK_A},
                              limits={"bot1": make_limits()}, user_id="user")  # fmt: skip
        venue.outcomes = ["lost_response"]  # applied, response lost
        lost = await svc.transfer("bot1", "p", TREASURY, DESK_A, d(50), "top-up")
        assert lost.state == "unknown"
        real = venue.read_available

        async def racing(account: str) -> BalanceReading:
            if (await journal.get(lost.entry_id)).state == "unknown":
                await journal.resolve(lost.entry_id, False, "operator")  # no deposits: no watch
            return BalanceReading(await real(account))

        [result] = await svc.reconcile(racing)
        assert result.state == "failed"
        held = await journal.active_holds(owner="user")
        assert {(h.account, h.code) for h in held} == {
            (TREASURY, "contradicted_resolution"),
            (DESK_A, "contradicted_resolution"),
        }
        assert any(
            r.levelno == logging.ERROR and "found it APPLIED" in r.getMessage()
            for r in caplog.records
        )
        again = await svc.transfer("bot1", "p", TREASURY, DESK_A, d(50), "retry")
        assert again.code == "account_held" and len(venue.ledger) == 1
    finally:
        await journal.close()


# -- finding 9 -------------------------------------------------------------------------------


def test_a_late_landing_is_one_transaction(tmp_path, monkeypatch):
    # The test failed before this change (no such transaction: three separate commits).
    path = tmp_path / "j.sqlite"
    store = SqliteStore(path)
    try:
        entry_id = intent(store)
        store.resolve(entry_id, False, "reconcile")
        real = SqliteStore._update_watch

        def crash(self, *args, **kwargs):
            raise RuntimeError("disk full, say, after the re-mark and the holds")

        monkeypatch.setattr(SqliteStore, "_update_watch", crash)
        with pytest.raises(RuntimeError):
            store.record_late_landing(
                entry_id, "reconcile", "late", "demo", "user", d(-100), d(100)
            )
        assert store.get(entry_id).state == "failed"  # all rolled back together
        assert store.active_holds() == [] and len(store.watches("demo", owner="user")) == 1
        monkeypatch.setattr(SqliteStore, "_update_watch", real)
        entry, placed = store.record_late_landing(entry_id, "reconcile", "late", "demo", "user",
                                                  d(-100), d(100))  # fmt: skip
        assert entry.state == "done" and {h.account for h in placed} == {TREASURY, DESK_A}
        assert store.watches("demo", owner="user") == []
    finally:
        store.close()


async def test_a_watch_on_a_landing_recorded_without_holds_is_held_not_skipped(tmp_path, caplog):
    # The test failed before this change: the watch's entry was already done (an older version
    # died between re-marking it and holding the accounts), re-marking raised, and every pass
    # skipped it forever: no holds, no ERROR, and the next transfer was sent.
    path = tmp_path / "j.sqlite"
    store = SqliteStore(path)
    try:
        entry_id = intent(store)
        store.resolve(entry_id, False, "reconcile")
    finally:
        store.close()
    with sqlite3.connect(path) as db:  # what that older version left: done, watch still active
        db.execute("UPDATE entries SET state = 'done', resolved_by = 'reconcile', detail = "
                   "'late landing: ...' WHERE id = ?", (entry_id,))  # fmt: skip
        db.execute("INSERT INTO events (entry_id, at, from_state, to_state, detail, by) "
                   "VALUES (?, 0, 'failed', 'done', 'late landing: ...', 'reconcile')",
                   (entry_id,))  # fmt: skip
    venue = FakeVenue(balances={TREASURY: d(10000), DESK_A: d(100)})
    journal = await SqliteJournal.open(path)
    try:
        svc = TransferService(journal, venue.send, venue.read_available, venue="demo",
                              accounts={"treasury": TREASURY, "desk-a": DESK_A},
                              limits={"bot1": make_limits()}, user_id="user")  # fmt: skip
        [result] = await svc.reconcile()
        assert (result.entry_id, result.state) == (entry_id, "done")
        held = await journal.active_holds(owner="user")
        assert {(h.account, h.code) for h in held} == {(TREASURY, "late_landing"),
                                                       (DESK_A, "late_landing")}  # fmt: skip
        assert await journal.watches("demo", owner="user") == []
        assert any(
            r.levelno == logging.ERROR and "LATE LANDING" in r.getMessage() for r in caplog.records
        )
        nxt = await svc.transfer("bot1", "p", TREASURY, DESK_A, d(10), "next")
        assert nxt.code == "account_held" and venue.ledger == []
    finally:
        await journal.close()


# -- finding 12 ------------------------------------------------------------------------------


def test_the_budget_transaction_counts_a_watched_not_applied_transfer(tmp_path):
    # The test failed before this change: a "not applied" row counted zero while watched.
    store = SqliteStore(tmp_path / "j.sqlite")
    try:
        entry_id = intent(store, "600")
        store.resolve(entry_id, False, "reconcile")
        budget = DailyBudget(d(1000), 0.0, None)
        with pytest.raises(BudgetExceeded):
            store.record_intent(
                bot="b",
                plugin="p",
                venue="demo",
                src=TREASURY,
                dst=DESK_A,
                amount=d(500),
                reason="r",
                owner="user",
                budget=budget,
            )
        assert [e.id for e in store.window_transfers("user", None, 0.0)] == [entry_id]
        store.update_watch(entry_id, "expired", d(0), d(0))  # watched no more: it is free
        assert store.window_transfers("user", None, 0.0) == []
        store.record_intent(
            bot="b",
            plugin="p",
            venue="demo",
            src=TREASURY,
            dst=DESK_A,
            amount=d(500),
            reason="r",
            owner="user",
            budget=budget,
        )
    finally:
        store.close()


# -- finding 6 -------------------------------------------------------------------------------


def test_an_alias_naming_two_accounts_in_two_tables_is_refused(tmp_path, capsys):
    # The test failed before this change: the last table's `treasury` was released.
    tables = {"prod": {"treasury": TREASURY, "desk-a": DESK_A},
              "other": {"treasury": OTHER_TREASURY, "desk-a": DESK_A}}  # fmt: skip
    with pytest.raises(JournalCommandError) as raised:
        journal_cli.account_for_release("treasury", tables)
    text = str(raised.value)
    assert "[venues.other] " + OTHER_TREASURY in text and "[venues.prod] " + TREASURY in text
    assert "pass the account id" in text
    assert journal_cli.account_for_release("desk-a", tables) == DESK_A  # same id everywhere: fine
    assert journal_cli.account_for_release(TREASURY, tables) == TREASURY
    path = tmp_path / "j.sqlite"
    store = SqliteStore(path)
    try:
        store.place_hold("prod", TREASURY, "late_landing", "landed late", None, owner="u1")
        store.place_hold("other", OTHER_TREASURY, "late_landing", "landed late", None, owner="u2")
    finally:
        store.close()
    config = tmp_path / "bots.toml"
    config.write_text(f"""
[runtime]
journal = "{path}"

[venues.prod]
kind = "qfex"
simulator = true
user_id = "{TREASURY}"
public_key = "qfex_pub_a"
secret = "qfex_secret_a"
accounts = {{ treasury = "{TREASURY}" }}

[venues.other]
kind = "qfex"
simulator = true
user_id = "{OTHER_TREASURY}"
public_key = "qfex_pub_b"
secret = "qfex_secret_b"
accounts = {{ treasury = "{OTHER_TREASURY}" }}

[bots.b]
venue = "prod"
accounts = ["treasury"]
[bots.b.plugins.p]
""")
    assert main(["journal", "release", "treasury", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "[venues.other]" in err and "[venues.prod]" in err
    store = SqliteStore(path)
    try:
        assert len(store.active_holds()) == 2  # nothing released
    finally:
        store.close()
    assert main(["journal", "release", OTHER_TREASURY, "--config", str(config)]) == 0
    store = SqliteStore(path)
    try:
        assert [h.account for h in store.active_holds()] == [TREASURY]
    finally:
        store.close()
