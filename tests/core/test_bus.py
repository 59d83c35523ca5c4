"""Bus and Inbox: order, back-pressure for private events, conflation of market data."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
import trio
import trio.testing
from core_helpers import DESK_A, DESK_B, balance, book, fill, label, mark, order

from qfexbot.core.bus import Bus, Inbox
from qfexbot.events import BalanceEvent, CandleEvent, FillEvent


def drain(inbox: Inbox) -> list[str]:
    out = []
    while (event := inbox.pop()) is not None:
        out.append(label(event))
    return out


async def test_order_kept_across_kinds_and_accounts():
    inbox = Inbox("b/p", size=100)
    bus_a, bus_b = Bus(DESK_A), Bus(DESK_B)
    bus_a.subscribe(inbox)
    bus_b.subscribe(inbox)
    await bus_a.publish(order(DESK_A, "1"))
    await bus_b.publish(balance(DESK_B, 5))
    await bus_a.publish(fill(DESK_A, "t1"))
    await bus_a.publish(book(DESK_A, "AAPL-USD", 1))
    await bus_a.publish(balance(DESK_A, 7))
    assert drain(inbox) == ["order:1", "balance:2:5", "fill:t1", "book:AAPL-USD:1", "balance:1:7"]
    assert inbox.events_in == 5 and inbox.high_water == 5 and inbox.depth == 0


async def test_private_events_are_never_dropped_publisher_waits():
    inbox = Inbox("b/slow", size=2)
    bus = Bus(DESK_A)
    bus.subscribe(inbox)
    published = 0
    got: list[str] = []

    async def publisher():
        nonlocal published
        for i in range(20):
            await bus.publish(balance(DESK_A, i))
            published += 1

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publisher)
            await trio.testing.wait_all_tasks_blocked()
            # Nobody consumes: the publisher is stuck after filling the inbox (+1 waiting).
            assert published == 2
            assert inbox.depth == 3 and inbox.full_waits == 1 and bus.full_waits == 1
            while len(got) < 20:
                got.append(label(await inbox.get()))
                await trio.sleep(0.001)  # a slow plugin
    assert got == [f"balance:1:{i}" for i in range(20)]
    assert inbox.full_waits >= 9 and inbox.conflated == 0 and inbox.dropped == 0
    assert inbox.high_water == 3


async def test_full_inbox_wait_is_logged(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="qfexbot")
    inbox = Inbox("b/slow", size=1)
    bus = Bus(DESK_A)
    bus.subscribe(inbox)
    await bus.publish(balance(DESK_A, 1))
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bus.publish, balance(DESK_A, 2))
            await trio.testing.wait_all_tasks_blocked()
            assert drain(inbox) == ["balance:1:1", "balance:1:2"]
    messages = [
        r for r in caplog.records if r.getMessage() == "inbox full, publisher waits for plugin"
    ]
    assert len(messages) == 1
    assert messages[0].fields["inbox"] == "b/slow" and messages[0].fields["kind"] == "balance"


async def test_market_data_conflated_latest_per_kind_and_symbol():
    inbox = Inbox("b/p", size=2)
    bus = Bus(DESK_A)
    bus.subscribe(inbox)
    with trio.fail_after(1):  # market data never makes the publisher wait
        await bus.publish(order(DESK_A, "1"))
        await bus.publish(book(DESK_A, "AAPL-USD", 1))
        for seq in range(2, 6):
            await bus.publish(book(DESK_A, "AAPL-USD", seq))
        await bus.publish(book(DESK_A, "MSFT-USD", 1))
        await bus.publish(mark(DESK_A, "AAPL-USD", "10"))
        await bus.publish(book(DESK_A, "AAPL-USD", 6))
        await bus.publish(mark(DESK_A, "AAPL-USD", "11"))
    # The backlog first, then the latest of each key in the order they last arrived.
    assert drain(inbox) == [
        "order:1",
        "book:AAPL-USD:1",
        "book:MSFT-USD:1",
        "book:AAPL-USD:6",
        "mark:AAPL-USD:11",
    ]
    assert inbox.conflated == 4 + 1
    assert inbox.events_in == 10 and inbox.full_waits == 0


async def test_conflation_keeps_each_candle_resolution_its_own_stream():
    inbox = Inbox("b/p", size=1)
    bus = Bus(DESK_A)
    bus.subscribe(inbox)

    def candle(resolution: str, close: int) -> CandleEvent:
        price = Decimal(close)
        return CandleEvent(
            venue="demo",
            account_id="",
            received_at=0.0,
            symbol="AAPL-USD",
            resolution=resolution,
            start=0.0,
            open=price,
            high=price,
            low=price,
            close=price,
        )

    with trio.fail_after(1):
        await bus.publish(order(DESK_A, "1"))  # fills the backlog: candles go to the overflow
        for event in (candle("1MIN", 1), candle("1HOUR", 2), candle("1MIN", 3)):
            await bus.publish(event)
    got = []
    while (event := inbox.pop()) is not None:
        got.append(event)
    candles = [(e.resolution, e.close) for e in got if isinstance(e, CandleEvent)]
    assert candles == [("1HOUR", Decimal(2)), ("1MIN", Decimal(3))]
    assert inbox.conflated == 1


async def test_private_event_waits_behind_conflated_data_and_keeps_order():
    inbox = Inbox("b/p", size=1)
    bus = Bus(DESK_A)
    bus.subscribe(inbox)
    await bus.publish(order(DESK_A, "1"))
    await bus.publish(book(DESK_A, "AAPL-USD", 1))  # overflow
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bus.publish, fill(DESK_A, "t1"))  # waits: private
            await trio.testing.wait_all_tasks_blocked()
            await bus.publish(book(DESK_A, "AAPL-USD", 2))  # after the fill: must stay after it
            await bus.publish(book(DESK_A, "MSFT-USD", 1))
            got = [label(await inbox.get()) for _ in range(4)]
    assert got == ["order:1", "fill:t1", "book:AAPL-USD:2", "book:MSFT-USD:1"]
    assert inbox.conflated == 1


async def test_full_inbox_blocks_only_its_own_publisher():
    slow, fast = Inbox("b/slow", size=1), Inbox("b/fast", size=100)
    bus_a, bus_b = Bus(DESK_A), Bus(DESK_B)
    bus_a.subscribe(slow)
    bus_b.subscribe(fast)
    await bus_a.publish(balance(DESK_A, 1))
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bus_a.publish, balance(DESK_A, 2))
            await trio.testing.wait_all_tasks_blocked()
            for i in range(10):
                await bus_b.publish(balance(DESK_B, i))
            assert fast.depth == 10
            drain(slow)
    assert slow.events_in == 2


async def test_subscribes_filter_and_put_bypasses_it():
    inbox = Inbox("b/p", size=10, subscribes=(BalanceEvent, FillEvent))
    bus = Bus(DESK_A)
    bus.subscribe(inbox)
    await bus.publish(order(DESK_A, "1"))
    await bus.publish(balance(DESK_A, 1))
    await bus.publish(book(DESK_A, "AAPL-USD", 1))
    await bus.publish(fill(DESK_A, "t"))
    await inbox.put(order(DESK_A, "2"))  # e.g. the plugin's own timer: not filtered
    assert drain(inbox) == ["balance:1:1", "fill:t", "order:2"]


async def test_close_unsubscribes_releases_waiters_and_drains():
    inbox = Inbox("b/p", size=1)
    bus = Bus(DESK_A)
    bus.subscribe(inbox)
    await bus.publish(balance(DESK_A, 1))
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bus.publish, balance(DESK_A, 2))
            await trio.testing.wait_all_tasks_blocked()
            inbox.close()  # the waiting publisher is released
    assert bus.subscribers == ()
    await bus.publish(balance(DESK_A, 3))  # not delivered
    await inbox.put(balance(DESK_A, 4))  # dropped: closed
    assert [label(await inbox.get()), label(await inbox.get())] == ["balance:1:1", "balance:1:2"]
    with pytest.raises(trio.EndOfChannel):
        await inbox.get()
    assert inbox.dropped == 1
    with pytest.raises(ValueError, match="closed"):
        bus.subscribe(inbox)


async def test_consumer_wakes_on_publish_and_on_close():
    inbox = Inbox("b/p", size=4)
    bus = Bus(DESK_A)
    bus.subscribe(inbox)
    got: list[str] = []

    async def consumer():
        while True:
            try:
                got.append(label(await inbox.get()))
            except trio.EndOfChannel:
                got.append("end")
                return

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer)
            await trio.testing.wait_all_tasks_blocked()
            await bus.publish(balance(DESK_A, 1))
            await trio.testing.wait_all_tasks_blocked()
            assert got == ["balance:1:1"]
            inbox.close()
    assert got == ["balance:1:1", "end"]


async def test_cancelled_publish_keeps_event_queued():
    inbox = Inbox("b/p", size=1)
    bus = Bus(DESK_A)
    bus.subscribe(inbox)
    await bus.publish(balance(DESK_A, 1))
    with trio.move_on_after(0.01):
        await bus.publish(balance(DESK_A, 2))
    assert drain(inbox) == ["balance:1:1", "balance:1:2"]


def test_inbox_size_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        Inbox("b/p", size=0)
