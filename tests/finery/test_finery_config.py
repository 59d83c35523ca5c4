"""bots.toml with ``kind = "finery"``: client ids, default URLs, and every Finery-specific error."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from qfexbot.config import ConfigError, parse_config


def base() -> dict[str, Any]:
    return {
        "venues": {
            "fm": {
                "kind": "finery",
                "simulator": True,
                "user_id": 10,
                "public_key": "fm_key",
                "secret": "fm_secret",
                "accounts": {"main": "primary", "sub": 11},
                "sim": {"pulse_interval": 0.5, "seed": 3},
            }
        },
        "bots": {
            "watch": {
                "venue": "fm",
                "accounts": ["main", "sub"],
                "market_data": {"channels": ["level2"], "symbols": ["BTC-USD"]},
                "plugins": {"book_imbalance": {}},
            }
        },
    }


def errors(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "bots.toml", "/srv")
    return info.value.errors


def test_a_finery_venue_with_client_ids_and_default_urls() -> None:
    app = parse_config(base(), "bots.toml", "/srv")
    venue = app.venues["fm"]
    assert (venue.kind, venue.user_id, dict(venue.accounts)) == (
        "finery",
        "10",
        {"main": "10", "sub": "11"},
    )
    assert venue.trade_url == venue.mds_url == "wss://trade.finerymarkets.com/ws"
    assert venue.rest_url == "https://trade.finerymarkets.com"
    assert dict(venue.sim) == {"pulse_interval": 0.5, "seed": 3}
    assert app.bots["watch"].channels == ("order_responses", "fills", "positions", "balances")


def test_real_finery_venue_needs_tls_urls_and_secret_references() -> None:
    data = base()
    venue = data["venues"]["fm"]
    venue.update(simulator=False, trade_url="ws://example.com/ws", secret={"env": "FM_SECRET"})
    del venue["sim"]
    assert errors(data) == [
        "venues.fm.trade_url: expected a wss:// URL (TLS) for a real venue, got "
        '"ws://example.com/ws"; plain ws:// and http:// are only allowed for loopback hosts '
        "(127.0.0.1, ::1, localhost)",
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda v, b: v.update(user_id="abc"),
            ['venues.fm.user_id: expected a Finery client id (a positive integer), got "abc"'],
        ),
        (
            lambda v, b: v.update(user_id=0),
            ["venues.fm.user_id: expected a Finery client id (a positive integer), got 0"],
        ),
        (
            lambda v, b: v.update(user_id=2**32),
            ["venues.fm.user_id: expected a Finery client id (a positive integer), got 4294967296"],
        ),
        (
            lambda v, b: v.pop("user_id"),
            [
                "venues.fm.user_id: missing required key (expected the Finery client id of the API "
                "key (a positive integer))"
            ],
        ),
        (
            lambda v, b: v["accounts"].update(sub="11111111-1111-4111-8111-111111111111"),
            [
                'venues.fm.accounts.sub: expected a Finery client id (integer) or "primary", got '
                '"11111111-1111-4111-8111-111111111111"'
            ],
        ),
        (
            lambda v, b: v["accounts"].update(sub=10),
            [
                "venues.fm.accounts.sub: expected a unique account, got 10 (same account as alias "
                "main)"
            ],
        ),
        (
            lambda v, b: v.update(mds_url="wss://example.com/"),
            [
                'venues.fm.mds_url: not used by kind "finery" (one WebSocket, trade_url, carries '
                "market data too)"
            ],
        ),
        (
            lambda v, b: (v.pop("public_key"), v.pop("secret"), v.update(jwt="x")),
            [
                'venues.fm.jwt: not available for kind "finery" (use public_key = the EFX key, and '
                "secret)"
            ],
        ),
        (
            lambda v, b: v["sim"].update(deposits={"main": 5}),
            ["venues.fm.sim.deposits: unknown key (allowed: pulse_interval, seed)"],
        ),
        (
            lambda v, b: b.update(channels=["fills", "stop_orders"]),
            [
                'bots.watch.channels[1]: "stop_orders" is not available on a kind = "finery" venue '
                '(supported: "order_responses", "fills", "positions", "balances")'
            ],
        ),
        (
            lambda v, b: b["market_data"].update(channels=["level2", "trade", "B"]),
            [
                'bots.watch.market_data.channels[1]: "trade" is not available on a kind = "finery" '
                'venue (supported: "level2", "global_book", "md_book")',
                'bots.watch.market_data.channels[2]: "B" is not available on a kind = "finery" '
                'venue (supported: "level2", "global_book", "md_book")',
            ],
        ),
        (
            lambda v, b: v.update(cancel_on_disconnect="yes"),
            ['venues.fm.cancel_on_disconnect: expected a boolean, got "yes"'],
        ),
        (
            lambda v, b: v.update(cancel_on_disconect=True),
            ['venues.fm.cancel_on_disconect: unknown key (did you mean "cancel_on_disconnect"?)'],
        ),
    ],
)
def test_finery_specific_errors(change: Any, expected: list[str]) -> None:
    data = copy.deepcopy(base())
    change(data["venues"]["fm"], data["bots"]["watch"])
    assert errors(data) == expected


def test_the_book_channels_and_cancel_on_disconnect_are_read() -> None:
    data = base()
    data["venues"]["fm"]["cancel_on_disconnect"] = True
    data["bots"]["watch"]["market_data"]["channels"] = ["global_book", "md_book", "level2"]
    app = parse_config(data, "bots.toml", "/srv")
    assert dict(app.venues["fm"].flags) == {"cancel_on_disconnect": True}
    assert app.bots["watch"].market_data.channels == ("global_book", "md_book", "level2")
    assert dict(parse_config(base(), "bots.toml", "/srv").venues["fm"].flags) == {
        "cancel_on_disconnect": False
    }


def test_cancel_on_disconnect_is_refused_on_a_qfex_venue() -> None:
    data = {
        "venues": {
            "q": {
                "simulator": True,
                "user_id": "11111111-1111-4111-8111-111111111111",
                "public_key": "k",
                "secret": "s",
                "cancel_on_disconnect": True,
            }
        },
        "bots": {},
    }
    assert errors(data)[0] == (
        'venues.q.cancel_on_disconnect: not available for kind "qfex" (a setting of kind'
        ' "finery" venues only; remove it)'
    )


def test_qfex_venues_are_unaffected() -> None:
    data = base()
    data["venues"]["fm"]["kind"] = "qfex"
    got = errors(data)
    assert (
        got[0]
        == "venues.fm.user_id: expected an account UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), "
        "got 10"
    )
    assert not any("finery" in line for line in got)
