"""At a connection cut the simulator says which private events it actually wrote (issue 12).

The engine numbers an event when it makes it; a frame queued behind the simulator's close is
never written. ``TradeGateway.written_seqs`` must list exactly the events that reached the
socket, which is what a client can be expected to receive.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import trio
from sim_client import PRIMARY, TIMEOUT, Sim, connect, order_status
from trio_websocket import ConnectionClosed

from qfexbot.sim.qfex.engine import EVENT_HISTORY


def _rest(sim: Sim, client_order_id: str) -> None:
    """The venue accepts a resting order of PRIMARY's: one order_response (ACK) each."""
    params = {
        "symbol": "AAPL-USD",
        "side": "BUY",
        "order_type": "LIMIT",
        "order_time_in_force": "GTC",
        "quantity": Decimal(1),
        "price": Decimal(1),
        "client_order_id": client_order_id,
    }
    sim.sim.deliver(sim.sim.engine.add_order(PRIMARY, params))


async def test_written_seqs_are_the_frames_sent_before_the_close(running: Sim) -> None:
    sim = running.sim
    async with connect(running.urls.trade_url) as ws:
        await ws.auth()
        await ws.subscribe("order_responses")
        first = sim.event_seq(PRIMARY)
        for i in range(5):
            _rest(running, f"before-{i}")
        cut = sim.event_seq(PRIMARY)
        assert sim.faults.drop_connections(PRIMARY) == 1
        for i in range(3):  # handled after the close was queued: numbered, never written
            _rest(running, f"after-{i}")
        received = []
        with trio.fail_after(TIMEOUT), pytest.raises(ConnectionClosed) as closed:
            while True:
                received.append(json.loads(await ws.ws.get_message()))
        assert closed.value.reason.code == 1001
    assert sim.event_seq(PRIMARY) == cut + 3
    assert [order_status(f) for f in received] == ["ACK"] * 5
    assert [f["order_response"]["client_order_id"] for f in received] == [
        f"before-{i}" for i in range(5)
    ]
    assert sim.trade.written_seqs(PRIMARY) == list(range(first + 1, cut + 1))


async def test_written_seqs_of_an_account_without_connection_is_empty(running: Sim) -> None:
    _rest(running, "nobody-listens")
    assert running.sim.event_seq(PRIMARY) == 1
    assert running.sim.trade.written_seqs(PRIMARY) == []


async def test_written_seqs_keep_the_last_history(running: Sim) -> None:
    sim = running.sim
    async with connect(running.urls.trade_url, queue_size=EVENT_HISTORY + 100) as ws:
        await ws.auth()
        await ws.subscribe("order_responses")
        total = EVENT_HISTORY + 20
        for batch in range(0, total, 200):  # below the outbox bound (a slow consumer is cut)
            for i in range(batch, min(batch + 200, total)):
                _rest(running, f"o-{i}")
            last = f"o-{min(batch + 200, total) - 1}"
            await ws.recv_until(
                lambda f, last=last: f.get("order_response", {}).get("client_order_id") == last
            )
    written = sim.trade.written_seqs(PRIMARY)
    assert written == list(range(total - EVENT_HISTORY + 1, total + 1))
