"""The session's WebSocket client (``qfexbot.core.wire``) against servers on 127.0.0.1.

A trio-websocket server where a real peer is enough; a raw-byte server (its frames built with
``websockets.frames.Frame``) where a test needs exact frames or must see every byte the client
writes, e.g. that no pong follows our close frame.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

from qfexbot.core.wire import (
    MAX_MESSAGE_SIZE,
    HandshakeFailed,
    UpgradeRejected,
    WireClosed,
    WireConnection,
    WriteFailed,
)

WAIT = 10.0  # upper bound of any single wait in these tests

RawHandler = Callable[[trio.SocketStream], Awaitable[None]]


@asynccontextmanager
async def _connect(
    port: int, headers: list[tuple[bytes, bytes]] | None = None
) -> AsyncIterator[WireConnection]:
    """A client connection to 127.0.0.1:port; its stream is closed on the way out."""
    with trio.fail_after(WAIT):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        with trio.fail_after(WAIT):
            wire = await WireConnection.open(stream, f"ws://127.0.0.1:{port}/feed", headers or [])
        yield wire
    finally:
        await stream.aclose()


async def _read_to_the_end(wire: WireConnection) -> tuple[list[str | bytes], WireClosed]:
    """Every message until the connection ends, and how it ended (bounded)."""
    received: list[str | bytes] = []
    with trio.fail_after(WAIT):
        while True:
            received.extend(wire.messages)
            wire.messages.clear()
            try:
                await wire.receive_some()
            except WireClosed as closed:
                return received, closed


async def _websocket_server(
    nursery: trio.Nursery, handler: Callable[[WebSocketRequest], Awaitable[None]]
) -> int:
    server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
    return int(server.port)


async def _raw_server(nursery: trio.Nursery, handler: RawHandler) -> int:
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return int(listeners[0].socket.getsockname()[1])


async def _accept(stream: trio.SocketStream, then: bytes = b"") -> Request:
    """The server's side of the upgrade (websockets' sans-I/O server), with ``then`` written
    in the same write as the response; frames are ours after."""
    protocol = ServerProtocol()
    with trio.fail_after(WAIT):
        while True:
            protocol.receive_data(await stream.receive_some(65536))
            requests = [e for e in protocol.events_received() if isinstance(e, Request)]
            if requests:
                break
    protocol.send_response(protocol.accept(requests[0]))
    await stream.send_all(b"".join(protocol.data_to_send()) + then)
    return requests[0]


def _frame(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    """A server's frame (unmasked), byte for byte."""
    return Frame(opcode, data, fin).serialize(mask=False)


_OVERSIZED_HEADER = _frame(Opcode.TEXT, b"x" * (MAX_MESSAGE_SIZE + 1))[:10]
"""The header of a text frame one byte over the limit (64-bit length): the client refuses it
from the header, so the payload is never sent (a peer that stopped reading cannot block it)."""


async def _read_until_eof(stream: trio.SocketStream) -> bytes:
    """Every byte the client writes until it closes its end (bounded)."""
    data = bytearray()
    with trio.fail_after(WAIT):
        while chunk := await stream.receive_some(65536):
            data += chunk
    return bytes(data)


class _Capture:
    """Every byte the client writes after the upgrade, once it has closed its end."""

    def __init__(self) -> None:
        self.data = b""
        self.done = trio.Event()

    async def read(self, stream: trio.SocketStream, first: bytes = b"") -> None:
        self.data = first + await _read_until_eof(stream)
        self.done.set()

    async def frames(self) -> list[Frame]:
        with trio.fail_after(WAIT):
            await self.done.wait()
        return _client_frames(self.data)


