"""A ``[venues.X.sim]`` value the embedded simulator refuses is a configuration problem named
by its bots.toml key path, not a traceback."""

from __future__ import annotations

import pytest
import trio
from demo_config import demo_venue, runtime_table, watch_bot

from qfexbot.config import ConfigError, load_config
from qfexbot.runtime import Runtime


async def test_a_refused_simulator_setting_names_its_bots_toml_key(tmp_path) -> None:
    venue = demo_venue(
        public_key="qfex_pub_t",
        secret='"qfex_secret_t"',
        session={"backoff_initial": 0.05},
        sim='symbols = { "AAPL-USD" = { tick_size = -1 } }',
    )
    bot = watch_bot(channels=["balances"], instance="balance_logger", use="balance_logger")
    path = tmp_path / "bots.toml"
    path.write_text(runtime_table(log_level="info") + venue + bot)
    app = load_config(path)
    refused = pytest.RaisesGroup(
        pytest.RaisesExc(
            ConfigError,
            check=lambda exc: any(
                line.startswith('venues.demo.sim.symbols."AAPL-USD".tick_size: ')
                or line.startswith("venues.demo.sim.symbols.AAPL-USD.tick_size: ")
                for line in exc.errors
            ),
        ),
        flatten_subgroups=True,
    )
    with trio.fail_after(20), refused:
        await Runtime(app).run()
