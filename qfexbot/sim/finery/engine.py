"""Finery simulator state: resting maker orders, taker matching, bilateral positions, deals.

Pure and synchronous: every method validates, applies and returns the REST-style reply plus the
feed notices it caused (``Notice``); the server decides which connections see them. Errors are
``EngineError(code, param)`` with the venue's error codes and nothing applied.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qfexbot.errors import SimulatorError
from qfexbot.sim.finery.config import FinerySimClient, FinerySimConfig
from qfexbot.sim.finery.units import to_units

__all__ = [
    "HISTORY_LIMIT",
    "EngineError",
    "FineryEngine",
    "Notice",
    "SimOrder",
    "history_page",
    "is_int",
]

HISTORY_LIMIT = 250
"""Default and cap of ``limit`` in the history queries (§6.3)."""

ORDER_TYPES = {
    "limit": 0,
    "postonly": 1,
    "limitioc": 2,
    "limitfok": 3,
    "marketioc": 4,
    "marketfok": 5,
}
MAKER_TYPES = {0, 1}
SIDES = {"bid": 0, "ask": 1}


class EngineError(SimulatorError):
    """A request failed with venue error ``code``; ``param`` names the offending field."""

    def __init__(self, code: int, param: str | None = None) -> None:
        super().__init__(code, param)
        self.code = code
        self.param = param


@dataclass(frozen=True)
class Notice:
    """A feed message for one client: ``key`` is the instrument (O) or currency (K) filtered on."""

    client_id: int
    feed: str
    action: str
    data: Any
    key: str | None = None


@dataclass
class SimOrder:
    id: int
    owner: int
    instrument: str
    type: int
    side: int
    price: int
    initial: int
    left: int
    created_at: int
    client_order_id: int = 0
    cancel_reason: int = 0
    conn_id: int | None = None

    def array(self) -> list[Any]:
        return [
            self.instrument,
            self.type,
            self.side,
            self.cancel_reason,
            self.id,
            self.client_order_id,
            self.price,
            self.initial,
            self.left,
            self.created_at,
            0,
        ]


@dataclass
class _Deal:
    array: list[Any]
    owner: int


@dataclass
class FineryEngine:
    """State of the whole simulated venue."""

    config: FinerySimConfig
    clock_ms: Callable[[], int]
    orders: dict[int, SimOrder] = field(default_factory=dict)
    positions: dict[int, dict[tuple[str, int], int]] = field(default_factory=dict)
    deals: list[_Deal] = field(default_factory=list)
    books_changed: set[str] = field(default_factory=set)
    pending: dict[tuple[int, str, int], int] = field(default_factory=dict)
    """(client, currency, counterparty) -> how far open settlement orders move that position."""

    def __post_init__(self) -> None:
        self.clients = {c.client_id: c for c in self.config.clients}
        self.currencies = {c.name: c for c in self.config.currencies}
        self.instruments = {i.name: i for i in self.config.instruments}
        self._ids = itertools.count(1000)
        self._deal_ids = itertools.count(1)
        self.last_deal_id = 0
        for client in self.config.clients:
            self.positions.setdefault(client.client_id, {})
        for client in self.config.clients:
            for currency, cp, amount in client.positions:
                value = to_units(amount)
                self.positions[client.client_id][(currency, cp)] = value
                self.positions[cp][(currency, client.client_id)] = -value

    # ----------------------------------------------------------------- helpers

    def acting_client(self, client: FinerySimClient, content: dict[str, Any]) -> FinerySimClient:
        """The client a request acts for: a master may name a sub-account with ``clientId``."""
        sub = content.get("clientId")
        if sub is None:
            return client
        if client.role != "master" or sub not in client.subaccounts or sub not in self.clients:
            raise EngineError(3, "clientId")
        return self.clients[sub]

    def instrument(self, ident: Any, param: str = "instrument") -> str:
        if isinstance(ident, str) and ident in self.instruments:
            return ident
        if isinstance(ident, int):
            for inst in self.instruments.values():
                if inst.id == ident:
                    return inst.name
        raise EngineError(34, param)

    def currency(self, ident: Any) -> str:
        if isinstance(ident, str) and ident in self.currencies:
            return ident
        if isinstance(ident, int):
            for cur in self.currencies.values():
                if cur.id == ident:
                    return cur.name
        raise EngineError(26, "currency")

    def resting(
        self,
        instrument: str,
        side: int,
        *,
        exclude: int | None = None,
        makers: frozenset[int] | None = None,
    ) -> list[SimOrder]:
        """Resting orders of one side (of ``makers`` only), best price first, then time."""
        orders = [
            o
            for o in self.orders.values()
            if o.instrument == instrument
            and o.side == side
            and o.owner != exclude
            and (makers is None or o.owner in makers)
        ]
        sign = -1 if side == 0 else 1
        return sorted(orders, key=lambda o: (sign * o.price, o.id))

    def levels(
        self,
        instrument: str,
        *,
        exclude: int | None = None,
        makers: frozenset[int] | None = None,
    ) -> list[list[list[int]]]:
        """``[[bids], [asks]]`` aggregated by price, top ``book_depth`` levels per side."""
        result = []
        for side in (0, 1):
            agg: dict[int, int] = {}
            for order in self.resting(instrument, side, exclude=exclude, makers=makers):
                agg[order.price] = agg.get(order.price, 0) + order.left
            result.append([[p, s] for p, s in agg.items()][: self.config.book_depth])
        return result

    def _int_param(
        self, content: dict[str, Any], name: str, *, required: bool = True, code: int = 9
    ) -> int | None:
        value = content.get(name)
        if value is None:
            if required:
                raise EngineError(code, name)
            return None
        if not is_int(value):
            raise EngineError(code, name)
        return value

    def _volume(self, instrument: str, price: int, size: int) -> int:
        step = self.currencies[self.instruments[instrument].balance].balance_step
        raw = price * size
        unit = step * 10**8
        return (raw + unit // 2) // unit * step  # half-up to the balance step

    def next_deal_id(self) -> int:
        """A new DealId (deals and settlements share the sequence, §5)."""
        self.last_deal_id = next(self._deal_ids)
        return self.last_deal_id

    def shift(self, client: int, currency: str, cp: int, delta: int) -> None:
        """Move ``client``'s position in ``currency`` against ``cp`` by ``delta``."""
        book = self.positions[client]
        book[(currency, cp)] = book.get((currency, cp), 0) + delta

    def _move(self, client: int, currency: str, cp: int, delta: int, notices: list[Notice]) -> None:
        existed = (currency, cp) in self.positions[client]
        self.shift(client, currency, cp, delta)
        notices.append(
            Notice(
                client,
                "K",
                "M" if existed else "+",
                self.position_array(client, currency, cp),
                currency,
            )
        )

    def position_array(self, client: int, currency: str, cp: int) -> list[Any]:
        value = self.positions[client].get((currency, cp), 0)
        reached = value + self.pending.get((client, currency, cp), 0)
        return [currency, value, cp, max(value, reached, 0), min(value, reached, 0)]

    def position_arrays(self, client: int) -> list[list[Any]]:
        return [
            self.position_array(client, cur, cp) for (cur, cp) in sorted(self.positions[client])
        ]

    def limit_object(self, client: int, cp: int) -> dict[str, Any]:
        """The current ``L`` object of ``client`` towards ``cp`` (utilisation in USD units)."""
        used = equity = 0
        for (currency, other), value in self.positions[client].items():
            if other != cp:
                continue
            usd = value * self.currencies[currency].usd_price // 10**8
            used += abs(usd)
            equity += usd
        enabled = {"ownTradingEnabled": True, "mutualTradingEnabled": True}
        return {
            "counterpartyId": cp,
            "tradingPermissions": enabled,
            "ownLimit": {
                "grossLimit": to_units(self.clients[client].gross_limit),
                "asset": "USD",
                "limitUtilization": used,
                "equity": equity,
                "maintenanceMargin": 0,
                "restrictedTrading": 0,
                "initialMargin": 0,
            },
        }

    def limit_objects(self, client: int) -> list[dict[str, Any]]:
        return [self.limit_object(client, cp) for cp in sorted(self.clients) if cp != client]

    # ----------------------------------------------------------------- requests

    def add(
        self, client: FinerySimClient, content: dict[str, Any], *, conn_id: int | None = None
    ) -> tuple[dict[str, Any], list[Notice]]:
        """``add``: rest a maker order or match a taker order."""
        actor = self.acting_client(client, content)
        instrument = self.instrument(content.get("instrument"))
        type_name = content.get("type")
        side_name = content.get("side")
        if not isinstance(type_name, str) or type_name.lower() not in ORDER_TYPES:
            raise EngineError(9, "type")
        if not isinstance(side_name, str) or side_name.lower() not in SIDES:
            raise EngineError(9, "side")
        order_type = ORDER_TYPES[type_name.lower()]
        side = SIDES[side_name.lower()]
        is_maker_type = order_type in MAKER_TYPES
        if (actor.role == "maker") != is_maker_type:
            raise EngineError(73, "type")
        if "volume" in content:
            raise EngineError(1, "volume")
        size = self._int_param(content, "size", code=81)
        inst = self.instruments[instrument]
        if size is None or size <= 0 or size % self.currencies[inst.asset].balance_step:
            raise EngineError(70, "size")
        price = 0
        if order_type in (0, 1, 2, 3):
            price = self._int_param(content, "price", code=71) or 0
            if price <= 0 or price % self.currencies[inst.balance].balance_step:
                raise EngineError(71, "price")
        cloid = self._int_param(content, "clientOrderId", required=False) or 0
        if cloid < 0:
            raise EngineError(9, "clientOrderId")
        if cloid and any(
            o.owner == actor.client_id and o.client_order_id == cloid for o in self.orders.values()
        ):
            raise EngineError(74, "clientOrderId")
        cod = content.get("cod", False) is True
        if is_maker_type:
            return self._rest(
                actor, instrument, order_type, side, price, size, cloid, conn_id if cod else None
            )
        return self._take(actor, instrument, order_type, side, price, size, cloid)

    def _rest(
        self,
        actor: FinerySimClient,
        instrument: str,
        order_type: int,
        side: int,
        price: int,
        size: int,
        cloid: int,
        conn_id: int | None,
    ) -> tuple[dict[str, Any], list[Notice]]:
        opposite = self.resting(instrument, 1 - side)
        if opposite and (price >= opposite[0].price if side == 0 else price <= opposite[0].price):
            raise EngineError(75)  # makers never cross (limit included: see docs)
        own = [
            o
            for o in self.orders.values()
            if o.owner == actor.client_id and o.instrument == instrument and o.side == side
        ]
        if len(own) >= self.config.max_orders_per_side:
            raise EngineError(73, "side")
        order = SimOrder(
            next(self._ids),
            actor.client_id,
            instrument,
            order_type,
            side,
            price,
            size,
            size,
            self.clock_ms(),
            cloid,
            0,
            conn_id,
        )
        self.orders[order.id] = order
        self.books_changed.add(instrument)
        notices = [Notice(actor.client_id, "O", "+", order.array(), instrument)]
        return (
            {
                "id": order.id,
                "remainingSize": size,
                "clientOrderId": cloid,
                "cancelReason": 0,
                "deals": [],
            },
            notices,
        )

    def _take(
        self,
        actor: FinerySimClient,
        instrument: str,
        order_type: int,
        side: int,
        price: int,
        size: int,
        cloid: int,
    ) -> tuple[dict[str, Any], list[Notice]]:
        candidates = [
            o
            for o in self.resting(instrument, 1 - side, exclude=actor.client_id)
            if order_type in (4, 5) or (o.price <= price if side == 0 else o.price >= price)
        ]
        available = sum(o.left for o in candidates)
        if not candidates:
            raise EngineError(77 if order_type in (3, 5) else 76)
        if order_type in (3, 5) and available < size:
            raise EngineError(77)
        now = self.clock_ms()
        taker = SimOrder(
            next(self._ids),
            actor.client_id,
            instrument,
            order_type,
            side,
            price,
            size,
            size,
            now,
            cloid,
        )
        notices = [Notice(actor.client_id, "O", "+", taker.array(), instrument)]
        inst = self.instruments[instrument]
        reply_deals = []
        for maker in candidates:
            if taker.left == 0:
                break
            qty = min(taker.left, maker.left)
            volume = self._volume(instrument, maker.price, qty)
            taker.left -= qty
            maker.left -= qty
            deal_id = self.next_deal_id()
            for order, cp in ((taker, maker.owner), (maker, taker.owner)):
                array = [
                    *order.array()[:10],
                    now,
                    deal_id,
                    side,
                    maker.price,
                    qty,
                    volume,
                    0,
                    cp,
                    0,
                    taker.owner,
                    0,
                    0,
                    maker.owner,
                    0,
                ]
                self.deals.append(_Deal(array, order.owner))
                notices.append(Notice(order.owner, "O", "D", array, instrument))
            buyer, seller = (taker.owner, maker.owner) if side == 0 else (maker.owner, taker.owner)
            self._move(buyer, inst.asset, seller, qty, notices)
            self._move(buyer, inst.balance, seller, -volume, notices)
            self._move(seller, inst.asset, buyer, -qty, notices)
            self._move(seller, inst.balance, buyer, volume, notices)
            for a, b in ((buyer, seller), (seller, buyer)):
                notices.append(Notice(a, "L", "M", self.limit_object(a, b)))
            reply_deals.append(
                {
                    "counterpartyId": maker.owner,
                    "id": deal_id,
                    "price": maker.price,
                    "size": qty,
                    "volume": volume,
                    "delta": 0,
                }
            )
            if maker.left == 0:
                del self.orders[maker.id]
                notices.append(Notice(maker.owner, "O", "-", maker.array(), instrument))
            self.books_changed.add(instrument)
        taker.cancel_reason = 0 if taker.left == 0 else 2
        notices.append(Notice(actor.client_id, "O", "-", taker.array(), instrument))
        reply = {
            "id": taker.id,
            "remainingSize": taker.left,
            "clientOrderId": cloid,
            "deals": reply_deals,
        }
        if taker.cancel_reason:
            reply["cancelReason"] = taker.cancel_reason
        return reply, notices

    def _find_own(self, actor: FinerySimClient, content: dict[str, Any]) -> SimOrder:
        order_id = content.get("orderId")
        cloid = content.get("clientOrderId")
        if (order_id is None) == (cloid is None):
            raise EngineError(9, "orderId")
        for order in self.orders.values():
            if order.owner == actor.client_id and (
                order.id == order_id if order_id is not None else order.client_order_id == cloid
            ):
                return order
        raise EngineError(80)

    def cancel(self, order: SimOrder, reason: int) -> list[Notice]:
        """Remove a resting order with ``reason`` (1 client, 4 cancel-on-disconnect)."""
        del self.orders[order.id]
        order.cancel_reason = reason
        self.books_changed.add(order.instrument)
        return [Notice(order.owner, "O", "-", order.array(), order.instrument)]

    def delete(
        self, client: FinerySimClient, content: dict[str, Any]
    ) -> tuple[dict[str, Any], list[Notice]]:
        """``del`` by ``orderId`` or ``clientOrderId``."""
        order = self._find_own(self.acting_client(client, content), content)
        notices = self.cancel(order, 1)
        return {"id": order.id, "remainingSize": order.left}, notices

    def delete_all(
        self, client: FinerySimClient, content: dict[str, Any]
    ) -> tuple[dict[str, Any], list[Notice]]:
        """``delAll``, optionally for one instrument."""
        actor = self.acting_client(client, content)
        instrument = (
            self.instrument(content["instrument"])
            if content.get("instrument") is not None
            else None
        )
        notices: list[Notice] = []
        victims = [
            o
            for o in self.orders.values()
            if o.owner == actor.client_id and (instrument is None or o.instrument == instrument)
        ]
        for order in victims:
            notices += self.cancel(order, 1)
        return {"removed": len(victims)}, notices

    def modify(
        self, client: FinerySimClient, content: dict[str, Any]
    ) -> tuple[dict[str, Any], list[Notice]]:
        """``mod``: replace a resting order's price/size (new initial = size - filled)."""
        actor = self.acting_client(client, content)
        order_id = self._int_param(content, "orderId")
        old = self.orders.get(order_id)  # type: ignore[arg-type]
        if old is None or old.owner != actor.client_id:
            raise EngineError(80)
        price = self._int_param(content, "price", code=71)
        size = self._int_param(content, "size", code=70)
        assert price is not None and size is not None
        new_size = size - (old.initial - old.left)
        if new_size <= 0:
            raise EngineError(90, "size")
        inst = self.instruments[old.instrument]
        if price <= 0 or price % self.currencies[inst.balance].balance_step:
            raise EngineError(71, "price")
        if size % self.currencies[inst.asset].balance_step:
            raise EngineError(70, "size")
        opposite = self.resting(old.instrument, 1 - old.side)
        if opposite and (
            price >= opposite[0].price if old.side == 0 else price <= opposite[0].price
        ):
            raise EngineError(75)
        notices = self.cancel(old, 1)
        cloid = content.get("clientOrderId", old.client_order_id)
        new = SimOrder(
            next(self._ids),
            old.owner,
            old.instrument,
            old.type,
            old.side,
            price,
            new_size,
            new_size,
            self.clock_ms(),
            cloid,
            0,
            old.conn_id,
        )
        self.orders[new.id] = new
        notices.append(Notice(new.owner, "O", "+", new.array(), new.instrument))
        return (
            {
                "id": new.id,
                "initialSize": new_size,
                "remainingSize": new_size,
                "deals": [],
                "origId": old.id,
                "origRemainingSize": old.left,
            },
            notices,
        )

    def book(self, client: FinerySimClient, content: dict[str, Any]) -> list[Any]:
        """``book``: global book, or with ``tradable`` the book this client can hit."""
        actor = self.acting_client(client, content)
        instrument = self.instrument(content.get("instrument"))
        exclude = actor.client_id if content.get("tradable") else None
        return self.levels(instrument, exclude=exclude)

    def positions_reply(self, client: FinerySimClient) -> list[Any]:
        """``positions``: ``[nextDealId, [position...], [order...], [settlementOrder...]]``."""
        orders = [
            o.array()
            for o in sorted(self.orders.values(), key=lambda o: o.id)
            if o.owner == client.client_id
        ]
        return [self.last_deal_id + 1, self.position_arrays(client.client_id), orders, []]

    def instruments_reply(self) -> list[Any]:
        """``instruments``: currencies (with networks), instruments, networks."""
        currencies = [
            [c.name, c.id, c.balance_step, c.usd_price, c.type_name, list(c.networks)]
            for c in self.currencies.values()
        ]
        networks = sorted({n for c in self.currencies.values() for n in c.networks})
        return [
            currencies,
            self.instrument_arrays(),
            [[n, n, i + 1] for i, n in enumerate(networks)],
        ]

    def instrument_arrays(self) -> list[list[Any]]:
        return [[i.name, i.id, i.asset, i.balance] for i in self.instruments.values()]

    def currency_arrays(self) -> list[list[Any]]:
        return [
            [c.name, c.id, c.balance_step, c.usd_price, c.type_name]
            for c in self.currencies.values()
        ]

    def deal_history(self, client: FinerySimClient, content: dict[str, Any]) -> list[Any]:
        """``dealHistory``: newest first, ``till`` exclusive, ``from``/``to`` on the moment."""
        wanted = content.get("instrument")
        names = wanted if isinstance(wanted, list) else [wanted] if wanted is not None else None
        instruments = {self.instrument(n) for n in names} if names is not None else None
        rows = [
            (d.array[11], d.array[10], d.array)
            for d in self.deals
            if d.owner == client.client_id and (instruments is None or d.array[0] in instruments)
        ]
        return history_page(rows, content)

    def cancel_connection(self, conn_id: int) -> list[Notice]:
        """Cancel-on-disconnect: remove orders placed with ``cod`` through ``conn_id``."""
        notices: list[Notice] = []
        for order in [o for o in self.orders.values() if o.conn_id == conn_id]:
            notices += self.cancel(order, 4)
        return notices


