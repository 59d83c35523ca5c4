"""The client side of one WebSocket connection, read by the task that owns it (issue 16).

The ``websockets`` package's sans-I/O :class:`~websockets.client.ClientProtocol` encodes and
decodes the frames; this module drives it over a trio stream the caller opened and closes.
There is no reader task of its own: :meth:`WireConnection.receive_some` makes one read of up
to 64 KiB, and every message it completes is appended to :attr:`WireConnection.messages`, for
the caller to take. Pings are answered by whoever reads, so the session runs a warden
(``qfexbot.core.session``) that reads for it while it is busy (a held publish, a resync):
pongs go out and up to 4096 messages wait here; past that, and while nobody reads, the kernel's
socket buffer holds what arrives and TCP flow control holds the peer back. Whatever the
socket delivered before the peer's close frame (or the end of the stream) is in ``messages``
before :class:`WireClosed` is raised, also after a failed write: a failed write is reported to
the writer and the reads go on. The protocol
answers pings itself; once our close frame is out no pong is written (RFC 6455 lets a closing
endpoint leave pings unanswered), and no second close frame is ever sent.
"""

from __future__ import annotations

import logging
import select
from collections import deque
from typing import cast

import trio
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus, InvalidURI, PayloadTooBig, ProtocolError
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from qfexbot.errors import QfexbotError

__all__ = [
    "MAX_MESSAGE_SIZE",
    "READ_SIZE",
    "HandshakeFailed",
    "UpgradeRejected",
    "WireClosed",
    "WireConnection",
    "WriteFailed",
]

MAX_MESSAGE_SIZE = 2**20
"""Largest message accepted (trio-websocket's default before issue 16); a larger one fails the
connection with close code 1009."""

READ_SIZE = 65536
"""Bytes asked of the stream per read."""

_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
"""The data opcodes, bound once: an enum member lookup costs ~60 ns per frame on 3.11."""

_PROTOCOL_LOG = logging.getLogger("qfexbot.core.wire.protocol")
"""The protocol's own logger, never at DEBUG: websockets logs every request header (auth
signatures among them) and every frame sent at DEBUG, through handlers our secret scrubbing
does not reach. An application's DEBUG root logger must not turn that on."""
_PROTOCOL_LOG.setLevel(logging.INFO)

_REPLY_WRITE_LIMIT = 1.0
"""Seconds a writer may spend, shielded, writing the replies queued during its own write."""

_BODY_PREVIEW = 200
"""Bytes of a rejected upgrade's body kept for the operator."""


class WireClosed(QfexbotError):
    """The connection has ended: ``code`` and ``reason`` say how (the peer's close frame, 1006
    for a stream that ended or broke without one, 1009 for an oversized message, 1002 for a
    protocol error, 1007 for a text message that is not UTF-8)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"code {code}, {reason or 'no reason'}")
        self.code = code
        self.reason = reason


class WriteFailed(WireClosed):
    """A write failed (the peer has gone, or the stream broke): the data may or may not have
    reached the peer. The reads go on to the peer's close or the end of the stream."""

    def __init__(self, reason: str) -> None:
        super().__init__(1006, reason)

    def __str__(self) -> str:
        return self.reason


class HandshakeFailed(QfexbotError):
    """The HTTP upgrade did not complete (no valid response, or the stream ended first)."""


class UpgradeRejected(HandshakeFailed):
    """The server answered the upgrade with an HTTP status other than 101."""

    def __init__(self, status_code: int, body: bytes) -> None:
        super().__init__(f"upgrade rejected with HTTP {status_code}")
        self.status_code = status_code
        self.body = body
        """The first bytes of the response body (at most 200)."""


def _describe(exc: BaseException) -> str:
    """``Type: message`` of what broke a stream (its cause when trio wraps it)."""
    cause = exc.__cause__ or exc
    return f"{type(cause).__name__}: {cause}"


def _closed_by_parser(exc: Exception) -> WireClosed:
    """How the protocol's parser ended the connection (it has sent the close frame, if any)."""
    if isinstance(exc, PayloadTooBig):
        return WireClosed(1009, f"message over the maximum message size ({exc})")
    if isinstance(exc, ProtocolError):
        return WireClosed(1002, str(exc))
    if isinstance(exc, UnicodeDecodeError):
        return WireClosed(1007, f"close reason is not UTF-8: {exc.reason}")
    if isinstance(exc, EOFError):
        return WireClosed(1006, "the stream ended without a close frame")
    return WireClosed(1011, f"parser failed: {type(exc).__name__}")


