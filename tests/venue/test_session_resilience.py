"""Session supervision against the simulator: reconnects, bad credentials, staleness, bad frames."""

from __future__ import annotations

import logging
import random
from decimal import Decimal

import pytest
import trio
from venue_helpers import (
    PRIMARY,
    SECRET,
    SUB1,
    SUB2,
    WAIT,
    FastSettings,
    Recorder,
    SimEnv,
    rendered,
)
from wait_helpers import wait_until

from qfexbot.core.backoff import backoff_delay
from qfexbot.events import BalanceEvent, ConnectionState, ResyncEvent
from qfexbot.venues.qfex.adapter import QfexVenue

S = ConnectionState


async def test_reconnect_after_drop_resyncs_and_events_continue(
    simenv: SimEnv, venue: QfexVenue, nursery
) -> None:
    rec = Recorder()
    session = venue.private_session(SUB1, channels=["balances", "order_responses"], publish=rec)
    await nursery.start(session.run)
    await rec.wait_state(S.LIVE)
    assert simenv.sim.faults.drop_connections(SUB1) == 1
    mark = len(rec.events)
    backoff = await rec.wait_state(S.BACKOFF, after=mark)
    assert "closed" in backoff.reason and backoff.attempt == 1
    # Money moves while we are away: the resync and the next pulses must show it.
    await venue.rest.transfer(PRIMARY, SUB1, Decimal("9.5"))
    second_live = await rec.wait_state(S.LIVE, after=mark)
    resyncs = rec.of(ResyncEvent)
    assert len(resyncs) == 2
    after = rec.events.index(second_live)
    pulse = await rec.wait(lambda e: isinstance(e, BalanceEvent), after=after + 1)
    assert pulse.available == Decimal("260.0")
    assert session.stats.reconnects == 1 and session.state is S.LIVE
    # The states in between are the full handshake again.
    states = rec.states()
    i = states.index(S.BACKOFF)
    assert states[i : i + 6] == [
        S.BACKOFF,
        S.CONNECTING,
        S.AUTHENTICATING,
        S.SUBSCRIBING,
        S.RESYNCING,
        S.LIVE,
    ]


async def test_bad_credentials_fail_one_session_only(
    simenv: SimEnv, venue, nursery, caplog
) -> None:
    caplog.set_level(logging.DEBUG, logger="qfexbot")
    bad_venue = simenv.venue(secret="qfex_secret_WRONG_value", name="bad")
    try:
        good, bad = Recorder(), Recorder()
        good_session = venue.private_session(SUB1, channels=["balances"], publish=good)
        bad_session = bad_venue.private_session(SUB2, channels=["balances"], publish=bad)
        await nursery.start(good_session.run)
        async with trio.open_nursery() as inner:
            inner.start_soon(bad_session.run)  # returns by itself once FAILED
        failed = bad.of(type(bad.events[-1]))[-1]
        assert failed.state is S.FAILED
        assert "rejected 3 times" in failed.reason and "credentials" in failed.reason
        assert bad.states().count(S.AUTHENTICATING) == 3
        assert bad_session.stats.auth_failures == 3 and bad_session.state is S.FAILED
        # The healthy session carries on.
        await good.wait_state(S.LIVE)
        pulse = await good.wait(lambda e: isinstance(e, BalanceEvent), after=len(good.events))
        assert pulse.account_id == SUB1 and good_session.state is S.LIVE
        text = rendered(caplog)
        assert "authentication rejected" in text
        assert "qfex_secret_WRONG_value" not in text and SECRET not in text
    finally:
        await bad_venue.aclose()


async def test_transient_auth_rejection_recovers(simenv: SimEnv, venue, nursery) -> None:
    rec = Recorder()
    session = venue.private_session(SUB2, channels=["balances"], publish=rec)
    simenv.sim.faults.reject_next_auths(2)
    await nursery.start(session.run)
    await rec.wait_state(S.LIVE)
    assert rec.states().count(S.AUTHENTICATING) == 3
    assert session.stats.auth_failures == 0  # reset by the successful authentication


async def test_stale_stream_is_detected_and_reconnected(simenv: SimEnv, nursery) -> None:
    venue = simenv.venue(FastSettings(stale_after=0.4))
    try:
        rec = Recorder()
        session = venue.private_session(SUB1, channels=["balances"], publish=rec)
        await nursery.start(session.run)
        await rec.wait_state(S.LIVE)
        simenv.sim.faults.stop_pulses()
        mark = len(rec.events)
        stale = await rec.wait_state(S.STALE, after=mark, timeout=5)
        assert "no frame for 0.4s" in stale.reason
        simenv.sim.faults.resume_pulses()
        await rec.wait_state(S.LIVE, after=rec.events.index(stale))
        pulse = await rec.wait(lambda e: isinstance(e, BalanceEvent), after=len(rec.events))
        assert pulse.account_id == SUB1
        assert session.stats.reconnects >= 1
    finally:
        await venue.aclose()


