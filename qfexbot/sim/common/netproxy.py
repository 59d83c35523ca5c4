"""A loopback TCP proxy that makes network faults: stalls, half-open links, resets, slow reads.

The simulator's own faults (``qfexbot.sim.qfex.faults``) are ones a venue makes: clean closes,
rejected auths, failed REST calls. The network makes others, which no well-behaved server
produces: a socket that stays open and silent, a peer that vanishes, a reset in the middle of a
frame. Put a :class:`FaultProxy` between a client and a simulator and inject them::

    proxy = FaultProxy()
    trade_url = await nursery.start(proxy.front, "trade", sim_urls.trade_url)
    ...                                  # point the client at trade_url
    proxy.inject("stall", target="trade", duration=3.0)

Every accepted connection (a :class:`Link`) is forwarded byte for byte both ways by two pumps,
one per direction. A fault applies to the links open when it is injected (all of them, those
of one ``target``, or a given list) and ends after ``duration`` seconds, when the link closes,
or at :meth:`FaultProxy.heal`. The kinds (``FAULT_KINDS``):

* ``stall``: nothing is forwarded either way; both sockets stay open, no FIN. Afterwards
  forwarding resumes where it stopped (nothing is lost by the proxy).
* ``half_open``: the peer vanished: server→client stops, client→server bytes are discarded;
  the client's socket stays open. When the fault ends the link is reset (the vanished peer
  never comes back; the byte stream is broken anyway).
* ``reset_mid_frame``: part of the next server→client frame is forwarded, then the client's
  socket is reset (RST, ``SO_LINGER`` 0).
* ``slow_reads``: client→server bytes are read a few at a time (``SLOW_READ_BYTES`` per
  ``SLOW_READ_PERIOD``), so the client's data trickles and its socket buffers fill; replies
  to the server's pings arrive late. Server→client is unaffected.
* ``partial_then_silence``: the first bytes of the next server→client WebSocket frame are
  forwarded, then nothing more server→client until the fault ends (client→server flows, so
  the server's pings are still answered); sockets stay open.

Part of the simulator tooling: it knows TCP and the WebSocket frame header, nothing of qfexbot.
"""

from __future__ import annotations

import contextlib
import math
import socket
import struct
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urlsplit, urlunsplit

import trio

from qfexbot.errors import SimulatorError

__all__ = ["FAULT_KINDS", "SLOW_READ_BYTES", "SLOW_READ_PERIOD", "FaultProxy", "Link"]

FAULT_KINDS = ("stall", "half_open", "reset_mid_frame", "slow_reads", "partial_then_silence")
SLOW_READ_BYTES = 4
SLOW_READ_PERIOD = 0.2
"""``slow_reads`` takes SLOW_READ_BYTES from the client every SLOW_READ_PERIOD s (20 B/s)."""
CHUNK = 65536


class _Aborted(SimulatorError):
    """A fault ended the link: the pumps stop and both sockets close (the client's by RST)."""


@dataclass
class _Fault:
    kind: str
    until: float
    ended: trio.Event = field(default_factory=trio.Event)
    cut_done: bool = False  # partial_then_silence: the partial frame has been forwarded

    async def wait_over(self) -> None:
        """Sleep until the fault's duration has passed or it was healed."""
        with trio.move_on_at(self.until):
            await self.ended.wait()


class _FrameScanner:
    """Finds where WebSocket frames start in a server→client byte stream.

    The stream begins with the HTTP upgrade response (up to the blank line), then frames:
    2 header bytes, 2 or 8 bytes of extended length, 4 mask bytes when masked, the payload.
    """

    def __init__(self) -> None:
        self._seen = 0  # bytes fed so far
        self._next: int | None = None  # stream offset of the next frame start (None: in HTTP)
        self._tail = b""  # last bytes of the HTTP response, to find its end across chunks
        self._head = b""  # header bytes of the next frame already seen (header split)

    def feed(self, data: bytes) -> list[tuple[int, int | None]]:
        """``(offset in data, frame size or None if its header is cut)`` per frame starting in
        ``data``."""
        base = self._seen
        self._seen += len(data)
        if self._next is None:
            buffer = self._tail + data
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self._tail = buffer[-3:]
                return []
            self._next = base - len(self._tail) + end + 4
        starts: list[tuple[int, int | None]] = []
        while self._next < self._seen:
            offset = self._next - base
            head = self._head + data[max(offset, 0) : max(offset, 0) + 14]
            size = _frame_size(head)
            if offset >= 0:
                starts.append((offset, size))
            if size is None:  # the header continues in the next chunk
                self._head = head
                break
            self._head = b""
            self._next += size
        return starts


