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
from typing import Any, Protocol

from qfexbot.errors import VenueError
from qfexbot.events import BalanceEvent, ConnectionState, Event, ResyncEvent

__all__ = [
    "AuthRejected",
    "CredentialsLike",
    "FrameConnection",
    "MarketDataDriver",
    "MarketDataFeed",
    "Order",
    "OrderRequest",
    "ParseError",
    "PrivateSession",
    "Publish",
    "ReplayDriver",
    "SessionDriver",
    "SessionSettingsLike",
    "TransferOutcome",
    "TransferVenue",
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

    async def aclose(self) -> None:
        """Release the REST client."""


class TransferVenue(Venue, Protocol):
    """A venue that moves money between its accounts (its adapter's ``transfer_refusal`` is
    None): the transfer service's sender and balance reader."""

    async def transfer(self, src: str, dst: str, amount: Decimal) -> None:
        """Send one transfer request; a failure raises a ``VenueError`` that
        :meth:`transfer_outcome` classifies."""

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
    implement the read-only members.
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
        """The ``MARKET_DATA_CHANNELS`` this venue has."""
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
