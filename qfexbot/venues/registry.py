"""The one place that names venue kinds: kind -> the package that implements the venue.

A venue package ``P`` provides ``P.config`` (``RULES``: how its bots.toml table is read; config
asks for it by kind) and ``P.adapter`` (``ADAPTER``: how the runtime opens, trades, moves money
and replays on it). Built-in venues are listed here; another distribution adds one with an entry
point in the group ``qfexbot.venues`` (name = kind, value = the package's import path), and a test
or embedder with ``register``. Packages are imported only when their kind is used.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Mapping
from types import MappingProxyType, ModuleType
from typing import Any

from qfexbot.core.venue import VenueRules

__all__ = [
    "BUILTIN",
    "DEFAULT_KIND",
    "ENTRY_POINT_GROUP",
    "adapter",
    "config_rules",
    "kinds",
    "register",
    "unregister",
]

ENTRY_POINT_GROUP = "qfexbot.venues"
DEFAULT_KIND = "qfex"
"""The kind of a ``[venues.X]`` table that does not say ``kind``."""

BUILTIN: Mapping[str, str] = MappingProxyType(
    {"qfex": "qfexbot.venues.qfex", "finery": "qfexbot.venues.finery"}
)

_registered: dict[str, str] = {}


def register(kind: str, package: str) -> None:
    """Make ``kind`` available, implemented by the package at import path ``package``."""
    _registered[kind] = package


def unregister(kind: str) -> None:
    """Forget a kind added with ``register`` (built-ins and entry points stay)."""
    _registered.pop(kind, None)


def _packages() -> dict[str, str]:
    found = dict(BUILTIN)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    found.update(_registered)
    return found


def kinds() -> tuple[str, ...]:
    """Every venue kind this process can run, built-ins first."""
    return tuple(_packages())


def _module(kind: str, part: str) -> ModuleType:
    package = _packages().get(kind)
    if package is None:
        known = ", ".join(repr(k) for k in kinds())
        raise LookupError(f"unknown venue kind {kind!r} (known: {known})")
    return importlib.import_module(f"{package}.{part}")


def config_rules(kind: str) -> VenueRules:
    """The venue's ``config.RULES``: how its bots.toml table is validated."""
    rules: VenueRules = _module(kind, "config").RULES
    return rules


def adapter(kind: str) -> Any:
    """The venue's ``adapter.ADAPTER``: what the runtime uses to run it."""
    return _module(kind, "adapter").ADAPTER
