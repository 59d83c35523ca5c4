"""The network-fault proxy at the byte level: forwarding, and what each fault does to the bytes."""

from __future__ import annotations

from functools import partial

import pytest
import trio
from wait_helpers import wait_until

from qfexbot.sim.common.netproxy import SLOW_READ_BYTES, SLOW_READ_PERIOD, FaultProxy, _FrameScanner

WAIT = 5.0
UPGRADE = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"


def frame(payload: bytes) -> bytes:
    """An unmasked server→client text frame."""
    n = len(payload)
    if n < 126:
        return bytes([0x81, n]) + payload
    if n < 65536:
        return bytes([0x81, 126]) + n.to_bytes(2, "big") + payload
    return bytes([0x81, 127]) + n.to_bytes(8, "big") + payload


class Upstream:
    """A TCP server that records what it receives and lets the test write to its client."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.streams: list[trio.SocketStream] = []
        self.connected = trio.Event()
        self.eof = trio.Event()

    async def handle(self, stream: trio.SocketStream) -> None:
        self.streams.append(stream)
        self.connected.set()
        try:
            while data := await stream.receive_some(65536):
                self.received += data
            self.eof.set()
        except trio.BrokenResourceError:
            self.eof.set()


async def proxied(nursery: trio.Nursery) -> tuple[FaultProxy, Upstream, trio.SocketStream]:
    """A proxy in front of an :class:`Upstream`, and a client connected through it."""
    upstream = Upstream()
    listeners = await nursery.start(partial(trio.serve_tcp, upstream.handle, 0, host="127.0.0.1"))
    proxy = FaultProxy()
    port = await nursery.start(
        proxy.forward, "up", "127.0.0.1", listeners[0].socket.getsockname()[1]
    )
    client = await trio.open_tcp_stream("127.0.0.1", port)
    nursery.start_soon(close_at_end, client)
    with trio.fail_after(WAIT):
        await upstream.connected.wait()
        await wait_until(lambda: proxy.links, within=WAIT)
    return proxy, upstream, client


async def close_at_end(stream: trio.SocketStream) -> None:
    """Close the test's client when the test's nursery is cancelled."""
    try:
        await trio.sleep_forever()
    finally:
        await stream.aclose()


async def receive_exactly(stream: trio.SocketStream, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = await stream.receive_some(n - len(data))
        assert chunk, f"EOF after {len(data)} of {n} bytes"
        data += chunk
    return bytes(data)


async def nothing_arrives(stream: trio.SocketStream, seconds: float) -> bool:
    with trio.move_on_after(seconds):
        await stream.receive_some(1)
        return False
    return True


async def test_forwards_both_ways_and_passes_on_eof(nursery: trio.Nursery) -> None:
    proxy, upstream, client = await proxied(nursery)
    peer_port = upstream.streams[0].socket.getpeername()[1]
    assert [link.upstream_local[1] for link in proxy.links_of("up")] == [peer_port]
    with trio.fail_after(WAIT):
        await client.send_all(b"hello")
        await upstream.streams[0].send_all(b"world")
        assert await receive_exactly(client, 5) == b"world"
        await client.send_eof()
        await upstream.eof.wait()
    assert bytes(upstream.received) == b"hello"


async def test_stall_holds_both_directions_then_resumes(nursery: trio.Nursery) -> None:
    proxy, upstream, client = await proxied(nursery)
    assert proxy.inject("stall", duration=0.6) == 1
    started = trio.current_time()
    with trio.fail_after(WAIT):
        await client.send_all(b"ping")
        await upstream.streams[0].send_all(b"data")
        assert await nothing_arrives(client, 0.4)
        assert upstream.received == b""  # and no FIN either way: both sockets open
        assert await receive_exactly(client, 4) == b"data"
    assert trio.current_time() - started >= 0.55
    await wait_until(lambda: upstream.received == b"ping", within=WAIT)
    assert proxy.injected["stall"] == 1


async def test_half_open_discards_client_bytes_then_resets(nursery: trio.Nursery) -> None:
    proxy, upstream, client = await proxied(nursery)
    proxy.inject("half_open", duration=0.5, target="up")
    with trio.fail_after(WAIT):
        await client.send_all(b"lost")
        await upstream.streams[0].send_all(b"unseen")
        with pytest.raises(trio.BrokenResourceError):  # the reset at the end of the fault
            while await client.receive_some(100):
                raise AssertionError("server bytes reached a half-open client")
    assert upstream.received == b""


async def test_reset_mid_frame_forwards_part_of_a_frame_then_rst(nursery: trio.Nursery) -> None:
    proxy, upstream, client = await proxied(nursery)
    server = upstream.streams[0]
    with trio.fail_after(WAIT):
        await server.send_all(UPGRADE + frame(b"a" * 10))
        assert await receive_exactly(client, len(UPGRADE) + 12) == UPGRADE + frame(b"a" * 10)
        proxy.inject("reset_mid_frame", duration=5)
        await server.send_all(frame(b"b" * 300))
        got = bytearray()
        with pytest.raises(trio.BrokenResourceError):
            while chunk := await client.receive_some(1000):
                got += chunk
    assert 0 < len(got) < 304 and frame(b"b" * 300).startswith(bytes(got))


async def test_partial_then_silence_cuts_the_next_frame(nursery: trio.Nursery) -> None:
    proxy, upstream, client = await proxied(nursery)
    server = upstream.streams[0]
    with trio.fail_after(WAIT):
        await server.send_all(UPGRADE)
        await receive_exactly(client, len(UPGRADE))
        proxy.inject("partial_then_silence", duration=0.6)
        whole = frame(b"x" * 200)
        await server.send_all(whole)
        part = await client.receive_some(1000)
        assert 0 < len(part) < len(whole) and whole.startswith(part)
        assert await nothing_arrives(client, 0.3)
        await client.send_all(b"pong")  # client→server still flows (pings answered)
        await wait_until(lambda: upstream.received == b"pong", within=WAIT)
        # After the fault the rest follows: the stream is whole again.
        assert await receive_exactly(client, len(whole) - len(part)) == whole[len(part) :]


async def test_slow_reads_trickle_the_clients_bytes(nursery: trio.Nursery) -> None:
    proxy, upstream, client = await proxied(nursery)
    proxy.inject("slow_reads", duration=1.0)
    with trio.fail_after(WAIT):
        await client.send_all(b"z" * 200)
        await trio.sleep(0.6)
        # At most one read per period (plus the one in progress when the fault began).
        assert len(upstream.received) <= SLOW_READ_BYTES * (0.6 / SLOW_READ_PERIOD + 2)
        await upstream.streams[0].send_all(b"fast")
        assert await receive_exactly(client, 4) == b"fast"  # server→client unaffected
        # After the fault: full speed.
        await wait_until(lambda: len(upstream.received) >= 200, within=WAIT)


async def test_faults_reject_bad_arguments_and_heal_ends_them(nursery: trio.Nursery) -> None:
    proxy, upstream, client = await proxied(nursery)
    with pytest.raises(ValueError, match="unknown network fault 'drop'"):
        proxy.inject("drop")
    with pytest.raises(ValueError, match="duration > 0"):
        proxy.inject("stall", duration=0)
    assert proxy.inject("stall", target="other") == 0
    proxy.inject("stall", duration=60)
    await upstream.streams[0].send_all(b"held")
    assert await nothing_arrives(client, 0.2)
    proxy.heal()
    with trio.fail_after(WAIT):
        assert await receive_exactly(client, 4) == b"held"


def test_frame_scanner_finds_frames_across_chunks() -> None:
    stream = UPGRADE + frame(b"a" * 5) + frame(b"b" * 300) + frame(b"c" * 70000)
    scanner = _FrameScanner()
    starts = []
    position = 0
    for size in (10, 50, 3, 1, 200, 5000, 100000):  # splits the upgrade and the headers
        chunk = stream[position : position + size]
        starts += [(position + offset, n) for offset, n in scanner.feed(chunk)]
        position += len(chunk)
    first = len(UPGRADE)
    assert [offset for offset, _ in starts] == [first, first + 7, first + 7 + 304]
    sizes = [n for _, n in starts]
    # The 300-byte frame's header was split across chunks: its size is not known yet there.
    assert sizes == [7, None, 70010]
