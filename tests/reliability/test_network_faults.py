"""Faults the network makes, one test per kind: a LIVE session detects it within its bounds,
reconnects, resyncs, and every private event the simulator emitted is delivered or falls in
the gap the session reported (a non-LIVE state, then a resync)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest
import trio
from wait_helpers import wait_until

from qfexbot.core.secrets import Secret
from qfexbot.core.session import SessionNotLive, Supervisor
from qfexbot.events import (
    ConnectionState,
    ConnectionStateEvent,
    Event,
    FillEvent,
    OrderUpdateEvent,
    ResyncEvent,
)
from qfexbot.sim import QfexSimulator, SimConfig, SimUser
from qfexbot.sim.common.connection import dumps
from qfexbot.sim.common.netproxy import FAULT_KINDS, FaultProxy
from qfexbot.venues.qfex.adapter import QfexVenue

PRIMARY = "00000000-0000-4000-8000-0000000000a1"
DESK = "11111111-1111-4111-8111-1111111111a1"
PUB, SECRET = "qfex_pub_net_tests", "qfex_secret_net_tests"
WAIT = 15.0
SLACK = 1.0  # scheduling slack on a loaded 2-core machine, on top of each bound
PULSE, PING_INTERVAL, PONG_TIMEOUT = 0.1, 0.5, 1.0


@dataclass(frozen=True)
class Settings:
    """Session tunables of these tests (duck-types config.SessionSettings)."""

    connect_timeout: float = 1.0
    auth_timeout: float = 2.0
    stale_after: float = 1.0
    backoff_initial: float = 0.05
    backoff_max: float = 0.2
    healthy_after: float = 30.0
    max_auth_failures: int = 3
    request_timeout: float = 2.0


SETTINGS = Settings()

# The session publishes STALE when it decides (no frame for stale_after), before its close
# attempt (up to connect_timeout) that the peer of a silent socket never answers.
SILENT = SETTINGS.stale_after

# kind -> (who detects it, what the session says, seconds from the fault to leaving LIVE)
EXPECTED = {
    # Silent but open sockets: only the session's stale watchdog can tell.
    "stall": ("stale watchdog", "no frame for 1s", SILENT),
    "half_open": ("stale watchdog", "no frame for 1s", SILENT),
    # Pings are still answered here (client→server flows): the watchdog again.
    "partial_then_silence": ("stale watchdog", "no frame for 1s", SILENT),
    # The next server frame (a pulse) carries the reset.
    "reset_mid_frame": ("socket error", "", PULSE),
    # The client's pongs trickle behind its orders: the venue's ping times out and closes.
    "slow_reads": ("venue ping", "pong timeout", PING_INTERVAL + PONG_TIMEOUT),
}


class Recorder:
    """The session's ``publish``: keeps every event, with the time it arrived."""

    def __init__(self) -> None:
        self.events: list[tuple[float, Event]] = []
        self._changed = trio.Event()

    async def __call__(self, event: Event) -> None:
        self.events.append((trio.current_time(), event))
        self._changed.set()
        self._changed = trio.Event()

    async def until(self, condition: Callable[[], object]) -> None:
        """Return once ``condition()`` (over the recorded events) holds; the caller bounds it."""
        while not condition():
            await self._changed.wait()

    def raw_frames(self) -> list[str]:
        return [e.raw for _, e in self.events if isinstance(e, (OrderUpdateEvent, FillEvent))]


def left_live(rec: Recorder, mark: int) -> list[tuple[float, ConnectionStateEvent]]:
    """State changes away from LIVE recorded after index ``mark``, with their times."""
    return [
        (t, e)
        for t, e in rec.events[mark:]
        if isinstance(e, ConnectionStateEvent) and e.state is not ConnectionState.LIVE
    ]


def order(n: int) -> dict:
    return {
        "type": "add_order",
        "params": {
            "symbol": "AAPL-USD",
            "side": "BUY" if n % 2 else "SELL",
            "order_type": "MARKET",
            "order_time_in_force": "IOC",
            "quantity": Decimal("0.01"),
            "price": 0,
            "client_order_id": f"net-{n}",
            "take_profit": 0,
            "stop_loss": 0,
        },
    }


async def keep_ordering(session: Supervisor, first: int) -> None:
    """An order every 50 ms (private events, and client→server traffic) until cancelled."""
    n = first
    while True:
        n += 1
        with contextlib.suppress(SessionNotLive):
            await session.send(order(n))
        await trio.sleep(0.05)


def emitted(sim: QfexSimulator, after: int, upto: int) -> dict[int, str]:
    """The desk's private events numbered after+1..upto, as the sim wrote them."""
    return {
        e.seq: dumps(e.frame) for e in sim.engine.accounts[DESK].events if after < e.seq <= upto
    }


