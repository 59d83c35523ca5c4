"""What every REST route shares: the request, problem+json errors, parameters, path templates.

Split from ``rest`` so the route modules (``rest_market``, the user routes) read requests and
raise errors the same way without importing the ASGI app.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import parse_qs

from qfexbot.errors import SimulatorError

__all__ = [
    "DURATIONS",
    "LIMIT_MAX",
    "SCHEMA_BASE",
    "HttpError",
    "Raw",
    "Request",
    "Scope",
    "duration_window",
    "int_param",
    "iso_param",
    "limit_offset",
    "match_route",
    "symbols_param",
    "year_start",
]

Scope = dict[str, Any]
SCHEMA_BASE = "https://api.qfex.com/schemas"
DURATIONS = {"1d": 86400, "1w": 7 * 86400, "1m": 30 * 86400, "3m": 90 * 86400}
DURATION_NAMES = (*DURATIONS, "ytd", "all")
LIMIT_MAX = 1000
"""The largest page a paged route (``limit``) returns."""

H = TypeVar("H")


class HttpError(SimulatorError):
    """A problem+json response; ``location`` and ``value`` fill its one ``errors`` entry."""

    def __init__(
        self, status: int, detail: str, location: str | None = None, *, value: Any = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.location = location
        self.value = value


@dataclass(frozen=True)
class Raw:
    """A response body that is not JSON (a CSV export), or JSON with extra headers."""

    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


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


def int_param(request: Request, name: str, default: int, low: int, high: int | None = None) -> int:
    """An integer query parameter inside ``[low, high]``, ``default`` when absent.

    Raises:
        HttpError: 422 at ``query.<name>`` (not an integer, or out of bounds; Huma's messages).
    """
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    location = f"query.{name}"
    try:
        value = int(raw)
    except ValueError:
        raise HttpError(422, "expected integer", location, value=raw) from None
    if value < low:
        raise HttpError(422, f"expected number >= {low}", location, value=value)
    if high is not None and value > high:
        raise HttpError(422, f"expected number <= {high}", location, value=value)
    return value


def limit_offset(request: Request, *, offset: bool = True) -> tuple[int, int]:
    """``limit`` (1..1000, default 100) and ``offset`` (>= 0, default 0) of a paged route; a
    route without ``offset`` in the spec passes ``offset=False`` and always gets 0."""
    limit = int_param(request, "limit", 100, 1, LIMIT_MAX)
    return limit, int_param(request, "offset", 0, 0) if offset else 0


def iso_param(request: Request, name: str) -> float | None:
    """An RFC 3339 date-time query parameter as Unix seconds, None when absent.

    Raises:
        HttpError: 422 at ``query.<name>`` when it is not an RFC 3339 date-time with an offset.
    """
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        if "T" not in raw.upper():
            raise ValueError(raw)
        parsed = datetime.fromisoformat(raw.replace("z", "Z"))
        if parsed.tzinfo is None:
            raise ValueError(raw)
    except ValueError:
        raise HttpError(
            422, "expected string to be RFC 3339 date-time", f"query.{name}", value=raw
        ) from None
    return parsed.timestamp()


def duration_window(
    request: Request, name: str, now: float, *, names: tuple[str, ...] = DURATION_NAMES
) -> tuple[str, float]:
    """The ``duration``/``range`` parameter (default ``1w``) and the Unix time its window starts
    (``ytd``: 1 January UTC; ``all``: 0), for the routes of qfex.md §6 #18.

    Raises:
        HttpError: 422 at ``query.<name>`` for a value outside ``names``.
    """
    value = request.query.get(name) or "1w"
    if value not in names:
        raise HttpError(
            422, f"{name} must be one of {', '.join(names)}", f"query.{name}", value=value
        )
    if value == "ytd":
        return value, year_start(now)
    if value == "all":
        return value, 0.0
    return value, now - DURATIONS[value]


def symbols_param(request: Request, name: str = "symbol") -> list[str] | None:
    """A comma-separated symbol filter (``BTC-USD,ETH-USD``), None when absent or empty."""
    raw = request.query.get(name)
    if not raw:
        return None
    symbols = [s.strip() for s in raw.split(",") if s.strip()]
    return symbols or None
