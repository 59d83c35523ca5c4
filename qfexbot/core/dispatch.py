"""Dispatch: the only code that calls plugin hooks; one task per plugin, errors isolated.

pluggy is synchronous and calls all implementations in one loop (one raise aborts the rest,
an ``async def`` returns an unawaited coroutine). So qfexbot never calls ``pm.hook.*``: it takes
each plugin's own ``HookImpl`` (``PluginHooks``, a typed facade) and calls it directly in that
plugin's task, awaiting coroutines. An exception is logged with bot, plugin, hook, event kind
and account, counted, and after ``failure_limit`` consecutive failures the plugin is disabled:
its inbox is closed and emptied, its timers stop. ``Dispatcher.reenable`` (the operator's call,
from the dashboard) gives it a fresh inbox on the same buses and restarts its event and timer
tasks: it gets the events published from then on; those published while it was disabled are lost.

A plain (not ``async def``) ``qfexbot_event`` whose task waits with an empty inbox is called
inline by the publisher, in the plugin task's contextvars context, saving a task switch per
event (``Inbox.wait_nonempty``). A call slower than ``inline_budget`` ends that until the task
has drained its inbox again, so a slow plugin's backlog still fills and conflates market data.
A sync hook that returns an awaitable hands it to the plugin's task to await, and is called in
that task from then on; a ``BaseException`` that is not an ``Exception`` is raised in that task.

Usage (per bot)::

    dispatcher = Dispatcher(host)
    await nursery.start(dispatcher.run)   # startup hooks done, event tasks and timers running
    ...
    await dispatcher.reenable("name", by="operator", reason="fixed")  # a disabled plugin
    dispatcher.stop()                     # close inboxes, drain, shutdown hooks; run() returns
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, NoReturn

import pluggy
import trio

from qfexbot.core.alerts import AlertHub, make_alert
from qfexbot.core.bus import Bus
from qfexbot.core.context import BotContext
from qfexbot.core.logs import get_logger, log_context, log_event, scrub
from qfexbot.core.plugins import PluginHost, PluginSlot
from qfexbot.errors import QfexbotError
from qfexbot.events import AlertKind, AlertSeverity, Event, TimerEvent
from qfexbot.hookspecs import HOOK_NAMES

__all__ = ["Dispatcher", "PluginHooks", "PluginStateError"]

log = get_logger(__name__)

INLINE_BUDGET = 50e-6
"""Seconds an inline ``qfexbot_event`` call may take before the publisher stops calling it."""

INLINE_TIMED_EVERY = 16
"""Inline calls timed against the budget: the first after each wait and every 16th (a clock
read costs about as much as the call of a no-op hook)."""


class PluginStateError(QfexbotError):
    """A plugin cannot be re-enabled in its present state (not disabled, never started, or
    its bot not running); the message says which and what to do."""


class PluginHooks:
    """Typed access to one plugin's hook implementations: one method per hook, each calling
    only this plugin's implementation and awaiting it if it is a coroutine. A hook the plugin
    does not implement is a no-op returning None."""

    __slots__ = ("_impls",)

    def __init__(self, pm: pluggy.PluginManager, plugin: object) -> None:
        self._impls: dict[str, pluggy.HookImpl] = {}
        for name in HOOK_NAMES:
            for impl in getattr(pm.hook, name).get_hookimpls():
                if impl.plugin is plugin:
                    self._impls[name] = impl

    def implements(self, hook: str) -> bool:
        """True if the plugin implements ``hook``."""
        return hook in self._impls

    async def _call(self, hook: str, **kwargs: Any) -> Any:
        impl = self._impls.get(hook)
        if impl is None:
            return None
        # pluggy passes only the arguments the implementation names, in its own order.
        result = impl.function(*[kwargs[name] for name in impl.argnames])
        if inspect.isawaitable(result):
            result = await result
        return result

    async def startup(self, ctx: BotContext) -> None:
        """``qfexbot_startup(ctx)``."""
        await self._call("qfexbot_startup", ctx=ctx)

    async def shutdown(self, ctx: BotContext) -> None:
        """``qfexbot_shutdown(ctx)``."""
        await self._call("qfexbot_shutdown", ctx=ctx)

    async def schedules(self, ctx: BotContext) -> Any:
        """``qfexbot_schedules(ctx)``: the raw result (validated by the dispatcher)."""
        return await self._call("qfexbot_schedules", ctx=ctx)

    def event_handler(self, ctx: BotContext) -> tuple[Callable[[Event], Any], bool] | None:
        """A one-argument callable for ``qfexbot_event`` with ``ctx`` bound, and whether it
        is a coroutine function; None if not implemented. Built once: no per-event work."""
        impl = self._impls.get("qfexbot_event")
        if impl is None:
            return None
        fn = impl.function
        names = tuple(impl.argnames)
        call: Callable[[Event], Any]
        if names == ("ctx", "event"):
            call = functools.partial(fn, ctx)
        elif names == ("event",):
            call = fn
        else:

            def call(event: Event) -> Any:
                values = {"ctx": ctx, "event": event}
                return fn(*[values[name] for name in names])

        return call, inspect.iscoroutinefunction(fn)


class _Runner:
    """One plugin's task state: its slot, hooks, and failure handling; each lifecycle hook
    call is bounded by ``hook_timeout`` seconds."""

    __slots__ = (
        "_budget_ns",
        "_pending",
        "_untimed",
        "alerts",
        "events_done",
        "hook_timeout",
        "hooks",
        "slot",
        "started",
        "timer_scope",
        "timers",
    )

    def __init__(
        self,
        slot: PluginSlot,
        hooks: PluginHooks,
        hook_timeout: float,
        inline_budget: float = INLINE_BUDGET,
        alerts: AlertHub | None = None,
    ) -> None:
        self.slot = slot
        self.alerts = alerts
        self.hooks = hooks
        self.hook_timeout = hook_timeout
        self.started = False
        self.timers: list[tuple[str, float]] = []
        # Set once the current event task has returned (set from the start: none runs yet).
        self.events_done = trio.Event()
        self.events_done.set()
        # Cancels the current timer tasks (on disable); None while none run.
        self.timer_scope: trio.CancelScope | None = None
        self._budget_ns = int(inline_budget * 1e9)
        self._untimed = 0  # inline calls left before the next timed one
        # What an inline call left to the task to await (and for which event).
        self._pending: tuple[Event, Awaitable[Any]] | None = None

    # -- errors ------------------------------------------------------------------------------

    def failed(self, hook: str, exc: BaseException, event: Event | None = None) -> None:
        """Count and log a failure; disable the plugin at its failure limit."""
        slot = self.slot
        slot.failures += 1
        slot.consecutive_failures += 1
        slot.last_error = scrub(_describe(exc))
        slot.last_error_at = time.time()
        fields: dict[str, Any] = {
            "hook": hook,
            "error": slot.last_error,
            "consecutive": slot.consecutive_failures,
            "limit": slot.failure_limit,
        }
        account = ""
        if event is not None:
            fields["event"] = event.kind
            account = event.account_id
        with log_context(account=account) if account else contextlib.nullcontext():
            log.error("plugin hook failed", exc_info=exc, extra={"fields": fields})
        if slot.consecutive_failures >= slot.failure_limit:
            self.disable(
                f"{slot.consecutive_failures} consecutive failures, last in {hook}: "
                f"{fields['error']}"
            )

    def disable(self, reason: str) -> None:
        """Stop delivering to this plugin: unsubscribe, discard its inbox, stop its timers,
        log once."""
        slot = self.slot
        if slot.disabled:
            return
        slot.disabled = True
        slot.disabled_reason = reason
        slot.inbox.close()
        discarded = slot.inbox.clear()
        if self.timer_scope is not None:
            self.timer_scope.cancel()
            self.timer_scope = None
        log_event(log, logging.ERROR, "plugin disabled", reason=reason, discarded=discarded)
        self.alert(
            AlertKind.PLUGIN_DISABLED,
            AlertSeverity.CRITICAL,
            f"disabled: {reason}",
            reason=reason,
            discarded=discarded,
        )

    def alert(self, kind: AlertKind, severity: AlertSeverity, what: str, **details: object) -> None:
        """Announce ``plugin <bot>/<name> <what>`` about this plugin (if there is a hub)."""
        if self.alerts is not None:
            ctx = self.slot.ctx
            name = f"{ctx.bot}/{self.slot.name}"
            self.alerts.emit(
                make_alert(
                    kind,
                    severity,
                    f"plugin {name} {what}",
                    venue=ctx.venue,
                    bot=ctx.bot,
                    subject=name,
                    plugin=self.slot.name,
                    **details,
                )
            )

    def reopen(self, buses: tuple[Bus, ...]) -> None:
        """Enabled again: a fresh inbox subscribed to ``buses`` (and to alerts if the plugin
        asked for them), consecutive failures reset."""
        slot = self.slot
        slot.inbox = slot.inbox.successor()
        if self.hooks.implements("qfexbot_event"):
            for bus in buses:
                bus.subscribe(slot.inbox)
            if self.alerts is not None:
                self.alerts.subscribe_if_wanted(slot.plugin, slot.inbox)
        else:  # as in start(): nothing would consume it
            slot.inbox.close()
        slot.disabled = False
        slot.disabled_reason = ""
        slot.consecutive_failures = 0
        slot.reenabled += 1

    async def guarded(self, hook: str, call: Callable[[], Awaitable[Any]]) -> tuple[bool, Any]:
        """Run a lifecycle hook within ``hook_timeout``; (ok, result). Failures are counted."""
        timeout = self.hook_timeout
        try:
            with trio.fail_after(timeout):
                result = await call()
        except trio.TooSlowError:
            self.failed(hook, TimeoutError(f"{hook} did not finish within {timeout} s"))
            return False, None
        except Exception as exc:
            self.failed(hook, exc)
            return False, None
        return True, result

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        slot = self.slot
        ok, _ = await self.guarded("qfexbot_startup", lambda: self.hooks.startup(slot.ctx))
        if not ok:
            self.disable("qfexbot_startup failed")
            return
        self.started = True
        ok, raw = await self.guarded("qfexbot_schedules", lambda: self.hooks.schedules(slot.ctx))
        if ok:
            self.timers, problems = _parse_schedules(raw)
            for problem in problems:
                log_event(
                    log,
                    logging.ERROR,
                    "bad schedule entry ignored",
                    hook="qfexbot_schedules",
                    problem=problem,
                )
        if not self.hooks.implements("qfexbot_event"):
            # Nothing would ever consume the inbox: do not let it fill and block publishers.
            slot.inbox.close()
            slot.inbox.clear()

    async def shutdown(self) -> None:
        if self.started:
            ctx = self.slot.ctx
            await self.guarded("qfexbot_shutdown", lambda: self.hooks.shutdown(ctx))

    async def run_events(self, checkpoint_every: int) -> None:
        """Drain the inbox into ``qfexbot_event`` until it is closed and empty (or disabled);
        while it waits for events, a sync hook is called inline (``_deliver``)."""
        slot = self.slot
        inbox = slot.inbox
        handler = self.hooks.event_handler(slot.ctx)
        if handler is None:
            return
        call, is_async = handler
        deliver = None
        if not is_async and self._budget_ns > 0:
            # The publisher enters this task's context (log context bot=, plugin=) to call.
            context = trio.lowlevel.current_task().context
            deliver = functools.partial(context.run, self._deliver, call)
        pop = inbox.pop
        budget = checkpoint_every
        while True:
            awaitable: Awaitable[Any] | None = None
            event = pop()
            if event is None:
                if inbox.closed:
                    return
                self._untimed = 0
                await inbox.wait_nonempty(deliver)
                budget = checkpoint_every
                if self._pending is None:
                    continue
                (event, awaitable), self._pending = self._pending, None
                deliver = None  # called in this task from now on
            try:
                if awaitable is not None:
                    await awaitable
                elif is_async:
                    await call(event)
                else:
                    result = call(event)
                    if result is not None and inspect.isawaitable(result):
                        deliver = None
                        await result
            except Exception as exc:
                self.failed("qfexbot_event", exc, event)
                if slot.disabled:
                    return
            else:
                slot.events_handled += 1
                if slot.consecutive_failures:
                    slot.consecutive_failures = 0
            budget -= 1
            if not budget:
                # Let publishers and other plugins run even if events never stop coming.
                budget = checkpoint_every
                await trio.lowlevel.checkpoint()

    def _deliver(self, call: Callable[[Event], Any], event: Event) -> bool:
        """Called by a publisher, in this plugin task's context (``Inbox.wait_nonempty``):
        handle ``event`` as the task would; False (stop, wake the task) if a timed call took
        longer than the budget or left work to the task."""
        start = None
        if self._untimed:
            self._untimed -= 1
        else:
            self._untimed = INLINE_TIMED_EVERY - 1
            start = time.perf_counter_ns()
        try:
            result = call(event)
        except Exception as exc:
            self.failed("qfexbot_event", exc, event)
        except BaseException as exc:  # not ours to catch: raised in the task, as if it had called
            self._pending = (event, _raise(exc))
            return False
        else:
            if result is not None and inspect.isawaitable(result):
                self._pending = (event, result)
                return False
            slot = self.slot
            slot.events_handled += 1
            if slot.consecutive_failures:
                slot.consecutive_failures = 0
        return start is None or time.perf_counter_ns() - start <= self._budget_ns

    async def run_timer(self, name: str, interval: float) -> None:
        """Put a TimerEvent into the inbox every ``interval`` s; missed ticks are skipped."""
        inbox = self.slot.inbox
        ctx = self.slot.ctx
        next_at = trio.current_time() + interval
        while not inbox.closed:
            await trio.sleep_until(next_at)
            await inbox.put(
                TimerEvent(
                    venue=ctx.venue,
                    account_id="",
                    received_at=time.time(),
                    name=name,
                    interval=interval,
                )
            )
            now = trio.current_time()
            next_at += interval
            if next_at <= now:
                next_at += math.floor((now - next_at) / interval + 1) * interval


class Dispatcher:
    """Runs one bot's plugins: startup hooks, one event task per plugin, timers, and on
    ``stop()`` a drain of the inboxes followed by the shutdown hooks.

    Args:
      host: the bot's plugins (``qfexbot.core.plugins.load_plugin_host``).
      hook_timeout: bound (s) on each startup, schedules and shutdown call.
      drain_timeout: bound (s) on delivering what is still in the inboxes after ``stop()``.
      checkpoint_every: a plugin task yields to others at least every this many events.
      inline_budget: seconds an inline sync ``qfexbot_event`` call may take before that
        plugin's events are queued again until its inbox has drained (0: never inline).
      alerts: where a plugin disabled by its circuit breaker (or re-enabled) is announced
        (None: nowhere).
    """

    def __init__(
        self,
        host: PluginHost,
        *,
        hook_timeout: float = 10.0,
        drain_timeout: float = 10.0,
        checkpoint_every: int = 64,
        inline_budget: float = INLINE_BUDGET,
        alerts: AlertHub | None = None,
    ) -> None:
        self.host = host
        self.hook_timeout = hook_timeout
        self.drain_timeout = drain_timeout
        self.checkpoint_every = checkpoint_every
        self._runners = [
            _Runner(slot, PluginHooks(host.pm, slot.plugin), hook_timeout, inline_budget, alerts)
            for slot in host.slots
        ]
        self._stop = trio.Event()
        # While run() delivers: its nursery (event tasks) and the timers' nursery.
        self._nursery: trio.Nursery | None = None
        self._timer_nursery: trio.Nursery | None = None

    def __repr__(self) -> str:
        return f"Dispatcher(bot={self.host.bot!r}, plugins={len(self._runners)})"

    def stop(self) -> None:
        """Ask ``run`` to finish: timers stop, inboxes stop accepting, what is queued is
        delivered (within ``drain_timeout``), then shutdown hooks run. Idempotent."""
        self._stop.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every plugin (startup hook, then schedules), report started, deliver events
        until ``stop()``, drain, and call the shutdown hooks.

        Resource handling: if cancelled instead of stopped, shutdown hooks still run (shielded,
        each bounded by ``hook_timeout``).
        """
        try:
            for runner in self._runners:
                with log_context(bot=self.host.bot, plugin=runner.slot.name):
                    await runner.start()
            async with trio.open_nursery() as nursery:
                timers = trio.CancelScope()
                self._nursery = nursery
                self._timer_nursery = await nursery.start(self._run_timers, timers)
                for runner in self._runners:
                    if runner.started and not runner.slot.disabled:
                        self._start_events(runner)
                        self._start_timers(runner)
                task_status.started()
                await self._stop.wait()
                self._nursery = self._timer_nursery = None
                timers.cancel()
                for runner in self._runners:
                    runner.slot.inbox.close()
                nursery.cancel_scope.deadline = trio.current_time() + self.drain_timeout
            if nursery.cancel_scope.cancelled_caught:
                left = {
                    r.slot.name: r.slot.inbox.depth for r in self._runners if r.slot.inbox.depth
                }
                log_event(
                    log,
                    logging.WARNING,
                    "drain timed out, events not delivered",
                    bot=self.host.bot,
                    left=left,
                )
        finally:
            self._nursery = self._timer_nursery = None
            with trio.CancelScope(shield=True):
                for runner in self._runners:
                    with log_context(bot=self.host.bot, plugin=runner.slot.name):
                        await runner.shutdown()

    async def reenable(self, plugin: str, *, by: str, reason: str = "") -> dict[str, Any]:
        """Deliver to the disabled plugin ``plugin`` again: a fresh inbox on the bot's buses
        (events from now on; those published while it was disabled were not delivered), its
        event and timer tasks restarted, consecutive failures reset; logged and alerted with
        ``by`` and ``reason``. Returns its counters.

        Raises:
          LookupError: the bot has no plugin instance ``plugin``.
          PluginStateError: it is not disabled, its startup failed, or the bot is not running.
        """
        runner = next((r for r in self._runners if r.slot.name == plugin), None)
        if runner is None:
            raise LookupError(f"bot {self.host.bot!r} has no plugin {plugin!r}")
        slot = runner.slot
        name = f"{self.host.bot}/{plugin}"
        if not slot.disabled:
            raise PluginStateError(f"plugin {name} is not disabled")
        if not runner.started:
            raise PluginStateError(
                f"plugin {name} never started (its qfexbot_startup failed: "
                f"{slot.last_error}); fix it and restart the process"
            )
        try:
            with trio.fail_after(self.hook_timeout):
                await runner.events_done.wait()  # the old event task returns at once
        except trio.TooSlowError:
            raise PluginStateError(
                f"plugin {name}: its previous event task has not returned; try again"
            ) from None
        if not slot.disabled:  # another call re-enabled it meanwhile
            raise PluginStateError(f"plugin {name} is not disabled")
        if self._nursery is None or self._stop.is_set():
            raise PluginStateError(f"bot {self.host.bot!r} is not running: nothing to re-enable")
        was = slot.disabled_reason
        runner.reopen(self.host.buses)
        self._start_events(runner)
        self._start_timers(runner)
        why = reason or "no reason given"
        with log_context(bot=self.host.bot, plugin=plugin):
            log_event(
                log, logging.WARNING, "plugin re-enabled", by=by, reason=why, was_disabled=was
            )
        runner.alert(
            AlertKind.PLUGIN_ENABLED,
            AlertSeverity.WARNING,
            f"re-enabled by {by}: {why}",
            by=by,
            reason=why,
            was_disabled=was,
        )
        return slot.stats()

    def _start_events(self, runner: _Runner) -> None:
        assert self._nursery is not None
        runner.events_done = done = trio.Event()
        self._nursery.start_soon(self._run_events, runner, done)

    async def _run_events(self, runner: _Runner, done: trio.Event) -> None:
        try:
            await self._in_context(runner, runner.run_events, self.checkpoint_every)
        finally:
            done.set()

    def _start_timers(self, runner: _Runner) -> None:
        if runner.timers:
            assert self._timer_nursery is not None
            runner.timer_scope = scope = trio.CancelScope()
            self._timer_nursery.start_soon(self._run_plugin_timers, runner, scope)

    async def _run_plugin_timers(self, runner: _Runner, scope: trio.CancelScope) -> None:
        with scope:
            async with trio.open_nursery() as nursery:
                for name, interval in runner.timers:
                    nursery.start_soon(self._in_context, runner, runner.run_timer, name, interval)

    async def _in_context(
        self, runner: _Runner, fn: Callable[..., Awaitable[None]], *args: Any
    ) -> None:
        with log_context(bot=self.host.bot, plugin=runner.slot.name):
            await fn(*args)

    async def _run_timers(
        self,
        scope: trio.CancelScope,
        *,
        task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """The nursery every plugin's timers run in, until ``scope`` is cancelled."""
        with scope:
            async with trio.open_nursery() as nursery:
                task_status.started(nursery)
                await trio.sleep_forever()


async def _raise(exc: BaseException) -> NoReturn:
    raise exc


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _parse_schedules(raw: Any) -> tuple[list[tuple[str, float]], list[str]]:
    """Validate ``qfexbot_schedules`` output; returns (timers, problems)."""
    if raw is None:
        return [], []
    if not isinstance(raw, (list, tuple)):
        return [], [f"expected a list of (name, interval_seconds), got {raw!r}"]
    timers: list[tuple[str, float]] = []
    problems: list[str] = []
    names: set[str] = set()
    for entry in raw:
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2):
            problems.append(f"expected (name, interval_seconds), got {entry!r}")
            continue
        name, interval = entry
        if not isinstance(name, str) or not name:
            problems.append(f"timer name must be a non-empty string, got {name!r}")
        elif name in names:
            problems.append(f"duplicate timer name {name!r}")
        elif (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float, Decimal))
            or not math.isfinite(interval)
            or interval <= 0
        ):
            problems.append(
                f"timer {name!r}: interval must be a positive number of seconds, got {interval!r}"
            )
        else:
            names.add(name)
            timers.append((name, float(interval)))
    return timers, problems
