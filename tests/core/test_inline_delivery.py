"""Inline delivery: a sync ``qfexbot_event`` whose task waits with an empty inbox is called by
the publisher, and the plugin cannot tell: same context and log lines, same isolation, order,
never-drop, conflation, counters and stop/disable semantics as the queued path (issue 16)."""

from __future__ import annotations

import contextvars
import logging
import time
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing
from core_helpers import DESK_A, DESK_B, balance, book, build_host, fill, label, order

from qfexbot.core.bus import Bus, Inbox
from qfexbot.core.dispatch import Dispatcher
from qfexbot.core.logs import log_context
from qfexbot.events import TimerEvent
from qfexbot.hookspecs import hookimpl

NEVER_SLOW = 10.0  # an inline budget no test hook exceeds, so delivery never falls back
QUEUED = 0.0  # inline_budget=0: the queued path, the reference behaviour

_seen_before: contextvars.ContextVar[int] = contextvars.ContextVar("seen_before", default=0)


def busy(seconds: float) -> None:
    """A deterministic slow hook body (it must not yield: it stands for CPU-bound work)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class TaskRecorder:
    """Sync hook: records (event label, task that ran the hook) in ``ctx.state[plugin]``."""

    @hookimpl
    def qfexbot_event(self, ctx, event):
        ctx.state.setdefault(ctx.plugin, []).append((label(event), trio.lowlevel.current_task()))


class AsyncTaskRecorder:
    @hookimpl
    async def qfexbot_event(self, ctx, event):
        ctx.state.setdefault(ctx.plugin, []).append((label(event), trio.lowlevel.current_task()))


class Fails:
    """Raises for balances below 100; logs the others through ``ctx.log``; counts in a
    contextvar how many events its context saw before (set in one call, read in the next)."""

    @hookimpl
    def qfexbot_event(self, ctx, event):
        before = _seen_before.get()
        _seen_before.set(before + 1)
        ctx.state.setdefault("before", []).append(before)
        ctx.state.setdefault("tasks", []).append(trio.lowlevel.current_task())
        if event.available < 100:
            raise RuntimeError(f"boom {event.available}")
        ctx.log.info("handled %s", label(event))
        ctx.state.setdefault(ctx.plugin, []).append(label(event))


def wire(host, *accounts: str) -> list[Bus]:
    buses = [Bus(account, "v") for account in accounts]
    for bus in buses:
        host.subscribe(bus)
    return buses


def log_lines(records: list[logging.LogRecord]) -> list[tuple[Any, ...]]:
    """What a reader of the log sees of each qfexbot or plugin line."""
    return [
        (
            r.name,
            r.levelno,
            r.getMessage(),
            dict(r.context),
            getattr(r, "fields", None),
            None if r.exc_info is None else repr(r.exc_info[1]),
        )
        for r in records
        if r.name.startswith(("qfexbot", "plugins"))
    ]


async def test_sync_hook_runs_in_the_publishers_call_async_hook_in_its_task(plugin_module):
    host = build_host(
        {
            "sync": {"use": plugin_module.add("TaskRecorder", TaskRecorder)},
            "asy": {"use": plugin_module.add("AsyncTaskRecorder", AsyncTaskRecorder)},
        },
        state={},
    )
    (bus,) = wire(host, DESK_A)
    publisher = trio.lowlevel.current_task()
    events = [order(DESK_A, "1"), balance(DESK_A, 2), fill(DESK_A, "t3")]
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(Dispatcher(host, inline_budget=NEVER_SLOW).run)
            await trio.testing.wait_all_tasks_blocked()
            for n, event in enumerate(events, 1):
                await bus.publish(event)  # no schedule point: fewer than Bus.YIELD_EVERY
                assert [name for name, _ in host.state["sync"]] == [label(e) for e in events[:n]]
            assert "asy" not in host.state  # queued: its task has not run yet
            await trio.testing.wait_all_tasks_blocked()
            dispatcher_tasks = {task for _, task in host.state["asy"]}
            assert [name for name, _ in host.state["asy"]] == [label(e) for e in events]
            nursery.cancel_scope.cancel()
    assert {task for _, task in host.state["sync"]} == {publisher}
    assert publisher not in dispatcher_tasks
    stats = host.stats()
    for name in ("sync", "asy"):
        assert stats[name]["events_in"] == 3 and stats[name]["events_handled"] == 3
        assert stats[name]["depth"] == 0 and stats[name]["dropped"] == 0
    assert stats["sync"]["high_water"] == 1  # never more than the event in hand
    assert stats["asy"]["high_water"] == 3


async def run_fails(plugin_module, budget: float, caplog) -> tuple[Any, list[tuple[Any, ...]]]:
    """Feed ``Fails`` (failure_limit 3) and a recorder eleven balances from a session-like
    publisher with its own log context; returns the host and the log lines."""
    caplog.clear()
    host = build_host(
        {
            "bad": {"use": plugin_module.add("Fails", Fails), "failure_limit": 3},
            "good": {"use": plugin_module.add("TaskRecorder", TaskRecorder)},
        },
        state={},
    )
    (bus,) = wire(host, DESK_A)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(Dispatcher(host, inline_budget=budget).run)
            await trio.testing.wait_all_tasks_blocked()
            with log_context(bot="session", account="publisher"):
                for value in (1, 2, 200, 3, 4, 201, 5, 6, 7, 500, 501):
                    await bus.publish(balance(DESK_A, value))  # never sees the errors
                    await trio.testing.wait_all_tasks_blocked()  # queued: the task keeps up
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    return host, log_lines(caplog.records)


async def test_inline_failures_are_isolated_counted_logged_and_disable_as_queued(
    plugin_module, caplog
):
    caplog.set_level(logging.INFO)
    queued, queued_lines = await run_fails(plugin_module, QUEUED, caplog)
    inline, inline_lines = await run_fails(plugin_module, NEVER_SLOW, caplog)
    publisher = trio.lowlevel.current_task()
    assert set(inline.state["tasks"]) == {publisher}  # every call was inline
    assert publisher not in queued.state["tasks"]
    # 1,2 fail; 200 resets; 3,4 fail; 201 resets; 5,6,7 -> disabled; 500, 501 never delivered.
    for host in (queued, inline):
        assert host.state["bad"] == ["balance:1:200", "balance:1:201"]
        assert len(host.state["good"]) == 11
        stats = host.stats()["bad"]
        assert stats["disabled"] and stats["failures"] == 7 and stats["consecutive_failures"] == 3
        assert stats["events_handled"] == 2 and stats["events_in"] == 9
    assert inline.state["before"] == queued.state["before"] == list(range(9))
    assert inline_lines == queued_lines  # same lines, contexts, fields and errors
    failed = [line for line in inline_lines if line[2] == "plugin hook failed"]
    assert len(failed) == 7 and failed[0][3] == {"bot": "b", "plugin": "bad", "account": DESK_A}
    assert [line[:4] for line in inline_lines if line[2] == "handled balance:1:200"] == [
        ("plugins.b.bad", logging.INFO, "handled balance:1:200", {"bot": "b", "plugin": "bad"})
    ]
    assert [line[2] for line in inline_lines].count("plugin disabled") == 1
    # the same counters and last error; only the time of that error differs
    inline_stats, queued_stats = (
        {name: {**counters, "last_error_at": None} for name, counters in host.stats().items()}
        for host in (inline, queued)
    )
    assert inline_stats == queued_stats
    assert inline_stats["bad"]["last_error"] == "RuntimeError: boom 7"


async def test_sync_hook_returning_a_coroutine_is_awaited_in_its_task_in_order(plugin_module):
    class ReturnsCoroutine:
        @hookimpl
        def qfexbot_event(self, ctx, event):
            ctx.state.setdefault("called_in", []).append(trio.lowlevel.current_task())
            return self.handle(ctx, event)

        async def handle(self, ctx, event):
            await trio.lowlevel.checkpoint()
            if event.kind == "fill":
                raise ValueError("no fills")
            ctx.state.setdefault("awaited", []).append((label(event), trio.lowlevel.current_task()))

    host = build_host({"p": {"use": plugin_module.add("RC", ReturnsCoroutine)}}, state={})
    (bus,) = wire(host, DESK_A)
    events = [balance(DESK_A, 1), order(DESK_A, "2"), fill(DESK_A, "3"), balance(DESK_A, 4)]
    publisher = trio.lowlevel.current_task()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(Dispatcher(host, inline_budget=NEVER_SLOW).run)
            await trio.testing.wait_all_tasks_blocked()
            for event in events:
                await bus.publish(event)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert [name for name, _ in host.state["awaited"]] == ["balance:1:1", "order:2", "balance:1:4"]
    (plugin_task,) = {task for _, task in host.state["awaited"]}
    assert plugin_task is not publisher
    # Only the first call was inline; from then on the plugin is called in its own task.
    assert host.state["called_in"] == [publisher, plugin_task, plugin_task, plugin_task]
    stats = host.stats()["p"]
    assert stats["events_handled"] == 3 and stats["failures"] == 1 and stats["events_in"] == 4


class Halt(BaseException):
    """Not an Exception: the plugin framework must not swallow it."""


async def run_halting(plugin_module, budget: float) -> tuple[list[str], BaseException]:
    class Halts:
        @hookimpl
        def qfexbot_event(self, ctx, event):
            if event.kind == "fill":
                raise Halt("stop everything")

    host = build_host({"p": {"use": plugin_module.add("Halts", Halts)}}, state={})
    (bus,) = wire(host, DESK_A)
    published: list[str] = []
    with trio.fail_after(5), pytest.raises(BaseException) as caught:
        async with trio.open_nursery() as nursery:
            await nursery.start(Dispatcher(host, inline_budget=budget).run)
            await trio.testing.wait_all_tasks_blocked()
            for event in (balance(DESK_A, 1), fill(DESK_A, "2"), order(DESK_A, "3")):
                await bus.publish(event)
                published.append(label(event))
            await trio.sleep_forever()
    return published, caught.value


def shape(exc: BaseException) -> Any:
    """The nesting of exception groups down to the leaves' types and messages."""
    if isinstance(exc, BaseExceptionGroup):
        return [type(exc).__name__, [shape(e) for e in exc.exceptions]]
    return repr(exc)


