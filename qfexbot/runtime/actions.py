"""The runtime's action backend: what ``ctx.transfer``/``add_order``/... actually do.

Transfers go through the venue's :class:`~qfexbot.money.transfers.TransferService` (policy, journal,
exactly-once send, reconciliation); orders go over the account's live trade session and are
journaled as an audit trail; reads go to the venue's REST API. Dry-run bots journal "would do"
records and send nothing.

Per venue kind: QFEX orders are ``add_order``/``cancel_order`` commands on the trade socket;
Finery orders are ``add``/``del`` requests on the account's socket (qfexbot's order vocabulary
mapped by :func:`finery_order`), and a Finery transfer is refused and journaled as a refusal:
the venue has no transfers, value moves by bilateral settlement.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

import trio

from qfexbot.config import AppConfig, VenueConfig
from qfexbot.core.logs import get_logger, log_event
from qfexbot.core.session import Supervisor
from qfexbot.errors import ActionUnavailable, UnknownAccountError
from qfexbot.events import Event, ResyncEvent, TransferOutcomeEvent
from qfexbot.money.journal import Journal
from qfexbot.money.transfers import (
    BalanceReading,
    TransferAmbiguous,
    TransferNotSent,
    TransferRejected,
    TransferResult,
    TransferService,
)
from qfexbot.venues.finery.adapter import FinerySession
from qfexbot.venues.qfex.rest import (
    QfexAmbiguousError,
    QfexApiError,
    QfexNotSentError,
    QfexRest,
)

__all__ = [
    "ActionError",
    "RuntimeActions",
    "finery_order",
    "rest_available_reader",
    "rest_transfer_sender",
]

log = get_logger("qfexbot.runtime.actions")


class ActionError(RuntimeError):
    """An action a plugin asked for cannot be carried out (no session for the account, ...)."""


FINERY_TRANSFER_REFUSAL = (
    "finery has no transfers: value moves between counterparties by bilateral settlement, "
    "which qfexbot does not drive"
)
"""The refusal reason journaled for ``ctx.transfer`` on a Finery venue."""

_FINERY_TYPES: dict[tuple[str, str], str] = {
    ("LIMIT", "GTC"): "limit",
    ("ALO", "GTC"): "postOnly",
    ("LIMIT", "IOC"): "limitIOC",
    ("LIMIT", "FOK"): "limitFOK",
    ("MARKET", "IOC"): "marketIOC",
    ("MARKET", "FOK"): "marketFOK",
}
_FINERY_SIDES = {"BUY": "bid", "SELL": "ask"}


def finery_order(
    *,
    symbol: str,
    side: str,
    order_type: str,
    quantity: Decimal,
    price: Decimal | None,
    time_in_force: str,
    client_order_id: str | None,
    reduce_only: bool,
) -> dict[str, Any]:
    """qfexbot's order vocabulary as ``FinerySession.add_order`` arguments.

    Raises:
      ActionError: a combination Finery does not have (e.g. MARKET + GTC, reduce_only, a
        non-numeric client order id), with the reason.
    """
    kind = _FINERY_TYPES.get((order_type.upper(), time_in_force.upper()))
    if kind is None:
        known = ", ".join(f"{t}+{f}" for t, f in _FINERY_TYPES)
        raise ActionError(f"finery has no {order_type}+{time_in_force} orders (known: {known})")
    if side.upper() not in _FINERY_SIDES:
        raise ActionError(f"order side must be BUY or SELL, got {side!r}")
    if reduce_only:
        raise ActionError("finery has no reduce-only orders")
    if kind.startswith("market"):
        price = None
    elif price is None:
        raise ActionError(f"a {order_type} order needs a price")
    cloid = None
    if client_order_id is not None:
        if not client_order_id.isdigit() or not 0 < int(client_order_id) < 2**63:
            raise ActionError(
                f"a finery client_order_id is an integer 1 .. 2^63-1, got {client_order_id!r}"
            )
        cloid = int(client_order_id)
    return {
        "instrument": symbol,
        "side": _FINERY_SIDES[side.upper()],
        "order_type": kind,
        "size": Decimal(quantity),
        "price": Decimal(price) if price is not None else None,
        "client_order_id": cloid,
    }


def rest_transfer_sender(rest: QfexRest) -> Callable[[str, str, Decimal], Awaitable[None]]:
    """Adapt ``QfexRest.transfer`` to the transfer service's outcome taxonomy.

    A definite 4xx answer is a rejection; a 5xx or a 3xx (``QfexRest`` raises
    ``QfexAmbiguousError`` for both) is ambiguous because the venue may have applied the
    transfer before answering; an error before anything was sent is not-sent.
    """

    async def send(src: str, dst: str, amount: Decimal) -> None:
        try:
            await rest.transfer(src, dst, amount)
        except QfexApiError as exc:
            if exc.status >= 500:
                raise TransferAmbiguous(str(exc)) from exc
            raise TransferRejected(str(exc)) from exc
        except QfexAmbiguousError as exc:
            raise TransferAmbiguous(str(exc)) from exc
        except QfexNotSentError as exc:
            raise TransferNotSent(str(exc)) from exc

    return send


def rest_available_reader(rest: QfexRest) -> Callable[[str], Awaitable[BalanceReading]]:
    """A fresh REST read of one account's available and ``deposit`` balances (for policy and
    reconciliation; see ``qfexbot.money.transfers`` on why deposit)."""

    async def read_balance(account_id: str) -> BalanceReading:
        snapshot = await rest.positions(account_id)
        if snapshot.balance is None:
            raise ActionError(f"venue returned no balance for account {account_id}")
        return BalanceReading(snapshot.balance.available, snapshot.balance.deposit)

    return read_balance


class RuntimeActions:
    """Implements :class:`qfexbot.core.context.ActionsBackend` for a running :class:`Runtime`.

    Args:
      app: the loaded configuration (bots, venues, dry-run flags).
      journal: the audit journal (orders and refusals are recorded there).
      transfers: venue name → its transfer service.
      rests: venue name → its REST client.
      sessions: venue name → {account id → trade session}.
      publish: ``publish(venue, account_id, event)`` puts an event on an account's bus.
      venues: venue name → its adapter (``QfexVenue`` / ``FineryVenue``), for reads that are
        venue-specific; needed only for Finery venues.
    """

    def __init__(
        self,
        app: AppConfig,
        journal: Journal,
        *,
        transfers: Mapping[str, TransferService],
        rests: Mapping[str, QfexRest],
        sessions: Mapping[str, Mapping[str, Supervisor]],
        publish: Callable[[str, str, Event], Awaitable[None]],
        venues: Mapping[str, Any] | None = None,
    ) -> None:
        self._app = app
        self._venues = venues if venues is not None else {}
        self._journal = journal
        self._transfers = transfers
        self._rests = rests
        self._sessions = sessions
        self._publish = publish
        # Unbounded on purpose: outcomes are few (one per transfer), and a bound could block
        # the transfer service while it holds locks.
        self._outcomes_in, self._outcomes_out = trio.open_memory_channel[TransferOutcomeEvent](
            math.inf
        )

    def __repr__(self) -> str:
        return f"RuntimeActions(venues={sorted(self._transfers)})"

    # -- helpers -------------------------------------------------------------------------
    def _venue(self, bot: str) -> VenueConfig:
        return self._app.venues[self._app.bots[bot].venue]

    def _is_finery(self, bot: str) -> bool:
        return self._venue(bot).kind == "finery"

    def _account(self, bot: str, alias_or_id: str) -> str:
        venue = self._venue(bot)
        if alias_or_id in venue.accounts:
            return venue.accounts[alias_or_id]
        if alias_or_id in venue.accounts.values():
            return alias_or_id
        raise UnknownAccountError(
            f"bot {bot!r}: unknown account {alias_or_id!r} "
            f"(known: {', '.join(sorted(venue.accounts)) or 'none'})"
        )

    def _session(self, bot: str, account_id: str) -> Supervisor | FinerySession:
        venue = self._app.bots[bot].venue
        session = self._sessions.get(venue, {}).get(account_id)
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
        if self._is_finery(bot):
            return await self._refuse_transfer(bot, plugin, src_id, dst_id, amount, reason)
        service = self._transfers[self._app.bots[bot].venue]
        return await service.transfer(
            bot, plugin, src_id, dst_id, amount, reason, dry_run=self._app.effective_dry_run(bot)
        )

    async def _refuse_transfer(
        self, bot: str, plugin: str, src: str, dst: str, amount: Decimal, reason: str
    ) -> TransferResult:
        venue = self._app.bots[bot].venue
        entry = await self._journal.record_refusal(
            bot=bot, plugin=plugin, venue=venue, action="transfer", code="not_supported",
            detail=FINERY_TRANSFER_REFUSAL, reason=reason, src=src, dst=dst, amount=amount,
        )  # fmt: skip
        log_event(log, logging.WARNING, "transfer refused", entry=entry.id, code="not_supported",
                  detail=FINERY_TRANSFER_REFUSAL)  # fmt: skip
        return TransferResult(entry.id, entry.state, FINERY_TRANSFER_REFUSAL, "not_supported")

    async def add_order(
        self,
        bot: str,
        plugin: str,
        account: str,
        *,
        symbol: str,
        side: str,
        order_type: str,
        quantity: Decimal,
        price: Decimal | None = None,
        time_in_force: str = "GTC",
        client_order_id: str | None = None,
        reduce_only: bool = False,
    ) -> None:
        """Send ``add_order`` on the account's session; the journal records it first.

        On Finery the order is an ``add`` request; the venue's refusal (e.g. error 76, no
        liquidity for an IOC) raises ``FineryError`` here, as Finery emits no feed message
        for a rejected order.
        """
        account_id = self._account(bot, account)
        if self._is_finery(bot):
            order = finery_order(
                symbol=symbol, side=side, order_type=order_type, quantity=quantity, price=price,
                time_in_force=time_in_force, client_order_id=client_order_id,
                reduce_only=reduce_only,
            )  # fmt: skip
            await self._send_finery(bot, plugin, account_id, "add", order, kind="order")
            return
        params: dict[str, Any] = {
            "symbol": symbol,
            "side": side,
            "order_type": order_type,
            "order_time_in_force": time_in_force,
            "quantity": Decimal(quantity),
            "price": Decimal(price) if price is not None else Decimal(0),
            "client_order_id": client_order_id or uuid.uuid4().hex,
            "take_profit": Decimal(0),
            "stop_loss": Decimal(0),
            "reduce_only": reduce_only,
        }
        await self._send_command(bot, plugin, account_id, "add_order", params, kind="order")

    async def cancel_order(
        self, bot: str, plugin: str, account: str, *, symbol: str, order_id: str
    ) -> None:
        """Send ``cancel_order`` (by venue order id) on the account's session."""
        account_id = self._account(bot, account)
        if self._is_finery(bot):
            if not order_id.isdigit():
                raise ActionError(f"a finery order id is an integer, got {order_id!r}")
            await self._send_finery(
                bot, plugin, account_id, "del", {"order_id": int(order_id)}, kind="cancel"
            )
            return
        params = {"symbol": symbol, "order_id": order_id, "cancel_order_id_type": "order_id"}
        await self._send_command(bot, plugin, account_id, "cancel_order", params, kind="cancel")

    async def _send_command(
        self,
        bot: str,
        plugin: str,
        account_id: str,
        command: str,
        params: dict[str, Any],
        *,
        kind: str,
    ) -> None:
        venue = self._app.bots[bot].venue
        data = {"type": command, "params": {k: _jsonable(v) for k, v in params.items()}}
        if self._app.effective_dry_run(bot):
            await self._journal.record_dry_run(
                bot=bot, plugin=plugin, venue=venue, detail=f"would send {command}", data=data
            )
            log_event(
                log, logging.INFO, "dry-run: order not sent", command=command, account=account_id
            )
            return
        session = self._session(bot, account_id)
        entry = await self._journal.record_order(
            bot=bot, plugin=plugin, venue=venue, account=account_id, data=data, kind=kind
        )
        try:
            await session.send({"type": command, "params": params})
        except ActionUnavailable as exc:
            # Keep the audit trail true: this intent never reached (or may not have reached) the venue.
            await self._journal.annotate(
                entry.id, ("maybe sent: " if exc.maybe_sent else "not sent: ") + str(exc)
            )
            raise

    async def _send_finery(
        self,
        bot: str,
        plugin: str,
        account_id: str,
        method: str,
        args: dict[str, Any],
        *,
        kind: str,
    ) -> None:
        """Journal, then send one Finery request (``add``/``del``) on the account's session."""
        venue = self._app.bots[bot].venue
        data = {"type": method, "params": {k: _jsonable(v) for k, v in args.items()}}
        if self._app.effective_dry_run(bot):
            await self._journal.record_dry_run(
                bot=bot, plugin=plugin, venue=venue, detail=f"would send {method}", data=data
            )
            log_event(
                log, logging.INFO, "dry-run: order not sent", command=method, account=account_id
            )
            return
        session = self._session(bot, account_id)
        await self._journal.record_order(
            bot=bot, plugin=plugin, venue=venue, account=account_id, data=data, kind=kind
        )
        if method == "add":
            await session.add_order(**args)
        else:
            await session.cancel_order(**args)

    async def positions(self, bot: str, plugin: str, account: str) -> ResyncEvent:
        """Balance and positions of an account, read from REST now."""
        venue = self._app.bots[bot].venue
        if self._is_finery(bot):
            try:
                return await self._venues[venue].snapshot(self._account(bot, account))
            except ValueError as exc:
                raise ActionError(str(exc)) from None
        return await self._rests[venue].positions(self._account(bot, account))

    async def account_equity(
        self, bot: str, plugin: str, account: str, duration: str = "1w"
    ) -> list[tuple[Any, Decimal]]:
        """The venue's sampled equity history of an account."""
        venue = self._app.bots[bot].venue
        if self._is_finery(bot):
            raise ActionError("finery has no account equity history")
        return await self._rests[venue].account_equity(self._account(bot, account), duration)


def _jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value
