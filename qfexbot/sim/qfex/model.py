"""The QFEX simulator's state records: accounts, orders, positions, books, ledger rows, events.

Plain data shared by the engine (which changes it) and the gateways (which encode it for the
wire, see ``payloads``); no rules live here.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from qfexbot.errors import SimulatorError
from qfexbot.sim.qfex.config import SimSymbol

__all__ = [
    "ALLOWED_TIF",
    "EVENT_HISTORY",
    "ORDER_TYPES",
    "SIDES",
    "STOP_TYPES",
    "TIFS",
    "ZERO",
    "Account",
    "BalanceFigures",
    "CommandError",
    "Event",
    "LedgerEntry",
    "LeverageFigures",
    "Market",
    "Order",
    "Position",
    "PositionFigures",
    "PrivateEvent",
    "PublicTrade",
    "TradeRecord",
    "TransferError",
    "rfc3339",
]

ZERO = Decimal(0)
EVENT_HISTORY = 1000
SIDES = ("BUY", "SELL")
ORDER_TYPES = ("LIMIT", "MARKET", "ALO", "TAKE_PROFIT", "STOP_LOSS", "STOP_MARKET")
TIFS = ("GTC", "IOC", "FOK")
STOP_TYPES = ("TAKE_PROFIT", "STOP_LOSS", "STOP_MARKET")
"""Order types that wait off the book for the mark price to reach their trigger (``price``)."""
ALLOWED_TIF = {
    "LIMIT": ("GTC", "IOC", "FOK"),
    "MARKET": ("IOC",),
    "ALO": ("GTC",),
    # stops: the request's TIF is required but ignored, the order is echoed as IOC [D]
    **dict.fromkeys(STOP_TYPES, TIFS),
}


class CommandError(SimulatorError):
    """A command the venue answers with an ``err`` frame (not a business reject)."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


class TransferError(SimulatorError):
    """A refused transfer: HTTP status plus problem+json title/detail."""

    def __init__(self, status: int, title: str, detail: str, location: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.location = location


@dataclass
class LedgerEntry:
    """One applied transfer (the sim's source of truth for "money moved exactly once")."""

    id: str
    src: str
    dst: str
    amount: Decimal
    applied_at: float
    response_dropped: bool = False
    outside: bool = False  # moved by another client (Faults.outside_transfer), not qfexbot
    held_for: float = 0.0  # seconds the request was held before applying (hold_transfers)


@dataclass(frozen=True)
class PrivateEvent:
    """A frame for every subscribed connection of ``account_id`` on ``channel``.

    ``seq`` numbers the account's private events (monotonic, per account, sim state only).
    """

    account_id: str
    channel: str
    frame: dict[str, Any]
    seq: int


@dataclass(frozen=True)
class PublicTrade:
    """A public print for the market-data ``trade`` channel."""

    symbol: str
    frame: dict[str, Any]


Event = PrivateEvent | PublicTrade


@dataclass
class Order:
    """A live or just-finished order of one account."""

    order_id: str
    account_id: str
    symbol: str
    side: str
    order_type: str
    tif: str
    price: Decimal
    quantity: Decimal
    remaining: Decimal
    client_order_id: str
    take_profit: Decimal
    stop_loss: Decimal
    reduce_only: bool
    arrival: int
    update_time: float
    status: str = "ACK"
    parent_id: str = ""
    """For a take-profit / stop-loss staged by an order's ``take_profit`` / ``stop_loss``: that
    order's id (empty for every other order)."""
    triggered: bool = False
    """A stop whose trigger the mark price reached: it now trades as a MARKET IOC order."""

    @property
    def market_like(self) -> bool:
        """Whether the order takes any price: a MARKET order or a triggered stop."""
        return self.order_type == "MARKET" or self.triggered


@dataclass(frozen=True)
class TradeRecord:
    """One account's side of one execution, as the trade history (socket and REST) reports it."""

    trade_id: str
    order_id: str
    client_order_id: str
    account_id: str
    symbol: str
    side: str
    order_type: str
    tif: str
    price: Decimal
    quantity: Decimal
    fee: Decimal
    realised_pnl: Decimal
    margin_used: Decimal
    aggressor_side: str
    maker: bool
    ts: float


@dataclass
class Position:
    """One account's position in one symbol (kept after it goes flat)."""

    symbol: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    size: Decimal = ZERO
    average_price: Decimal = ZERO
    realised_pnl: Decimal = ZERO
    net_funding: Decimal = ZERO


@dataclass
class Account:
    """A primary account or subaccount: cash, pnl, positions, leverage and its event numbering."""

    account_id: str
    user_id: str
    deposit: Decimal = ZERO
    realised_pnl: Decimal = ZERO
    net_funding: Decimal = ZERO
    fees: Decimal = ZERO
    positions: dict[str, Position] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)
    event_seq: int = 0
    events: deque[PrivateEvent] = field(default_factory=lambda: deque(maxlen=EVENT_HISTORY))
    equity_history: list[tuple[float, Decimal]] = field(default_factory=list)


@dataclass
class Market:
    """One symbol's book: resting user orders plus synthetic liquidity around ``mid``."""

    spec: SimSymbol
    mid: Decimal
    last_trade: Decimal | None = None
    bids: list[Order] = field(default_factory=list)
    asks: list[Order] = field(default_factory=list)
    synthetic: dict[str, dict[Decimal, Decimal]] = field(
        default_factory=lambda: {"BUY": {}, "SELL": {}}
    )
    sequence: int = 0


def rfc3339(ts: float) -> str:
    """Unix seconds → RFC3339 UTC with nanoseconds, as the market-data feed writes times."""
    whole = int(ts)
    nanos = round((ts - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    base = datetime.fromtimestamp(whole, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{nanos:09d}Z"


@dataclass(frozen=True)
class BalanceFigures:
    """An account's cash and margin figures at one moment (the engine computes them)."""

    account_id: str
    deposit: Decimal
    realised_pnl: Decimal
    order_margin: Decimal
    position_margin: Decimal
    unrealised_pnl: Decimal
    net_funding: Decimal
    available_balance: Decimal
    fees: Decimal


@dataclass(frozen=True)
class PositionFigures:
    """One position of an account with its margin and resting-order figures."""

    position: Position
    margin_alloc: Decimal
    unrealised_pnl: Decimal
    open_orders: int
    open_quantity: Decimal
    leverage: int
    initial_margin: Decimal
    maintenance_margin: Decimal


@dataclass(frozen=True)
class LeverageFigures:
    """An account's leverage on one symbol and the margin fractions it implies."""

    id: str
    symbol: str
    initial_margin: Decimal
    maintenance_margin: Decimal
    max_notional: Decimal
    leverage: int
