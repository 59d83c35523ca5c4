"""The backend seam: the operations every journal backend offers, written once.

``Journal`` is what callers use (``qfexbot.money.transfers``, the runtime's actions) and what
every backend implements. A backend implements the operations synchronously (``SqliteStore``,
``PostgresStore``: ``JournalStore``'s, used directly by the CLI) and offers them as ``Journal``
through ``SqliteJournal`` / ``PostgresJournal``, whose async methods are generated from this
protocol's method list (see ``qfexbot.money.journal.threaded``): a signature here is the
signature there.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Protocol, Unpack, runtime_checkable

from qfexbot.money.journal.model import (
    AuditEvent,
    BackupInfo,
    DryRun,
    Entry,
    Hold,
    Intent,
    JournalMark,
    Order,
    Refusal,
    Watch,
)

__all__ = ["Journal", "RecoverableJournal"]


@runtime_checkable
class Journal(Protocol):
    """What callers need from a journal backend. Every write is committed before it returns."""

    async def record_intent(self, **intent: Unpack[Intent]) -> Entry:
        """Write a ``pending`` transfer row (call before sending the request).

        The fields are ``Intent``'s; ``owner`` is the venue user id of the accounts. With
        ``budget``, the window sum is checked and the row inserted in one transaction (a backend
        shared by several processes must serialise it, e.g. PostgreSQL SERIALIZABLE or an
        advisory lock on ``owner``).

        Raises:
          BudgetExceeded: the transfer does not fit in ``budget``; nothing was written.
        """
        ...

    async def get_meta(self, key: str) -> str | None:
        """The value stored under ``key`` in the meta table, or None."""
        ...

    async def set_meta(self, key: str, value: str, detail: str = "") -> None:
        """Store ``value`` under ``key`` (replacing any earlier value), with a note why."""
        ...

    async def mark_sent(self, entry_id: str, *, fence: tuple[str, int] | None = None) -> Entry:
        """pending -> sent (the request is about to be handed to the transport).

        With ``fence=(group, epoch)``, in the same transaction (the leaders row locked): the
        group's current epoch and the entry's own must both equal ``epoch``.

        Raises:
          StaleEpoch: they do not; the entry stays ``pending`` (never sent).
        """
        ...

    async def get_leader(self, group: str) -> tuple[int, str, float] | None:
        """The group's leadership row: (epoch, holder, acquired_at), or None if never led."""
        ...

    async def mark_done(self, entry_id: str, detail: str = "") -> Entry:
        """sent -> done (the venue confirmed)."""
        ...

    async def mark_failed(self, entry_id: str, detail: str) -> Entry:
        """pending|sent -> failed (definitely not applied; ``detail`` says why)."""
        ...

    async def mark_unknown(self, entry_id: str, detail: str) -> Entry:
        """pending|sent -> unknown (may have been applied)."""
        ...

    async def resolve(
        self,
        entry_id: str,
        applied: bool,
        by: str,
        detail: str = "",
        watch_from: tuple[Decimal, Decimal] | None = None,
    ) -> Entry:
        """pending|sent|unknown -> done (applied) or failed, recording who decided.

        "Not applied" also starts the late-landing watch in the same transaction, from the
        deposits ``watch_from`` (src, dst), else from the deposits recorded at intent (no
        watch if neither is known): whoever decided, a late landing is never missed.
        """
        ...

    async def annotate(self, entry_id: str, detail: str) -> Entry:
        """Replace the detail and add an audit event without changing state."""
        ...

    async def get(self, entry_id: str) -> Entry | None:
        """The entry, or None."""
        ...

    async def unresolved(
        self,
        venue: str | None = None,
        *,
        owner: str | None = None,
    ) -> list[Entry]:
        """Transfers in pending/sent/unknown, oldest first.

        With ``owner`` (reconciliation): that user id's rows whatever their venue name, plus
        ownerless (legacy) rows whose venue name is ``venue`` (all of them when it is None): a
        legacy row is only reconciled with the balances of the venue that wrote it. Without
        ``owner``: every row, or those whose venue name is ``venue``.
        """
        ...

    async def unresolved_for_pair(self, venue: str, a: str, b: str) -> list[Entry]:
        """Unresolved transfers between ``a`` and ``b`` in either direction."""
        ...

    async def unresolved_for_accounts(
        self, venue: str, accounts: Iterable[str], *, owner: str | None = None
    ) -> list[Entry]:
        """Unresolved transfers touching any of ``accounts`` (as src or dst); with ``owner``,
        those of that user id or ownerless, whatever their venue name."""
        ...

    async def transfers_since(self, bot: str, since: float) -> list[Entry]:
        """Transfers of ``bot`` created at or after ``since`` that may have moved money
        (pending, sent, unknown, done)."""
        ...

    async def last_transfer_at(
        self, venue: str, a: str, b: str, *, owner: str | None = None
    ) -> float | None:
        """Creation time of the newest transfer row on the pair (either direction, any state);
        with ``owner``, rows of that user id or ownerless, whatever their venue name."""
        ...

    async def window_transfers(
        self, owner: str, pairs: frozenset[frozenset[str]] | None, since: float
    ) -> list[Entry]:
        """The transfers ``DailyBudget(limit, since, pairs)`` of ``owner`` counts (see there)."""
        ...

    async def events(self, entry_id: str) -> list[AuditEvent]:
        """The audit trail of one entry, oldest first."""
        ...

    async def record_refusal(self, **refusal: Unpack[Refusal]) -> Entry:
        """An action refused by policy (state ``refused``)."""
        ...

    async def record_dry_run(self, **dry_run: Unpack[DryRun]) -> Entry:
        """An action that would have been taken (state ``dry_run``); nothing was sent."""
        ...

    async def record_order(
        self, *, fence: tuple[str, int] | None = None, **order: Unpack[Order]
    ) -> Entry:
        """An order or cancel command about to be handed to the venue (state ``submitted``),
        with the order's fields (``Order``) in their own columns.

        An order has no step between this row and the send (the venue's reply moves it), so
        this is where it is fenced: with ``fence=(group, epoch)``, the row is written only if
        the group is led under ``epoch`` and ``order["epoch"]`` is it (as ``mark_sent``).

        Raises:
          StaleEpoch: it is not; nothing was written (the command must not be sent).
        """
        ...

    async def amend_order(
        self,
        entry_id: str,
        *,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
        detail: str = "",
    ) -> Entry:
        """Record a resting order's new price and/or quantity (the venue's ``MODIFIED``): the
        columns change, the state stays ``acked``, and the audit trail keeps the change.

        Raises:
          InvalidTransition: not an order, or not ``acked``.
        """
        ...

    async def mark_order(
        self,
        entry_id: str,
        state: str,
        detail: str = "",
        *,
        venue_order_id: str | None = None,
        by: str | None = None,
    ) -> Entry:
        """Move an order or cancel to ``state`` (``ORDER_TRANSITIONS`` / ``CANCEL_TRANSITIONS``),
        recording the venue's order id when given and ``by`` (``reconcile`` or ``operator``)
        when the state was decided by reconciliation rather than the venue's reply.

        Raises:
          InvalidTransition: not an order or cancel, or a change its state machine forbids.
        """
        ...

    async def counts_since(self, since: float) -> dict[str, dict[str, int]]:
        """How many entries were written since ``since`` (Unix s), by kind and state: the run
        summary ``qfexbot run`` logs at shutdown."""
        ...

    async def unsettled_orders(self, venue: str | None = None) -> list[Entry]:
        """Orders and cancels still submitted, acked or unknown (of venue name ``venue``),
        oldest first: what the order tracker follows and reconciles."""
        ...

    async def orders_by_client_id(
        self, venue: str, account: str, client_order_id: str
    ) -> list[Entry]:
        """Order entries of ``account`` on venue ``venue`` carrying ``client_order_id``, newest
        first."""
        ...

    async def close(self) -> None:
        """Finish pending writes and release the backend."""
        ...

    # -- account holds and the late-landing watch (see qfexbot.money.transfers) --------------------

    async def place_hold(
        self,
        venue: str,
        account: str,
        code: str,
        reason: str,
        entry_id: str | None = None,
        owner: str | None = None,
    ) -> Hold:
        """Pause all money movement on ``account`` (of venue user ``owner``) until an operator
        releases it (durable); ``venue`` is the display name of the venue table that placed it."""
        ...

    async def active_holds(self, venue: str | None = None, owner: str | None = None) -> list[Hold]:
        """Holds not released yet, oldest first (of ``owner`` when given: keyed by the venue
        user id, so a renamed venue table still sees them)."""
        ...

    async def release_holds(self, venue: str | None, account: str, by: str, note: str = "") -> int:
        """Release every active hold on ``account`` (of ``venue``; None: any); returns how many."""
        ...

    async def entry_holds(self, entry_id: str) -> list[Hold]:
        """Every hold ever placed because of ``entry_id``, released ones included, oldest
        first: a durable mark that reconciliation once could not explain its accounts."""
        ...

    async def watches(self, venue: str, owner: str | None = None) -> list[Watch]:
        """Active watches of ``venue`` (of venue user ``owner`` instead, when given), oldest
        first."""
        ...

    async def update_watch(
        self, entry_id: str, state: str, last_src: Decimal, last_dst: Decimal
    ) -> None:
        """Record a watch's state (``watching``, ``landed``, ``expired``, or ``closed``: the
        entry was settled some other way) and the unexplained deposit changes it saw last."""
        ...

    async def transfers_after(
        self, entry_id: str, venue: str, accounts: Iterable[str], owner: str | None = None
    ) -> list[Entry]:
        """Transfers of ``venue`` (of venue user ``owner`` instead, when given; rows without an
        owner match any) touching ``accounts`` written after ``entry_id`` (row order, not clock
        order: a clock step cannot reorder them)."""
        ...

    async def record_late_landing(
        self,
        entry_id: str,
        by: str,
        detail: str,
        venue: str,
        owner: str | None,
        last_src: Decimal,
        last_dst: Decimal,
    ) -> tuple[Entry, list[Hold]]:
        """One transaction: failed -> done (a transfer concluded "not applied" was later seen
        to land), a ``late_landing`` hold on both its accounts (unless one is active) and its
        watch marked ``landed``. Returns the entry and the holds it placed."""
        ...

    # ``list`` last: below it, ``list[...]`` in this class body would name the method.

    async def list(
        self, state: str | None = None, limit: int = 100, kind: str | None = None
    ) -> list[Entry]:
        """Newest first."""
        ...


@runtime_checkable
class RecoverableJournal(Journal, Protocol):
    """A ``Journal`` kept in a file this machine can check and copy (SQLite)."""

    async def check_continuity(self, state_dir: str | Path | None = None) -> JournalMark:
        """Refuse a journal older than the last state seen; then keep its mark current.

        Raises:
          JournalRolledBack: the file is an older copy, another journal, or has lost its id.
        """
        ...

    async def backup(self, dest: str | Path, *, overwrite: bool = False) -> BackupInfo:
        """A consistent online copy of the journal at ``dest`` (see ``recovery.copy_database``)."""
        ...