async def wait_delivered(sim: QfexSimulator, rec: Recorder, upto: int) -> None:
    with trio.fail_after(WAIT):
        await rec.until(lambda: not set(emitted(sim, 0, upto).values()) - set(rec.raw_frames()))


@pytest.mark.parametrize("kind", FAULT_KINDS)
async def test_session_detects_network_fault_and_recovers(kind: str, nursery: trio.Nursery) -> None:
    sim = QfexSimulator(
        SimConfig(
            users=[
                SimUser(
                    public_key=PUB,
                    secret=SECRET,
                    account_id=PRIMARY,
                    subaccounts=[DESK],
                    deposits={PRIMARY: Decimal(1000), DESK: Decimal(100000)},
                )
            ],
            pulse_interval=PULSE,
            mds_interval=0.1,
            price_interval=0.1,
            seed=3,
            ping_interval=PING_INTERVAL,
            pong_timeout=PONG_TIMEOUT,
        )
    )
    urls = await nursery.start(sim.serve, "127.0.0.1")
    proxy = FaultProxy()
    trade_url = await nursery.start(proxy.front, "trade", urls.trade_url)
    venue = QfexVenue(
        "net",
        trade_url=trade_url,
        mds_url=urls.mds_url,
        rest_url=urls.rest_url,
        user_id=PRIMARY,
        settings=SETTINGS,
        public_key=PUB,
        secret=Secret(SECRET),
    )
    try:
        rec = Recorder()
        session = venue.private_session(
            DESK, channels=["order_responses", "fills", "balances"], publish=rec
        )
        await nursery.start(session.run)
        with trio.fail_after(WAIT):
            await session.wait_for(ConnectionState.LIVE)
        # Quiet before the fault: everything emitted so far was delivered.
        for n in range(3):
            await session.send(order(n))
        await wait_delivered(sim, rec, sim.event_seq(DESK))
        seq_at_fault, mark = sim.event_seq(DESK), len(rec.events)
        assert seq_at_fault >= 6

        async with trio.open_nursery() as traffic:
            traffic.start_soon(keep_ordering, session, 100)
            await trio.sleep(0.3)  # orders in flight when the fault hits
            faulted_at = trio.current_time()
            assert proxy.inject(kind, duration=4.0, target="trade") == 1
            with trio.fail_after(WAIT):
                await rec.until(lambda: left_live(rec, mark))
            detected_at, _ = left_live(rec, mark)[0]
            await wait_until(
                lambda: session.state is ConnectionState.LIVE and session.stats.reconnects,
                within=WAIT,
            )
            seq_at_live = sim.event_seq(DESK)
            await trio.sleep(0.5)  # orders on the new connection
            traffic.cancel_scope.cancel()
        seq_end = sim.event_seq(DESK)
        with trio.move_on_after(2.0):  # the last frames in flight
            await rec.until(
                lambda: not set(emitted(sim, seq_at_live, seq_end).values()) - set(rec.raw_frames())
            )

        who, reason, bound = EXPECTED[kind]
        after = [e for _, e in rec.events[mark:]]
        states = [e for e in after if isinstance(e, ConnectionStateEvent)]
        left = next(e for e in states if e.state is not ConnectionState.LIVE)
        message = f"{kind} ({who}): states {[(e.state.value, e.reason) for e in states]}"
        print(
            f"{kind}: left LIVE after {detected_at - faulted_at:.2f}s (bound {bound:g}s"
            f" + {SLACK:g}s slack): {left.state.value} {left.reason!r}"
        )
        assert reason in left.reason, message
        assert detected_at - faulted_at <= bound + SLACK, message
        assert session.stats.reconnects == 1, message
        # The gap is reported: left LIVE, then resynced (balances, positions, open orders)
        # before LIVE again on the new connection.
        kinds = [
            type(e).__name__ if not isinstance(e, ConnectionStateEvent) else e.state.value
            for e in after
            if isinstance(e, (ConnectionStateEvent, ResyncEvent))
        ]
        assert kinds[-3:] == ["resyncing", "ResyncEvent", "live"], kinds
        # Delivered or in the gap: nothing emitted on the healthy connections is missing.
        delivered = set(rec.raw_frames())
        missing = {seq for seq, frame in emitted(sim, 0, seq_end).items() if frame not in delivered}
        assert seq_end > seq_at_live > seq_at_fault, (seq_at_fault, seq_at_live, seq_end)
        print(
            f"{kind}: {seq_end} private events, {len(missing)} in the reported gap "
            f"{seq_at_fault + 1}..{seq_at_live}"
        )
        assert all(seq_at_fault < seq <= seq_at_live for seq in missing), (
            f"{kind}: events lost outside the reported gap: {sorted(missing)} "
            f"(gap {seq_at_fault + 1}..{seq_at_live})"
        )
    finally:
        await venue.aclose()