async def test_base_exception_from_an_inline_call_is_raised_in_the_plugin_task(plugin_module):
    queued_published, queued_exc = await run_halting(plugin_module, QUEUED)
    inline_published, inline_exc = await run_halting(plugin_module, NEVER_SLOW)
    assert inline_published == queued_published == ["balance:1:1", "fill:2", "order:3"]
    assert shape(inline_exc) == shape(queued_exc)
    assert "Halt('stop everything')" in str(shape(inline_exc))


async def test_order_kept_across_buses_timers_and_inline_queued_switches(plugin_module):
    # Every timed call is over this budget: delivery keeps switching between inline (first
    # event after each wait) and queued (until the task has drained), from three producers.
    host = build_host({"p": {"use": plugin_module.add("TaskRecorder", TaskRecorder)}}, state={})
    bus_a, bus_b = wire(host, DESK_A, DESK_B)
    inbox = host.slots[0].inbox
    arrivals: list[str] = []
    producers: set[trio.lowlevel.Task] = set()

    async def produce(send, make, pause_every: int) -> None:
        producers.add(trio.lowlevel.current_task())
        for i in range(60):
            event = make(i)
            arrivals.append(label(event))  # no checkpoint between this and the offer
            await send(event)
            if i % pause_every == 0:
                await trio.lowlevel.checkpoint()

    def timer(i: int) -> TimerEvent:
        return TimerEvent(venue="v", account_id="", received_at=0.0, name=f"t{i}", interval=1)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(Dispatcher(host, inline_budget=1e-9).run)
            await trio.testing.wait_all_tasks_blocked()
            async with trio.open_nursery() as inner:
                inner.start_soon(produce, bus_a.publish, lambda i: order(DESK_A, str(i)), 3)
                inner.start_soon(produce, bus_b.publish, lambda i: balance(DESK_B, i), 5)
                inner.start_soon(produce, inbox.put, timer, 7)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    seen = host.state["p"]
    assert [name for name, _ in seen] == arrivals and len(arrivals) == 180
    inline = [task for _, task in seen if task in producers]
    queued = {task for _, task in seen if task not in producers}
    assert len(producers) == 3 and len(queued) == 1  # the others ran in the plugin's task
    assert 0 < len(inline) < 180  # both paths were taken, and order held across them
    assert host.stats()["p"]["events_handled"] == 180


