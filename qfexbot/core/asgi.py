"""Shared plumbing of our small ASGI servers (simulators, ops endpoint) on hypercorn's trio worker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from hypercorn.config import Config as HypercornConfig

from qfexbot.core.logs import get_logger

__all__ = ["answer_lifespan", "hypercorn_config"]


def hypercorn_config(
    host: str, port: int, *, logger: str | None, graceful_timeout: float = 1.0
) -> HypercornConfig:
    """Bind ``host:port`` (port 0 = a free one), no access log, errors to ``logger`` (None: off)."""
    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = get_logger(logger) if logger else None
    config.graceful_timeout = graceful_timeout
    return config


async def answer_lifespan(
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """Acknowledge an ASGI lifespan scope's startup and shutdown (our apps hold no resources)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