@pytest.mark.parametrize("kind", ["stall", "partial_then_silence"])
async def test_fault_that_heals_while_the_session_closes(kind: str, nursery: trio.Nursery) -> None:
    """The fault ends while the stale session waits for the close reply: the frames held
    meanwhile (pulses, the venue's pings) arrive on a socket whose close frame is sent. A
    ping then must not kill the session (the wire layer writes no pong once our close frame is
    out; trio-websocket's pong used to crash its reader); it reconnects like after any stale
    stream."""
    sim = QfexSimulator(
        SimConfig(
            users=[
                SimUser(
                    public_key=PUB,
                    secret=SECRET,
                    account_id=PRIMARY,
                    subaccounts=[DESK],
                    deposits={PRIMARY: Decimal(1000), DESK: Decimal(1000)},
                )
            ],
            pulse_interval=PULSE,
            mds_interval=0.1,
            price_interval=0.1,
            seed=4,
            ping_interval=0.2,
            pong_timeout=5.0,
        )
    )
    urls = await nursery.start(sim.serve, "127.0.0.1")
    proxy = FaultProxy()
    trade_url = await nursery.start(proxy.front, "trade", urls.trade_url)
    settings = Settings(connect_timeout=2.0)
    venue = QfexVenue(
        "net",
        trade_url=trade_url,
        mds_url=urls.mds_url,
        rest_url=urls.rest_url,
        user_id=PRIMARY,
        settings=settings,
        public_key=PUB,
        secret=Secret(SECRET),
    )
    try:
        rec = Recorder()
        session = venue.private_session(DESK, channels=["balances"], publish=rec)
        await nursery.start(session.run)
        with trio.fail_after(WAIT):
            await session.wait_for(ConnectionState.LIVE)
        # Heal half-way through the close wait: stale at 1 s, close reply awaited up to 3 s.
        proxy.inject(kind, duration=settings.stale_after + settings.connect_timeout / 2)
        await wait_until(
            lambda: session.state is ConnectionState.LIVE and session.stats.reconnects, within=WAIT
        )
        stale = next(
            e
            for _, e in rec.events
            if isinstance(e, ConnectionStateEvent) and e.state is ConnectionState.STALE
        )
        assert stale.reason == "no frame for 1s"
    finally:
        await venue.aclose()


# ------------------------------------------------------------ the session's own stale close

# A close attempt long enough to tell "STALE at the decision" from "STALE after the close",
# and to heal the stall while the session still waits for the venue's close reply.
CLOSING = Settings(connect_timeout=3.0)
BURST = 20


def resting_order(client_order_id: str) -> dict:
    """A buy far below the market: it rests, so the venue answers with one ACK each."""
    return {
        "symbol": "AAPL-USD",
        "side": "BUY",
        "order_type": "LIMIT",
        "order_time_in_force": "GTC",
        "quantity": Decimal("0.01"),
        "price": Decimal(1),
        "client_order_id": client_order_id,
        "take_profit": 0,
        "stop_loss": 0,
    }


@contextlib.asynccontextmanager
async def stalling_venue(
    nursery: trio.Nursery, *, ping_interval: float
) -> AsyncIterator[tuple[QfexSimulator, FaultProxy, QfexVenue]]:
    """A simulator behind the fault proxy and a venue on it with the CLOSING settings."""
    sim = QfexSimulator(
        SimConfig(
            users=[
                SimUser(
                    public_key=PUB,
                    secret=SECRET,
                    account_id=PRIMARY,
                    subaccounts=[DESK],
                    deposits={PRIMARY: Decimal(1000), DESK: Decimal(1000)},
                )
            ],
            pulse_interval=PULSE,
            mds_interval=0.1,
            price_interval=0.1,
            seed=5,
            ping_interval=ping_interval,
            pong_timeout=10.0,
        )
    )
    urls = await nursery.start(sim.serve, "127.0.0.1")
    proxy = FaultProxy()
    trade_url = await nursery.start(proxy.front, "trade", urls.trade_url)
    venue = QfexVenue(
        "net",
        trade_url=trade_url,
        mds_url=urls.mds_url,
        rest_url=urls.rest_url,
        user_id=PRIMARY,
        settings=CLOSING,
        public_key=PUB,
        secret=Secret(SECRET),
    )
    try:
        yield sim, proxy, venue
    finally:
        await venue.aclose()


def first_state(
    rec: Recorder, state: ConnectionState, mark: int
) -> tuple[int, float, ConnectionStateEvent] | None:
    """Index, time and event of the first ``state`` change after index ``mark``."""
    for i, (t, e) in enumerate(rec.events[mark:], mark):
        if isinstance(e, ConnectionStateEvent) and e.state is state:
            return i, t, e
    return None


