"""Money-path bugs the chaos soak found (bench/soak.py, late_landing + outside_mover), each
reproduced through the real TransferService, SQLite journal and simulator over loopback.

Both were silent differences: a transfer reconciled "not applied" landed late, the journal
still said ``failed``, and an account it moved was not held.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from runtime_helpers import DESK_A, DESK_B, PRIMARY
from test_transfers_sim import LIMITS, reconcile_until, until_ledger, world  # noqa: F401

RING = replace(
    LIMITS,
    allowed_pairs=frozenset({("treasury", "desk-a"), ("desk-a", "desk-b")}),
    max_daily=Decimal(10000),
)


async def holds(world) -> set[tuple[str, str, str]]:  # noqa: F811
    return {(h.account, h.code, h.entry_id) for h in await world.journal.active_holds("demo")}


async def test_a_late_landing_hidden_by_an_outside_move_holds_the_accounts(world):  # noqa: F811
    # The test failed before this change: between two passes an outside move (0.05) and the
    # late landing (100) moved the watched pair together; the watch saw neither exactly the
    # amount nor nothing, logged a warning and went on: the journal kept "failed" for money
    # the venue had moved, on accounts free to move again.
    service = await world.service(settle=2.0)
    world.sim.faults.hold_transfers(5.0)
    first = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "top-up")
    assert first.state == "unknown"
    await reconcile_until(service, "failed")
    world.sim.faults.outside_transfer(DESK_A, PRIMARY, Decimal("0.05"))  # the web app, say
    await until_ledger(world, 2)  # ... and the held request lands before the next pass
    assert await service.reconcile() == []
    assert await holds(world) == {
        (PRIMARY, "unexplained_deposits", first.entry_id),
        (DESK_A, "unexplained_deposits", first.entry_id),
    }
    again = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(10), "retry")
    assert again.code == "account_held"


async def test_a_late_landing_in_a_neighbours_doubt_holds_both_its_accounts(world):  # noqa: F811
    # The test failed before this change: the late landing (treasury -> desk-a) moved desk-a
    # while desk-a -> desk-b was in doubt; that transfer's accounts were held, but the watch
    # of the landed one waits on held desk-a for good, and treasury, which the landing debited,
    # stayed free with the journal saying "failed".
    service = await world.service(settle=2.0, limits=RING)
    world.sim.faults.hold_transfers(5.0)
    first = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "top-up")
    await reconcile_until(service, "failed")
    world.sim.faults.fail_next_rest(1, status=503, path="/user/transfer")
    second = await service.transfer("bot", "p", DESK_A, DESK_B, Decimal(50), "onward")
    assert second.state == "unknown"
    await until_ledger(world, 1)  # the first lands while the second is in doubt
    [still] = await service.reconcile()
    assert (still.entry_id, still.state) == (second.entry_id, "unknown")
    assert await holds(world) == {
        (DESK_A, "unexplained_deposits", second.entry_id),
        (DESK_B, "unexplained_deposits", second.entry_id),
        (PRIMARY, "unexplained_deposits", first.entry_id),
        (DESK_A, "unexplained_deposits", first.entry_id),
    }
    refused = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(10), "retry")
    assert refused.code in ("account_held", "unresolved")
