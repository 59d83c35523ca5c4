"""What the runtime holds per venue, and a venue's transfers in the transfer service's terms.

A venue is opened by its kind's adapter (``qfexbot.venues.registry.adapter``); nothing here knows
a kind. :func:`transfer_sender` and :func:`balance_reader` turn a
:class:`~qfexbot.core.venue.TransferVenue` into what
:class:`~qfexbot.money.transfers.TransferService` calls: the venue classifies its own failures
(``TransferOutcome``), this module raises the transfer service's outcome for each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from qfexbot.config import Credentials, VenueConfig
from qfexbot.core.bus import Bus
from qfexbot.core.venue import (
    PrivateSession,
    TransferOutcome,
    TransferVenue,
    Venue,
    VenueAdapter,
)
from qfexbot.errors import VenueError
from qfexbot.money.transfers import (
    BalanceReading,
    ReadBalance,
    SendTransfer,
    TransferAmbiguous,
    TransferNotSent,
    TransferRejected,
    TransferService,
)
from qfexbot.venues.registry import adapter as adapter_of

__all__ = ["VenueRun", "balance_reader", "open_venue", "transfer_sender"]

_OUTCOME_ERRORS: dict[TransferOutcome, type[Exception]] = {
    TransferOutcome.REJECTED: TransferRejected,
    TransferOutcome.NOT_SENT: TransferNotSent,
    TransferOutcome.AMBIGUOUS: TransferAmbiguous,
}


@dataclass
class VenueRun:
    """What the runtime holds for one venue while it runs.

    ``transfers`` is None on a venue whose adapter has no transfers (``transfer_refusal``);
    ``buses``, ``sessions`` and ``channels`` are by account id.
    """

    config: VenueConfig
    adapter: VenueAdapter
    venue: Venue
    transfers: TransferService | None = None
    buses: dict[str, Bus] = field(default_factory=dict)
    sessions: dict[str, PrivateSession] = field(default_factory=dict)
    channels: dict[str, set[str]] = field(default_factory=dict)


def open_venue(config: VenueConfig, credentials: Credentials, endpoints: object = None) -> VenueRun:
    """Open the venue of one table with its kind's adapter (``endpoints``: the embedded
    simulator's URLs, or None for the table's own)."""
    adapter = adapter_of(config.kind)
    return VenueRun(config, adapter, adapter.open(config, credentials, endpoints))


def transfer_sender(venue: TransferVenue) -> SendTransfer:
    """``venue.transfer`` raising the transfer service's outcomes: ``TransferRejected``,
    ``TransferNotSent`` or ``TransferAmbiguous`` as the venue classifies its failure (the
    venue's error is the cause); anything the venue does not classify propagates as it is."""

    async def send(src: str, dst: str, amount: Decimal, *entry_id: str) -> None:
        # entry_id: given to a venue that tags its request with it (``find_sent``)
        try:
            await venue.transfer(src, dst, amount, *entry_id)
        except VenueError as exc:
            outcome = venue.transfer_outcome(exc)
            if outcome is None:
                raise
            raise _OUTCOME_ERRORS[outcome](str(exc)) from exc

    return send


def balance_reader(venue: TransferVenue) -> ReadBalance:
    """A fresh read of one account's available and ``deposit`` balances (for policy and
    reconciliation; see ``qfexbot.money.transfers`` on why deposit)."""

    async def read_balance(account_id: str) -> BalanceReading:
        balance = await venue.balance(account_id)
        return BalanceReading(balance.available, balance.deposit)

    return read_balance
