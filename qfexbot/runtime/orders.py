"""The order journal's runtime half: every order and cancel followed to its final state.

Orders are journaled as transfers are (``docs/reliability.md``, "Orders"): the entry is committed
``submitted`` *before* the command is sent, and the outcome after. :class:`OrderTracker` reads
each account's :class:`~qfexbot.events.OrderUpdateEvent` s, finds the entry by
``client_order_id`` (a cancel by the venue order id it cancels) and moves it::

    submitted ──> acked ──> filled | cancelled
        ├──> filled | cancelled | rejected        (a market order fills, the venue refuses)
        ├──> failed                               (never reached the venue)
        └──> unknown ──> acked | filled | cancelled | rejected | failed   (reconciled)

``unknown``: the send raised ``ActionUnavailable(maybe_sent=True)``, or no reply came within the
settle time. Reconciliation asks the venue (:class:`OrderLookup`, the venue's ``find_order``) by
client order id: found, the entry takes the venue's state; absent, it is ``failed``. It runs at
start-up and after every ``ResyncEvent`` (reconnect) of an account, for entries still submitted,
acked or unknown older than the settle time, as soon as the venue can answer. An order is never
sent again while an entry with its client order id is unsettled: ``add_order`` reconciles that
entry first and refuses (``ActionRejected(code="duplicate_client_order_id")``) if the venue has
it or cannot tell yet.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import trio

from qfexbot.core.accounts import AccountBook
from qfexbot.core.bus import Inbox
from qfexbot.core.logs import get_logger, log_event
from qfexbot.core.venue import Order, OrderRequest
from qfexbot.errors import ActionError, ActionRejected, ActionUnavailable
from qfexbot.events import Event, FillEvent, OrderUpdateEvent, ResyncEvent
from qfexbot.money.journal import Entry, EntryKind, EntryState, InvalidTransition, Journal
from qfexbot.money.journal.model import MACHINES
from qfexbot.runtime.venues import VenueRun

__all__ = [
    "DUPLICATE_CODE",
    "ORDER_SETTLE_MIN",
    "OrderLookup",
    "OrderTracker",
    "cancel_fields",
    "order_fields",
    "order_settle_seconds",
    "order_state",
]

log = get_logger("qfexbot.runtime.orders")

ORDER_SETTLE_MIN = 30.0
"""Floor (s) of the settle time: an order with no reply for this long is ``unknown`` (Q31)."""

DUPLICATE_CODE = "duplicate_client_order_id"
"""``ActionRejected.code`` of an order refused because its client order id is not settled."""

_CANCELLED = frozenset({"CANCELLED", "CANCELLED_STP"})
_NOT_RESTING = frozenset({"IOC", "FOK"})
# Replies to a cancel or a modification, not about the order's own creation.
_NOT_ABOUT_ORDER = frozenset(
    {"NO_SUCH_ORDER", "CANNOT_MODIFY_PARTIAL_FILL", "CANNOT_MODIFY_NO_SUCH_ORDER"}
)
OWNERS_KEPT = 10_000
"""Recent orders whose bot and plugin the fill lines can name."""
_TICK_MAX = 1.0
"""Longest wait (s) between two sweeps (unanswered orders, accounts due for reconciliation)."""


def order_settle_seconds(request_timeout: float) -> float:
    """The settle time of a venue: ``max(3 * request_timeout, ORDER_SETTLE_MIN)`` seconds."""
    return max(3 * request_timeout, ORDER_SETTLE_MIN)


def order_state(event: OrderUpdateEvent) -> str | None:
    """The journal state an order reaches with this update, or None if it says nothing about
    the order itself (a reply to a cancel or modification of an unknown order).

    ACK, MODIFIED and a partial FILLED -> acked; FILLED with nothing left, or any FILLED of
    an IOC/FOK order (its remainder is cancelled with it) -> filled;
    CANCELLED / CANCELLED_STP -> cancelled; every other status is a refusal -> rejected.
    """
    status = event.status.upper()
    if status in ("ACK", "MODIFIED"):
        return EntryState.ACKED
    if status == "FILLED":
        if event.remaining <= 0 or event.time_in_force.upper() in _NOT_RESTING:
            # An IOC/FOK's remainder is cancelled with its last fill (qfex.md §2.5): the
            # venue sends nothing more, so a partial fill is its final state.
            return EntryState.FILLED
        return EntryState.ACKED
    if status in _CANCELLED:
        return EntryState.CANCELLED
    if status in _NOT_ABOUT_ORDER:
        return None
    return EntryState.REJECTED


def order_fields(order: Order, request: OrderRequest) -> dict[str, Any]:
    """The journal columns of an order: its own fields; the client order id the venue put in
    ``request.params["client_order_id"]`` when the plugin gave none."""
    client_order_id = order.client_order_id or request.params.get("client_order_id")
    return {
        "symbol": order.symbol,
        "side": order.side,
        "quantity": Decimal(order.quantity),
        "price": None if order.price is None else Decimal(order.price),
        "client_order_id": None if client_order_id is None else str(client_order_id),
    }


def cancel_fields(symbol: str, order_id: str) -> dict[str, Any]:
    """The journal columns of a cancel: the symbol and venue order id of the order it cancels."""
    return {"symbol": symbol, "venue_order_id": order_id}


@runtime_checkable
class OrderLookup(Protocol):
    """How reconciliation asks a venue about one order (``Venue.find_order``)."""

    async def find_order(self, account_id: str, client_order_id: str) -> OrderUpdateEvent | None:
        """The order's current state (open or finished), or None when the venue has no order
        with this client order id.

        Raises:
          ActionUnavailable: the venue cannot tell now (e.g. the session is reconnecting).
        """
        ...


@dataclass
class _Tracked:
    """An unsettled entry and the (trio) time its settle time counts from."""

    entry: Entry
    since: float


class OrderTracker:
    """Journals the runtime's orders and cancels and follows each one to its final state.

    Writing (:meth:`record`, :meth:`not_sent`) needs nothing running; following needs
    :meth:`load` (before any plugin acts: reads the unsettled entries, subscribes to every
    account's bus) and :meth:`run` (consumes order updates and resyncs, sweeps).

    Args:
      journal: the runtime's journal.
      venues: venue name -> what runs for it (read when needed: filled after construction).

    Attributes:
      settle_seconds: the settle time for every venue; None (default): each venue's
        :func:`order_settle_seconds` of its ``request_timeout``.
    """

    def __init__(self, journal: Journal, venues: Mapping[str, VenueRun]) -> None:
        self._journal = journal
        self._venues = venues
        self.settle_seconds: float | None = None
        self._lookups: dict[str, OrderLookup] = {}
        # (venue, account, client order id) -> order (one unsettled order per id: a second send
        # is refused); (venue, account, venue order id, entry id) -> cancel (several may be
        # in flight for one order)
        self._orders: dict[tuple[str, ...], _Tracked] = {}
        self._cancels: dict[tuple[str, ...], _Tracked] = {}
        self._due: set[tuple[str, str]] = set()
        # (venue, account, client order id) of the orders being journaled right now
        self._claimed: set[tuple[str, ...]] = set()
        self._lock = trio.Lock()
        self.inbox = Inbox(
            "order-tracker", size=10_000, subscribes=(OrderUpdateEvent, ResyncEvent, FillEvent)
        )
        self.fills = 0
        """Executions seen (for the run's summary)."""
        self._owners: OrderedDict[tuple[str, str, str], tuple[str, str]] = OrderedDict()
        """(venue, account, client order id) -> (bot, plugin) of the latest orders, for the
        fill lines; at most ``OWNERS_KEPT``."""

    def __repr__(self) -> str:
        return f"OrderTracker(orders={len(self._orders)}, cancels={len(self._cancels)})"

    # -- configuration ---------------------------------------------------------------------

    def use_lookup(self, venue: str, lookup: OrderLookup) -> None:
        """Reconcile ``venue``'s orders through ``lookup`` instead of its ``find_order``."""
        self._lookups[venue] = lookup

    def lookup(self, venue: str) -> OrderLookup | None:
        """How ``venue``'s orders are looked up: the one given to :meth:`use_lookup`, else the
        venue itself when it has ``find_order``; None when it has neither."""
        if venue in self._lookups:
            return self._lookups[venue]
        run = self._venues.get(venue)
        if run is not None and callable(getattr(run.venue, "find_order", None)):
            return run.venue  # type: ignore[return-value]
        return None

    def settle(self, venue: str) -> float:
        """Seconds without a reply after which an order of ``venue`` is ``unknown``."""
        if self.settle_seconds is not None:
            return self.settle_seconds
        run = self._venues.get(venue)
        timeout = run.config.session.request_timeout if run is not None else 10.0
        return order_settle_seconds(timeout)

    def tracked(self) -> list[Entry]:
        """The unsettled entries followed now, oldest first."""
        rows = [t.entry for t in (*self._orders.values(), *self._cancels.values())]
        return sorted(rows, key=lambda e: e.created_at)

    # -- writing ---------------------------------------------------------------------------

    async def record(
        self,
        *,
        bot: str,
        plugin: str,
        venue: str,
        account: str,
        kind: str,
        data: Mapping[str, Any],
        fields: Mapping[str, Any],
    ) -> Entry:
        """Journal an order or cancel ``submitted`` (before it is sent) and follow it.

        Raises:
          ActionRejected: ``code="duplicate_client_order_id"``: an entry with this client
            order id is unsettled and the venue has it or cannot tell yet; the refusal is
            journaled (kind ``refusal``), the order is not.
        """
        coid = fields.get("client_order_id")
        key = (venue, account, coid) if kind == EntryKind.ORDER and coid else None
        if key is None:
            entry = await self._journal.record_order(
                bot=bot, plugin=plugin, venue=venue, account=account, data=data, kind=kind,
                **fields,
            )  # fmt: skip
            self._follow(entry, trio.current_time())
            return entry
        # Claimed before the first await: a second send of this client order id from another
        # task meanwhile is refused, never journaled and sent beside this one.
        claimed = key not in self._claimed
        try:
            if not claimed:
                raise ActionRejected(
                    f"an order with client_order_id {coid!r} is being journaled and sent by "
                    "another task: not sent again",
                    code=DUPLICATE_CODE,
                )
            self._claimed.add(key)
            await self._refuse_duplicate(venue, account, coid)
        except ActionRejected as exc:
            await self._journal.record_refusal(
                bot=bot, plugin=plugin, venue=venue, action="order", code=DUPLICATE_CODE,
                detail=str(exc), src=account, data={"client_order_id": coid, **data},
            )  # fmt: skip
            if claimed:
                self._claimed.discard(key)
            raise
        try:
            entry = await self._journal.record_order(
                bot=bot, plugin=plugin, venue=venue, account=account, data=data, kind=kind,
                **fields,
            )  # fmt: skip
            self._follow(entry, trio.current_time())
        finally:
            self._claimed.discard(key)
        return entry

    async def sent(self, entry: Entry) -> Entry:
        """A request (kind ``request``) was handed to the venue: ``sent``, its final state in
        the journal (what the venue did with it arrives as events)."""
        moved = await self._move(
            self._find(entry), EntryState.SENT, "handed to the venue; its answer arrives as events"
        )
        return moved or entry

    async def not_sent(self, entry: Entry, exc: ActionError) -> Entry:
        """Record why the send of ``entry`` raised: ``failed`` when it never reached the venue,
        ``unknown`` when it may have (``maybe_sent``), ``rejected`` (a cancel: ``failed``) when
        the venue refused it in its reply."""
        if isinstance(exc, ActionUnavailable):
            state = EntryState.UNKNOWN if exc.maybe_sent else EntryState.FAILED
            text = ("maybe sent: " if exc.maybe_sent else "not sent: ") + str(exc)
        else:
            order = entry.kind == EntryKind.ORDER
            state = EntryState.REJECTED if order else EntryState.FAILED
            text = f"rejected: {exc}"
        moved = await self._move(self._find(entry), state, text)
        if state == EntryState.UNKNOWN:
            self._due.add((entry.venue, entry.src or ""))
        return moved or entry

    # -- following -------------------------------------------------------------------------

    async def load(self) -> None:
        """Follow the journal's unsettled orders and cancels (their settle time counts from
        their creation) and subscribe to every account's bus; every account with such an entry
        is due for reconciliation."""
        now, wall = trio.current_time(), time.time()
        for entry in await self._journal.unsettled_orders():
            self._follow(entry, now - max(0.0, wall - entry.created_at))
            self._due.add((entry.venue, entry.src or ""))
        for run in self._venues.values():
            for bus in run.buses.values():
                bus.subscribe(self.inbox)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Consume order updates and resyncs, and sweep, until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._consume)
            task_status.started()
            while True:
                await trio.sleep(self._tick())
                try:
                    await self.sweep()
                except Exception:  # a journal or lookup failure: try again at the next sweep
                    log.exception("order journal sweep failed")

    async def on_event(self, event: Event) -> None:
        """Move the entry an order update is about; a resync makes its account due."""
        if isinstance(event, ResyncEvent):
            self._due.add((event.venue, event.account_id))
        elif isinstance(event, OrderUpdateEvent):
            await self._on_update(event)
        elif isinstance(event, FillEvent):
            self._log_fill(event)

    def _log_fill(self, fill: FillEvent) -> None:
        """One line per execution, with price and fee, as the venue reported them, and the bot
        and plugin whose order it was (remembered when it was journaled: no journal read per
        fill, this inbox takes private events and must keep up with the sessions)."""
        self.fills += 1
        run = self._venues.get(fill.venue)
        alias = (
            AccountBook(run.config.accounts).alias_of(fill.account_id)
            if run is not None
            else fill.account_id
        )
        owner = self._owners.get((fill.venue, fill.account_id, fill.client_order_id))
        whose = {"bot": owner[0], "plugin": owner[1]} if owner else {}
        log_event(
            log,
            logging.INFO,
            f"fill {fill.side} {fill.quantity} {fill.symbol} @ {fill.price}, fee {fill.fee}",
            **whose,
            venue=fill.venue,
            account=alias,
            role="taker" if fill.is_taker else "maker",
            order_id=fill.order_id,
            client_order_id=fill.client_order_id,
        )

    async def sweep(self) -> None:
        """Entries submitted longer than the settle time without a reply become ``unknown``;
        then every due account is reconciled (left due while its venue cannot answer)."""
        now = trio.current_time()
        for tracked in [*self._orders.values(), *self._cancels.values()]:
            entry = tracked.entry
            settle = self.settle(entry.venue)
            if entry.state == EntryState.SUBMITTED and now - tracked.since >= settle:
                await self._move(tracked, EntryState.UNKNOWN, f"no reply within {settle:g} s")
                self._due.add((entry.venue, entry.src or ""))
        for venue, account in sorted(self._due):
            if await self.reconcile(venue, account):
                self._due.discard((venue, account))

    async def reconcile(self, venue: str, account: str) -> bool:
        """Ask the venue about ``account``'s orders: acked ones, and submitted or unknown ones
        older than the settle time. Returns False when the venue could not answer (try later).
        """
        lookup = self.lookup(venue)
        if lookup is None:
            return True
        now, settle = trio.current_time(), self.settle(venue)
        for (v, a, coid), tracked in list(self._orders.items()):
            old = now - tracked.since >= settle
            if (v, a) != (venue, account) or not (old or tracked.entry.state == EntryState.ACKED):
                continue
            try:
                found = await lookup.find_order(account, coid)
            except ActionUnavailable:
                return False
            except ActionError as exc:  # the venue cannot look orders up: nothing to decide
                log_event(log, logging.WARNING, "order lookup refused", venue=venue, error=exc)
                return True
            await self._settle_found(tracked, found)
        return True

    # -- internals -------------------------------------------------------------------------

    def _tick(self) -> float:
        venues = list(self._venues) or [""]
        return max(0.05, min(_TICK_MAX, *(self.settle(v) / 3 for v in venues)))

    async def _consume(self) -> None:
        while True:
            try:
                event = await self.inbox.get()
            except trio.EndOfChannel:
                return
            try:
                await self.on_event(event)
            except Exception:  # a journal write failing must not stop the tracker
                log.exception("order journal update failed", extra={"fields": {"kind": event.kind}})

    def _follow(self, entry: Entry, since: float) -> None:
        table, key = self._slot(entry)
        if key is not None and entry.unsettled:
            table[key] = _Tracked(entry, since)
        if entry.kind == EntryKind.ORDER and entry.client_order_id:
            owners = self._owners
            owners[(entry.venue, entry.src or "", entry.client_order_id)] = (
                entry.bot,
                entry.plugin,
            )
            if len(owners) > OWNERS_KEPT:
                owners.popitem(last=False)

    def _slot(self, entry: Entry) -> tuple[dict[tuple[str, ...], _Tracked], tuple[str, ...] | None]:
        """Where ``entry`` is followed (None: it cannot be matched to a reply)."""
        where = (entry.venue, entry.src or "")
        if entry.kind == EntryKind.ORDER:
            return self._orders, (*where, entry.client_order_id) if entry.client_order_id else None
        key = (*where, entry.venue_order_id, entry.id) if entry.venue_order_id else None
        return self._cancels, key

    def _cancels_of(self, venue: str, account: str, order_id: str) -> list[_Tracked]:
        """The followed cancels of one venue order, oldest first."""
        found = [t for k, t in self._cancels.items() if k[:3] == (venue, account, order_id)]
        return sorted(found, key=lambda t: t.entry.created_at)

    def _find(self, entry: Entry) -> _Tracked:
        table, key = self._slot(entry)
        tracked = table.get(key) if key is not None else None
        return (
            tracked if tracked is not None and tracked.entry.id == entry.id else _Tracked(entry, 0)
        )

    async def _move(
        self,
        tracked: _Tracked,
        state: str,
        detail: str,
        *,
        venue_order_id: str | None = None,
        by: str | None = None,
    ) -> Entry | None:
        """One state change of a followed entry, if its state machine allows it (else None)."""
        async with self._lock:
            entry = tracked.entry
            if state not in MACHINES[entry.kind].get(entry.state, frozenset()):
                return None
            try:
                moved = await self._journal.mark_order(
                    entry.id, state, detail, venue_order_id=venue_order_id, by=by
                )
            except InvalidTransition:  # moved meanwhile by another path: take the journal's
                moved = await self._journal.get(entry.id)
                if moved is None:
                    return None
            tracked.entry = moved
            if not moved.unsettled:
                self._forget(moved)
            return moved

    async def _amend(self, tracked: _Tracked, event: OrderUpdateEvent) -> None:
        """A resting order the venue modified: its entry takes the new price and quantity."""
        async with self._lock:
            detail = (
                f"MODIFIED (order {event.order_id}): price {event.price}, "
                f"quantity {event.quantity}, remaining {event.remaining}"
            )
            try:
                tracked.entry = await self._journal.amend_order(
                    tracked.entry.id, price=event.price, quantity=event.quantity, detail=detail
                )
            except InvalidTransition:  # settled meanwhile by another path
                return

    def _forget(self, entry: Entry) -> None:
        table, key = self._slot(entry)
        if key is not None and key in table and table[key].entry.id == entry.id:
            del table[key]

    async def _on_update(self, event: OrderUpdateEvent) -> None:
        where = (event.venue, event.account_id)
        cancels = self._cancels_of(*where, event.order_id) if event.order_id else []
        status = event.status.upper()
        if status in _CANCELLED:  # every cancel of that order did its job
            for cancel in cancels:
                await self._move(cancel, EntryState.DONE, f"{status} (order {event.order_id})")
        elif status == "NO_SUCH_ORDER" and cancels:  # the reply to the oldest one in flight
            await self._move(
                cancels[0], EntryState.FAILED, f"venue: no open order {event.order_id}"
            )
        order = self._orders.get((*where, event.client_order_id)) if event.client_order_id else None
        state = order_state(event)
        if order is None or state is None:
            return
        known = order.entry.venue_order_id
        if known and event.order_id and event.order_id != known:
            # Another venue order with this client order id: the take-profit / stop-loss the
            # venue attached to this one carries its parent's (the venue does not say it
            # would not); it never settles the parent's entry.
            return
        if status == "MODIFIED" and order.entry.state == EntryState.ACKED:
            await self._amend(order, event)
            return
        detail = f"{event.status} (order {event.order_id}, remaining {event.remaining})"
        moved = await self._move(order, state, detail, venue_order_id=event.order_id or None)
        if moved is not None and not moved.unsettled:
            await self._close_cancels(moved)

    async def _close_cancels(self, order: Entry) -> None:
        """A cancel in doubt of an order that reached a final state: done if it was cancelled,
        else failed (it was filled or refused first)."""
        state = EntryState.DONE if order.state == EntryState.CANCELLED else EntryState.FAILED
        for tracked in self._cancels_of(order.venue, order.src or "", order.venue_order_id or ""):
            if tracked.entry.state == EntryState.UNKNOWN:
                detail = f"order {order.id} is {order.state}"
                await self._move(tracked, state, detail, by="reconcile")

    async def _settle_found(self, tracked: _Tracked, found: OrderUpdateEvent | None) -> None:
        """Reconcile one order with what the venue says about its client order id."""
        entry = tracked.entry
        if found is None:
            if entry.state == EntryState.ACKED:  # acked but gone: an operator should look
                log_event(
                    log, logging.WARNING, "acked order not found at the venue", entry=entry.id
                )
                return
            detail = f"the venue has no order with client_order_id {entry.client_order_id}"
            if entry.state == EntryState.SUBMITTED:
                await self._move(tracked, EntryState.UNKNOWN, f"no reply; {detail}")
            await self._move(tracked, EntryState.FAILED, detail, by="reconcile")
            return
        state = order_state(found)
        if state is None or state == entry.state:
            return
        detail = f"reconciled: {found.status} (order {found.order_id}, remaining {found.remaining})"
        moved = await self._move(
            tracked, state, detail, venue_order_id=found.order_id, by="reconcile"
        )
        if moved is not None and not moved.unsettled:
            await self._close_cancels(moved)

    async def _refuse_duplicate(self, venue: str, account: str, coid: str) -> None:
        """Reconcile an unsettled entry with this client order id before a second send; refuse
        the send if the venue has the order, cannot tell, or it is still within its settle
        time."""
        tracked = self._orders.get((venue, account, coid))
        if tracked is None:
            return
        lookup = self.lookup(venue)
        why = "its venue cannot look orders up"
        if lookup is not None:
            try:
                found = await lookup.find_order(account, coid)
            except ActionError as exc:
                why = f"the venue cannot tell now ({exc})"
            else:
                old = trio.current_time() - tracked.since >= self.settle(venue)
                if found is None and old and tracked.entry.state != EntryState.ACKED:
                    await self._settle_found(tracked, None)
                    return
                if found is not None:
                    await self._settle_found(tracked, found)
                    why = f"the venue has it ({found.status}, order {found.order_id})"
                elif tracked.entry.state == EntryState.ACKED:
                    why = "the venue acknowledged it"
                else:
                    why = "it may still reach the venue (within its settle time)"
        raise ActionRejected(
            f"an order with client_order_id {coid!r} is already journaled ({tracked.entry.id}, "
            f"{tracked.entry.state}) and {why}: not sent again",
            code=DUPLICATE_CODE,
        )
