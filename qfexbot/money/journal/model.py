"""The journal's data: entry kinds and states, the rows it returns, and the errors it raises.

Pure values only (no I/O), shared by every backend (``sqlite``, ``postgres``) and by the callers
that read entries. See ``qfexbot.money.journal`` for the states of a transfer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypedDict

from qfexbot.errors import JournalError

__all__ = [
    "CANCEL_TRANSITIONS",
    "MACHINES",
    "ORDER_SETTLED",
    "ORDER_TRANSITIONS",
    "ORDER_UNSETTLED",
    "POSSIBLY_APPLIED",
    "REQUEST_TRANSITIONS",
    "TRANSITIONS",
    "UNRESOLVED",
    "WATCH_STATES",
    "AuditEvent",
    "BackupInfo",
    "BudgetExceeded",
    "DailyBudget",
    "DryRun",
    "Entry",
    "EntryKind",
    "EntryNotFound",
    "EntryState",
    "GuardLost",
    "Hold",
    "Intent",
    "InvalidTransition",
    "JournalClosed",
    "JournalLocked",
    "JournalMark",
    "JournalRolledBack",
    "Order",
    "Refusal",
    "StaleEpoch",
    "Watch",
    "check_fields",
    "str_or_none",
]


def str_or_none(value: Decimal | None) -> str | None:
    """``str(value)``, or None for None (how amounts are written to rows and JSON)."""
    return None if value is None else str(value)


class EntryKind:
    """Values of ``Entry.kind``."""

    TRANSFER = "transfer"
    ORDER = "order"
    CANCEL = "cancel"
    REQUEST = "request"
    """Any other request about orders (modify, stop changes, TWAPs, cancel all): journaled
    before it is sent, ``sent`` once the venue has it; its answer arrives as events."""
    REFUSAL = "refusal"
    DRY_RUN = "dry_run"


class EntryState:
    """Values of ``Entry.state``: a transfer's five states, the final records' (refusals, dry
    runs), and an order's or cancel's (``submitted`` first; see ``ORDER_TRANSITIONS``)."""

    PENDING = "pending"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"
    UNKNOWN = "unknown"
    REFUSED = "refused"  # kind refusal
    DRY_RUN = "dry_run"  # kind dry_run: "would transfer"
    SUBMITTED = "submitted"  # kind order / cancel: journaled, being handed to the venue
    ACKED = "acked"  # kind order: the venue accepted it (resting or partly filled)
    FILLED = "filled"  # kind order: filled completely
    CANCELLED = "cancelled"  # kind order: cancelled (by us, the venue or self-trade prevention)
    REJECTED = "rejected"  # kind order: the venue refused it


UNRESOLVED: tuple[str, ...] = (EntryState.PENDING, EntryState.SENT, EntryState.UNKNOWN)
"""Transfer states in which the money may or may not have moved."""

POSSIBLY_APPLIED: tuple[str, ...] = (*UNRESOLVED, EntryState.DONE)
"""Transfer states that may have moved money: these count against the rolling daily limit."""

WATCH_STATES = ("watching", "landed", "expired", "closed")
"""A late-landing watch: still watching; saw the landing; ran its time; or closed because
its entry was settled some other way (an operator)."""

TRANSITIONS: dict[str, frozenset[str]] = {
    EntryState.PENDING: frozenset({EntryState.SENT, EntryState.FAILED, EntryState.UNKNOWN}),
    EntryState.SENT: frozenset({EntryState.DONE, EntryState.FAILED, EntryState.UNKNOWN}),
    EntryState.UNKNOWN: frozenset({EntryState.DONE, EntryState.FAILED}),
}


ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    EntryState.SUBMITTED: frozenset(
        {
            EntryState.ACKED,
            EntryState.FILLED,
            EntryState.CANCELLED,
            EntryState.REJECTED,
            EntryState.UNKNOWN,
            EntryState.FAILED,
        }
    ),
    # rejected after acked: a modification the venue refuses by removing the order (an ALO
    # that would now cross)
    EntryState.ACKED: frozenset({EntryState.FILLED, EntryState.CANCELLED, EntryState.REJECTED}),
    EntryState.UNKNOWN: frozenset(
        {
            EntryState.ACKED,
            EntryState.FILLED,
            EntryState.CANCELLED,
            EntryState.REJECTED,
            EntryState.FAILED,
        }
    ),
}
"""An order's states: ``submitted`` (journaled before the send) -> ``acked`` -> ``filled`` |
``cancelled`` | ``rejected`` (a refused modification removed it), or straight to a final state
(a market order fills, the venue rejects); ``unknown`` when the send may have reached the venue
but no reply came (reconciled by client order id); ``failed`` when it never reached the venue."""

CANCEL_TRANSITIONS: dict[str, frozenset[str]] = {
    EntryState.SUBMITTED: frozenset({EntryState.DONE, EntryState.FAILED, EntryState.UNKNOWN}),
    EntryState.UNKNOWN: frozenset({EntryState.DONE, EntryState.FAILED}),
}
"""A cancel's states: ``submitted`` -> ``done`` (the venue cancelled the order) | ``failed``
(not sent, or the venue had no such open order) | ``unknown`` -> ``done`` | ``failed``."""

REQUEST_TRANSITIONS: dict[str, frozenset[str]] = {
    EntryState.SUBMITTED: frozenset({EntryState.SENT, EntryState.FAILED, EntryState.UNKNOWN}),
    EntryState.UNKNOWN: frozenset({EntryState.SENT, EntryState.FAILED}),
}
"""A request's states: ``submitted`` -> ``sent`` (handed to the venue; what it did comes back as
events: ``MODIFIED``, ``twap_response``, ...) | ``failed`` (never reached it) | ``unknown`` (may
have reached it: left for the operator, never re-sent by qfexbot)."""

MACHINES: dict[str, dict[str, frozenset[str]]] = {
    "order": ORDER_TRANSITIONS,
    "cancel": CANCEL_TRANSITIONS,
    "request": REQUEST_TRANSITIONS,
}
"""The state machine of each order-side kind."""

ORDER_UNSETTLED: tuple[str, ...] = (EntryState.SUBMITTED, EntryState.ACKED, EntryState.UNKNOWN)
"""Order and cancel states that can still change: the runtime's order tracker follows them."""

