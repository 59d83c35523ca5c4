"""QFEX connection steps (auth, subscribe, resync, parse) for the session supervisor.

:class:`QfexTradeDriver` is what :class:`qfexbot.core.session.Supervisor` runs for one account's
trade socket; :class:`QfexMarketDataDriver` is the public feed's part;
``qfexbot.venues.qfex.adapter`` builds sessions from them.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from qfexbot.core.logs import get_logger, log_event
from qfexbot.core.secrets import Secret
from qfexbot.core.venue import AuthRejected, FrameConnection
from qfexbot.core.wire import WireClosed
from qfexbot.errors import ActionRejected, ActionUnavailable, VenueError
from qfexbot.events import (
    BookEvent,
    CandleEvent,
    Event,
    FundingPaymentEvent,
    FundingRateEvent,
    MarkPriceEvent,
    OrderUpdateEvent,
    PositionEvent,
    PriceBandEvent,
    TradeEvent,
)
from qfexbot.venues.qfex.auth import ws_auth_message, ws_jwt_auth_message
from qfexbot.venues.qfex.parse import (
    Ack,
    AuthResult,
    Control,
    ErrorFrame,
    LeverageLevels,
    OrdersSnapshot,
    Reply,
    Subscribed,
    TradesSnapshot,
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
    "ReplyWaiters",
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


def incoming_type(incoming: Any) -> str:
    """The ``type`` of the command an ``err`` or ``ack`` echoes (``incoming_message`` is an
    object, or the request's text when the venue could not read it as one); "" if none."""
    if isinstance(incoming, str):
        try:
            incoming = json.loads(incoming)
        except ValueError:
            return ""
    if isinstance(incoming, dict):
        kind = incoming.get("type")
        return kind if isinstance(kind, str) else ""
    return ""


@dataclass(eq=False)
class _Waiter:
    key: str
    command: str
    match: Callable[[Any], bool] | None
    seq: int
    done: trio.Event = field(default_factory=trio.Event)
    result: Any = None
    error: BaseException | None = None
    abandoned_at: float | None = None


class ReplyWaiters:
    """Socket queries waiting for their replies, oldest first per reply key.

    QFEX replies carry no correlation id but come in the order the commands were sent, so the
    oldest waiter of a reply key (whose ``match``, if any, accepts the reply) gets the next
    reply of that key; an ``err`` fails the oldest waiter whose command it echoes; a new
    connection fails them all. A waiter that timed out stays queued for ``keep_abandoned``
    seconds so that its late reply is absorbed instead of answering the next query.
    """

    def __init__(self, *, keep_abandoned: float = 30.0) -> None:
        self._queues: dict[str, deque[_Waiter]] = {}
        self._keep_abandoned = keep_abandoned
        self._sent = 0

    def __len__(self) -> int:
        return sum(1 for q in self._queues.values() for w in q if w.abandoned_at is None)

    def pending(self, key: str) -> bool:
        """Whether a waiter (abandoned or not) is queued for ``key``: a cheap check."""
        return bool(self._queues.get(key))

    def add(self, key: str, command: str, match: Callable[[Any], bool] | None = None) -> _Waiter:
        """Queue a waiter for the next ``key`` reply to ``command`` (call before sending)."""
        self._prune()
        self._sent += 1
        waiter = _Waiter(key, command, match, self._sent)
        self._queues.setdefault(key, deque()).append(waiter)
        return waiter

    def discard(self, waiter: _Waiter) -> None:
        """Forget a waiter whose command was never sent."""
        queue = self._queues.get(waiter.key)
        if queue is not None and waiter in queue:
            queue.remove(waiter)

    def resolve(self, key: str, reply: Any) -> bool:
        """Hand ``reply`` to the oldest matching waiter of ``key``; False if none wanted it."""
        queue = self._queues.get(key)
        if not queue:
            return False
        for waiter in queue:
            if waiter.match is None or waiter.match(reply):
                queue.remove(waiter)
                waiter.result = reply
                waiter.done.set()
                return True
        return False

    def fail_command(self, command: str, error: BaseException) -> bool:
        """Fail the oldest waiter (of any key) whose command is ``command``."""
        candidates = [
            next((w for w in queue if w.command == command), None)
            for queue in self._queues.values()
        ]
        oldest = min((w for w in candidates if w is not None), key=lambda w: w.seq, default=None)
        if oldest is None:
            return False
        self.discard(oldest)
        oldest.error = error
        oldest.done.set()
        return True

    def fail_all(self, error: BaseException) -> None:
        """Fail every waiter (the connection they were sent on is gone)."""
        queues, self._queues = self._queues, {}
        for queue in queues.values():
            for waiter in queue:
                waiter.error = error
                waiter.done.set()

    async def wait(self, waiter: _Waiter, timeout: float) -> Any:  # noqa: ASYNC109
        """The waiter's reply; ``ActionUnavailable`` after ``timeout`` s or when failed."""
        with trio.move_on_after(timeout):
            await waiter.done.wait()
        if not waiter.done.is_set():
            waiter.abandoned_at = trio.current_time()
            raise ActionUnavailable(f"no {waiter.key} reply to {waiter.command} in {timeout:g}s")
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    def _prune(self) -> None:
        horizon = trio.current_time() - self._keep_abandoned
        for queue in self._queues.values():
            stale = [w for w in queue if w.abandoned_at is not None and w.abandoned_at < horizon]
            for waiter in stale:
                queue.remove(waiter)


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
        self.waiters = ReplyWaiters()
        self._funding: dict[str, PositionEvent] = {}
        """The last position seen per symbol on this connection: funding payments are its
        ``net_funding`` changes (QFEX sends no payment message)."""

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

    async def request(
        self,
        session: Any,
        message: Mapping[str, Any],
        reply_key: str,
        *,
        timeout: float,  # noqa: ASYNC109
        match: Callable[[Any], bool] | None = None,
    ) -> Any:
        """Send a query on ``session`` (this driver's supervisor) and return its reply.

        ``reply_key`` is the reply's message key (``all_orders_response``, ``ack``, ...);
        ``match`` narrows which reply of that key answers it (e.g. the asked order id).

        Raises:
          ActionRejected: the venue answered ``err`` to this command (``code`` = its code).
          ActionUnavailable: not live, no reply within ``timeout`` s, or the connection was
            replaced before the reply came.
        """
        waiter = self.waiters.add(reply_key, str(message.get("type", "")), match)
        try:
            await session.send(message)
        except BaseException:
            self.waiters.discard(waiter)
            raise
        return await self.waiters.wait(waiter, timeout)

    async def authenticate(self, conn: FrameConnection) -> None:
        # A new connection: replies to queries sent on the old one will never come, and the
        # funding baseline is re-read with the snapshot.
        self.waiters.fail_all(
            ActionUnavailable(f"{self.venue} session for {self.account_id} reconnected")
        )
        self._funding = {}
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
        except WireClosed as exc:
            if exc.code == _AUTH_CLOSE_CODE:
                raise AuthRejected(
                    f"connection closed during auth (code 1008, {exc.reason or 'policy'})"
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
        # The snapshot is the new funding baseline: what was paid while disconnected is in
        # it, not reported as a payment (it could not be told apart from one already seen).
        self._funding = {p.symbol: p for p in snapshot.positions}
        events: list[Event] = [snapshot]
        if snapshot.balance is not None:
            events.append(snapshot.balance)
        events.extend(snapshot.positions)
        return events

    def parse(self, frame: str | bytes, now: float) -> list[Any]:
        items = parse_trade_frame(frame, self.venue, self.account_id, now)
        if self.waiters.pending("order_response"):
            # A get_order reply is an order_response: it answers the query, not the bus.
            items = [i for i in items if not self._answers_get_order(i)]
        if any(type(i) is PositionEvent for i in items):
            items = self._with_funding(items)
        return items

    def _answers_get_order(self, item: Any) -> bool:
        return type(item) is OrderUpdateEvent and self.waiters.resolve("order_response", item)

    def _with_funding(self, items: list[Any]) -> list[Any]:
        """Each position followed by the funding payment its ``net_funding`` change shows.

        Only a change on a position open before and after counts: a venue may reset the
        cumulative figure when a position is closed or reopened, which is no payment.
        """
        out: list[Any] = []
        for item in items:
            out.append(item)
            if type(item) is not PositionEvent:
                continue
            before = self._funding.get(item.symbol)
            self._funding[item.symbol] = item
            if before is None or before.size == 0 or item.size == 0:
                continue
            amount = item.net_funding - before.net_funding
            if amount:
                out.append(
                    FundingPaymentEvent(
                        venue=item.venue,
                        account_id=item.account_id,
                        received_at=item.received_at,
                        symbol=item.symbol,
                        amount=amount,
                        net_funding=item.net_funding,
                    )
                )
        return out

    async def on_control(self, item: Any) -> None:
        key = _reply_key(item)
        if key is not None and self.waiters.resolve(key, item):
            return
        if isinstance(item, ErrorFrame) and self.waiters.fail_command(
            incoming_type(item.incoming),
            ActionRejected(f"venue error {item.code}: {item.message}", code=item.code),
        ):
            return
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


_REPLY_KEYS: dict[type, str] = {
    OrdersSnapshot: "all_orders_response",
    TradesSnapshot: "user_trades_response",
    Ack: "ack",
}


def _reply_key(item: Any) -> str | None:
    """The message key a control item was parsed from, as the waiters are keyed."""
    key = _REPLY_KEYS.get(type(item))
    if key is None and isinstance(item, LeverageLevels):
        return item.reply
    if key is None and isinstance(item, Reply):
        return item.kind
    return key


_ROUTE_CHANNEL: dict[type, str] = {
    TradeEvent: "trade",
    MarkPriceEvent: "mark_price",
    FundingRateEvent: "funding",
    PriceBandEvent: "minmax_price",
}


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

    @classmethod
    def _messages(cls, op: str, pairs: Iterable[tuple[str, str]]) -> list[Mapping[str, Any]]:
        """One message per channel; candle pairs (``"AAPL-USD/1MIN"``) one per interval, with
        the ``intervals`` the venue requires."""
        messages: list[Mapping[str, Any]] = []
        for channel, symbols in cls._by_channel(pairs).items():
            if channel != "candle":
                messages.append({"type": op, "channels": [channel], "symbols": symbols})
                continue
            by_interval: dict[str, list[str]] = {}
            for pair in symbols:
                symbol, _, interval = pair.partition("/")
                by_interval.setdefault(interval or "1MIN", []).append(symbol)
            messages.extend(
                {"type": op, "channels": ["candle"], "symbols": names, "intervals": [interval]}
                for interval, names in by_interval.items()
            )
        return messages

    def subscribe_messages(self, pairs: Iterable[tuple[str, str]]) -> list[Mapping[str, Any]]:
        return self._messages("subscribe", pairs)

    def unsubscribe_messages(self, pairs: Iterable[tuple[str, str]]) -> list[Mapping[str, Any]]:
        return self._messages("unsubscribe", pairs)

    def parse(self, frame: str | bytes, now: float) -> list[Event]:
        return parse_mds_frame(frame, self.venue, now)

    def route(self, event: Event) -> tuple[str, str]:
        if type(event) is BookEvent:
            return event.channel, event.symbol
        if type(event) is CandleEvent:
            return "candle", f"{event.symbol}/{event.resolution}"
        return _ROUTE_CHANNEL.get(type(event), event.kind), getattr(event, "symbol", "")

    def encode(self, message: Mapping[str, Any]) -> str:
        return encode_json(message)
