"""How a ``kind = "qfex"`` table of bots.toml is read: account UUIDs, QFEX URLs, every channel."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from qfexbot.config.validate import MARKET_DATA_CHANNELS, PRIVATE_CHANNELS, VenueRules

__all__ = ["RULES"]

_UUID_RE = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


class QfexRules:
    """The ``qfexbot.config.validate.VenueRules`` of QFEX: the user id is the primary account's
    UUID, subaccounts are UUIDs (kept lower-case), and every channel exists."""

    kind = "qfex"
    default_urls: Mapping[str, str] = MappingProxyType(
        {
            "trade_url": "wss://trade.qfex.com/",
            "mds_url": "wss://mds.qfex.com/",
            "rest_url": "https://api.qfex.com",
        }
    )
    single_socket = False
    credentials = ("public_key", "secret", "jwt")
    credential_hint = ""
    private_channels = PRIVATE_CHANNELS
    market_data_channels = MARKET_DATA_CHANNELS
    candle_intervals = ("1MIN", "5MINS", "15MINS", "1HOUR", "4HOURS", "1DAY")
    """The MDS ``candle`` channel's ``intervals`` (``market_data.candle_intervals``)."""
    sim_keys = (
        "pulse_interval",
        "seed",
        "deposits",
        "symbols",
        "twap_min_interval",
        "twap_tick",
        "funding_interval",
        "funding_cap",
        "max_open_orders",
    )
    user_id_expected = "an account UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
    user_id_missing = "the primary account UUID, which is the user id"
    account_noun = "account UUID"
    account_expected = "an account UUID"

    def account_id(self, value: Any) -> str | None:
        """A UUID string, lower-cased; None for anything else."""
        if isinstance(value, str) and _UUID_RE.fullmatch(value):
            return value.lower()
        return None


RULES: VenueRules = QfexRules()
