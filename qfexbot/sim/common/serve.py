"""Run one simulator in the foreground: announce its URLs on stdout, stop on SIGINT/SIGTERM."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import trio

__all__ = ["Serving", "serve_until_signal"]


class _Urls(Protocol):
    def as_dict(self) -> Mapping[str, str]: ...


class Serving(Protocol):
    """A simulator: ``serve(host, task_status=...)`` reports its URLs once it listens."""

    async def serve(self, host: str, *, task_status: Any = ...) -> None: ...


async def serve_until_signal(make: Callable[[], Serving], host: str) -> None:
    """Serve ``make()`` on ``host`` until SIGINT or SIGTERM.

    Prints exactly one line ``READY {<url name>: <url>, ...}`` (flushed) once every server of
    the simulator listens; the simulator is built inside the run so it may hold trio objects.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            urls: _Urls = await nursery.start(make().serve, host)
            print("READY " + json.dumps(dict(urls.as_dict())), flush=True)
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()
