"""Venue-neutral, immutable event types: what every plugin sees, whatever the venue.

Events are frozen, slotted dataclasses whose fields are scalars, tuples and other events, so one
event is handed to every subscribed plugin without a copy. ``raw`` is kept as the venue sent it
(often a parsed JSON dict): read it, never change it.

Every event carries the venue name, the account id it belongs to, the local receive time
(``time.time()``) and the raw frame it came from (``None`` for events qfexbot makes itself).
Money and quantities are ``Decimal``: QFEX floats are converted with ``Decimal(str(x))``,
Finery integers are scaled by 1e8 exactly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = [
    "PRIVATE_EVENTS",
    "AlertEvent",
    "AlertKind",
    "AlertSeverity",
    "BalanceEvent",
    "BookEvent",
    "CandleEvent",
    "ConnectionState",
    "ConnectionStateEvent",
    "Event",
    "FillEvent",
    "FundingPaymentEvent",
    "FundingRateEvent",
    "MarkPriceEvent",
    "MarketStatsEvent",
    "OpenInterestEvent",
    "OrderUpdateEvent",
    "PositionEvent",
    "PriceBandEvent",
    "ResyncEvent",
    "SettlementEvent",
    "StopOrderEvent",
    "TimerEvent",
    "TradeEvent",
    "TransferOutcomeEvent",
    "TwapEvent",
    "UnderlierEvent",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event. ``kind`` is a short stable name used in logs, metrics and recordings."""

    venue: str
    account_id: str
    received_at: float
    raw: Any = field(default=None, repr=False, compare=False)

    kind = "event"

    @property
    def is_private(self) -> bool:
        """Private events are never dropped or conflated; market data may be."""
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class BalanceEvent(Event):
    """Account balance snapshot (QFEX ``balance_response`` pulse, REST resync, Finery limits)."""

    available: Decimal
    deposit: Decimal = Decimal(0)
    realised_pnl: Decimal = Decimal(0)
    unrealised_pnl: Decimal = Decimal(0)
    order_margin: Decimal = Decimal(0)
    position_margin: Decimal = Decimal(0)
    net_funding: Decimal = Decimal(0)
    currency: str = "USD"
    counterparty: str = ""
    """Whose limit this is, on a venue where balances are limits per counterparty (Finery);
    "" for an account's own balance."""

    kind = "balance"

    @property
    def equity(self) -> Decimal:
        """Available balance plus margin in use plus unrealised PnL."""
        return self.available + self.order_margin + self.position_margin + self.unrealised_pnl


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionEvent(Event):
    """Position in one symbol; ``size`` is signed (long > 0)."""

    symbol: str
    size: Decimal
    average_price: Decimal = Decimal(0)
    realised_pnl: Decimal = Decimal(0)
    unrealised_pnl: Decimal = Decimal(0)
    net_funding: Decimal = Decimal(0)
    leverage: Decimal = Decimal(0)
    open_orders: int = 0
    open_quantity: Decimal = Decimal(0)
    by_counterparty: tuple[tuple[str, Decimal], ...] = ()
    """On a venue where positions are bilateral (Finery): ``(counterparty id, signed size)``
    per counterparty, ``size`` being their sum; empty elsewhere."""

    kind = "position"


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderUpdateEvent(Event):
    """A change in one order's life (ACK, FILLED, CANCELLED, a reject status, ...)."""

    order_id: str
    client_order_id: str
    symbol: str
    status: str
    side: str
    order_type: str
    time_in_force: str
    price: Decimal
    quantity: Decimal
    remaining: Decimal
    trade_id: str | None = None
    update_time: float | None = None
    terminal: bool = False
    take_profit: Decimal = Decimal(0)
    """Attached take-profit trigger price; 0 = none."""
    stop_loss: Decimal = Decimal(0)
    """Attached stop-loss trigger price; 0 = none."""

    kind = "order"


@dataclass(frozen=True, slots=True, kw_only=True)
class StopOrderEvent(Event):
    """A resting stop order (take-profit or stop-loss) as the venue reports it.

    ``price`` is the trigger (mark price); ``side`` the direction of the order it becomes.
    """

    stop_order_id: str
    symbol: str
    side: str
    stop_type: str
    """``TAKE_PROFIT`` or ``STOP_LOSS``."""
    price: Decimal
    quantity: Decimal
    client_order_id: str = ""
    update_time: float | None = None

    kind = "stop_order"