def _frame_size(head: bytes) -> int | None:
    """Total size of the frame whose header starts ``head`` (None: header incomplete)."""
    if len(head) < 2:
        return None
    length = head[1] & 0x7F
    extra = 2 if length == 126 else 8 if length == 127 else 0
    size = 2 + extra + (4 if head[1] & 0x80 else 0)
    if len(head) < size:
        return None
    if extra:
        length = int.from_bytes(head[2 : 2 + extra], "big")
    return size + length


def _cut_point(data: bytes, starts: list[tuple[int, int | None]]) -> int | None:
    """Where to cut ``data`` so the bytes before it end inside a frame (None: no frame starts).

    Inside the first frame starting in ``data``: its header and about half its payload."""
    if not starts:
        return None
    offset, size = starts[0]
    inside = 1 if size is None else max(1, min(size - 1, size // 2))
    return min(offset + inside, len(data))


class Link:
    """One proxied connection: the client's socket and ours to the upstream server.

    Attributes:
      target: the name given to :meth:`FaultProxy.front` / :meth:`FaultProxy.forward`.
      upstream_local: our address on the upstream socket, i.e. the peer address the server
        sees for this connection (to find which link carries which server-side session).
    """

    def __init__(self, target: str, client: trio.SocketStream, upstream: trio.SocketStream) -> None:
        self.target = target
        self.client = client
        self.upstream = upstream
        self.upstream_local: tuple[str, int] = upstream.socket.getsockname()[:2]
        self.fault: _Fault | None = None
        self.scope = trio.CancelScope()
        self._scanner = _FrameScanner()

    def __repr__(self) -> str:
        kind = self.fault.kind if self.fault else None
        return f"Link(target={self.target!r}, upstream_local={self.upstream_local}, fault={kind})"

    def _current(self) -> _Fault | None:
        """The fault in force (None once over); an ended ``half_open`` resets the link."""
        fault = self.fault
        if fault is not None and (fault.ended.is_set() or trio.current_time() >= fault.until):
            self.fault = None
            if fault.kind == "half_open":
                self._reset_client()
            return None
        return fault

    def _reset_client(self) -> None:
        """Make the client's socket close with RST instead of FIN, and end the link."""
        with contextlib.suppress(OSError):
            self.client.socket.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        raise _Aborted

    async def to_client(self, data: bytes) -> None:
        """Forward server→client bytes as the current fault allows."""
        starts = self._scanner.feed(data)
        fault = self._current()
        kind = fault.kind if fault else None
        if fault is None or kind == "slow_reads":
            await self.client.send_all(data)
        elif kind == "stall":
            await fault.wait_over()
            await self.client.send_all(data)
        elif kind == "half_open":
            await fault.wait_over()
            self._reset_client()
        elif kind == "reset_mid_frame":
            cut = _cut_point(data, starts)
            await self.client.send_all(data[: len(data) // 2 if cut is None else cut])
            self._reset_client()
        else:  # partial_then_silence
            cut = _cut_point(data, starts)
            if fault.cut_done or cut is None:  # no frame starts here: wait for the next one
                await self.client.send_all(data)
                return
            fault.cut_done = True
            await self.client.send_all(data[:cut])
            await fault.wait_over()
            await self.client.send_all(data[cut:])

    async def to_upstream(self, data: bytes) -> None:
        """Forward client→server bytes as the current fault allows."""
        fault = self._current()
        if fault is not None and fault.kind == "stall":
            await fault.wait_over()
        elif fault is not None and fault.kind == "half_open":
            return  # the peer vanished: what the client sends goes nowhere
        elif fault is not None and fault.kind == "slow_reads":
            # A read begun before the fault may hold more: let that trickle too.
            while len(data) > SLOW_READ_BYTES and self._current() is fault:
                await self.upstream.send_all(data[:SLOW_READ_BYTES])
                data = data[SLOW_READ_BYTES:]
                with trio.move_on_after(SLOW_READ_PERIOD):
                    await fault.ended.wait()
        await self.upstream.send_all(data)

    def read_size(self) -> int:
        """How many client bytes the client→server pump may read next."""
        fault = self._current()
        return SLOW_READ_BYTES if fault is not None and fault.kind == "slow_reads" else CHUNK

    async def before_client_read(self) -> None:
        """Hold the client→server pump while the link is stalled, pace it while reads are slow."""
        fault = self._current()
        if fault is not None and fault.kind == "stall":
            await fault.wait_over()
        elif fault is not None and fault.kind == "slow_reads":
            with trio.move_on_after(SLOW_READ_PERIOD):
                await fault.ended.wait()

    async def before_server_read(self) -> None:
        """Hold the server→client pump while the link is stalled or silent."""
        fault = self._current()
        if fault is not None and fault.kind in ("stall", "half_open"):
            await fault.wait_over()
            self._current()  # an ended half_open resets the link here


class FaultProxy:
    """Forwards loopback TCP connections to upstream servers and injects network faults.

    Start one listening port per upstream with :meth:`front` (a URL in, the proxied URL out)
    or :meth:`forward` (host and port in, the bound port out), then :meth:`inject` faults.

    Attributes:
      links: the connections open now.
      injected: how many links each fault kind was applied to, in total.

    Resource handling: cancelling the task running :meth:`front` / :meth:`forward` closes the
    listener and every link of that target.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.links: set[Link] = set()
        self.injected: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"FaultProxy(host={self.host!r}, links={len(self.links)})"

    async def front(
        self, target: str, url: str, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Proxy the server of ``url`` (ws://, http://); ``task_status.started(proxied url)``."""
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"expected a URL with a host and a port, got {url!r}")
        async with trio.open_nursery() as nursery:
            port = await nursery.start(self.forward, target, parts.hostname, parts.port)
            task_status.started(urlunsplit(parts._replace(netloc=f"{self.host}:{port}")))

    async def forward(
        self,
        target: str,
        host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on an ephemeral port of ``self.host`` and forward each connection to
        ``host:port``; ``task_status.started(port)``. Runs until cancelled."""
        handler = partial(self._serve_link, target, host, port)
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host=self.host))
            task_status.started(listeners[0].socket.getsockname()[1])

    def inject(
        self,
        kind: str,
        *,
        duration: float = 5.0,
        target: str | None = None,
        links: Iterable[Link] | None = None,
    ) -> int:
        """Apply fault ``kind`` for ``duration`` s to the open links (of ``target``, or the
        given ``links``); returns how many. A link keeps only its latest fault."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown network fault {kind!r}; expected one of {FAULT_KINDS}")
        if not duration > 0 or math.isinf(duration):
            raise ValueError(f"expected a finite duration > 0 s, got {duration!r}")
        chosen = [
            link
            for link in (self.links if links is None else links)
            if link in self.links and target in (None, link.target)
        ]
        until = trio.current_time() + duration
        for link in chosen:
            if link.fault is not None:
                link.fault.ended.set()
            link.fault = _Fault(kind, until)
        self.injected[kind] += len(chosen)
        return len(chosen)

    def heal(self) -> None:
        """End every fault now (stalled links resume; half-open ones are reset)."""
        for link in self.links:
            if link.fault is not None:
                link.fault.ended.set()

    def links_of(self, target: str) -> list[Link]:
        """The open links of ``target``."""
        return [link for link in self.links if link.target == target]

    async def _serve_link(
        self, target: str, host: str, port: int, client: trio.SocketStream
    ) -> None:
        try:
            upstream = await trio.open_tcp_stream(host, port)
        except OSError:
            await client.aclose()  # as if the server refused: the client sees the close
            return
        link = Link(target, client, upstream)
        self.links.add(link)
        try:
            with link.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump_from_client, link)
                    nursery.start_soon(self._pump_from_server, link)
        finally:
            self.links.discard(link)
            if link.fault is not None:
                link.fault.ended.set()
            with trio.CancelScope(shield=True):
                await client.aclose()
                await upstream.aclose()

    async def _pump_from_client(self, link: Link) -> None:
        await self._pump(
            link,
            link.client,
            link.upstream,
            link.before_client_read,
            link.read_size,
            link.to_upstream,
        )

    async def _pump_from_server(self, link: Link) -> None:
        await self._pump(
            link, link.upstream, link.client, link.before_server_read, lambda: CHUNK, link.to_client
        )

    async def _pump(
        self,
        link: Link,
        src: trio.SocketStream,
        dst: trio.SocketStream,
        before_read: Callable[[], Awaitable[None]],
        read_size: Callable[[], int],
        send: Callable[[bytes], Awaitable[None]],
    ) -> None:
        """Copy ``src`` to ``dst`` through the fault gate until EOF (then half-close ``dst``);
        a reset, an error or an aborting fault ends the whole link."""
        try:
            while True:
                await before_read()
                data = await src.receive_some(read_size())
                if not data:
                    with contextlib.suppress(OSError, trio.ClosedResourceError):
                        await dst.send_eof()
                    return
                await send(data)
        except (_Aborted, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            link.scope.cancel()
