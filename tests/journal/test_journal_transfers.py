"""TransferService: intent before send, exactly one send, outcomes, reconciliation, policy and
locks."""

from __future__ import annotations

import contextlib
import sqlite3
from decimal import Decimal

import pytest
import trio
import trio.lowlevel
from journal_helpers import ACCOUNTS, DESK_A, DESK_B, TREASURY, make_limits

from qfexbot.cli.journal import journal_resolve
from qfexbot.events import TransferOutcomeEvent
from qfexbot.money.evidence import classify_reconciliation
from qfexbot.money.killswitch import pause
from qfexbot.money.transfers import TransferService


def service(journal, venue, clock, send=None, **kw):
    kw.setdefault("limits", {"bot1": make_limits()})
    return TransferService(
        journal, send or venue.send, venue.read_available, venue="demo", accounts=ACCOUNTS,
        clock=clock, **kw,
    )  # fmt: skip


async def move(svc, amount="50", src=TREASURY, dst=DESK_A, **kw):
    return await svc.transfer(
        "bot1", "rebalancer", src, dst, Decimal(amount), "top-up desk-a", **kw
    )


async def test_done_path_and_outcome_event(journal, venue, clock):
    events: list[TransferOutcomeEvent] = []
    svc = service(journal, venue, clock, on_outcome=events.append)
    result = await move(svc, "50")
    assert result.ok and result.state == "done"
    assert venue.ledger == [(TREASURY, DESK_A, Decimal(50))]
    entry = await journal.get(result.entry_id)
    assert (entry.src_before, entry.dst_before, entry.attempts) == (Decimal(10000), Decimal(100), 1)
    assert [e["to_state"] for e in await journal.events(entry.id)] == ["pending", "sent", "done"]
    assert [(e.entry_id, e.state, e.amount, e.account_id) for e in events] == [
        (entry.id, "done", Decimal(50), TREASURY)
    ]


async def test_intent_is_committed_before_the_send(journal, journal_path, venue, clock):
    seen = []

    async def send(src, dst, amount):
        with contextlib.closing(sqlite3.connect(journal_path)) as db:  # another connection
            seen.extend(
                db.execute("SELECT state, src, dst, amount FROM entries WHERE kind = 'transfer'")
            )
        await venue.send(src, dst, amount)

    result = await move(service(journal, venue, clock, send=send), "25.5")
    assert seen == [("sent", TREASURY, DESK_A, "25.5")]  # intent row committed, marked sent
    states = [e["to_state"] for e in await journal.events(result.entry_id)]
    assert states[:2] == ["pending", "sent"]


async def test_rejected_is_failed_and_never_retried(journal, venue, clock):
    venue.outcomes = ["reject"]
    result = await move(service(journal, venue, clock))
    assert result.state == "failed" and "rejected by the venue: 422" in result.detail
    assert venue.sends == 1 and venue.ledger == []
    assert await journal.unresolved() == []


async def test_not_sent_is_failed(journal, venue, clock):
    venue.outcomes = ["not_sent"]
    result = await move(service(journal, venue, clock))
    assert (result.state, venue.sends) == ("failed", 1)
    assert "not sent: connection refused" in result.detail


async def test_lost_response_is_unknown_then_reconciled_as_applied(journal, venue, clock):
    svc = service(journal, venue, clock)
    venue.outcomes = ["lost_response"]
    result = await move(svc, "40")
    assert result.state == "unknown" and venue.sends == 1
    blocked = await move(svc, "1")
    assert blocked.state == "refused" and blocked.code == "unresolved"
    assert result.entry_id in blocked.detail and "qfexbot journal resolve" in blocked.detail
    assert venue.sends == 1

    [outcome] = await svc.reconcile()
    assert (outcome.entry_id, outcome.state) == (result.entry_id, "done")
    entry = await journal.get(result.entry_id)
    assert entry.resolved_by == "reconcile" and "applied" in entry.detail
    assert venue.ledger == [(TREASURY, DESK_A, Decimal(40))]  # exactly once
    assert (await move(svc, "1")).ok


async def test_failure_before_apply_is_reconciled_as_not_applied_and_may_retry(
    journal, venue, clock
):
    svc = service(journal, venue, clock)
    venue.outcomes = ["fail_before_apply"]
    assert (await move(svc, "40")).state == "unknown"
    [outcome] = await svc.reconcile()
    assert outcome.state == "failed" and "not applied" in outcome.detail
    retry = await move(svc, "40")
    assert retry.ok and venue.ledger == [(TREASURY, DESK_A, Decimal(40))]


