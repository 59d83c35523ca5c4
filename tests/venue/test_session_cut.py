"""Private events at a connection cut: every frame the venue wrote before its close is delivered.

Issue 12: order responses the simulator wrote just before it closed the connection were lost
when a command sent on the dying socket failed first (trio-websocket then stops its reader and
drops every frame it has not queued yet). These tests hold the session's reader back with a
slow subscriber so the frames are still unread when the cut happens: no timing luck involved.
"""

from __future__ import annotations

from decimal import Decimal

import trio
from venue_helpers import SUB1, WAIT, Recorder, SimEnv
from wait_helpers import wait_until

from qfexbot.core import session as session_module
from qfexbot.core.session import SessionNotLive
from qfexbot.events import ConnectionState, Event, OrderUpdateEvent
from qfexbot.sim import QfexSimulator
from qfexbot.venues.qfex.adapter import QfexVenue

S = ConnectionState
BURST = 250
"""Frames the venue writes while the reader is held, then it closes: more than our socket's
receive buffer takes at first, so the tail waits in the simulator's send buffer, which its
kernel throws away (a reset) when our command arrives at the closed socket. The command's write
first lets the session's warden read what the socket holds (issue 16), as trio-websocket's
reader task did before; without that, the tail of this burst is lost (the issue-16 audit)."""


def _resting_order(client_order_id: str) -> dict[str, object]:
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


def _emit(sim: QfexSimulator, client_order_id: str) -> None:
    """The venue accepts one order of SUB1's and queues its order_response (as from a command)."""
    sim.deliver(sim.engine.add_order(SUB1, _resting_order(client_order_id)))


class _SlowSubscriber(Recorder):
    """Records every event; order updates then wait until ``release`` (a busy plugin inbox)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = trio.Event()

    async def __call__(self, event: Event) -> None:
        await super().__call__(event)
        if isinstance(event, OrderUpdateEvent):
            await self.release.wait()

    def order_ids(self) -> list[str]:
        return [e.client_order_id for e in self.of(OrderUpdateEvent)]


async def _wait_sim_closed(sim: QfexSimulator) -> None:
    await wait_until(lambda: not sim.connection_count(SUB1), within=WAIT)


async def _send_until_refused(session: session_module.Supervisor) -> SessionNotLive:
    """Send commands on the dead socket until the session says it is not live (the peer's
    reset makes the second write fail at the latest)."""
    with trio.fail_after(WAIT):
        while True:
            try:
                await session.send({"type": "get_user_orders", "params": {}})
            except SessionNotLive as exc:
                return exc
            await trio.sleep(0.02)


async def _live_with_one_order_held(
    simenv: SimEnv, venue: QfexVenue, nursery: trio.Nursery
) -> tuple[session_module.Supervisor, _SlowSubscriber]:
    """A LIVE session whose reader is held inside publish by a first order update."""
    rec = _SlowSubscriber()
    session = venue.private_session(SUB1, channels=["order_responses"], publish=rec)
    await nursery.start(session.run)
    await rec.wait_state(S.LIVE)
    _emit(simenv.sim, "first")
    await rec.wait(lambda e: isinstance(e, OrderUpdateEvent))
    return session, rec


async def test_frames_written_before_a_cut_survive_a_failed_send(
    simenv: SimEnv, venue: QfexVenue, nursery: trio.Nursery
) -> None:
    sim = simenv.sim
    session, rec = await _live_with_one_order_held(simenv, venue, nursery)
    mark = len(rec.events)
    # A burst of order responses, then the venue's close right behind it.
    sent = [f"burst-{i}" for i in range(BURST)]
    for client_order_id in sent:
        _emit(sim, client_order_id)
    assert sim.faults.drop_connections(SUB1) == 1
    await _wait_sim_closed(sim)  # every frame and the close are in our socket now
    # A plugin's command hits the closed socket before the reader has seen the close.
    refused = await _send_until_refused(session)
    assert refused.maybe_sent
    assert session.state is S.LIVE  # the reader has not reached the close yet
    rec.release.set()
    backoff = await rec.wait_state(S.BACKOFF, after=mark)
    assert rec.order_ids() == ["first", *sent]
    # Every order update was published before the session left LIVE.
    last_order = max(i for i, e in enumerate(rec.events) if isinstance(e, OrderUpdateEvent))
    assert last_order < rec.events.index(backoff)
    assert "1001" in backoff.reason  # the venue's close was read, not a local abort


async def test_frames_written_before_a_cut_are_delivered_without_a_send(
    simenv: SimEnv, venue: QfexVenue, nursery: trio.Nursery
) -> None:
    sim = simenv.sim
    session, rec = await _live_with_one_order_held(simenv, venue, nursery)
    mark = len(rec.events)
    sent = [f"burst-{i}" for i in range(BURST)]
    for client_order_id in sent:
        _emit(sim, client_order_id)
    assert sim.faults.drop_connections(SUB1) == 1
    await _wait_sim_closed(sim)
    rec.release.set()
    backoff = await rec.wait_state(S.BACKOFF, after=mark)
    assert rec.order_ids() == ["first", *sent]
    assert "1001" in backoff.reason
    assert session.stats.reconnects == 0
