"""TWAPs of the simulated venue: ``add_twap``, its child orders, progress and cancel (qfex.md §2.4).

A TWAP splits ``total_quantity`` into ``num_orders`` MARKET IOC children, the first at once and
then one every ``order_interval_secs``, stepped by the server's timer (``TwapBook.step``). The
children are ordinary orders placed through ``Engine.add_order``, so they get their own
``order_response`` / ``fill_response`` events and history rows; the book only keeps the parent's
progress and reports it as ``twap_response`` frames on the account's ``order_responses`` channel.
Statuses and timing are assumptions (docs/simulator.md "Deviations"): the spec leaves them open.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Protocol

from qfexbot.sim.qfex import payloads
from qfexbot.sim.qfex.economics import round_step
from qfexbot.sim.qfex.model import (
    SIDES,
    ZERO,
    Account,
    CommandError,
    Event,
    Market,
    PrivateEvent,
    TradeRecord,
)

__all__ = [
    "CLIENT_TWAP_ID_MAX",
    "FINISHED_MAX",
    "TWAP_ID_TYPES",
    "TWAP_STATUSES",
    "Twap",
    "TwapBook",
    "TwapHost",
    "twap_response",
]

TWAP_STATUSES = ("ACTIVE", "COMPLETED", "CANCELLED")
TWAP_ID_TYPES = ("twap_id", "client_twap_id")
"""The ``cancel_order_id_type`` values that address a TWAP rather than an order."""
CLIENT_TWAP_ID_MAX = 64
"""Longest ``client_twap_id``, counting the ``:n`` its children's client order ids append (the
venue's order id limit is 64 too)."""
FINISHED_MAX = 10_000
"""Finished TWAPs kept per account for ``/user/historic-twaps``; the oldest go first."""


class TwapHost(Protocol):
    """What the book needs of the engine (a protocol: the engine imports this module, not the
    other way round)."""

    clock: Callable[[], float]
    markets: dict[str, Market]
    accounts: dict[str, Account]
    trade_log: dict[str, deque[TradeRecord]]

    def add_order(self, account_id: str, params: Mapping[str, Any]) -> list[Event]: ...

    def emit(self, account_id: str, channel: str, frame: dict[str, Any]) -> PrivateEvent: ...


@dataclass
class Twap:
    """One TWAP and its progress (``placed`` children so far, what they filled)."""

    twap_id: str
    client_twap_id: str | None
    account_id: str
    symbol: str
    side: str
    total_quantity: Decimal
    num_orders: int
    interval: float
    """Seconds between children (``order_interval_secs``)."""
    reduce_only: bool
    created_at: float
    updated_at: float
    placed: int = 0
    """Children placed so far, rejected ones included."""
    filled_orders: int = 0
    """Children that filled anything."""
    filled_quantity: Decimal = ZERO
    notional: Decimal = ZERO
    """Sum of fill price x quantity over every child fill."""
    status: str = "ACTIVE"
    next_at: float = 0.0
    """When the next child is due (Unix seconds); meaningless once finished."""

    @property
    def average_fill_price(self) -> Decimal:
        """Quantity-weighted fill price of the children, 0 before any fill."""
        return self.notional / self.filled_quantity if self.filled_quantity else ZERO


def twap_response(twap: Twap) -> dict[str, Any]:
    """The ``twap_response`` object (also an ``all_orders_response.twaps`` row)."""
    return {
        "twap_id": twap.twap_id,
        "client_twap_id": twap.client_twap_id,
        "user_id": twap.account_id,
        "status": twap.status,
        "symbol": twap.symbol,
        "total_quantity": float(twap.total_quantity),
        "filled_quantity": float(twap.filled_quantity),
        "average_fill_price": float(twap.average_fill_price),
        "total_num_orders": twap.num_orders,
        "order_interval_secs": int(twap.interval),
        "reduce_only": twap.reduce_only,
        "side": twap.side,
        "updated_at": twap.updated_at,
        "created_at": twap.created_at,
    }


