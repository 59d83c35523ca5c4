"""Private sessions against the simulator: auth variants, subscriptions, ordering, commands."""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio
from venue_helpers import PRIMARY, SUB1, SUB2, WAIT, FastSettings, Recorder, SimEnv
from wait_helpers import wait_until

from qfexbot.core.session import SessionNotLive
from qfexbot.events import (
    BalanceEvent,
    ConnectionState,
    ConnectionStateEvent,
    FillEvent,
    OrderUpdateEvent,
    PositionEvent,
    ResyncEvent,
)
from qfexbot.venues.qfex.adapter import QfexVenue

S = ConnectionState


async def test_hmac_primary_session_goes_live_in_order(venue: QfexVenue, nursery) -> None:
    rec = Recorder()
    session = venue.private_session(PRIMARY, publish=rec)
    await nursery.start(session.run)
    await rec.wait_state(S.LIVE)
    await rec.wait(lambda e: isinstance(e, BalanceEvent), after=len(rec.events))
    assert rec.states()[:5] == [S.CONNECTING, S.AUTHENTICATING, S.SUBSCRIBING, S.RESYNCING, S.LIVE]
    kinds = [type(e) for e in rec.events]
    live = next(
        i
        for i, e in enumerate(rec.events)
        if isinstance(e, ConnectionStateEvent) and e.state is S.LIVE
    )
    resync = kinds.index(ResyncEvent)
    assert resync < live and kinds[resync + 1] is BalanceEvent  # snapshot, then its balance
    snapshot = rec.events[resync]
    assert snapshot.balance.available == Decimal(1000)
    assert snapshot.account_id == PRIMARY and snapshot.venue == "simq"
    pulses = [e for e in rec.events[live:] if isinstance(e, BalanceEvent)]
    assert pulses and pulses[-1].available == Decimal(1000)
    assert session.state is S.LIVE and session.stats.frames > 0
    assert session.stats.last_frame_at is not None and session.stats.parse_errors == 0


async def test_subaccount_session_is_bound_to_the_subaccount(venue: QfexVenue, nursery) -> None:
    rec = Recorder()
    session = venue.private_session(SUB1, channels=["balances"], publish=rec)
    await nursery.start(session.run)
    await rec.wait_state(S.LIVE)
    pulse = await rec.wait(lambda e: isinstance(e, BalanceEvent), after=len(rec.events))
    assert pulse.available == Decimal("250.5") and pulse.account_id == SUB1
    (snapshot,) = rec.of(ResyncEvent)
    assert snapshot.balance.available == Decimal("250.5")
    assert not rec.of(PositionEvent) or all(p.account_id == SUB1 for p in rec.of(PositionEvent))


async def test_jwt_session_and_bearer_rest(simenv: SimEnv, nursery) -> None:
    venue = simenv.venue(jwt=simenv.sim.issue_jwt(PRIMARY))
    try:
        rec = Recorder()
        session = venue.private_session(SUB2, channels=["balances"], publish=rec)
        await nursery.start(session.run)
        await rec.wait_state(S.LIVE)
        pulse = await rec.wait(lambda e: isinstance(e, BalanceEvent), after=len(rec.events))
        assert pulse.available == Decimal(75)
        assert sorted(await venue.rest.subaccounts()) == sorted([SUB1, SUB2])
    finally:
        await venue.aclose()


async def test_orders_and_fills_reach_publish_in_order(venue: QfexVenue, nursery) -> None:
    rec = Recorder()
    session = venue.private_session(
        SUB1, channels=["order_responses", "fills", "balances"], publish=rec
    )
    await nursery.start(session.run)
    with trio.fail_after(WAIT):
        await session.wait_for(S.LIVE)
    await session.send(
        {
            "type": "add_order",
            "params": {
                "symbol": "AAPL-USD",
                "side": "BUY",
                "order_type": "MARKET",
                "order_time_in_force": "IOC",
                "quantity": Decimal("0.01"),
                "price": 0,
                "client_order_id": "venue-test-1",
                "take_profit": 0,
                "stop_loss": 0,
            },
        }
    )
    fill = await rec.wait(lambda e: isinstance(e, FillEvent))
    orders = [e for e in rec.of(OrderUpdateEvent) if e.client_order_id == "venue-test-1"]
    assert orders[0].status == "ACK"
    filled = [o for o in orders if o.status == "FILLED"]
    assert filled and filled[-1].terminal
    assert fill.quantity == Decimal("0.01") and fill.symbol == "AAPL-USD"
    assert fill.account_id == SUB1
    # The ACK was published before the fill, as the venue sent them.
    assert rec.events.index(orders[0]) < rec.events.index(fill)


async def test_send_before_live_raises(venue: QfexVenue) -> None:
    session = venue.private_session(SUB1, publish=Recorder())
    with pytest.raises(SessionNotLive, match="not live"):
        await session.send(
            {"type": "cancel_on_disconnect", "params": {"cancel_on_disconnect": True}}
        )


async def test_rearm_commands_are_sent_on_every_connection(simenv: SimEnv, venue, nursery) -> None:
    rec, controls = Recorder(), []

    async def on_control(item) -> None:
        controls.append(item)

    session = venue.private_session(
        SUB1,
        channels=["balances"],
        publish=rec,
        on_control=on_control,
        rearm=[{"type": "cancel_on_disconnect", "params": {"cancel_on_disconnect": True}}],
    )
    await nursery.start(session.run)
    await rec.wait_state(S.LIVE)
    simenv.sim.faults.drop_connections(SUB1)
    await rec.wait_state(S.LIVE, after=len(rec.events))
    await wait_until(
        lambda: sum(1 for c in controls if type(c).__name__ == "Ack") >= 2, within=WAIT
    )
    assert sum(1 for c in controls if type(c).__name__ == "Ack") >= 2  # one per connection


async def test_unknown_channel_is_refused_early(venue: QfexVenue) -> None:
    with pytest.raises(ValueError, match="unknown QFEX trade channels"):
        venue.private_session(SUB1, channels=["balance"], publish=Recorder())


async def test_cancelling_publishes_stopped(venue: QfexVenue) -> None:
    rec = Recorder()
    session = venue.private_session(SUB1, channels=["balances"], publish=rec)
    async with trio.open_nursery() as inner:
        await inner.start(session.run)
        await rec.wait_state(S.LIVE)
        inner.cancel_scope.cancel()
    assert rec.states()[-1] is S.STOPPED and session.state is S.STOPPED


async def test_settings_object_is_duck_typed(simenv: SimEnv, nursery) -> None:
    class Plain:
        connect_timeout = 2.0
        auth_timeout = 2.0
        stale_after = 5.0
        backoff_initial = 0.05
        backoff_max = 0.1
        healthy_after = 10.0
        max_auth_failures = 2
        request_timeout = 2.0

    venue = simenv.venue(FastSettings())
    try:
        rec = Recorder()
        session = venue.private_session(SUB2, channels=["balances"], publish=rec, settings=Plain())
        await nursery.start(session.run)
        await rec.wait_state(S.LIVE)
        assert session.state is S.LIVE
    finally:
        await venue.aclose()