async def test_an_event_offered_during_an_inline_call_is_queued_behind_it(plugin_module):
    class Reenters:
        inside = 0

        @hookimpl
        def qfexbot_event(self, ctx, event):
            self.inside += 1
            ctx.state.setdefault("depths", []).append(self.inside)
            ctx.state.setdefault("seen", []).append(label(event))
            if label(event) == "order:1":
                ctx.state["inbox"].offer(order(DESK_A, "nested"))  # a synchronous producer
            self.inside -= 1

    host = build_host({"p": {"use": plugin_module.add("Reenters", Reenters)}}, state={})
    host.state["inbox"] = host.slots[0].inbox
    (bus,) = wire(host, DESK_A)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(Dispatcher(host, inline_budget=NEVER_SLOW).run)
            await trio.testing.wait_all_tasks_blocked()
            await bus.publish(order(DESK_A, "1"))
            assert host.state["seen"] == ["order:1"] and host.slots[0].inbox.depth == 1
            await bus.publish(order(DESK_A, "2"))  # the task has an event: queued behind it
            assert host.state["seen"] == ["order:1"] and host.slots[0].inbox.depth == 2
            await trio.testing.wait_all_tasks_blocked()
            await bus.publish(order(DESK_A, "3"))  # drained and waiting again: inline again
            assert host.state["seen"][-1] == "order:3"
            nursery.cancel_scope.cancel()
    assert host.state["seen"] == ["order:1", "order:nested", "order:2", "order:3"]
    assert host.state["depths"] == [1, 1, 1, 1]  # never re-entered
    assert host.stats()["p"]["events_in"] == 4 and host.stats()["p"]["events_handled"] == 4