class TwapBook:
    """Every account's TWAPs: places their children on time and reports their progress.

    Args:
        engine: the exchange the children are placed on.
        min_interval: the shortest ``order_interval_secs`` accepted (the venue's is 30 s).
        tick: how often the server calls ``step`` (seconds): the children's timing resolution.
    """

    def __init__(
        self,
        engine: TwapHost,
        *,
        min_interval: float = 30.0,
        tick: float = 0.5,
        max_active: int = 200,
    ) -> None:
        self.engine = engine
        self.min_interval = min_interval
        self.tick = tick
        self.max_active = max_active
        """TWAPs one account may run at once (the engine passes ``max_open_orders``)."""
        self._active: dict[str, Twap] = {}
        """TWAP id -> running TWAP, oldest first."""
        self._finished: dict[str, deque[Twap]] = {}
        """Account id -> its completed and cancelled TWAPs, oldest first."""

    def active(self, account_id: str) -> list[Twap]:
        """The account's running TWAPs, oldest first."""
        return [t for t in self._active.values() if t.account_id == account_id]

    def finished(self, account_id: str) -> list[Twap]:
        """The account's completed and cancelled TWAPs, newest last."""
        return list(self._finished.get(account_id, ()))

    def add(self, account_id: str, params: Mapping[str, Any]) -> list[Event]:
        """Start a TWAP (``add_twap``): its ``twap_response``, then the first child's events.

        Raises:
            CommandError: a missing parameter (InvalidParameter), a wrong type or enum
                (InvalidJSONFormat), or a value the venue refuses (InvalidParameter).
        """
        now = self.engine.clock()
        twap = self._new_twap(account_id, params, now)
        if len(self.active(account_id)) >= self.max_active:
            raise CommandError(
                "InvalidParameter", f"at most {self.max_active} TWAPs may run at once"
            )
        self._active[twap.twap_id] = twap
        return [self._report(twap), *self._place_child(twap, now)]

    def step(self, now: float) -> list[Event]:
        """Place every child due at ``now`` (at most one per TWAP) and report the progress."""
        events: list[Event] = []
        for twap in list(self._active.values()):
            if twap.next_at <= now:
                events.extend(self._place_child(twap, now))
        return events

    def cancel(self, account_id: str, params: Mapping[str, Any]) -> list[Event] | None:
        """Cancel TWAPs (``cancel_order`` by ``twap_id`` / ``client_twap_id``); None when the
        ``cancel_order_id_type`` addresses an order instead.

        The id is read from ``order_id`` (as for every id type), else from a field named after
        the id type. Every running TWAP of the account with that id (and ``symbol``, if given)
        is cancelled with a ``twap_response``; none → an ``order_response`` ``NO_SUCH_ORDER``.

        Raises:
            CommandError: no identifier given.
        """
        id_type = params.get("cancel_order_id_type")
        if id_type not in TWAP_ID_TYPES:
            return None
        ident = params.get("order_id") or params.get(id_type)
        if not isinstance(ident, str) or not ident:
            raise CommandError("InvalidParameter", f"missing parameter {id_type}")
        symbol = params.get("symbol")
        now = self.engine.clock()
        matches = [
            t
            for t in self.active(account_id)
            if ident == (t.twap_id if id_type == "twap_id" else t.client_twap_id)
            and symbol in (None, t.symbol)
        ]
        if not matches:
            missing = payloads.missing_order_response(
                account_id,
                symbol if isinstance(symbol, str) else "",
                now,
                order_id=ident if id_type == "twap_id" else "",
                client_order_id=ident if id_type == "client_twap_id" else "",
            )
            return [self.engine.emit(account_id, "order_responses", {"order_response": missing})]
        events: list[Event] = []
        for twap in matches:
            self._finish(twap, "CANCELLED", now)
            events.append(self._report(twap))
        return events

    # ------------------------------------------------------------ internals

    def _new_twap(self, account_id: str, params: Mapping[str, Any], now: float) -> Twap:
        """The TWAP an ``add_twap`` asks for, every rule of qfex.md §2.4 checked.

        Raises:
            CommandError: as for ``add``.
        """
        for name in (
            "symbol",
            "side",
            "total_quantity",
            "num_orders",
            "order_interval_secs",
            "reduce_only",
        ):
            if params.get(name) is None:
                raise CommandError("InvalidParameter", f"missing parameter {name}")
        symbol, side = params["symbol"], params["side"]
        if not isinstance(symbol, str):
            raise CommandError("InvalidJSONFormat", "symbol must be a string")
        market = self.engine.markets.get(symbol)
        if market is None:
            raise CommandError("InvalidParameter", f"symbol: unknown symbol {symbol!r}")
        if side not in SIDES:
            raise CommandError("InvalidJSONFormat", f"side must be one of {SIDES}")
        total = _quantity(params["total_quantity"])
        num_orders = _integer(params["num_orders"], "num_orders")
        interval = _integer(params["order_interval_secs"], "order_interval_secs")
        reduce_only = _boolean(params["reduce_only"], "reduce_only")
        client_twap_id = params.get("client_twap_id")
        if num_orders < 2:
            raise CommandError("InvalidParameter", "num_orders must be at least 2")
        if interval < self.min_interval:
            raise CommandError(
                "InvalidParameter", f"order_interval_secs must be at least {self.min_interval:g}"
            )
        _check_sizes(market, total, num_orders)
        if client_twap_id is not None:
            _check_client_id(client_twap_id, num_orders)
        return Twap(
            twap_id=str(uuid.uuid4()),
            client_twap_id=client_twap_id or None,
            account_id=account_id,
            symbol=symbol,
            side=side,
            total_quantity=total,
            num_orders=num_orders,
            interval=float(interval),
            reduce_only=reduce_only,
            created_at=now,
            updated_at=now,
            next_at=now,
        )

    def _place_child(self, twap: Twap, now: float) -> list[Event]:
        """Place the next child, record its fills, report; finish the TWAP after its last one.

        A reduce-only TWAP's child is cut to what is left of the position, and the TWAP
        completes early (without a child) once nothing is left to reduce.
        """
        quantity = self._child_quantity(twap)
        if twap.reduce_only:
            quantity = min(quantity, self._reducible(twap))
            if quantity <= 0:
                self._finish(twap, "COMPLETED", now)
                return [self._report(twap)]
        twap.placed += 1
        client_order_id = f"{twap.client_twap_id or twap.twap_id}:{twap.placed}"
        child = {
            "symbol": twap.symbol,
            "side": twap.side,
            "order_type": "MARKET",
            "order_time_in_force": "IOC",
            "quantity": quantity,
            "reduce_only": twap.reduce_only,
            "client_order_id": client_order_id,
        }
        events = self.engine.add_order(twap.account_id, child)
        self._record_fills(twap, events, client_order_id)
        twap.updated_at = now
        if twap.placed >= twap.num_orders:
            self._finish(twap, "COMPLETED", now)
        else:
            # on schedule (created_at + k x interval, to the tick); after a stall the schedule
            # restarts from this child rather than bursting to catch up
            twap.next_at += twap.interval
            if twap.next_at <= now:
                twap.next_at = now + twap.interval
        return [*events, self._report(twap)]

    def _child_quantity(self, twap: Twap) -> Decimal:
        """total / num rounded down to the lot; the last child takes the remainder."""
        base = _base_quantity(
            self.engine.markets[twap.symbol], twap.total_quantity, twap.num_orders
        )
        if twap.placed == twap.num_orders - 1:
            return twap.total_quantity - base * (twap.num_orders - 1)
        return base

    def _reducible(self, twap: Twap) -> Decimal:
        """How much of the account's position a child on the TWAP's side can still reduce."""
        position = self.engine.accounts[twap.account_id].positions.get(twap.symbol)
        size = position.size if position is not None else ZERO
        return max(-size if twap.side == "BUY" else size, ZERO)

    def _record_fills(self, twap: Twap, events: list[Event], client_order_id: str) -> None:
        """Add the child's executions (from the account's trade log, exact decimals)."""
        order_id = _child_order_id(events, client_order_id)
        if order_id is None:
            return
        quantity = notional = ZERO
        # the child is a taker and self-trade prevention stops it at the account's own orders,
        # so its executions are the newest rows of the account's trade log
        for record in reversed(self.engine.trade_log.get(twap.account_id, ())):
            if record.order_id != order_id:
                break
            quantity += record.quantity
            notional += record.price * record.quantity
        if quantity > 0:
            twap.filled_orders += 1
            twap.filled_quantity += quantity
            twap.notional += notional

    def _finish(self, twap: Twap, status: str, now: float) -> None:
        twap.status = status
        twap.updated_at = now
        self._active.pop(twap.twap_id, None)
        log = self._finished.setdefault(twap.account_id, deque(maxlen=FINISHED_MAX))
        log.append(twap)

    def _report(self, twap: Twap) -> PrivateEvent:
        """The TWAP's state as a private ``twap_response`` on ``order_responses`` (Q32)."""
        frame = {"twap_response": twap_response(twap)}
        return self.engine.emit(twap.account_id, "order_responses", frame)


