"""The runtime's action backend: what ``ctx.transfer``/``add_order``/... actually do.

Transfers go through the venue's :class:`~qfexbot.money.transfers.TransferService` (policy,
journal, exactly-once send, reconciliation), or are refused and journaled as a refusal on a venue
whose adapter says it has no transfers (``VenueAdapter.transfer_refusal``). Orders are mapped by
the venue (``Venue.order``/``cancel``), journaled as an audit trail, then sent over the account's
live session; the other order actions (modify, stop orders, TWAPs, close position, cancel all) are
mapped by their ``Venue`` method and take the same way. Reads go to the venue: over the account's
session, by account id, or public history. Dry-run bots journal "would do" records and send
nothing.
Nothing here knows a venue kind: each venue is reached through ``qfexbot.core.venue``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

import trio

from qfexbot.config import AppConfig
from qfexbot.core import venue as core_venue
from qfexbot.core.accounts import AccountBook
from qfexbot.core.context import Query
from qfexbot.core.logs import get_logger, log_event
from qfexbot.core.venue import Order, OrderRequest
from qfexbot.errors import ActionError, ActionRejected, ActionUnavailable
from qfexbot.events import Event, ResyncEvent, TransferOutcomeEvent
from qfexbot.money.journal import EntryKind, Journal
from qfexbot.money.killswitch import kill_switch_reason
from qfexbot.money.transfers import TransferResult
from qfexbot.runtime.orders import OrderTracker, cancel_fields, order_fields
from qfexbot.runtime.venues import VenueRun

__all__ = ["RuntimeActions"]

log = get_logger("qfexbot.runtime.actions")

_MAPPERS: dict[type, str] = {
    core_venue.OrderChange: "modify",
    core_venue.StopOrder: "stop_order",
    core_venue.StopChange: "modify_stop",
    core_venue.StopCancel: "cancel_stop",
    core_venue.TwapOrder: "twap",
    core_venue.TwapCancel: "cancel_twap",
    core_venue.ClosePosition: "close_position",
    core_venue.CancelAll: "cancel_all",
}
"""Each order action -> the ``Venue`` method that maps it to the venue's request."""

_CANCELS = (core_venue.StopCancel, core_venue.TwapCancel, core_venue.CancelAll)
"""The order actions that only take risk away: the kill switch lets them through."""
PAUSED_CODE = "paused"
"""``ActionRejected.code`` of an order refused because the kill switch is engaged."""
KILL_SWITCH_PLUGIN = "kill-switch"
"""The plugin name the kill switch's own cancels are journaled under."""


def _entry_of(action: core_venue.OrderAction, request: OrderRequest) -> tuple[str, dict[str, Any]]:
    """How one order action is journaled: a stop order or a close is an order followed by its
    client order id (the venue's request always carries one); a stop cancel a cancel of that
    stop; anything else (modify, stop changes, TWAPs, cancel all) a request, ``sent`` once the
    venue has it (its answer arrives as events)."""
    coid = request.params.get("client_order_id")
    client_order_id = None if coid is None else str(coid)
    if isinstance(action, core_venue.StopOrder):
        fields = {"symbol": action.symbol, "side": action.side, "quantity": action.quantity,
                  "price": action.trigger_price, "client_order_id": client_order_id}  # fmt: skip
        return EntryKind.ORDER, fields
    if isinstance(action, core_venue.ClosePosition):
        return EntryKind.ORDER, {"symbol": action.symbol, "client_order_id": client_order_id}
    if isinstance(action, core_venue.StopCancel):
        return EntryKind.CANCEL, {"venue_order_id": action.stop_order_id}
    return EntryKind.REQUEST, {"symbol": getattr(action, "symbol", None)}


