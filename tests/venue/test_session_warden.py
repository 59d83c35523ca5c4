"""The warden (issue 16): it reads a connection while its session task is busy elsewhere.

Without a reader task, a held publish or a slow resync would leave the venue's pings
unanswered (QFEX drops a connection after ~60 s without a pong). Each test runs the supervisor
against a loopback trio-websocket server that pings (its ``ping`` waits for the matching pong)
and numbers its frames, so what the session published can be checked for loss, duplicates
and order. The driver turns every frame into one event carrying it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest
import trio
from trio_websocket import WebSocketConnection, WebSocketRequest, serve_websocket
from wait_helpers import wait_until

from qfexbot.config import SessionSettings
from qfexbot.core import session as session_mod
from qfexbot.core.session import PUMP_BOUND, WARDEN_GRACE, Supervisor
from qfexbot.events import ConnectionState, ConnectionStateEvent, Event

S = ConnectionState
WAIT = 30.0  # upper bound of any single wait in these tests


class _EchoDriver:
    """No handshake steps; each frame is one :class:`Event` carrying it. ``resync`` (when
    ``resync_for`` is set) takes that long and returns one snapshot event."""

    authenticates = False
    watch_stale = False

    def __init__(self, url: str, resync_for: float | None = None) -> None:
        self.url = url
        self.resyncs = resync_for is not None
        self._resync_for = resync_for or 0.0
        self.resync_started = trio.Event()

    def handshake_headers(self) -> list[tuple[bytes, bytes]]:
        return []

    async def subscribe(self, conn: Any) -> None:
        return None

    async def resync(self, conn: Any) -> Sequence[Event]:
        self.resync_started.set()
        await trio.sleep(self._resync_for)  # a slow REST snapshot
        return [Event(venue="test", account_id="acct", received_at=0.0, raw="snapshot")]

    def parse(self, frame: str | bytes, now: float) -> list[Any]:
        return [Event(venue="test", account_id="acct", received_at=now, raw=frame)]

    async def on_control(self, item: Any) -> None:  # pragma: no cover - parse yields events only
        raise AssertionError(item)

    def encode(self, message: dict[str, Any]) -> str:
        return str(message["text"])

    def command_name(self, message: dict[str, Any]) -> str | None:
        return None


class _Wardens:
    """Records every warden the supervisor makes, and the handovers (a session read that had
    to stop a running pump)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made: list[Any] = []
        self.handovers = 0
        recorder = self

        class Recorded(session_mod._Warden):
            def __init__(self, wire: Any) -> None:
                super().__init__(wire)
                self.finished = False
                recorder.made.append(self)

            async def run(self) -> None:
                try:
                    await super().run()
                finally:
                    self.finished = True

            async def _stop_pump(self) -> None:
                if self._pump_done is not None:
                    recorder.handovers += 1
                await super()._stop_pump()

        monkeypatch.setattr(session_mod, "_Warden", Recorded)

    @property
    def one(self) -> Any:
        assert len(self.made) == 1, self.made
        return self.made[0]


def _settings() -> SessionSettings:
    # A long backoff: each test has one connection, no reconnect interferes.
    return SessionSettings(
        connect_timeout=5.0,
        auth_timeout=5.0,
        request_timeout=5.0,
        stale_after=60.0,
        backoff_initial=30.0,
        backoff_max=30.0,
    )


async def _ping(ws: WebSocketConnection, pongs: list[float], within: float) -> None:
    """One ping; its round trip is appended to ``pongs`` (fails past ``within`` s)."""
    start = trio.current_time()
    with trio.fail_after(within):
        await ws.ping()
    pongs.append(trio.current_time() - start)


async def _serve(nursery: trio.Nursery, handler: Any) -> str:
    server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
    return f"ws://127.0.0.1:{server.port}/"


async def _run_until(supervisor: Supervisor, done: trio.Event) -> None:
    """Run the session until ``done`` (bounded), then stop it."""
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        with trio.fail_after(WAIT):
            await done.wait()
        nursery.cancel_scope.cancel()


def _frames(items: list[Any]) -> list[str]:
    return [item for item in items if isinstance(item, str)]


# ------------------------------------------------------------ a held publish


