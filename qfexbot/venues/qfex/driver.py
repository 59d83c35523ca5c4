"""QFEX connection steps (auth, subscribe, resync, parse) for the session supervisor.

:class:`QfexTradeDriver` is what :class:`qfexbot.core.session.Supervisor` runs for one account's
trade socket; :class:`QfexMarketDataDriver` is the public feed's part;
``qfexbot.venues.qfex.adapter`` builds sessions from them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from trio_websocket import ConnectionClosed

from qfexbot.core.logs import get_logger, log_event
from qfexbot.core.secrets import Secret
from qfexbot.core.venue import AuthRejected, FrameConnection
from qfexbot.errors import VenueError
from qfexbot.events import BookEvent, Event, MarkPriceEvent, TradeEvent
from qfexbot.venues.qfex.auth import ws_auth_message, ws_jwt_auth_message
from qfexbot.venues.qfex.parse import (
    AuthResult,
    Control,
    ErrorFrame,
    Subscribed,
    encode_json,
    parse_mds_frame,
    parse_trade_frame,
)
from qfexbot.venues.qfex.rest import QfexRest

__all__ = [
    "DEFAULT_CHANNELS",
    "TRADE_CHANNELS",
    "QfexMarketDataDriver",
    "QfexTradeDriver",
    "StepFailed",
]

log = get_logger(__name__)

TRADE_CHANNELS = frozenset({"order_responses", "stop_orders", "fills", "positions", "balances"})
DEFAULT_CHANNELS = ("balances", "positions", "order_responses", "fills")
_TRANSIENT_ERRORS = frozenset({"ServerError", "RateLimited"})
_AUTH_CLOSE_CODE = 1008

OnControl = Callable[[Control], Awaitable[None]]


class StepFailed(VenueError):
    """A handshake step failed for a reason that a reconnect may fix (not credentials)."""

    retryable = True


class QfexTradeDriver:
    """Steps of one QFEX trade-socket connection for one account.

    HMAC (``public_key`` + ``secret``) or ``jwt``; the ``auth`` message carries
    ``account_id`` unless the account is the primary one (``account_id == user_id``).
    ``rearm`` commands (e.g. ``cancel_on_disconnect``) are re-sent on every connection after
    subscribing, because the venue forgets them on disconnect.
    """

    authenticates = True
    resyncs = True
    watch_stale = True

    def __init__(
        self,
        *,
        url: str,
        venue: str,
        account_id: str,
        user_id: str,
        rest: QfexRest,
        channels: Sequence[str] = DEFAULT_CHANNELS,
        public_key: str | Secret | None = None,
        secret: Secret | None = None,
        jwt: Secret | None = None,
        rearm: Sequence[Mapping[str, Any]] = (),
        on_control: OnControl | None = None,
    ) -> None:
        unknown = [c for c in channels if c not in TRADE_CHANNELS]
        if unknown:
            raise ValueError(
                f"unknown QFEX trade channels {unknown}; known: {sorted(TRADE_CHANNELS)}"
            )
        if not channels:
            raise ValueError("a trade session needs at least one channel")
        if jwt is None and (public_key is None or secret is None):
            raise ValueError("QFEX trade session needs public_key and secret, or jwt")
        self.url = url
        self.venue = venue
        self.account_id = account_id
        self.user_id = user_id
        self.channels = tuple(dict.fromkeys(channels))
        self._rest = rest
        self._public_key = public_key
        self._secret = secret
        self._jwt = jwt
        self._rearm = tuple(rearm)
        self._on_control = on_control

    def __repr__(self) -> str:
        return f"QfexTradeDriver(venue={self.venue!r}, account_id={self.account_id!r})"

    def handshake_headers(self) -> list[tuple[bytes, bytes]]:
        return []  # QFEX authenticates with the auth message only

    def _auth_message(self) -> dict[str, Any]:
        bind = None if self.account_id == self.user_id else self.account_id
        if self._jwt is not None:
            return ws_jwt_auth_message(self._jwt, bind)
        assert self._public_key is not None and self._secret is not None
        return ws_auth_message(self._public_key, self._secret, bind)

    async def authenticate(self, conn: FrameConnection) -> None:
        await conn.send(self._auth_message())  # fresh nonce and timestamp every time
        try:
            while True:
                for item in await conn.receive():
                    if isinstance(item, AuthResult):
                        if item.ok:
                            return
                        raise AuthRejected("venue replied authenticated=false")
                    if isinstance(item, ErrorFrame):
                        # Never echo incoming_message: it is our auth message.
                        text = f"venue error {item.code}: {item.message}"
                        if item.code in _TRANSIENT_ERRORS:
                            raise StepFailed(f"auth not processed ({text})")
                        raise AuthRejected(text)
        except ConnectionClosed as exc:
            if exc.reason.code == _AUTH_CLOSE_CODE:
                raise AuthRejected(
                    f"connection closed during auth (code 1008, {exc.reason.reason or 'policy'})"
                ) from None
            raise

    async def subscribe(self, conn: FrameConnection) -> None:
        await conn.send({"type": "subscribe", "params": {"channels": list(self.channels)}})
        pending = set(self.channels)
        while pending:
            for item in await conn.receive():
                if isinstance(item, Subscribed):
                    pending.discard(item.channel)
                elif isinstance(item, ErrorFrame):
                    raise StepFailed(f"subscribe refused: {item.code}: {item.message}")
        for command in self._rearm:
            await conn.send(command)

    async def resync(self, conn: FrameConnection) -> Sequence[Event]:
        snapshot = await self._rest.positions(self.account_id)
        events: list[Event] = [snapshot]
        if snapshot.balance is not None:
            events.append(snapshot.balance)
        events.extend(snapshot.positions)
        return events

    def parse(self, frame: str | bytes, now: float) -> list[Any]:
        return parse_trade_frame(frame, self.venue, self.account_id, now)

    async def on_control(self, item: Any) -> None:
        if isinstance(item, ErrorFrame):
            log_event(
                log,
                logging.WARNING,
                "venue error frame",
                code=item.code,
                message=item.message,
                command=item.incoming_type,
            )
        else:
            log_event(log, logging.DEBUG, "control message", item=type(item).__name__)
        if self._on_control is not None:
            await self._on_control(item)

    def encode(self, message: Mapping[str, Any]) -> str:
        return encode_json(message)

    def command_name(self, message: Mapping[str, Any]) -> str | None:
        """A QFEX command is named by its ``type``."""
        return message.get("type")


_ROUTE_CHANNEL: dict[type, str] = {TradeEvent: "trade", MarkPriceEvent: "mark_price"}


class QfexMarketDataDriver:
    """The QFEX public feed: top-level ``channels``/``symbols`` subscribe messages, no acks."""

    pulsed_channels = frozenset({"level2", "bbo", "market_stats"})

    def __init__(self, *, url: str, venue: str) -> None:
        self.url = url
        self.venue = venue

    def handshake_headers(self) -> list[tuple[bytes, bytes]]:
        return []

    @staticmethod
    def _by_channel(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for channel, symbol in pairs:
            grouped.setdefault(channel, []).append(symbol)
        return grouped

    def subscribe_messages(self, pairs: Iterable[tuple[str, str]]) -> list[Mapping[str, Any]]:
        return [
            {"type": "subscribe", "channels": [channel], "symbols": symbols}
            for channel, symbols in self._by_channel(pairs).items()
        ]

    def unsubscribe_messages(self, pairs: Iterable[tuple[str, str]]) -> list[Mapping[str, Any]]:
        return [
            {"type": "unsubscribe", "channels": [channel], "symbols": symbols}
            for channel, symbols in self._by_channel(pairs).items()
        ]

    def parse(self, frame: str | bytes, now: float) -> list[Event]:
        return parse_mds_frame(frame, self.venue, now)

    def route(self, event: Event) -> tuple[str, str]:
        if type(event) is BookEvent:
            return event.channel, event.symbol
        return _ROUTE_CHANNEL.get(type(event), event.kind), getattr(event, "symbol", "")

    def encode(self, message: Mapping[str, Any]) -> str:
        return encode_json(message)
