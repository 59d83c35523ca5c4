"""Re-enabling a plugin its circuit breaker disabled: a fresh inbox on the same buses, events
from then on in order, its timer ticking again, failures counted afresh, logged and alerted."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing
from core_helpers import DESK_A, DESK_B, balance, build_host, label

from qfexbot.core.alerts import AlertHub
from qfexbot.core.bus import Bus, Inbox
from qfexbot.core.dispatch import Dispatcher, PluginStateError
from qfexbot.core.logs import register_secret
from qfexbot.events import AlertEvent, TimerEvent
from qfexbot.hookspecs import hookimpl

SECRET = "reenable-test-secret-91c2"


class Flaky:
    """Raises (with a secret in the message) while ``ctx.state["broken"]``; else records what
    it gets: balances by label, timer ticks by name and time."""

    @hookimpl
    def qfexbot_schedules(self, ctx):
        return [("tick", 1.0)]

    @hookimpl
    def qfexbot_event(self, ctx, event):
        if ctx.state["broken"]:
            raise RuntimeError(f"broken on {label(event)} with key {SECRET}")
        seen = ctx.state.setdefault("seen", [])
        if isinstance(event, TimerEvent):
            seen.append((event.name, round(trio.current_time() - ctx.state["t0"], 3)))
        else:
            seen.append(label(event))


class AsyncFlaky(Flaky):
    @hookimpl
    async def qfexbot_event(self, ctx, event):
        await trio.lowlevel.checkpoint()
        Flaky.qfexbot_event(self, ctx, event)


def alerts_of(inbox: Inbox) -> list[tuple[str, str]]:
    got = []
    while (alert := inbox.pop()) is not None:
        assert isinstance(alert, AlertEvent)
        got.append((str(alert.alert), alert.summary))
    return got


@pytest.mark.parametrize("cls", [Flaky, AsyncFlaky], ids=["sync-inline", "async"])
async def test_reenabled_plugin_gets_the_next_events_in_order_and_its_timer(
    plugin_module, autojump_clock, caplog, cls
):
    caplog.set_level(logging.INFO, logger="qfexbot")
    register_secret(SECRET)
    host = build_host(
        {"flaky": {"use": plugin_module.add("Flaky", cls), "failure_limit": 2}},
        state={"broken": True},
    )
    buses = [Bus(account, "v") for account in (DESK_A, DESK_B)]
    for bus in buses:
        host.subscribe(bus)
    hub = AlertHub()
    watcher = Inbox("watcher", 10)
    hub.subscribe(watcher)
    dispatcher = Dispatcher(host, alerts=hub)
    slot = host.slots[0]

    async with trio.open_nursery() as nursery:
        await nursery.start(dispatcher.run)
        host.state["t0"] = trio.current_time()
        for n in (1, 2):
            await buses[0].publish(balance(DESK_A, n))
            await trio.testing.wait_all_tasks_blocked()
        assert slot.disabled and all(bus.subscribers == () for bus in buses)
        assert slot.last_error == "RuntimeError: broken on balance:1:2 with key <redacted>"
        assert SECRET not in slot.disabled_reason
        await buses[0].publish(balance(DESK_A, 3))  # while disabled: never delivered
        await trio.sleep(3.5)  # and its timer is stopped: no tick fails or counts
        assert slot.failures == 2 and "seen" not in host.state

        host.state["broken"] = False
        reenabled_at = trio.current_time() - host.state["t0"]
        stats = await dispatcher.reenable("flaky", by="the test", reason="fixed the bug")
        assert stats["disabled"] is False and stats["disabled_reason"] == ""
        assert stats["consecutive_failures"] == 0 and stats["failures"] == 2
        assert stats["reenabled"] == 1 and stats["last_error"] == slot.last_error
        assert stats["events_in"] == 2 and stats["dropped"] == 0  # totals carried over
        assert all(bus.subscribers == (slot.inbox,) for bus in buses)
        for n, bus in ((4, buses[0]), (5, buses[1]), (6, buses[0])):
            await bus.publish(balance(bus.account_id, n))
        await trio.sleep(2.5)
        assert host.state["seen"] == [
            "balance:1:4",
            "balance:2:5",
            "balance:1:6",
            ("tick", reenabled_at + 1),
            ("tick", reenabled_at + 2),
        ]

        host.state["broken"] = True  # fails again: disabled again after 2 more
        for n in (7, 8):
            await buses[1].publish(balance(DESK_B, n))
            await trio.testing.wait_all_tasks_blocked()
        assert slot.disabled and slot.failures == 4 and slot.consecutive_failures == 2
        assert all(bus.subscribers == () for bus in buses)
        dispatcher.stop()

    assert [kind for kind, _ in alerts_of(watcher)] == [
        "plugin_disabled",
        "plugin_enabled",
        "plugin_disabled",
    ]
    (line,) = [r for r in caplog.records if r.getMessage() == "plugin re-enabled"]
    assert line.levelno == logging.WARNING and line.context["plugin"] == "flaky"
    assert line.fields["by"] == "the test" and line.fields["reason"] == "fixed the bug"
    assert SECRET not in line.fields["was_disabled"]


async def test_reenable_refuses_what_it_cannot_do(plugin_module, autojump_clock):
    class BadStart(Flaky):
        @hookimpl
        def qfexbot_startup(self, ctx):
            raise ValueError("no database")

    host = build_host(
        {
            "flaky": {"use": plugin_module.add("Flaky", Flaky), "failure_limit": 1},
            "nostart": {"use": plugin_module.add("BadStart", BadStart)},
        },
        state={"broken": False, "t0": 0.0},
    )
    (bus,) = [Bus(DESK_A, "v")]
    host.subscribe(bus)
    dispatcher = Dispatcher(host)
    async with trio.open_nursery() as nursery:
        await nursery.start(dispatcher.run)
        with pytest.raises(PluginStateError, match="plugin b/flaky is not disabled"):
            await dispatcher.reenable("flaky", by="test")
        with pytest.raises(PluginStateError, match=r"never started .*no database.*restart"):
            await dispatcher.reenable("nostart", by="test")
        with pytest.raises(LookupError, match="no plugin 'nobody'"):
            await dispatcher.reenable("nobody", by="test")
        host.state["broken"] = True
        await bus.publish(balance(DESK_A, 1))
        await trio.testing.wait_all_tasks_blocked()
        assert host.slots[0].disabled
        dispatcher.stop()
    with pytest.raises(PluginStateError, match="is not running"):
        await dispatcher.reenable("flaky", by="test")
    assert host.slots[0].disabled and host.slots[0].reenabled == 0
