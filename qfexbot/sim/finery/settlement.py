"""Finery settlements in the simulator: requests (``R``), transactions (``N``), orders (``S``).

Written from protocol/finery.md §3.5, §3.9, §3.10 and §4.6. The state machine of a transaction:
``addOutgoingSettlementTransaction`` (payer; *created*) → ``sendOutgoingSettlementTransaction``
(payer gives the chain/bank ``txId``; *sent*, a settlement order flagged 1 "controlled by
transaction" is opened) → ``commitIncomingSettlementTransaction`` (receiver; *committed*: the
order becomes a settlement deal and the two bilateral positions move by the amount).
``delOutgoingSettlementTransaction`` cancels a created or sent one (flags 2, its order removed).
A receiver's ``addIncomingSettlementRequest`` asks the payer to pay; a commit between the two
for that currency removes it. Like :mod:`qfexbot.sim.finery.engine`: pure and synchronous,
``(reply, notices)`` or :class:`EngineError` with nothing applied.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from qfexbot.sim.finery.config import FinerySimClient
from qfexbot.sim.finery.engine import EngineError, FineryEngine, Notice, history_page, is_int

__all__ = ["SETTLEMENT_METHODS", "Settlements"]

DAY_MS = 86_400_000
MAX_EXPIRY_MS = 30 * DAY_MS


@dataclass
class _Request:
    id: int
    receiver: int  # asks for the money (its "incoming" request)
    payer: int
    currency: str
    flags: int
    amount: int  # 0 = the whole outstanding position
    comment: str
    expires: int  # ms, 0 = never
    network: str
    created: int

    def array(self, viewer: int) -> list[Any]:
        other = self.payer if viewer == self.receiver else self.receiver
        return [
            other,
            self.currency,
            self.flags,
            self.amount,
            self.comment,
            self.expires,
            self.network,
            self.id,
            self.created,
        ]


@dataclass
class _Order:
    id: int
    payer: int
    receiver: int
    currency: str
    amount: int
    comment: str
    network: str
    created: int
    flags: int = 1  # controlled by transaction
    settlement_id: int = 0
    committed_at: int = 0

    def sizes(self, viewer: int) -> tuple[int, int]:
        """``(size1, size2)``: client → counterparty and counterparty → client (§3.5)."""
        return (self.amount, 0) if viewer == self.payer else (0, self.amount)

    def other(self, viewer: int) -> int:
        return self.receiver if viewer == self.payer else self.payer

    def object(self, viewer: int) -> dict[str, Any]:
        size1, size2 = self.sizes(viewer)
        body: dict[str, Any] = {
            "settlementOrderId": self.id,
            "clientId": viewer,
            "counterpartyId": self.other(viewer),
            "createdAt": self.created,
            "comment": self.comment,
            "flags": self.flags,
            "currency1": self.currency,
            "size1": size1,
            "network1": self.network,
            "currency2": self.currency,
            "size2": size2,
            "network2": self.network,
        }
        if self.settlement_id:
            body |= {"settlementId": self.settlement_id, "commitedAt": self.committed_at}
        return body

    def _head(self, viewer: int) -> list[Any]:
        """``[id, currency1, currency2, size1, size2, createdAt, counterpartyId]``."""
        size1, size2 = self.sizes(viewer)
        return [
            self.id,
            self.currency,
            self.currency,
            size1,
            size2,
            self.created,
            self.other(viewer),
        ]

    def legacy(self, viewer: int) -> list[Any]:
        """The array form of ``positions`` replies (§4.4)."""
        return [*self._head(viewer), self.network, self.network]

    def history(self, viewer: int) -> list[Any]:
        """A ``settlementHistory`` row (13 fields, §4.6)."""
        moment, ident = self.committed_at, self.settlement_id
        return [*self._head(viewer), self.comment, self.flags, moment, ident, *[self.network] * 2]


@dataclass
class _Transaction:
    id: int
    payer: int
    receiver: int
    currency: str
    amount: int
    comment: str
    fee: int
    network: str
    created: int
    tx_id: str = ""
    sent_at: int = 0
    flags: int = 0
    moment: int = 0
    order: _Order | None = None
    state: str = "created"  # created | sent | committed | cancelled

    def array(self, viewer: int) -> list[Any]:
        other = self.receiver if viewer == self.payer else self.payer
        return [
            other,
            self.currency,
            self.amount,
            self.order.id if self.order else 0,
            self.comment,
            self.created,
            self.tx_id,
            self.sent_at,
            self.flags,
            self.moment,
            self.id,
            self.fee,
            self.network,
        ]


class Settlements:
    """Every client's settlement requests, transactions and settlement orders."""

    def __init__(self, engine: FineryEngine) -> None:
        self.engine = engine
        self.requests: dict[int, _Request] = {}
        self.transactions: dict[int, _Transaction] = {}
        self.orders: dict[int, _Order] = {}
        self.done: list[_Order] = []
        self._ids = itertools.count(1)

    # ----------------------------------------------------------------- views

    def _open(self, order: _Order) -> None:
        self.orders[order.id] = order
        self._pending(order, 1)

    def _close(self, order: _Order) -> None:
        del self.orders[order.id]
        self._pending(order, -1)

    def _pending(self, order: _Order, sign: int) -> None:
        """Keep the engine's reachable-position offsets (``K`` fields 3-4) in step."""
        pending = self.engine.pending
        for client, delta in ((order.payer, order.amount), (order.receiver, -order.amount)):
            key = (client, order.currency, order.other(client))
            pending[key] = pending.get(key, 0) + sign * delta

    def snapshot(self, feed: str, client: int, currency: str | None) -> Any:
        """The first message of an ``S`` (of one ``currency``), ``R`` or ``N`` binding."""
        if feed == "S":
            return self.order_objects(client, currency)
        if feed == "R":
            return self.request_lists(client)
        return [0, *self.transaction_lists(client)]  # N: reserved 0 first

    def request_lists(self, client: int) -> list[list[list[Any]]]:
        """``[[incoming...], [outgoing...]]`` of ``client``'s settlement requests."""
        mine = sorted(self.requests.values(), key=lambda r: r.id)
        return [
            [r.array(client) for r in mine if r.receiver == client],
            [r.array(client) for r in mine if r.payer == client],
        ]

    def transaction_lists(self, client: int) -> list[list[list[Any]]]:
        """``[[incoming...], [outgoing...]]`` of ``client``'s open transactions."""
        live = [t for t in self.transactions.values() if t.state in ("created", "sent")]
        return [
            [t.array(client) for t in live if t.receiver == client],
            [t.array(client) for t in live if t.payer == client],
        ]

    def order_objects(self, client: int, currency: str | None = None) -> list[dict[str, Any]]:
        """``client``'s open settlement orders (of one currency) as ``S`` objects."""
        return [
            o.object(client)
            for o in self.orders.values()
            if client in (o.payer, o.receiver) and currency in (None, o.currency)
        ]

    def legacy_orders(self, client: int) -> list[list[Any]]:
        """``client``'s open settlement orders in the array form of ``positions``."""
        return [o.legacy(client) for o in self.orders.values() if client in (o.payer, o.receiver)]

    # ----------------------------------------------------------------- requests

    def expire(self) -> list[Notice]:
        """Remove the requests whose ``cancelTimestamp`` has passed (``R -`` to both sides)."""
        now = self.engine.clock_ms()
        notices: list[Notice] = []
        for request in [r for r in self.requests.values() if 0 < r.expires <= now]:
            del self.requests[request.id]
            notices += self._request_notices(request, "-")
        return notices

    def call(self, client: FinerySimClient, method: str, content: dict[str, Any]) -> Any:
        """Run settlement ``method``: ``(reply, notices)``; queries give ``(reply, [])``."""
        return getattr(self, SETTLEMENT_METHODS[method])(client.client_id, content)

    def _counterparty(self, me: int, content: dict[str, Any], identical: int = 133) -> int:
        cp = content.get("counterpartyId")
        if not is_int(cp) or cp not in self.engine.clients:
            raise EngineError(133, "counterpartyId")
        if cp == me:
            raise EngineError(identical, "counterpartyId")
        return cp

    def _text(self, content: dict[str, Any], name: str, code: int) -> str:
        value = content.get(name, "")
        if not isinstance(value, str) or len(value) > 1000:
            raise EngineError(code, name)
        return value

    def _amount(self, content: dict[str, Any], name: str, code: int, *, zero: bool) -> int:
        value = content.get(name, 0 if zero else None)
        if not is_int(value) or value < 0 or (value == 0 and not zero):
            raise EngineError(code, name)
        return value

    def add_request(self, me: int, content: dict[str, Any]) -> tuple[Any, list[Notice]]:
        """``addIncomingSettlementRequest``: ``me`` asks ``counterpartyId`` to pay."""
        cp = self._counterparty(me, content)
        currency = self.engine.currency(content.get("currency"))
        amount = self._amount(content, "amount", 135, zero=True)
        flags = content.get("flags", 0)
        if not is_int(flags) or flags not in (0, 1):
            raise EngineError(132, "flags")
        comment = self._text(content, "comment", 134)
        network = self._text(content, "network", 9)
        now = self.engine.clock_ms()
        expires = content.get("cancelTimestamp", now + DAY_MS)
        if not is_int(expires) or (expires != 0 and not now < expires <= now + MAX_EXPIRY_MS):
            raise EngineError(9, "cancelTimestamp")
        if self._find_request(me, cp, currency) is not None:
            raise EngineError(130)
        request = _Request(
            next(self._ids), me, cp, currency, flags, amount, comment, expires, network, now
        )
        self.requests[request.id] = request
        return {"requestId": request.id}, self._request_notices(request, "+")

    def _find_request(self, receiver: int, payer: int, currency: str) -> _Request | None:
        for request in self.requests.values():
            if (request.receiver, request.payer, request.currency) == (receiver, payer, currency):
                return request
        return None

    def _request_notices(self, request: _Request, action: str) -> list[Notice]:
        return [
            Notice(request.receiver, "R", action, [[request.array(request.receiver)], []]),
            Notice(request.payer, "R", action, [[], [request.array(request.payer)]]),
        ]

    def _drop_request(self, receiver: int, payer: int, content: dict[str, Any]) -> list[Notice]:
        currency = self.engine.currency(content.get("currency"))
        request = self._find_request(receiver, payer, currency)
        if request is None:
            raise EngineError(131)
        del self.requests[request.id]
        return self._request_notices(request, "-")

    def del_request(self, me: int, content: dict[str, Any]) -> tuple[Any, list[Notice]]:
        """``delIncomingSettlementRequest``: withdraw ``me``'s own request."""
        return {}, self._drop_request(me, self._counterparty(me, content), content)

    def del_cp_request(self, me: int, content: dict[str, Any]) -> tuple[Any, list[Notice]]:
        """``delIncomingSettlementCPRequest``: reject a request sent to ``me``."""
        return {}, self._drop_request(self._counterparty(me, content), me, content)

    # ----------------------------------------------------------------- transactions

    def add_transaction(self, me: int, content: dict[str, Any]) -> tuple[Any, list[Notice]]:
        """``addOutgoingSettlementTransaction``: ``me`` declares a payment (*created*)."""
        cp = self._counterparty(me, content, identical=143)
        currency = self.engine.currency(content.get("currency"))
        amount = self._amount(content, "amount", 141, zero=False)
        comment = self._text(content, "comment", 9)
        network = self._text(content, "network", 9)
        fee = self._amount(content, "fee", 9, zero=True)
        now = self.engine.clock_ms()
        txn = _Transaction(next(self._ids), me, cp, currency, amount, comment, fee, network, now)
        self.transactions[txn.id] = txn
        return {"settlementTransactionId": txn.id}, self._transaction_notices(txn, "+")

    def _transaction_notices(self, txn: _Transaction, action: str) -> list[Notice]:
        return [
            Notice(txn.receiver, "N", action, [[txn.array(txn.receiver)], []]),
            Notice(txn.payer, "N", action, [[], [txn.array(txn.payer)]]),
        ]

    def _own_transaction(self, me: int, content: dict[str, Any], role: str) -> _Transaction:
        ident = content.get("transactionId")
        txn = self.transactions.get(ident) if is_int(ident) else None
        if txn is None or getattr(txn, role) != me or txn.state not in ("created", "sent"):
            raise EngineError(144, "transactionId")
        return txn

    def _order_notices(self, order: _Order, action: str, *, settle: bool = False) -> list[Notice]:
        """``S`` and ``K`` (with ``settle``: after moving both positions, and ``L``) for both."""
        notices = []
        engine = self.engine
        for client in (order.payer, order.receiver):
            notices.append(Notice(client, "S", action, [order.object(client)], order.currency))
            cp = order.other(client)
            existed = (order.currency, cp) in engine.positions[client]
            paid = order.amount if client == order.payer else -order.amount
            engine.shift(client, order.currency, cp, paid if settle else 0)
            position = engine.position_array(client, order.currency, cp)
            notices.append(Notice(client, "K", "M" if existed else "+", position, order.currency))
            if settle:
                notices.append(Notice(client, "L", "M", engine.limit_object(client, cp)))
        return notices

    def send_transaction(self, me: int, content: dict[str, Any]) -> tuple[Any, list[Notice]]:
        """``sendOutgoingSettlementTransaction``: the payer gives ``txId`` (*sent*)."""
        txn = self._own_transaction(me, content, "payer")
        tx_ref = content.get("txId")
        if txn.state != "created" or not isinstance(tx_ref, str) or not tx_ref:
            raise EngineError(142, "txId")
        if "fee" in content:
            txn.fee = self._amount(content, "fee", 9, zero=True)
        now = self.engine.clock_ms()
        txn.tx_id, txn.sent_at, txn.state = tx_ref, now, "sent"
        txn.order = _Order(
            next(self._ids),
            txn.payer,
            txn.receiver,
            txn.currency,
            txn.amount,
            txn.comment,
            txn.network,
            now,
        )
        self._open(txn.order)
        return {}, self._transaction_notices(txn, "M") + self._order_notices(txn.order, "+")

    def del_transaction(self, me: int, content: dict[str, Any]) -> tuple[Any, list[Notice]]:
        """``delOutgoingSettlementTransaction``: the payer cancels (*cancelled*, flags 2)."""
        txn = self._own_transaction(me, content, "payer")
        txn.state, txn.flags, txn.moment = "cancelled", 2, self.engine.clock_ms()
        notices = self._transaction_notices(txn, "-")
        if txn.order is not None:
            self._close(txn.order)
            notices += self._order_notices(txn.order, "-")
        return {}, notices

    def commit_transaction(self, me: int, content: dict[str, Any]) -> tuple[Any, list[Notice]]:
        """``commitIncomingSettlementTransaction``: the receiver confirms; positions move."""
        txn = self._own_transaction(me, content, "receiver")
        if txn.order is None:
            raise EngineError(142, "txId")  # not sent yet: nothing to confirm
        order = txn.order
        now = self.engine.clock_ms()
        txn.state, txn.flags, txn.moment = "committed", 0, now
        self._close(order)
        order.settlement_id = self.engine.next_deal_id()
        order.committed_at = now
        self.done.append(order)
        notices = self._transaction_notices(txn, "D") + self._order_notices(order, "D", settle=True)
        request = self._find_request(txn.receiver, txn.payer, txn.currency)
        if request is not None:
            del self.requests[request.id]
            notices += self._request_notices(request, "-")
        return {}, notices

    # ----------------------------------------------------------------- queries

    def query_requests(self, me: int, content: dict[str, Any]) -> tuple[Any, list[Notice]]:
        """``settlementRequests``: ``[[incoming], [outgoing]]``."""
        return self.request_lists(me), []

    def query_transactions(self, me: int, content: dict[str, Any]) -> tuple[Any, list[Notice]]:
        """``settlementTransactions``: open ones, ``[[incoming], [outgoing]]``."""
        return self.transaction_lists(me), []

    def query_orders(self, me: int, content: dict[str, Any]) -> tuple[Any, list[Notice]]:
        """``settlementOrders``: open settlement orders (of one ``counterpartyId``)."""
        cp = content.get("counterpartyId")
        return [o for o in self.order_objects(me) if cp in (None, o["counterpartyId"])], []

    def query_history(self, me: int, content: dict[str, Any]) -> tuple[Any, list[Notice]]:
        """``settlementHistory``: completed settlements, newest first, paged."""
        rows = [
            (o.settlement_id, o.committed_at, o.history(me))
            for o in self.done
            if me in (o.payer, o.receiver)
        ]
        return history_page(rows, content), []

    def query_transaction_history(
        self, me: int, content: dict[str, Any]
    ) -> tuple[Any, list[Notice]]:
        """``settlementTransactionHistory``: committed and cancelled ones, newest first."""
        rows = [
            (t.id, t.moment, t.array(me))
            for t in self.transactions.values()
            if t.state in ("committed", "cancelled") and me in (t.payer, t.receiver)
        ]
        return history_page(rows, content), []


SETTLEMENT_METHODS = {
    "addIncomingSettlementRequest": "add_request",
    "delIncomingSettlementRequest": "del_request",
    "delIncomingSettlementCPRequest": "del_cp_request",
    "addOutgoingSettlementTransaction": "add_transaction",
    "sendOutgoingSettlementTransaction": "send_transaction",
    "delOutgoingSettlementTransaction": "del_transaction",
    "commitIncomingSettlementTransaction": "commit_transaction",
    "settlementRequests": "query_requests",
    "settlementTransactions": "query_transactions",
    "settlementOrders": "query_orders",
    "settlementHistory": "query_history",
    "settlementTransactionHistory": "query_transaction_history",
}
"""The settlement API methods (§4.6) and the :class:`Settlements` method running each."""