class RuntimeActions:
    """Implements :class:`qfexbot.core.context.ActionsBackend` for a running :class:`Runtime`.

    Plugins are loaded (with this backend) before the journal and venues are opened, and act
    only once start-up is done: the runtime hands over the journal with :meth:`use_journal`
    as soon as it is open, and fills ``venues`` before any plugin runs.

    Args:
      app: the loaded configuration (bots, venues, dry-run flags).
      venues: venue name → what runs for it (:class:`~qfexbot.runtime.venues.VenueRun`: the
        opened venue, its adapter, transfer service and sessions).
      publish: ``publish(venue, account_id, event)`` puts an event on an account's bus.
    """

    def __init__(
        self,
        app: AppConfig,
        venues: Mapping[str, VenueRun],
        *,
        publish: Callable[[str, str, Event], Awaitable[None]],
    ) -> None:
        self._app = app
        self._journal_or_none: Journal | None = None
        self._orders: OrderTracker | None = None
        self._runs = venues
        self._publish = publish
        self._books = {
            name: AccountBook(app.venues[bot.venue].accounts, name=f"bot {name!r}")
            for name, bot in app.bots.items()
        }
        # Unbounded on purpose: outcomes are few (one per transfer), and a bound could block
        # the transfer service while it holds locks.
        self._outcomes_in, self._outcomes_out = trio.open_memory_channel[TransferOutcomeEvent](
            math.inf
        )

    def __repr__(self) -> str:
        return f"RuntimeActions(venues={sorted(self._runs)})"

    def use_journal(self, journal: Journal) -> None:
        """Record orders, refusals and dry runs in ``journal`` (the runtime's, once open)."""
        self._journal_or_none = journal

    def use_orders(self, orders: OrderTracker) -> None:
        """Journal orders and cancels through ``orders`` (the runtime's tracker, which follows
        them to their final state); without one, a tracker that only writes is made."""
        self._orders = orders

    # -- helpers -------------------------------------------------------------------------
    @property
    def _journal(self) -> Journal:
        if self._journal_or_none is None:
            raise RuntimeError("journal is not open yet")
        return self._journal_or_none

    def _run(self, bot: str) -> VenueRun:
        return self._runs[self._app.bots[bot].venue]

    def _account(self, bot: str, alias_or_id: str) -> str:
        return self._books[bot].id_of(alias_or_id)

    def _session(self, bot: str, account_id: str) -> Any:
        session = self._run(bot).sessions.get(account_id)
        if session is None:
            raise ActionError(
                f"bot {bot!r}: no trade session for account {account_id}; list it in the "
                f"bot's accounts to trade on it"
            )
        return session

    def on_transfer_outcome(self, event: TransferOutcomeEvent) -> None:
        """Queue a transfer outcome for the buses of both accounts; never waits.

        The transfer service reports outcomes while it holds the accounts' locks, and a plugin
        waiting in ``ctx.transfer`` cannot drain its inbox: publishing here could deadlock on a
        full inbox. :meth:`deliver_outcomes` publishes them from its own task instead.
        """
        self._outcomes_in.send_nowait(event)

    async def deliver_outcomes(self) -> None:
        """Publish queued transfer outcomes, in order, until cancelled (a runtime task)."""
        async for event in self._outcomes_out:
            for account in (event.src, event.dst):
                await self._publish(
                    event.venue, account, dataclasses.replace(event, account_id=account)
                )

    # -- ActionsBackend ------------------------------------------------------------------
    async def transfer(
        self, bot: str, plugin: str, src: str, dst: str, amount: Decimal, reason: str
    ) -> TransferResult:
        """Move funds between two accounts of the bot's venue, exactly once, under policy."""
        src_id, dst_id = self._account(bot, src), self._account(bot, dst)
        run = self._run(bot)
        refusal = run.adapter.transfer_refusal
        if refusal is not None:
            return await self._refuse_transfer(bot, plugin, src_id, dst_id, amount, reason, refusal)
        assert run.transfers is not None  # wire_venue builds one for every venue with transfers
        return await run.transfers.transfer(
            bot, plugin, src_id, dst_id, amount, reason, dry_run=self._app.effective_dry_run(bot)
        )

    async def _refuse_transfer(
        self, bot: str, plugin: str, src: str, dst: str, amount: Decimal, reason: str, why: str
    ) -> TransferResult:
        """Journal a transfer the venue cannot do as a refusal, and answer with it."""
        venue = self._app.bots[bot].venue
        entry = await self._journal.record_refusal(
            bot=bot, plugin=plugin, venue=venue, action="transfer", code="not_supported",
            detail=why, reason=reason, src=src, dst=dst, amount=amount,
        )  # fmt: skip
        log_event(log, logging.WARNING, "transfer refused", entry=entry.id, code="not_supported",
                  detail=why)  # fmt: skip
        return TransferResult(entry.id, entry.state, why, "not_supported")

    async def add_order(self, bot: str, plugin: str, account: str, order: Order) -> None:
        """Send the venue's order on the account's session; the journal records it first.

        Raises:
          ActionError: the venue has no such order (before anything is journaled or sent);
            ``ActionRejected`` if the venue refuses it, ``ActionUnavailable`` if the session
            is not live.
        """
        account_id = self._account(bot, account)
        request = self._run(bot).venue.order(order)
        fields = order_fields(order, request)
        await self._send(bot, plugin, account_id, request, kind="order", fields=fields)

    async def cancel_order(
        self, bot: str, plugin: str, account: str, *, symbol: str, order_id: str
    ) -> None:
        """Send the venue's cancel (by venue order id) on the account's session."""
        account_id = self._account(bot, account)
        request = self._run(bot).venue.cancel(symbol=symbol, order_id=order_id)
        fields = cancel_fields(symbol, order_id)
        await self._send(
            bot, plugin, account_id, request, kind="cancel", fields=fields, adds_risk=False
        )

    async def _send(
        self,
        bot: str,
        plugin: str,
        account_id: str,
        request: OrderRequest,
        *,
        kind: str,
        fields: Mapping[str, Any] | None = None,
        adds_risk: bool = True,
    ) -> None:
        """Journal, then send one order or cancel (a dry-run bot journals it and sends nothing);
        the order tracker records the outcome (``qfexbot.runtime.orders``). ``fields``: the
        entry's order columns (``order_fields``/``cancel_fields``); without them the entry is
        an audit record the tracker cannot match to replies."""
        venue = self._app.bots[bot].venue
        data = {
            "type": request.command,
            "params": {k: _jsonable(v) for k, v in request.params.items()},
        }
        if self._app.effective_dry_run(bot):
            await self._journal.record_dry_run(
                bot=bot, plugin=plugin, venue=venue, detail=f"would send {request.command}",
                data=data,
            )  # fmt: skip
            log_event(
                log,
                logging.INFO,
                "dry-run: order not sent",
                command=request.command,
                account=account_id,
            )
            return
        paused = kill_switch_reason(self._app.runtime.kill_switch_file) if adds_risk else None
        if paused is not None:
            # The kill switch stops new orders as it stops money movement; cancels still go.
            detail = f"kill switch engaged ({paused}): {request.command} not sent"
            await self._journal.record_refusal(
                bot=bot, plugin=plugin, venue=venue, action=request.command, code=PAUSED_CODE,
                detail=detail, src=account_id, data=data,
            )  # fmt: skip
            log_event(log, logging.WARNING, "order refused: kill switch engaged",
                      command=request.command, account=account_id, reason=paused)  # fmt: skip
            raise ActionRejected(detail, code=PAUSED_CODE)
        session = self._session(bot, account_id)
        if self._orders is None:
            self._orders = OrderTracker(self._journal, self._runs)
        entry = await self._orders.record(
            bot=bot, plugin=plugin, venue=venue, account=account_id, kind=kind, data=data,
            fields=fields or {},
        )  # fmt: skip
        try:
            await self._run(bot).venue.send(session, request)
        except (ActionUnavailable, ActionRejected) as exc:
            # Keep the journal true: this order never reached (or may not have reached) the
            # venue, or the venue refused it in its reply.
            await self._orders.not_sent(entry, exc)
            raise
        if kind == EntryKind.REQUEST:
            await self._orders.sent(entry)

    async def order_action(
        self, bot: str, plugin: str, account: str, action: core_venue.OrderAction
    ) -> None:
        """Map one order action (modify, stop orders, TWAP, close, cancel all) with the venue,
        then journal and send it like an order (a cancel kind for the cancels).

        Raises:
          ActionError: the venue has no such action (before anything is journaled or sent);
            ``ActionUnavailable`` if the session is not live.
        """
        account_id = self._account(bot, account)
        request = _venue_method(self._run(bot).venue, _MAPPERS[type(action)])(action)
        kind, fields = _entry_of(action, request)
        await self._send(
            bot, plugin, account_id, request, kind=kind, fields=fields,
            adds_risk=not isinstance(action, _CANCELS),
        )  # fmt: skip

    async def cancel_everything(self, why: str) -> int:
        """Cancel every open order of every account that has a session (the kill switch's
        ``kill_switch_cancels_orders``), each journaled as a request of plugin
        ``kill-switch`` under the first bot that lists the account; returns how many were
        sent. An account whose session is down or whose venue has no cancel-all is logged and
        skipped: the kill switch still refuses every new order there."""
        sent = 0
        done: set[tuple[str, str]] = set()  # (venue, account): once, whatever bots share it
        for name, bot in self._app.bots.items():
            run = self._runs.get(bot.venue)
            if run is None:
                continue
            for account_id in run.sessions:
                key = (bot.venue, account_id)
                if key in done or account_id not in self._bot_accounts(name):
                    continue
                done.add(key)
                try:
                    await self.order_action(name, KILL_SWITCH_PLUGIN, account_id,
                                            core_venue.CancelAll())  # fmt: skip
                except ActionError as exc:
                    log_event(log, logging.ERROR, "kill switch: open orders not cancelled",
                              account=account_id, why=why, error=str(exc))  # fmt: skip
                    continue
                sent += 1
        return sent

    def _bot_accounts(self, bot: str) -> set[str]:
        return {self._account(bot, alias) for alias in self._app.bots[bot].accounts}

    async def set_leverage(
        self, bot: str, plugin: str, account: str, symbol: str, leverage: Decimal
    ) -> None:
        """Set an account's leverage and wait for the venue's answer (a dry-run bot journals
        what it would set and sends nothing)."""
        account_id = self._account(bot, account)
        if self._app.effective_dry_run(bot):
            await self._journal.record_dry_run(
                bot=bot, plugin=plugin, venue=self._app.bots[bot].venue,
                detail=f"would set leverage {leverage} on {symbol}",
                data={"account": account_id, "symbol": symbol, "leverage": str(leverage)},
            )  # fmt: skip
            return
        session = self._session(bot, account_id)
        setter = _venue_method(self._run(bot).venue, "set_leverage")
        await setter(session, symbol=symbol, leverage=leverage)
        log_event(log, logging.INFO, "leverage set", account=account_id, symbol=symbol,
                  leverage=str(leverage))  # fmt: skip

    async def read(self, bot: str, plugin: str, account: str | None, query: Query) -> Any:
        """Answer a plugin's read from the venue: over the account's session, by account id
        over REST, or public history (``query.scope``)."""
        method = _venue_method(self._run(bot).venue, query.name)
        if query.scope == "market":
            return await method(**query.args)
        if account is None:
            raise ActionError(f"{query.name} needs an account")
        account_id = self._account(bot, account)
        if query.scope == "session":
            return await method(self._session(bot, account_id), **query.args)
        return await method(account_id, **query.args)

    async def positions(self, bot: str, plugin: str, account: str) -> ResyncEvent:
        """Balance and positions of an account, read from the venue now."""
        return await self._run(bot).venue.snapshot(self._account(bot, account))

    async def account_equity(
        self, bot: str, plugin: str, account: str, duration: str = "1w"
    ) -> list[tuple[Any, Decimal]]:
        """The venue's sampled equity history of an account."""
        return await self._run(bot).venue.account_equity(self._account(bot, account), duration)


def _venue_method(venue: core_venue.Venue, name: str) -> Callable[..., Any]:
    """The venue's method ``name``; ``ActionError`` for a venue written before it existed."""
    method = getattr(venue, name, None)
    if method is None:
        raise ActionError(f"venue {venue.name!r} has no {name}")
    return method


def _jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value
