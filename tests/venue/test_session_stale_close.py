"""The session's own close of a stale stream: bounded, and no frame already received is lost.

Review of issue 12. The supervisor runs here against small loopback servers (plain WebSocket,
or TLS with a certificate made for the test) that do what the simulator cannot: stop reading
while a plugin's command fills the send buffer, or close in the middle of the STALE publish.
The driver turns every frame into one event, so each frame the session read can be counted.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import trio
from tls_helpers import self_signed
from trio_websocket import WebSocketRequest, serve_websocket, wrap_server_stream
from wait_helpers import wait_until

from qfexbot.config import SessionSettings
from qfexbot.core.session import SessionNotLive, Supervisor
from qfexbot.events import ConnectionState, ConnectionStateEvent, Event

S = ConnectionState
WAIT = 15.0  # upper bound of any single wait in these tests


class _EchoDriver:
    """A driver with no handshake steps: each frame is one :class:`Event` carrying it."""

    authenticates = False
    resyncs = False
    watch_stale = True

    def __init__(self, url: str) -> None:
        self.url = url

    def handshake_headers(self) -> list[tuple[bytes, bytes]]:
        return []

    async def subscribe(self, conn: Any) -> None:
        return None

    def parse(self, frame: str | bytes, now: float) -> list[Any]:
        return [Event(venue="test", account_id="acct", received_at=now, raw=frame)]

    async def on_control(self, item: Any) -> None:  # pragma: no cover - parse yields events only
        raise AssertionError(item)

    def encode(self, message: dict[str, Any]) -> str:
        return str(message["text"])

    def command_name(self, message: dict[str, Any]) -> str | None:
        return None


def _settings(*, stale_after: float, connect_timeout: float = 2.0) -> SessionSettings:
    # A long backoff: each test ends at the first BACKOFF, no reconnect interferes.
    return SessionSettings(
        connect_timeout=connect_timeout,
        auth_timeout=2.0,
        stale_after=stale_after,
        backoff_initial=30.0,
        backoff_max=30.0,
    )


class _Recorder:
    """The session's publish: frames (as text) and state events, in order."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.changed = trio.Event()

    def frames(self) -> list[str]:
        return [item for item in self.items if isinstance(item, str)]

    def states(self) -> list[ConnectionStateEvent]:
        return [item for item in self.items if isinstance(item, ConnectionStateEvent)]

    def backoff(self) -> ConnectionStateEvent:
        """The first BACKOFF: the end of the connection under test."""
        return next(event for event in self.states() if event.state is S.BACKOFF)


async def _run_to_backoff(supervisor: Supervisor) -> None:
    """Run the session until its first BACKOFF (bounded), then stop it."""
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        with trio.fail_after(WAIT):
            await supervisor.wait_for(S.BACKOFF)
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------ the venue closes during STALE


@pytest.mark.parametrize("ending", ["close frame", "bare EOF"])
async def test_frames_sent_before_a_close_during_the_stale_publish_are_delivered(
    nursery: trio.Nursery, ending: str
) -> None:
    """The venue writes frames then closes (or its TCP stream ends) while a subscriber is
    still busy with STALE: the connection has ended (the wire no longer allows a close frame)
    by the time the session would send its own, and the frames read before the close must
    still be published."""
    stale_seen = trio.Event()

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message("f0")
        await stale_seen.wait()  # the client is publishing STALE now
        for i in range(1, 4):
            await ws.send_message(f"f{i}")
        if ending == "close frame":
            await ws.aclose()
        else:
            await ws._stream.aclose()  # no close frame: the TCP stream just ends
        await trio.sleep_forever()

    server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
    rec = _Recorder()

    async def publish(event: Event) -> None:
        if isinstance(event, ConnectionStateEvent):
            rec.items.append(event)
            if event.state is S.STALE:
                stale_seen.set()
                await trio.sleep(0.5)  # a plugin busy with STALE; the close arrives meanwhile
        else:
            rec.items.append(event.raw)

    supervisor = Supervisor(
        _EchoDriver(f"ws://127.0.0.1:{server.port}/"),
        venue="test",
        account_id="acct",
        settings=_settings(stale_after=0.3),
        publish=publish,
    )
    await _run_to_backoff(supervisor)
    states = [event.state for event in rec.states()]
    assert states[:4] == [S.CONNECTING, S.SUBSCRIBING, S.LIVE, S.STALE], states
    assert rec.frames() == ["f0", "f1", "f2", "f3"]
    assert rec.items.index("f1") > rec.items.index(rec.states()[3]), "the gap is reported first"
    backoff = rec.backoff()
    assert rec.items.index("f3") < rec.items.index(backoff)
    assert backoff.reason.startswith("no frame for 0.3s"), backoff.reason


# ------------------------------------------------------------ give_up_at with frames queued


async def test_frames_queued_when_the_close_gives_up_are_all_delivered(
    nursery: trio.Nursery,
) -> None:
    """A stream that heals while we close delivers a burst; a slow subscriber is still
    publishing it when the close's deadline passes. Every frame already received (the burst
    came before the venue's close reply) is published; only the network wait is bounded."""
    stale_seen = trio.Event()
    burst = 200

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message("f0")
        await stale_seen.wait()
        for i in range(1, burst + 1):
            await ws.send_message(f"f{i}")
        await trio.sleep_forever()  # its reader answers our close frame at once

    server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
    rec = _Recorder()

    async def publish(event: Event) -> None:
        if isinstance(event, ConnectionStateEvent):
            rec.items.append(event)
            if event.state is S.STALE:
                stale_seen.set()
                await trio.sleep(0.2)  # the burst reaches the session's queue meanwhile
        else:
            rec.items.append(event.raw)
            if event.raw != "f0":
                await trio.sleep(0.02)  # 20 ms per event: 4 s for the burst, past give-up

    supervisor = Supervisor(
        _EchoDriver(f"ws://127.0.0.1:{server.port}/"),
        venue="test",
        account_id="acct",
        settings=_settings(stale_after=0.3, connect_timeout=1.0),
        publish=publish,
    )
    await _run_to_backoff(supervisor)
    assert rec.frames() == [f"f{i}" for i in range(burst + 1)]
    assert rec.items.index(f"f{burst}") < rec.items.index(rec.backoff())


