"""Helpers for venue tests: account ids, short session settings, an event recorder, SimEnv."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
import trio

from qfexbot.core.logs import TextFormatter
from qfexbot.core.secrets import Secret
from qfexbot.events import ConnectionState, ConnectionStateEvent, Event
from qfexbot.sim import QfexSimulator, SimUrls
from qfexbot.venues.qfex.adapter import QfexVenue

PRIMARY = "00000000-0000-4000-8000-00000000000a"
SUB1 = "11111111-1111-4111-8111-111111111111"
SUB2 = "22222222-2222-4222-8222-222222222222"
PUB = "qfex_pub_venue_tests"
SECRET = "qfex_secret_venue_tests"
WAIT = 10.0  # upper bound of any single wait in these tests


def rendered(caplog: pytest.LogCaptureFixture) -> str:
    """Captured log records as qfexbot renders them (message plus structured fields)."""
    formatter = TextFormatter()
    return "\n".join(formatter.format(record) for record in caplog.records)


@dataclass(frozen=True)
class FastSettings:
    """Session tunables scaled down for tests (duck-types config.SessionSettings)."""

    connect_timeout: float = 2.0
    auth_timeout: float = 2.0
    stale_after: float = 3.0
    backoff_initial: float = 0.05
    backoff_max: float = 0.2
    healthy_after: float = 30.0
    max_auth_failures: int = 3
    request_timeout: float = 2.0

    def replace(self, **changes: float) -> FastSettings:
        return replace(self, **changes)


class Recorder:
    """An async ``publish`` callable that keeps every event and lets tests wait for one."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = trio.Event()

    async def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = trio.Event()

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def states(self) -> list[ConnectionState]:
        return [e.state for e in self.of(ConnectionStateEvent)]

    async def wait(
        self, predicate: Callable[[Event], bool], *, after: int = 0, timeout: float = WAIT
    ) -> Event:
        """The first event at index >= ``after`` matching ``predicate`` (waits for it)."""
        with trio.fail_after(timeout):
            index = after
            while True:
                while index < len(self.events):
                    event = self.events[index]
                    index += 1
                    if predicate(event):
                        return event
                await self._changed.wait()

    async def until(self, condition: Callable[[], object], *, timeout: float = WAIT) -> None:
        """Return once ``condition()`` (over the recorded events) holds, re-checked per event."""
        with trio.fail_after(timeout):
            while not condition():
                await self._changed.wait()

    async def wait_state(
        self, state: ConnectionState, *, after: int = 0, timeout: float = WAIT
    ) -> ConnectionStateEvent:
        return await self.wait(
            lambda e: isinstance(e, ConnectionStateEvent) and e.state is state,
            after=after,
            timeout=timeout,
        )


@dataclass
class SimEnv:
    sim: QfexSimulator
    urls: SimUrls

    def venue(
        self,
        settings: FastSettings | None = None,
        *,
        secret: str = SECRET,
        jwt: str | None = None,
        name: str = "simq",
    ) -> QfexVenue:
        settings = settings or FastSettings()
        if jwt is not None:
            return QfexVenue(
                name,
                trade_url=self.urls.trade_url,
                mds_url=self.urls.mds_url,
                rest_url=self.urls.rest_url,
                user_id=PRIMARY,
                settings=settings,
                jwt=Secret(jwt),
            )
        return QfexVenue(
            name,
            trade_url=self.urls.trade_url,
            mds_url=self.urls.mds_url,
            rest_url=self.urls.rest_url,
            user_id=PRIMARY,
            settings=settings,
            public_key=PUB,
            secret=Secret(secret),
        )
