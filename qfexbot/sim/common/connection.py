"""One server-side WebSocket peer: an ordered bounded outbox, its writer, pings and closing."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from qfexbot.core.logs import get_logger, log_event

__all__ = ["OUTBOX_SIZE", "WsPeer", "dumps"]

log = get_logger(__name__)

OUTBOX_SIZE = 1024
CLOSE_TIMEOUT = 2.0


def _default(value: object) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(frame: Any) -> str:
    """Compact JSON; Decimals (parsed client numbers) are written back as numbers."""
    return json.dumps(frame, separators=(",", ":"), default=_default)


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


@dataclass(frozen=True)
class _Numbered:
    """A private event's frame and its number (see :meth:`WsPeer.written`)."""

    text: str
    seq: int


_Item = str | _Numbered | _Close
"""What the outbox holds: a frame, a numbered private event's frame, or the close."""


class WsPeer:
    """Frames leave in the order they were queued; a close is queued behind them.

    ``send`` never blocks (servers call it from synchronous fan-out); a peer whose outbox is
    full is a slow consumer and is disconnected.
    """

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self._outbox_send, self._outbox_recv = trio.open_memory_channel[_Item](OUTBOX_SIZE)
        self.cancel_scope = trio.CancelScope()
        self.server_closed = False

    def send(self, frame: dict[str, Any] | str, *, seq: int | None = None) -> None:
        """Queue a frame (a dict is JSON-encoded; a str is sent verbatim).

        ``seq``: the number of the private event it carries; :meth:`written` is called with it
        once the frame is written to the socket (never for a frame queued behind the close or
        still queued when the connection ended)."""
        text = frame if isinstance(frame, str) else dumps(frame)
        self._queue(text if seq is None else _Numbered(text, seq))

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued have been sent."""
        self.server_closed = True
        self._queue(_Close(code, reason))

    def written(self, seq: int) -> None:
        """Called with a private event's number once its frame is written (subclasses record)."""

    def _queue(self, item: _Item) -> None:
        try:
            self._outbox_send.send_nowait(item)
        except trio.WouldBlock:
            log_event(log, logging.INFO, "slow consumer disconnected", outbox=OUTBOX_SIZE)
            self.server_closed = True
            self.cancel_scope.cancel()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def run_writer(self) -> None:
        """Send queued frames until a close is queued or the socket goes away."""
        try:
            async for item in self._outbox_recv:
                if isinstance(item, _Close):
                    with trio.move_on_after(CLOSE_TIMEOUT):
                        await self.ws.aclose(item.code, item.reason)
                    break
                if isinstance(item, _Numbered):
                    await self.ws.send_message(item.text)
                    self.written(item.seq)
                else:
                    await self.ws.send_message(item)
        except ConnectionClosed:
            pass
        self.cancel_scope.cancel()

    async def run_pinger(self, interval: float, pong_timeout: float) -> None:
        """Ping every ``interval``; no pong within ``pong_timeout`` → close 1011 "pong timeout".

        The deadline is per ping, inside the loop, so it cannot be a caller's cancel scope.
        """
        try:
            while True:
                await trio.sleep(interval)
                with trio.move_on_after(pong_timeout) as scope:
                    await self.ws.ping()
                if scope.cancelled_caught:
                    log_event(log, logging.INFO, "pong timeout", timeout=pong_timeout)
                    self.close(1011, "pong timeout")
                    return
        except ConnectionClosed:
            pass

    async def read_messages(self, handle: Callable[[str | bytes], None]) -> None:
        """Feed every received message to ``handle(message)`` until the peer closes."""
        try:
            while True:
                message = await self.ws.get_message()
                handle(message)
        except ConnectionClosed:
            pass

    def closed_normally_by_client(self) -> bool:
        """True if the client (not the server) closed with code 1000."""
        reason = self.ws.closed
        return not self.server_closed and reason is not None and reason.code == 1000

    def finish(self) -> None:
        """Stop accepting frames (called when the connection ends)."""
        self._outbox_send.close()
        self._outbox_recv.close()
