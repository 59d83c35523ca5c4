"""QFEX transfers as the transfer service needs them: outcomes of a failed request, balances.

A definite 4xx answer is a rejection; a 5xx or a 3xx (``QfexRest`` raises ``QfexAmbiguousError``
for both) is ambiguous because the venue may have applied the transfer before answering; an
error before anything was sent is not-sent.
"""

from __future__ import annotations

from qfexbot.core.venue import TransferOutcome
from qfexbot.errors import ActionError
from qfexbot.events import BalanceEvent
from qfexbot.venues.qfex.rest import QfexAmbiguousError, QfexApiError, QfexNotSentError, QfexRest

__all__ = ["read_balance", "transfer_outcome"]


def transfer_outcome(exc: BaseException) -> TransferOutcome | None:
    """How a ``QfexRest.transfer`` that raised ``exc`` ended (None: not a venue answer)."""
    if isinstance(exc, QfexApiError):
        return TransferOutcome.AMBIGUOUS if exc.status >= 500 else TransferOutcome.REJECTED
    if isinstance(exc, QfexAmbiguousError):
        return TransferOutcome.AMBIGUOUS
    if isinstance(exc, QfexNotSentError):
        return TransferOutcome.NOT_SENT
    return None


async def read_balance(rest: QfexRest, account_id: str) -> BalanceEvent:
    """A fresh REST read of one account's balance (available and ``deposit``; see
    ``qfexbot.money.transfers`` on why deposit).

    Raises:
      ActionError: the venue returned no balance for the account.
    """
    snapshot = await rest.positions(account_id)
    if snapshot.balance is None:
        raise ActionError(f"venue returned no balance for account {account_id}")
    return snapshot.balance
