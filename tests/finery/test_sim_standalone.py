"""``qfexbot sim --venue finery`` as a real subprocess: its house maker fills a taker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import trio
from finery_wire import connect, feed, read_ready, rest

from qfexbot.sim.finery import (
    FineryHouse,
    FinerySimConfigError,
    FinerySimulator,
    demo_finery_config,
    parse_finery_sim_config,
)

# The demo set's taker (docs/venues/finery.md "Simulator").
TAKER_KEY, TAKER_SECRET = "fm_taker_demo", "fm_taker_secret_demo"
CLIENT = [{"key": "k", "secret": "s", "client_id": 7, "role": "taker"}]


async def test_standalone_sim_fills_a_signed_market_ioc(tmp_path: Path) -> None:
    sim_toml = tmp_path / "SIM.toml"
    sim_toml.write_text(
        '[[finery.clients]]\nkey = "fm_taker_demo"\nsecret = "fm_taker_secret_demo"\n'
        'client_id = 1\nrole = "taker"\n\n[finery.house]\ninterval = 0.05\nseed = 4\n'
    )
    script = Path(sys.executable).with_name("qfexbot")
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    proc = await trio.lowlevel.open_process(
        [str(script), "sim", "--venue", "finery", "--config", str(sim_toml)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        with trio.fail_after(20):
            urls = await read_ready(proc)
            async with connect(urls["ws_url"], TAKER_KEY, TAKER_SECRET) as wire:
                snapshot = await wire.bind("F", "BTC-USD")
                bids, asks = snapshot[3]
                assert len(bids) == 5 and len(asks) == 5  # the house's default levels
                assert bids[0][0] < asks[0][0]
                await wire.bind("O")
                status, reply = await rest(
                    urls["rest_url"],
                    TAKER_KEY,
                    TAKER_SECRET,
                    "add",
                    instrument="BTC-USD",
                    clientOrderId=5,
                    size=1_000_000,
                    side="bid",
                    type="marketIOC",
                )
                assert status == 200, reply
                assert reply["remainingSize"] == 0 and "cancelReason" not in reply
                assert sum(d["size"] for d in reply["deals"]) == 1_000_000
                house = reply["deals"][0]["counterpartyId"]
                assert house == 2  # the next free client id after the taker
                assert reply["deals"][0]["price"] == asks[0][0]
                deal = await wire.wait(feed("O", "D"))
                assert deal[3][11] == reply["deals"][0]["id"] and deal[3][17] == house
                # The house keeps quoting: the F book moves by itself.
                await wire.wait(feed("F", "M"))
            proc.send_signal(signal.SIGINT)
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stdout.aclose()
        await proc.stderr.aclose()


def test_house_table_is_on_by_default_and_checked() -> None:
    assert parse_finery_sim_config({"clients": CLIENT}).house == FineryHouse()
    assert demo_finery_config().house == FineryHouse()
    off = parse_finery_sim_config({"clients": CLIENT, "house": {"enabled": False}})
    assert off.house is None and FinerySimulator(off).house is None
    tuned = parse_finery_sim_config(
        {"clients": CLIENT, "house": {"interval": 2, "levels": 3, "spread": "0.001"}}
    )
    assert tuned.house == FineryHouse(2.0, 1, 3, Decimal("0.001"))
    with pytest.raises(FinerySimConfigError) as info:
        parse_finery_sim_config(
            {"clients": CLIENT, "house": {"levels": 0, "spread": 2, "every": 1}}
        )
    problems = "\n".join(info.value.errors)
    assert "finery.house.levels: expected an integer from 1 to 25, got 0" in problems
    assert "finery.house.spread: expected a fraction between 0 and 1, got 2" in problems
    assert "finery.house.every" in problems


def test_house_client_takes_the_next_free_id_and_a_secret_nobody_knows() -> None:
    sim = FinerySimulator(parse_finery_sim_config({"clients": CLIENT}))
    assert sim.house is not None
    assert (sim.house.client_id, sim.house.role) == (8, "maker")
    assert sim.house.key == "house-maker" and sim.house.secret not in repr(sim.house)
