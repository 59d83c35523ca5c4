"""What a venue provides the core: an adapter per kind, the venue it opens, and their drivers.

The core, the runtime, actions and replay talk to venues only through these protocols, and find a
venue's :class:`VenueAdapter` by kind (``qfexbot.venues.registry.adapter(kind)``, the package's
``adapter.ADAPTER``). The adapter opens a :class:`Venue` for one bots.toml table; the venue builds
sessions and its public feed, maps qfexbot's order vocabulary to its own (:class:`OrderRequest`),
sends orders and transfers, and maps its errors: plugins only ever see the
``qfexbot.errors.ActionError`` family, and a transfer's failure is classified as a
:class:`TransferOutcome` for the transfer service.

A venue supplies *drivers*: the venue-specific steps of one connection (URL, auth, subscribe,
resync, parse). The supervisor in ``qfexbot.core.session`` runs them with reconnects, backoff, a
stale-stream watchdog and state events, so a new venue only writes the steps.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from qfexbot.errors import VenueError
from qfexbot.events import BalanceEvent, ConnectionState, Event, OrderUpdateEvent, ResyncEvent

if TYPE_CHECKING:
    from qfexbot.core.records import (
        Candle,
        FeeRate,
        FundingRatePoint,
        HistoricOrder,
        LeverageLevel,
        OpenInterestPoint,
        OpenOrders,
        TwapInfo,
        UserTrade,
    )

__all__ = [
    "AuthRejected",
    "CancelAll",
    "ClosePosition",
    "CredentialsLike",
    "FrameConnection",
    "HistoryQuery",
    "MarketDataDriver",
    "MarketDataFeed",
    "Order",
    "OrderAction",
    "OrderChange",
    "OrderRequest",
    "ParseError",
    "PrivateSession",
    "Publish",
    "ReplayDriver",
    "SessionDriver",
    "SessionSettingsLike",
    "StopCancel",
    "StopChange",
    "StopOrder",
    "TransferOutcome",
    "TransferVenue",
    "TwapCancel",
    "TwapOrder",
    "Venue",
    "VenueAdapter",
    "VenueRules",
    "VenueSettings",
]

Publish = Callable[[Event], Awaitable[None]]
"""The caller's sink for events (e.g. the account's bus). It may block (back-pressure)."""

_PREVIEW = 300


def _preview(raw: Any) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    text = raw if isinstance(raw, str) else repr(raw)
    return text if len(text) <= _PREVIEW else f"{text[:_PREVIEW]}...({len(text)} chars)"


class ParseError(VenueError, ValueError):
    """A frame or body that could not be parsed; ``raw`` is exactly what was received."""

    def __init__(self, raw: Any, reason: str) -> None:
        self.raw = raw
        self.reason = reason
        super().__init__(f"{reason}: {_preview(raw)}")

    @property
    def preview(self) -> str:
        """The raw frame as text, truncated for a log line."""
        return _preview(self.raw)


class AuthRejected(VenueError):
    """The venue refused the credentials. Counted towards ``max_auth_failures``.

    The message is operator-readable and never contains a secret.
    """


class SessionSettingsLike(Protocol):
    """Tunables of a supervised session (``qfexbot.config.SessionSettings`` fits), seconds."""

    connect_timeout: float
    auth_timeout: float
    stale_after: float
    backoff_initial: float
    backoff_max: float
    healthy_after: float
    max_auth_failures: int
    request_timeout: float


class FrameConnection(Protocol):
    """One open socket as the driver sees it during the handshake steps."""

    async def send(self, message: Mapping[str, Any]) -> None:
        """Encode (``driver.encode``) and send one message."""

    async def receive(self) -> list[Any]:
        """Wait for the next frame that carries control messages and return them.

        Events in frames read meanwhile are kept and published after the resync snapshot;
        malformed frames are logged and counted. The supervisor bounds each step in time.
        """


class SessionDriver(Protocol):
    """Venue-specific steps of one connection; the supervisor calls them in this order."""

    url: str
    authenticates: bool
    """False skips AUTHENTICATING (e.g. a public feed or auth done in connect headers)."""
    resyncs: bool
    """False skips RESYNCING."""
    watch_stale: bool
    """Whether silence for ``stale_after`` seconds means the stream is dead."""

    def handshake_headers(self) -> list[tuple[bytes, bytes]]:
        """Extra HTTP headers for the WebSocket upgrade (computed per connection)."""

    async def authenticate(self, conn: FrameConnection) -> None:
        """Authenticate; raise :class:`AuthRejected` if the venue refuses the credentials."""

    async def subscribe(self, conn: FrameConnection) -> None:
        """Subscribe and wait for the acks; raise to make the supervisor reconnect."""

    async def resync(self, conn: FrameConnection) -> Sequence[Event]:
        """Re-read state (REST snapshot); the events are published before LIVE."""

    def parse(self, frame: str | bytes, now: float) -> list[Any]:
        """Frame → events and control messages; raises :class:`ParseError`."""

    async def on_control(self, item: Any) -> None:
        """A control message (ack, reply, error) that arrived while LIVE."""

    def encode(self, message: Mapping[str, Any]) -> str:
        """A command as the text frame to send."""

    def command_name(self, message: Mapping[str, Any]) -> str | None:
        """What to call a command in an operator's message (e.g. its type), if it has a name."""


