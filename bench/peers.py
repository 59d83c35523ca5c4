"""Peer baselines: the loop a user would write with asyncio ``websockets``, aiohttp or picows.

Each peer reads the bench frame server (frameserver.py) with the handshake the trio-websocket
baseline sends (``auth`` then ``subscribe`` on /trade, ``subscribe`` on /mds; the replies are
read), decodes every frame (``json.loads``; picows with ``orjson.loads``, as its users do) and
hands it to a no-op function: ``websockets.asyncio.client.connect`` with ``async for``,
aiohttp's ``ClientSession.ws_connect`` with ``receive``, picows' ``ws_connect`` with a
``WSListener`` whose ``on_ws_frame`` decodes. Plain asyncio, no uvloop: the event loop a user
gets by default; each library with its defaults (picows 2.x, for one, connects through
aiofastnet, its own dependency).

e2e.py and latency.py run this as a child process, one peer at a time, so the peer has the one
core the qfexbot round has (the frame server is in its own process); it prints one JSON line.
A peer whose package is not installed prints ``{"skipped": reason}`` (shown as ``na``), never
a figure. The module itself imports only the standard library, so the benchmarks import its
handshake messages and URLs whether or not the peers are installed.

Usage: ``python bench/peers.py --peer websockets --mode e2e --port P --trade N --l2 M``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from importlib.metadata import version
from typing import Any

PEERS = ("websockets", "aiohttp", "picows")
"""The peer libraries, in the order the benchmarks run them."""

AUTH = '{"type":"auth","params":{}}'
TRADE_CHANNELS = ("balances", "positions", "order_responses", "fills")
TRADE_SUBSCRIBE = json.dumps({"type": "subscribe", "params": {"channels": list(TRADE_CHANNELS)}})
ORDERS_SUBSCRIBE = '{"type":"subscribe","params":{"channels":["order_responses"]}}'
MDS_SUBSCRIBE = '{"type":"subscribe","channels":["level2"],"symbols":["AAPL-USD"]}'

Handshake = tuple[tuple[str, int], ...]
"""Messages to send in order, each with the number of replies to read before the next."""

TRADE_HANDSHAKE: Handshake = ((AUTH, 1), (TRADE_SUBSCRIBE, len(TRADE_CHANNELS)))
"""/trade in e2e: ``{"authenticated":true}``, then one ``{"subscribed": ...}`` per channel."""
ORDERS_HANDSHAKE: Handshake = ((AUTH, 1), (ORDERS_SUBSCRIBE, 1))
"""/trade in latency: order responses only."""
MDS_HANDSHAKE: Handshake = ((MDS_SUBSCRIBE, 0),)
"""/mds: the server floods after the subscribe, without a reply."""

UNBOUNDED = 1 << 62
"""Frames to read on a latency connection: until the run cancels it."""

Handler = Callable[[Any], None]
Reader = Callable[[str, Handshake, int, Handler], Awaitable[float]]
"""``read(url, handshake, n, handle)``: connect, handshake, hand ``n`` decoded frames to
``handle``, close; returns the ``perf_counter()`` at which the ``n``-th frame was handed on."""


def flood_urls(port: int, n_trade: int, n_l2: int) -> tuple[str, str]:
    """The e2e frame-server URLs: ``n_trade`` private-mix frames and ``n_l2`` level2 frames."""
    return (
        f"ws://127.0.0.1:{port}/trade?mode=flood&n={n_trade}",
        f"ws://127.0.0.1:{port}/mds?mode=flood&n={n_l2}",
    )


def paced_url(port: int, run: str, group: int, rate: float, seconds: float) -> str:
    """The latency frame-server URL: ``rate`` frames/s over the ``group`` connections of ``run``."""
    return (
        f"ws://127.0.0.1:{port}/trade?mode=paced&run={run}&group={group}&rate={rate}"
        f"&seconds={seconds}"
    )


# ---------------------------------------------------------------- the peers


@asynccontextmanager
async def _websockets() -> AsyncIterator[Reader]:
    from websockets.asyncio.client import connect  # noqa: PLC0415 - optional: may be skipped

    async def read(url: str, handshake: Handshake, n: int, handle: Handler) -> float:
        async with connect(url) as ws:
            for message, replies in handshake:
                await ws.send(message)
                for _ in range(replies):
                    await ws.recv()
            left = n
            async for message in ws:
                handle(json.loads(message))
                left -= 1
                if not left:
                    return time.perf_counter()
        raise ConnectionError(f"closed with {left} of {n} frames to go")

    yield read


@asynccontextmanager
async def _aiohttp() -> AsyncIterator[Reader]:
    import aiohttp  # noqa: PLC0415 - optional: may be skipped

    # limit=0: the default pool holds 100 connections, and a websocket holds one for its life.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def read(url: str, handshake: Handshake, n: int, handle: Handler) -> float:
            async with session.ws_connect(url) as ws:
                for message, replies in handshake:
                    await ws.send_str(message)
                    for _ in range(replies):
                        await ws.receive()
                for _ in range(n):
                    msg = await ws.receive()
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        raise ConnectionError(f"{msg.type.name} before {n} frames")
                    handle(json.loads(msg.data))
                return time.perf_counter()

        yield read


@asynccontextmanager
async def _picows() -> AsyncIterator[Reader]:
    import orjson  # noqa: PLC0415 - optional: may be skipped
    from picows import (  # noqa: PLC0415 - optional: may be skipped
        WSFrame,
        WSListener,
        WSMsgType,
        WSTransport,
        ws_connect,
    )

    class Listener(WSListener):
        """Sends the handshake, reads its replies, then decodes ``n`` frames and hands them on."""

        def __init__(self, handshake: Handshake, n: int, handle: Handler) -> None:
            self.steps = list(handshake)
            self.replies = 0
            self.left = n
            self.handle = handle
            self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

        def on_ws_connected(self, transport: WSTransport) -> None:
            self._send_next(transport)

        def _send_next(self, transport: WSTransport) -> None:
            while self.steps and not self.replies:
                message, self.replies = self.steps.pop(0)
                transport.send(WSMsgType.TEXT, message.encode())

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is not WSMsgType.TEXT:
                return  # picows answers pings itself; the server sends no other kind
            if self.replies:
                self.replies -= 1
                self._send_next(transport)
                return
            self.handle(orjson.loads(frame.get_payload_as_memoryview()))
            self.left -= 1
            if not self.left:
                self.done.set_result(time.perf_counter())

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            if not self.done.done():
                self.done.set_exception(ConnectionError(f"closed with {self.left} frames to go"))

    async def read(url: str, handshake: Handshake, n: int, handle: Handler) -> float:
        transport, listener = await ws_connect(lambda: Listener(handshake, n, handle), url)
        try:
            return await listener.done  # type: ignore[attr-defined]  # our Listener
        finally:
            transport.send_close()
            transport.disconnect()
            await transport.wait_disconnected()

    yield read


_FACTORIES: dict[str, Callable[[], AbstractAsyncContextManager[Reader]]] = {
    "websockets": _websockets,
    "aiohttp": _aiohttp,
    "picows": _picows,
}
_DISTRIBUTIONS = {
    "websockets": ["websockets"],
    "aiohttp": ["aiohttp"],
    "picows": ["picows", "orjson"],
}


# ---------------------------------------------------------------- the two measurements


async def e2e(read: Reader, trade_url: str, mds_url: str, n_trade: int, n_l2: int) -> dict:
    """Seconds for the two connections to hand every frame on, and how many were handed on."""
    seen = [0]

    def on_message(obj: object) -> None:
        seen[0] += 1

    t0 = time.perf_counter()
    done = await asyncio.gather(
        read(trade_url, TRADE_HANDSHAKE, n_trade, on_message),
        read(mds_url, MDS_HANDSHAKE, n_l2, on_message),
    )
    return {"elapsed_s": max(done) - t0, "frames": seen[0]}


async def latency(read: Reader, url: str, accounts: int, expected: int) -> dict:
    """Microseconds from the server's write to the handler, per frame, over ``accounts``."""
    samples: list[tuple[int, str]] = []
    enough = asyncio.Event()

    def on_message(obj: dict) -> None:
        samples.append((time.perf_counter_ns(), obj["order_response"]["client_order_id"]))
        if len(samples) >= expected:
            enough.set()

    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(read(url, ORDERS_HANDSHAKE, UNBOUNDED, on_message))
            for _ in range(accounts)
        ]
        await enough.wait()
        for task in tasks:
            task.cancel()
    return {"latencies_us": sorted(round((at - int(sent)) / 1000, 1) for at, sent in samples)}


