"""The embedded simulator of a ``simulator = true`` table, chosen by the table's kind.

The one bridge between client and simulator (ARCHITECTURE.md rule 6): it turns a table and its
resolved credentials into the plain :class:`~qfexbot.sim.common.embedded.EmbeddedTable` a
simulator reads, and starts the simulator module its kind's adapter names
(``VenueAdapter.simulator``). Simulators are imported only when a table runs one.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import trio

from qfexbot.config import ConfigError, Credentials, VenueConfig
from qfexbot.sim.common.config import ConfigProblems
from qfexbot.sim.common.embedded import EmbeddedTable
from qfexbot.venues.registry import adapter as adapter_of

__all__ = ["embedded_table", "simulator_problems", "start_embedded"]


def embedded_table(venue: VenueConfig, credentials: Credentials) -> EmbeddedTable:
    """What the embedded simulator of ``venue`` is told: its user, accounts, options and key.

    Raises:
      ConfigError: the table has no ``public_key`` or ``secret`` (the simulator needs both).
    """
    if credentials.public_key is None or credentials.secret is None:
        raise ConfigError(
            [f"venues.{venue.name}: the embedded simulator needs public_key and secret"]
        )
    return EmbeddedTable(
        name=venue.name,
        user_id=venue.user_id,
        accounts=venue.accounts,
        options=venue.sim,
        public_key=credentials.public_key,
        secret=credentials.secret.reveal(),
    )


def simulator_problems(venues: Mapping[str, VenueConfig]) -> list[str]:
    """One line per ``simulator = true`` table whose kind has no embedded simulator (what
    ``qfexbot check`` reports before ``run`` would refuse it)."""
    return [
        f"venues.{name}: simulator = true, but kind {venue.kind!r} has no embedded simulator"
        for name, venue in venues.items()
        if venue.simulator and adapter_of(venue.kind).simulator is None
    ]


async def start_embedded(
    root: trio.Nursery, venue: VenueConfig, credentials: Credentials
) -> tuple[Any, Any]:
    """Start the embedded simulator of ``venue`` in ``root``: ``(simulator, urls)``.

    It runs (with whatever its kind adds to it, such as house liquidity) until ``root`` is
    cancelled; ``urls`` is what the kind's adapter opens the venue on.

    Raises:
      ConfigError: the table's kind has no embedded simulator, the table lacks a key, or the
        simulator refuses one of its ``sim`` settings (named by its bots.toml key path).
    """
    problems = simulator_problems({venue.name: venue})
    if problems:
        raise ConfigError(problems)
    module = adapter_of(venue.kind).simulator
    assert module is not None  # simulator_problems said so
    table = embedded_table(venue, credentials)
    try:
        return await importlib.import_module(module).start_embedded(root, table)
    except ConfigProblems as exc:
        # The simulator names its own keys ("sim.funding_cap"); the operator wrote them in
        # this table of bots.toml.
        raise ConfigError([_in_table(venue.name, line) for line in exc.errors]) from None


def _in_table(venue: str, problem: str) -> str:
    """A simulator's problem line ("sim.KEY: ...") as the bots.toml key path that set it."""
    if problem.startswith("sim."):
        return f"venues.{venue}.{problem}"
    return f"venues.{venue}.sim: {problem}"
