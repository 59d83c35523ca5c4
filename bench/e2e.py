"""End-to-end frames per second: socket -> session -> parse -> event -> bus -> dispatch -> plugin.

Side by side in one run, against the same frame server (a child process, see frameserver.py):

- qfexbot: the real Supervisor + QfexTradeDriver for one account (private mix: order, fill,
  balance frames) and the real MarketDataSession (level2 frames), a Bus per stream, the
  Dispatcher and a no-op sync plugin. Only the REST resync snapshot is stubbed (not hot path).
- baseline: the same two connections read by bare trio-websocket loops that ``json.loads`` each
  frame and call a function (``message_queue_size`` ``benchlib.TRIO_WS_QUEUE``).
- peers: the same two connections read by the asyncio loops of bench/peers.py (websockets,
  aiohttp, picows + orjson), each in a child process; ``na`` for a peer not installed.

Each round runs every runner in turn (baseline, peers, qfexbot); the median of the rounds is
reported, with the spread. Usage: ``python bench/e2e.py [--frames N] [--rounds R]``.
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
    Child,
    StubRest,
    account_ids,
    app_config,
    fmt_rate,
    median,
    result_value,
    run_peer,
    spread,
    start_frame_server,
    trio_ws_handshake,
    until,
)
from peers import MDS_HANDSHAKE, PEERS, TRADE_HANDSHAKE, flood_urls
from trio_websocket import open_websocket_url

from qfexbot.core.bus import Bus
from qfexbot.core.dispatch import Dispatcher
from qfexbot.runtime.plugins import build_plugin_host
from qfexbot.venues.qfex.adapter import QfexVenue

HANDSHAKE_FRAMES = 5  # {"authenticated":true} + 4 {"subscribed": channel}
DEADLINE = 120.0
RUNNERS = ("baseline", *PEERS, "qfexbot")


async def run_qfexbot(port: int, n_trade: int, n_l2: int, base_dir: Path) -> tuple[float, dict]:
    """Seconds from connecting to the plugin having been given every frame's events."""
    account = account_ids(1)[0]
    trade_url, mds_url = flood_urls(port, n_trade, n_l2)
    app = app_config(
        [account],
        plugins={"noop": "benchlib:CountingPlugin"},
        trade_url=trade_url,
        mds_url=mds_url,
        rest_url="http://127.0.0.1:9",
        base_dir=base_dir,
    )
    host = build_plugin_host(app.bots["bench"], app.venues["bench"], plugin_dirs=[], actions=None)  # type: ignore[arg-type]  # no action is taken
    vc = app.venues["bench"]
    creds = vc.resolve_credentials(None)
    venue = QfexVenue(
        "bench",
        trade_url=trade_url,
        mds_url=mds_url,
        rest_url=vc.rest_url,
        user_id=PRIMARY,
        settings=vc.session,
        public_key=creds.public_key,
        secret=creds.secret,
        rest=StubRest("bench"),
    )  # type: ignore[arg-type]
    bus, md_bus = Bus(account, venue="bench"), Bus("", venue="bench")
    host.subscribe(bus)
    host.subscribe(md_bus)
    slot = host.slots[0]
    dispatcher = Dispatcher(host)
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            await nursery.start(dispatcher.run)
            session = venue.private_session(account, publish=bus.publish)
            md = venue.market_data()
            await md.subscribe(["level2"], ["AAPL-USD"], md_bus.publish)
            t0 = time.perf_counter()
            async with trio.open_nursery() as sessions:
                sessions.start_soon(session.run)
                sessions.start_soon(md.run)
                await until(
                    lambda: (
                        session.stats.frames >= n_trade + HANDSHAKE_FRAMES
                        and md.stats.frames >= n_l2
                        and slot.inbox.depth == 0
                    ),
                    every=0.002,
                )
                elapsed = time.perf_counter() - t0
                sessions.cancel_scope.cancel()
            dispatcher.stop()
    stats = {
        "events_handled": slot.events_handled,
        "conflated": slot.inbox.conflated,
        "parse_errors": session.stats.parse_errors + md.stats.parse_errors,
        "reconnects": session.stats.reconnects + md.stats.reconnects,
    }
    return elapsed, stats


