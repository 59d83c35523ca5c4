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

import contextlib
import logging
import math
import random
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import trio

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
from qfexbot.core.wire import (
    READ_SIZE,
    HandshakeFailed,
    UpgradeRejected,
    WireClosed,
    WireConnection,
    WriteFailed,
)
from qfexbot.errors import ActionUnavailable
from qfexbot.events import ConnectionState, ConnectionStateEvent, Event

__all__ = [
    "MarketDataSession",
    "SessionNotLive",
    "SessionStats",
    "Supervisor",
]

log = get_logger(__name__)

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


async def _open_stream(url: str) -> trio.abc.Stream:
    """TCP stream for a ws:// URL, TLS (certificate verified) for wss://."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise OSError(f"not a WebSocket URL: {url!r}")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
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
        return tls
    return await trio.open_tcp_stream(parts.hostname, port)


WARDEN_GRACE = 1.0
"""Seconds the session task may stay out of its socket read before its warden reads for it:
far above a normal batch (micro- to milliseconds), so an idle or busy-but-healthy session costs
one wake per second and no pump; far below the venue's 30 s ping interval and ~60 s drop."""

DRAIN_WAIT = 0.25
"""Seconds a command waits, at most, for the pump to read what the kernel holds before the
command is written while the session is busy (loopback and LAN: microseconds)."""

PUMP_BOUND = 4096
"""Messages the warden lets wait in ``wire.messages`` (trio-websocket's queue before issue 16);
at the bound it stops reading, and TCP flow control holds the venue back as before."""

_MIN_FRAME = 2
"""Bytes of the smallest frame a server can send (an empty unmasked one): a read of
``2 * n`` bytes completes at most ``n`` messages."""


