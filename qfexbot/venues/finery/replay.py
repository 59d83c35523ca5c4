"""Replaying a recorded Finery connection: the live driver's parser, fed the recorded frames and
``positions`` snapshots, so a replay publishes what the live session published."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qfexbot.core.secrets import Secret
from qfexbot.events import BookEvent, Event
from qfexbot.venues.finery.driver import FineryDriver

__all__ = ["FineryReplayDriver"]


class FineryReplayDriver:
    """One recorded Finery connection: an account's socket, or (``account_id=""``) the venue's
    shared book feed. Nothing is connected: the driver only parses."""

    def __init__(self, venue: str, account_id: str) -> None:
        self._driver = FineryDriver(
            "", "", Secret("replay", "replay"), venue=venue, account_id=account_id, feeds=()
        )

    def parse(self, frame: str | bytes, now: float) -> list[Any]:
        return self._driver.parse(frame, now)

    def route(self, event: Event) -> tuple[str, str]:
        """Books fan out by (channel, symbol) as live; nothing else is on the book feed."""
        if isinstance(event, BookEvent):
            return event.channel, event.symbol
        return "", ""

    async def resync(self, body: Any, now: float) -> Sequence[Event]:
        """The ``ResyncEvent`` the live session published for the recorded ``positions`` reply."""
        return [self._driver.resync_event(body, now)]
