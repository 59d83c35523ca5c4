"""Frame-to-hook latency at a fixed rate across many accounts: p50/p99/p99.9, qfexbot vs peers.

The frame server (a child process) sends order frames at ``--rate`` frames/s in total, round
robin over ``--accounts`` connections, each frame stamped with ``time.perf_counter_ns()`` (a
system-wide monotonic clock on Linux) just before it is written. Latency is measured to:

- qfexbot: entry of the plugin's ``qfexbot_event`` hook (real Supervisor per account, parse,
  Bus per account, Dispatcher, one plugin subscribed to every account);
- baseline: the call made by a bare trio-websocket loop per connection after ``json.loads``;
- peers: the call made by the asyncio loops of bench/peers.py (websockets, aiohttp,
  picows + orjson), one connection per account, each peer in a child process; ``na`` for a
  peer not installed.

Each round runs every runner in turn (baseline, peers, qfexbot); each percentile reported is
the median of the rounds' percentiles, with the spread of p99 and p99.9.
Usage: ``python bench/latency.py [--rate 2000] [--accounts 50] [--seconds 5] [--rounds 5]``.
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
    TRIO_WS_QUEUE,
    StubRest,
    account_ids,
    app_config,
    median,
    percentile,
    result_value,
    run_peer,
    spread,
    start_frame_server,
    trio_ws_handshake,
    until,
)
from peers import ORDERS_HANDSHAKE, PEERS, paced_url
from trio_websocket import open_websocket_url

from qfexbot.core.bus import Bus
from qfexbot.core.dispatch import Dispatcher
from qfexbot.events import ConnectionState
from qfexbot.runtime.plugins import build_plugin_host
from qfexbot.venues.qfex.adapter import QfexVenue

RUNNERS = ("baseline", *PEERS, "qfexbot")
QUANTILES = {"p50": 0.5, "p99": 0.99, "p999": 0.999}


def _latencies_us(samples: list[tuple[int, str]]) -> list[float]:
    return sorted((at - int(sent)) / 1000 for at, sent in samples)


async def run_qfexbot(
    port: int, run: str, accounts: int, rate: float, seconds: float, base_dir: Path
) -> list[float]:
    ids = account_ids(accounts)
    url = paced_url(port, run, accounts, rate, seconds)
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


async def run_baseline(
    port: int, run: str, accounts: int, rate: float, seconds: float
) -> list[float]:
    url = paced_url(port, run, accounts, rate, seconds)
    samples: list[tuple[int, str]] = []
    expected = int(rate * seconds)

    def on_message(obj: dict) -> None:
        samples.append((time.perf_counter_ns(), obj["order_response"]["client_order_id"]))

    async def connection() -> None:
        async with open_websocket_url(url, message_queue_size=TRIO_WS_QUEUE) as ws:
            await trio_ws_handshake(ws, ORDERS_HANDSHAKE)
            while True:
                on_message(json.loads(await ws.get_message()))

    with trio.fail_after(seconds + 60):
        async with trio.open_nursery() as nursery:
            for _ in range(accounts):
                nursery.start_soon(connection)
            await until(lambda: len(samples) >= expected)
            nursery.cancel_scope.cancel()
    return _latencies_us(samples)


async def run_one(
    name: str, port: int, run: str, args: argparse.Namespace, base_dir: Path
) -> list[float] | str:
    """One runner's round: its sorted latencies (us), or why it was skipped."""
    load = (args.accounts, args.rate, args.seconds)
    if name == "baseline":
        return await run_baseline(port, run, *load)
    if name == "qfexbot":
        return await run_qfexbot(port, run, *load, base_dir)
    argv = ["--port", str(port), "--run", run, "--accounts", str(args.accounts)]
    argv += ["--rate", str(args.rate), "--seconds", str(args.seconds)]
    result = await run_peer(name, "latency", argv, args.seconds + 60)
    return result.get("skipped") or result["latencies_us"]


def _summary(name: str, lat: list[float]) -> str:
    return (
        f"{name}: n={len(lat)} p50={percentile(lat, 0.5):.0f}us "
        f"p99={percentile(lat, 0.99):.0f}us p99.9={percentile(lat, 0.999):.0f}us "
        f"max={lat[-1]:.0f}us"
    )


async def run_rounds(port: int, args: argparse.Namespace, base_dir: Path) -> dict[str, dict]:
    """Per runner, per quantile, the rounds' values (none for a skipped peer)."""
    found: dict[str, dict] = {name: {q: [] for q in QUANTILES} for name in RUNNERS}
    skipped: set[str] = set()
    for r in range(1, args.rounds + 1):
        for name in RUNNERS:
            if name in skipped:
                continue
            lat = await run_one(name, port, f"{name}-{r}", args, base_dir)
            if isinstance(lat, str):
                skipped.add(name)
                print(f"{name}: skipped ({lat})", flush=True)
                continue
            for q, at in QUANTILES.items():
                found[name][q].append(percentile(lat, at))
            print(f"round {r} " + _summary(name, lat), flush=True)
    return found


async def main(args: argparse.Namespace) -> None:
    """All rounds against one frame server; per runner the spread, then the RESULT line."""
    server = start_frame_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            found = await run_rounds(server.info["port"], args, Path(tmp))
    finally:
        server.stop()
    print(
        f"{args.rate:g} frames/s over {args.accounts} accounts for {args.seconds:g} s; latency "
        f"from the server's write to hook entry (us); median of {args.rounds} rounds"
    )
    for name in RUNNERS:
        p99, p999 = spread(found[name]["p99"], "us"), spread(found[name]["p999"], "us")
        print(f"{name}: p99 {p99}; p99.9 {p999}")
    med = {name: {q: median(v) for q, v in qs.items()} for name, qs in found.items()}
    fields = [f"rate={args.rate:g}", f"accounts={args.accounts}"]
    fields += [f"{q}_us={med['qfexbot'][q]:.0f}" for q in QUANTILES]
    fields += [f"baseline_{q}_us={med['baseline'][q]:.0f}" for q in QUANTILES]
    fields += [f"{p}_{q}_us={result_value(med[p][q])}" for p in PEERS for q in QUANTILES]
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0, help="frames per second in total")
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    trio.run(main, parser.parse_args())
