"""qfexbot's order vocabulary as Finery requests: ``add`` (an order), ``del`` (a cancel), ``mod``
(a change of a resting maker order) and ``delAll`` (cancel everything).

Finery has its own order types (``limit``, ``postOnly``, ``limitIOC``, ...), bid/ask sides and
integer client order ids; what it does not have is refused with the reason, before anything is
journaled or sent.
"""

from __future__ import annotations

from decimal import Decimal

from qfexbot.core.venue import CancelAll, Order, OrderChange, OrderRequest
from qfexbot.errors import ActionError

__all__ = ["finery_cancel", "finery_cancel_all", "finery_modify", "finery_order"]

_FINERY_TYPES: dict[tuple[str, str], str] = {
    ("LIMIT", "GTC"): "limit",
    ("ALO", "GTC"): "postOnly",
    ("LIMIT", "IOC"): "limitIOC",
    ("LIMIT", "FOK"): "limitFOK",
    ("MARKET", "IOC"): "marketIOC",
    ("MARKET", "FOK"): "marketFOK",
}
_FINERY_SIDES = {"BUY": "bid", "SELL": "ask"}


def finery_order(order: Order) -> OrderRequest:
    """qfexbot's order vocabulary as an ``add`` request (``FinerySession.add_order`` arguments).

    Raises:
      ActionError: a combination Finery does not have (e.g. MARKET + GTC, reduce_only, a
        non-numeric client order id), with the reason.
    """
    order_type, time_in_force, side = order.order_type, order.time_in_force, order.side
    kind = _FINERY_TYPES.get((order_type.upper(), time_in_force.upper()))
    if kind is None:
        known = ", ".join(f"{t}+{f}" for t, f in _FINERY_TYPES)
        raise ActionError(f"finery has no {order_type}+{time_in_force} orders (known: {known})")
    if side.upper() not in _FINERY_SIDES:
        raise ActionError(f"order side must be BUY or SELL, got {side!r}")
    if order.reduce_only:
        raise ActionError("finery has no reduce-only orders")
    price = None if kind.startswith("market") else order.price
    if not kind.startswith("market") and price is None:
        raise ActionError(f"a {order_type} order needs a price")
    cloid = None
    client_order_id = order.client_order_id
    if client_order_id is not None:
        if not client_order_id.isdigit() or not 0 < int(client_order_id) < 2**63:
            raise ActionError(
                f"a finery client_order_id is an integer 1 .. 2^63-1, got {client_order_id!r}"
            )
        cloid = int(client_order_id)
    return OrderRequest(
        "add",
        {
            "instrument": order.symbol,
            "side": _FINERY_SIDES[side.upper()],
            "order_type": kind,
            "size": Decimal(order.quantity),
            "price": Decimal(price) if price is not None else None,
            "client_order_id": cloid,
        },
    )


def finery_cancel(*, symbol: str, order_id: str) -> OrderRequest:
    """A ``del`` request by venue order id (Finery's ids are integers; ``symbol`` is unused).

    Raises:
      ActionError: ``order_id`` is not an integer.
    """
    if not order_id.isdigit():
        raise ActionError(f"a finery order id is an integer, got {order_id!r}")
    return OrderRequest("del", {"order_id": int(order_id)})


def finery_modify(change: OrderChange) -> OrderRequest:
    """A ``mod`` request: the resting order ``order_id`` gets a new price and size (Finery's new
    initial size is ``quantity`` minus what already filled; the venue replaces the order id).

    Raises:
      ActionError: price or quantity missing (``mod`` needs both), a take-profit/stop-loss, or a
        non-integer order id.
    """
    if not change.order_id.isdigit():
        raise ActionError(f"a finery order id is an integer, got {change.order_id!r}")
    if change.price is None or change.quantity is None:
        raise ActionError("a finery mod needs both the new price and the new quantity")
    if change.take_profit is not None or change.stop_loss is not None:
        raise ActionError("finery has no attached take-profit or stop-loss")
    return OrderRequest(
        "mod",
        {
            "order_id": int(change.order_id),
            "price": Decimal(change.price),
            "size": Decimal(change.quantity),
        },
    )


def finery_cancel_all(cancel: CancelAll) -> OrderRequest:
    """A ``delAll`` request: every resting order of the key's client, on every instrument."""
    return OrderRequest("delAll", {})