class WireConnection:
    """One open WebSocket connection on a trio stream; :meth:`open` makes the upgrade.

    One task reads (:meth:`receive_some`, then takes :attr:`messages`); any task may write.
    Writes are serialised by a lock; the reader never waits for the lock: a pong made while
    another task writes is written by that task before it lets the lock go. The caller owns the
    stream and closes it.
    """

    def __init__(self, stream: trio.abc.Stream, protocol: ClientProtocol) -> None:
        self._stream = stream
        self._protocol = protocol
        self.messages: deque[str | bytes] = deque()
        """Messages received and not taken yet, oldest first (str for text, bytes for binary)."""
        self._fragments: list[bytes | bytearray | memoryview] = []
        self._fragmented_text = False
        self._pending: list[bytes] = []
        self._write_lock = trio.Lock()
        self._write_error: str | None = None
        self._write_cut = False
        self._ended: WireClosed | None = None
        self._poll: select.poll | None = None

    @classmethod
    async def open(
        cls, stream: trio.abc.Stream, url: str, headers: list[tuple[bytes, bytes]]
    ) -> WireConnection:
        """Upgrade ``stream`` to a WebSocket for ``url`` with ``headers`` added to the request.

        Raises:
          UpgradeRejected: the server answered with another status than 101.
          HandshakeFailed: no valid response (or the stream ended before it), or not a
            WebSocket URL.
          trio.BrokenResourceError: the stream broke.
        """
        try:
            uri = parse_uri(url)
        except InvalidURI as exc:
            raise HandshakeFailed(str(exc)) from exc
        protocol = ClientProtocol(uri, max_size=MAX_MESSAGE_SIZE, logger=_PROTOCOL_LOG)
        request = protocol.connect()
        for name, value in headers:
            # One character per byte: ASCII (every driver's headers) round-trips exactly.
            request.headers[name.decode("latin-1")] = value.decode("latin-1")
        protocol.send_request(request)
        await stream.send_all(b"".join(protocol.data_to_send()))
        while protocol.state is State.CONNECTING and protocol.handshake_exc is None:
            data = await stream.receive_some(READ_SIZE)
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
        failure = protocol.handshake_exc
        if isinstance(failure, InvalidStatus):
            response = failure.response
            raise UpgradeRejected(response.status_code, bytes(response.body[:_BODY_PREVIEW]))
        if failure is not None:
            raise HandshakeFailed(str(failure)) from failure
        wire = cls(stream, protocol)
        # Frames the server wrote right behind its response may have come with the same read.
        frames = [event for event in protocol.events_received() if isinstance(event, Frame)]
        wire._absorb(frames, closing=False)
        await wire._flush()
        return wire

    @property
    def close_allowed(self) -> bool:
        """True while our close frame may go out: open, no close frame sent or received."""
        return self._protocol.state is State.OPEN and self._ended is None

    @property
    def ended(self) -> WireClosed | None:
        """How the connection ended, once it has (messages may still be waiting)."""
        return self._ended

    async def receive_some(self, max_bytes: int = READ_SIZE, *, reply: bool = True) -> int:
        """Read once (up to ``max_bytes``), decode it, and append the messages it completes;
        returns the bytes read (0 at the end of the stream).

        Cancel-safe: cancelled while waiting, nothing is lost. The read that ends the
        connection returns normally, so the messages before its end are in :attr:`messages`;
        the next call raises :class:`WireClosed`. A write cut short by a cancellation ends the
        connection too: the peer could not read another frame from us. ``reply=False`` leaves
        the protocol's replies (pongs) for :meth:`flush_replies`, so a caller can cancel the
        read without cancelling a write.
        """
        if self._write_cut and self._ended is None:
            self._ended = WireClosed(1006, "a write was cut short: no further frame can be sent")
        if self._ended is not None:
            raise WireClosed(self._ended.code, self._ended.reason)
        protocol = self._protocol
        try:
            data = await self._stream.receive_some(max_bytes)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._ended = WireClosed(1006, f"connection lost: {_describe(exc)}")
            return 0
        closing = protocol.close_sent is not None
        if data:
            protocol.receive_data(data)
        else:
            protocol.receive_eof()
        # Open: the protocol makes nothing but frames any more.
        self._absorb(cast("list[Frame]", protocol.events_received()), closing=closing)
        if self._pending and reply:
            await self._flush()
        return len(data)

    def readable_now(self) -> bool:
        """True if the kernel holds received bytes nobody has read yet (a poll with no wait);
        False when it does not, or when the stream is not a socket this can ask."""
        if self._poll is None:
            sock = getattr(self._stream, "socket", None)
            if sock is None:  # TLS: ask the TCP stream under it
                sock = getattr(getattr(self._stream, "transport_stream", None), "socket", None)
            if sock is None:
                return False
            self._poll = select.poll()
            self._poll.register(sock.fileno(), select.POLLIN)
        return bool(self._poll.poll(0))

    async def flush_replies(self) -> None:
        """Write the replies a ``receive_some(reply=False)`` left pending (see :meth:`_flush`)."""
        await self._flush()

    def _absorb(self, frames: list[Frame], *, closing: bool) -> None:
        """Take the messages of a read, queue the protocol's replies, and see if it ended.

        ``closing``: our close frame was out before the read. The protocol still answers
        pings then: those pongs are dropped. An EOF to send (``b""``) is dropped too: the
        caller closes the stream."""
        protocol = self._protocol
        self._take(frames)
        writes = protocol.data_to_send()
        if writes and not closing:
            self._pending.extend(chunk for chunk in writes if chunk)
        if self._ended is not None:
            return
        failure = protocol.parser_exc
        if failure is not None and not isinstance(failure, EOFError):
            self._ended = _closed_by_parser(failure)
        elif protocol.close_rcvd is not None:
            self._ended = WireClosed(int(protocol.close_rcvd.code), protocol.close_rcvd.reason)
        elif failure is not None or protocol.state is State.CLOSED:
            self._ended = _closed_by_parser(failure or EOFError())

    def _take(self, frames: list[Frame]) -> None:
        """Append the messages these frames complete; control frames were handled already."""
        append = self.messages.append
        for frame in frames:
            opcode = frame.opcode
            data = frame.data
            if opcode is _TEXT or opcode is _BINARY:
                if not frame.fin:
                    self._fragments = [data]
                    self._fragmented_text = opcode is _TEXT
                    continue
                text = opcode is _TEXT
            elif opcode is _CONT:
                self._fragments.append(data)
                if not frame.fin:
                    continue
                data = b"".join(self._fragments)
                self._fragments = []
                text = self._fragmented_text
            else:
                continue
            if not text:
                append(bytes(data))
                continue
            try:
                append(str(data, "utf-8"))
            except UnicodeDecodeError as exc:
                # Fail the connection: a close frame 1007 (unless ours is out), nothing after.
                reason = f"text message is not UTF-8: {exc.reason} at position {exc.start}"
                self._protocol.fail(1007, reason)
                self._ended = WireClosed(1007, reason)
                return

    async def send_text(self, text: str) -> None:
        """Send one text message (e.g. a command); returns once it is written. Cancelled
        before its turn to write, it is not sent at all.

        Raises:
          WireClosed: the connection is closing or closed: nothing was sent.
          WriteFailed: the write failed; the message may or may not have reached the peer.
        """
        async with self._write_lock:
            if self._write_error is not None:
                raise WriteFailed(self._write_error)
            if not self.close_allowed:
                if self._ended is not None:
                    raise WireClosed(self._ended.code, self._ended.reason)
                raise WireClosed(1006, "closing: our close frame is out")
            # Cancelled waiting for the lock, the command is dropped here, before the protocol
            # has framed it: nothing of it can be written later by another writer.
            await trio.lowlevel.checkpoint_if_cancelled()
            self._protocol.send_text(text.encode())
            self._pending.extend(self._protocol.data_to_send())
            await self._write_pending()
            if self._write_error is not None:
                raise WriteFailed(self._write_error)

    async def send_close(self, code: int, reason: str) -> None:
        """Send our close frame, unless one went out or came in already (at most one is sent).

        A failed write is not raised: the reads tell how the connection ends."""
        async with self._write_lock:
            if self.close_allowed:
                self._protocol.send_close(code, reason)
                self._pending.extend(self._protocol.data_to_send())
                await self._write_pending()

    async def close_handshake(self, code: int = 1000, reason: str = "") -> None:
        """Our close frame (if none went out), then read to the peer's reply or the end of the
        stream; messages read meanwhile are dropped. Bound it with a deadline."""
        await self.send_close(code, reason)
        try:
            while True:
                await self.receive_some()
                self.messages.clear()
        except WireClosed:
            return

    async def _flush(self) -> None:
        """Write what is pending, unless a writer holds the lock: it writes it before it lets
        go, so the reader never waits behind a command blocked on a full send buffer."""
        if self._pending and not self._write_lock.locked():
            async with self._write_lock:
                await self._write_pending()

    async def _write_pending(self) -> None:
        """With the write lock held: write everything pending, in order. A failure is kept
        (later writes are dropped); a write cancelled part-way cuts the stream's write side.

        Cancellation is taken before the first write, while nothing has left the queue (no
        schedule point between that check and the write's own: a caller cancelled there has
        sent nothing and lost no reply). Replies the reader queued during a write are written
        after it, shielded for at most ``_REPLY_WRITE_LIMIT`` s: a command already on the wire
        is never reported cancelled, and its caller never waits long for another's pong.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        first = True
        while self._pending and self._write_error is None:
            data = b"".join(self._pending)
            self._pending.clear()
            if first:
                first = False
                await self._send(data)
                continue
            limit = trio.current_time() + _REPLY_WRITE_LIMIT
            with trio.CancelScope(shield=True, deadline=limit):
                await self._send(data)
        if self._write_error is not None:
            self._pending.clear()

    async def _send(self, data: bytes) -> None:
        """One ``send_all``: a failure is kept; cancelled inside it, part of a frame may have
        gone out and no later frame could be read by the peer, so the write side is cut."""
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._write_error = f"connection lost: {_describe(exc)}"
        except trio.Cancelled:
            self._write_error = "connection lost: a write was cancelled part-way"
            self._write_cut = True
            raise
