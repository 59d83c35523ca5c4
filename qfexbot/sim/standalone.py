"""The standalone simulators (``qfexbot sim --venue KIND``), by the kind they simulate.

The simulator package is organised by venue like ``qfexbot/venues/``; this table is where it
names its own parts, so the command line does not have to.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from qfexbot.errors import SimulatorError
from qfexbot.sim.finery.config import (
    FinerySimConfigError,
    demo_finery_config,
    load_finery_sim_config,
)
from qfexbot.sim.finery.server import FinerySimulator
from qfexbot.sim.qfex.config import SimConfigError, demo_sim_config, load_sim_config
from qfexbot.sim.qfex.server import QfexSimulator

__all__ = ["NoSimulator", "StandaloneConfigError", "kinds", "standalone"]


class NoSimulator(SimulatorError, LookupError):
    """No standalone simulator exists for the kind asked for."""


class StandaloneConfigError(SimulatorError, ValueError):
    """A SIM.toml the simulator refuses; ``str()`` is the text to show, as the simulator says it."""


def _qfex(config: str | None) -> Callable[[], Any]:
    try:
        sim_config = load_sim_config(config) if config else demo_sim_config()
    except SimConfigError as exc:
        raise StandaloneConfigError(f"qfexbot sim: {exc}") from exc
    return partial(QfexSimulator, sim_config)


def _finery(config: str | None) -> Callable[[], Any]:
    try:
        sim_config = load_finery_sim_config(config) if config else demo_finery_config()
    except FinerySimConfigError as exc:
        raise StandaloneConfigError(str(exc)) from exc
    return partial(FinerySimulator, sim_config)


_STANDALONE: dict[str, Callable[[str | None], Callable[[], Any]]] = {
    "qfex": _qfex,
    "finery": _finery,
}


def kinds() -> tuple[str, ...]:
    """The venue kinds that have a standalone simulator."""
    return tuple(_STANDALONE)


def standalone(kind: str, config: str | None) -> Callable[[], Any]:
    """A factory of ``kind``'s simulator for SIM.toml ``config`` (its demo set without one).

    Raises:
      NoSimulator: no simulator for ``kind``.
      StandaloneConfigError: the file is invalid (the message says why).
    """
    load = _STANDALONE.get(kind)
    if load is None:
        raise NoSimulator(kind)
    return load(config)
