"""qfexbot's order vocabulary as QFEX trade-socket commands (``{"type", "params"}`` pairs).

QFEX speaks qfexbot's vocabulary already: an order is its fields as the command's params, with
the defaults the venue expects (no price: 0; no client order id: a fresh one; no attached
take-profit / stop-loss: 0). Every builder returns an :class:`OrderRequest` (``command`` is the
message ``type``); :func:`message` turns one into the frame to send. Amounts stay ``Decimal``
(``encode_json`` writes them as exact JSON numbers); optional params left ``None`` are omitted.
Builders check only what the wire needs (one id for a TWAP cancel, a known stop type) and raise
``ValueError`` otherwise; the venue checks the rest.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from qfexbot.core.venue import Order, OrderRequest

__all__ = [
    "STOP_TYPES",
    "add_twap_command",
    "cancel_all_command",
    "cancel_command",
    "cancel_stop_command",
    "cancel_twap_command",
    "close_position_command",
    "get_leverage_command",
    "get_order_command",
    "get_user_orders_command",
    "get_user_trades_command",
    "leverage_levels_command",
    "message",
    "modify_command",
    "modify_stop_command",
    "order_command",
    "set_leverage_command",
    "stop_command",
]

STOP_TYPES = frozenset({"TAKE_PROFIT", "STOP_LOSS", "STOP_MARKET"})
"""``order_type`` values of a stop order placed with ``add_order``."""

CANCEL_ID_TYPES = frozenset({"order_id", "client_order_id", "twap_id", "client_twap_id"})


def message(request: OrderRequest) -> dict[str, Any]:
    """The trade-socket frame of a command: ``{"type": command, "params": {...}}``."""
    return {"type": request.command, "params": dict(request.params)}


def _dec_or_zero(value: Decimal | int | None) -> Decimal:
    return Decimal(0) if value is None else Decimal(value)


def _optional(**params: Any) -> dict[str, Any]:
    """The given params without those left ``None``."""
    return {key: value for key, value in params.items() if value is not None}


def _int(value: int | None) -> int | None:
    return None if value is None else int(value)


def _dec(value: Decimal | int | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def order_command(
    order: Order,
    *,
    take_profit: Decimal | None = None,
    stop_loss: Decimal | None = None,
) -> OrderRequest:
    """The ``add_order`` command of one order, with optional attached take-profit / stop-loss
    trigger prices (reduce-only stops the venue stages when the order fills)."""
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
            "take_profit": _dec_or_zero(take_profit),
            "stop_loss": _dec_or_zero(stop_loss),
            "reduce_only": order.reduce_only,
        },
    )


def stop_command(
    *,
    symbol: str,
    side: str,
    stop_type: str,
    trigger_price: Decimal,
    quantity: Decimal,
    client_order_id: str | None = None,
) -> OrderRequest:
    """A stop order (``TAKE_PROFIT``, ``STOP_LOSS`` or ``STOP_MARKET``) through ``add_order``.

    ``trigger_price`` is the mark price that triggers it (sent as ``price``); ``side`` is the
    side of the market order it becomes. The venue ignores the time in force; IOC is sent.
    """
    if stop_type not in STOP_TYPES:
        raise ValueError(f"stop_type must be one of {sorted(STOP_TYPES)}, got {stop_type!r}")
    return OrderRequest(
        "add_order",
        {
            "symbol": symbol,
            "side": side,
            "order_type": stop_type,
            "order_time_in_force": "IOC",
            "quantity": Decimal(quantity),
            "price": Decimal(trigger_price),
            "client_order_id": client_order_id or uuid.uuid4().hex,
            "take_profit": Decimal(0),
            "stop_loss": Decimal(0),
            "reduce_only": stop_type != "STOP_MARKET",
        },
    )


def cancel_command(*, symbol: str, order_id: str, id_type: str = "order_id") -> OrderRequest:
    """The ``cancel_order`` command; ``id_type`` says what ``order_id`` is (``order_id``,
    ``client_order_id``, ``twap_id`` or ``client_twap_id``; the id always goes in ``order_id``)."""
    if id_type not in CANCEL_ID_TYPES:
        raise ValueError(f"id_type must be one of {sorted(CANCEL_ID_TYPES)}, got {id_type!r}")
    return OrderRequest(
        "cancel_order",
        {"symbol": symbol, "order_id": order_id, "cancel_order_id_type": id_type},
    )


def cancel_twap_command(
    *, symbol: str, twap_id: str | None = None, client_twap_id: str | None = None
) -> OrderRequest:
    """Cancel a TWAP (``cancel_order`` by ``twap_id`` or ``client_twap_id``: exactly one)."""
    if (twap_id is None) == (client_twap_id is None):
        raise ValueError("give exactly one of twap_id and client_twap_id")
    if twap_id is not None:
        return cancel_command(symbol=symbol, order_id=twap_id, id_type="twap_id")
    return cancel_command(symbol=symbol, order_id=str(client_twap_id), id_type="client_twap_id")


def modify_command(
    *,
    symbol: str,
    order_id: str,
    side: str,
    order_type: str,
    price: Decimal | None = None,
    quantity: Decimal | None = None,
    take_profit: Decimal | None = None,
    stop_loss: Decimal | None = None,
) -> OrderRequest:
    """``modify_order``: change price, quantity or attached triggers of a resting order.

    ``side`` and ``order_type`` must be the order's own (the venue checks them); what is left
    ``None`` is not sent and stays as it is.
    """
    params: dict[str, Any] = {
        "symbol": symbol,
        "order_id": order_id,
        "side": side,
        "order_type": order_type,
    }
    params.update(
        _optional(
            price=_dec(price),
            quantity=_dec(quantity),
            take_profit=_dec(take_profit),
            stop_loss=_dec(stop_loss),
        )
    )
    return OrderRequest("modify_order", params)


def close_position_command(*, symbol: str, client_order_id: str | None = None) -> OrderRequest:
    """``close_position``: the venue closes the whole position with a reduce-only IOC order.
    Always with a client order id (one is made when none is given), so its fate is followed
    and reconciled like any order's."""
    return OrderRequest(
        "close_position", {"symbol": symbol, "client_order_id": client_order_id or uuid.uuid4().hex}
    )


