"""Supervised venue connections: private sessions per account and one shared market-data feed.

:class:`Supervisor` is venue-neutral. It runs a driver's steps (``qfexbot.core.venue``) on
every connection: CONNECTING → AUTHENTICATING → SUBSCRIBING → RESYNCING → LIVE, and on close,
error or a stale stream goes STALE/BACKOFF and reconnects with capped exponential backoff and
full jitter (reset after ``healthy_after`` seconds LIVE). Credentials rejected
``max_auth_failures`` times in a row → FAILED: the session stops with an operator error and
returns normally, so sibling sessions in the same nursery carry on. Every state change is a
:class:`ConnectionStateEvent` given to ``publish``.

:class:`MarketDataSession` runs one public connection per venue through the same supervisor and
fans events out by (channel, symbol), re-subscribing everything after a reconnect.
"""

from __future__ import annotations

import logging
import math
import random
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)
from wsproto import ConnectionState as WsState
from wsproto.events import CloseConnection, Pong
from wsproto.utilities import LocalProtocolError

from qfexbot.core.backoff import backoff_delay
from qfexbot.core.logs import current_context, get_logger, log_context, log_event
from qfexbot.core.venue import (
    AuthRejected,
    MarketDataDriver,
    ParseError,
    Publish,
    SessionDriver,
    SessionSettingsLike,
)
from qfexbot.errors import ActionUnavailable, QfexbotError
from qfexbot.events import ConnectionState, ConnectionStateEvent, Event

__all__ = [
    "MESSAGE_QUEUE_SIZE",
    "MarketDataSession",
    "SessionNotLive",
    "SessionStats",
    "Supervisor",
]

log = get_logger(__name__)

MESSAGE_QUEUE_SIZE = 4096
"""Frames trio-websocket may buffer. Bounded, but large enough that a reader busy publishing
(or waiting on a REST resync) never stalls the library's pong replies."""

_DRAIN_BATCH = 64
"""Frames the read loop may take from trio-websocket's queue between two waits on the socket."""

_STATE_LOG_LEVEL = {
    ConnectionState.LIVE: logging.INFO,
    ConnectionState.STALE: logging.WARNING,
    ConnectionState.BACKOFF: logging.WARNING,
    ConnectionState.FAILED: logging.ERROR,
    ConnectionState.STOPPED: logging.INFO,
}


class SessionNotLive(ActionUnavailable):
    """A command could not be sent because the session is not LIVE (or the socket closed).

    Plugins see it as :class:`qfexbot.ActionUnavailable`."""


@dataclass
class SessionStats:
    """Live counters of one supervised connection (read them; the supervisor writes them)."""

    state: ConnectionState = ConnectionState.STOPPED
    reconnects: int = 0
    frames: int = 0
    parse_errors: int = 0
    auth_failures: int = 0
    """Consecutive rejections; reset by a successful authentication."""
    last_frame_at: float | None = None
    """Wall-clock time of the last frame read."""
    last_error: str = ""


async def _open_stream(url: str) -> tuple[trio.abc.Stream, str, str]:
    """TCP stream for a ws:// URL, TLS (certificate verified) for wss://; plus Host and path."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise OSError(f"not a WebSocket URL: {url!r}")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if secure:
        tls = await trio.open_ssl_over_tcp_stream(
            parts.hostname, port, ssl_context=ssl.create_default_context()
        )
        try:
            # Handshake now, so a bad certificate is reported as such, not as a timeout.
            await tls.do_handshake()
        except BaseException:
            await tls.aclose()
            raise
        stream: trio.abc.Stream = tls
    else:
        stream = await trio.open_tcp_stream(parts.hostname, port)
    return stream, host, resource


class _CommandNotWritten(QfexbotError):
    """A command's write failed because the peer has gone (see :class:`_ReadToTheEnd`)."""