ORDER_SETTLED: tuple[str, ...] = (
    EntryState.FILLED,
    EntryState.CANCELLED,
    EntryState.REJECTED,
    EntryState.FAILED,
    EntryState.DONE,
)
"""Final order and cancel states."""


class InvalidTransition(JournalError, ValueError):
    """A state change the entry's state machine does not allow (e.g. done -> failed)."""


class EntryNotFound(JournalError, KeyError):
    """No journal entry has this id."""


class JournalClosed(JournalError, RuntimeError):
    """The journal was used after ``close()``."""


class JournalLocked(JournalError, RuntimeError):
    """Another process holds this journal: one running qfexbot per journal file."""


class StaleEpoch(JournalError):
    """``mark_sent(..., fence=(group, epoch))`` refused: the group is led under another epoch
    (or the entry was written under another), so this process is no longer its leader. The
    entry stays ``pending``: it provably was never sent (mark it failed "not sent: stale
    epoch")."""


class GuardLost(JournalLocked):
    """A journal opened exclusively lost its one-process guard: nothing may be sent under it."""


class BudgetExceeded(JournalError):
    """``record_intent`` refused: the transfer would take the rolling 24 h total over its limit.

    ``spent`` is what the window already holds (possibly applied transfers), ``limit`` the limit.
    Nothing was written.
    """

    def __init__(self, spent: Decimal, limit: Decimal, amount: Decimal) -> None:
        super().__init__(
            f"amount {amount} would bring the rolling 24 h total to {spent + amount}, "
            f"over max_daily {limit} (already {spent} in the last 24 h)"
        )
        self.spent, self.limit, self.amount = spent, limit, amount


@dataclass(frozen=True, slots=True)
class DailyBudget:
    """The rolling-window limit a transfer intent must fit in, checked atomically with its insert.

    Counted: transfer rows of ``owner`` (and ownerless legacy rows) created at or after ``since``
    that may have moved money (pending, sent, unknown, done) whose unordered account pair is in
    ``pairs`` (sets of two account ids; None: every pair). Which bot wrote them does not matter.
    """

    limit: Decimal
    since: float
    pairs: frozenset[frozenset[str]] | None