class MarketDataDriver(Protocol):
    """Venue-specific parts of the public market-data feed."""

    url: str
    pulsed_channels: frozenset[str]
    """Channels that tick regularly; staleness is only watched while one is subscribed."""

    def handshake_headers(self) -> list[tuple[bytes, bytes]]: ...

    def subscribe_messages(self, pairs: Iterable[tuple[str, str]]) -> list[Mapping[str, Any]]:
        """Messages that subscribe these (channel, symbol) pairs."""

    def unsubscribe_messages(self, pairs: Iterable[tuple[str, str]]) -> list[Mapping[str, Any]]:
        """Messages that unsubscribe these (channel, symbol) pairs."""

    def parse(self, frame: str | bytes, now: float) -> list[Event]: ...

    def route(self, event: Event) -> tuple[str, str]:
        """The (channel, symbol) an event is fanned out by."""

    def encode(self, message: Mapping[str, Any]) -> str: ...


class PrivateSession(Protocol):
    """A supervised private session for one account (see ``qfexbot.core.session.Supervisor``)."""

    venue: str
    account_id: str
    driver: Any
    """The session's :class:`SessionDriver` (the recorder wraps it to record frames)."""

    @property
    def state(self) -> ConnectionState:
        """Where the connection is (LIVE, RECONNECTING, ...), for the status view."""

    @property
    def stats(self) -> Any:
        """Counters for the ops views (a ``qfexbot.core.session.SessionStats``)."""

    async def run(self, *, task_status: Any = ...) -> None:
        """Connect and stay connected (reconnects, resyncs) until cancelled or FAILED."""

    async def send(self, command: Mapping[str, Any]) -> None:
        """Send one raw message on the live socket (``ActionUnavailable`` if not live)."""


class MarketDataFeed(Protocol):
    """The shared public feed of a venue (see ``qfexbot.core.session.MarketDataSession``)."""

    supervisor: Any
    """The supervised connection (its ``state``, ``stats`` and ``driver``)."""

    async def subscribe(
        self, channels: Iterable[str], symbols: Iterable[str], publish: Publish
    ) -> None: ...

    async def unsubscribe(self, publish: Publish) -> None: ...

    async def run(self, *, task_status: Any = ...) -> None: ...


class VenueSettings(Protocol):
    """What an adapter reads from one ``[venues.NAME]`` table (``qfexbot.config.VenueConfig``
    fits): its name, the key's own account, endpoints, session tunables."""

    name: str
    user_id: str
    trade_url: str
    mds_url: str
    rest_url: str
    session: Any
    """The table's session tunables (a :class:`SessionSettingsLike`, ``settle_seconds`` too)."""
    flags: Mapping[str, bool]
    """The kind's own boolean keys of the table (``VenueRules`` ``flags``), each set or default."""


class CredentialsLike(Protocol):
    """Resolved credentials of a venue (``qfexbot.config.Credentials`` fits)."""

    public_key: str | None
    secret: Any
    jwt: Any


@dataclass(frozen=True, slots=True)
class Order:
    """An order in qfexbot's vocabulary (``ctx.add_order``'s arguments), for a venue to map."""

    symbol: str
    side: str
    """``BUY`` or ``SELL``."""
    order_type: str
    """``LIMIT``, ``MARKET``, ``ALO`` (post-only), ..."""
    quantity: Decimal
    price: Decimal | None
    time_in_force: str
    """``GTC``, ``IOC``, ``FOK``."""
    client_order_id: str | None
    reduce_only: bool
    take_profit: Decimal | None = None
    """Trigger price of a take-profit to attach once the order fills (None: none)."""
    stop_loss: Decimal | None = None
    """Trigger price of a stop-loss to attach once the order fills (None: none)."""


