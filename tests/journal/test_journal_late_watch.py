"""The late-landing watch: a transfer reconciled "not applied" stays watched, then ends."""

from __future__ import annotations

from decimal import Decimal

import trio
from journal_helpers import DESK_A, TREASURY
from test_journal_reconcile_deposit import DepositVenue, move, service

d = Decimal


def deposit_venue() -> DepositVenue:
    return DepositVenue(
        balances={TREASURY: d(10000), DESK_A: d(100)},
        deposits={TREASURY: d(10000), DESK_A: d(100)},
    )


async def test_own_later_transfers_explain_deposits_and_a_clock_leap_ends_no_watch(
    journal, clock, autojump_clock
):
    venue = deposit_venue()
    svc = service(journal, venue, clock, late_watch=100.0)
    venue.outcomes = ["fail_before_apply"]
    lost = await move(svc, "40")
    assert [r.state for r in await svc.reconcile()] == ["failed"]
    assert [w.entry_id for w in await journal.watches("demo")] == [lost.entry_id]
    assert (await move(svc, "40")).ok  # the retry: explained by the journal, not a landing
    assert await svc.reconcile() == []
    clock.advance(10**6)  # the wall clock leaps far past a day: the watch does not end
    assert await svc.reconcile() == []
    assert len(await journal.watches("demo")) == 1
    venue.apply(TREASURY, DESK_A, d(40))  # the first request lands after all
    [late] = await svc.reconcile()
    assert (late.entry_id, late.state) == (lost.entry_id, "done") and "late landing" in late.detail
    assert svc.late_landings == 1 and await journal.watches("demo") == []
    assert {h.account for h in await journal.active_holds("demo")} == {TREASURY, DESK_A}


async def test_a_watch_ends_after_late_watch_on_both_clocks(journal, clock, autojump_clock):
    venue = deposit_venue()
    svc = service(journal, venue, clock, late_watch=100.0)
    venue.outcomes = ["fail_before_apply"]
    lost = await move(svc, "40")
    assert [r.state for r in await svc.reconcile()] == ["failed"]
    await trio.sleep(101)  # trio's clock says the day is over, the wall clock does not
    assert await svc.reconcile() == [] and len(await journal.watches("demo")) == 1
    clock.advance(101)
    assert await svc.reconcile() == [] and await journal.watches("demo") == []
    venue.apply(TREASURY, DESK_A, d(40))  # too late to be attributed: stays failed, no hold
    assert await svc.reconcile() == []
    assert (await journal.get(lost.entry_id)).state == "failed"
    assert await journal.active_holds("demo") == []
