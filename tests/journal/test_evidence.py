"""The pure evidence rules: what balance moves prove about a transfer (no journal, no venue)."""

from __future__ import annotations

from decimal import Decimal

from journal_helpers import DESK_A, DESK_B, TREASURY

from qfexbot.money.evidence import deposit_quad, explained_moves, watch_verdict
from qfexbot.money.journal import Entry

d = Decimal


def _transfer(src: str, dst: str, amount: str, state: str) -> Entry:
    return Entry(id=f"{src}-{dst}-{amount}", kind="transfer", bot="b", plugin="p", venue="demo",
                 src=src, dst=dst, amount=d(amount), reason="", created_at=0.0, updated_at=0.0,
                 state=state)  # fmt: skip


def test_deposit_quad_needs_all_four_deposits():
    assert deposit_quad(d(1), d(2), d(3), d(4)) == (d(1), d(2), d(3), d(4))
    assert deposit_quad(d(1), None, d(3), d(4)) is None
    assert deposit_quad(d(1), d(2), d(3), None) is None


def test_explained_moves_count_done_transfers_and_wait_for_unresolved_ones():
    later = [
        _transfer(TREASURY, DESK_A, "5", "done"),
        _transfer(DESK_B, TREASURY, "2", "done"),
        _transfer(TREASURY, DESK_A, "7", "failed"),
    ]
    assert explained_moves(later, TREASURY, DESK_A) == {TREASURY: d(-3), DESK_A: d(5)}
    assert explained_moves([*later, _transfer(DESK_A, TREASURY, "1", "unknown")],
                           TREASURY, DESK_A) is None  # fmt: skip


def test_watch_verdict():
    quiet = (d(0), d(0))
    assert watch_verdict(d(10), (d(-10), d(10)), quiet) == "landed"
    assert watch_verdict(d(10), (d("-10.0000001"), d(10)), quiet) == "landed"  # float noise
    # seen moving before, then by exactly the amount since the last check
    assert watch_verdict(d(10), (d(-13), d(10)), (d(-3), d(0))) == "landed"
    assert watch_verdict(d(10), (d(-4), d(0)), quiet) == "moved"
    assert watch_verdict(d(10), (d(-4), d(0)), (d(-4), d(0))) == "quiet"
    assert watch_verdict(d(10), quiet, quiet) == "quiet"
