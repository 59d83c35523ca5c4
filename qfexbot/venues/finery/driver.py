"""Finery WebSocket client: a driver for the supervised session, requests with ``reqId``, keepalive.

:class:`FineryDriver` implements ``qfexbot.core.venue.SessionDriver`` for one Finery API key:
auth headers on the upgrade, AUTHENTICATING = waiting for ``['X',0,'Z',0]``, SUBSCRIBING = bind
and wait for each snapshot, RESYNCING = the ``positions`` request. While LIVE a non-zero status
loses every binding and the next zero status re-binds them. :class:`FineryWsClient` puts the
driver under ``qfexbot.core.session.Supervisor`` (reconnect, backoff, state events), sends a
keepalive inside the venue's 80 s idle limit and offers the API methods over the socket.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import trio

from qfexbot.core.logs import get_logger, log_event
from qfexbot.core.secrets import Secret
from qfexbot.core.session import SessionNotLive, Supervisor
from qfexbot.core.venue import FrameConnection, Publish, SessionSettingsLike
from qfexbot.events import ConnectionState, Event, OrderUpdateEvent, PositionEvent, ResyncEvent
from qfexbot.venues.finery.auth import NonceSource, ws_auth_headers
from qfexbot.venues.finery.methods import FineryMethods
from qfexbot.venues.finery.parse import (
    Bound,
    FeedError,
    FineryError,
    FineryParser,
    RequestReply,
    StatusMessage,
    error_message,
    feed_key,
)

__all__ = ["DEFAULT_FEEDS", "FineryDriver", "FineryWsClient", "rejection_reason"]

log = get_logger(__name__)

DEFAULT_FEEDS: tuple[tuple[str, Any], ...] = (("O", None), ("K", None), ("L", None))
"""Account feeds bound by default: own orders and deals, positions, counterparty limits."""

_PERMANENT_BIND_ERRORS = frozenset({1, 3, 102, 103})
"""Bind errors a reconnect cannot fix: not implemented (a venue without that feed), not
authorised, invalid feed name or id. The feed is dropped with an error log."""

Send = Callable[[Mapping[str, Any]], Awaitable[None]]


def rejection_reason(status_code: int, body: bytes | None) -> str:
    """Operator text for a refused upgrade (HTTP status plus the Finery error in the body)."""
    code = None
    try:
        parsed = json.loads(body or b"")
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), int):
            code = parsed["error"]
    except ValueError:
        pass
    if code is None:
        return f"handshake refused with HTTP {status_code}"
    return f"handshake refused with HTTP {status_code}: {error_message(code)} (error {code})"


def _bind_message(event: str, feed: str, feed_id: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"event": event, "feed": feed}
    if feed_id is not None:
        message["feedId"] = feed_id
    return message


class FineryDriver:
    """The Finery steps of one supervised connection (see ``qfexbot.core.venue.SessionDriver``).

    Args:
        url: the WebSocket URL (``wss://trade.finerymarkets.com/ws`` or the simulator's).
        key, secret: the API key pair; the secret only signs ``EFX-Content``.
        venue, account_id: stamped on events (account id = the Finery client id as text).
        feeds: ``(feed, feedId or None)`` pairs to keep bound.
        nonces: nonce source (share one per key within the process).
        request_timeout: seconds to wait for a request's reply.
    """

    authenticates = True
    resyncs = True
    watch_stale = False  # the venue sends nothing on a quiet account; keepalive is ours

    def __init__(
        self,
        url: str,
        key: str,
        secret: Secret,
        *,
        venue: str,
        account_id: str,
        feeds: Iterable[tuple[str, Any]] = DEFAULT_FEEDS,
        nonces: NonceSource | None = None,
        request_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self._key = key
        self._secret = secret
        self._nonces = nonces or NonceSource()
        self.parser = FineryParser(venue, account_id)
        self.request_timeout = request_timeout
        self.bindings: list[tuple[str, Any]] = []
        for feed, feed_id in feeds:
            self.add_binding(feed, feed_id)
        self.bindings_lost = False
        self._send: Send | None = None
        self._req_ids = itertools.count(1)
        self._pending: dict[int, tuple[trio.Event, list[RequestReply]]] = {}

    def attach(self, send: Send) -> None:
        """Give the driver the live socket's sender (``Supervisor.send``)."""
        self._send = send

    def add_binding(self, feed: str, feed_id: Any = None) -> bool:
        """Remember a binding (re-bound after every reconnect); False if already present."""
        key = (feed, feed_key(feed_id))
        if any((f, feed_key(i)) == key for f, i in self.bindings):
            return False
        self.bindings.append((feed, feed_id))
        return True

    def remove_binding(self, feed: str, feed_id: Any = None) -> bool:
        """Forget a binding; False if it was not present."""
        key = (feed, feed_key(feed_id))
        before = len(self.bindings)
        self.bindings = [(f, i) for f, i in self.bindings if (f, feed_key(i)) != key]
        return len(self.bindings) != before

    # ---------------------------------------------------------------- supervisor steps

    def handshake_headers(self) -> list[tuple[bytes, bytes]]:
        """Fresh ``EFX-Key``/``EFX-Content``/``EFX-Sign`` for this connection attempt."""
        return ws_auth_headers(self._key, self._secret, self._nonces)

    async def authenticate(self, conn: FrameConnection) -> None:
        """The headers were accepted (101); wait for ``['X',0,'Z',0]`` before sending."""
        self.parser.reset()
        self.bindings_lost = False
        while True:
            for item in await conn.receive():
                if isinstance(item, StatusMessage):
                    if item.connected:
                        return
                    log_event(
                        log,
                        logging.WARNING,
                        "finery backend not connected",
                        code=item.code,
                        detail=item.message,
                    )

    async def subscribe(self, conn: FrameConnection) -> None:
        """Bind every feed and wait for each snapshot (the venue's only bind ack)."""
        waiting = {}
        for feed, feed_id in self.bindings:
            await conn.send(_bind_message("bind", feed, feed_id))
            waiting[(feed, feed_key(0 if feed_id is None else feed_id))] = (feed, feed_id)
        while waiting:
            for item in await conn.receive():
                if isinstance(item, StatusMessage) and not item.connected:
                    raise FineryError(item.code, method="bind")
                if not isinstance(item, (Bound, FeedError)):
                    continue
                entry = waiting.pop((item.feed, feed_key(item.feed_id)), None)
                if entry is None or isinstance(item, Bound) or item.code == 100:
                    continue
                if item.code == 1:
                    # The venue (e.g. a simulator) has no such feed: its events never come.
                    log_event(log, logging.WARNING, "finery feed not available; not bound",
                              feed=item.feed, detail=item.message)  # fmt: skip
                    self.remove_binding(*entry)
                elif item.code in _PERMANENT_BIND_ERRORS:
                    log_event(
                        log, logging.ERROR, "finery bind refused; feed dropped", detail=item.message
                    )
                    self.remove_binding(*entry)
                else:
                    raise FineryError(item.code, method=f"bind {item.feed}")

    async def resync(self, conn: FrameConnection) -> Sequence[Event]:
        """Read ``positions`` over the socket: net positions and open orders; with the ``N``
        feed bound also ``settlementTransactions``, so the open settlements are published (as
        ``SettlementEvent`` snapshots) before LIVE, not only with the feed's snapshot after."""
        events: list[Event] = [self.resync_event(await self._resync_request(conn, "positions"))]
        if any(feed == "N" for feed, _ in self.bindings):
            reply = await self._resync_request(conn, "settlementTransactions")
            events += self.parser.settlement_reply("settlementTransactions", reply)
        return events

    async def _resync_request(self, conn: FrameConnection, method: str) -> Any:
        req_id = next(self._req_ids)
        await conn.send({"event": "request", "reqId": req_id, "method": method})
        while True:
            for item in await conn.receive():
                if isinstance(item, RequestReply) and item.req_id == req_id:
                    if item.error:
                        raise FineryError(item.error, method=method, param=item.param)
                    return item.reply

    def resync_event(self, reply: Any, now: float | None = None) -> ResyncEvent:
        """A ``positions`` reply as the venue-neutral :class:`ResyncEvent` (received ``now``,
        default the clock; a replay passes the recorded time)."""
        if not isinstance(reply, list) or len(reply) < 3:
            raise FineryError(10, method="positions", detail=reply)
        parser = self.parser
        positions = [
            e
            for e in parser.interpret(["K", 0, "S", reply[1]], now)
            if isinstance(e, PositionEvent)
        ]
        orders = [
            e
            for e in parser.interpret(["O", 0, "S", reply[2]], now)
            if isinstance(e, OrderUpdateEvent)
        ]
        now = parser._clock_now()
        return ResyncEvent(
            venue=parser.venue,
            account_id=parser.account_id,
            received_at=now,
            raw=reply,
            balance=None,
            positions=tuple(positions),
            open_orders=tuple(orders),
        )

    def parse(self, frame: str | bytes, now: float) -> list[Any]:
        return self.parser.parse(frame, now)

    def encode(self, message: Mapping[str, Any]) -> str:
        return json.dumps(message, separators=(",", ":"))

    def command_name(self, message: Mapping[str, Any]) -> str | None:
        """A Finery request is named by its ``method`` (a binding by its ``event``)."""
        return message.get("method") or message.get("event")

    async def on_control(self, item: Any) -> None:
        """Replies resolve requests; a status change loses or restores the bindings."""
        if isinstance(item, RequestReply):
            pending = self._pending.get(item.req_id) if item.req_id is not None else None
            if pending is not None:
                pending[1].append(item)
                pending[0].set()
            elif item.error:
                log_event(
                    log,
                    logging.WARNING,
                    "finery error reply",
                    code=item.error,
                    detail=error_message(item.error),
                )
        elif isinstance(item, StatusMessage):
            if not item.connected:
                if not self.bindings_lost:
                    log_event(
                        log,
                        logging.WARNING,
                        "finery backend disconnected; bindings lost",
                        code=item.code,
                        detail=item.message,
                    )
                self.bindings_lost = True
                self.parser.reset()
            elif self.bindings_lost:
                self.bindings_lost = False
                log_event(
                    log, logging.INFO, "finery backend back; re-binding", feeds=len(self.bindings)
                )
                await self._rebind()
        elif isinstance(item, FeedError):
            log_event(log, logging.WARNING, "finery feed error", detail=item.message)

    async def _rebind(self) -> None:
        if self._send is None:
            return
        for feed, feed_id in self.bindings:
            await self._send(_bind_message("bind", feed, feed_id))

    async def send_bind(self, event: str, feed: str, feed_id: Any) -> None:
        """Send a bind or unbind on the live socket."""
        if self._send is None:
            raise SessionNotLive("no live socket attached")
        await self._send(_bind_message(event, feed, feed_id))

    async def request(self, method: str, content: Mapping[str, Any] | None = None) -> Any:
        """Send ``{"event":"request"}`` on the live socket and wait for the matching reply.

        Raises:
            SessionNotLive: no live socket.
            FineryError: the reply carries a non-zero error.
            trio.TooSlowError: no reply within ``request_timeout`` (the request may have been
                applied).
        """
        if self._send is None:
            raise SessionNotLive("no live socket attached")
        req_id = next(self._req_ids)
        message: dict[str, Any] = {"event": "request", "reqId": req_id, "method": method}
        if content:
            message["content"] = dict(content)
        done = trio.Event()
        slot: list[RequestReply] = []
        self._pending[req_id] = (done, slot)
        try:
            with trio.fail_after(self.request_timeout):
                await self._send(message)
                await done.wait()
        finally:
            del self._pending[req_id]
        reply = slot[0]
        if reply.error:
            raise FineryError(reply.error, method=method, param=reply.param, detail=reply.raw)
        return reply.reply


class FineryWsClient(FineryMethods):
    """A supervised Finery WebSocket session for one API key, with requests and keepalive.

    ``await nursery.start(client.run)``; events (and connection states) go to ``publish``.
    Requests (:meth:`call` and the :class:`FineryMethods` helpers) need the session LIVE.

    Args:
        url, key, secret, venue, account_id, feeds, nonces: as :class:`FineryDriver`.
        publish: the account's event sink.
        settings: session tunables (``qfexbot.config.SessionSettings`` fits).
        keepalive_interval: seconds between ``{"event":"ping"}`` messages (< 80 s idle limit).
        rng: random source for backoff jitter.
    """

    def __init__(
        self,
        url: str,
        key: str,
        secret: Secret,
        *,
        venue: str,
        account_id: str,
        publish: Publish,
        settings: SessionSettingsLike,
        feeds: Iterable[tuple[str, Any]] = DEFAULT_FEEDS,
        nonces: NonceSource | None = None,
        keepalive_interval: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < keepalive_interval < 80:
            raise ValueError("keepalive_interval must be within the venue's 80 s idle limit")
        self.driver = FineryDriver(
            url,
            key,
            secret,
            venue=venue,
            account_id=account_id,
            feeds=feeds,
            nonces=nonces,
            request_timeout=settings.request_timeout,
        )
        self.supervisor = Supervisor(
            self.driver,
            venue=venue,
            account_id=account_id,
            settings=settings,
            publish=publish,
            rng=rng,
        )
        self.driver.attach(self.supervisor.send)
        self.keepalive_interval = keepalive_interval

    @property
    def state(self) -> ConnectionState:
        return self.supervisor.state

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run the supervised session and the keepalive until cancelled (or FAILED)."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.supervisor.run)
            nursery.start_soon(self._keepalive)
            task_status.started()
            await self.supervisor.wait_for(ConnectionState.FAILED)
            nursery.cancel_scope.cancel()

    async def _keepalive(self) -> None:
        while True:
            await trio.sleep(self.keepalive_interval)
            if self.supervisor.state is ConnectionState.LIVE:
                with contextlib.suppress(SessionNotLive):
                    await self.supervisor.send({"event": "ping"})

    async def call(self, method: str, content: dict[str, Any] | None = None) -> Any:
        return await self.driver.request(method, content)

    async def bind(self, feed: str, feed_id: Any = None) -> None:
        """Bind a feed now (if LIVE) and after every reconnect."""
        if self.driver.add_binding(feed, feed_id) and self.state is ConnectionState.LIVE:
            await self.driver.send_bind("bind", feed, feed_id)

    async def unbind(self, feed: str, feed_id: Any = None) -> None:
        """Unbind a feed now (if LIVE) and stop re-binding it."""
        if self.driver.remove_binding(feed, feed_id) and self.state is ConnectionState.LIVE:
            await self.driver.send_bind("unbind", feed, feed_id)
