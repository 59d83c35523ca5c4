"""Shared plumbing of our small ASGI servers (simulators, ops endpoint).

hypercorn's trio worker serves them; these helpers are the parts every app repeats.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hypercorn.config import Config as HypercornConfig

from qfexbot.core.logs import get_logger

__all__ = ["Receive", "Send", "answer_lifespan", "hypercorn_config", "read_body"]

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def hypercorn_config(
    host: str, port: int, *, logger: str | None, graceful_timeout: float = 1.0
) -> HypercornConfig:
    """Bind ``host:port`` (port 0 = a free one), no access log, errors to ``logger`` (None: off)."""
    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    errors = get_logger(logger) if logger else None
    if errors is not None:
        # Hypercorn's own "Running on ..." banner reads like a line of the bot; our servers
        # log where they listen themselves. Its warnings and errors still come through.
        errors.setLevel(logging.WARNING)
    config.errorlog = errors
    config.graceful_timeout = graceful_timeout
    return config


async def read_body(receive: Receive) -> bytes | None:
    """The whole body of an HTTP request; None if the client disconnected before sending it."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


async def answer_lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge an ASGI lifespan scope's startup and shutdown (our apps hold no resources)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