def _client_frames(data: bytes) -> list[Frame]:
    """The frames in ``data`` as a client wrote them (masked), in order."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=True)
        with pytest.raises(StopIteration) as done:  # all the bytes are there: it never waits
            next(parser)
        frames.append(done.value.value)
    return frames


# ------------------------------------------------------------------------- handshake


async def test_the_upgrade_carries_the_drivers_headers(nursery: trio.Nursery) -> None:
    seen: list[tuple[str, str]] = []

    async def handler(request: WebSocketRequest) -> None:
        seen.extend(request.headers)
        ws = await request.accept()
        await ws.send_message("hello")
        await ws.aclose()

    port = await _websocket_server(nursery, handler)
    async with _connect(port, [(b"X-Api-Key", b"key-1")]) as wire:
        received, closed = await _read_to_the_end(wire)
    assert (b"x-api-key", b"key-1") in seen
    assert received == ["hello"]
    assert closed.code == 1000


async def test_a_debug_root_logger_sees_no_header_or_frame_of_ours(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    """websockets logs every request header and every frame sent at DEBUG, outside our secret
    scrubbing (issue-16 audit: an EFX-Sign header and an auth frame leaked so)."""

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.get_message()
        await ws.send_message("hello")
        await ws.aclose()

    secret = "s3cr3t-signature"
    port = await _websocket_server(nursery, handler)
    with caplog.at_level(logging.DEBUG):  # the root logger, as an embedding app may set it
        async with _connect(port, [(b"EFX-Sign", secret.encode())]) as wire:
            await wire.send_text(f'{{"type":"auth","signature":"{secret}"}}')
            received, _ = await _read_to_the_end(wire)
    assert received == ["hello"]
    assert caplog.records  # DEBUG was on: trio-websocket's server side logged
    assert not [r for r in caplog.records if secret in r.getMessage()]


async def test_a_rejected_upgrade_gives_the_status_and_the_start_of_the_body(
    nursery: trio.Nursery,
) -> None:
    async def handler(request: WebSocketRequest) -> None:
        await request.reject(403, body=b"forbidden: unknown key " + b"x" * 500)

    port = await _websocket_server(nursery, handler)
    with pytest.raises(UpgradeRejected) as rejected:
        async with _connect(port):
            pass
    assert rejected.value.status_code == 403
    assert rejected.value.body.startswith(b"forbidden: unknown key")
    assert len(rejected.value.body) == 200


async def test_a_server_that_hangs_up_before_answering_fails_the_handshake(
    nursery: trio.Nursery,
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)  # the request
        await stream.aclose()

    port = await _raw_server(nursery, handler)
    with pytest.raises(HandshakeFailed) as failed:
        async with _connect(port):
            pass
    assert not isinstance(failed.value, UpgradeRejected)


async def test_frames_sent_right_behind_the_response_are_kept(nursery: trio.Nursery) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await _accept(stream, then=_frame(Opcode.TEXT, b"first") + _frame(Opcode.CLOSE, b""))
        await _read_until_eof(stream)

    port = await _raw_server(nursery, handler)
    async with _connect(port) as wire:
        received, closed = await _read_to_the_end(wire)
    assert received == ["first"]
    assert closed.code == 1005  # a close frame without a code


# ------------------------------------------------------------------------- messages


async def test_a_ping_is_answered_with_a_pong(nursery: trio.Nursery) -> None:
    ponged = trio.Event()

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.ping(b"are you there")  # returns once the matching pong is in
        ponged.set()
        await ws.send_message("after the pong")
        await ws.aclose()

    port = await _websocket_server(nursery, handler)
    async with _connect(port) as wire:
        received, closed = await _read_to_the_end(wire)
    assert ponged.is_set()
    assert received == ["after the pong"]
    assert closed.code == 1000


async def test_fragmented_messages_are_assembled(nursery: trio.Nursery) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await _accept(stream)
        await stream.send_all(
            _frame(Opcode.TEXT, b"hel", fin=False)
            + _frame(Opcode.CONT, "lo wörld"[:3].encode(), fin=False)
            + _frame(Opcode.PING, b"in between")  # control frames may come between fragments
            + _frame(Opcode.CONT, "lo wörld"[3:].encode())
            + _frame(Opcode.BINARY, b"\x00\x01", fin=False)
            + _frame(Opcode.CONT, b"\x02")
            + _frame(Opcode.CLOSE, Close(1000, "done").serialize())
        )
        await _read_until_eof(stream)

    port = await _raw_server(nursery, handler)
    async with _connect(port) as wire:
        received, closed = await _read_to_the_end(wire)
    assert received == ["hello wörld", b"\x00\x01\x02"]
    assert (closed.code, closed.reason) == (1000, "done")


async def test_messages_larger_than_one_read_arrive_whole(nursery: trio.Nursery) -> None:
    big_text = "x" * 200_000
    big_binary = bytes(range(256)) * 300  # 76,800 bytes

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message(big_text)
        await ws.send_message(big_binary)
        await ws.send_message("small")
        await ws.aclose()

    port = await _websocket_server(nursery, handler)
    async with _connect(port) as wire:
        received, closed = await _read_to_the_end(wire)
    assert received == [big_text, big_binary, "small"]
    assert closed.code == 1000


async def test_an_oversized_message_fails_the_connection_with_1009(
    nursery: trio.Nursery,
) -> None:
    written = _Capture()

    async def handler(stream: trio.SocketStream) -> None:
        await _accept(stream)
        await stream.send_all(_frame(Opcode.TEXT, b"before") + _OVERSIZED_HEADER)
        await written.read(stream)

    port = await _raw_server(nursery, handler)
    async with _connect(port) as wire:
        received, closed = await _read_to_the_end(wire)
    assert received == ["before"]
    assert closed.code == 1009 and "maximum message size" in closed.reason
    [close] = await written.frames()
    assert close.opcode is Opcode.CLOSE and Close.parse(close.data).code == 1009


async def test_a_text_message_that_is_not_utf8_fails_the_connection_with_1007(
    nursery: trio.Nursery,
) -> None:
    written = _Capture()

    async def handler(stream: trio.SocketStream) -> None:
        await _accept(stream)
        await stream.send_all(
            _frame(Opcode.TEXT, b"fine")
            + _frame(Opcode.TEXT, b"\xff\xfe")
            + _frame(Opcode.TEXT, b"after the bad one")
        )
        await written.read(stream)

    port = await _raw_server(nursery, handler)
    async with _connect(port) as wire:
        received, closed = await _read_to_the_end(wire)
    assert received == ["fine"]
    assert closed.code == 1007
    [close] = await written.frames()
    assert close.opcode is Opcode.CLOSE and Close.parse(close.data).code == 1007


# ------------------------------------------------------------------------- the end


async def test_the_peers_close_comes_after_every_message_before_it(
    nursery: trio.Nursery,
) -> None:
    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        for i in range(50):
            await ws.send_message(f"m{i}")
        await ws.aclose(1001, "going away")

    port = await _websocket_server(nursery, handler)
    async with _connect(port) as wire:
        received, closed = await _read_to_the_end(wire)
        assert wire.ended is not None and not wire.close_allowed
        with pytest.raises(WireClosed):  # closed stays closed
            await wire.receive_some()
    assert received == [f"m{i}" for i in range(50)]
    assert (closed.code, closed.reason) == (1001, "going away")


async def test_a_stream_that_ends_without_a_close_frame_is_1006_after_its_messages(
    nursery: trio.Nursery,
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await _accept(stream)
        await stream.send_all(_frame(Opcode.TEXT, b"one") + _frame(Opcode.TEXT, b"two"))
        await stream.aclose()

    port = await _raw_server(nursery, handler)
    async with _connect(port) as wire:
        received, closed = await _read_to_the_end(wire)
    assert received == ["one", "two"]
    assert closed.code == 1006


async def test_a_failed_command_write_raises_to_it_and_the_reads_go_on_to_the_close(
    nursery: trio.Nursery,
) -> None:
    """Issue 12: the peer writes, closes and hangs up before the client has read anything; a
    command written then fails, and every message before the peer's close is still read."""
    opened, hung_up = trio.Event(), trio.Event()

    async def handler(stream: trio.SocketStream) -> None:
        await _accept(stream)
        await opened.wait()  # not with the response: the client must see the write fail first
        frames = b"".join(_frame(Opcode.TEXT, f"m{i}".encode()) for i in range(20))
        await stream.send_all(frames + _frame(Opcode.CLOSE, Close(1001, "bye").serialize()))
        await stream.aclose()  # our command then meets a closed socket: a reset
        hung_up.set()

    port = await _raw_server(nursery, handler)
    async with _connect(port) as wire:
        opened.set()
        with trio.fail_after(WAIT):
            await hung_up.wait()
            while True:
                try:
                    await wire.send_text('{"type": "get_user_orders"}')
                except WriteFailed as exc:
                    failed = exc
                    break
                await trio.sleep(0.02)
        assert failed.reason.startswith("connection lost: ")
        with pytest.raises(WriteFailed):  # the write side stays failed
            await wire.send_text("again")
        received, closed = await _read_to_the_end(wire)
    assert received == [f"m{i}" for i in range(20)]
    assert (closed.code, closed.reason) == (1001, "bye")