async def test_backlog_is_drained_by_the_task_before_inline_calls_and_none_after_stop(
    plugin_module,
):
    host = build_host({"p": {"use": plugin_module.add("TaskRecorder", TaskRecorder)}}, state={})
    (bus,) = wire(host, DESK_A)
    publisher = trio.lowlevel.current_task()
    for i in range(3):  # queued before dispatch even starts
        await bus.publish(order(DESK_A, str(i)))
    # The task yields after each event, so it cannot have drained three before we publish.
    dispatcher = Dispatcher(host, inline_budget=NEVER_SLOW, checkpoint_every=1)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(dispatcher.run)
            assert host.slots[0].inbox.depth >= 2
            await bus.publish(order(DESK_A, "3"))  # the backlog is not drained yet: queued
            await trio.testing.wait_all_tasks_blocked()
            await bus.publish(order(DESK_A, "4"))  # drained and waiting: inline
            assert [name for name, _ in host.state["p"]][-1] == "order:4"
            dispatcher.stop()
            await trio.testing.wait_all_tasks_blocked()
            inbox = host.slots[0].inbox
            assert inbox.closed and bus.subscribers == ()
            assert inbox.offer(order(DESK_A, "late"))  # closed: dropped, never called
    seen = host.state["p"]
    assert [name for name, _ in seen] == [f"order:{i}" for i in range(5)]
    assert [task is publisher for _, task in seen] == [False] * 4 + [True]
    assert host.stats()["p"]["events_in"] == 5 and host.stats()["p"]["dropped"] == 1


async def run_slow_burst(plugin_module, budget: float) -> tuple[dict[str, Any], int]:
    """A sync hook taking 300 us, inbox_size 4, fed 256 book events of two symbols as fast
    as one publisher can; returns the plugin's stats and how many calls were inline."""

    class SlowBooks:
        @hookimpl
        def qfexbot_event(self, ctx, event):
            ctx.state.setdefault("tasks", []).append(trio.lowlevel.current_task())
            busy(300e-6)

    host = build_host(
        {"slow": {"use": plugin_module.add("SlowBooks", SlowBooks), "inbox_size": 4}}, state={}
    )
    (bus,) = wire(host, DESK_A)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(Dispatcher(host, inline_budget=budget).run)
            await trio.testing.wait_all_tasks_blocked()
            for seq in range(256):
                await bus.publish(book(DESK_A, ("AAPL-USD", "TSLA-USD")[seq % 2], seq))
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    publisher = trio.lowlevel.current_task()
    return host.stats()["slow"], sum(task is publisher for task in host.state["tasks"])


async def test_slow_sync_plugin_fed_a_market_data_burst_is_conflated_as_before(plugin_module):
    before, before_inline = await run_slow_burst(plugin_module, QUEUED)
    now, now_inline = await run_slow_burst(plugin_module, 50e-6)  # the default budget
    unbounded, unbounded_inline = await run_slow_burst(plugin_module, NEVER_SLOW)
    for stats in (before, now, unbounded):
        assert stats["events_in"] == 256 and stats["depth"] == 0 and stats["full_waits"] == 0
        assert stats["events_handled"] + stats["conflated"] == 256  # each handled or replaced
    assert before_inline == 0 and before["conflated"] > 150
    # The budget rule: one slow inline call per drain of the inbox at most (the publisher
    # yields every Bus.YIELD_EVERY publishes), the rest conflated as on the queued path.
    assert 1 <= now_inline <= 256 // Bus.YIELD_EVERY + 1
    assert now["conflated"] > 150
    # Without the rule the publisher would run the slow hook for every event itself.
    assert unbounded_inline == 256 and unbounded["conflated"] == 0