async def run_baseline(port: int, n_trade: int, n_l2: int) -> tuple[float, int]:
    """Seconds for bare loops (json.loads + a call) to read the same frames; frames handed on."""
    trade_url, mds_url = flood_urls(port, n_trade, n_l2)
    seen = [0]

    def on_message(obj: object) -> None:
        seen[0] += 1

    async def trade() -> None:
        async with open_websocket_url(trade_url, message_queue_size=TRIO_WS_QUEUE) as ws:
            await trio_ws_handshake(ws, TRADE_HANDSHAKE)
            for _ in range(n_trade):
                on_message(json.loads(await ws.get_message()))
            done.append(time.perf_counter())

    async def mds() -> None:
        async with open_websocket_url(mds_url, message_queue_size=TRIO_WS_QUEUE) as ws:
            await trio_ws_handshake(ws, MDS_HANDSHAKE)
            for _ in range(n_l2):
                on_message(json.loads(await ws.get_message()))
            done.append(time.perf_counter())

    done: list[float] = []
    with trio.fail_after(DEADLINE):
        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trade)
            nursery.start_soon(mds)
    assert seen[0] == n_trade + n_l2, seen
    return max(done) - t0, seen[0]


async def run_one(
    name: str, port: int, n_trade: int, n_l2: int, base_dir: Path
) -> tuple[float | None, str]:
    """One runner's round: (seconds, note for the round line), or (None, why it was skipped)."""
    frames = n_trade + n_l2
    if name == "baseline":
        seconds, seen = await run_baseline(port, n_trade, n_l2)
        return seconds, f"frames={seen}"
    if name == "qfexbot":
        seconds, stats = await run_qfexbot(port, n_trade, n_l2, base_dir)
        # As strict as the peers' check: every frame's event handed to the plugin, none
        # conflated away, none refused (each frame here is one event; state events add some).
        if stats["conflated"] or stats["parse_errors"] or stats["events_handled"] < frames:
            raise RuntimeError(f"qfexbot did not hand on every frame of {frames}: {stats}")
        return seconds, str(stats)
    args = ["--port", str(port), "--trade", str(n_trade), "--l2", str(n_l2)]
    result = await run_peer(name, "e2e", args, DEADLINE)
    if "skipped" in result:
        return None, result["skipped"]
    if result["frames"] != frames:
        raise RuntimeError(f"{name} handed on {result['frames']} of {frames} frames")
    return result["elapsed_s"], f"frames={result['frames']} {result['versions']}"


async def run_rounds(
    server: Child, n_trade: int, n_l2: int, rounds: int, base_dir: Path
) -> dict[str, list[float]]:
    """Frames/s of every runner per round (none for a skipped peer), printing each round."""
    frames = n_trade + n_l2
    fps: dict[str, list[float]] = {name: [] for name in RUNNERS}
    skipped: set[str] = set()
    for r in range(1, rounds + 1):
        for name in RUNNERS:
            if name in skipped:
                continue
            cpu0 = server.cpu_seconds()
            seconds, note = await run_one(name, server.info["port"], n_trade, n_l2, base_dir)
            if seconds is None:
                skipped.add(name)
                print(f"{name}: skipped ({note})", flush=True)
                continue
            server_cpu = (server.cpu_seconds() - cpu0) / seconds
            fps[name].append(frames / seconds)
            print(
                f"round {r} {name}: {fmt_rate(frames / seconds)} frames/s ({seconds:.2f} s), "
                f"server CPU {server_cpu:.0%} of it  {note}",
                flush=True,
            )
    return fps


async def main(frames: int, rounds: int) -> None:
    """All rounds against one frame server; per runner the spread, then the RESULT line."""
    n_l2 = frames // 4
    n_trade = frames - n_l2
    server = start_frame_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            fps = await run_rounds(server, n_trade, n_l2, rounds, Path(tmp))
    finally:
        server.stop()
    print(
        f"frames per round: {frames} ({n_trade} private: order/fill/balance 2:1:1, "
        f"{n_l2} level2 with 5 levels a side); median of {rounds} rounds"
    )
    for name in RUNNERS:
        print(f"{name}: {spread(fps[name], ' frames/s')}")
    med = {name: median(values) for name, values in fps.items()}
    bot = med["qfexbot"]
    fields = [
        f"e2e_fps={bot:.0f}",
        f"baseline_fps={med['baseline']:.0f}",
        f"ratio={bot / med['baseline']:.3f}",
        *(f"{peer}_fps={result_value(med[peer])}" for peer in PEERS),
        *(f"ratio_{peer}={result_value(bot / med[peer], 3)}" for peer in PEERS),
    ]
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000, help="frames per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    trio.run(main, args.frames, args.rounds)
