"""Local Finery Markets simulator: WebSocket feeds and requests, signed REST API, faults."""

from qfexbot.sim.finery.config import (
    FineryCurrency as FineryCurrency,
)
from qfexbot.sim.finery.config import (
    FineryHouse as FineryHouse,
)
from qfexbot.sim.finery.config import (
    FineryInstrument as FineryInstrument,
)
from qfexbot.sim.finery.config import (
    FinerySimClient as FinerySimClient,
)
from qfexbot.sim.finery.config import (
    FinerySimConfig as FinerySimConfig,
)
from qfexbot.sim.finery.config import (
    FinerySimConfigError as FinerySimConfigError,
)
from qfexbot.sim.finery.config import (
    demo_finery_config as demo_finery_config,
)
from qfexbot.sim.finery.config import (
    load_finery_sim_config as load_finery_sim_config,
)
from qfexbot.sim.finery.config import (
    parse_finery_sim_config as parse_finery_sim_config,
)
from qfexbot.sim.finery.server import (
    FineryFaults as FineryFaults,
)
from qfexbot.sim.finery.server import (
    FinerySimulator as FinerySimulator,
)
from qfexbot.sim.finery.server import (
    FineryUrls as FineryUrls,
)

__all__ = [
    "FineryCurrency",
    "FineryFaults",
    "FineryHouse",
    "FineryInstrument",
    "FinerySimClient",
    "FinerySimConfig",
    "FinerySimConfigError",
    "FinerySimulator",
    "FineryUrls",
    "demo_finery_config",
    "load_finery_sim_config",
    "parse_finery_sim_config",
]
