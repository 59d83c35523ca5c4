"""Dispatch: plugins get their events in order, sync or async, isolated, disabled on failures."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing
from core_helpers import DESK_A, DESK_B, RecordingActions, balance, build_host, fill, label, order

from qfexbot.core.bus import Bus
from qfexbot.core.dispatch import Dispatcher
from qfexbot.events import BalanceEvent, TimerEvent
from qfexbot.hookspecs import hookimpl


class Recorder:
    """Records every event label in ``ctx.state[<instance name>]``; sync hook."""

    @hookimpl
    def qfexbot_event(self, ctx, event):
        ctx.state.setdefault(ctx.plugin, []).append(label(event))


class AsyncRecorder:
    """Same, with async hooks that really yield."""

    @hookimpl
    async def qfexbot_startup(self, ctx):
        await trio.lowlevel.checkpoint()
        ctx.state.setdefault("log", []).append(f"startup:{ctx.plugin}")

    @hookimpl
    async def qfexbot_event(self, ctx, event):
        await trio.lowlevel.checkpoint()
        ctx.state.setdefault(ctx.plugin, []).append(label(event))

    @hookimpl
    async def qfexbot_shutdown(self, ctx):
        await trio.lowlevel.checkpoint()
        ctx.state.setdefault("log", []).append(f"shutdown:{ctx.plugin}")


class FailsOnSmallBalances:
    """Raises for balances below 100 (``available`` tells the test which ones fail)."""

    @hookimpl
    def qfexbot_event(self, ctx, event):
        if event.available < 100:
            raise RuntimeError(f"boom {event.available}")
        ctx.state.setdefault(ctx.plugin, []).append(label(event))


def wire(host, *accounts: str) -> list[Bus]:
    buses = [Bus(account, "v") for account in accounts]
    for bus in buses:
        host.subscribe(bus)
    return buses


async def run_until_idle(dispatcher: Dispatcher, publish) -> None:
    """Start dispatch, publish, let every plugin catch up, then stop (drain + shutdown)."""
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(dispatcher.run)
            await publish()
            await trio.testing.wait_all_tasks_blocked()
            dispatcher.stop()


async def test_events_reach_sync_and_async_plugins_in_order(plugin_module):
    host = build_host(
        {
            "sync": {"use": plugin_module.add("Recorder", Recorder)},
            "asy": {"use": plugin_module.add("AsyncRecorder", AsyncRecorder)},
        },
        state={},
    )
    bus_a, bus_b = wire(host, DESK_A, DESK_B)
    sequence = [
        (bus_a, order(DESK_A, "1")),
        (bus_b, balance(DESK_B, 1)),
        (bus_a, fill(DESK_A, "t1")),
        (bus_a, balance(DESK_A, 2)),
        (bus_b, order(DESK_B, "2")),
        (bus_a, order(DESK_A, "3")),
    ]

    async def publish():
        for bus, event in sequence:
            await bus.publish(event)

    await run_until_idle(Dispatcher(host), publish)
    expected = [label(e) for _, e in sequence]
    assert host.state["sync"] == expected
    assert host.state["asy"] == expected
    assert host.state["log"] == ["startup:asy", "shutdown:asy"]
    stats = host.stats()
    assert stats["sync"]["events_handled"] == 6 and stats["asy"]["events_handled"] == 6


async def test_hookimpl_may_take_a_subset_of_arguments(plugin_module):
    seen = []

    class OnlyEvent:
        @hookimpl
        def qfexbot_event(self, event):
            seen.append(label(event))

    host = build_host({"p": {"use": plugin_module.add("OnlyEvent", OnlyEvent)}})
    (bus,) = wire(host, DESK_A)

    async def publish():
        await bus.publish(balance(DESK_A, 3))

    await run_until_idle(Dispatcher(host), publish)
    assert seen == ["balance:1:3"]


async def test_failure_is_isolated_logged_and_counted(plugin_module, caplog):
    caplog.set_level(logging.ERROR, logger="qfexbot")
    host = build_host(
        {
            "bad": {"use": plugin_module.add("Fails", FailsOnSmallBalances)},
            "good": {"use": plugin_module.add("Recorder", Recorder)},
        },
        state={},
    )
    (bus,) = wire(host, DESK_A)

    async def publish():
        for value in (1, 200, 2, 300):
            await bus.publish(balance(DESK_A, value))  # the publisher never sees the errors

    await run_until_idle(Dispatcher(host), publish)
    assert host.state["good"] == ["balance:1:1", "balance:1:200", "balance:1:2", "balance:1:300"]
    assert host.state["bad"] == ["balance:1:200", "balance:1:300"]
    stats = host.stats()["bad"]
    assert stats["failures"] == 2 and stats["events_handled"] == 2 and not stats["disabled"]
    records = [r for r in caplog.records if r.getMessage() == "plugin hook failed"]
    assert len(records) == 2
    record = records[0]
    assert record.context == {"bot": "b", "plugin": "bad", "account": DESK_A}
    assert record.fields["hook"] == "qfexbot_event" and record.fields["event"] == "balance"
    assert record.fields["error"] == "RuntimeError: boom 1"
    assert record.exc_info is not None


async def test_disabled_after_consecutive_failures_success_resets(plugin_module, caplog):
    caplog.set_level(logging.ERROR, logger="qfexbot")
    host = build_host(
        {
            "bad": {"use": plugin_module.add("Fails", FailsOnSmallBalances), "failure_limit": 3},
        },
        state={},
    )
    (bus,) = wire(host, DESK_A)
    values = [1, 2, 200, 3, 4, 201, 5, 6, 7, 500, 501]

    async def publish():
        for value in values:
            await bus.publish(balance(DESK_A, value))
            await trio.testing.wait_all_tasks_blocked()

    await run_until_idle(Dispatcher(host), publish)
    # 1,2 fail; 200 resets; 3,4 fail; 201 resets; 5,6,7 -> disabled; 500, 501 never delivered.
    assert host.state["bad"] == ["balance:1:200", "balance:1:201"]
    stats = host.stats()["bad"]
    assert stats["disabled"] and stats["failures"] == 7 and stats["consecutive_failures"] == 3
    assert "3 consecutive failures" in stats["disabled_reason"]
    assert bus.subscribers == ()  # unsubscribed: the bus no longer delivers to it
    disabled = [r for r in caplog.records if r.getMessage() == "plugin disabled"]
    assert len(disabled) == 1 and disabled[0].levelno == logging.ERROR
    assert disabled[0].context["plugin"] == "bad"


async def test_slow_plugin_with_tiny_inbox_loses_no_private_event(plugin_module):
    class Slow:
        @hookimpl
        async def qfexbot_event(self, ctx, event):
            await trio.sleep(0.002)
            ctx.state.setdefault("seen", []).append(label(event))

    host = build_host({"slow": {"use": plugin_module.add("Slow", Slow), "inbox_size": 2}}, state={})
    (bus,) = wire(host, DESK_A)

    async def publish():
        for i in range(30):
            await bus.publish(balance(DESK_A, i) if i % 2 else fill(DESK_A, str(i)))

    await run_until_idle(Dispatcher(host), publish)
    assert host.state["seen"] == [
        label(balance(DESK_A, i) if i % 2 else fill(DESK_A, str(i))) for i in range(30)
    ]
    assert host.stats()["slow"]["full_waits"] > 0 and host.stats()["slow"]["high_water"] <= 3


async def test_subscribes_attribute_filters_events(plugin_module):
    class OnlyBalances(Recorder):
        subscribes = (BalanceEvent,)

    host = build_host({"p": {"use": plugin_module.add("OnlyBalances", OnlyBalances)}}, state={})
    (bus,) = wire(host, DESK_A)

    async def publish():
        await bus.publish(order(DESK_A, "1"))
        await bus.publish(balance(DESK_A, 5))
        await bus.publish(fill(DESK_A, "t"))

    await run_until_idle(Dispatcher(host), publish)
    assert host.state["p"] == ["balance:1:5"]


async def test_timers_deliver_timer_events(plugin_module, autojump_clock):
    class Ticker:
        subscribes = (BalanceEvent,)  # timers bypass the filter

        @hookimpl
        def qfexbot_schedules(self, ctx):
            return [("fast", 1.0), ("slow", Decimal("2.5")), ("bad", -1), ("fast", 3)]

        @hookimpl
        def qfexbot_event(self, ctx, event):
            if isinstance(event, TimerEvent):
                ctx.state.setdefault("ticks", []).append(
                    (event.name, event.interval, trio.current_time())
                )

    host = build_host({"t": {"use": plugin_module.add("Ticker", Ticker)}}, state={})
    dispatcher = Dispatcher(host)
    async with trio.open_nursery() as nursery:
        await nursery.start(dispatcher.run)
        start = trio.current_time()
        await trio.sleep(5.5)
        dispatcher.stop()
    ticks = [(name, interval, round(at - start, 3)) for name, interval, at in host.state["ticks"]]
    assert [t for t in ticks if t[0] == "fast"] == [("fast", 1.0, float(n)) for n in range(1, 6)]
    assert [t for t in ticks if t[0] == "slow"] == [("slow", 2.5, 2.5), ("slow", 2.5, 5.0)]


async def test_startup_failure_and_timeout_disable_only_that_plugin(plugin_module, autojump_clock):
    class BadStart(Recorder):
        @hookimpl
        def qfexbot_startup(self, ctx):
            raise ValueError("no")

        @hookimpl
        def qfexbot_shutdown(self, ctx):
            ctx.state["bad_shutdown"] = True

    class Hangs(Recorder):
        @hookimpl
        async def qfexbot_startup(self, ctx):
            await trio.sleep_forever()

    host = build_host(
        {
            "bad": {"use": plugin_module.add("BadStart", BadStart)},
            "hangs": {"use": plugin_module.add("Hangs", Hangs)},
            "good": {"use": plugin_module.add("Recorder", Recorder)},
        },
        state={},
    )
    (bus,) = wire(host, DESK_A)
    dispatcher = Dispatcher(host, hook_timeout=3)

    async with trio.open_nursery() as nursery:
        await nursery.start(dispatcher.run)
        await bus.publish(balance(DESK_A, 1))
        await trio.testing.wait_all_tasks_blocked()
        assert bus.subscribers == (host.slots[2].inbox,)  # the disabled ones unsubscribed
        dispatcher.stop()
    stats = host.stats()
    assert stats["bad"]["disabled"] and stats["bad"]["disabled_reason"] == "qfexbot_startup failed"
    assert stats["hangs"]["disabled"] and stats["hangs"]["failures"] == 1
    assert host.state["good"] == ["balance:1:1"]
    assert "bad" not in host.state and "hangs" not in host.state
    assert "bad_shutdown" not in host.state  # shutdown only after a successful startup


async def test_stop_drains_queued_events_before_shutdown(plugin_module):
    host = build_host({"p": {"use": plugin_module.add("AsyncRecorder", AsyncRecorder)}}, state={})
    (bus,) = wire(host, DESK_A)
    for i in range(5):  # queued before dispatch even starts
        await bus.publish(balance(DESK_A, i))
    dispatcher = Dispatcher(host)
    dispatcher.stop()
    with trio.fail_after(5):
        await dispatcher.run()
    assert host.state["p"] == [f"balance:1:{i}" for i in range(5)]
    assert host.state["log"] == ["startup:p", "shutdown:p"]
    assert bus.subscribers == ()


async def test_cancelled_dispatch_still_calls_shutdown(plugin_module):
    host = build_host({"p": {"use": plugin_module.add("AsyncRecorder", AsyncRecorder)}}, state={})
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(Dispatcher(host).run)
            nursery.cancel_scope.cancel()
    assert host.state["log"] == ["startup:p", "shutdown:p"]


async def test_drain_timeout_bounds_stop(plugin_module, autojump_clock, caplog):
    class Stuck:
        @hookimpl
        async def qfexbot_event(self, ctx, event):
            await trio.sleep_forever()

    host = build_host({"p": {"use": plugin_module.add("Stuck", Stuck)}}, state={})
    (bus,) = wire(host, DESK_A)
    dispatcher = Dispatcher(host, drain_timeout=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(dispatcher.run)
        await bus.publish(balance(DESK_A, 1))
        await bus.publish(balance(DESK_A, 2))
        dispatcher.stop()
    assert trio.current_time() == pytest.approx(2, abs=0.01)
    assert any(r.getMessage() == "drain timed out, events not delivered" for r in caplog.records)


async def test_context_forwards_actions_with_bot_and_plugin(plugin_module):
    actions = RecordingActions()

    class Actor:
        @hookimpl
        async def qfexbot_event(self, ctx, event):
            ctx.state["transfer"] = await ctx.transfer("treasury", "desk-a", Decimal("5"), "top up")
            await ctx.add_order(
                "desk-a",
                symbol="AAPL-USD",
                side="BUY",
                order_type="LIMIT",
                quantity=Decimal("1"),
                price=Decimal("2"),
            )
            await ctx.cancel_order("desk-a", symbol="AAPL-USD", order_id="o1")
            ctx.state["positions"] = await ctx.positions("desk-b")
            ctx.state["equity"] = await ctx.account_equity("desk-b", "1d")

    host = build_host(
        {"act": {"use": plugin_module.add("Actor", Actor)}}, state={}, actions=actions
    )
    (bus,) = wire(host, DESK_A)

    async def publish():
        await bus.publish(balance(DESK_A, 1))

    await run_until_idle(Dispatcher(host), publish)
    assert host.state["transfer"] == "transfer-result" and host.state["positions"] == "snapshot"
    assert [(name, args) for name, args, _ in actions.calls] == [
        ("transfer", ("b", "act", "treasury", "desk-a", Decimal("5"), "top up")),
        ("add_order", ("b", "act", "desk-a")),
        ("cancel_order", ("b", "act", "desk-a")),
        ("positions", ("b", "act", "desk-b")),
        ("account_equity", ("b", "act", "desk-b", "1d")),
    ]
    add_order_kwargs: dict[str, Any] = actions.calls[1][2]
    assert add_order_kwargs["price"] == Decimal("2") and add_order_kwargs["time_in_force"] == "GTC"
    assert actions.calls[2][2] == {"symbol": "AAPL-USD", "order_id": "o1"}