def _child_order_id(events: list[Event], client_order_id: str) -> str | None:
    """The order id the engine gave the child (its first ``order_response``)."""
    for event in events:
        if isinstance(event, PrivateEvent):
            reply = event.frame.get("order_response")
            if reply is not None and reply["client_order_id"] == client_order_id:
                return str(reply["order_id"])
    return None


def _base_quantity(market: Market, total: Decimal, num_orders: int) -> Decimal:
    return round_step(total / num_orders, market.spec.lot_size, ROUND_FLOOR)


def _check_sizes(market: Market, total: Decimal, num_orders: int) -> None:
    """Every child must be an order the venue takes: on the lot, within min/max quantity."""
    spec = market.spec
    if total <= 0 or total % spec.lot_size:
        raise CommandError(
            "InvalidParameter", f"total_quantity must be a positive multiple of {spec.lot_size}"
        )
    base = _base_quantity(market, total, num_orders)
    if base < spec.min_quantity:
        raise CommandError(
            "InvalidParameter",
            f"total_quantity / num_orders must be at least min_quantity {spec.min_quantity}",
        )
    if total - base * (num_orders - 1) > spec.max_quantity:
        raise CommandError(
            "InvalidParameter",
            f"total_quantity / num_orders must be at most max_quantity {spec.max_quantity}",
        )


def _check_client_id(value: Any, num_orders: int) -> None:
    if not isinstance(value, str):
        raise CommandError("InvalidJSONFormat", "client_twap_id must be a string")
    if len(value) + len(f":{num_orders}") > CLIENT_TWAP_ID_MAX:
        raise CommandError(
            "InvalidParameter",
            f"client_twap_id too long: with its children's ':{num_orders}' it must fit "
            f"{CLIENT_TWAP_ID_MAX} characters",
        )


def _quantity(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise CommandError("InvalidJSONFormat", "total_quantity must be a number")
    number = Decimal(value)
    if not number.is_finite():
        raise CommandError("InvalidJSONFormat", "total_quantity must be a finite number")
    return number


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandError("InvalidJSONFormat", f"{name} must be an integer")
    return value


def _boolean(value: Any, name: str) -> bool:
    if value in (0, 1):  # one third-party client sends reduce_only as 1/0 (qfex.md §2.4)
        value = bool(value)
    if not isinstance(value, bool):
        raise CommandError("InvalidJSONFormat", f"{name} must be a boolean")
    return value
