"""bots.toml -> frozen, validated configuration objects; every problem reported with its key path.

The public config API, curated from its modules: ``validate`` (the combinators and the rules a
venue's table follows), ``secretref`` (credential references, read late), ``model`` (the frozen
objects), ``parse`` (``load_config``/``parse_config``) and ``schema`` (plugin ``config_schema``
fields and the money-mover check). A venue's own ``[venues.X]`` rules live in its package
(``qfexbot/venues/<kind>/config.py``).
"""

from qfexbot.config.model import DEFAULT_PRIVATE_CHANNELS as DEFAULT_PRIVATE_CHANNELS
from qfexbot.config.model import LOG_FORMATS as LOG_FORMATS
from qfexbot.config.model import LOG_LEVELS as LOG_LEVELS
from qfexbot.config.model import RECORD_MAX_BYTES as RECORD_MAX_BYTES
from qfexbot.config.model import AppConfig as AppConfig
from qfexbot.config.model import BotConfig as BotConfig
from qfexbot.config.model import Limits as Limits
from qfexbot.config.model import MarketData as MarketData
from qfexbot.config.model import PluginConfig as PluginConfig
from qfexbot.config.model import RecordSettings as RecordSettings
from qfexbot.config.model import RuntimeConfig as RuntimeConfig
from qfexbot.config.model import SessionSettings as SessionSettings
from qfexbot.config.model import VenueConfig as VenueConfig
from qfexbot.config.parse import load_config as load_config
from qfexbot.config.parse import parse_config as parse_config
from qfexbot.config.schema import REQUIRED as REQUIRED
from qfexbot.config.schema import Field as Field
from qfexbot.config.schema import money_mover_conflicts as money_mover_conflicts
from qfexbot.config.schema import validate_plugin_config as validate_plugin_config
from qfexbot.config.secretref import INSECURE_SECRET_FILES_ENV as INSECURE_SECRET_FILES_ENV
from qfexbot.config.secretref import Credentials as Credentials
from qfexbot.config.secretref import SecretRef as SecretRef
from qfexbot.config.validate import MARKET_DATA_CHANNELS as MARKET_DATA_CHANNELS
from qfexbot.config.validate import PRIVATE_CHANNELS as PRIVATE_CHANNELS
from qfexbot.config.validate import ConfigError as ConfigError
from qfexbot.config.validate import format_errors as format_errors

__all__ = [
    "DEFAULT_PRIVATE_CHANNELS",
    "INSECURE_SECRET_FILES_ENV",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "MARKET_DATA_CHANNELS",
    "PRIVATE_CHANNELS",
    "RECORD_MAX_BYTES",
    "REQUIRED",
    "AppConfig",
    "BotConfig",
    "ConfigError",
    "Credentials",
    "Field",
    "Limits",
    "MarketData",
    "PluginConfig",
    "RecordSettings",
    "RuntimeConfig",
    "SecretRef",
    "SessionSettings",
    "VenueConfig",
    "format_errors",
    "load_config",
    "money_mover_conflicts",
    "parse_config",
    "validate_plugin_config",
]