async def test_pings_are_answered_while_a_publish_is_held(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publish held for ~3 x WARDEN_GRACE: every ping sent meanwhile is answered while it is
    still held, and the frames sent meanwhile are all published after the release, in order."""
    wardens = _Wardens(monkeypatch)
    held, release, done = trio.Event(), trio.Event(), trio.Event()
    pongs: list[float] = []
    count = 8

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message("f0")
        with trio.fail_after(WAIT):
            await held.wait()
        for i in range(1, count):
            await ws.send_message(f"f{i}")
            # The first pong may wait up to 2 graces for the warden's check; later ones none.
            await _ping(ws, pongs, within=2 * WARDEN_GRACE + 1.0)
            await trio.sleep(WARDEN_GRACE / 3)
        release.set()
        await ws.send_message("end")
        await trio.sleep_forever()

    items: list[Any] = []

    async def publish(event: Event) -> None:
        if isinstance(event, ConnectionStateEvent):
            return
        items.append(event.raw)
        if event.raw == "f0":
            held.set()
            with trio.fail_after(WAIT):
                await release.wait()
            items.append(("released", len(pongs)))
        elif event.raw == "end":
            done.set()

    url = await _serve(nursery, handler)
    supervisor = Supervisor(
        _EchoDriver(url), venue="test", account_id="acct", settings=_settings(), publish=publish
    )
    await _run_until(supervisor, done)
    assert items[1] == ("released", count - 1), "every ping was answered while held"
    assert _frames(items) == ["f0", *(f"f{i}" for i in range(1, count)), "end"]
    assert wardens.one.pump_reads > 0
    assert wardens.handovers >= 1


async def test_a_frame_the_warden_read_is_stamped_when_it_arrived(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``received_at`` of a frame that arrived while an earlier one's publish was held is never
    before it was sent (issue-16 audit: one clock reading per read stamped it up to the
    length of the hold too early)."""
    wardens = _Wardens(monkeypatch)
    sent: dict[str, float] = {}
    done = trio.Event()

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        sent["a"] = time.time()
        await ws.send_message("a")
        await trio.sleep(0.3)
        sent["b"] = time.time()
        await ws.send_message("b")
        await trio.sleep_forever()

    stamps: dict[str, float] = {}

    async def publish(event: Event) -> None:
        if isinstance(event, ConnectionStateEvent):
            return
        stamps[event.raw] = event.received_at
        if event.raw == "a":
            await trio.sleep(WARDEN_GRACE * 2.5)  # held past the warden's check: it reads "b"
        else:
            done.set()

    url = await _serve(nursery, handler)
    supervisor = Supervisor(
        _EchoDriver(url), venue="test", account_id="acct", settings=_settings(), publish=publish
    )
    await _run_until(supervisor, done)
    assert wardens.one.pump_reads > 0  # "b" came through the pump
    assert stamps["b"] >= sent["b"]
    assert stamps["b"] - stamps["a"] >= WARDEN_GRACE * 2  # stamped when taken, after the hold


# ------------------------------------------------------------ a slow resync


async def test_pings_are_answered_during_a_slow_resync(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resync step takes ~2 s: the warden pumps from its start (pongs come back well within
    a grace), and the frames that arrived meanwhile are published after the snapshot, in
    order."""
    wardens = _Wardens(monkeypatch)
    done = trio.Event()
    pongs: list[float] = []
    count = 6
    driver: _EchoDriver

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        with trio.fail_after(WAIT):
            await driver.resync_started.wait()
        for i in range(count):
            await ws.send_message(f"f{i}")
            await _ping(ws, pongs, within=WARDEN_GRACE)
            await trio.sleep(0.2)
        await ws.send_message("end")
        await trio.sleep_forever()

    items: list[Any] = []

    async def publish(event: Event) -> None:
        if isinstance(event, ConnectionStateEvent):
            items.append(event.state)
        else:
            items.append(event.raw)
            if event.raw == "end":
                done.set()

    url = await _serve(nursery, handler)
    driver = _EchoDriver(url, resync_for=2.0)
    supervisor = Supervisor(
        driver, venue="test", account_id="acct", settings=_settings(), publish=publish
    )
    await _run_until(supervisor, done)
    assert len(pongs) == count, "every ping during the resync was answered"
    assert items[:5] == [S.CONNECTING, S.SUBSCRIBING, S.RESYNCING, "snapshot", S.LIVE], items
    assert items[5 : items.index("end") + 1] == [*(f"f{i}" for i in range(count)), "end"], items
    assert wardens.one.pump_reads > 0


# ------------------------------------------------------------ the pump's bound


async def test_the_pump_stops_reading_at_its_bound(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood while the publish is held: the messages waiting never exceed PUMP_BOUND (the
    pump reaches it exactly, then leaves the rest to TCP), and after the release every frame is
    published, in order."""
    wardens = _Wardens(monkeypatch)
    held, release, done = trio.Event(), trio.Event(), trio.Event()
    flood = 3 * PUMP_BOUND

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message("hold")
        for i in range(flood):
            await ws.send_message(f"f{i}")
        await trio.sleep_forever()

    items: list[str] = []

    async def publish(event: Event) -> None:
        if isinstance(event, ConnectionStateEvent):
            return
        items.append(event.raw)
        if event.raw == "hold":
            held.set()
            with trio.fail_after(WAIT):
                await release.wait()
        elif event.raw == f"f{flood - 1}":
            done.set()

    url = await _serve(nursery, handler)
    supervisor = Supervisor(
        _EchoDriver(url), venue="test", account_id="acct", settings=_settings(), publish=publish
    )
    most = 0

    async def watch() -> None:
        nonlocal most
        with trio.fail_after(WAIT):
            await held.wait()
        messages = wardens.one.wire.messages
        # Sampled at every scheduling pass of this task until the pump has been at rest a while.
        at_bound_since: float | None = None
        while at_bound_since is None or trio.current_time() - at_bound_since < WARDEN_GRACE:
            most = max(most, len(messages))
            if len(messages) >= PUMP_BOUND and at_bound_since is None:
                at_bound_since = trio.current_time()
            await trio.lowlevel.checkpoint()
        release.set()

    async with trio.open_nursery() as inner:
        inner.start_soon(watch)
        await _run_until(supervisor, done)
    assert most == PUMP_BOUND
    assert items == ["hold", *(f"f{i}" for i in range(flood))]


# ------------------------------------------------------------ many handovers


async def test_no_frame_is_lost_or_reordered_across_many_handovers(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A steady stream (~1.5 s), and a publish held for a few graces every 100th frame (a
    short grace, so the pump and the session hand over many times): every frame exactly once,
    in order."""
    monkeypatch.setattr(session_mod, "WARDEN_GRACE", 0.01)
    wardens = _Wardens(monkeypatch)
    done = trio.Event()
    count = 1500

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        for i in range(count):
            await ws.send_message(f"f{i}")
            if i % 10 == 0:
                await trio.sleep(0.01)
        await trio.sleep_forever()

    items: list[str] = []

    async def publish(event: Event) -> None:
        if isinstance(event, ConnectionStateEvent):
            return
        items.append(event.raw)
        if int(event.raw[1:]) % 100 == 0:
            await trio.sleep(0.05)  # held: the warden pumps meanwhile
        if event.raw == f"f{count - 1}":
            done.set()

    url = await _serve(nursery, handler)
    supervisor = Supervisor(
        _EchoDriver(url), venue="test", account_id="acct", settings=_settings(), publish=publish
    )
    await _run_until(supervisor, done)
    assert items == [f"f{i}" for i in range(count)]
    assert wardens.handovers >= 5, wardens.handovers
    assert wardens.one.pump_reads >= 5


# ------------------------------------------------------------ idle


async def test_no_pump_read_while_the_session_waits_on_its_own_read(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A LIVE session with a quick publish, a frame now and then and pings: over 3 graces its
    own reads answer every ping and the warden never reads."""
    wardens = _Wardens(monkeypatch)
    done = trio.Event()
    pongs: list[float] = []

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        for i in range(6):
            await ws.send_message(f"f{i}")
            await _ping(ws, pongs, within=WARDEN_GRACE)
            await trio.sleep(WARDEN_GRACE / 2)
        await ws.send_message("end")
        await trio.sleep_forever()

    items: list[str] = []

    async def publish(event: Event) -> None:
        if not isinstance(event, ConnectionStateEvent):
            items.append(event.raw)
            if event.raw == "end":
                done.set()

    url = await _serve(nursery, handler)
    supervisor = Supervisor(
        _EchoDriver(url), venue="test", account_id="acct", settings=_settings(), publish=publish
    )
    await _run_until(supervisor, done)
    assert len(pongs) == 6
    assert items == [*(f"f{i}" for i in range(6)), "end"]
    warden = wardens.one
    assert warden.reads >= 7, "the session read for itself"
    assert warden.pump_reads == 0


async def test_the_warden_ends_with_its_connection(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A venue that closes while the publish is held: the pump leaves the close for the
    session, which publishes every frame before it, then BACKOFF; no warden task is left."""
    wardens = _Wardens(monkeypatch)
    held, release = trio.Event(), trio.Event()

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message("hold")
        with trio.fail_after(WAIT):
            await held.wait()
        for i in range(3):
            await ws.send_message(f"f{i}")
        await ws.aclose(4000, "bye")

    items: list[Any] = []

    async def publish(event: Event) -> None:
        if isinstance(event, ConnectionStateEvent):
            items.append(event.state)
            return
        items.append(event.raw)
        if event.raw == "hold":
            held.set()
            with trio.fail_after(WAIT):
                await release.wait()

    url = await _serve(nursery, handler)
    supervisor = Supervisor(
        _EchoDriver(url), venue="test", account_id="acct", settings=_settings(), publish=publish
    )
    async with trio.open_nursery() as inner:
        await inner.start(supervisor.run)
        await wait_until(
            lambda: wardens.made and wardens.one.wire.ended is not None,
            within=WAIT,
            what="the pump saw the venue's close",
        )
        assert supervisor.state is S.LIVE, "the close is left for the session"
        release.set()
        with trio.fail_after(WAIT):
            await supervisor.wait_for(S.BACKOFF)
        assert wardens.one.finished, "the warden ended with its connection"
        inner.cancel_scope.cancel()
    rest = items[items.index("hold") :]
    assert rest[: rest.index(S.BACKOFF) + 1] == ["hold", "f0", "f1", "f2", S.BACKOFF], items
    assert "code 4000" in supervisor.stats.last_error, supervisor.stats.last_error


async def test_a_cancelled_session_stops_while_its_warden_pumps(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopping the runtime while a publish is held and the warden pumps: the session ends
    at once (STOPPED), and its warden with it."""
    wardens = _Wardens(monkeypatch)
    held = trio.Event()

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message("hold")
        while True:
            await ws.send_message("tick")
            await trio.sleep(0.05)

    states: list[ConnectionState] = []

    async def publish(event: Event) -> None:
        if isinstance(event, ConnectionStateEvent):
            states.append(event.state)
        elif event.raw == "hold":
            held.set()
            await trio.sleep_forever()  # a plugin that never lets go; only the stop ends it

    url = await _serve(nursery, handler)
    supervisor = Supervisor(
        _EchoDriver(url), venue="test", account_id="acct", settings=_settings(), publish=publish
    )
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as inner:
            await inner.start(supervisor.run)
            await held.wait()
            await wait_until(
                lambda: wardens.one.pump_reads > 0, within=WAIT, what="the warden pumps"
            )
            stop_at = trio.current_time()
            inner.cancel_scope.cancel()
    assert trio.current_time() - stop_at < 1.0, "the stop was not held up"
    assert wardens.one.finished
    assert states[-1] is S.STOPPED, states


class _ReadingResync(_EchoDriver):
    """A resync that reads a control message from the socket first (``"ctl"``), then takes
    ``resync_for`` s."""

    def __init__(self, url: str, resync_for: float) -> None:
        super().__init__(url, resync_for)
        self.reading = trio.Event()

    def parse(self, frame: str | bytes, now: float) -> list[Any]:
        return ["ctl"] if frame == "ctl" else super().parse(frame, now)

    async def resync(self, conn: Any) -> Sequence[Event]:
        self.reading.set()
        assert await conn.receive() == ["ctl"]
        return await super().resync(conn)


async def test_a_resync_that_reads_takes_over_from_a_running_pump(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The RESYNCING publish is held (the warden pumps), then the resync step reads itself
    while the warden was told to pump at once: the read takes over (never two readers), the
    control message reaches the step, and the frames behind it follow the snapshot, in order."""
    monkeypatch.setattr(session_mod, "WARDEN_GRACE", 0.05)
    wardens = _Wardens(monkeypatch)
    done = trio.Event()
    driver: _ReadingResync

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        for i in range(3):
            await ws.send_message(f"f{i}")
        with trio.fail_after(WAIT):
            await driver.reading.wait()
        await trio.sleep(0.1)  # the step's read waits on the socket (not on the pump's queue)
        await ws.send_message("ctl")
        await ws.send_message("end")
        await trio.sleep_forever()

    items: list[Any] = []

    async def publish(event: Event) -> None:
        if isinstance(event, ConnectionStateEvent):
            items.append(event.state)
            if event.state is S.RESYNCING:
                await trio.sleep(0.2)  # held for 4 graces: the warden pumps meanwhile
        else:
            items.append(event.raw)
            if event.raw == "end":
                done.set()

    url = await _serve(nursery, handler)
    driver = _ReadingResync(url, resync_for=0.1)
    supervisor = Supervisor(
        driver, venue="test", account_id="acct", settings=_settings(), publish=publish
    )
    await _run_until(supervisor, done)
    assert items[: items.index("end") + 1] == [
        *(S.CONNECTING, S.SUBSCRIBING, S.RESYNCING, "snapshot", S.LIVE),
        *("f0", "f1", "f2", "end"),
    ], items
    assert wardens.one.pump_reads > 0
