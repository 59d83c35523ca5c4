"""Fixtures for venue tests: a running QFEX simulator and a venue adapter pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import trio
from venue_helpers import PRIMARY, PUB, SECRET, SUB1, SUB2, SimEnv

from qfexbot.sim import QfexSimulator, SimConfig, SimUser
from qfexbot.venues.qfex.adapter import QfexVenue


@pytest.fixture
async def simenv(nursery: trio.Nursery) -> SimEnv:
    config = SimConfig(
        users=[
            SimUser(
                public_key=PUB,
                secret=SECRET,
                account_id=PRIMARY,
                subaccounts=[SUB1, SUB2],
                deposits={PRIMARY: Decimal(1000), SUB1: Decimal("250.5"), SUB2: Decimal(75)},
            )
        ],
        pulse_interval=0.1,
        mds_interval=0.1,
        price_interval=0.1,
        seed=1,
    )
    sim = QfexSimulator(config)
    urls = await nursery.start(sim.serve, "127.0.0.1")
    return SimEnv(sim, urls)


@pytest.fixture
async def venue(simenv: SimEnv) -> AsyncIterator[QfexVenue]:
    v = simenv.venue()
    try:
        yield v
    finally:
        await v.aclose()
