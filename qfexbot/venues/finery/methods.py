"""Finery API methods (add, del, mod, delAll, book, positions, instruments, dealHistory, climits,
and the settlement methods).

One implementation for both transports: :class:`FineryMethods` builds each method's parameters
(Decimal amounts -> 1e-8 integers, exactly) and calls ``call(method, content)``, which the
WebSocket client (``request`` with ``reqId``) and the REST client (signed POST) provide.
Replies are returned as the venue sends them (integers in 1e-8 units).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from qfexbot.venues.finery.numbers import to_units

__all__ = ["FineryMethods"]


class FineryMethods:
    """Typed helpers over ``call``; subclasses implement ``call``."""

    async def call(self, method: str, content: dict[str, Any] | None = None) -> Any:
        """Run one API method and return its reply (raise ``FineryError`` on an error code)."""
        raise NotImplementedError

    async def add_order(
        self,
        *,
        instrument: str,
        side: str,
        order_type: str,
        size: Decimal,
        price: Decimal | None = None,
        client_order_id: int | None = None,
        cod: bool = False,
        client_id: int | None = None,
    ) -> Any:
        """``add``: ``side`` bid|ask; ``order_type`` limit|postOnly|limitIOC|limitFOK|marketIOC|
        marketFOK; ``cod`` (WS only) cancels the order if this connection drops."""
        content: dict[str, Any] = {
            "instrument": instrument,
            "side": side,
            "type": order_type,
            "size": to_units(size),
        }
        if price is not None:
            content["price"] = to_units(price)
        if client_order_id is not None:
            content["clientOrderId"] = client_order_id
        if cod:
            content["cod"] = True
        if client_id is not None:
            content["clientId"] = client_id
        return await self.call("add", content)

    async def cancel_order(
        self, *, order_id: int | None = None, client_order_id: int | None = None
    ) -> Any:
        """``del`` by order id or client order id (exactly one)."""
        if (order_id is None) == (client_order_id is None):
            raise ValueError("give exactly one of order_id and client_order_id")
        content = (
            {"orderId": order_id} if order_id is not None else {"clientOrderId": client_order_id}
        )
        return await self.call("del", content)

    async def modify_order(
        self, *, order_id: int, price: Decimal, size: Decimal, client_order_id: int | None = None
    ) -> Any:
        """``mod``: new price and size (the new initial size is ``size`` minus what filled)."""
        content: dict[str, Any] = {
            "orderId": order_id,
            "price": to_units(price),
            "size": to_units(size),
        }
        if client_order_id is not None:
            content["clientOrderId"] = client_order_id
        return await self.call("mod", content)

    async def cancel_all(self, instrument: str | None = None) -> Any:
        """``delAll``, optionally for one instrument; reply ``{"removed": n}``."""
        return await self.call("delAll", {"instrument": instrument} if instrument else {})

    async def book(
        self, instrument: str, *, tradable: bool = False, client_id: int | None = None
    ) -> Any:
        """``book``: ``[[bids], [asks]]`` (top 25), the tradable one with ``tradable``."""
        content: dict[str, Any] = {"instrument": instrument, "tradable": tradable}
        if client_id is not None:
            content["clientId"] = client_id
        return await self.call("book", content)

    async def positions(self) -> Any:
        """``positions``: ``[nextDealId, [position...], [order...], [settlementOrder...]]``."""
        return await self.call("positions")

    async def instruments(self) -> Any:
        """``instruments``: ``[currencies, instruments, networks]``."""
        return await self.call("instruments")

    async def deal_history(
        self,
        instrument: str | Sequence[str] | None = None,
        *,
        till: int | None = None,
        limit: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> Any:
        """``dealHistory``: newest deals (≤ 250); page back with ``till`` = oldest deal id seen."""
        content: dict[str, Any] = {}
        if instrument is not None:
            content["instrument"] = instrument if isinstance(instrument, str) else list(instrument)
        for name, value in (("till", till), ("limit", limit), ("from", start_ms), ("to", end_ms)):
            if value is not None:
                content[name] = value
        return await self.call("dealHistory", content)

    async def climits(self) -> Any:
        """``climits``: counterparty limits (current object form)."""
        return await self.call("climits")

    # -- settlements (protocol/finery.md §4.6): the only way value moves between counterparties

    async def add_outgoing_settlement_transaction(
        self, *, counterparty_id: int, currency: str, amount: Decimal, comment: str
    ) -> Any:
        """``addOutgoingSettlementTransaction``: declare a payment of ``amount`` ``currency`` to
        ``counterparty_id``; reply ``{"settlementTransactionId": n}``. ``comment`` is kept by the
        venue and shown in ``N`` and ``settlementTransactions``: a caller puts its own id there
        to find the transaction again when the reply is lost."""
        return await self.call(
            "addOutgoingSettlementTransaction",
            {
                "counterpartyId": counterparty_id,
                "currency": currency,
                "amount": to_units(amount),
                "comment": comment,
            },
        )

    async def settlement_transactions(self) -> Any:
        """``settlementTransactions``: ``[[incoming...], [outgoing...]]`` (the ``N`` row layout)."""
        return await self.call("settlementTransactions")

    async def settlement_transaction_history(
        self, *, till: int | None = None, limit: int | None = None
    ) -> Any:
        """``settlementTransactionHistory``: finished transactions (§3.10 arrays), newest first
        (≤ 250); page back with ``till`` = the oldest transaction id seen (exclusive)."""
        content: dict[str, Any] = {}
        if till is not None:
            content["till"] = till
        if limit is not None:
            content["limit"] = limit
        return await self.call("settlementTransactionHistory", content)
