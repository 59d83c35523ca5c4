"""The plugin API: every hook a qfexbot plugin may implement, with its contract.

Plugin authors write ``from qfexbot import hookimpl`` and decorate functions or methods named
exactly like the hooks below. Every hook may be a plain function or an ``async def``: qfexbot's
dispatcher awaits coroutines (pluggy itself is synchronous, so hooks are never called through
``pm.hook`` directly).

Why one ``qfexbot_event`` hook rather than one hook per event kind: each plugin has one inbox
and one task, so the order in which a plugin sees events is the order in which they happened on
an account, across kinds (an order update, then its fill, then the balance it changed). Plugins
switch on the event type (``match event: case FillEvent(): ...``) and may declare a class or
module attribute ``subscribes = (BalanceEvent, FillEvent, ...)`` so that only those event types
(and their subclasses) are put into their inbox at all.

No hook is ``firstresult``, and hook wrappers (``wrapper=True`` / ``hookwrapper=True``) are not
supported: every hook is called once per plugin, in that plugin's own task.

Every hook gets ``ctx``, the plugin instance's ``qfexbot.BotContext``; ``qfexbot_event`` also
gets ``event``, a ``qfexbot.Event``. This module names those types in words and imports nothing
from qfexbot: it is the bottom layer, read by the core's loader and dispatcher, and an import of
the context (even under ``TYPE_CHECKING``) would make the bottom depend on the core, a cycle.
Nothing is lost by it: pluggy matches implementations by argument name only, never by type; the
typed call surface is ``qfexbot.core.dispatch.PluginHooks``, and implementations annotate their
parameters with the root's ``BotContext`` and event classes.
"""

from __future__ import annotations

import pluggy

__all__ = ["HOOK_NAMES", "PROJECT", "hookimpl", "hookspec"]

PROJECT = "qfexbot"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---------------------------------------------------------------------------------------------
# Lifecycle
# ---------------------------------------------------------------------------------------------


@hookspec
def qfexbot_startup(ctx) -> None:
    """Called once per plugin instance when its bot starts, before any event is handed to it.

    Events published meanwhile wait in the plugin's inbox. Use it to read initial state
    (``await ctx.positions(...)``) or to check the configuration against the venue.

    The call is bounded by the dispatcher's hook timeout (default 10 s). If it raises or times
    out, the error is logged, the plugin is disabled (it receives no events and no timers) and
    the other plugins start normally.
    """


@hookspec
def qfexbot_shutdown(ctx) -> None:
    """Called once per plugin instance when its bot stops, after its inbox was drained.

    Called for every plugin whose startup succeeded, including plugins disabled later by
    failures. Bounded by the hook timeout and shielded from the bot's cancellation; an
    exception is logged and ignored. Do not start new actions here.
    """


# ---------------------------------------------------------------------------------------------
# Scheduling
# ---------------------------------------------------------------------------------------------


@hookspec
def qfexbot_schedules(ctx) -> list[tuple[str, float]]:
    """Return the timers this plugin wants, as ``[(name, interval_seconds), ...]``.

    Called once, right after a successful ``qfexbot_startup``. Each timer then delivers a
    ``TimerEvent(name=..., interval=...)`` through ``qfexbot_event`` every ``interval``
    seconds (the first one after one interval; missed ticks are skipped, never bunched).
    Timer events bypass ``subscribes`` and are private: never dropped or conflated. A
    malformed entry (empty or duplicate name, interval not a positive number) is logged and
    skipped; an exception here is counted as a failure and no timers start.
    """


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


@hookspec
def qfexbot_event(ctx, event) -> None:
    """Handle one event: private (balance, position, order, fill, connection, resync,
    transfer outcome), market data (book, trade, mark price) or one of this plugin's timers.

    Runtime-wide alerts (``AlertEvent``: transfer in doubt, kill switch, plugin disabled, ...)
    arrive here too, but only for a plugin whose ``subscribes`` lists ``AlertEvent``. They are
    offered, never awaited: one that meets this plugin's full inbox is dropped for it (logged).

    Called in the plugin's own task, one event at a time, in arrival order per account. A
    slow handler only delays this plugin: its inbox fills, market data in it is conflated
    (latest per kind and symbol) and publishers of private events wait for it. Never block
    the thread (no ``time.sleep``, no blocking I/O); make the hook ``async`` and await.

    An exception is logged with bot, plugin, hook, event kind and account, and counted; after
    ``failure_limit`` consecutive failures (a success resets the count) the plugin is
    disabled: it is unsubscribed from its buses and its inbox is discarded.
    """


HOOK_NAMES: tuple[str, ...] = tuple(
    name for name, obj in list(globals().items()) if hasattr(obj, f"{PROJECT}_spec")
)
"""Every hook defined above, in definition order."""
