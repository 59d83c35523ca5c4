"""Exactly-once transfers against the simulator's faults: real REST client, real SQLite journal.

Each test builds the production pieces (QfexVenue's REST client, SqliteJournal, TransferService
with the runtime's sender/reader adapters) against a real simulator on 127.0.0.1, injects a
fault, and checks the journal against the simulator's ledger.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from decimal import Decimal
from pathlib import Path

import pytest
import trio
from runtime_helpers import DESK_A, DESK_B, PRIMARY
from wait_helpers import wait_until

from qfexbot import AlertKind
from qfexbot.config import Limits, SessionSettings
from qfexbot.core.secrets import Secret
from qfexbot.money.journal import SqliteJournal
from qfexbot.money.transfers import TransferService
from qfexbot.runtime.venues import balance_reader, transfer_sender
from qfexbot.sim import QfexSimulator, SimConfig, SimUser
from qfexbot.venues.qfex import QfexVenue

ACCOUNTS = {"treasury": PRIMARY, "desk-a": DESK_A, "desk-b": DESK_B}
LIMITS = Limits(
    max_transfer=Decimal(500),
    max_daily=Decimal(800),
    allowed_pairs=frozenset({("treasury", "desk-a"), ("desk-a", "treasury")}),
    min_interval=0.0,
    min_remaining=Decimal(100),
)


class World:
    """A simulator, a REST client, a journal file and a transfer service over them."""

    def __init__(self, sim: QfexSimulator, venue: QfexVenue, path: Path) -> None:
        self.sim = sim
        self.venue = venue
        self.path = path
        self.journal: SqliteJournal | None = None

    async def service(
        self,
        *,
        limits: Limits = LIMITS,
        kill_switch: Path | None = None,
        send=None,
        settle: float = 0.0,
        clock=time.time,
        on_alert=None,
    ) -> TransferService:
        if self.journal is not None:
            await self.journal.close()
        self.journal = await SqliteJournal.open(self.path)
        return TransferService(
            self.journal,
            send or transfer_sender(self.venue),
            balance_reader(self.venue),
            venue="demo",
            limits={"bot": limits},
            accounts=ACCOUNTS,
            kill_switch=kill_switch,
            settle_seconds=settle,
            clock=clock,
            on_alert=on_alert,
        )

    def rows(self) -> list[tuple[str, str]]:
        with sqlite3.connect(self.path) as db:
            return db.execute(
                "select state, amount from entries where kind = 'transfer' order by created_at"
            ).fetchall()


@pytest.fixture
async def world(nursery, tmp_path):
    sim = QfexSimulator(
        SimConfig(
            users=[
                SimUser(
                    public_key="qfex_pub_t",
                    secret="qfex_secret_transfer_tests",
                    account_id=PRIMARY,
                    subaccounts=[DESK_A, DESK_B],
                    deposits={PRIMARY: Decimal(10000), DESK_A: Decimal(200), DESK_B: Decimal(0)},
                )
            ],
            pulse_interval=0.2,
        )
    )
    urls = await nursery.start(sim.serve, "127.0.0.1")
    venue = QfexVenue(
        "demo",
        trade_url=urls.trade_url,
        mds_url=urls.mds_url,
        rest_url=urls.rest_url,
        user_id=PRIMARY,
        settings=SessionSettings(request_timeout=1.0),
        public_key="qfex_pub_t",
        secret=Secret("qfex_secret_transfer_tests"),
    )
    w = World(sim, venue, tmp_path / "journal.sqlite")
    yield w
    if w.journal is not None:
        await w.journal.close()
    await venue.aclose()


async def test_applied_transfer_whose_response_is_lost_is_reconciled_to_done_once(world):
    service = await world.service()
    world.sim.faults.drop_transfer_response(mode="timeout")
    result = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "top-up")
    assert result.state == "unknown"
    # While unknown, nothing else may move on those accounts.
    refused = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "again")
    assert refused.state == "refused" and refused.code == "unresolved"
    settled = await service.reconcile()
    assert [r.state for r in settled] == ["done"]
    assert [(e.dst, e.amount) for e in world.sim.ledger] == [(DESK_A, Decimal(100))]
    assert world.rows() == [("done", "100")]
    # Unblocked: the next transfer goes through.
    assert (
        await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(50), "more")
    ).state == "done"
    assert len(world.sim.ledger) == 2


async def test_connection_reset_after_applying_is_reconciled_to_done(world):
    service = await world.service()
    world.sim.faults.drop_transfer_response(mode="reset")
    assert (
        await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "x")
    ).state == "unknown"
    assert [r.state for r in await service.reconcile()] == ["done"]
    assert len(world.sim.ledger) == 1


async def test_rejected_transfer_fails_and_is_not_retried(world):
    service = await world.service()
    # A definite 4xx problem+json answer from the venue: nothing moved.
    world.sim.faults.fail_next_rest(1, status=422, path="/user/transfer")
    result = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "top-up")
    assert result.state == "failed"
    assert "422" in result.detail
    assert world.sim.ledger == []
    assert world.rows() == [("failed", "100")]
    assert await service.reconcile() == []  # nothing left in doubt, nothing re-sent
    assert world.sim.ledger == []


async def test_unreadable_destination_balance_refuses_before_journaling_a_send(world):
    foreign = "99999999-9999-4999-8999-999999999999"  # not owned by this key: REST read is 403
    service = await world.service(
        limits=Limits(
            max_transfer=Decimal(500),
            max_daily=Decimal(10**6),
            allowed_pairs=frozenset({(PRIMARY, foreign)}),
            min_interval=0.0,
        )
    )
    result = await service.transfer("bot", "p", PRIMARY, foreign, Decimal(100), "x")
    assert (result.state, result.code) == ("refused", "balance_unknown")
    assert world.sim.ledger == []


async def test_5xx_before_applying_is_reconciled_to_failed_and_may_be_retried(world):
    service = await world.service()
    world.sim.faults.fail_next_rest(1, status=503, path="/user/transfer")
    assert (
        await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "x")
    ).state == "unknown"
    assert [r.state for r in await service.reconcile()] == ["failed"]
    assert world.sim.ledger == []
    retry = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "retry")
    assert retry.state == "done"
    assert len(world.sim.ledger) == 1
    assert world.rows() == [("failed", "100"), ("done", "100")]


@pytest.mark.parametrize("applied", [False, True], ids=["killed-before-send", "killed-after-send"])
async def test_process_killed_mid_transfer_is_reconciled_on_restart_without_duplicate(
    world, applied
):
    real_send = transfer_sender(world.venue)

    async def send_then_die(src, dst, amount):
        if applied:
            await real_send(src, dst, amount)
        await trio.sleep_forever()  # the "process" dies here: cancelled below

    service = await world.service(send=send_then_die)
    with trio.move_on_after(1.0):
        await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "x")
    assert world.rows()[0][0] in ("pending", "sent", "unknown")  # in doubt, never "done"
    # Restart: a fresh journal handle and service over the same file, reconciled before acting.
    restarted = await world.service()
    [settled] = await restarted.reconcile()
    assert settled.state == ("done" if applied else "failed")
    assert len(world.sim.ledger) == (1 if applied else 0)
    assert world.rows() == [("done" if applied else "failed", "100")]


async def test_policy_refusals_for_each_limit_send_nothing(world, tmp_path):
    service = await world.service()
    cases = [
        (PRIMARY, DESK_A, Decimal(501), "max_transfer"),
        (PRIMARY, DESK_B, Decimal(10), "pair_not_allowed"),
        (DESK_A, PRIMARY, Decimal(150), "min_remaining"),  # desk-a has 200, must keep 100
    ]
    for src, dst, amount, code in cases:
        result = await service.transfer("bot", "p", src, dst, amount, "t")
        assert (result.state, result.code) == ("refused", code), result.detail
    assert (await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(500), "t")).state == "done"
    daily = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(400), "t")
    assert (daily.state, daily.code) == ("refused", "max_daily")
    switch = tmp_path / "PAUSED"
    switch.write_text("maintenance")
    paused = await (await world.service(kill_switch=switch)).transfer(
        "bot", "p", PRIMARY, DESK_A, Decimal(1), "t"
    )
    assert (paused.state, paused.code) == ("refused", "paused")
    interval = await (
        await world.service(
            limits=Limits(
                max_transfer=Decimal(500),
                max_daily=Decimal(10**6),
                allowed_pairs=LIMITS.allowed_pairs,
                min_interval=3600.0,
            )
        )
    ).transfer("bot", "p", PRIMARY, DESK_A, Decimal(1), "t")
    assert (interval.state, interval.code) == ("refused", "min_interval")
    assert len(world.sim.ledger) == 1
    with sqlite3.connect(world.path) as db:
        kinds = dict(db.execute("select kind, count(*) from entries group by kind").fetchall())
    assert kinds["refusal"] == 6


async def test_dry_run_sends_nothing_and_is_journaled(world):
    service = await world.service()
    result = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "t", dry_run=True)
    assert result.state == "dry_run"
    await trio.sleep(0.3)
    assert world.sim.ledger == []
    with sqlite3.connect(world.path) as db:
        assert db.execute("select count(*) from entries where kind = 'dry_run'").fetchone() == (1,)


# -- money edges (docs/reliability.md "Money edges") -----------------------------------------


async def until_ledger(world: World, n: int) -> None:
    await wait_until(lambda: len(world.sim.ledger) >= n, within=15)


async def reconcile_until(service: TransferService, state: str) -> list:
    with trio.fail_after(15):
        while True:
            results = await service.reconcile()
            if [r.state for r in results] == [state]:
                return results
            await trio.sleep(0.2)


async def test_a_late_landing_is_re_marked_applied_counted_and_holds_the_accounts(world, caplog):
    # The test failed before this change: the first transfer stayed "failed" after it landed,
    # so the journal showed one transfer where the venue had moved the money twice, silently.
    # settle (2 s) is set shorter than the venue's hold (5 s) on purpose, to force the verdict.
    alerts = []
    service = await world.service(settle=2.0, on_alert=alerts.append)
    world.sim.faults.hold_transfers(5.0)
    first = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "top-up")
    assert first.state == "unknown"
    await reconcile_until(service, "failed")
    retry = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "retry")
    assert retry.state == "done"
    await until_ledger(world, 2)  # the held first request lands now: the money moved twice
    [late] = await service.reconcile()
    assert (late.entry_id, late.state) == (first.entry_id, "done")
    assert "late landing" in late.detail
    trail = await world.journal.events(first.entry_id)
    assert (trail[-1]["from_state"], trail[-1]["to_state"], trail[-1]["by"]) == (
        "failed",
        "done",
        "reconcile",
    )
    assert service.late_landings == 1
    # Loud, and the two accounts are paused until an operator looks (durable: in the journal).
    assert any(
        r.levelno == logging.ERROR and "LATE LANDING" in r.getMessage() for r in caplog.records
    )
    held = await world.journal.active_holds("demo")
    assert sorted(h.account for h in held) == sorted([PRIMARY, DESK_A])
    # One late-landing alert for the notifier (plugins/notifier.py), naming the entry.
    assert [(a.alert, a.subject, dict(a.details)["code"]) for a in alerts] == [
        (AlertKind.LATE_LANDING, first.entry_id, "late_landing")
    ]
    again = await service.transfer("bot", "p", DESK_A, PRIMARY, Decimal(10), "sweep")
    assert (again.state, again.code) == ("refused", "account_held")
    assert "qfexbot journal release" in again.detail
    # Journal and venue agree again: two transfers done, two in the ledger; no third one.
    assert world.rows() == [("done", "100"), ("done", "100")]
    assert len(world.sim.ledger) == 2
    assert await service.reconcile() == []  # landed once, re-marked once
    assert len(alerts) == 1  # and alerted once
    restarted = await world.service(settle=2.0)
    blocked = await restarted.transfer("bot", "p", PRIMARY, DESK_A, Decimal(10), "after restart")
    assert blocked.code == "account_held"
    assert await world.journal.release_holds("demo", PRIMARY, "operator") == 1
    assert await world.journal.release_holds("demo", DESK_A, "operator") == 1
    assert (await restarted.transfer("bot", "p", PRIMARY, DESK_A, Decimal(10), "x")).state == "done"


async def test_a_wall_clock_step_while_in_doubt_does_not_settle_the_transfer(world):
    # The test failed before this change: the quiet time was wall clock minus sent_at, so the
    # hour-long step declared the held transfer "not applied" and allowed a second one.
    wall = [time.time()]
    service = await world.service(settle=2.0, clock=lambda: wall[0])
    world.sim.faults.hold_transfers(4.0)
    first = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "top-up")
    assert first.state == "unknown"
    wall[0] += 3600.0
    assert [r.state for r in await service.reconcile()] == ["unknown"]
    refused = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "retry")
    assert refused.code == "unresolved"
    await until_ledger(world, 1)
    assert [r.state for r in await service.reconcile()] == ["done"]
    assert world.rows() == [("done", "100")] and len(world.sim.ledger) == 1


async def verified(world: World, service: TransferService) -> None:
    """One confirmed transfer: the venue is seen to reflect transfers in deposit."""
    assert (await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(1), "verify")).ok
    assert await service.deposit_verified() is True


async def test_an_outside_mover_never_makes_a_failed_transfer_look_applied(world, caplog):
    # The test failed before this change: after the outside mover's second step the deposits
    # showed exactly the amount, and the transfer the venue had refused was journaled done.
    service = await world.service()
    await verified(world, service)
    world.sim.faults.fail_next_rest(1, status=503, path="/user/transfer")
    lost = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "top-up")
    assert lost.state == "unknown"
    world.sim.faults.outside_transfer(PRIMARY, DESK_A, Decimal(60))  # the web app, say
    [first] = await service.reconcile()
    assert first.state == "unknown"
    world.sim.faults.outside_transfer(PRIMARY, DESK_A, Decimal(40))
    [second] = await service.reconcile()
    assert second.state == "unknown"  # deposits now show ±100, but that is no evidence
    assert "cannot conclude" in first.detail and "held" in second.detail
    assert [e.outside for e in world.sim.ledger] == [False, True, True]
    held = await world.journal.active_holds("demo")
    assert {(h.account, h.code, h.entry_id) for h in held} == {
        (PRIMARY, "unexplained_deposits", lost.entry_id),
        (DESK_A, "unexplained_deposits", lost.entry_id),
    }
    assert any(
        r.levelno == logging.ERROR and "account held" in r.getMessage() for r in caplog.records
    )
    # The operator checks the venue, resolves it, and must still release the accounts.
    await world.journal.resolve(lost.entry_id, False, "operator")
    refused = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(10), "x")
    assert (refused.state, refused.code) == ("refused", "account_held")


async def test_an_outside_mover_never_makes_an_applied_transfer_look_not_applied(world):
    # The test failed before this change: the outside mover put the deposits back where they
    # were, the applied transfer was reconciled "not applied", and the retry doubled it.
    service = await world.service(settle=1.0)
    await verified(world, service)
    world.sim.faults.hold_transfers(3.0)
    ours = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "top-up")
    assert ours.state == "unknown"
    world.sim.faults.outside_transfer(DESK_A, PRIMARY, Decimal(30))
    assert [r.state for r in await service.reconcile()] == ["unknown"]
    await until_ledger(world, 3)  # ours lands
    world.sim.faults.outside_transfer(DESK_A, PRIMARY, Decimal(70))  # deposits back as before
    await trio.sleep(1.2)  # past settle
    [after] = await service.reconcile()
    assert after.state == "unknown"
    retry = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "retry")
    assert retry.state == "refused"
    assert [e.amount for e in world.sim.ledger if not e.outside] == [Decimal(1), Decimal(100)]


async def test_dust_is_refused_before_anything_is_sent_and_blocks_nothing(world):
    # The test failed before this change: 0.0000005 was sent; with its response lost it could
    # never be reconciled (its delta is within the tolerance) and blocked both accounts forever.
    service = await world.service()
    world.sim.faults.drop_transfer_response(mode="timeout")
    dust = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal("0.0000005"), "dust")
    assert (dust.state, dust.code) == ("refused", "below_minimum")
    assert "minimum transfer 0.01" in dust.detail
    assert world.sim.ledger == [] and world.rows() == []
    # The smallest allowed amount is far above the tolerance: it reconciles like any other.
    cent = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal("0.01"), "cent")
    assert cent.state == "unknown"  # the dropped response is consumed by this one
    assert [r.state for r in await service.reconcile()] == ["done"]
    assert [e.amount for e in world.sim.ledger] == [Decimal("0.01")]
