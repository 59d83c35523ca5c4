"""Venue-neutral records that queries return: trades, order and TWAP history, leverage, fees.

Records are frozen, slotted dataclasses like events, but they are answers to a question (``ctx``
queries), not things that happened, so they carry no venue, account or receive time. Money and
quantities are ``Decimal``; times are Unix seconds (``None`` when the venue sent none). ``raw`` is
the venue's row as it arrived: read it, never change it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from qfexbot.events import OrderUpdateEvent, StopOrderEvent

__all__ = [
    "Candle",
    "FeeRate",
    "FundingRatePoint",
    "HistoricOrder",
    "LeverageLevel",
    "OpenInterestPoint",
    "OpenOrders",
    "TwapInfo",
    "UserTrade",
]

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserTrade:
    """One execution of this account's order, from the venue's trade history."""

    trade_id: str
    order_id: str
    symbol: str
    side: str
    price: Decimal
    quantity: Decimal
    fee: Decimal = _ZERO
    """Paid fee in the quote currency (negative = rebate)."""
    order_type: str = ""
    time_in_force: str = ""
    client_order_id: str = ""
    timestamp: float | None = None
    realised_pnl: Decimal = _ZERO
    margin_used: Decimal = _ZERO
    is_taker: bool | None = None
    """``None`` when the venue's row does not say."""
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoricOrder:
    """An order that reached a terminal state (filled, cancelled, rejected, ...)."""

    order_id: str
    client_order_id: str
    symbol: str
    side: str
    order_type: str
    time_in_force: str
    quantity: Decimal
    price: Decimal
    status: str
    """The terminal status as the venue names it."""
    status_time: float | None = None
    filled_quantity: Decimal = _ZERO
    passive_quantity: Decimal = _ZERO
    """The part filled as maker."""
    average_price: Decimal | None = None
    first_fill_time: float | None = None
    last_fill_time: float | None = None
    execution_state: str = ""
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class TwapInfo:
    """A TWAP (an order split into timed children), active or finished."""

    twap_id: str
    client_twap_id: str
    symbol: str
    side: str
    status: str
    total_quantity: Decimal
    filled_quantity: Decimal = _ZERO
    average_fill_price: Decimal = _ZERO
    total_orders: int = 0
    filled_orders: int | None = None
    """Children that filled (history only; ``None`` while active)."""
    order_interval: int = 0
    """Seconds between children."""
    reduce_only: bool = False
    created_at: float | None = None
    updated_at: float | None = None
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class LeverageLevel:
    """One leverage setting of a symbol with its margins (fractions) and notional cap."""

    symbol: str
    leverage: Decimal
    initial_margin: Decimal = _ZERO
    maintenance_margin: Decimal = _ZERO
    max_notional: Decimal = _ZERO
    level_id: str = ""
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeeRate:
    """This account's fee rates on one symbol as fractions of notional (negative = rebate)."""

    symbol: str
    maker: Decimal
    taker: Decimal
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Candle:
    """One historical candle (OHLC over the bucket starting at ``start``)."""

    symbol: str
    resolution: str
    start: float | None
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    base_volume: Decimal = _ZERO
    usd_volume: Decimal = _ZERO
    trades: int = 0
    starting_open_interest: Decimal = _ZERO
    mid_open: Decimal = _ZERO
    mid_close: Decimal = _ZERO
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingRatePoint:
    """The funding rate of one window; ``rate`` is ``None`` before the first observation."""

    symbol: str
    interval_minutes: int
    window_start: float | None
    rate: Decimal | None
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenInterestPoint:
    """Open interest of one window; ``None`` before the first observation."""

    symbol: str
    interval_minutes: int
    window_start: float | None
    open_interest: Decimal | None
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenOrders:
    """Everything resting for an account: orders, active TWAPs and stop orders."""

    orders: tuple[OrderUpdateEvent, ...] = ()
    twaps: tuple[TwapInfo, ...] = ()
    stop_orders: tuple[StopOrderEvent, ...] = ()
    raw: Any = field(default=None, repr=False, compare=False)
