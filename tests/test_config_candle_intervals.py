"""``market_data.candle_intervals``: which candle resolutions a bot subscribes, checked against
its venue kind's intervals, and the (channel, name) pairs the runtime subscribes from it."""

from __future__ import annotations

from typing import Any

import pytest

from qfexbot.config import ConfigError, parse_config

PRIMARY = "0020ce8e-eaee-480e-8d7f-b9241d756ee5"


def app(market_data: dict[str, Any]) -> Any:
    data = {
        "venues": {
            "v": {
                "kind": "qfex",
                "simulator": True,
                "user_id": PRIMARY,
                "public_key": "qfex_pub_t",
                "secret": "qfex_secret_t",
                "accounts": {"desk": "primary"},
            }
        },
        "bots": {
            "b": {
                "venue": "v",
                "accounts": ["desk"],
                "market_data": market_data,
                "plugins": {"p": {"use": "qfexbot.testing:EventLog"}},
            }
        },
    }
    return parse_config(data)


def test_candle_pairs_name_each_symbol_and_interval() -> None:
    md = app({"channels": ["bbo", "candle"], "symbols": ["AAPL-USD", "CL-USD"],
              "candle_intervals": ["1MIN", "1HOUR"]}).bots["b"].market_data  # fmt: skip
    assert md.candle_intervals == ("1MIN", "1HOUR")
    assert md.pairs() == {
        "bbo": ("AAPL-USD", "CL-USD"),
        "candle": ("AAPL-USD/1MIN", "AAPL-USD/1HOUR", "CL-USD/1MIN", "CL-USD/1HOUR"),
    }


def test_candle_without_intervals_means_one_minute() -> None:
    md = app({"channels": ["candle"], "symbols": ["AAPL-USD"]}).bots["b"].market_data
    assert md.candle_intervals == () and md.pairs() == {"candle": ("AAPL-USD/1MIN",)}


@pytest.mark.parametrize(
    ("market_data", "message"),
    [
        ({"channels": ["candle"], "symbols": ["AAPL-USD"], "candle_intervals": ["2MINS"]},
         'bots.b.market_data.candle_intervals[0]: "2MINS" is not available on a kind = "qfex"'
         ' venue (supported: "1MIN", "5MINS", "15MINS", "1HOUR", "4HOURS", "1DAY")'),
        ({"channels": ["bbo"], "symbols": ["AAPL-USD"], "candle_intervals": ["1MIN"]},
         'bots.b.market_data.candle_intervals: needs "candle" in market_data.channels'),
        ({"channels": ["candle"], "symbols": ["AAPL-USD"], "candle_intervals": []},
         "bots.b.market_data.candle_intervals: expected a non-empty array"),
    ],
)  # fmt: skip
def test_bad_candle_intervals_name_the_key(market_data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        app(market_data)
    assert message in str(raised.value)
