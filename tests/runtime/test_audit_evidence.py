"""Audit findings 3, 4, 9, 12 and 14 on the money path, against the real simulator.

Each test runs the production pieces (QfexVenue's REST client, SqliteJournal, TransferService
with the runtime's sender/reader adapters, the operator's ``journal_cli`` functions) against a
simulator on 127.0.0.1 and checks the journal against the simulator's ledger. Each failed on
the code before its fix (docs/reliability.md "Money edges").
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio
from runtime_helpers import DESK_A, DESK_B, PRIMARY
from wait_helpers import wait_until

from qfexbot.cli import journal as journal_cli
from qfexbot.config import Limits, SessionSettings
from qfexbot.core.secrets import Secret
from qfexbot.money.journal import SqliteJournal
from qfexbot.money.transfers import BalanceReading, TransferService, deposit_meta_key
from qfexbot.runtime.venues import balance_reader, transfer_sender
from qfexbot.sim import QfexSimulator, SimConfig, SimUser
from qfexbot.venues.qfex import QfexVenue

ACCOUNTS = {"treasury": PRIMARY, "desk-a": DESK_A, "desk-b": DESK_B}
LIMITS = Limits(
    max_transfer=Decimal(500),
    max_daily=Decimal(800),
    allowed_pairs=frozenset({("treasury", "desk-a")}),
    min_interval=0.0,
    min_remaining=Decimal(100),
)


class Crash(Exception):
    """Stands for the process dying at this point (the journal call never happens)."""


class World:
    """A simulator, a REST client, a journal file and transfer services over them."""

    def __init__(self, sim: QfexSimulator, venue: QfexVenue, path: Path) -> None:
        self.sim = sim
        self.venue = venue
        self.path = path
        self.journal: SqliteJournal | None = None

    async def service(self, *, settle: float = 0.0, read: Any = None) -> TransferService:
        """A fresh service on a freshly opened journal (a restart, if one was open)."""
        if self.journal is not None:
            await self.journal.close()
        self.journal = await SqliteJournal.open(self.path)
        return TransferService(
            self.journal, transfer_sender(self.venue),
            read or balance_reader(self.venue), venue="demo",
            limits={"bot": LIMITS}, accounts=ACCOUNTS, settle_seconds=settle, user_id=PRIMARY,
        )  # fmt: skip

    def ours(self) -> list[Decimal]:
        """Amounts of the transfers the venue applied for qfexbot (outside moves left out)."""
        return [e.amount for e in self.sim.ledger if not e.outside]

    def rows(self) -> list[tuple[str, str]]:
        with sqlite3.connect(self.path) as db:
            return db.execute("select state, amount from entries where kind = 'transfer' "
                              "order by created_at, rowid").fetchall()  # fmt: skip


@pytest.fixture
async def world(nursery, tmp_path):
    sim = QfexSimulator(SimConfig(
        users=[SimUser(public_key="qfex_pub_t", secret="qfex_secret_audit_tests",
                       account_id=PRIMARY, subaccounts=[DESK_A, DESK_B],
                       deposits={PRIMARY: Decimal(10000), DESK_A: Decimal(200),
                                 DESK_B: Decimal(0)})],
        pulse_interval=0.2,
    ))  # fmt: skip
    urls = await nursery.start(sim.serve, "127.0.0.1")
    venue = QfexVenue(
        "demo",
        trade_url=urls.trade_url,
        mds_url=urls.mds_url,
        rest_url=urls.rest_url,
        user_id=PRIMARY,
        settings=SessionSettings(request_timeout=1.0),
        public_key="qfex_pub_t",
        secret=Secret("qfex_secret_audit_tests"),
    )
    w = World(sim, venue, tmp_path / "journal.sqlite")
    yield w
    if w.journal is not None:
        await w.journal.close()
    await venue.aclose()


async def until_ledger(world: World, n: int) -> None:
    await wait_until(lambda: len(world.sim.ledger) >= n, within=15)


async def reconcile_until(service: TransferService, state: str) -> list:
    with trio.fail_after(15):
        while True:
            results = await service.reconcile()
            if [r.state for r in results] == [state]:
                return results
            await trio.sleep(0.2)


async def verified(service: TransferService) -> None:
    """One confirmed transfer: the venue is seen to reflect transfers in deposit."""
    assert (await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(1), "verify")).ok
    assert await service.deposit_verified() is True


async def resolve_by_operator(world: World, entry_id: str, applied: bool) -> str:
    """``qfexbot journal resolve ID --applied|--not-applied``, beside the running service."""
    return await trio.to_thread.run_sync(journal_cli.journal_resolve, world.path, entry_id, applied)


def errors(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.ERROR and text in r.getMessage()]


# -- finding 3: an operator's "not applied" is watched too ----------------------------------


async def test_an_operator_not_applied_is_watched_and_its_late_landing_caught(world, caplog):
    # The test failed before this change: `journal resolve --not-applied` added no watch, the
    # retry went out, the held request landed, and the journal showed one transfer of two.
    service = await world.service()
    world.sim.faults.hold_transfers(4.0)
    first = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "top-up")
    assert first.state == "unknown"
    said = await resolve_by_operator(world, first.entry_id, applied=False)
    assert "marked failed" in said and "watched for a late landing" in said
    retry = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "retry")
    assert retry.state == "done"
    await until_ledger(world, 2)  # the held first request lands: the money moved twice
    [late] = await service.reconcile()
    assert (late.entry_id, late.state) == (first.entry_id, "done")
    assert "late landing" in late.detail and service.late_landings == 1
    assert errors(caplog, "LATE LANDING")
    held = await world.journal.active_holds(owner=PRIMARY)
    assert {(h.account, h.code) for h in held} == {(PRIMARY, "late_landing"),
                                                   (DESK_A, "late_landing")}  # fmt: skip
    assert world.rows() == [("done", "100"), ("done", "100")]
    refused = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(10), "more")
    assert refused.code == "account_held" and world.ours() == [Decimal(100)] * 2


async def test_applied_evidence_against_an_operator_not_applied_is_never_dropped(world, caplog):
    # The test failed before this change: the pass read "applied" while the operator resolved
    # "not applied"; it logged "resolved elsewhere meanwhile" at INFO and dropped the evidence,
    # and the retry moved the money a second time.
    service = await world.service()
    await verified(service)
    world.sim.faults.hold_transfers(2.0)
    lost = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "top-up")
    assert lost.state == "unknown"
    read = balance_reader(world.venue)
    raced = []

    async def read_while_the_operator_resolves(account: str) -> BalanceReading:
        if not raced:  # the held request lands; an operator looking at an older screen answers
            raced.append(True)
            await until_ledger(world, 2)
            await resolve_by_operator(world, lost.entry_id, applied=False)
        return await read(account)

    results = await service.reconcile(read_while_the_operator_resolves)
    assert errors(caplog, "an operator resolved a transfer NOT applied while reconciliation "
                          "found it APPLIED")  # fmt: skip
    # The operator's watch (from the deposits before the send) catches it in the same pass.
    assert (await world.journal.get(lost.entry_id)).state == "done"
    assert [r.state for r in results] == ["failed", "done"] and service.late_landings == 1
    retry = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "retry")
    assert (retry.state, retry.code) == ("refused", "account_held")
    assert world.ours() == [Decimal(1), Decimal(100)]


# -- finding 4: a hold is a durable mark on the entry -----------------------------------------


async def test_a_released_hold_still_bars_an_automatic_verdict_and_release_needs_resolve(
    world, caplog
):
    # The test failed before this change: after the holds were released, the outside mover's
    # second move made the deposits look untouched, the applied transfer was auto-marked "not
    # applied" and the retry doubled it. `journal release` also released with it in doubt.
    service = await world.service(settle=0.5)
    await verified(service)
    world.sim.faults.drop_transfer_response(mode="timeout")  # applied, response lost
    ours = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "top-up")
    assert ours.state == "unknown"
    world.sim.faults.outside_transfer(DESK_A, PRIMARY, Decimal(60))  # another mover
    [first] = await service.reconcile(allow_not_applied=False)
    assert first.state == "unknown"
    assert {h.code for h in await world.journal.active_holds(owner=PRIMARY)} == {
        "unexplained_deposits"
    }
    for alias, account in (("treasury", PRIMARY), ("desk-a", DESK_A)):
        with pytest.raises(
            journal_cli.JournalCommandError,
            match=f"still in doubt: {ours.entry_id}.*resolve each first",
        ):
            await trio.to_thread.run_sync(journal_cli.journal_release, world.path, alias,
                                          {alias: account})  # fmt: skip
    # Released anyway (by hand, or by an older CLI): the entry keeps its mark.
    assert await world.journal.release_holds(None, PRIMARY, "operator") == 1
    assert await world.journal.release_holds(None, DESK_A, "operator") == 1
    world.sim.faults.outside_transfer(DESK_A, PRIMARY, Decimal(40))  # deposits look untouched
    await trio.sleep(0.7)  # past settle
    [after] = await service.reconcile()
    assert after.state == "unknown" and "was held because of this transfer" in after.detail
    retry = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "retry")
    assert (retry.state, retry.code) == ("refused", "unresolved")
    assert world.ours() == [Decimal(1), Decimal(100)]
    # Resolved by the operator, then released: money moves again.
    await resolve_by_operator(world, ours.entry_id, applied=True)
    assert (await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(5), "next")).ok


# -- finding 9: verdict + watch, late landing + holds: one transaction each ---------------------


async def test_a_crash_after_the_not_applied_verdict_leaves_the_transfer_watched(world):
    # The test failed before this change: the verdict and add_watch were two commits; a crash
    # between them left the transfer "not applied" and unwatched, and its late landing unseen.
    service = await world.service(settle=1.0)
    world.sim.faults.hold_transfers(4.0)
    first = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "top-up")
    assert first.state == "unknown"

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise Crash("process killed after the verdict")

    world.journal.add_watch = crash  # the old second step, if it is still called
    await trio.sleep(1.1)
    with contextlib.suppress(Crash):
        await reconcile_until(service, "failed")
    assert (await world.journal.get(first.entry_id)).state == "failed"
    restarted = await world.service(settle=1.0)
    [watch] = await world.journal.watches("demo", owner=PRIMARY)
    assert watch.entry_id == first.entry_id
    await until_ledger(world, 1)  # the held request lands
    [late] = await restarted.reconcile()
    assert (late.entry_id, late.state) == (first.entry_id, "done")
    assert len(await world.journal.active_holds(owner=PRIMARY)) == 2


async def test_a_crash_while_recording_a_late_landing_never_loses_its_holds(world, caplog):
    # The test failed before this change (exp7): re-marking done, closing the watch and placing
    # the holds were separate commits; a crash after the first left the landing recorded with
    # no holds, and every later pass skipped the watch forever (no ERROR, next transfer sent).
    service = await world.service(settle=1.0)
    world.sim.faults.hold_transfers(4.0)
    first = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "top-up")
    await trio.sleep(1.1)
    await reconcile_until(service, "failed")
    await until_ledger(world, 1)  # the held request lands

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise Crash("process killed after the re-mark")

    world.journal.update_watch = crash  # the old second step
    with contextlib.suppress(Crash):
        await service.reconcile()
    restarted = await world.service(settle=1.0)
    await restarted.reconcile()
    assert (await world.journal.get(first.entry_id)).state == "done"
    held = await world.journal.active_holds(owner=PRIMARY)
    assert {(h.account, h.code, h.entry_id) for h in held} == {
        (PRIMARY, "late_landing", first.entry_id),
        (DESK_A, "late_landing", first.entry_id),
    }
    assert await world.journal.watches("demo", owner=PRIMARY) == []
    assert errors(caplog, "LATE LANDING")
    nxt = await restarted.transfer("bot", "p", PRIMARY, DESK_A, Decimal(10), "next")
    assert nxt.code == "account_held" and world.ours() == [Decimal(100)]


# -- finding 12: a watched "not applied" counts against max_daily ---------------------------


async def test_a_watched_not_applied_transfer_counts_against_max_daily(world):
    # The test failed before this change: the 500 reconciled "not applied" counted as zero, the
    # 400 went out, and when the 500 landed late 900 had moved with max_daily 800.
    service = await world.service(settle=1.0)
    world.sim.faults.hold_transfers(4.0)
    first = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(500), "top-up")
    assert first.state == "unknown"
    await trio.sleep(1.1)
    await reconcile_until(service, "failed")
    second = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(400), "more")
    assert (second.state, second.code) == ("refused", "max_daily")
    assert "500" in second.detail
    await until_ledger(world, 1)  # it lands: 500 moved, within the budget
    assert [r.state for r in await service.reconcile()] == ["done"]
    assert sum(world.ours()) <= LIMITS.max_daily


# -- finding 14: one account moving by exactly the amount contradicts "not applied" -----------


async def test_one_account_moving_by_the_amount_is_no_not_applied(world):
    # The test failed before this change (exp1): deposits unchanged on a venue believed to
    # reflect transfers in deposit, the treasury moved by exactly -100 while the desk traded;
    # the verdict was "not applied" and the retry doubled the transfer.
    deposits: dict[str, Decimal] = {}
    real = balance_reader(world.venue)

    async def deposit_frozen(account: str) -> BalanceReading:
        # A venue that does not move `deposit` on transfers (the simulator does).
        now = await real(account)
        return BalanceReading(now.available, deposits.setdefault(account, now.deposit))

    service = await world.service(settle=0.5, read=deposit_frozen)
    await world.journal.set_meta(
        deposit_meta_key(service.owner), "true", "inherited, never verified"
    )
    world.sim.faults.drop_transfer_response(mode="timeout")  # applied, response lost
    lost = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "top-up")
    assert lost.state == "unknown"
    world.sim.faults.outside_transfer(DESK_A, DESK_B, Decimal(7))  # the desk's PnL, say
    await trio.sleep(0.6)
    [after] = await service.reconcile()
    assert after.state == "unknown" and "an available balance moved by exactly" in after.detail
    retry = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "retry")
    assert retry.code == "unresolved" and world.ours() == [Decimal(100)]
