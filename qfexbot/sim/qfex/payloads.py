"""Wire encoding of the QFEX simulator's state: the JSON objects of protocol/qfex.md §2-§4.

The engine keeps ``Decimal`` state and decides; these functions only write it the way the venue
does (floats for private numbers, strings for market data and reference data).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from qfexbot.sim.qfex.model import (
    ORDER_TYPES,
    SIDES,
    TIFS,
    BalanceFigures,
    LeverageFigures,
    Market,
    Order,
    PositionFigures,
    TradeRecord,
    rfc3339,
)

__all__ = [
    "balance_response",
    "fill_response",
    "leverage_row",
    "missing_order_response",
    "order_response",
    "position_response",
    "refdata_row",
    "stop_order_response",
    "trade_print",
    "user_trade_row",
]


def _num(value: Decimal) -> float:
    return float(value)


def order_response(order: Order, status: str, trade_id: str | None = None) -> dict[str, Any]:
    """The ``order_response`` object of an order in ``status``."""
    return {
        "order_id": order.order_id,
        "symbol": order.symbol,
        "status": status,
        "quantity": _num(order.quantity),
        "price": _num(order.price),
        "take_profit": _num(order.take_profit),
        "stop_loss": _num(order.stop_loss),
        "side": order.side,
        "type": order.order_type,
        "time_in_force": order.tif,
        "user_id": order.account_id,
        "client_order_id": order.client_order_id,
        "quantity_remaining": _num(order.remaining),
        "update_time": order.update_time,
        "trade_id": trade_id,
    }


def missing_order_response(
    account_id: str,
    symbol: str,
    now: float,
    *,
    order_id: str,
    client_order_id: str,
    status: str = "NO_SUCH_ORDER",
    side: Any = None,
    order_type: Any = None,
    time_in_force: Any = None,
) -> dict[str, Any]:
    """The answer about an order that does not exist: a blank order carrying the asked-for id.

    ``side``, ``type`` and ``time_in_force`` are enums in the spec's ``OrderResponse``, so they are
    never blank: the request's value when it is a valid one (modify_order carries side and
    order_type), else the protobuf zero values a protobuf-backed venue writes for an empty order
    (qfex.md §2.5: side ``BUY``(0), OrderType ``LIMIT``(0), TIF ``GTC``(0)).
    """
    return {
        "order_id": order_id,
        "symbol": symbol,
        "status": status,
        "quantity": 0.0,
        "price": 0.0,
        "take_profit": 0.0,
        "stop_loss": 0.0,
        "side": side if side in SIDES else "BUY",
        "type": order_type if order_type in ORDER_TYPES else "LIMIT",
        "time_in_force": time_in_force if time_in_force in TIFS else "GTC",
        "user_id": account_id,
        "client_order_id": client_order_id,
        "quantity_remaining": 0.0,
        "update_time": now,
        "trade_id": None,
    }


def stop_order_response(order: Order) -> dict[str, Any]:
    """The ``stop_order_response`` object of a TAKE_PROFIT / STOP_LOSS order (``stop_orders``
    channel, ``all_orders_response.stop_orders``): ``price`` is the trigger, ``direction`` the side
    of the order it becomes, ``update_time`` an RFC 3339 string (the spec's ``date-time``)."""
    return {
        "stop_order_id": order.order_id,
        "user_id": order.account_id,
        "symbol": order.symbol,
        "price": _num(order.price),
        "quantity": _num(order.quantity),
        "direction": order.side,
        "stop_order_type": order.order_type,
        "client_order_id": order.client_order_id,
        "update_time": rfc3339(order.update_time),
    }


def user_trade_row(trade: TradeRecord) -> dict[str, Any]:
    """One ``user_trades_response`` row: the spec's ``TradePayload`` fields plus the documented
    ``aggressor_side``, ``client_order_id`` and ``timestamp`` (qfex.md §6 #5)."""
    return {
        "trade_id": trade.trade_id,
        "symbol": trade.symbol,
        "price": _num(trade.price),
        "quantity": _num(trade.quantity),
        "side": trade.side,
        "order_id": trade.order_id,
        "fee": _num(trade.fee),
        "order_type": trade.order_type,
        "tif": trade.tif,
        "aggressor_side": trade.aggressor_side,
        "client_order_id": trade.client_order_id,
        "timestamp": trade.ts,
    }


def fill_response(
    order: Order,
    *,
    trade_id: str,
    price: Decimal,
    qty: Decimal,
    aggressor: str,
    fee: Decimal,
    realised: Decimal,
    now: float,
) -> dict[str, Any]:
    """The ``fill_response`` object of one side of a trade."""
    return {
        "trade_id": trade_id,
        "user_id": order.account_id,
        "symbol": order.symbol,
        "price": _num(price),
        "quantity": _num(qty),
        "side": order.side,
        "aggressor_side": aggressor,
        "order_id": order.order_id,
        "fee": _num(fee),
        "order_type": order.order_type,
        "tif": order.tif,
        "order_price": _num(order.price),
        "client_order_id": order.client_order_id,
        "remaining_quantity": _num(order.remaining),
        "take_profit": _num(order.take_profit),
        "stop_loss": _num(order.stop_loss),
        "execution_type": "NEW",
        "timestamp": now,
        "realised_pnl": _num(realised),
    }


def trade_print(
    symbol: str, trade_id: str, now: float, qty: Decimal, price: Decimal, aggressor: str
) -> dict[str, Any]:
    """The market-data ``trade`` frame of a public print."""
    return {
        "type": "trade",
        "trade_id": trade_id,
        "time": rfc3339(now),
        "symbol": symbol,
        "size": str(qty),
        "price": str(price),
        "side": aggressor,
        "execution_type": "T",
    }


def balance_response(figures: BalanceFigures) -> dict[str, Any]:
    """The ``balance_response`` object (also the ``balance`` of GET /user/positions)."""
    return {
        "id": figures.account_id,
        "user_id": figures.account_id,
        "deposit": _num(figures.deposit),
        "realised_pnl": _num(figures.realised_pnl),
        "order_margin": _num(figures.order_margin),
        "position_margin": _num(figures.position_margin),
        "unrealised_pnl": _num(figures.unrealised_pnl),
        "net_funding": _num(figures.net_funding),
        "available_balance": _num(figures.available_balance),
        "fees": _num(figures.fees),
    }


def position_response(figures: PositionFigures) -> dict[str, Any]:
    """One ``position_response`` object."""
    position = figures.position
    return {
        "id": position.id,
        "symbol": position.symbol,
        "position": _num(position.size),
        "margin_alloc": _num(figures.margin_alloc),
        "realised_pnl": _num(position.realised_pnl),
        "unrealised_pnl": _num(figures.unrealised_pnl),
        "net_funding": _num(position.net_funding),
        "open_orders": float(figures.open_orders),
        "open_quantity": _num(figures.open_quantity),
        "leverage": float(figures.leverage),
        "initial_margin": _num(figures.initial_margin),
        "maintenance_margin": _num(figures.maintenance_margin),
        "average_price": _num(position.average_price),
    }


def leverage_row(figures: LeverageFigures) -> dict[str, Any]:
    """One ``user_leverage_response`` row (leverage as a string, as the venue sends it)."""
    return {
        "id": figures.id,
        "symbol": figures.symbol,
        "initial_margin": _num(figures.initial_margin),
        "maintenance_margin": _num(figures.maintenance_margin),
        "max_notional": _num(figures.max_notional),
        "leverage": str(figures.leverage),
    }


def refdata_row(index: int, market: Market) -> dict[str, Any]:
    """One GET /refdata row; decimal fields as strings."""
    spec = market.spec
    return {
        "clobPairId": str(index),
        "symbol": spec.symbol,
        "status": "ACTIVE",
        "underlier_price": str(market.mid),
        "price_change_24h": "0",
        "default_max_leverage": spec.leverage,
        "tick_size": str(spec.tick_size),
        "lot_size": str(spec.lot_size),
        "min_price": str(spec.min_price),
        "max_price": str(spec.max_price),
        "min_quantity": str(spec.min_quantity),
        "max_quantity": str(spec.max_quantity),
        "base_asset": spec.symbol.split("-")[0],
        "quote_asset": "USD",
        "margin_asset": "USD",
        "order_time_in_force": list(TIFS),
        "order_types": ["LIMIT", "MARKET", "ALO"],
        "market_hours": {"tz": "America/New_York"},
        "product_category": spec.product_category,
    }
