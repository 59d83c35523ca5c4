"""How a ``kind = "finery"`` table of bots.toml is read: client ids, one WebSocket, HMAC keys."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from qfexbot.config.validate import VenueRules, is_int

__all__ = ["BOOK_FEEDS", "RULES"]

BOOK_FEEDS: Mapping[str, str] = MappingProxyType(
    {"level2": "F", "global_book": "B", "md_book": "MD"}
)
"""bots.toml market-data channels -> the Finery book feed bound for each symbol: ``F`` the
tradable book of this key, ``B`` the global book of every maker, ``MD`` the view-only firm
book (bound with ``{"instrument": symbol}``). Their ``BookEvent.channel`` is the channel name."""


class FineryRules:
    """The ``qfexbot.config.validate.VenueRules`` of Finery Markets: the user id and the account
    ids are client ids (uint32, > 0, kept as decimal text like every account id), one WebSocket
    carries everything, and only an EFX key pair authenticates."""

    kind = "finery"
    # One WebSocket for everything: mds_url is the same socket and not configurable.
    default_urls: Mapping[str, str] = MappingProxyType(
        {
            "trade_url": "wss://trade.finerymarkets.com/ws",
            "mds_url": "wss://trade.finerymarkets.com/ws",
            "rest_url": "https://trade.finerymarkets.com",
        }
    )
    single_socket = True
    credentials = ("public_key", "secret")
    credential_hint = "use public_key = the EFX key, and secret"
    private_channels = ("order_responses", "fills", "positions", "balances")
    """Its feeds O, O, K and L."""
    market_data_channels = tuple(BOOK_FEEDS)
    """The book feeds of :data:`BOOK_FEEDS`; the venue has no trades, marks or candles."""
    flags: Mapping[str, bool] = MappingProxyType({"cancel_on_disconnect": False})
    """``cancel_on_disconnect = true``: every account order is sent with ``cod``, so the venue
    cancels it when the connection it was placed on drops."""
    sim_keys = ("pulse_interval", "seed")
    user_id_expected = "a Finery client id (a positive integer)"
    user_id_missing = "the Finery client id of the API key (a positive integer)"
    account_noun = "client id"
    account_expected = "a Finery client id (integer)"

    def account_id(self, value: Any) -> str | None:
        """A client id (an integer 1 .. 2**32-1) as decimal text; None for anything else."""
        if is_int(value) and 0 < value < 2**32:
            return str(value)
        return None


RULES: VenueRules = FineryRules()
