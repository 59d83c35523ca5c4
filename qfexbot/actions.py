"""The runtime's action backend: what ``ctx.transfer``/``add_order``/... actually do.

Transfers go through the venue's :class:`~qfexbot.transfers.TransferService` (policy, journal,
exactly-once send, reconciliation); orders go over the account's live trade session and are
journaled as an audit trail; reads go to the venue's REST API. Dry-run bots journal "would do"
records and send nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

from qfexbot.config import AppConfig, VenueConfig
from qfexbot.context import UnknownAccountError
from qfexbot.events import Event, ResyncEvent, TransferOutcomeEvent
from qfexbot.journal import Journal
from qfexbot.logs import get_logger, log_event
from qfexbot.session import Supervisor
from qfexbot.transfers import (
    TransferAmbiguous,
    TransferNotSent,
    TransferRejected,
    TransferResult,
    TransferService,
)
from qfexbot.venues.qfex.rest import (
    QfexAmbiguousError,
    QfexApiError,
    QfexNotSentError,
    QfexRest,
)

__all__ = ["RuntimeActions", "ActionError", "rest_transfer_sender", "rest_available_reader"]

log = get_logger("qfexbot.actions")


class ActionError(RuntimeError):
    """An action a plugin asked for cannot be carried out (no session for the account, ...)."""


def rest_transfer_sender(rest: QfexRest) -> Callable[[str, str, Decimal], Awaitable[None]]:
    """Adapt ``QfexRest.transfer`` to the transfer service's outcome taxonomy.

    A definite 4xx answer is a rejection; a 5xx is treated as ambiguous because the venue may
    have applied the transfer before failing; an error before anything was sent is not-sent.
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


def rest_available_reader(rest: QfexRest) -> Callable[[str], Awaitable[Decimal]]:
    """A fresh REST read of one account's available balance (for policy and reconciliation)."""

    async def read_available(account_id: str) -> Decimal:
        snapshot = await rest.positions(account_id)
        if snapshot.balance is None:
            raise ActionError(f"venue returned no balance for account {account_id}")
        return snapshot.balance.available

    return read_available


class RuntimeActions:
    """Implements :class:`qfexbot.context.ActionsBackend` for a running :class:`Runtime`.

    Args:
      app: the loaded configuration (bots, venues, dry-run flags).
      journal: the audit journal (orders and refusals are recorded there).
      transfers: venue name → its transfer service.
      rests: venue name → its REST client.
      sessions: venue name → {account id → trade session}.
      publish: ``publish(venue, account_id, event)`` puts an event on an account's bus.
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
    ) -> None:
        self._app = app
        self._journal = journal
        self._transfers = transfers
        self._rests = rests
        self._sessions = sessions
        self._publish = publish

    def __repr__(self) -> str:
        return f"RuntimeActions(venues={sorted(self._transfers)})"

    # -- helpers -------------------------------------------------------------------------
    def _venue(self, bot: str) -> VenueConfig:
        return self._app.venues[self._app.bots[bot].venue]

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

    def _session(self, bot: str, account_id: str) -> Supervisor:
        venue = self._app.bots[bot].venue
        session = self._sessions.get(venue, {}).get(account_id)
        if session is None:
            raise ActionError(
                f"bot {bot!r}: no trade session for account {account_id}; list it in the "
                f"bot's accounts to trade on it"
            )
        return session

    async def on_transfer_outcome(self, event: TransferOutcomeEvent) -> None:
        """Deliver a transfer outcome to the buses of both accounts."""
        await self._publish(event.venue, event.src, dataclasses.replace(event, account_id=event.src))
        await self._publish(event.venue, event.dst, dataclasses.replace(event, account_id=event.dst))

    # -- ActionsBackend ------------------------------------------------------------------
    async def transfer(
        self, bot: str, plugin: str, src: str, dst: str, amount: Decimal, reason: str
    ) -> TransferResult:
        """Move funds between two accounts of the bot's venue, exactly once, under policy."""
        src_id, dst_id = self._account(bot, src), self._account(bot, dst)
        service = self._transfers[self._app.bots[bot].venue]
        return await service.transfer(
            bot, plugin, src_id, dst_id, amount, reason, dry_run=self._app.effective_dry_run(bot)
        )

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
        """Send ``add_order`` on the account's session; the journal records it first."""
        account_id = self._account(bot, account)
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
        params = {"symbol": symbol, "order_id": order_id, "cancel_order_id_type": "order_id"}
        await self._send_command(bot, plugin, account_id, "cancel_order", params, kind="cancel")

    async def _send_command(
        self, bot: str, plugin: str, account_id: str, command: str, params: dict[str, Any], *, kind: str
    ) -> None:
        venue = self._app.bots[bot].venue
        data = {"type": command, "params": {k: _jsonable(v) for k, v in params.items()}}
        if self._app.effective_dry_run(bot):
            await self._journal.record_dry_run(
                bot=bot, plugin=plugin, venue=venue, detail=f"would send {command}", data=data
            )
            log_event(log, logging.INFO, "dry-run: order not sent", command=command, account=account_id)
            return
        session = self._session(bot, account_id)
        await self._journal.record_order(
            bot=bot, plugin=plugin, venue=venue, account=account_id, data=data, kind=kind
        )
        await session.send({"type": command, "params": params})

    async def positions(self, bot: str, plugin: str, account: str) -> ResyncEvent:
        """Balance and positions of an account, read from REST now."""
        venue = self._app.bots[bot].venue
        return await self._rests[venue].positions(self._account(bot, account))

    async def account_equity(
        self, bot: str, plugin: str, account: str, duration: str = "1w"
    ) -> list[tuple[Any, Decimal]]:
        """The venue's sampled equity history of an account."""
        venue = self._app.bots[bot].venue
        return await self._rests[venue].account_equity(self._account(bot, account), duration)


def _jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value
