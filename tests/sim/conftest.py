"""Simulator test fixtures: a running simulator with fast pulses on loopback."""

from __future__ import annotations

import pytest
import trio
from sim_client import Sim, start_sim


@pytest.fixture
async def running(nursery: trio.Nursery) -> Sim:
    """A simulator serving on 127.0.0.1 (random ports) for the duration of one test."""
    return await start_sim(nursery)
