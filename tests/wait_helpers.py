"""The one bounded poll of the suite, for conditions that have no event to wait on.

Prefer a real signal (``trio.Event``, a memory channel, a recorder's ``wait``/``until``,
``session.wait_for``); poll only state that announces nothing (simulator ledgers, session
counters, a proxy's links, journal rows).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from inspect import isawaitable

import trio

POLL = 0.01


async def wait_until(
    predicate: Callable[[], object | Awaitable[object]],
    *,
    within: float,
    what: str = "condition",
    every: float = POLL,
) -> None:
    """Return once ``predicate()`` (sync or async) is truthy, polling every ``every`` s.

    Raises:
        AssertionError: the condition did not hold within ``within`` seconds.
    """
    with trio.move_on_after(within):
        # The condition has no event to wait on (see the module docstring), so poll it.
        while not await _holds(predicate):  # noqa: ASYNC110
            await trio.sleep(every)
        return
    raise AssertionError(f"timed out after {within}s waiting for {what}")


async def _holds(predicate: Callable[[], object | Awaitable[object]]) -> bool:
    value = predicate()
    if isawaitable(value):
        value = await value
    return bool(value)
