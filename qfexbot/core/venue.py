"""What a venue adapter provides to the core: sessions, a public feed, REST, parsers, snapshots.

The core (``qfexbot.core.session``, runtime, actions) talks to venues only through these protocols.
A venue supplies *drivers*: the venue-specific steps of one connection (URL, auth, subscribe,
resync, parse). The supervisor in ``qfexbot.core.session`` runs them with reconnects, backoff, a
stale-stream watchdog and state events, so a new venue only writes the steps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from qfexbot.events import ConnectionState, Event, ResyncEvent

__all__ = [
    "AuthRejected",
    "FrameConnection",
    "MarketDataDriver",
    "MarketDataFeed",
    "ParseError",
    "PrivateSession",
    "Publish",
    "SessionDriver",
    "SessionSettingsLike",
    "VenueAdapter",
]

Publish = Callable[[Event], Awaitable[None]]
"""The caller's sink for events (e.g. the account's bus). It may block (back-pressure)."""

_PREVIEW = 300


def _preview(raw: Any) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    text = raw if isinstance(raw, str) else repr(raw)
    return text if len(text) <= _PREVIEW else f"{text[:_PREVIEW]}...({len(text)} chars)"


class ParseError(ValueError):
    """A frame or body that could not be parsed; ``raw`` is exactly what was received."""

    def __init__(self, raw: Any, reason: str) -> None:
        self.raw = raw
        self.reason = reason
        super().__init__(f"{reason}: {_preview(raw)}")

    @property
    def preview(self) -> str:
        """The raw frame as text, truncated for a log line."""
        return _preview(self.raw)


class AuthRejected(Exception):
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

    @property
    def state(self) -> ConnectionState: ...

    async def run(self, *, task_status: Any = ...) -> None: ...

    async def send(self, command: Mapping[str, Any]) -> None: ...


class MarketDataFeed(Protocol):
    """The shared public feed of a venue (see ``qfexbot.core.session.MarketDataSession``)."""

    async def subscribe(
        self, channels: Iterable[str], symbols: Iterable[str], publish: Publish
    ) -> None: ...

    async def unsubscribe(self, publish: Publish) -> None: ...

    async def run(self, *, task_status: Any = ...) -> None: ...


class VenueAdapter(Protocol):
    """One configured venue: its sessions, public feed, REST client, parsers and snapshots."""

    name: str
    rest: Any
    """The venue's REST client (``QfexRest`` for QFEX): transfers, snapshots, reference data."""

    def private_session(
        self, account_id: str, *, channels: Sequence[str], publish: Publish
    ) -> PrivateSession:
        """A new (not yet running) private session for one account."""

    def market_data(self) -> MarketDataFeed:
        """The venue's shared public feed (one per venue; run it once)."""

    def parse_private(self, frame: str | bytes, account_id: str, now: float) -> list[Any]: ...

    def parse_public(self, frame: str | bytes, now: float) -> list[Event]: ...

    async def snapshot(self, account_id: str) -> ResyncEvent:
        """Balance and positions of one account, read from REST now."""

    async def aclose(self) -> None:
        """Release the REST client."""