_WRITING_COMMAND: ContextVar[bool] = ContextVar("qfexbot_writing_command", default=False)
"""True in the task writing a plugin's command (:meth:`Supervisor.send`)."""


class _ReadToTheEnd(trio.abc.Stream):
    """The connection's stream as trio-websocket sees it: a failed write never ends the reads.

    trio-websocket takes a failed write (``BrokenResourceError``) as the end of the connection:
    it stops its reader and drops every frame not yet in its queue, although those frames
    reached our socket before the peer closed (issue 12: a plugin's order sent just after the
    venue's close lost the order responses written before it). Here a failed write raises
    :class:`_CommandNotWritten` to the command that made it, and is ignored for the library's
    own writes (close reply, pong, handshake steps): the reader then reads on to the venue's
    close frame, or to the end of the stream the kernel reports after the last byte received.
    (Over TLS the stream itself is broken after a failed write, so reads end there.)
    """

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._write_error: trio.BrokenResourceError | None = None

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._write_error is None:
            try:
                await self._stream.send_all(data)
                return
            except trio.BrokenResourceError as exc:
                self._write_error = exc
        if _WRITING_COMMAND.get():
            cause = self._write_error.__cause__ or self._write_error
            raise _CommandNotWritten(f"{type(cause).__name__}: {cause}") from self._write_error

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self._stream.aclose()


_CLOSE_SENT = (WsState.LOCAL_CLOSING, WsState.CLOSED)
"""wsproto states in which a close frame has gone out already."""


class _NoPongWhileClosing:
    """The connection's wsproto state machine as trio-websocket drives it, minus the pong it
    must not send once our close frame is out.

    trio-websocket answers every ping; after our close frame wsproto refuses a pong
    (``LocalProtocolError``) and the library's reader task dies, dropping every frame behind
    the ping. A stale stream that heals while we close delivers the venue's held pings first,
    then the frames we still publish (issue 12). RFC 6455 lets a closing endpoint leave pings
    unanswered, so the pong is dropped instead. Likewise a second close frame (the library's
    1009 for an oversized message, or 1002 for a protocol error, after ours): wsproto refuses
    it, the reader's crash would cancel a publish in progress, and one close frame is all a
    peer gets. The library still ends the connection with that code. Everything else goes to
    wsproto unchanged.
    """

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    def send(self, event: Any) -> bytes:
        state = self._protocol.state
        if isinstance(event, Pong) and state is not WsState.OPEN:
            return b""
        if isinstance(event, CloseConnection) and state in _CLOSE_SENT:
            return b""
        data: bytes = self._protocol.send(event)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._protocol, name)


# ---------------------------------------------------------------- trio-websocket internals
# The only places this module touches trio-websocket's private attributes (the versions
# pyproject.toml allows have them). The library has no public API for any of them; issue 16
# replaces it on the read path, and these four helpers go with it.


def _private_guard_closing_writes(ws: WebSocketConnection) -> None:
    """Wrap the connection's wsproto state machine (``_wsproto``, read on every use) in
    :class:`_NoPongWhileClosing`."""
    ws._wsproto = _NoPongWhileClosing(ws._wsproto)  # type: ignore[assignment]


def _private_close_frame_allowed(ws: WebSocketConnection) -> bool:
    """True while wsproto (``_wsproto``) would accept our close frame (state OPEN)."""
    return ws._wsproto.state is WsState.OPEN


async def _private_send_close(ws: WebSocketConnection, code: int, reason: str) -> None:
    """Send a close frame through the library's writer (``_send``) without ``aclose``'s
    discarding of queued frames. No checkpoint before the write."""
    await ws._send(CloseConnection(code=code, reason=reason))


def _private_queued_frames(ws: WebSocketConnection) -> Callable[[], str | bytes] | None:
    """``receive_nowait`` of the library's message queue (``_recv_channel``): takes a frame it
    has queued already without a checkpoint; None if this version has no such queue."""
    queue = getattr(ws, "_recv_channel", None)
    return queue.receive_nowait if queue is not None else None