async def test_no_pong_and_no_second_close_once_our_close_frame_is_out(
    nursery: trio.Nursery,
) -> None:
    """RFC 6455 lets a closing endpoint leave pings unanswered; the messages that come before
    the peer's reply are still read. Every byte the client writes after the upgrade is one
    close frame."""
    written = _Capture()
    got_close = trio.Event()

    async def handler(stream: trio.SocketStream) -> None:
        await _accept(stream)
        first = await stream.receive_some(65536)  # our close frame (a few bytes, one read)
        got_close.set()
        await stream.send_all(
            _frame(Opcode.PING, b"held")
            + _frame(Opcode.TEXT, b"late")
            + _OVERSIZED_HEADER  # would be a 1009 close frame if ours were not out
        )
        await written.read(stream, first)

    port = await _raw_server(nursery, handler)
    async with _connect(port) as wire:
        await wire.send_close(1000, "stale stream")
        await wire.send_close(1000, "again")  # at most one close frame goes out
        assert not wire.close_allowed
        with pytest.raises(WireClosed) as refused:
            await wire.send_text("a command while closing")
        assert not isinstance(refused.value, WriteFailed)
        with trio.fail_after(WAIT):
            await got_close.wait()
        received, closed = await _read_to_the_end(wire)
    assert received == ["late"]
    assert closed.code == 1009
    [close] = await written.frames()
    assert close.opcode is Opcode.CLOSE
    assert Close.parse(close.data) == Close(1000, "stale stream")