class AuditEvent(TypedDict):
    """One row of an entry's audit trail (the append-only ``events`` table), oldest first:
    a state change, or the entry's first state (``from_state`` None)."""

    at: float
    from_state: str | None
    to_state: str
    detail: str
    by: str | None
    """``reconcile`` or ``operator`` for a resolution, else None."""


# -- the fields of the record_* calls, written once for the protocol and every backend ---------


class _Origin(TypedDict):
    """Who writes the row: the bot, its plugin and the venue table (display name)."""

    bot: str
    plugin: str
    venue: str


class _Evidence(TypedDict, total=False):
    """What a transfer intent may carry besides the transfer (each defaults to None): the
    available and ``deposit`` balances read just before the send, the venue user id of the
    accounts, and the rolling budget checked in the same transaction as the insert."""

    src_before: Decimal | None
    dst_before: Decimal | None
    src_deposit_before: Decimal | None
    dst_deposit_before: Decimal | None
    owner: str | None
    budget: DailyBudget | None


class _Fence(TypedDict, total=False):
    """The leadership the row is written under (fencing): the leader's ``epoch`` (default 0:
    unfenced) of account ``group`` (default "")."""

    epoch: int
    group: str


class Intent(_Origin, _Evidence, _Fence):
    """The keyword arguments of ``record_intent``: a ``pending`` transfer row."""

    src: str
    dst: str
    amount: Decimal
    reason: str


class _Subject(TypedDict, total=False):
    """What a final record is about (``reason`` defaults to "", the others to None)."""

    reason: str
    src: str | None
    dst: str | None
    amount: Decimal | None
    data: Mapping[str, Any] | None


class DryRun(_Origin, _Subject, _Fence):
    """The keyword arguments of ``record_dry_run``: what would have been done."""

    detail: str


class Refusal(DryRun):
    """The keyword arguments of ``record_refusal``: the refused action and the policy code."""

    action: str
    code: str


class _OrderNotes(TypedDict, total=False):
    """``kind`` defaults to ``order`` (or ``cancel``); ``reason`` and ``detail`` to ""; the
    order's fields to None (a cancel carries ``symbol`` and the ``venue_order_id`` it cancels)."""

    kind: str
    reason: str
    detail: str
    symbol: str | None
    side: str | None
    quantity: Decimal | None
    price: Decimal | None
    client_order_id: str | None
    venue_order_id: str | None


class Order(_Origin, _OrderNotes, _Fence):
    """The keyword arguments of ``record_order``: a command about to be handed to the venue
    (``data``: the command as sent, for the audit trail)."""

    account: str
    data: Mapping[str, Any]


def check_fields(spec: Any, fields: Mapping[str, Any], call: str) -> None:
    """Refuse what a written-out signature would refuse: a missing or an unknown field.

    Raises:
      TypeError: ``fields`` lacks a required key of the TypedDict ``spec`` or has one it lacks.
    """
    required: frozenset[str] = spec.__required_keys__
    missing = sorted(required - fields.keys())
    unknown = sorted(fields.keys() - required - spec.__optional_keys__)
    if missing:
        raise TypeError(f"{call}() missing required keyword argument(s): {', '.join(missing)}")
    if unknown:
        raise TypeError(f"{call}() got unexpected keyword argument(s): {', '.join(unknown)}")


