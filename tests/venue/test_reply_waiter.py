"""The trade driver's reply waiter: QFEX replies carry no id, so queries wait in FIFO order per
reply key; an ``err`` fails the oldest waiter of its command; a new connection fails them all.

First the waiter on its own (exact orderings), then through a live session on the simulator.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio
from venue_helpers import SUB1, Recorder
from wait_helpers import wait_until

from qfexbot.errors import ActionRejected, ActionUnavailable
from qfexbot.events import ConnectionState
from qfexbot.venues.qfex.adapter import QfexVenue
from qfexbot.venues.qfex.driver import ReplyWaiters, incoming_type

# ---------------------------------------------------------------- the waiter alone


async def test_replies_of_one_key_answer_the_waiters_oldest_first() -> None:
    waiters = ReplyWaiters()
    first = waiters.add("all_orders_response", "get_user_orders")
    second = waiters.add("all_orders_response", "get_user_orders")
    other = waiters.add("ack", "set_user_leverage")
    assert waiters.resolve("all_orders_response", "reply-1")
    assert waiters.resolve("all_orders_response", "reply-2")
    assert not waiters.resolve("all_orders_response", "reply-3")  # nobody waits any more
    assert await waiters.wait(first, 1) == "reply-1"
    assert await waiters.wait(second, 1) == "reply-2"
    assert not other.done.is_set() and len(waiters) == 1


async def test_match_lets_a_reply_pass_a_waiter_that_asked_for_something_else() -> None:
    waiters = ReplyWaiters()
    for_a = waiters.add("order_response", "get_order", match=lambda r: r == "A")
    for_b = waiters.add("order_response", "get_order", match=lambda r: r == "B")
    assert waiters.resolve("order_response", "B")
    assert not for_a.done.is_set() and await waiters.wait(for_b, 1) == "B"
    assert not waiters.resolve("order_response", "C")  # a live update nobody asked for
    assert waiters.resolve("order_response", "A")
    assert await waiters.wait(for_a, 1) == "A"


async def test_an_err_fails_the_oldest_waiter_of_its_command_across_keys() -> None:
    waiters = ReplyWaiters()
    levels = waiters.add("available_leverage_levels_response", "get_available_leverage_levels")
    orders_1 = waiters.add("all_orders_response", "get_user_orders")
    orders_2 = waiters.add("all_orders_response", "get_user_orders")
    error = ActionRejected("bad", code="InvalidParameter")
    assert waiters.fail_command("get_user_orders", error)
    with pytest.raises(ActionRejected) as caught:
        await waiters.wait(orders_1, 1)
    assert caught.value.code == "InvalidParameter"
    assert not orders_2.done.is_set() and not levels.done.is_set()
    assert not waiters.fail_command("add_order", error)  # fire-and-forget commands: nobody
    assert waiters.resolve("all_orders_response", "snapshot")  # the next reply is orders_2's
    assert await waiters.wait(orders_2, 1) == "snapshot"


async def test_fail_all_fails_every_waiter_with_the_error() -> None:
    waiters = ReplyWaiters()
    pending = [waiters.add("ack", "set_user_leverage"), waiters.add("user_trades_response", "x")]
    waiters.fail_all(ActionUnavailable("reconnected"))
    for waiter in pending:
        with pytest.raises(ActionUnavailable, match="reconnected"):
            await waiters.wait(waiter, 1)
    assert len(waiters) == 0 and not waiters.pending("ack")


async def test_a_timed_out_waiter_absorbs_its_late_reply_then_expires(autojump_clock) -> None:
    waiters = ReplyWaiters(keep_abandoned=10)
    late = waiters.add("all_orders_response", "get_user_orders")
    with pytest.raises(ActionUnavailable, match="no all_orders_response reply"):
        await waiters.wait(late, 2)
    after = waiters.add("all_orders_response", "get_user_orders")
    assert waiters.resolve("all_orders_response", "late reply")  # eaten by the abandoned one
    assert not after.done.is_set()
    assert waiters.resolve("all_orders_response", "its reply")
    assert await waiters.wait(after, 1) == "its reply"
    # An abandoned waiter whose reply never comes stops absorbing after keep_abandoned.
    lost = waiters.add("all_orders_response", "get_user_orders")
    with pytest.raises(ActionUnavailable):
        await waiters.wait(lost, 2)
    await trio.sleep(11)
    fresh = waiters.add("all_orders_response", "get_user_orders")
    assert waiters.resolve("all_orders_response", "fresh reply")
    assert await waiters.wait(fresh, 1) == "fresh reply"


def test_incoming_type_reads_an_echoed_object_or_its_text() -> None:
    assert incoming_type({"type": "get_user_orders", "params": {}}) == "get_user_orders"
    assert incoming_type('{"type": "add_twap"}') == "add_twap"
    assert incoming_type("not json") == "" and incoming_type(None) == ""
    assert incoming_type({"type": 5}) == ""


# ---------------------------------------------------------------- through the simulator


async def _live(venue: QfexVenue, nursery: trio.Nursery, account: str = SUB1):
    rec = Recorder()
    session = venue.private_session(account, publish=rec)
    await nursery.start(session.run)
    await rec.wait_state(ConnectionState.LIVE)
    return session, rec


async def _rest_limit(session, symbol: str, price: str) -> None:
    await session.send(
        {
            "type": "add_order",
            "params": {
                "symbol": symbol,
                "side": "BUY",
                "order_type": "LIMIT",
                "order_time_in_force": "GTC",
                "quantity": 1,
                "price": float(price),
                "client_order_id": f"rest-{symbol}",
            },
        }
    )


async def test_concurrent_queries_each_get_their_own_reply(venue: QfexVenue, nursery) -> None:
    session, rec = await _live(venue, nursery)
    await _rest_limit(session, "AAPL-USD", "190")
    await _rest_limit(session, "CL-USD", "66")
    await rec.until(lambda: sum(1 for e in rec.events if getattr(e, "status", "") == "ACK") == 2)
    results: dict[str, object] = {}

    async def ask(symbol: str) -> None:
        results[symbol] = await venue.open_orders(session, symbol)

    async with trio.open_nursery() as queries:
        for symbol in ("AAPL-USD", "CL-USD", "AAPL-USD"):
            queries.start_soon(ask, symbol)
    prices = {"AAPL-USD": Decimal(190), "CL-USD": Decimal(66)}
    for symbol, price in prices.items():
        orders = results[symbol].orders
        assert [o.symbol for o in orders] == [symbol], symbol
        assert orders[0].client_order_id == f"rest-{symbol}" and orders[0].price == price
    assert len(session.driver.waiters) == 0


async def test_an_err_reply_fails_only_that_query(venue: QfexVenue, nursery) -> None:
    session, _ = await _live(venue, nursery)
    driver = session.driver
    bad = {"type": "get_user_orders", "params": {"limit": 0}}
    with trio.fail_after(5):
        with pytest.raises(ActionRejected) as caught:
            await driver.request(session, bad, "all_orders_response", timeout=3)
    assert caught.value.code == "InvalidParameter"
    # The next query of the same command gets its own reply, not the error.
    assert (await venue.open_orders(session)).orders == ()


async def test_a_new_connection_fails_the_queries_sent_on_the_old_one(
    simenv, venue: QfexVenue, nursery
) -> None:
    session, rec = await _live(venue, nursery)
    driver = session.driver
    # cancel_on_disconnect is answered with an ack, never an all_orders_response: a query whose
    # reply will not come, pending when the simulator drops the connection.
    unanswered = {"type": "cancel_on_disconnect", "params": {"cancel_on_disconnect": False}}
    seen = len(rec.events)

    async def drop_once_sent() -> None:
        await wait_until(lambda: len(driver.waiters) == 1, within=3, what="the query queued")
        await trio.sleep(0.2)  # the ack came and went; the waiter is still pending
        assert simenv.sim.faults.drop_connections(SUB1) >= 1

    with trio.fail_after(8):
        async with trio.open_nursery() as inner:
            inner.start_soon(drop_once_sent)
            with pytest.raises(ActionUnavailable, match="reconnected"):
                await driver.request(session, unanswered, "all_orders_response", timeout=6)
    await rec.wait_state(ConnectionState.LIVE, after=seen)
    assert len(driver.waiters) == 0
    assert (await venue.open_orders(session)).orders == ()  # the new connection answers
