"""What balance moves prove about a transfer: the pure evidence rules of reconciliation.

QFEX reports no transfer history, so balances are the only evidence of whether a transfer
landed. These functions take the balances read before and after and say what they prove
(rules 1-4 in ``qfexbot.money.transfers``); they do no I/O, so every rule is unit-testable.
"Moved by ±amount" means src -amount and dst +amount, within ``tolerance``.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Literal

from qfexbot.money.journal import Entry, EntryState

__all__ = [
    "TOLERANCE",
    "Quad",
    "classify_evidence",
    "classify_reconciliation",
    "deposit_quad",
    "explained_moves",
    "watch_verdict",
]

TOLERANCE = Decimal("0.000001")
"""Balance difference still counted as equal (float noise in the venue's balances)."""

Quad = tuple[Decimal, Decimal, Decimal, Decimal]
"""Balances of one kind as ``(src_before, dst_before, src_now, dst_now)``."""


def classify_reconciliation(
    amount: Decimal,
    src_before: Decimal,
    dst_before: Decimal,
    src_now: Decimal,
    dst_now: Decimal,
    tolerance: Decimal = TOLERANCE,
) -> str:
    """One kind of balance (available or deposit): ``"applied"`` if src moved by -amount and dst
    by +amount, ``"not_applied"`` if both are unchanged, else ``"unclear"`` (within
    ``tolerance``)."""
    d_src, d_dst = src_now - src_before, dst_now - dst_before
    applied = abs(d_src + amount) <= tolerance and abs(d_dst - amount) <= tolerance
    untouched = abs(d_src) <= tolerance and abs(d_dst) <= tolerance
    if applied and not untouched:
        return "applied"
    if untouched and not applied:
        return "not_applied"
    return "unclear"


def classify_evidence(
    amount: Decimal,
    available: Quad,
    deposit: Quad | None,
    *,
    deposit_verified: bool | None,
    tolerance: Decimal = TOLERANCE,
) -> tuple[str, str]:
    """``(verdict, basis)`` from available and deposit balances (rules 1-4 of the module doc).

    ``verdict`` is ``"applied"``, ``"not_applied"`` or ``"unclear"``; ``basis`` says which
    evidence decided (``"deposit"``, ``"available"``, or why it is unclear). ``deposit`` is None
    when deposits were not read; ``deposit_verified`` is the venue's verification state
    (None: unverified, True, False).
    """
    by_available = classify_reconciliation(amount, *available, tolerance)
    by_deposit = None
    if deposit is not None:
        by_deposit = classify_reconciliation(amount, *deposit, tolerance)
        if by_deposit == "applied":
            if by_available == "not_applied":
                return (
                    "unclear",
                    "deposits moved by the amount but available balances are unchanged",
                )
            return "applied", "deposit"
        if deposit_verified is True:
            if by_deposit == "not_applied":
                if _either_moved_by(amount, available, tolerance):
                    return "unclear", ("deposits unchanged but an available balance moved by "
                                       "exactly the amount")  # fmt: skip
                return "not_applied", "deposit"
            return "unclear", "deposits moved by something else"
    if by_available != "unclear":
        return by_available, "available"
    why = "balances moved by something else"
    if by_deposit == "not_applied":
        state = "not verified" if deposit_verified is None else "known NOT"
        why += f"; deposits unchanged, but this venue is {state} to reflect transfers in deposit"
    return "unclear", why


def _either_moved_by(amount: Decimal, available: Quad, tolerance: Decimal) -> bool:
    """True if src moved by exactly -amount or dst by exactly +amount: on one account alone
    that already contradicts "not applied" (a non-trading account moves only by transfers)."""
    src_before, dst_before, src_now, dst_now = available
    return (abs(src_now - src_before + amount) <= tolerance
            or abs(dst_now - dst_before - amount) <= tolerance)  # fmt: skip


def deposit_quad(
    src_before: Decimal | None,
    dst_before: Decimal | None,
    src_now: Decimal | None,
    dst_now: Decimal | None,
) -> Quad | None:
    """The deposits as a ``Quad``, or None when any of the four was not read."""
    if src_before is None or dst_before is None or src_now is None or dst_now is None:
        return None
    return src_before, dst_before, src_now, dst_now


def explained_moves(later: Iterable[Entry], src: str, dst: str) -> dict[str, Decimal] | None:
    """What this journal's later transfers moved on ``src`` and ``dst`` (done ones count), or
    None while one of them is unresolved (its own reconciliation goes first)."""
    explained = {src: Decimal(0), dst: Decimal(0)}
    for entry in later:
        if entry.unresolved:
            return None
        if entry.state == EntryState.DONE and entry.amount is not None:
            if entry.src in explained:
                explained[entry.src] -= entry.amount
            if entry.dst in explained:
                explained[entry.dst] += entry.amount
    return explained


def watch_verdict(
    amount: Decimal,
    unexplained: tuple[Decimal, Decimal],
    last: tuple[Decimal, Decimal],
    tolerance: Decimal = TOLERANCE,
) -> Literal["landed", "moved", "quiet"]:
    """Did a transfer reconciled "not applied" land late?

    ``unexplained`` is how much the (src, dst) deposits moved since its watch began beyond what
    later transfers explain; ``last`` the same as the previous check saw it. ``"landed"``:
    exactly ±amount, since the watch began or since the last check. ``"moved"``: some other
    unexplained movement since the last check (the landing may hide in it). ``"quiet"``: neither.
    """
    u_src, u_dst = unexplained
    last_src, last_dst = last

    def landed(d_src: Decimal, d_dst: Decimal) -> bool:
        return abs(d_src + amount) <= tolerance and abs(d_dst - amount) <= tolerance

    if landed(u_src, u_dst) or landed(u_src - last_src, u_dst - last_dst):
        return "landed"
    if abs(u_src - last_src) > tolerance or abs(u_dst - last_dst) > tolerance:
        return "moved"
    return "quiet"
