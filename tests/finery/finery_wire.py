"""A raw Finery client for the simulator tests, written from protocol/finery.md (not the adapter).

REST: POST ``<rest_url>/api/<method>`` with the JSON body plus ``nonce``/``timestamp`` and the
``EFX-Key``/``EFX-Sign`` headers (§1.1). WS: the same signature over ``EFX-Content`` on the
upgrade (§1.2), then ``bind``/``request`` objects and ``[feed, feedId, action, data]`` arrays.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio
from trio_websocket import WebSocketConnection, wrap_client_stream

from qfexbot.sim.finery.signature import expected_signature

_NONCES = itertools.count(int(time.time() * 1000) * 1000)


def signed(secret: str, prefix: str, content: dict[str, Any]) -> tuple[str, str]:
    """``(body, EFX-Sign)``: ``content`` plus nonce and timestamp, signed as §1.1 says."""
    body = json.dumps({**content, "nonce": next(_NONCES), "timestamp": int(time.time() * 1000)})
    return body, expected_signature(secret, (prefix + body).encode())


async def rest(
    url: str, key: str, secret: str, method: str, timeout: float = 5.0, **content: Any
) -> tuple[int, Any]:
    """One signed REST call: ``(HTTP status, decoded JSON)``."""
    body, sign = signed(secret, method, content)
    async with httpx.AsyncClient(timeout=timeout) as http:
        answer = await http.post(
            f"{url}/api/{method}",
            content=body,
            headers={"EFX-Key": key, "EFX-Sign": sign, "Content-Type": "application/json"},
        )
    return answer.status_code, answer.json()


class Wire:
    """An authenticated WS connection: frames read into ``frames``; ``request`` awaits its reply."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.frames: list[Any] = []
        self._req_ids = itertools.count(1)

    async def next_frame(self) -> Any:
        """The next frame, kept in ``frames`` too."""
        frame = json.loads(await self.ws.get_message())
        self.frames.append(frame)
        return frame

    async def wait(self, match: Callable[[Any], bool]) -> Any:
        """The first frame (already read or new) that ``match``es; bound it with fail_after."""
        for frame in self.frames:
            if match(frame):
                self.frames.remove(frame)
                return frame
        while True:
            frame = await self.next_frame()
            if match(frame):
                self.frames.remove(frame)
                return frame

    async def bind(self, feed: str, feed_id: Any = None) -> Any:
        """Bind ``feed`` and return its snapshot (or failure) frame."""
        message: dict[str, Any] = {"event": "bind", "feed": feed}
        if feed_id is not None:
            message["feedId"] = feed_id
        await self.ws.send_message(json.dumps(message))
        echo = 0 if feed_id is None else feed_id
        return await self.wait(
            lambda f: isinstance(f, list) and f[0] == feed and f[1] == echo and f[2] in "SZ"
        )

    async def request(self, method: str, **content: Any) -> dict[str, Any]:
        """A WS ``request`` (§4.1); the reply object (``reply`` or ``error``)."""
        req_id = next(self._req_ids)
        message = {"event": "request", "reqId": req_id, "method": method, "content": content}
        await self.ws.send_message(json.dumps(message))
        return await self.wait(lambda f: isinstance(f, dict) and f.get("reqId") == req_id)


@asynccontextmanager
async def connect(ws_url: str, key: str, secret: str) -> AsyncIterator[Wire]:
    """Open a header-authenticated connection and wait for ``['X',0,'Z',0]``.

    Our own TCP stream, closed on exit: trio-websocket's client leaks it when the server
    closes first (it waits for a TCP close it never performs itself).
    """
    content, sign = signed(secret, "", {})
    headers = [("EFX-Key", key), ("EFX-Content", content), ("EFX-Sign", sign)]
    port = int(ws_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await wrap_client_stream(
                nursery, stream, "127.0.0.1", "/ws", extra_headers=headers
            )
            wire = Wire(ws)
            assert await wire.next_frame() == ["X", 0, "Z", 0]
            wire.frames.clear()
            yield wire
            await ws.aclose()
    finally:
        await stream.aclose()


async def read_ready(proc: trio.Process) -> dict[str, str]:
    """The URLs of a ``qfexbot sim`` process's ``READY {...}`` line (bound it with fail_after)."""
    assert proc.stdout is not None
    buffer = b""
    while b"\n" not in buffer:
        chunk = await proc.stdout.receive_some()
        assert chunk, "the sim exited before READY"
        buffer += chunk
    line = buffer.split(b"\n")[0].decode()
    assert line.startswith("READY "), line
    return json.loads(line[len("READY ") :])


def feed(name: str, action: str) -> Callable[[Any], bool]:
    """Matches a ``[name, _, action, _]`` feed frame."""
    return lambda f: isinstance(f, list) and f[0] == name and f[2] == action