async def test_unclear_balances_stay_unknown_until_an_operator_resolves(
    journal, journal_path, venue, clock
):
    svc = service(journal, venue, clock)
    venue.outcomes = ["lost_response"]
    result = await move(svc, "40")
    venue.balances[DESK_A] -= Decimal("3.21")  # trading PnL moved the desk meanwhile
    [outcome] = await svc.reconcile()
    assert outcome.state == "unknown"
    assert "balances moved by something else" in outcome.detail and "--applied" in outcome.detail
    trail = len(await journal.events(result.entry_id))
    await svc.reconcile()  # same evidence: no new audit noise
    assert len(await journal.events(result.entry_id)) == trail
    refused = await move(svc, "1", src=DESK_A, dst=TREASURY)  # either direction is blocked
    assert refused.code == "unresolved"
    refused_b = await move(svc, "1", dst=DESK_B)  # the treasury is in doubt too
    assert refused_b.code == "unresolved"

    text = journal_resolve(journal_path, result.entry_id, applied=True)
    assert "marked done by operator" in text
    entry = await journal.get(result.entry_id)
    assert (entry.state, entry.resolved_by) == ("done", "operator")
    assert (await move(svc, "1")).ok
    assert len(venue.ledger) == 2


async def test_settle_time_guards_the_not_applied_verdict(journal, venue, clock, autojump_clock):
    svc = service(journal, venue, clock, settle_seconds=10)
    venue.outcomes = ["fail_before_apply"]
    await move(svc, "40")
    await trio.sleep(5)
    [early] = await svc.reconcile()
    assert early.state == "unknown" and "in doubt for less than 10 s" in early.detail
    await trio.sleep(6)
    [late] = await svc.reconcile()
    assert late.state == "failed"


async def test_a_wall_clock_step_is_no_evidence_of_quiet_time(
    journal, journal_path, venue, clock, autojump_clock
):
    # The test failed before this change: quiet time was the wall clock minus sent_at, so a
    # forward step of the clock "settled" the transfer at once and allowed a second one.
    svc = service(journal, venue, clock, settle_seconds=10)
    venue.outcomes = ["fail_before_apply"]
    entry = (await move(svc, "40")).entry_id
    clock.advance(3600)  # NTP step, VM resume, operator: the wall clock leaps an hour
    [stepped] = await svc.reconcile()
    assert stepped.state == "unknown"
    clock.advance(-7200)  # and back, past the send: still nothing either way
    assert [r.state for r in await svc.reconcile()] == ["unknown"]
    # A restart never carries quiet time over on wall-clock stamps: it starts again.
    await trio.sleep(9)
    restarted = service(journal, venue, clock, settle_seconds=10)
    clock.advance(10**6)
    assert [r.state for r in await restarted.reconcile()] == ["unknown"]
    await trio.sleep(10)
    assert [r.state for r in await restarted.reconcile()] == ["failed"]
    assert (await journal.get(entry)).state == "failed" and venue.ledger == []


async def test_balance_read_failure_keeps_it_unknown(journal, venue, clock):
    svc = service(journal, venue, clock)
    venue.outcomes = ["lost_response"]
    await move(svc)
    venue.read_errors = 1
    [first] = await svc.reconcile()
    assert first.state == "unknown" and "balance read failed" in first.detail
    [second] = await svc.reconcile()
    assert second.state == "done"


async def test_cancelled_inside_send_then_restart_reconciles_without_duplicate(
    journal_factory, venue, clock
):
    journal = await journal_factory()
    with trio.CancelScope() as scope:

        async def send(src, dst, amount):
            scope.cancel()  # the "process" dies just before the request goes out
            await trio.lowlevel.checkpoint()
            venue.apply(src, dst, amount)  # never reached

        await move(service(journal, venue, clock, send=send), "60")
    assert scope.cancelled_caught
    [entry] = await journal.list()
    assert entry.state == "unknown" and "cancelled while sending" in entry.detail
    await journal.close()

    async with await journal_factory() as restarted:
        svc = service(restarted, venue, clock)
        [outcome] = await svc.reconcile()
        assert (outcome.entry_id, outcome.state) == (entry.id, "failed")
        assert venue.ledger == []
        assert (await move(svc, "60")).ok
        assert venue.ledger == [(TREASURY, DESK_A, Decimal(60))]