class _Warden:
    """Reads one connection for its session task while that task is busy elsewhere (a held
    publish, a REST resync), so pings are answered and frames leave the kernel buffer.

    Every session-side read goes through :meth:`read`, which stops a running pump first: only
    one task reads at a time, and what the pump read is taken first, in order. A connection's
    end seen by the pump is left in the wire for the session's next read to report.
    """

    def __init__(self, wire: WireConnection) -> None:
        self.wire = wire
        self.reading = False
        """The session task is inside :meth:`read`."""
        self.reads = 0
        """Reads the session task has started (the warden compares it across a grace)."""
        self.pump_reads = 0
        """Reads the warden made for the session (for tests and diagnostics)."""
        self._urgent = False
        self._stop = False
        self._sleep: trio.CancelScope | None = None
        self._pump_read: trio.CancelScope | None = None
        self._pump_done: trio.Event | None = None
        self._progress: trio.Event | None = None
        """Set after each pump read and when the pump stops (for :meth:`before_write`)."""

    async def read(self) -> None:
        """The session's read: the pump's messages if it ran, else one read of the wire."""
        # Flagged first: no new pump starts while we wait for a running one to stop.
        self.reading = True
        self.reads += 1
        try:
            if self._pump_done is not None:
                await self._stop_pump()
                if self.wire.messages:
                    return
            await self.wire.receive_some()
        finally:
            self.reading = False

    async def before_write(self) -> None:
        """Before a command's write while the session task is busy: have the pump read what
        the kernel holds first. A write to a socket the venue has closed draws a reset, and a
        reset discards what our kernel received and nobody read (issue 12; trio-websocket's
        reader task had read it already). Waits at most ``DRAIN_WAIT``; the pump reads on."""
        wire = self.wire
        with trio.move_on_after(DRAIN_WAIT):
            # Not while the session reads itself: it drains the kernel as it goes.
            while (
                not self.reading
                and wire.ended is None
                and len(wire.messages) < PUMP_BOUND
                and wire.readable_now()
            ):
                if self._pump_done is None:
                    self.busy()
                progress = self._progress = trio.Event()
                await progress.wait()

    def busy(self) -> None:
        """The session is about to be busy for a while (a resync): pump from now on."""
        self._urgent = True
        if self._sleep is not None:
            self._sleep.deadline = -math.inf

    async def run(self) -> None:
        """Sleep a grace at a time; pump while the session has not read for a whole grace (or
        at once after :meth:`busy`), never while it is reading itself."""
        seen = self.reads
        while True:
            at_once = self._urgent and not self.reading
            # On the grace's grid: every warden wakes in the same scheduler pass (spread, each
            # wake is a pass of its own, ~8x the CPU), and still a whole grace or more apart.
            grid = math.ceil((trio.current_time() + WARDEN_GRACE) / WARDEN_GRACE) * WARDEN_GRACE
            deadline = -math.inf if at_once else grid
            with trio.CancelScope(deadline=deadline) as self._sleep:
                await trio.sleep_forever()
            self._sleep = None
            if not self.reading and (self._urgent or self.reads == seen):
                self._urgent = False
                await self._pump()
            seen = self.reads

    async def _stop_pump(self) -> None:
        """Ask the pump to stop (cancelling a read in progress, never a write) and wait."""
        done = self._pump_done
        if done is None:
            return
        self._stop = True
        if self._pump_read is not None:
            self._pump_read.cancel()
        await done.wait()

    async def _pump(self) -> None:
        wire = self.wire
        messages = wire.messages
        self._stop = False
        self._pump_done = done = trio.Event()
        try:
            while not self._stop and wire.ended is None and len(messages) < PUMP_BOUND:
                room = (PUMP_BOUND - len(messages)) * _MIN_FRAME
                with trio.CancelScope() as self._pump_read:
                    await wire.receive_some(min(room, READ_SIZE), reply=False)
                    self.pump_reads += 1
                self._pump_read = None
                self._signal_progress()
                await wire.flush_replies()
        except WireClosed:
            pass  # a write was cut short: the session's next read reports it
        finally:
            self._pump_read = None
            self._pump_done = None
            done.set()
            self._signal_progress()

    def _signal_progress(self) -> None:
        progress, self._progress = self._progress, None
        if progress is not None:
            progress.set()


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

    wire: WireConnection
    supervisor: Supervisor
    warden: _Warden
    deferred: list[Event] = field(default_factory=list)

    async def send(self, message: Mapping[str, Any]) -> None:
        # The peer has gone: the reads tell how (e.g. its close code during auth).
        with contextlib.suppress(WriteFailed):
            await self.wire.send_text(self.supervisor.driver.encode(message))

    async def receive(self) -> list[Any]:
        sup = self.supervisor
        messages = self.wire.messages
        while True:
            while not messages:
                await self.warden.read()
            frame = messages.popleft()
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
        self._wire: WireConnection | None = None
        self._warden: _Warden | None = None
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
        wire = self._wire
        if wire is None or self.stats.state is not ConnectionState.LIVE:
            live = self.stats.state is ConnectionState.LIVE  # but the socket is gone already
            state = "reconnecting" if live else self.stats.state.value
            raise SessionNotLive(
                f"{self.venue} session for {self.account_id} is {state}, not live; "
                f"command {self.driver.command_name(command)!r} not sent"
            )
        try:
            warden = self._warden
            if warden is not None:
                await warden.before_write()
            await wire.send_text(self.driver.encode(command))
        except WireClosed as exc:
            raise SessionNotLive(
                f"{self.venue} session for {self.account_id} closed while sending "
                f"{self.driver.command_name(command)!r} ({exc}); it may have reached the venue",
                maybe_sent=True,
            ) from None

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

        We open the TCP (or verified TLS) stream, make the upgrade on it (``wire``), and
        close it in ``finally``, also when the upgrade is rejected or the server closed first.
        """
        outcome = _Outcome(attempt=attempt)
        settings = self.settings
        await self._set_state(ConnectionState.CONNECTING, attempt=attempt)
        stream: trio.abc.Stream | None = None
        wire: WireConnection | None = None
        try:
            with trio.fail_after(settings.connect_timeout):
                stream = await _open_stream(self.driver.url)
            with trio.fail_after(settings.connect_timeout):
                wire = await WireConnection.open(
                    stream, self.driver.url, self.driver.handshake_headers()
                )
            try:
                # The warden reads for the session while it is busy; it ends with _serve.
                async with trio.open_nursery() as nursery:
                    warden = _Warden(wire)
                    nursery.start_soon(warden.run)
                    try:
                        await self._serve(wire, warden, outcome)
                    finally:
                        nursery.cancel_scope.cancel()
            finally:
                if not outcome.stale:
                    # A stale connection was closed by _close_reading already. Not shielded:
                    # cancelled (a runtime stop), there is nobody left to wait for the reply
                    # for; the stream itself is closed below either way.
                    with trio.move_on_after(min(settings.connect_timeout, 5.0)):
                        await wire.close_handshake()
        except UpgradeRejected as exc:
            body = exc.body.decode("utf-8", "replace")
            outcome.reason = f"upgrade rejected with HTTP {exc.status_code}: {body}".rstrip(": ")
            outcome.auth_rejected = exc.status_code in (401, 403)
        except trio.TooSlowError:
            outcome.reason = f"connect timed out after {settings.connect_timeout:g}s"
        except (HandshakeFailed, WireClosed, trio.BrokenResourceError, OSError) as exc:
            verb = "connect failed" if wire is None else "connection lost while closing"
            outcome.reason = f"{verb}: {_why_failed(exc, self.driver.url)}"
        finally:
            self._wire = self._warden = None
            if stream is not None:
                # Bounded: over TLS a close_notify waits for the stream's send lock, which a
                # plugin's command blocked on a full send buffer may hold for as long as TCP
                # retransmits. Cancelled, trio closes the socket at once.
                with trio.move_on_after(min(settings.connect_timeout, 5.0)):
                    await stream.aclose()
        return outcome

    async def _serve(self, wire: WireConnection, warden: _Warden, outcome: _Outcome) -> None:
        """Handshake steps, snapshot, then the live loop. Records why it ended in ``outcome``."""
        driver, settings = self.driver, self.settings
        conn = _Handshake(wire, self, warden)
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
                # No read of ours until the snapshot is in: the warden reads meanwhile.
                warden.busy()
                # REST retries are bounded by the client; this is a backstop.
                with trio.fail_after(settings.request_timeout * 4 + settings.auth_timeout):
                    snapshot = await driver.resync(conn)
            for event in snapshot:
                await self._publish(event)
            self._wire, self._warden = wire, warden
            live_at = trio.current_time()
            await self._set_state(ConnectionState.LIVE)
            for event in conn.deferred:
                await self._publish(event)
            conn.deferred.clear()
            await self._live(warden, outcome)
        except Exception as exc:
            self._record_failure(outcome, exc)
        finally:
            self._wire = self._warden = None
            if live_at is not None:
                outcome.live_for = trio.current_time() - live_at

    async def _live(self, warden: _Warden, outcome: _Outcome) -> None:
        """Publish frames until the connection ends; a stale stream is reported, then closed."""
        stale_after = self.settings.stale_after if self.driver.watch_stale else math.inf
        try:
            await self._read_loop(warden, stale_after)
            # Returned: no frame for stale_after s. Say so now, not after the close attempt.
            outcome.stale = True
            outcome.reason = f"no frame for {stale_after:g}s"
            self._wire = self._warden = None
            await self._set_state(
                ConnectionState.STALE, reason=outcome.reason, attempt=outcome.attempt
            )
            await self._close_reading(warden, outcome)
        except Exception as exc:
            self._record_failure(outcome, exc)

    async def _close_reading(self, warden: _Warden, outcome: _Outcome) -> None:
        """Close a stale connection and publish every frame that arrives before the reply.

        A stream that heals while we close delivers what the venue wrote meanwhile, up to its
        close reply (issue 12). So after our close frame the read loop goes on to the reply;
        it stops waiting ``connect_timeout`` (capped at 5 s) from now, but never cuts a
        publish short. Those frames come after STALE: a plugin has been told of the gap and
        gets them too. The venue may have closed (or the stream ended) while STALE was
        published: then no close frame goes out, and the frames before its close are read.
        """
        give_up_at = trio.current_time() + min(self.settings.connect_timeout, 5.0)
        try:
            with trio.move_on_at(give_up_at):
                await warden.wire.send_close(1000, "stale stream")
            await self._read_loop(warden, math.inf, give_up_at)
        except WireClosed as exc:
            # Normally the venue's close reply, after every frame before it was published.
            # A 1009/1002 (ours for a frame we refused, or the venue's) is worth telling the
            # operator.
            if exc.code in (1002, 1009):
                outcome.reason += f"; then closed with code {exc.code}: {exc.reason}"

    async def _read_loop(
        self, warden: _Warden, stale_after: float, give_up_at: float = math.inf
    ) -> None:
        """Parse and publish each message in order; returns after ``stale_after`` s without
        one, or once ``give_up_at`` (trio clock) has passed and the messages already read are
        published. Raises :class:`WireClosed` when the connection ends, after every message
        read before its end was published.

        The deadlines are on the wait for the socket (cancel-safe there: what a read returned
        is kept in ``wire.messages``), never on a publish in progress.
        """
        # Hot path: every message of a read is parsed and its events published, in order,
        # before the next wait on the socket. No checkpoint of our own: publishing is one.
        parse = self.driver.parse
        on_control = self.driver.on_control
        publish = self._publish
        stats = self.stats
        clock = trio.current_time
        messages = warden.wire.messages
        take = messages.popleft
        receive_some = warden.read
        wall = time.time
        while True:
            if messages:
                while messages:
                    # The clock per message (~50 ns): the warden may append messages while an
                    # earlier one is published, and none may be stamped before it arrived.
                    now = wall()
                    frame = take()
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
            if clock() >= give_up_at:
                return
            # A read that completes no message (a ping, part of a frame) keeps the deadline.
            deadline = min(clock() + stale_after, give_up_at)
            while not messages:
                with trio.move_on_at(deadline) as waited:
                    await receive_some()
                if waited.cancelled_caught and not messages:
                    return

    def _record_failure(self, outcome: _Outcome, exc: Exception) -> None:
        if isinstance(exc, AuthRejected):
            outcome.auth_rejected = True
            outcome.reason = f"authentication rejected: {exc}"
        elif isinstance(exc, trio.TooSlowError):
            outcome.reason = f"{self.stats.state.value} step timed out"
        elif isinstance(exc, WireClosed):
            outcome.reason = f"connection closed ({exc})"
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