@dataclass(frozen=True, slots=True)
class OrderChange:
    """A change to a resting order (``ctx.modify_order``). ``side`` and ``order_type`` must be
    the order's own (they identify it); only price, quantity and the attached take-profit /
    stop-loss change (None: unchanged)."""

    action: ClassVar[str] = "modify_order"
    symbol: str
    order_id: str
    side: str
    order_type: str
    price: Decimal | None = None
    quantity: Decimal | None = None
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None


@dataclass(frozen=True, slots=True)
class StopOrder:
    """A resting stop order (``ctx.place_stop_order``): when the mark price reaches
    ``trigger_price`` it becomes a market order of ``side``. ``stop_type`` is ``TAKE_PROFIT``
    or ``STOP_LOSS`` (reduce-only) or ``STOP_MARKET``."""

    action: ClassVar[str] = "place_stop_order"
    symbol: str
    side: str
    stop_type: str
    trigger_price: Decimal
    quantity: Decimal
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class StopChange:
    """A new trigger price and quantity for a resting stop order (``ctx.modify_stop_order``)."""

    action: ClassVar[str] = "modify_stop_order"
    stop_order_id: str
    symbol: str
    trigger_price: Decimal
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class StopCancel:
    """Cancel one resting stop order (``ctx.cancel_stop_order``)."""

    action: ClassVar[str] = "cancel_stop_order"
    stop_order_id: str


@dataclass(frozen=True, slots=True)
class TwapOrder:
    """A TWAP (``ctx.start_twap``): ``total_quantity`` split into ``num_orders`` market
    orders, one every ``interval_seconds``."""

    action: ClassVar[str] = "start_twap"
    symbol: str
    side: str
    total_quantity: Decimal
    num_orders: int
    interval_seconds: int
    reduce_only: bool = False
    client_twap_id: str | None = None


@dataclass(frozen=True, slots=True)
class TwapCancel:
    """Stop a TWAP by its venue id or by the client id it was started with
    (``ctx.cancel_twap``); exactly one of the two is set."""

    action: ClassVar[str] = "cancel_twap"
    symbol: str
    twap_id: str | None = None
    client_twap_id: str | None = None


@dataclass(frozen=True, slots=True)
class ClosePosition:
    """Close the whole position in ``symbol`` at the market (``ctx.close_position``)."""

    action: ClassVar[str] = "close_position"
    symbol: str
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class CancelAll:
    """Cancel every open order of the account (``ctx.cancel_all``)."""

    action: ClassVar[str] = "cancel_all"


OrderAction = (
    OrderChange
    | StopOrder
    | StopChange
    | StopCancel
    | TwapOrder
    | TwapCancel
    | ClosePosition
    | CancelAll
)
"""An order action other than placing or cancelling one order, journaled and sent like them."""


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Filters of an account's history (trades, finished orders, TWAPs); times are Unix
    seconds, ``limit``/``offset`` page the newest-first rows."""

    symbol: str | None = None
    start: float | None = None
    end: float | None = None
    limit: int = 100
    offset: int = 0
    order_id: str | None = None
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One order or cancel in the venue's own words: ``command`` and ``params`` are journaled
    (decimals as text) before :meth:`Venue.send` sends them."""

    command: str
    params: Mapping[str, Any]


class TransferOutcome(enum.StrEnum):
    """How a failed transfer request ended, as the transfer service needs to know it."""

    REJECTED = "rejected"
    """The venue definitely refused it: nothing was applied."""
    NOT_SENT = "not_sent"
    """The request definitely never left: nothing was applied."""
    AMBIGUOUS = "ambiguous"
    """It may have been applied (timeout, reset, 5xx or 3xx after sending): reconcile."""