async def run(args: argparse.Namespace) -> dict:
    """One peer, one measurement; ``skipped`` when the peer's packages are not installed."""
    async with AsyncExitStack() as stack:
        try:
            read = await stack.enter_async_context(_FACTORIES[args.peer]())
            versions = {name: version(name) for name in _DISTRIBUTIONS[args.peer]}
        except ImportError as exc:  # PackageNotFoundError is one
            return {"peer": args.peer, "skipped": f"not installed: {exc}"}
        async with asyncio.timeout(args.timeout):
            if args.mode == "e2e":
                trade_url, mds_url = flood_urls(args.port, args.trade, args.l2)
                result = await e2e(read, trade_url, mds_url, args.trade, args.l2)
            else:
                url = paced_url(args.port, args.run, args.accounts, args.rate, args.seconds)
                result = await latency(read, url, args.accounts, int(args.rate * args.seconds))
    return {"peer": args.peer, "versions": versions, **result}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line e2e.py and latency.py build (``benchlib.run_peer``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", choices=PEERS, required=True)
    parser.add_argument("--mode", choices=("e2e", "latency"), required=True)
    parser.add_argument("--port", type=int, required=True, help="the frame server's port")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds, whole run")
    parser.add_argument("--trade", type=int, default=0, help="e2e: private-mix frames")
    parser.add_argument("--l2", type=int, default=0, help="e2e: level2 frames")
    parser.add_argument("--run", default="peer", help="latency: the server's group name")
    parser.add_argument("--accounts", type=int, default=50, help="latency: connections")
    parser.add_argument("--rate", type=float, default=2000.0, help="latency: frames/s in total")
    parser.add_argument("--seconds", type=float, default=5.0, help="latency: seconds of frames")
    return parser.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(parse_args()))), flush=True)