@dataclass(frozen=True, slots=True, kw_only=True)
class TwapEvent(Event):
    """A TWAP (time-weighted order split into children) was placed, progressed or ended."""

    twap_id: str
    client_twap_id: str
    """``""`` when the TWAP has none."""
    symbol: str
    side: str
    status: str
    """As the venue sends it (e.g. ``ACTIVE``, ``COMPLETED``, ``CANCELLED``)."""
    total_quantity: Decimal
    filled_quantity: Decimal = Decimal(0)
    average_fill_price: Decimal = Decimal(0)
    total_orders: int = 0
    order_interval: int = 0
    """Seconds between child orders."""
    reduce_only: bool = False
    created_at: float | None = None
    updated_at: float | None = None

    kind = "twap"


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingPaymentEvent(Event):
    """Funding paid or received on one position: ``amount`` > 0 is received.

    Derived from the change in the position's cumulative ``net_funding``, which is what the
    venue reports; ``net_funding`` is the new cumulative total.
    """

    symbol: str
    amount: Decimal
    net_funding: Decimal

    kind = "funding_payment"


@dataclass(frozen=True, slots=True, kw_only=True)
class FillEvent(Event):
    """One execution of this account's order."""

    trade_id: str
    order_id: str
    client_order_id: str
    symbol: str
    side: str
    price: Decimal
    quantity: Decimal
    fee: Decimal = Decimal(0)
    is_taker: bool = False
    remaining: Decimal = Decimal(0)
    realised_pnl: Decimal = Decimal(0)
    timestamp: float | None = None

    kind = "fill"


@dataclass(frozen=True, slots=True, kw_only=True)
class BookEvent(Event):
    """Order book snapshot (full replacement), best price first on each side."""

    symbol: str
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    sequence: int | None = None
    channel: str = "level2"

    kind = "book"

    @property
    def is_private(self) -> bool:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeEvent(Event):
    """A public trade print; ``side`` is the aggressor side."""

    symbol: str
    trade_id: str
    price: Decimal
    size: Decimal
    side: str

    kind = "trade"

    @property
    def is_private(self) -> bool:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkPriceEvent(Event):
    """Mark price of one symbol."""

    symbol: str
    price: Decimal

    kind = "mark_price"

    @property
    def is_private(self) -> bool:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class CandleEvent(Event):
    """The current candle of one symbol and resolution (sent again as it changes)."""

    symbol: str
    resolution: str
    """e.g. ``1MIN``, ``5MINS``, ``1HOUR``, ``1DAY``."""
    start: float | None
    """Unix seconds of the candle's start."""
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    usd_volume: Decimal = Decimal(0)
    trades: int = 0

    kind = "candle"

    @property
    def is_private(self) -> bool:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingRateEvent(Event):
    """The implied funding rate of the current window, if it ended now (a fraction)."""

    symbol: str
    rate: Decimal
    time_remaining: float = 0.0
    """Seconds until the window ends."""
    timestamp: float | None = None

    kind = "funding_rate"

    @property
    def is_private(self) -> bool:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenInterestEvent(Event):
    """Open interest of one symbol (base units)."""

    symbol: str
    open_interest: Decimal
    timestamp: float | None = None

    kind = "open_interest"

    @property
    def is_private(self) -> bool:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class UnderlierEvent(Event):
    """The underlying (index) price of one symbol; ``source`` says where it came from."""

    symbol: str
    price: Decimal
    source: str = ""
    """``external`` (aggregated venues) or ``internal`` (outside the market's hours)."""
    timestamp: float | None = None

    kind = "underlier"

    @property
    def is_private(self) -> bool:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceBandEvent(Event):
    """The current band of accepted order prices of one symbol."""

    symbol: str
    min_price: Decimal
    max_price: Decimal
    timestamp: float | None = None

    kind = "price_band"

    @property
    def is_private(self) -> bool:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketStatsEvent(Event):
    """A consolidated snapshot: best bid/offer, mark price, open interest and daily volume.

    ``symbol`` is what was subscribed (``"*"`` for every symbol); ``daily_volumes`` pairs
    each symbol with its volume since the daily reset.
    """

    symbol: str
    bbos: tuple[BookEvent, ...] = ()
    mark_prices: tuple[MarkPriceEvent, ...] = ()
    open_interests: tuple[OpenInterestEvent, ...] = ()
    daily_volumes: tuple[tuple[str, Decimal], ...] = ()
    sequence: int | None = None
    timestamp: float | None = None

    kind = "market_stats"

    @property
    def is_private(self) -> bool:
        return False


