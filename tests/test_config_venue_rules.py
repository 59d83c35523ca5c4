"""A venue kind registered from outside qfexbot is read with its own ``config.RULES``: its
default URLs, its account id form, its channels and sim keys; config itself names no kind."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import toyvenue

from qfexbot.config import ConfigError, parse_config


@pytest.fixture
def toy_kind() -> Iterator[str]:
    """``kind = "toy"`` available for one test, and forgotten after it."""
    with toyvenue.registered() as kind:
        yield kind


def toy_config() -> dict[str, Any]:
    return {
        "venues": {
            "play": {
                "kind": "toy",
                "user_id": "t-1",
                "public_key": {"env": "TOY_KEY"},
                "secret": {"env": "TOY_SECRET"},
                "accounts": {"main": "primary", "side": "T-22"},
            }
        },
        "bots": {
            "watch": {
                "venue": "play",
                "accounts": ["main", "side"],
                "channels": ["fills"],
                "plugins": {"book_imbalance": {}},
            }
        },
    }


def errors(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "bots.toml", "/srv")
    return info.value.errors


def test_a_registered_kind_gets_its_default_urls_and_account_ids(toy_kind: str) -> None:
    venue = parse_config(toy_config(), "bots.toml", "/srv").venues["play"]
    assert dict(venue.flags) == {}  # a kind without flags of its own
    assert (venue.kind, venue.user_id, dict(venue.accounts)) == (
        toy_kind,
        "T-1",
        {"main": "T-1", "side": "T-22"},
    )
    assert (venue.trade_url, venue.mds_url, venue.rest_url) == (
        "wss://trade.toy.invalid/ws",
        "wss://mds.toy.invalid/ws",
        "https://api.toy.invalid",
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda v, b: v.update(user_id="11111111-1111-4111-8111-111111111111"),
            [
                'venues.play.user_id: expected a toy account id ("T-<n>"), got '
                '"11111111-1111-4111-8111-111111111111"'
            ],
        ),
        (
            lambda v, b: v["accounts"].update(side=22),
            ['venues.play.accounts.side: expected a toy account id ("T-<n>") or "primary", got 22'],
        ),
        (
            lambda v, b: v.update(jwt={"env": "TOY_JWT"}),
            ['venues.play.jwt: not available for kind "toy" (use public_key and secret)'],
        ),
        (
            lambda v, b: b.update(channels=["fills", "positions"]),
            [
                'bots.watch.channels[1]: "positions" is not available on a kind = "toy" venue '
                '(supported: "fills", "balances")'
            ],
        ),
        (
            lambda v, b: v.update(simulator=True, sim={"seed": 1, "pulse_interval": 1}),
            ["venues.play.sim.pulse_interval: unknown key (allowed: seed)"],
        ),
        (
            lambda v, b: v.update(cancel_on_disconnect=False),
            [
                'venues.play.cancel_on_disconnect: not available for kind "toy" (a setting of'
                ' kind "finery" venues only; remove it)'
            ],
        ),
        (
            lambda v, b: b.update(market_data={"channels": ["bbo", "level2"], "symbols": ["X"]}),
            [
                'bots.watch.market_data.channels[1]: "level2" is not available on a kind = "toy"'
                ' venue (supported: "bbo")'
            ],
        ),
    ],
)
def test_a_registered_kind_is_checked_by_its_own_rules(
    toy_kind: str, change: Any, expected: list[str]
) -> None:
    data = copy.deepcopy(toy_config())
    change(data["venues"]["play"], data["bots"]["watch"])
    assert errors(data) == expected


def test_an_unregistered_kind_is_unknown() -> None:
    line = errors(toy_config())[0]
    assert line.startswith('venues.play.kind: expected one of "qfex", "finery"')
    assert line.endswith(', got "toy"')