@dataclass
class _Outcome:
    """How one connection ended."""

    attempt: int = 0
    """Reconnect attempts before this connection (stamped on its state events)."""
    reason: str = "connection ended"
    auth_rejected: bool = False
    stale: bool = False
    live_for: float = 0.0


@dataclass
class _Handshake:
    """The :class:`~qfexbot.core.venue.FrameConnection` given to a driver's steps."""

    ws: WebSocketConnection
    supervisor: Supervisor
    deferred: list[Event] = field(default_factory=list)

    async def send(self, message: Mapping[str, Any]) -> None:
        await self.ws.send_message(self.supervisor.driver.encode(message))

    async def receive(self) -> list[Any]:
        sup = self.supervisor
        while True:
            frame = await self.ws.get_message()
            now = time.time()
            sup.stats.frames += 1
            sup.stats.last_frame_at = now
            try:
                items = sup.driver.parse(frame, now)
            except ParseError as exc:
                sup._malformed(exc)
                continue
            controls = []
            for item in items:
                if isinstance(item, Event):
                    self.deferred.append(item)
                else:
                    controls.append(item)
            if controls:
                return controls


class Supervisor:
    """Keeps one venue connection alive and publishes what it receives, in order.

    Args:
      driver: the venue-specific steps (see :class:`~qfexbot.core.venue.SessionDriver`).
      venue, account_id: stamped on state events and log lines.
      settings: any object with the :class:`~qfexbot.core.venue.SessionSettingsLike` fields.
      publish: awaited with every event, one at a time, in order.
      rng: random source for the backoff jitter (tests pass a seeded one).

    Resource handling: each connection's socket is closed when it ends, also when the server
    closed first. Cancel the task running :meth:`run` to stop; it then publishes STOPPED.
    """

    def __init__(
        self,
        driver: SessionDriver,
        *,
        venue: str,
        account_id: str,
        settings: SessionSettingsLike,
        publish: Publish,
        rng: random.Random | None = None,
    ) -> None:
        self.driver = driver
        self.venue = venue
        self.account_id = account_id
        self.settings = settings
        self.stats = SessionStats()
        self._publish = publish
        self._rng = rng or random.Random()
        self._ws: WebSocketConnection | None = None
        self._changed = trio.Event()
        self._running = False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(venue={self.venue!r}, account_id={self.account_id!r}, "
            f"state={self.state.value})"
        )

    @property
    def state(self) -> ConnectionState:
        """The current state."""
        return self.stats.state

    async def wait_for(self, *states: ConnectionState) -> ConnectionState:
        """Wait until the session is in one of ``states`` (bound it with a timeout)."""
        while self.stats.state not in states:
            await self._changed.wait()
        return self.stats.state

    async def send(self, command: Mapping[str, Any]) -> None:
        """Send one command (e.g. ``add_order``) on the live socket.

        Raises:
          SessionNotLive: not LIVE, or the socket closed while sending (then the command may
            or may not have reached the venue: reconcile, e.g. by ``client_order_id``).
        """
        ws = self._ws
        if ws is None or self.stats.state is not ConnectionState.LIVE:
            live = self.stats.state is ConnectionState.LIVE  # but the socket is gone already
            state = "reconnecting" if live else self.stats.state.value
            raise SessionNotLive(
                f"{self.venue} session for {self.account_id} is {state}, not live; "
                f"command {self.driver.command_name(command)!r} not sent"
            )
        writing = _WRITING_COMMAND.set(True)
        try:
            await ws.send_message(self.driver.encode(command))
        except (ConnectionClosed, _CommandNotWritten) as exc:
            why = exc.reason if isinstance(exc, ConnectionClosed) else f"connection lost: {exc}"
            raise SessionNotLive(
                f"{self.venue} session for {self.account_id} closed while sending "
                f"{self.driver.command_name(command)!r} ({why}); it may have reached the venue",
                maybe_sent=True,
            ) from None
        finally:
            _WRITING_COMMAND.reset(writing)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Connect and keep connecting until cancelled or FAILED. Returns at once to ``start``."""
        if self._running:
            raise RuntimeError("this session is already running")
        self._running = True
        task_status.started()
        # Keep a caller's readable alias (the runtime sets account=<alias>); the id goes along.
        named = current_context().get("account") or self.account_id
        with log_context(venue=self.venue, account=named, account_id=self.account_id):
            try:
                await self._supervise()
            finally:
                if self.stats.state is not ConnectionState.FAILED:
                    with trio.CancelScope(shield=True) as scope:
                        scope.deadline = trio.current_time() + 1.0
                        try:
                            await self._set_state(ConnectionState.STOPPED, reason="stopped")
                        except Exception:  # the sink may be closed at shutdown
                            log.debug("could not publish STOPPED", exc_info=True)
                self._running = False

    async def _supervise(self) -> None:
        attempt = 0
        while True:
            outcome = await self._connection(attempt)
            self.stats.last_error = outcome.reason
            if outcome.auth_rejected:
                self.stats.auth_failures += 1
                limit = self.settings.max_auth_failures
                if self.stats.auth_failures >= limit:
                    reason = (
                        f"credentials rejected {self.stats.auth_failures} times in a row "
                        f"({outcome.reason}); session stopped: fix the credentials for "
                        f"venue {self.venue!r} and restart"
                    )
                    await self._set_state(ConnectionState.FAILED, reason=reason, attempt=attempt)
                    return
            if outcome.live_for >= self.settings.healthy_after:
                attempt = 0
            delay = backoff_delay(
                attempt, self.settings.backoff_initial, self.settings.backoff_max, self._rng
            )
            attempt += 1
            await self._set_state(
                ConnectionState.BACKOFF,
                reason=f"{outcome.reason}; reconnecting in {delay:.2f}s",
                attempt=attempt,
            )
            await trio.sleep(delay)
            self.stats.reconnects += 1

    async def _connection(self, attempt: int) -> _Outcome:
        """One connection from connect to close; never raises for network or venue errors.

        We open the TCP (or verified TLS) stream ourselves and close it in ``finally``:
        trio-websocket's own connect leaks the stream when the handshake is rejected or
        cancelled, and leaves it open when the server closes first.
        """
        outcome = _Outcome(attempt=attempt)
        settings = self.settings
        await self._set_state(ConnectionState.CONNECTING, attempt=attempt)
        stream: trio.abc.Stream | None = None
        ws: WebSocketConnection | None = None
        try:
            with trio.fail_after(settings.connect_timeout):
                stream, host, resource = await _open_stream(self.driver.url)
            async with trio.open_nursery() as ws_nursery:
                try:
                    with trio.fail_after(settings.connect_timeout):
                        ws = await wrap_client_stream(
                            ws_nursery,
                            _ReadToTheEnd(stream),
                            host,
                            resource,
                            extra_headers=self.driver.handshake_headers(),
                            message_queue_size=MESSAGE_QUEUE_SIZE,
                        )
                    _private_guard_closing_writes(ws)
                    await self._serve(ws, outcome)
                finally:
                    if ws is not None and not outcome.stale:
                        # A stale connection was closed by _close_reading already.
                        # Not shielded: when we are being cancelled the reader task that would
                        # receive the server's close reply is gone, so waiting is pointless;
                        # the stream itself is closed below either way.
                        with trio.move_on_after(min(settings.connect_timeout, 5.0)):
                            await ws.aclose()
                    ws_nursery.cancel_scope.cancel()
        except* ConnectionRejected as group:
            exc = group.exceptions[0]
            body = (exc.body or b"")[:200].decode("utf-8", "replace")
            outcome.reason = f"upgrade rejected with HTTP {exc.status_code}: {body}".rstrip(": ")
            outcome.auth_rejected = exc.status_code in (401, 403)
        except* trio.TooSlowError:
            outcome.reason = f"connect timed out after {settings.connect_timeout:g}s"
        except* LocalProtocolError:
            # A write trio-websocket's reader makes after our close frame, which wsproto
            # refuses (pongs and second close frames are dropped by _NoPongWhileClosing, so
            # not expected). The connection was ending anyway; keep why.
            log.debug("write refused while closing", exc_info=True)
        except* (HandshakeError, ConnectionClosed, trio.BrokenResourceError, OSError) as group:
            verb = "connect failed" if ws is None else "connection lost while closing"
            outcome.reason = f"{verb}: {_why_failed(group.exceptions[0], self.driver.url)}"
        finally:
            self._ws = None
            if stream is not None:
                # Bounded: over TLS a close_notify waits for the stream's send lock, which a
                # plugin's command blocked on a full send buffer may hold for as long as TCP
                # retransmits. Cancelled, trio closes the socket at once.
                with trio.move_on_after(min(settings.connect_timeout, 5.0)):
                    await stream.aclose()
        return outcome

    async def _serve(self, ws: WebSocketConnection, outcome: _Outcome) -> None:
        """Handshake steps, snapshot, then the live loop. Records why it ended in ``outcome``."""
        driver, settings = self.driver, self.settings
        conn = _Handshake(ws, self)
        live_at: float | None = None
        try:
            if driver.authenticates:
                await self._set_state(ConnectionState.AUTHENTICATING)
                with trio.fail_after(settings.auth_timeout):
                    await driver.authenticate(conn)
                self.stats.auth_failures = 0
            await self._set_state(ConnectionState.SUBSCRIBING)
            with trio.fail_after(settings.auth_timeout):
                await driver.subscribe(conn)
            snapshot: Sequence[Event] = ()
            if driver.resyncs:
                await self._set_state(ConnectionState.RESYNCING)
                # REST retries are bounded by the client; this is a backstop.
                with trio.fail_after(settings.request_timeout * 4 + settings.auth_timeout):
                    snapshot = await driver.resync(conn)
            for event in snapshot:
                await self._publish(event)
            self._ws = ws
            live_at = trio.current_time()
            await self._set_state(ConnectionState.LIVE)
            for event in conn.deferred:
                await self._publish(event)
            conn.deferred.clear()
            await self._live(ws, outcome)
        except Exception as exc:
            self._record_failure(outcome, exc)
        finally:
            self._ws = None
            if live_at is not None:
                outcome.live_for = trio.current_time() - live_at

    async def _live(self, ws: WebSocketConnection, outcome: _Outcome) -> None:
        """Publish frames until the connection ends; a stale stream is reported, then closed."""
        stale_after = self.settings.stale_after if self.driver.watch_stale else math.inf
        try:
            await self._read_loop(ws, stale_after)
            # Returned: no frame for stale_after s. Say so now, not after the close attempt.
            outcome.stale = True
            outcome.reason = f"no frame for {stale_after:g}s"
            self._ws = None
            await self._set_state(
                ConnectionState.STALE, reason=outcome.reason, attempt=outcome.attempt
            )
            await self._close_reading(ws, outcome)
        except Exception as exc:
            self._record_failure(outcome, exc)

    async def _close_reading(self, ws: WebSocketConnection, outcome: _Outcome) -> None:
        """Close a stale connection and publish every frame that arrives before the reply.

        trio-websocket's ``aclose`` discards the frames it has queued and those still to come
        (issue 12); a stream that heals while we close delivers what the venue wrote meanwhile,
        up to its close reply. So our close frame goes out through the library's writer and
        the read loop goes on to the reply; it stops waiting ``connect_timeout`` (capped at
        5 s) from now, but never cuts a publish short. Those frames come after STALE: a
        plugin has been told of the gap and gets them too.
        """
        give_up_at = trio.current_time() + min(self.settings.connect_timeout, 5.0)
        try:
            # The venue may have closed (or the stream ended) while STALE was published: then
            # wsproto refuses a close frame, and the frames queued before it are still ours.
            # No checkpoint between this check and trio-websocket's wsproto.send.
            if _private_close_frame_allowed(ws):
                with trio.move_on_at(give_up_at):
                    await _private_send_close(ws, 1000, "stale stream")
            await self._read_loop(ws, math.inf, give_up_at)
        except ConnectionClosed as exc:
            # Normally the venue's close reply, after every frame before it was published.
            # A 1009/1002 (the library's for a frame it refused, or the venue's) is worth
            # telling the operator.
            if exc.reason.code in (1002, 1009):
                outcome.reason += f"; then closed with code {exc.reason.code}: {exc.reason.reason}"

    async def _read_loop(
        self, ws: WebSocketConnection, stale_after: float, give_up_at: float = math.inf
    ) -> None:
        """Parse and publish each frame in order; returns after ``stale_after`` s without a
        frame, or once ``give_up_at`` (trio clock) has passed and the frames already queued
        are published.

        The deadlines are on the wait for a frame (cancel-safe there: a frame is either
        handed over or left queued), never on a publish in progress. Past ``give_up_at`` the
        queue is still drained without waiting (trio's ``receive`` would refuse a queued frame
        to an expired scope): the batch in progress, then at most ``MESSAGE_QUEUE_SIZE``.
        """
        # Hot path: one parse per frame, events published in order, nothing else.
        # Frames trio-websocket has already queued are taken without a checkpoint (publishing
        # is one); at least every _DRAIN_BATCH frames the loop waits on get_message as usual.
        parse = self.driver.parse
        on_control = self.driver.on_control
        publish = self._publish
        stats = self.stats
        clock = trio.current_time
        get_message = ws.get_message
        receive_nowait = _private_queued_frames(ws)
        drain = 0
        leftover = MESSAGE_QUEUE_SIZE  # frames still taken once give_up_at has passed
        while True:
            frame = None
            if drain and receive_nowait is not None:
                drain -= 1
                try:
                    frame = receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    frame = None  # get_message waits, or raises ConnectionClosed
            if frame is None:
                if clock() >= give_up_at:
                    if receive_nowait is None or leftover <= 0:
                        return
                    leftover -= 1
                    try:
                        frame = receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                        return
                else:
                    with trio.move_on_at(min(clock() + stale_after, give_up_at)):
                        frame = await get_message()
                    if frame is None:
                        if clock() < give_up_at:
                            return
                        continue  # gave up waiting: publish what is queued already
                    drain = _DRAIN_BATCH
            now = time.time()
            stats.frames += 1
            stats.last_frame_at = now
            try:
                items = parse(frame, now)
            except ParseError as exc:
                self._malformed(exc)
                continue
            for item in items:
                if isinstance(item, Event):
                    await publish(item)
                else:
                    await on_control(item)

    def _record_failure(self, outcome: _Outcome, exc: Exception) -> None:
        if isinstance(exc, AuthRejected):
            outcome.auth_rejected = True
            outcome.reason = f"authentication rejected: {exc}"
        elif isinstance(exc, trio.TooSlowError):
            outcome.reason = f"{self.stats.state.value} step timed out"
        elif isinstance(exc, ConnectionClosed):
            reason = exc.reason
            outcome.reason = (
                f"connection closed (code {reason.code}, {reason.reason or 'no reason'})"
            )
        elif isinstance(exc, (trio.BrokenResourceError, OSError)):
            outcome.reason = f"connection error: {type(exc).__name__}: {exc}"
        else:
            # A venue error in a step (e.g. REST failure in resync) or a bug: reconnect.
            outcome.reason = f"{self.stats.state.value} failed: {type(exc).__name__}: {exc}"
            log_event(
                log,
                logging.WARNING,
                "session step failed",
                state=self.stats.state.value,
                error=f"{type(exc).__name__}: {exc}",
            )
            log.debug("session step failure traceback", exc_info=exc)

    def _malformed(self, exc: ParseError) -> None:
        self.stats.parse_errors += 1
        log_event(
            log,
            logging.WARNING,
            "malformed frame ignored",
            reason=exc.reason,
            frame=exc.preview,
            parse_errors=self.stats.parse_errors,
        )

    async def _set_state(
        self, state: ConnectionState, *, reason: str = "", attempt: int = 0
    ) -> None:
        previous = self.stats.state
        self.stats.state = state
        self._changed.set()
        self._changed = trio.Event()
        # What changed, and why only when there is a why: no empty reason= or attempt=0.
        extra: dict[str, Any] = {"reason": reason} if reason else {}
        if attempt:
            extra["attempt"] = attempt
        log_event(
            log,
            _STATE_LOG_LEVEL.get(state, logging.DEBUG),
            f"session {state.value}",
            previous=previous.value,
            **extra,
        )
        await self._publish(
            ConnectionStateEvent(
                venue=self.venue,
                account_id=self.account_id,
                received_at=time.time(),
                state=state,
                previous=previous,
                reason=reason,
                attempt=attempt,
            )
        )


def _why_failed(exc: BaseException, url: str) -> str:
    """One line an operator can act on for a failed connect: "connection refused to HOST:PORT"
    rather than trio's "all attempts to connect ... (1 sub-exception)" group."""
    leaves = _leaf_causes(exc)
    where = urlsplit(url)
    port = where.port or (443 if where.scheme == "wss" else 80)
    if any(isinstance(e, ConnectionRefusedError) for e in leaves):
        return f"connection refused to {where.hostname}:{port}"
    first = next((e for e in leaves if not isinstance(e, BaseExceptionGroup)), leaves[0])
    return f"{type(first).__name__}: {first}"