class ConnectionState(enum.StrEnum):
    """States of a supervised session (see docs/architecture.md); each equals its value."""

    CONNECTING = "connecting"
    AUTHENTICATING = "authenticating"
    SUBSCRIBING = "subscribing"
    RESYNCING = "resyncing"
    LIVE = "live"
    STALE = "stale"
    BACKOFF = "backoff"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionStateEvent(Event):
    """A session changed state; ``reason`` says why (operator-readable, never a secret)."""

    state: ConnectionState
    previous: ConnectionState | None = None
    reason: str = ""
    attempt: int = 0

    kind = "connection"


@dataclass(frozen=True, slots=True, kw_only=True)
class ResyncEvent(Event):
    """State re-read from the venue after (re)connecting; published before LIVE.

    Plugins should treat it as the authoritative snapshot: anything they inferred from events
    during a gap is replaced by it.
    """

    balance: BalanceEvent | None
    positions: tuple[PositionEvent, ...] = ()
    open_orders: tuple[OrderUpdateEvent, ...] = ()

    kind = "resync"


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferOutcomeEvent(Event):
    """A journaled transfer reached a state (sent, done, failed, unknown, refused, dry_run)."""

    entry_id: str
    src: str
    dst: str
    amount: Decimal
    state: str
    detail: str = ""

    kind = "transfer"


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementEvent(Event):
    """A bilateral settlement item seen on the venue (Finery feeds ``S``, ``R``, ``N``).

    ``record`` is ``order`` (a settlement order, committed ones included), ``request`` (a
    request to be paid) or ``transaction`` (a declared payment); ``action`` is ``snapshot``,
    ``added``, ``modified``, ``committed`` or ``removed``. ``direction`` is ``outgoing`` when
    this account pays ``amount`` of ``currency`` to ``counterparty``, ``incoming`` when it is
    paid; an order's other leg, if any, is ``counter_currency``/``counter_amount``.
    """

    record: str
    action: str
    settlement_id: str
    """The venue's id of the item (settlement order, request or transaction id); "" if none."""
    counterparty: str
    currency: str
    amount: Decimal
    direction: str
    counter_currency: str = ""
    counter_amount: Decimal = Decimal(0)
    comment: str = ""
    committed: bool = False
    """True once the settlement moved positions (an order's ``D``, a transaction's ``D``)."""

    kind = "settlement"


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerEvent(Event):
    """A scheduled tick that a plugin asked for (see the ``qfexbot_schedules`` hook)."""

    name: str
    interval: float

    kind = "timer"


class AlertKind(enum.StrEnum):
    """What an operator is alerted about (``AlertEvent.alert``); each equals its value."""

    TRANSFER_UNKNOWN = "transfer_unknown"
    TRANSFER_FAILED = "transfer_failed"
    TRANSFER_REFUSED = "transfer_refused"
    LATE_LANDING = "late_landing"
    UNEXPLAINED_BALANCE = "unexplained_balance"
    SESSION_FAILED = "session_failed"
    PLUGIN_DISABLED = "plugin_disabled"
    PLUGIN_ENABLED = "plugin_enabled"
    KILL_SWITCH_ENGAGED = "kill_switch_engaged"
    KILL_SWITCH_RELEASED = "kill_switch_released"
    DRAWDOWN_STOP = "drawdown_stop"
    DAILY_SUMMARY = "daily_summary"


class AlertSeverity(enum.IntEnum):
    """How urgent an alert is; ordered, so a sink can keep ``severity >= min_severity``."""

    INFO = 10
    WARNING = 20
    CRITICAL = 30


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertEvent(Event):
    """Something an operator must hear about, runtime-wide (not tied to one account's bus).

    ``alert`` says what; ``subject`` names the thing it is about (a journal entry, a plugin, the
    kill switch file) so repeats can be de-duplicated; ``account`` is an alias or id, ``""``
    when the alert is not about one account. Never holds a secret: emitters write ``summary``
    and ``details`` for an operator's eyes only.
    """

    alert: AlertKind
    severity: AlertSeverity
    summary: str
    bot: str = ""
    account: str = ""
    subject: str = ""
    details: tuple[tuple[str, str], ...] = ()

    kind = "alert"


PRIVATE_EVENTS: tuple[type[Event], ...] = (
    BalanceEvent,
    PositionEvent,
    OrderUpdateEvent,
    FillEvent,
    StopOrderEvent,
    TwapEvent,
    FundingPaymentEvent,
    ConnectionStateEvent,
    ResyncEvent,
    TransferOutcomeEvent,
    SettlementEvent,
    TimerEvent,
    AlertEvent,
)