class Venue(Protocol):
    """One opened venue (a bots.toml table): sessions, public feed, reads, orders.

    Every method that serves a plugin action raises only the ``qfexbot.errors.ActionError``
    family (``ActionUnavailable`` when a session is not live, ``ActionRejected`` when the venue
    refuses, ``ActionError`` for what the venue does not have).
    """

    name: str

    def private_session(
        self, account_id: str, *, channels: Sequence[str], publish: Publish
    ) -> PrivateSession:
        """A new (not yet running) private session for one account."""

    def market_data(self) -> MarketDataFeed:
        """The venue's shared public feed (one per venue; run it once)."""

    async def snapshot(self, account_id: str) -> ResyncEvent:
        """Balance and positions of one account, read from REST now (``ctx.positions``)."""

    async def account_equity(self, account_id: str, duration: str) -> list[tuple[Any, Decimal]]:
        """The venue's sampled equity history of an account (``ctx.account_equity``)."""

    def order(self, order: Order) -> OrderRequest:
        """qfexbot's order as this venue's; ``ActionError`` for a combination the venue does
        not have."""

    def cancel(self, *, symbol: str, order_id: str) -> OrderRequest:
        """A cancel by venue order id; ``ActionError`` for an id the venue cannot have."""

    async def send(self, session: Any, request: OrderRequest) -> None:
        """Send an order or cancel on the account's session (from :meth:`private_session`)."""

    # -- more order actions: mapped like order/cancel, then journaled and sent -------------
    def modify(self, change: OrderChange) -> OrderRequest:
        """A change of a resting order's price, quantity, take-profit or stop-loss."""

    def stop_order(self, stop: StopOrder) -> OrderRequest:
        """A resting stop order (take-profit, stop-loss, stop-market)."""

    def modify_stop(self, change: StopChange) -> OrderRequest:
        """A new trigger price and quantity for a resting stop order."""

    def cancel_stop(self, cancel: StopCancel) -> OrderRequest:
        """A cancel of one stop order."""

    def twap(self, twap: TwapOrder) -> OrderRequest:
        """A TWAP; its progress arrives as ``TwapEvent`` s."""

    def cancel_twap(self, cancel: TwapCancel) -> OrderRequest:
        """A cancel of one TWAP by venue or client id."""

    def close_position(self, close: ClosePosition) -> OrderRequest:
        """A market order closing the whole position in a symbol."""

    def cancel_all(self, cancel: CancelAll) -> OrderRequest:
        """A cancel of every open order of the account the request is sent for."""

    # -- account reads over the account's session ----------------------------------------
    async def open_orders(self, session: Any, symbol: str | None = None) -> OpenOrders:
        """Open orders, active TWAPs and stop orders of the session's account."""

    async def get_order(
        self, session: Any, *, symbol: str, order_id: str
    ) -> OrderUpdateEvent | None:
        """One order's current state (open or finished); None if the venue has no such order."""

    async def leverage(self, session: Any) -> list[LeverageLevel]:
        """The account's current leverage per symbol."""

    async def leverage_levels(self, session: Any) -> list[LeverageLevel]:
        """Every leverage the venue allows, per symbol, with its margins and notional cap."""

    async def set_leverage(self, session: Any, *, symbol: str, leverage: Decimal) -> None:
        """Set the account's leverage in ``symbol``; waits for the venue's answer."""

    async def find_order(self, account_id: str, client_order_id: str) -> OrderUpdateEvent | None:
        """The venue's state of the order sent with ``client_order_id`` (open or finished),
        None if it has none (never received); ``ActionUnavailable`` if it cannot tell now.
        Used to reconcile orders whose outcome is unknown."""

    # -- account history and market history (REST) ---------------------------------------
    async def trades(self, account_id: str, query: HistoryQuery) -> list[UserTrade]:
        """The account's executions, newest first."""

    async def order_history(self, account_id: str, query: HistoryQuery) -> list[HistoricOrder]:
        """The account's finished orders, newest first."""

    async def twap_history(self, account_id: str, query: HistoryQuery) -> list[TwapInfo]:
        """The account's finished TWAPs, newest first."""

    async def fees(self, account_id: str) -> dict[str, FeeRate]:
        """The account's maker and taker fee rates per symbol."""

    async def candles(
        self, symbol: str, *, resolution: str, start: float, end: float
    ) -> list[Candle]:
        """Candles of ``symbol`` between two Unix times, oldest first."""

    async def funding_history(
        self, symbol: str, *, interval_minutes: int, start: float, end: float
    ) -> list[FundingRatePoint]:
        """Funding rates of ``symbol`` per window, oldest first."""

    async def open_interest_history(
        self, symbol: str, *, interval_minutes: int, start: float, end: float
    ) -> list[OpenInterestPoint]:
        """Open interest of ``symbol`` per window, oldest first."""

    async def aclose(self) -> None:
        """Release the REST client."""


class TransferVenue(Venue, Protocol):
    """A venue that moves money between its accounts (its adapter's ``transfer_refusal`` is
    None): the transfer service's sender and balance reader."""

    async def transfer(self, src: str, dst: str, amount: Decimal) -> None:
        """Send one transfer request; a failure raises a ``VenueError`` that
        :meth:`transfer_outcome` classifies.

        A venue that can find its own requests again also has ``async find_sent(entry_id) ->
        bool | None`` (``qfexbot.money.transfers.FindSent``): it is then called as
        ``transfer(src, dst, amount, entry_id)``, tags the request with the journal entry id,
        and is reconciled from its own state instead of balances (Finery settlements)."""

    def transfer_outcome(self, exc: BaseException) -> TransferOutcome | None:
        """How the failed :meth:`transfer` that raised ``exc`` ended (None: not a venue answer,
        let it propagate)."""

    async def balance(self, account_id: str) -> BalanceEvent:
        """A fresh read of one account's balance (available and deposit), for policy and
        reconciliation; ``ActionError`` if the venue reports none."""