@dataclass(frozen=True, slots=True)
class Entry:
    """One journal row. ``amount`` is exact; ``src_before``/``dst_before`` are the available
    balances and ``*_deposit_before`` the ``deposit`` balances read just before the transfer was
    sent (the evidence reconciliation compares against; None when not read)."""

    id: str
    kind: str
    bot: str
    plugin: str
    venue: str
    src: str | None
    dst: str | None
    amount: Decimal | None
    reason: str
    created_at: float
    updated_at: float
    state: str
    detail: str = ""
    attempts: int = 0
    sent_at: float | None = None
    resolved_by: str | None = None
    src_before: Decimal | None = None
    dst_before: Decimal | None = None
    src_deposit_before: Decimal | None = None
    dst_deposit_before: Decimal | None = None
    data: Mapping[str, Any] | None = field(default=None, compare=False)
    owner: str | None = None
    """The venue user id the accounts belong to; None on rows written before it was recorded."""
    symbol: str | None = None
    side: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    client_order_id: str | None = None
    venue_order_id: str | None = None
    """An order's fields (its account is ``src``); a cancel's ``symbol`` and ``venue_order_id``
    are those of the order it cancels. None on other kinds and on rows written before."""
    epoch: int = 0
    group: str = ""
    """The leadership epoch and account group the row was written under (0 and "": unfenced,
    and every row written before fencing existed)."""

    @property
    def unresolved(self) -> bool:
        """True for a transfer whose money may or may not have moved."""
        return self.kind == EntryKind.TRANSFER and self.state in UNRESOLVED

    @property
    def unsettled(self) -> bool:
        """True for an order or cancel whose state can still change (submitted, acked,
        unknown)."""
        return self.kind in MACHINES and self.state in ORDER_UNSETTLED

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (Decimals as strings)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "bot": self.bot,
            "plugin": self.plugin,
            "venue": self.venue,
            "src": self.src,
            "dst": self.dst,
            "amount": None if self.amount is None else str(self.amount),
            "reason": self.reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "state": self.state,
            "detail": self.detail,
            "attempts": self.attempts,
            "sent_at": self.sent_at,
            "resolved_by": self.resolved_by,
            "src_before": None if self.src_before is None else str(self.src_before),
            "dst_before": None if self.dst_before is None else str(self.dst_before),
            "src_deposit_before": str_or_none(self.src_deposit_before),
            "dst_deposit_before": str_or_none(self.dst_deposit_before),
            "data": None if self.data is None else dict(self.data),
            "owner": self.owner,
            "symbol": self.symbol,
            "side": self.side,
            "quantity": str_or_none(self.quantity),
            "price": str_or_none(self.price),
            "client_order_id": self.client_order_id,
            "venue_order_id": self.venue_order_id,
            "epoch": self.epoch,
            "group": self.group,
        }


@dataclass(frozen=True, slots=True)
class Hold:
    """A durable pause of money movement on one account, until an operator releases it."""

    seq: int
    venue: str
    account: str
    code: str
    reason: str
    entry_id: str | None
    created_at: float
    released_at: float | None = None
    """When an operator released it (None: still active)."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "seq": self.seq,
            "venue": self.venue,
            "account": self.account,
            "code": self.code,
            "reason": self.reason,
            "entry_id": self.entry_id,
            "created_at": self.created_at,
            "released_at": self.released_at,
        }


@dataclass(frozen=True, slots=True)
class Watch:
    """A transfer reconciled "not applied", watched for a late landing from its deposits then."""

    entry_id: str
    venue: str
    src: str
    dst: str
    amount: Decimal
    src_deposit: Decimal
    dst_deposit: Decimal
    started_at: float
    last_src: Decimal
    last_dst: Decimal


@dataclass(frozen=True, slots=True)
class JournalMark:
    """The newest state of a journal that this machine's qfexbot processes saw: its id, its
    last audit-event sequence number (events are append-only, so this only grows) and when."""

    journal_id: str
    seq: int
    at: float


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What a backup holds: where, journal id, entries, transfers in doubt, last event."""

    path: Path
    journal_id: str | None
    entries: int
    unresolved: int
    last_seq: int


class JournalRolledBack(JournalError, RuntimeError):
    """The journal is older than the last state seen: restored, replaced or copied while live.

    Money must not move from it until an operator checks it and runs
    ``qfexbot journal accept-restore``.
    """

    def __init__(self, path: Path, seen: JournalMark, problem: str) -> None:
        self.path = path
        self.seen = seen
        self.problem = problem
        super().__init__(
            f"journal {path} is older than the last state qfexbot saw: {problem}. It was restored "
            "from an older copy, replaced, or copied while qfexbot was running: transfers in doubt "
            "and the 24 h history it lacks are forgotten, so qfexbot refuses to move money from "
            "it. Check the venue's balances against `qfexbot journal`, then run "
            "`qfexbot journal accept-restore [CONFIG]` to make this file the reference"
        )
