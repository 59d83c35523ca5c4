"""How a ``kind = "toy"`` table is read: account ids like ``"T-7"``, its own URLs, few channels."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from qfexbot.config.validate import VenueRules

_ACCOUNT_RE = re.compile(r"[Tt]-([1-9][0-9]{0,5})")


class ToyRules:
    """The ``VenueRules`` of the toy venue: ids ``T-<n>`` (kept upper-case), HMAC keys only."""

    kind = "toy"
    default_urls: Mapping[str, str] = MappingProxyType(
        {
            "trade_url": "wss://trade.toy.invalid/ws",
            "mds_url": "wss://mds.toy.invalid/ws",
            "rest_url": "https://api.toy.invalid",
        }
    )
    single_socket = False
    credentials = ("public_key", "secret")
    credential_hint = "use public_key and secret"
    private_channels = ("fills", "balances")
    market_data_channels = ("bbo",)
    sim_keys = ("seed",)
    user_id_expected = 'a toy account id ("T-<n>")'
    user_id_missing = "the toy account id of the API key"
    account_noun = "toy account id"
    account_expected = 'a toy account id ("T-<n>")'

    def account_id(self, value: Any) -> str | None:
        """``"T-<n>"`` (either case) as ``"T-<n>"``; None for anything else."""
        match = _ACCOUNT_RE.fullmatch(value) if isinstance(value, str) else None
        return f"T-{match.group(1)}" if match else None


RULES: VenueRules = ToyRules()