class ReplayDriver(Protocol):
    """Parses one recorded connection again (``qfexbot.ops.replay``)."""

    def parse(self, frame: str | bytes, now: float) -> list[Any]:
        """A recorded frame -> events and control messages; raises :class:`ParseError`."""

    def route(self, event: Event) -> tuple[str, str]:
        """The (channel, symbol) a public-feed event is fanned out by."""

    async def resync(self, body: Any, now: float) -> Sequence[Event]:
        """The events a live session publishes for a recorded REST snapshot ``body``."""


class VenueAdapter(Protocol):
    """What a venue kind gives the runtime (``<package>.adapter.ADAPTER``)."""

    kind: str
    transfer_refusal: str | None
    """None if the venue moves money with transfers (its venues are :class:`TransferVenue`);
    otherwise why it has none, journaled as the refusal of every ``ctx.transfer``."""
    simulator: str | None
    """Import path of the module whose ``start_embedded`` runs this kind's simulator in-process
    (for ``simulator = true`` tables); None if the kind has none."""

    def open(
        self, config: VenueSettings, credentials: CredentialsLike, endpoints: Any = None
    ) -> Venue:
        """Open the venue of one table (REST client made, nothing connected yet).

        ``endpoints`` are the URLs the embedded simulator serves on (what its ``serve`` gave
        ``task_status.started``), or None for the table's own.
        """

    def replay_driver(
        self, config: VenueSettings, account_id: str, channel: str
    ) -> ReplayDriver | None:
        """The driver that replays a recorded connection of ``config`` (``channel`` is
        ``"trade"`` for an account's session, ``"mds"`` for the public feed), or None if this
        kind is not replayed."""


class VenueRules(Protocol):
    """How a ``[venues.X]`` table of one kind is read: a venue package's ``config.RULES``.

    Everything else in the table (keys, TLS rule, credentials as references, accounts table,
    session) is the same for every kind; these are the parts that differ. Plain class attributes
    implement the read-only members. Two are optional (read with ``getattr``):
    ``candle_intervals``, the resolutions of a ``candle`` channel, and ``flags``, a mapping of
    boolean keys of the kind's own (e.g. ``cancel_on_disconnect``) to their defaults, which the
    table may set and any other kind's table refuses.
    """

    @property
    def kind(self) -> str:
        """The ``kind = "..."`` value this venue is selected with."""
        ...

    @property
    def default_urls(self) -> Mapping[str, str]:
        """``trade_url``, ``mds_url`` and ``rest_url`` used when the table does not give them."""
        ...

    @property
    def single_socket(self) -> bool:
        """True when one WebSocket (``trade_url``) carries market data too: ``mds_url`` is then
        not configurable and equals ``trade_url``."""
        ...

    @property
    def credentials(self) -> Collection[str]:
        """Which of ``public_key``, ``secret``, ``jwt`` the venue authenticates with."""
        ...

    @property
    def credential_hint(self) -> str:
        """Said after a credential key the venue does not take, e.g. "use public_key and secret"."""
        ...

    @property
    def private_channels(self) -> Collection[str]:
        """The ``PRIVATE_CHANNELS`` this venue has."""
        ...

    @property
    def market_data_channels(self) -> Collection[str]:
        """The market-data channel names a bot may ask for on this venue: its own vocabulary
        (names it shares with other venues mean the same there, e.g. ``level2``)."""
        ...

    @property
    def sim_keys(self) -> Collection[str]:
        """The ``[venues.X.sim]`` keys its embedded simulator reads, of ``pulse_interval``,
        ``seed``, ``deposits`` and ``symbols``."""
        ...

    @property
    def user_id_expected(self) -> str:
        """What a bad ``user_id`` should have been, e.g. "an account UUID (...)"."""
        ...

    @property
    def user_id_missing(self) -> str:
        """What a missing ``user_id`` is, e.g. "the primary account UUID, which is the user id"."""
        ...

    @property
    def account_noun(self) -> str:
        """One account id in ``a table of alias = <noun> or "primary"``, e.g. "account UUID"."""
        ...

    @property
    def account_expected(self) -> str:
        """What a bad account id should have been: ``<this> or "primary"``."""
        ...

    def account_id(self, value: Any) -> str | None:
        """``value`` (a TOML value of ``user_id`` or an account) as the venue's account id text,
        or None if it is not one."""
        ...