def _leaf_causes(exc: BaseException) -> list[BaseException]:
    """The innermost causes of ``exc``: its ``__cause__`` chain and, inside exception groups,
    every member's (the errors trio wraps a failed connect in)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for member in exc.exceptions for leaf in _leaf_causes(member)]
    return [exc]


# ---------------------------------------------------------------- market data


class _MarketDataSteps:
    """Adapts a :class:`MarketDataDriver` to the supervisor: no auth, no resync."""

    authenticates = False
    resyncs = False

    def __init__(self, session: MarketDataSession) -> None:
        self._session = session
        self._driver = session.driver
        self.url = session.driver.url

    @property
    def watch_stale(self) -> bool:
        pulsed = self._driver.pulsed_channels
        return any(channel in pulsed for channel, _ in self._session.pairs())

    def handshake_headers(self) -> list[tuple[bytes, bytes]]:
        return self._driver.handshake_headers()

    async def authenticate(self, conn: Any) -> None:  # pragma: no cover - authenticates=False
        raise AssertionError("market data is public")

    async def subscribe(self, conn: Any) -> None:
        self._session._unsent.clear()  # this step sends the full set
        for message in self._driver.subscribe_messages(self._session.pairs()):
            await conn.send(message)

    async def resync(self, conn: Any) -> Sequence[Event]:  # pragma: no cover - resyncs=False
        return ()

    def parse(self, frame: str | bytes, now: float) -> list[Any]:
        return self._driver.parse(frame, now)

    async def on_control(self, item: Any) -> None:
        log_event(log, logging.DEBUG, "market-data control message ignored", item=repr(item))

    def encode(self, message: Mapping[str, Any]) -> str:
        return self._driver.encode(message)

    def command_name(self, message: Mapping[str, Any]) -> str | None:
        return None  # a public feed sends no commands through Supervisor.send


class MarketDataSession:
    """One public market-data connection per venue, shared by every bot.

    Subscribers register ``(channels, symbols, publish)``; each event goes to the subscribers
    of its (channel, symbol) and of (channel, ``"*"``). Connection state events go to every
    subscriber. Subscriptions are re-sent after each reconnect.
    """

    def __init__(
        self,
        driver: MarketDataDriver,
        *,
        venue: str,
        settings: SessionSettingsLike,
        rng: random.Random | None = None,
    ) -> None:
        self.driver = driver
        self.venue = venue
        self._routes: dict[tuple[str, str], list[Publish]] = {}
        self._subscribers: list[Publish] = []
        self._unsent: set[tuple[str, str]] = set()
        """Pairs added after the last subscribe step, sent as soon as the session is LIVE."""
        self.supervisor = Supervisor(
            _MarketDataSteps(self),
            venue=venue,
            account_id="",
            settings=settings,
            publish=self._fan_out,
            rng=rng,
        )

    @property
    def state(self) -> ConnectionState:
        return self.supervisor.state

    @property
    def stats(self) -> SessionStats:
        return self.supervisor.stats

    def pairs(self) -> list[tuple[str, str]]:
        """The (channel, symbol) pairs currently subscribed."""
        return list(self._routes)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run the shared connection until cancelled (see :meth:`Supervisor.run`)."""
        await self.supervisor.run(task_status=task_status)

    async def subscribe(
        self, channels: Iterable[str], symbols: Iterable[str], publish: Publish
    ) -> None:
        """Deliver events of these channels x symbols to ``publish`` (``"*"`` = all symbols)."""
        # Route lists are replaced, never mutated, so a fan-out in progress is unaffected.
        new: list[tuple[str, str]] = []
        symbols = list(symbols)
        for channel in channels:
            for symbol in symbols:
                targets = self._routes.get((channel, symbol), [])
                if not targets:
                    new.append((channel, symbol))
                if publish not in targets:
                    self._routes[(channel, symbol)] = [*targets, publish]
        if publish not in self._subscribers:
            self._subscribers = [*self._subscribers, publish]
        if new:
            if self.state is ConnectionState.LIVE:
                await self._send_if_live(self.driver.subscribe_messages(new))
            else:
                self._unsent.update(new)

    async def unsubscribe(self, publish: Publish) -> None:
        """Stop delivering to ``publish``; pairs nobody needs any more are unsubscribed."""
        gone: list[tuple[str, str]] = []
        for pair, targets in list(self._routes.items()):
            if publish in targets:
                remaining = [t for t in targets if t is not publish]
                if remaining:
                    self._routes[pair] = remaining
                else:
                    del self._routes[pair]
                    self._unsent.discard(pair)
                    gone.append(pair)
        self._subscribers = [p for p in self._subscribers if p is not publish]
        await self._send_if_live(self.driver.unsubscribe_messages(gone) if gone else [])

    async def _send_if_live(self, messages: list[Mapping[str, Any]]) -> None:
        # Lost the connection meanwhile: the next connection's subscribe step sends the full set.
        for message in messages:
            try:
                await self.supervisor.send(message)
            except SessionNotLive:
                return

    async def _fan_out(self, event: Event) -> None:
        if isinstance(event, ConnectionStateEvent):
            if event.state is ConnectionState.LIVE and self._unsent:
                # Subscribed while the handshake was running: send them now.
                pairs = sorted(self._unsent)
                self._unsent.clear()
                await self._send_if_live(self.driver.subscribe_messages(pairs))
            for publish in self._subscribers:
                await publish(event)
            return
        channel, symbol = self.driver.route(event)
        routes = self._routes
        targets = routes.get((channel, symbol))
        if targets:
            for publish in targets:
                await publish(event)
        wildcard = routes.get((channel, "*"))
        if wildcard:
            for publish in wildcard:
                if not targets or publish not in targets:
                    await publish(event)
