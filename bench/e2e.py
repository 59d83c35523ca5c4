"""End-to-end frames per second: socket -> session -> parse -> event -> bus -> dispatch -> plugin.

Side by side in one run, against the same frame server (a child process, see frameserver.py):

- qfexbot: the real Supervisor + QfexTradeDriver for one account (private mix: order, fill,
  balance frames) and the real MarketDataSession (level2 frames), a Bus per stream, the
  Dispatcher and a no-op sync plugin. Only the REST resync snapshot is stubbed (not hot path).
- baseline: the same two connections read by bare trio-websocket loops that ``json.loads`` each
  frame and call a function.

Both use the same ``message_queue_size``. Rounds alternate baseline/qfexbot; the best round of
each is compared. Usage: ``python bench/e2e.py [--frames N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import trio
from benchlib import PRIMARY, StubRest, account_ids, app_config, fmt_rate, start_frame_server, until
from trio_websocket import open_websocket_url

from qfexbot.core.bus import Bus
from qfexbot.core.dispatch import Dispatcher
from qfexbot.core.session import MESSAGE_QUEUE_SIZE
from qfexbot.runtime.plugins import build_plugin_host
from qfexbot.venues.qfex.adapter import QfexVenue

HANDSHAKE_FRAMES = 5  # {"authenticated":true} + 4 {"subscribed": channel}
DEADLINE = 120.0


def _urls(port: int, n_trade: int, n_l2: int) -> tuple[str, str]:
    return (
        f"ws://127.0.0.1:{port}/trade?mode=flood&n={n_trade}",
        f"ws://127.0.0.1:{port}/mds?mode=flood&n={n_l2}",
    )


async def run_qfexbot(port: int, n_trade: int, n_l2: int, base_dir: Path) -> tuple[float, dict]:
    """Seconds from connecting to the plugin having been given every frame's events."""
    account = account_ids(1)[0]
    trade_url, mds_url = _urls(port, n_trade, n_l2)
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


async def run_baseline(port: int, n_trade: int, n_l2: int) -> float:
    """Seconds for bare loops (json.loads + a call) to read the same frames."""
    trade_url, mds_url = _urls(port, n_trade, n_l2)
    seen = [0]

    def on_message(obj: object) -> None:
        seen[0] += 1

    async def trade() -> None:
        async with open_websocket_url(trade_url, message_queue_size=MESSAGE_QUEUE_SIZE) as ws:
            await ws.send_message('{"type":"auth","params":{}}')
            await ws.get_message()
            await ws.send_message(
                json.dumps(
                    {
                        "type": "subscribe",
                        "params": {
                            "channels": ["balances", "positions", "order_responses", "fills"]
                        },
                    }
                )
            )
            for _ in range(4):
                await ws.get_message()
            for _ in range(n_trade):
                on_message(json.loads(await ws.get_message()))
            done.append(time.perf_counter())

    async def mds() -> None:
        async with open_websocket_url(mds_url, message_queue_size=MESSAGE_QUEUE_SIZE) as ws:
            await ws.send_message(
                '{"type":"subscribe","channels":["level2"],"symbols":["AAPL-USD"]}'
            )
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
    return max(done) - t0


async def main(frames: int, rounds: int) -> None:
    n_l2 = frames // 4
    n_trade = frames - n_l2
    server = start_frame_server()
    port = server.info["port"]
    best_base = best_bot = 0.0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(1, rounds + 1):
                base_s = await run_baseline(port, n_trade, n_l2)
                bot_s, stats = await run_qfexbot(port, n_trade, n_l2, Path(tmp))
                base_fps, bot_fps = frames / base_s, frames / bot_s
                best_base, best_bot = max(best_base, base_fps), max(best_bot, bot_fps)
                print(
                    f"round {r}: baseline {fmt_rate(base_fps)} frames/s ({base_s:.2f} s), "
                    f"qfexbot {fmt_rate(bot_fps)} frames/s ({bot_s:.2f} s), "
                    f"ratio {bot_fps / base_fps:.2f}  {stats}",
                    flush=True,
                )
    finally:
        server.stop()
    print(
        f"frames per round: {frames} ({n_trade} private: order/fill/balance 2:1:1, "
        f"{n_l2} level2 with 5 levels a side); best of {rounds} rounds"
    )
    print(
        f"RESULT e2e_fps={best_bot:.0f} baseline_fps={best_base:.0f} "
        f"ratio={best_bot / best_base:.3f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000, help="frames per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trio.run(main, args.frames, args.rounds)