def history_page(rows: list[tuple[int, int, list[Any]]], content: dict[str, Any]) -> list[Any]:
    """A history query's answer from ``(id, moment, row)`` triples: newest id first.

    ``till`` (an id) is exclusive, ``from`` inclusive and ``to`` exclusive on the moment,
    at most ``limit`` (≤ 250) rows.

    Raises:
        EngineError: 9 naming the parameter that is not an integer (or ``limit`` out of range).
    """
    limit = content.get("limit", HISTORY_LIMIT)
    if not is_int(limit) or not 0 < limit <= HISTORY_LIMIT:
        raise EngineError(9, "limit")
    bounds = {name: content.get(name) for name in ("till", "from", "to")}
    for name, value in bounds.items():
        if value is not None and not is_int(value):
            raise EngineError(9, name)
    till, start, end = bounds["till"], bounds["from"], bounds["to"]
    out = []
    for ident, moment, row in sorted(rows, key=lambda r: r[0], reverse=True):
        if till is not None and ident >= till:
            continue
        if (start is not None and moment < start) or (end is not None and moment >= end):
            continue
        out.append(row)
        if len(out) == limit:
            break
    return out


def is_int(value: Any) -> bool:
    """Whether a JSON value is an integer (``true`` is not)."""
    return isinstance(value, int) and not isinstance(value, bool)
