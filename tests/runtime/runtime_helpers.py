"""Helpers for runtime tests: write a bots.toml and plugins into a temp dir, run the runtime."""

from __future__ import annotations

import textwrap
from pathlib import Path

from demo_config import DESK_A, DESK_B, PRIMARY, SIM, demo_venue, runtime_table, watch_bot

from qfexbot.config import AppConfig, load_config
from qfexbot.runtime import Runtime

__all__ = ["DESK_A", "DESK_B", "PRIMARY", "RECORDER", "recorder", "write_config"]

RECORDER = '''
"""Test plugin: records every event it receives; optionally transfers once desk-a is live."""
from decimal import Decimal
from qfexbot import ConnectionState, ConnectionStateEvent, Field, hookimpl


class Recorder:
    config_schema = {
        "transfer_amount": Field("non_negative_number", default=Decimal(0)),
    }

    def __init__(self, config):
        self.config = config
        self.events = []
        self.results = []

    @hookimpl
    async def qfexbot_event(self, ctx, event):
        self.events.append(event)
        amount = self.config["transfer_amount"]
        if (
            amount
            and not self.results
            and isinstance(event, ConnectionStateEvent)
            and event.state is ConnectionState.LIVE
            and event.account_id == ctx.account_id("desk-a")
        ):
            self.results.append(await ctx.transfer("treasury", "desk-a", amount, "test top-up"))
'''


def write_config(
    tmp_path: Path,
    *,
    secret: str = "qfex_secret_runtime_test",
    extra: str = "",
    recorder_options: str = "",
) -> AppConfig:
    """A bots.toml with an embedded simulator, two desks and a recording test plugin."""
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "recorder.py").write_text(RECORDER)
    venue = demo_venue(
        public_key="qfex_pub_runtime",
        secret=f'"{secret}"',
        session={
            "stale_after": 3.0,
            "backoff_initial": 0.05,
            "backoff_max": 0.2,
            "request_timeout": 2.0,
        },
        sim=SIM,
    )
    bot = watch_bot(
        channels=["balances", "positions"],
        instance="recorder",
        use="recorder:Recorder",
        options=recorder_options,
    )
    text = runtime_table(log_level="debug") + venue + bot + textwrap.dedent(extra)
    path = tmp_path / "bots.toml"
    path.write_text(text)
    (tmp_path / "var").mkdir(exist_ok=True)
    return load_config(path)


def recorder(runtime: Runtime, bot: str = "watch"):
    """The Recorder plugin instance of ``bot``."""
    return runtime.hosts[bot].slots[0].plugin
