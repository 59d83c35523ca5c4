"""A faithful local QFEX: trade and market-data WebSockets, REST API, matching, faults.

See docs/simulator.md. Start it in a nursery::

    sim = QfexSimulator(demo_sim_config())
    urls = await nursery.start(sim.serve, "127.0.0.1")
"""

from qfexbot.sim.qfex.config import SimConfig as SimConfig
from qfexbot.sim.qfex.config import SimConfigError as SimConfigError
from qfexbot.sim.qfex.config import SimSymbol as SimSymbol
from qfexbot.sim.qfex.config import SimUser as SimUser
from qfexbot.sim.qfex.config import demo_sim_config as demo_sim_config
from qfexbot.sim.qfex.config import load_sim_config as load_sim_config
from qfexbot.sim.qfex.config import parse_sim_config as parse_sim_config
from qfexbot.sim.qfex.faults import Faults as Faults
from qfexbot.sim.qfex.model import LedgerEntry as LedgerEntry
from qfexbot.sim.qfex.server import QfexSimulator as QfexSimulator
from qfexbot.sim.qfex.server import SimUrls as SimUrls

__all__ = [
    "Faults",
    "LedgerEntry",
    "QfexSimulator",
    "SimConfig",
    "SimConfigError",
    "SimSymbol",
    "SimUrls",
    "SimUser",
    "demo_sim_config",
    "load_sim_config",
    "parse_sim_config",
]
