"""The public market-data REST routes (candles, funding, open interest, ...), read from the
simulator's own market history.

``ROUTES`` maps a path template to its handler; ``rest.RestApp`` answers GETs that match one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qfexbot.sim.qfex.engine import Engine
from qfexbot.sim.qfex.rest_params import Request

__all__ = ["ROUTES", "MarketHandler"]

MarketHandler = Callable[[Engine, Request, dict[str, str]], tuple[int, Any]]
"""(engine, request, path values) -> (status, JSON body); raises ``HttpError``."""

ROUTES: dict[str, MarketHandler] = {}