async def test_malformed_frame_is_counted_and_ignored(
    simenv: SimEnv, venue, nursery, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="qfexbot")
    rec = Recorder()
    session = venue.private_session(SUB1, channels=["balances"], publish=rec)
    await nursery.start(session.run)
    await rec.wait_state(S.LIVE)
    assert simenv.sim.faults.send_malformed_frame(SUB1) == 1
    await wait_until(lambda: session.stats.parse_errors >= 1, within=WAIT)
    mark = len(rec.events)
    pulse = await rec.wait(lambda e: isinstance(e, BalanceEvent), after=mark)
    assert pulse.account_id == SUB1
    assert session.state is S.LIVE and session.stats.reconnects == 0
    text = rendered(caplog)
    assert "malformed frame" in text and '{\\"balance_response\\": {\\"id\\": ' in text


async def test_connect_refused_backs_off_and_keeps_trying(simenv: SimEnv, nursery) -> None:
    # A port nothing listens on: every attempt fails to connect; the session never gives up.
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    venue = QfexVenue(
        "dead",
        trade_url=f"ws://127.0.0.1:{port}/",
        mds_url=simenv.urls.mds_url,
        rest_url=simenv.urls.rest_url,
        user_id=PRIMARY,
        settings=FastSettings(),
        public_key="pk",
        secret=simenv.venue()._secret,
    )
    try:
        rec = Recorder()
        session = venue.private_session(SUB1, publish=rec)
        await nursery.start(session.run)
        await wait_until(lambda: session.stats.reconnects >= 3, within=WAIT)
        backoffs = [e for e in rec.of(type(rec.events[0])) if e.state is S.BACKOFF]
        assert "connect failed" in backoffs[0].reason
        # What an operator can act on, not trio's "all attempts to connect" group (issue 15).
        assert f"connection refused to 127.0.0.1:{port}" in backoffs[0].reason
        assert "ExceptionGroup" not in backoffs[0].reason
        assert [b.attempt for b in backoffs[:3]] == [1, 2, 3]
        assert S.FAILED not in rec.states()
    finally:
        await venue.aclose()


# ---------------------------------------------------------------- backoff maths


def test_backoff_is_full_jitter_capped_exponential() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (6, 30.0), (500, 30.0)]:
        samples = [backoff_delay(attempt, 0.5, 30.0, rng) for _ in range(400)]
        assert all(0.0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.9 and min(samples) < ceiling * 0.1  # full jitter


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    a = [backoff_delay(n, 0.1, 5.0, random.Random(3)) for n in range(5)]
    b = [backoff_delay(n, 0.1, 5.0, random.Random(3)) for n in range(5)]
    assert a == b


@pytest.mark.parametrize("attempt", [0, 10, 10_000])
def test_backoff_never_overflows(attempt: int) -> None:
    assert 0.0 <= backoff_delay(attempt, 0.5, 30.0) <= 30.0


async def test_backoff_resets_after_a_healthy_period(simenv: SimEnv, nursery) -> None:
    venue = simenv.venue(FastSettings(healthy_after=0.3))
    try:
        rec = Recorder()
        session = venue.private_session(SUB1, channels=["balances"], publish=rec)
        await nursery.start(session.run)
        attempts = []
        for pause in (0.0, 0.0, 0.5):  # two quick drops, then one after a healthy period
            await rec.wait_state(S.LIVE, after=len(rec.events) if attempts else 0)
            await trio.sleep(pause)
            simenv.sim.faults.drop_connections(SUB1)
            attempts.append((await rec.wait_state(S.BACKOFF, after=len(rec.events))).attempt)
        assert attempts == [1, 2, 1]
    finally:
        await venue.aclose()


async def test_slow_publisher_is_not_mistaken_for_a_stale_stream(simenv: SimEnv, nursery) -> None:
    venue = simenv.venue(FastSettings(stale_after=0.3))
    try:
        rec = Recorder()
        slow_once = [True]

        async def slow_publish(event) -> None:
            await rec(event)
            if isinstance(event, BalanceEvent) and len(rec.of(BalanceEvent)) == 3 and slow_once:
                slow_once.clear()
                await trio.sleep(0.9)  # 3x stale_after, while frames keep arriving

        session = venue.private_session(SUB1, channels=["balances"], publish=slow_publish)
        await nursery.start(session.run)
        await rec.wait_state(S.LIVE)
        await rec.until(lambda: not slow_once and len(rec.of(BalanceEvent)) >= 6, timeout=WAIT)
        assert S.STALE not in rec.states() and session.stats.reconnects == 0
    finally:
        await venue.aclose()
