"""Money-movement policy: pure checks that run before a transfer is journaled (no I/O).

Every check returns a ``PolicyDecision`` whose ``reason`` names the limit and the numbers, so an
operator reading the journal or the log knows exactly why a transfer was refused.

Limits: any object with the attributes ``max_transfer`` (per transfer), ``max_daily`` (per bot,
rolling 24 h), ``allowed_pairs``, ``min_interval`` (seconds between transfers on one pair) and
``min_remaining`` (the source keeps at least this) — ``qfexbot.config.Limits`` has them. A limit
set to ``None`` is not enforced. Numbers may be Decimal, int or str (floats are converted with
``Decimal(str(x))``).

``allowed_pairs`` is a collection of two-element sequences of account names; pairs are
**unordered** (``["treasury", "desk-a"]`` allows both directions, as a rebalancer needs to top up
and to sweep). Each name may be an account id or an alias; pass ``accounts`` (alias -> id, as in
``VenueConfig.accounts``) to resolve aliases. An empty collection allows no transfer at all (the
safe default); ``None`` allows every pair.

The kill switch (a file: reading, writing, removing it) lives in ``qfexbot.money.killswitch``;
``check_transfer`` takes its text as ``paused_reason``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = [
    "ALLOWED",
    "DAY",
    "PolicyDecision",
    "check_remaining",
    "check_transfer",
    "daily_spent",
    "dry_run_decision",
    "limit_value",
    "pair_allowed",
    "paused_decision",
    "resolve_pairs",
]

DAY = 24 * 60 * 60.0
"""The rolling window of ``max_daily``, in seconds."""

MIN_TRANSFER = Decimal("0.01")
"""The smallest amount qfexbot moves (one cent). QFEX documents no transfer precision (the
amount is a JSON double, balances are floats), so cents are the documented minimum; it is far
above the reconciliation tolerance (0.000001), so a transfer's balance delta can always be told
from float noise and no transfer is too small to be reconciled."""


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """The outcome of a policy check.

    ``code`` is stable for programs: ``ok``, ``paused``, ``invalid_amount``, ``below_minimum``,
    ``same_account``, ``pair_not_allowed``, ``max_transfer``, ``max_daily``, ``min_interval``,
    ``min_remaining``, ``balance_unknown``, ``unresolved``, ``account_held`` (set by the
    transfer service) or ``dry_run``. A dry-run decision is not ``allowed``: nothing may be
    sent, but every check passed.
    """

    allowed: bool
    reason: str
    code: str

    @property
    def is_dry_run(self) -> bool:
        """All checks passed, but this is a dry run: journal "would transfer", send nothing."""
        return self.code == "dry_run"


ALLOWED = PolicyDecision(True, "allowed", "ok")


def paused_decision(reason: str) -> PolicyDecision:
    """The refusal while the kill switch is engaged; ``reason`` is its text."""
    return PolicyDecision(False, f"money movement is paused (kill switch): {reason}", "paused")


def limit_value(limits: Any, name: str) -> Decimal | None:
    """The limit ``name`` as a Decimal, or None when it is not set."""
    value = getattr(limits, name, None)
    if value is None:
        return None
    if isinstance(value, float):
        return Decimal(str(value))
    return Decimal(value)


def resolve_pairs(
    pairs: Iterable[Iterable[str]] | None, accounts: Mapping[str, str] | None = None
) -> frozenset[frozenset[str]] | None:
    """Allowed pairs as unordered sets of account ids (aliases resolved through ``accounts``)."""
    if pairs is None:
        return None
    accounts = accounts or {}
    resolved = set()
    for pair in pairs:
        names = tuple(pair)
        if len(names) != 2:
            raise ValueError(f"an allowed pair has exactly two accounts, got {names!r}")
        resolved.add(frozenset(accounts.get(n, n) for n in names))
    return frozenset(resolved)


def pair_allowed(
    limits: Any, src: str, dst: str, accounts: Mapping[str, str] | None = None
) -> bool:
    """True if ``limits.allowed_pairs`` allows a transfer between ``src`` and ``dst`` (ids)."""
    pairs = resolve_pairs(getattr(limits, "allowed_pairs", None), accounts)
    return pairs is None or frozenset((src, dst)) in pairs


def daily_spent(amounts: Iterable[Decimal]) -> Decimal:
    """Sum of amounts (of the transfers that may have been applied in the window)."""
    return sum((Decimal(a) for a in amounts), Decimal(0))


def _fmt(value: Decimal) -> str:
    return format(Decimal(value), "f")


def check_transfer(
    limits: Any,
    *,
    src: str,
    dst: str,
    amount: Decimal,
    spent_24h: Decimal,
    last_transfer_at: float | None,
    now: float,
    paused_reason: str | None = None,
    accounts: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
) -> PolicyDecision:
    """Every check that needs no balance: kill switch, amount, pair, per-transfer and daily
    maximum, minimum interval.

    Args:
      limits: see the module docstring.
      spent_24h: what this bot's transfers may have moved in the last 24 h (pending, sent,
        unknown and done count: anything possibly applied).
      last_transfer_at: time of the previous transfer on this pair (either direction), or None.
      now: current time, same clock as ``last_transfer_at``.
      paused_reason: the kill switch text when paused, else None.
      accounts: alias -> id, to resolve ``allowed_pairs``.
      names: id -> display name, for readable reasons (defaults to the ids).

    Returns:
      ``ALLOWED`` or the first refusal.
    """
    label = (names or {}).get
    s, d = label(src, src), label(dst, dst)
    if paused_reason is not None:
        return paused_decision(paused_reason)
    amount = Decimal(amount)
    return (
        _amount_refusal(amount)
        or _pair_refusal(limits, src, dst, accounts, s, d)
        or _limit_refusal(limits, amount, spent_24h, last_transfer_at, now, f"{s} <-> {d}")
        or ALLOWED
    )


def _amount_refusal(amount: Decimal) -> PolicyDecision | None:
    """An amount that is not a positive number of at least ``MIN_TRANSFER``."""
    if not amount.is_finite() or amount <= 0:
        return PolicyDecision(
            False, f"transfer amount must be positive, got {amount}", "invalid_amount"
        )
    if amount < MIN_TRANSFER:
        return PolicyDecision(
            False,
            f"amount {_fmt(amount)} is below the minimum transfer {_fmt(MIN_TRANSFER)} (too "
            f"small to tell apart from balance rounding, so it could never be reconciled)",
            "below_minimum",
        )
    return None


def _pair_refusal(
    limits: Any, src: str, dst: str, accounts: Mapping[str, str] | None, s: str, d: str
) -> PolicyDecision | None:
    """A transfer from an account to itself, or on a pair ``allowed_pairs`` does not allow."""
    if src == dst:
        return PolicyDecision(
            False, f"source and destination are the same account ({s})", "same_account"
        )
    if not pair_allowed(limits, src, dst, accounts):
        return PolicyDecision(
            False, f"account pair {s} <-> {d} is not in allowed_pairs", "pair_not_allowed"
        )
    return None


def _limit_refusal(
    limits: Any,
    amount: Decimal,
    spent_24h: Decimal,
    last_transfer_at: float | None,
    now: float,
    pair: str,
) -> PolicyDecision | None:
    """Over ``max_transfer`` or the rolling ``max_daily``, or sooner than ``min_interval``."""
    max_transfer = limit_value(limits, "max_transfer")
    if max_transfer is not None and amount > max_transfer:
        return PolicyDecision(
            False,
            f"amount {_fmt(amount)} exceeds max_transfer {_fmt(max_transfer)}",
            "max_transfer",
        )
    max_daily = limit_value(limits, "max_daily")
    if max_daily is not None and spent_24h + amount > max_daily:
        return PolicyDecision(
            False,
            f"amount {_fmt(amount)} would bring the rolling 24 h total to "
            f"{_fmt(spent_24h + amount)}, over max_daily {_fmt(max_daily)} "
            f"(already {_fmt(Decimal(spent_24h))} in the last 24 h)",
            "max_daily",
        )
    min_interval = getattr(limits, "min_interval", None)
    if min_interval is not None and last_transfer_at is not None:
        elapsed = now - last_transfer_at
        if elapsed < float(min_interval):
            return PolicyDecision(
                False,
                f"last transfer on {pair} was {elapsed:.1f} s ago; min_interval is "
                f"{float(min_interval):g} s (wait {float(min_interval) - elapsed:.1f} s)",
                "min_interval",
            )
    return None


def check_remaining(
    limits: Any,
    *,
    src: str,
    amount: Decimal,
    src_available: Decimal | None,
    names: Mapping[str, str] | None = None,
) -> PolicyDecision:
    """The source must keep at least ``min_remaining`` of its known available balance.

    An unknown balance (``None``) refuses: without it neither this check nor a later
    reconciliation of the transfer would be possible.
    """
    s = (names or {}).get(src, src)
    if src_available is None:
        return PolicyDecision(
            False, f"available balance of {s} is unknown; not moving money blind", "balance_unknown"
        )
    min_remaining = limit_value(limits, "min_remaining") or Decimal(0)
    left = Decimal(src_available) - Decimal(amount)
    if left < min_remaining:
        return PolicyDecision(
            False,
            f"{s} has {_fmt(Decimal(src_available))} available; moving {_fmt(Decimal(amount))} "
            f"would leave {_fmt(left)}, below min_remaining {_fmt(min_remaining)}",
            "min_remaining",
        )
    return ALLOWED


def dry_run_decision(
    src: str, dst: str, amount: Decimal, names: Mapping[str, str] | None = None
) -> PolicyDecision:
    """The decision for a dry run that passed every check: "would transfer", nothing sent."""
    label = (names or {}).get
    return PolicyDecision(
        False,
        f"dry run: would transfer {_fmt(Decimal(amount))} from {label(src, src)} "
        f"to {label(dst, dst)}",
        "dry_run",
    )
