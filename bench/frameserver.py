"""Loopback QFEX-like WebSocket server for the benchmarks: answers the handshake, pushes frames.

Run as a child process (``benchlib.start_frame_server``); prints ``READY {"port": N}``.
Each connection chooses its load in the URL:

- ``/trade?mode=flood&n=N``: answer ``auth`` and ``subscribe`` like QFEX, then push ``N`` frames
  of the private mix (order/fill/balance) as fast as TCP takes them;
- ``/mds?mode=flood&n=N``: after the first message (the subscribe), push ``N`` level2 frames;
- ``/trade?mode=paced&run=R&group=G&rate=F&seconds=S``: handshake, then once ``G`` connections
  of run ``R`` are subscribed, ``F`` order frames per second in total, round robin, for ``S``
  seconds; each frame carries ``time.perf_counter_ns()`` taken just before it is written, as
  its ``client_order_id``.

Frames are WebSocket-encoded once and written straight to the TCP stream, so the server costs
next to nothing per frame and the client side is what is measured. That holds at the fastest
peer's rate (picows, ~200-300k frames/s here): the server used 0.02-0.08 CPU s per 200,000
frames, 2-11 % of a core, while picows read them; and the chunk size does not limit it: 64 KB,
1 MB and 4 MB chunks, 9 rounds each in rotated order, twice (load 2.3-3.7), gave picows
medians of 293k / 290k / 308k and 190k / 191k / 219k frames/s, within the rounds' spread
(138k-395k). e2e.py prints the server's CPU share for every round, from /proc.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from urllib.parse import parse_qs, urlsplit

import trio
from benchlib import LEVEL2_FRAME, ORDER_FRAME, PRIVATE_MIX, ws_frame
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

MAX_LIFETIME = 900.0  # seconds: the server stops by itself even if its parent dies
_CHUNK = 64 * 1024


def _chunk(frames: tuple[bytes, ...]) -> tuple[bytes, int]:
    """Frames repeated in order to about 64 KB; returns (bytes, frame count)."""
    reps = max(1, _CHUNK // sum(len(f) for f in frames))
    return b"".join(frames) * reps, reps * len(frames)


_PRIVATE = tuple(ws_frame(f) for f in PRIVATE_MIX)
_L2 = (ws_frame(LEVEL2_FRAME),)
_PRIVATE_CHUNK = _chunk(_PRIVATE)
_L2_CHUNK = _chunk(_L2)


class _Group:
    def __init__(self, size: int) -> None:
        self.size = size
        self.streams: list[trio.abc.Stream] = []
        self.full = trio.Event()


_groups: dict[str, _Group] = {}


async def _handshake_trade(ws) -> None:
    channels_left = None
    while channels_left is None or channels_left:
        msg = json.loads(await ws.get_message())
        kind = msg.get("type")
        if kind == "auth":
            await ws.send_message('{"authenticated":true}')
        elif kind == "subscribe":
            channels = msg.get("params", {}).get("channels", [])
            for channel in channels:
                await ws.send_message(json.dumps({"subscribed": channel}))
            channels_left = 0
        # anything else (rearm commands) is ignored


async def _flood(
    stream: trio.abc.Stream, n: int, frames: tuple[bytes, ...], chunk: tuple[bytes, int]
) -> None:
    data, per_chunk = chunk
    sent = 0
    while n - sent >= per_chunk:
        await stream.send_all(data)
        sent += per_chunk
    rest = n - sent
    if rest:
        await stream.send_all(b"".join(frames[i % len(frames)] for i in range(rest)))


async def _paced(group: _Group, rate: float, seconds: float) -> None:
    await group.full.wait()
    await trio.sleep(0.5)  # let every client settle into its live loop
    streams = group.streams
    total = int(rate * seconds)
    interval = 1.0 / rate
    start = trio.current_time()
    for i in range(total):
        await trio.sleep_until(start + i * interval)
        stream = streams[i % len(streams)]
        frame = ws_frame(ORDER_FRAME % time.perf_counter_ns())
        await stream.send_all(frame)


async def _handler(request: WebSocketRequest) -> None:
    url = urlsplit(request.path)
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    ws = await request.accept()
    try:
        if url.path.startswith("/trade"):
            await _handshake_trade(ws)
            if query.get("mode") == "paced":
                run = query["run"]
                group = _groups.get(run)
                if group is None:
                    group = _groups[run] = _Group(int(query["group"]))
                group.streams.append(ws._stream)
                if len(group.streams) == group.size:
                    group.full.set()
                    await _paced(group, float(query["rate"]), float(query["seconds"]))
            else:
                await _flood(ws._stream, int(query.get("n", 0)), _PRIVATE, _PRIVATE_CHUNK)
        else:
            await ws.get_message()  # the subscribe message
            await _flood(ws._stream, int(query.get("n", 0)), _L2, _L2_CHUNK)
        while True:  # until the client closes
            await ws.get_message()
    except (
        ConnectionClosed,
        trio.BrokenResourceError,
        trio.ClosedResourceError,
        trio.BusyResourceError,
    ):
        pass
    finally:
        await ws._stream.aclose()


async def main() -> None:
    with trio.move_on_after(MAX_LIFETIME):
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                server = await nursery.start(serve_websocket, _handler, "127.0.0.1", 0, None)
                print("READY " + json.dumps({"port": server.port}), flush=True)
                async for _ in signals:
                    break
                nursery.cancel_scope.cancel()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(main)
    sys.exit(0)
