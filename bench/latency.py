"""Frame-to-hook latency at a fixed rate across many accounts: p50/p99/p99.9, qfexbot vs baseline.

The frame server (a child process) sends order frames at ``--rate`` frames/s in total, round
robin over ``--accounts`` connections, each frame stamped with ``time.perf_counter_ns()`` (a
system-wide monotonic clock on Linux) just before it is written. Latency is measured to:

- qfexbot: entry of the plugin's ``qfexbot_event`` hook (real Supervisor per account, parse,
  Bus per account, Dispatcher, one plugin subscribed to every account);
- baseline: the call made by a bare trio-websocket loop per connection after ``json.loads``.

Usage: ``python bench/latency.py [--rate 2000] [--accounts 50] [--seconds 5]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import trio
from benchlib import (
    PRIMARY,
    StubRest,
    account_ids,
    app_config,
    percentile,
    start_frame_server,
    until,
)
from trio_websocket import open_websocket_url

from qfexbot.core.bus import Bus
from qfexbot.core.dispatch import Dispatcher
from qfexbot.core.session import MESSAGE_QUEUE_SIZE
from qfexbot.events import ConnectionState
from qfexbot.runtime.plugins import build_plugin_host
from qfexbot.venues.qfex.adapter import QfexVenue


def _url(port: int, run: str, group: int, rate: float, seconds: float) -> str:
    return (
        f"ws://127.0.0.1:{port}/trade?mode=paced&run={run}&group={group}&rate={rate}"
        f"&seconds={seconds}"
    )


def _latencies_us(samples: list[tuple[int, str]]) -> list[float]:
    return sorted((at - int(sent)) / 1000 for at, sent in samples)


async def run_qfexbot(
    port: int, accounts: int, rate: float, seconds: float, base_dir: Path
) -> list[float]:
    ids = account_ids(accounts)
    url = _url(port, "qfexbot", accounts, rate, seconds)
    app = app_config(
        ids,
        plugins={"latency": "benchlib:LatencyPlugin"},
        trade_url=url,
        mds_url=url,
        rest_url="http://127.0.0.1:9",
        base_dir=base_dir,
    )
    host = build_plugin_host(app.bots["bench"], app.venues["bench"], plugin_dirs=[], actions=None)  # type: ignore[arg-type]  # no action is taken
    vc = app.venues["bench"]
    creds = vc.resolve_credentials(None)
    venue = QfexVenue(
        "bench",
        trade_url=url,
        mds_url=url,
        rest_url=vc.rest_url,
        user_id=PRIMARY,
        settings=vc.session,
        public_key=creds.public_key,
        secret=creds.secret,
        rest=StubRest("bench"),
    )  # type: ignore[arg-type]
    plugin = host.slots[0].plugin
    expected = int(rate * seconds)
    dispatcher = Dispatcher(host)
    with trio.fail_after(seconds + 60):
        async with trio.open_nursery() as nursery:
            await nursery.start(dispatcher.run)
            async with trio.open_nursery() as sessions_nursery:
                sessions = []
                for account in ids:
                    bus = Bus(account, venue="bench")
                    host.subscribe(bus)
                    session = venue.private_session(account, publish=bus.publish)
                    sessions.append(session)
                    sessions_nursery.start_soon(session.run)
                for session in sessions:
                    await session.wait_for(ConnectionState.LIVE)
                await until(lambda: len(plugin.samples) >= expected)  # type: ignore[attr-defined]
                sessions_nursery.cancel_scope.cancel()
            dispatcher.stop()
    return _latencies_us(plugin.samples)  # type: ignore[attr-defined]


async def run_baseline(port: int, accounts: int, rate: float, seconds: float) -> list[float]:
    url = _url(port, "baseline", accounts, rate, seconds)
    samples: list[tuple[int, str]] = []
    expected = int(rate * seconds)
    subscribed = [0]

    def on_message(obj: dict) -> None:
        samples.append((time.perf_counter_ns(), obj["order_response"]["client_order_id"]))

    async def connection() -> None:
        async with open_websocket_url(url, message_queue_size=MESSAGE_QUEUE_SIZE) as ws:
            await ws.send_message('{"type":"auth","params":{}}')
            await ws.get_message()
            await ws.send_message('{"type":"subscribe","params":{"channels":["order_responses"]}}')
            await ws.get_message()
            subscribed[0] += 1
            while True:
                on_message(json.loads(await ws.get_message()))

    with trio.fail_after(seconds + 60):
        async with trio.open_nursery() as nursery:
            for _ in range(accounts):
                nursery.start_soon(connection)
            await until(lambda: len(samples) >= expected)
            nursery.cancel_scope.cancel()
    return _latencies_us(samples)


def _summary(name: str, lat: list[float]) -> str:
    return (
        f"{name}: n={len(lat)} p50={percentile(lat, 0.5):.0f}us "
        f"p99={percentile(lat, 0.99):.0f}us p99.9={percentile(lat, 0.999):.0f}us "
        f"max={lat[-1]:.0f}us"
    )


async def main(rate: float, accounts: int, seconds: float) -> None:
    server = start_frame_server()
    port = server.info["port"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = await run_baseline(port, accounts, rate, seconds)
            print(_summary("baseline", base), flush=True)
            bot = await run_qfexbot(port, accounts, rate, seconds, Path(tmp))
            print(_summary("qfexbot ", bot), flush=True)
    finally:
        server.stop()
    print(
        f"{rate:g} frames/s over {accounts} accounts for {seconds:g} s; latency from the "
        f"server's write to hook entry (us)"
    )
    print(
        f"RESULT rate={rate:g} accounts={accounts} "
        f"p50_us={percentile(bot, 0.5):.0f} p99_us={percentile(bot, 0.99):.0f} "
        f"p999_us={percentile(bot, 0.999):.0f} "
        f"baseline_p50_us={percentile(base, 0.5):.0f} "
        f"baseline_p99_us={percentile(base, 0.99):.0f} "
        f"baseline_p999_us={percentile(base, 0.999):.0f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0, help="frames per second in total")
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    trio.run(main, args.rate, args.accounts, args.seconds)