def cancel_stop_command(*, stop_order_id: str) -> OrderRequest:
    """``cancel_stop_order`` of one stop order."""
    return OrderRequest("cancel_stop_order", {"stop_order_id": stop_order_id})


def modify_stop_command(
    *, stop_order_id: str, symbol: str, price: Decimal, quantity: Decimal
) -> OrderRequest:
    """``modify_stop_order``: a new trigger price and quantity for one stop order."""
    return OrderRequest(
        "modify_stop_order",
        {
            "stop_order_id": stop_order_id,
            "symbol": symbol,
            "price": Decimal(price),
            "quantity": Decimal(quantity),
        },
    )


def add_twap_command(
    *,
    symbol: str,
    side: str,
    total_quantity: Decimal,
    num_orders: int,
    order_interval_secs: int,
    reduce_only: bool = False,
    client_twap_id: str | None = None,
) -> OrderRequest:
    """``add_twap``: ``total_quantity`` in ``num_orders`` market children, one per interval."""
    return OrderRequest(
        "add_twap",
        {
            "symbol": symbol,
            "side": side,
            "total_quantity": Decimal(total_quantity),
            "num_orders": int(num_orders),
            "order_interval_secs": int(order_interval_secs),
            "reduce_only": bool(reduce_only),
            **_optional(client_twap_id=client_twap_id),
        },
    )


def cancel_all_command() -> OrderRequest:
    """``cancel_all_orders`` of the connection's account."""
    return OrderRequest("cancel_all_orders", {})


def get_order_command(*, symbol: str, order_id: str) -> OrderRequest:
    """``get_order``: the current state of one order (answered by an ``order_response``)."""
    return OrderRequest("get_order", {"symbol": symbol, "order_id": order_id})


def get_user_orders_command(
    *, symbol: str | None = None, limit: int | None = None, offset: int | None = None
) -> OrderRequest:
    """``get_user_orders``: open orders, active TWAPs and stop orders (``all_orders_response``)."""
    return OrderRequest(
        "get_user_orders",
        _optional(
            symbol=symbol,
            limit=_int(limit),
            offset=_int(offset),
        ),
    )


def get_user_trades_command(
    *,
    order_id: str | None = None,
    start_ts: int | None = None,
    end_ts: int | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> OrderRequest:
    """``get_user_trades``: this account's executions (``start_ts``/``end_ts``: Unix seconds,
    inclusive)."""
    return OrderRequest(
        "get_user_trades",
        _optional(
            order_id=order_id,
            start_ts=_int(start_ts),
            end_ts=_int(end_ts),
            limit=_int(limit),
            offset=_int(offset),
        ),
    )


def get_leverage_command(*, limit: int | None = None, offset: int | None = None) -> OrderRequest:
    """``get_user_leverage``: the account's leverage per symbol."""
    return OrderRequest(
        "get_user_leverage",
        _optional(
            limit=_int(limit),
            offset=_int(offset),
        ),
    )


def leverage_levels_command(*, limit: int | None = None, offset: int | None = None) -> OrderRequest:
    """``get_available_leverage_levels``: every symbol's allowed leverage settings."""
    return OrderRequest(
        "get_available_leverage_levels",
        _optional(
            limit=_int(limit),
            offset=_int(offset),
        ),
    )


def set_leverage_command(*, symbol: str, leverage: Decimal | int) -> OrderRequest:
    """``set_user_leverage`` of one symbol (only with no open orders and a flat position)."""
    return OrderRequest("set_user_leverage", {"symbol": symbol, "leverage": Decimal(leverage)})