async def test_cancelled_after_the_venue_applied_is_reconciled_as_done(
    journal_factory, venue, clock
):
    journal = await journal_factory()
    with trio.CancelScope() as scope:

        async def send(src, dst, amount):
            venue.apply(src, dst, amount)
            scope.cancel()  # killed while waiting for the response
            await trio.lowlevel.checkpoint()

        await move(service(journal, venue, clock, send=send), "60")
    await journal.close()
    async with await journal_factory() as restarted:
        [outcome] = await service(restarted, venue, clock).reconcile()
        assert outcome.state == "done"
    assert venue.ledger == [(TREASURY, DESK_A, Decimal(60))]


async def test_pending_row_left_by_a_killed_process_is_treated_as_unknown(
    journal_factory, venue, clock
):
    async with await journal_factory() as journal:
        crashed = await journal.record_intent(
            bot="bot1", plugin="rebalancer", venue="demo", src=TREASURY, dst=DESK_A,
            amount=Decimal(70), reason="x", src_before=Decimal(10000), dst_before=Decimal(100),
        )  # fmt: skip
        venue.apply(TREASURY, DESK_A, Decimal(70))  # it did go out before the kill
    async with await journal_factory() as journal:
        svc = service(journal, venue, clock)
        assert (await move(svc, "1")).code == "unresolved"
        [outcome] = await svc.reconcile()
        assert outcome.state == "done"
        trail = await journal.events(crashed.id)
        assert [e["to_state"] for e in trail] == ["pending", "unknown", "done"]
        assert "crash or cancellation" in trail[1]["detail"]
    assert len(venue.ledger) == 1


async def test_entry_without_before_balances_needs_an_operator(journal, venue, clock):
    entry = await journal.record_intent(
        bot="bot1",
        plugin="p",
        venue="demo",
        src=TREASURY,
        dst=DESK_A,
        amount=Decimal(5),
        reason="x",
    )
    [outcome] = await service(journal, venue, clock).reconcile()
    assert outcome.state == "unknown" and "were not recorded" in outcome.detail
    assert (await journal.get(entry.id)).state == "unknown"


async def test_reconcile_ignores_other_venues(journal, venue, clock):
    await journal.record_intent(
        bot="bot1",
        plugin="p",
        venue="elsewhere",
        src=TREASURY,
        dst=DESK_A,
        amount=Decimal(5),
        reason="x",
    )
    assert await service(journal, venue, clock).reconcile() == []


@pytest.mark.parametrize(
    "limits, amount, dst, setup, code",
    [
        (make_limits(max_transfer=Decimal(10)), "11", DESK_A, None, "max_transfer"),
        (
            make_limits(allowed_pairs=[["treasury", "desk-b"]]),
            "1",
            DESK_A,
            None,
            "pair_not_allowed",
        ),
        (make_limits(min_remaining=Decimal(9990)), "11", DESK_A, None, "min_remaining"),
        (make_limits(), "0", DESK_A, None, "invalid_amount"),
        (make_limits(), "1", TREASURY, None, "same_account"),
        (make_limits(), "1", DESK_A, "read_error", "balance_unknown"),
        (make_limits(), "1", DESK_A, "paused", "paused"),
        (make_limits(max_daily=Decimal(100)), "60", DESK_A, "spent_50", "max_daily"),
        (make_limits(min_interval=30), "1", DESK_A, "spent_50", "min_interval"),
    ],
)
async def test_policy_refusals_are_journaled_and_send_nothing(
    journal, venue, clock, tmp_path, limits, amount, dst, setup, code
):
    events = []
    kill = tmp_path / "PAUSED"
    svc = service(
        journal, venue, clock, limits={"bot1": limits}, kill_switch=kill, on_outcome=events.append
    )
    if setup == "read_error":
        venue.read_errors = 1
    if setup == "paused":
        pause(kill, "maintenance")
    if setup == "spent_50":
        assert (await move(svc, "50")).ok
        clock.advance(10)
    sends = venue.sends
    result = await move(svc, amount, dst=dst)
    assert (result.state, result.code) == ("refused", code), result.detail
    assert venue.sends == sends
    entry = await journal.get(result.entry_id)
    assert (entry.kind, entry.state, entry.detail) == ("refusal", "refused", result.detail)
    assert entry.data["code"] == code and entry.reason == "top-up desk-a"
    assert events[-1].state == "refused"


async def test_unknown_bot_is_refused(journal, venue, clock):
    result = await service(journal, venue, clock).transfer(
        "ghost", "p", TREASURY, DESK_A, Decimal(1), "x"
    )
    assert (result.code, venue.sends) == ("no_limits", 0)