async def wait_state(
    rec: Recorder, state: ConnectionState, mark: int
) -> tuple[int, float, ConnectionStateEvent]:
    with trio.fail_after(WAIT):
        await rec.until(lambda: first_state(rec, state, mark) is not None)
    return first_state(rec, state, mark)  # type: ignore[return-value]  # found just above


async def test_stale_is_reported_when_decided_not_after_the_close_attempt(
    nursery: trio.Nursery,
) -> None:
    """STALE is published (and ``state`` reads it) within ``stale_after`` of the last frame,
    not after the close handshake a silent peer never answers (up to ``connect_timeout``)."""
    async with stalling_venue(nursery, ping_interval=30.0) as (_sim, proxy, venue):
        rec = Recorder()
        session = venue.private_session(DESK, channels=["balances"], publish=rec)
        await nursery.start(session.run)
        with trio.fail_after(WAIT):
            await session.wait_for(ConnectionState.LIVE)
        mark = len(rec.events)
        stalled_at = trio.current_time()
        assert proxy.inject("stall", duration=10.0, target="trade") == 1
        _, stale_at, stale = await wait_state(rec, ConnectionState.STALE, mark)
        took = stale_at - stalled_at
        print(
            f"stall: STALE after {took:.2f}s (stale_after {CLOSING.stale_after:g}s, "
            f"close attempt up to {CLOSING.connect_timeout:g}s)"
        )
        assert took <= CLOSING.stale_after + SLACK
        assert stale.reason == "no frame for 1s"
        # Visible at once: the state reads STALE and commands are refused as such.
        assert session.state is ConnectionState.STALE
        with pytest.raises(SessionNotLive, match="is stale, not live"):
            await session.send(order(1))
        # The close attempt follows, bounded; then the usual reconnect on a new link.
        _, backoff_at, _ = await wait_state(rec, ConnectionState.BACKOFF, mark)
        assert backoff_at - stale_at <= CLOSING.connect_timeout + SLACK
        await wait_until(
            lambda: session.state is ConnectionState.LIVE and session.stats.reconnects, within=WAIT
        )


async def test_stale_close_delivers_frames_the_venue_flushes_before_its_close_reply(
    nursery: trio.Nursery,
) -> None:
    """A stall that heals while the stale session waits for the venue's close reply: the
    venue's pings and a burst of order responses it wrote meanwhile arrive, then its close
    reply. Every private frame the venue wrote on that connection is delivered, once, in
    order, after STALE (the gap is reported) and before BACKOFF."""
    async with stalling_venue(nursery, ping_interval=0.2) as (sim, proxy, venue):
        rec = Recorder()
        session = venue.private_session(DESK, channels=["order_responses"], publish=rec)
        await nursery.start(session.run)
        with trio.fail_after(WAIT):
            await session.wait_for(ConnectionState.LIVE)
        mark = len(rec.events)
        assert proxy.inject("stall", duration=30.0, target="trade") == 1
        # The session decides STALE after 1 s and sends its close frame (the stall holds it);
        # the close attempt lasts up to 3 s. The venue writes a burst, then the stall heals.
        stale_i, _, _ = await wait_state(rec, ConnectionState.STALE, mark)
        first = sim.event_seq(DESK)
        for n in range(BURST):
            sim.deliver(sim.engine.add_order(DESK, resting_order(f"burst-{n}")))
        burst = list(range(first + 1, first + BURST + 1))
        # In the socket buffers behind the stall:
        await wait_until(lambda: set(burst) <= set(sim.trade.written_seqs(DESK)), within=WAIT)
        proxy.heal()
        backoff_i, _, _ = await wait_state(rec, ConnectionState.BACKOFF, mark)

        frames = emitted(sim, 0, sim.event_seq(DESK))
        delivered = rec.raw_frames()
        assert len(delivered) == len(set(delivered)), "an event was delivered twice"
        written = sim.trade.written_seqs(DESK)
        missing = [seq for seq in written if frames[seq] not in delivered]
        assert not missing, f"written by the venue, never delivered: {missing}"
        order_ids = [
            e.client_order_id
            for _, e in rec.events[mark:backoff_i]
            if isinstance(e, OrderUpdateEvent)
        ]
        assert order_ids == [f"burst-{n}" for n in range(BURST)]
        # Delivered while closing: after the gap was reported, before BACKOFF.
        first_burst = next(
            i for i, (_, e) in enumerate(rec.events) if isinstance(e, OrderUpdateEvent)
        )
        assert stale_i < first_burst < backoff_i
        await wait_until(
            lambda: session.state is ConnectionState.LIVE and session.stats.reconnects, within=WAIT
        )