# ------------------------------------------------------------ TLS: a command blocked on send


class _StopsReading(trio.abc.Stream):
    """The venue's side of the stream; once ``stalled`` it takes in nothing more (a blackhole
    for what we send, the kernel's buffers filling up)."""

    def __init__(self, stream: trio.abc.Stream, stalled: trio.Event) -> None:
        self._stream = stream
        self._stalled = stalled

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = b"" if self._stalled.is_set() else await self._stream.receive_some(max_bytes)
        if self._stalled.is_set():  # also what a read already waiting gets: never handed over
            await trio.sleep_forever()
        return data

    async def aclose(self) -> None:
        await self._stream.aclose()


async def test_stale_close_over_tls_is_bounded_while_a_command_is_blocked(
    tmp_path: Path, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wss://: the venue stops reading and sending; a plugin's command blocks in the TLS
    stream's send (its lock held, the send buffer full). The stale close must still end the
    connection and reach BACKOFF in bounded time (a TLS close_notify waits for that lock:
    without a deadline, for as long as TCP retransmits, or forever)."""
    cert_file, server_context = self_signed(tmp_path)
    # The session verifies certificates with the default context: make it trust ours.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    stalled = trio.Event()

    async def handler(tcp: trio.SocketStream) -> None:
        tls = trio.SSLStream(tcp, server_context, server_side=True)
        async with trio.open_nursery() as server_nursery:
            request = await wrap_server_stream(server_nursery, _StopsReading(tls, stalled))
            ws = await request.accept()
            await ws.send_message("hello")
            await trio.sleep_forever()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    rec = _Recorder()
    refused: list[SessionNotLive] = []
    supervisor: Supervisor

    async def plugin() -> None:
        stalled.set()
        blob = "x" * 65536
        try:
            while True:
                await supervisor.send({"text": blob})
        except SessionNotLive as exc:
            refused.append(exc)

    async with trio.open_nursery() as plugins:

        async def publish(event: Event) -> None:
            rec.items.append(event if isinstance(event, ConnectionStateEvent) else event.raw)
            if isinstance(event, ConnectionStateEvent) and event.state is S.LIVE:
                plugins.start_soon(plugin)

        supervisor = Supervisor(
            _EchoDriver(f"wss://127.0.0.1:{port}/"),
            venue="test",
            account_id="acct",
            settings=_settings(stale_after=0.5),
            publish=publish,
        )
        started = trio.current_time()
        await _run_to_backoff(supervisor)
        took = trio.current_time() - started
        await wait_until(lambda: refused, within=WAIT)
    states = [event.state for event in rec.states()]
    assert states[:5] == [S.CONNECTING, S.SUBSCRIBING, S.LIVE, S.STALE, S.BACKOFF], states
    assert rec.frames() == ["hello"]
    assert rec.backoff().reason.startswith("no frame for 0.5s"), rec.backoff().reason
    # stale_after + the close's give-up (2 s) + the stream close's deadline (2 s), plus slack.
    assert took < 0.5 + 2.0 + 2.0 + 2.0, took
    assert refused[0].maybe_sent, "the blocked command may have reached the venue"


# ------------------------------------------------------------ an oversized frame while closing


async def test_an_oversized_frame_while_closing_does_not_cut_a_publish_short(
    nursery: trio.Nursery,
) -> None:
    """After our close frame, a frame over the wire's size limit (``MAX_MESSAGE_SIZE``) ends
    the connection with 1009 and no second close frame. That must not cancel the publish in
    progress, and the operator is told why the connection ended."""
    stale_seen = trio.Event()
    stalled = trio.Event()  # the venue never reads our close frame, so never replies

    async def handler(tcp: trio.SocketStream) -> None:
        async with trio.open_nursery() as server_nursery:
            request = await wrap_server_stream(server_nursery, _StopsReading(tcp, stalled))
            ws = await request.accept()
            await ws.send_message("f0")
            await stale_seen.wait()
            stalled.set()
            await ws.send_message("f1")
            await ws.send_message("x" * (2**20 + 1))  # over the default max_message_size
            await trio.sleep_forever()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    rec = _Recorder()

    async def publish(event: Event) -> None:
        if isinstance(event, ConnectionStateEvent):
            rec.items.append(event)
            if event.state is S.STALE:
                stale_seen.set()
        else:
            rec.items.append(event.raw)
            if event.raw == "f1":
                await trio.sleep(0.5)  # a busy subscriber: the big frame arrives meanwhile
                rec.items.append("f1 published")

    supervisor = Supervisor(
        _EchoDriver(f"ws://127.0.0.1:{port}/"),
        venue="test",
        account_id="acct",
        settings=_settings(stale_after=0.3),
        publish=publish,
    )
    await _run_to_backoff(supervisor)
    assert rec.frames()[:3] == ["f0", "f1", "f1 published"], rec.frames()
    reason = rec.backoff().reason
    assert reason.startswith("no frame for 0.3s"), reason
    assert "code 1009" in reason and "maximum message size" in reason, reason