async def test_floats_are_rejected(journal, venue, clock):
    with pytest.raises(TypeError, match="float"):
        await service(journal, venue, clock).transfer("bot1", "p", TREASURY, DESK_A, 1.5, "x")


@pytest.mark.parametrize("global_dry_run", [False, True])
async def test_dry_run_sends_nothing_and_is_journaled(journal, venue, clock, global_dry_run):
    svc = service(journal, venue, clock, dry_run=global_dry_run)
    result = await move(svc, "12.50", dry_run=not global_dry_run)
    assert (result.state, result.code) == ("dry_run", "dry_run")
    assert result.detail == "dry run: would transfer 12.50 from treasury to desk-a"
    assert venue.sends == 0 and venue.ledger == []
    entry = await journal.get(result.entry_id)
    assert (entry.kind, entry.amount) == ("dry_run", Decimal("12.50"))
    over = await move(svc, "5000", dry_run=True)  # a dry run still reports refusals
    assert over.code == "max_transfer"


async def test_rolling_24h_window(journal, venue, clock):
    svc = service(journal, venue, clock, limits={"bot1": make_limits(max_daily=Decimal(1000))})
    assert (await move(svc, "600")).ok
    clock.advance(3600)
    venue.outcomes = ["reject"]
    assert (await move(svc, "300")).state == "failed"  # failed transfers do not count
    assert (await move(svc, "400")).ok  # 600 + 400 = 1000
    clock.advance(60)
    refused = await move(svc, "0.01")
    assert refused.code == "max_daily" and "already 1000" in refused.detail
    clock.advance(24 * 3600 - 3600 - 60 + 1)  # the 600 left the window, the 400 has not
    assert (await move(svc, "600")).ok
    assert (await move(svc, "0.01")).code == "max_daily"
    assert (await move(svc, "1", dst=DESK_B)).code == "max_daily"  # per bot, not per pair


async def test_unknown_transfers_count_against_the_daily_limit(journal, venue, clock):
    svc = service(journal, venue, clock, limits={"bot1": make_limits(max_daily=Decimal(100))})
    venue.outcomes = ["lost_response"]
    assert (await move(svc, "80", dst=DESK_B)).state == "unknown"
    assert (await move(svc, "30", src=DESK_A, dst=TREASURY)).code == "unresolved"
    await svc.reconcile()
    assert (await move(svc, "30", src=DESK_A, dst=TREASURY)).code == "max_daily"


async def test_one_transfer_at_a_time_per_account(journal, venue, clock):
    active = 0
    peak = 0

    async def slow_send(src, dst, amount):
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await trio.sleep(0.01)
        active -= 1
        venue.apply(src, dst, amount)

    svc = service(journal, venue, clock, send=slow_send)
    results = []

    async def run(dst):
        results.append(await move(svc, "10", dst=dst))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for dst in (DESK_A, DESK_B, DESK_A, DESK_B):
                nursery.start_soon(run, dst)
    assert peak == 1 and all(r.ok for r in results) and len(venue.ledger) == 4


async def test_concurrent_transfers_on_one_pair_respect_min_interval(journal, venue, clock):
    svc = service(journal, venue, clock, limits={"bot1": make_limits(min_interval=30)})
    results = []

    async def run():
        results.append(await move(svc, "10"))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            nursery.start_soon(run)
    assert sorted(r.state for r in results) == ["done", "refused"]
    assert len(venue.ledger) == 1


async def test_outcome_callback_errors_do_not_break_transfers(journal, venue, clock, caplog):
    async def broken(event):
        raise RuntimeError("plugin bug")

    result = await move(service(journal, venue, clock, on_outcome=broken))
    assert result.ok
    assert "transfer outcome callback failed" in caplog.text


async def test_unexpected_send_error_counts_as_ambiguous(journal, venue, clock, caplog):
    async def send(src, dst, amount):
        raise KeyError("surprise")

    result = await move(service(journal, venue, clock, send=send))
    assert result.state == "unknown" and "unexpected KeyError" in result.detail


def test_classify_reconciliation():
    d = Decimal
    assert classify_reconciliation(d(10), d(100), d(5), d(90), d(15)) == "applied"
    assert classify_reconciliation(d(10), d(100), d(5), d(100), d(5)) == "not_applied"
    assert classify_reconciliation(d(10), d(100), d(5), d(90), d(14)) == "unclear"
    assert classify_reconciliation(d(10), d(100), d(5), d(100), d(15)) == "unclear"
    assert (
        classify_reconciliation(
            d(10), d(100), d(5), d("89.9999999"), d("15.0000001"), d("0.000001")
        )
        == "applied"
    )
