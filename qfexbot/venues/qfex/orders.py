"""qfexbot's order vocabulary as QFEX trade-socket commands (``add_order``/``cancel_order``).

QFEX speaks qfexbot's vocabulary already: an order is its fields as the command's params, with
the defaults the venue expects (no price: 0; no client order id: a fresh one).
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from qfexbot.core.venue import Order, OrderRequest

__all__ = ["cancel_command", "order_command"]


def order_command(order: Order) -> OrderRequest:
    """The ``add_order`` command of one order."""
    return OrderRequest(
        "add_order",
        {
            "symbol": order.symbol,
            "side": order.side,
            "order_type": order.order_type,
            "order_time_in_force": order.time_in_force,
            "quantity": Decimal(order.quantity),
            "price": Decimal(order.price) if order.price is not None else Decimal(0),
            "client_order_id": order.client_order_id or uuid.uuid4().hex,
            "take_profit": Decimal(0),
            "stop_loss": Decimal(0),
            "reduce_only": order.reduce_only,
        },
    )


def cancel_command(*, symbol: str, order_id: str) -> OrderRequest:
    """The ``cancel_order`` command of one order, by venue order id."""
    return OrderRequest(
        "cancel_order",
        {"symbol": symbol, "order_id": order_id, "cancel_order_id_type": "order_id"},
    )
