"""Replaying a recorded QFEX connection: the live drivers' parsers, fed the recorded snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qfexbot.core.secrets import Secret
from qfexbot.events import Event, ResyncEvent
from qfexbot.venues.qfex.driver import QfexMarketDataDriver, QfexTradeDriver
from qfexbot.venues.qfex.parse import parse_positions_snapshot

__all__ = ["QfexReplayDriver"]


class _SnapshotRest:
    """Stands in for the REST client in a replayed resync: returns the recorded body."""

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self.body: Any = None
        self.t = 0.0

    async def positions(self, account_id: str) -> ResyncEvent:
        return parse_positions_snapshot(self.body, self.venue, account_id, self.t)


class QfexReplayDriver:
    """One recorded QFEX connection: an account's trade socket, or (``account_id=""``,
    ``public=True``) the venue's market-data feed."""

    def __init__(self, venue: str, account_id: str, user_id: str, *, public: bool) -> None:
        self._rest = _SnapshotRest(venue)
        self._driver: Any = (
            QfexMarketDataDriver(url="", venue=venue)
            if public
            else QfexTradeDriver(
                url="",
                venue=venue,
                account_id=account_id,
                user_id=user_id,
                rest=self._rest,  # type: ignore[arg-type]
                jwt=Secret("replay", "replay"),
            )
        )

    def parse(self, frame: str | bytes, now: float) -> list[Any]:
        return self._driver.parse(frame, now)

    def route(self, event: Event) -> tuple[str, str]:
        return self._driver.route(event)

    async def resync(self, body: Any, now: float) -> Sequence[Event]:
        """What the live driver's resync publishes for the recorded positions ``body``."""
        self._rest.body, self._rest.t = body, now
        return await self._driver.resync(None)
