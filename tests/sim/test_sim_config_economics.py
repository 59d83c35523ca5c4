"""SIM.toml keys of the simulator's economics: defaults, parsing and key-path errors."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from qfexbot.sim import SimConfigError
from qfexbot.sim.qfex.config import (
    ALWAYS_OPEN,
    WEEKDAYS,
    MarketHours,
    SimConfig,
    SimSymbol,
    load_sim_config,
    parse_sim_config,
)

D = Decimal
USERS = [
    {
        "public_key": "k",
        "secret": "s",
        "account_id": "00000000-0000-4000-8000-000000000001",
    }
]


def parse(sim: dict[str, Any]) -> SimConfig:
    return parse_sim_config({"users": USERS, "sim": sim})


def problems(sim: dict[str, Any]) -> list[str]:
    with pytest.raises(SimConfigError) as caught:
        parse(sim)
    return caught.value.errors


def test_defaults_keep_the_venue_always_open_with_config_fees_and_no_limits_but_200() -> None:
    config = parse({})
    assert config.funding_interval == 3600.0
    assert config.funding_cap == D("0.005")
    assert config.max_open_orders == 200
    assert config.twap_min_interval == 30.0
    assert config.twap_tick == 0.5
    for spec in config.symbols.values():
        assert spec.maker_fee is None and spec.taker_fee is None
        assert spec.market_hours is None and spec.max_open_interest is None
    assert ALWAYS_OPEN.as_refdata()["sunday"] == {"open": "00:00:00", "close": "23:59:59"}
    assert set(ALWAYS_OPEN.as_refdata()) == {"tz", *WEEKDAYS}


def test_new_sim_keys_parse() -> None:
    config = parse(
        {
            "funding_interval": 60,
            "funding_cap": "0.01",
            "max_open_orders": 5,
            "twap_min_interval": 0.2,
            "twap_tick": 0.05,
            "maker_fee": -0.00005,
            "taker_fee": 0.0003,
        }
    )
    assert (config.funding_interval, config.funding_cap) == (60.0, D("0.01"))
    assert (config.max_open_orders, config.twap_min_interval, config.twap_tick) == (5, 0.2, 0.05)
    assert (config.maker_fee, config.taker_fee) == (D("-0.00005"), D("0.0003"))


def test_symbol_keys_parse_from_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "SIM.toml"
    path.write_text(
        """
[[users]]
public_key = "k"
secret = "s"
account_id = "00000000-0000-4000-8000-000000000001"

[sim.symbols."AAPL-USD"]
maker_fee = -0.0001
taker_fee = "0.0004"
max_open_interest = 250

[sim.symbols."AAPL-USD".market_hours]
tz = "America/New_York"
monday = { open = "04:00", close = "20:00:00" }
friday = { open = 04:00:00, close = 20:00:00 }
"""
    )
    spec: SimSymbol = load_sim_config(path).symbols["AAPL-USD"]
    assert (spec.maker_fee, spec.taker_fee, spec.max_open_interest) == (
        D("-0.0001"),
        D("0.0004"),
        D(250),
    )
    assert spec.market_hours == MarketHours(
        "America/New_York",
        {"monday": (time(4), time(20)), "friday": (time(4), time(20))},
    )


def test_market_hours_default_to_utc() -> None:
    config = parse(
        {"symbols": {"AAPL-USD": {"market_hours": {"sunday": {"open": "10:00", "close": "11:00"}}}}}
    )
    hours = config.symbols["AAPL-USD"].market_hours
    assert hours is not None and hours.tz == "UTC" and set(hours.sessions) == {"sunday"}


@pytest.mark.parametrize(
    ("sim", "expected"),
    [
        ({"funding_interval": 0}, "sim.funding_interval: expected a positive number, got 0"),
        ({"funding_cap": -1}, "sim.funding_cap: expected a positive number, got -1"),
        ({"max_open_orders": 0}, "sim.max_open_orders: expected a positive integer, got 0"),
        ({"max_open_orders": 1.5}, "sim.max_open_orders: expected a non-negative integer, got 1.5"),
        ({"twap_tick": "x"}, "sim.twap_tick: expected a positive number, got 'x'"),
        (
            {"taker_fee": -0.001},
            "sim.taker_fee: expected a fraction from 0 to below 1, got -0.001",
        ),
        ({"maker_fee": -1}, "sim.maker_fee: expected a fraction above -1 and below 1, got -1"),
        ({"maker_fee": True}, "sim.maker_fee: expected a fraction above -1 and below 1, got True"),
        (
            {"symbols": {"AAPL-USD": {"taker_fee": 1}}},
            'sim.symbols."AAPL-USD".taker_fee: expected a fraction from 0 to below 1, got 1',
        ),
        (
            {"symbols": {"AAPL-USD": {"max_open_interest": 0}}},
            'sim.symbols."AAPL-USD".max_open_interest: expected a positive number, got 0',
        ),
        (
            {"symbols": {"AAPL-USD": {"market_hours": "9-5"}}},
            "sim.symbols.\"AAPL-USD\".market_hours: expected a table, got '9-5'",
        ),
    ],
)
def test_bad_values_name_their_key_path(sim: dict[str, Any], expected: str) -> None:
    assert problems(sim) == [expected]


def test_every_market_hours_problem_is_listed_with_its_path() -> None:
    errors = problems(
        {
            "symbols": {
                "AAPL-USD": {
                    "market_hours": {
                        "tz": "Mars/Olympus",
                        "funday": {},
                        "monday": {"open": "20:00", "close": "04:00"},
                        "tuesday": {"open": "25:00", "close": "26:00", "lunch": "12:00"},
                        "wednesday": "all day",
                    }
                }
            }
        }
    )
    path = 'sim.symbols."AAPL-USD".market_hours'
    assert errors == [
        f'{path}.funday: unknown key (did you mean "sunday"?)',  # as bots.toml words it
        f"{path}.tz: expected an IANA time zone name, got 'Mars/Olympus'",
        f"{path}.monday.close: 04:00:00 is not after open 20:00:00",
        f"{path}.tuesday.lunch: unknown key (allowed: close, open)",
        f'{path}.tuesday.open: expected a time of day "HH:MM" or "HH:MM:SS", got \'25:00\'',
        f'{path}.tuesday.close: expected a time of day "HH:MM" or "HH:MM:SS", got \'26:00\'',
        f"{path}.wednesday: expected a table with open and close, got 'all day'",
    ]


def test_unknown_simulator_keys_say_what_was_meant_as_bots_toml_does() -> None:
    """Issue 15: the simulator's config errors get "did you mean" like bots.toml's."""
    assert problems({"pulse_intervall": 1}) == [
        'sim.pulse_intervall: unknown key (did you mean "pulse_interval"?)'
    ]
    assert problems({"symbols": {"AAPL-USD": {"tick_sise": "0.01"}}}) == [
        'sim.symbols."AAPL-USD".tick_sise: unknown key (did you mean "tick_size"?)'
    ]
    [line] = problems({"zzz": 1})
    assert line.startswith("sim.zzz: unknown key (allowed: ") and "pulse_interval" in line
    with pytest.raises(SimConfigError) as caught:
        parse_sim_config({"users": USERS, "simm": {}})
    assert caught.value.errors == ['simm: unknown key (did you mean "sim"?)']