async def test_close_handshake_reads_to_the_peers_reply(nursery: trio.Nursery) -> None:
    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message("dropped")
        try:
            await ws.get_message()  # our close frame: trio-websocket replies to it
        except ConnectionClosed:
            return

    port = await _websocket_server(nursery, handler)
    async with _connect(port) as wire:
        with trio.fail_after(WAIT):
            await wire.close_handshake()
        assert wire.ended is not None and wire.ended.code == 1000
        assert not wire.messages


# ------------------------------------------------------------------------- writes


async def _fill_until_blocked(wire: WireConnection, blocked: trio.Event) -> None:
    """Send 1 MiB messages to a peer that reads nothing, until one write blocks for good."""
    while True:
        with trio.move_on_after(0.3) as waited:
            await wire.send_text("x" * 2**20)
        if waited.cancelled_caught:
            blocked.set()
            return


async def test_a_write_cut_short_by_a_cancellation_ends_the_connection(
    nursery: trio.Nursery,
) -> None:
    """Part of a frame may have gone out: no later frame could be read by the peer, so the
    write side is done and the next read ends the connection."""

    async def handler(stream: trio.SocketStream) -> None:
        await _accept(stream)
        await trio.sleep_forever()  # reads nothing more: the buffers fill up

    port = await _raw_server(nursery, handler)
    async with _connect(port) as wire:
        blocked = trio.Event()
        with trio.fail_after(WAIT):
            await _fill_until_blocked(wire, blocked)
        with pytest.raises(WriteFailed):
            await wire.send_text("the next command")
        with trio.fail_after(WAIT), pytest.raises(WireClosed) as closed:
            await wire.receive_some()
    assert closed.value.code == 1006 and "cut short" in closed.value.reason


async def test_the_reader_never_waits_behind_a_blocked_write(nursery: trio.Nursery) -> None:
    """A command blocked on a full send buffer holds the write lock; a ping that arrives then
    must not hold the reads up behind it (its pong waits for the blocked writer instead)."""
    speak = trio.Event()

    async def handler(stream: trio.SocketStream) -> None:
        await _accept(stream)
        await speak.wait()
        await stream.send_all(_frame(Opcode.PING, b"p") + _frame(Opcode.TEXT, b"still read"))
        await trio.sleep_forever()

    port = await _raw_server(nursery, handler)
    async with _connect(port) as wire, trio.open_nursery() as writers:
        blocked = trio.Event()

        async def writer() -> None:
            # Like _fill_until_blocked, but the last write stays blocked (never cancelled).
            while True:
                done = trio.Event()
                writers.start_soon(_send_and_set, wire, done)
                with trio.move_on_after(0.3):
                    await done.wait()
                if not done.is_set():
                    blocked.set()
                    return

        writers.start_soon(writer)
        with trio.fail_after(WAIT):
            await blocked.wait()
        speak.set()
        with trio.fail_after(WAIT):
            while not wire.messages:
                await wire.receive_some()
        assert list(wire.messages) == ["still read"]
        writers.cancel_scope.cancel()


async def _send_and_set(wire: WireConnection, done: trio.Event) -> None:
    await wire.send_text("x" * 2**20)
    done.set()
