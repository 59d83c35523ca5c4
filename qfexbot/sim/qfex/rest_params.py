"""What every REST route shares: the request, problem+json errors, parameters, path templates.

Split from ``rest`` so the route modules (``rest_market``, the user routes) read requests and
raise errors the same way without importing the ASGI app.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import parse_qs

from qfexbot.errors import SimulatorError

__all__ = [
    "DURATIONS",
    "SCHEMA_BASE",
    "HttpError",
    "Request",
    "Scope",
    "match_route",
    "year_start",
]

Scope = dict[str, Any]
SCHEMA_BASE = "https://api.qfex.com/schemas"
DURATIONS = {"1d": 86400, "1w": 7 * 86400, "1m": 30 * 86400, "3m": 90 * 86400}

H = TypeVar("H")


class HttpError(SimulatorError):
    """A problem+json response."""

    def __init__(self, status: int, detail: str, location: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.location = location


class Request:
    """The parts of an ASGI HTTP request the routes need."""

    def __init__(self, scope: Scope, body: bytes) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
        self.headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
        }
        self.body = body
        self.held_for = 0.0  # set by the hold_transfers fault

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body, parse_float=Decimal)
        except ValueError:
            raise HttpError(400, "request body is not valid JSON", "body") from None


def year_start(now: float) -> float:
    """Unix time of 1 January (UTC) of the year containing ``now``."""
    year = datetime.fromtimestamp(now, tz=UTC).year
    return datetime(year, 1, 1, tzinfo=UTC).timestamp()


def match_route(routes: Mapping[str, H], path: str) -> tuple[H, dict[str, str]] | None:
    """The handler whose template (``/candles/{symbol}``) matches ``path``, with the values of its
    ``{name}`` segments; None when no template matches."""
    parts = path.split("/")
    for template, handler in routes.items():
        pattern = template.split("/")
        if len(pattern) != len(parts):
            continue
        values: dict[str, str] = {}
        for want, got in zip(pattern, parts, strict=True):
            if want.startswith("{") and want.endswith("}") and got:
                values[want[1:-1]] = got
            elif want != got:
                break
        else:
            return handler, values
    return None