async def test_slow_sync_plugin_loses_no_private_event_and_makes_the_publisher_wait(
    plugin_module,
):
    class Slow:
        @hookimpl
        def qfexbot_event(self, ctx, event):
            busy(300e-6)
            ctx.state.setdefault("seen", []).append(label(event))

    host = build_host({"slow": {"use": plugin_module.add("Slow", Slow), "inbox_size": 2}}, state={})
    (bus,) = wire(host, DESK_A)
    events = [balance(DESK_A, i) if i % 2 else fill(DESK_A, str(i)) for i in range(30)]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(Dispatcher(host).run)
            await trio.testing.wait_all_tasks_blocked()
            for event in events:
                await bus.publish(event)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert host.state["seen"] == [label(e) for e in events]
    stats = host.stats()["slow"]
    assert stats["full_waits"] > 0 and stats["high_water"] <= 3 and stats["events_handled"] == 30


class StepEnds(trio.abc.Instrument):
    """Records ``bus.published`` each time ``task`` reaches a schedule point."""

    def __init__(self, task: trio.lowlevel.Task, bus: Bus) -> None:
        self.task, self.bus, self.at = task, bus, []

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.at.append(self.bus.published)


async def test_publish_stays_a_cancel_point_and_yields_every_yield_every(plugin_module):
    host = build_host({"p": {"use": plugin_module.add("TaskRecorder", TaskRecorder)}}, state={})
    (bus,) = wire(host, DESK_A)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(Dispatcher(host, inline_budget=NEVER_SLOW).run)
            await trio.testing.wait_all_tasks_blocked()
            with trio.CancelScope() as scope:
                scope.cancel()
                await bus.publish(order(DESK_A, "cancelled"))
            assert scope.cancelled_caught and "p" not in host.state and bus.published == 0
            steps = StepEnds(trio.lowlevel.current_task(), bus)
            trio.lowlevel.add_instrument(steps)
            handled = []
            for i in range(2 * Bus.YIELD_EVERY):
                await bus.publish(order(DESK_A, str(i)))
                handled.append(len(host.state["p"]))  # inline: handled when publish returns
            trio.lowlevel.remove_instrument(steps)
            nursery.cancel_scope.cancel()
    assert steps.at == [Bus.YIELD_EVERY, 2 * Bus.YIELD_EVERY]  # the fresh bus's schedule
    assert handled == list(range(1, 2 * Bus.YIELD_EVERY + 1))
    assert host.stats()["p"]["events_in"] == 2 * Bus.YIELD_EVERY


async def test_inbox_hands_events_to_a_waiting_consumer_until_told_to_stop():
    inbox = Inbox("b/p", size=4)
    handed: list[str] = []

    def deliver(event) -> bool:
        handed.append(label(event))
        return len(handed) < 2

    woke = trio.Event()

    async def consumer() -> None:
        await inbox.wait_nonempty(deliver)
        woke.set()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer)
            await trio.testing.wait_all_tasks_blocked()
            assert inbox.offer(balance(DESK_A, 1)) and not woke.is_set()
            assert inbox.offer(balance(DESK_A, 2))  # deliver says stop: the consumer wakes
            assert inbox.offer(balance(DESK_A, 3))  # queued
            await woke.wait()
    assert handed == ["balance:1:1", "balance:1:2"]
    assert [label(inbox.get_nowait())] == ["balance:1:3"] and inbox.depth == 0
    assert inbox.events_in == 3 and inbox.high_water == 1


async def test_inbox_hands_nothing_to_a_cancelled_or_closed_consumer():
    inbox = Inbox("b/p", size=4)
    handed: list[str] = []

    def deliver(event) -> bool:
        handed.append(label(event))
        return True

    with trio.fail_after(5):
        with trio.move_on_after(0.01):
            await inbox.wait_nonempty(deliver)
        assert inbox.offer(balance(DESK_A, 1)) and inbox.depth == 1  # queued, not handed
        assert inbox.get_nowait().available == 1
        async with trio.open_nursery() as nursery:
            nursery.start_soon(inbox.wait_nonempty, deliver)
            await trio.testing.wait_all_tasks_blocked()
            inbox.close()  # wakes the consumer
        assert inbox.offer(balance(DESK_A, 2))  # dropped
    assert handed == [] and inbox.dropped == 1 and inbox.events_in == 1
