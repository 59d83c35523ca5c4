"""A tiny QFEX test client written from the protocol document (not qfexbot's own client)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from qfexbot.sim import QfexSimulator, SimConfig, SimUrls, SimUser

PRIMARY = "aaaaaaaa-0000-4000-8000-000000000001"
SUB1 = "aaaaaaaa-0000-4000-8000-000000000002"
SUB2 = "aaaaaaaa-0000-4000-8000-000000000003"
OTHER = "bbbbbbbb-0000-4000-8000-000000000001"
USER = SimUser(
    public_key="qfex_pub_t",
    secret="qfex_secret_t",
    account_id=PRIMARY,
    subaccounts=[SUB1, SUB2],
    deposits={PRIMARY: Decimal(100000), SUB1: Decimal(50)},
)
OTHER_USER = SimUser(
    public_key="qfex_pub_o",
    secret="qfex_secret_o",
    account_id=OTHER,
    deposits={OTHER: Decimal(1000)},
)
TIMEOUT = 5.0


def make_config(**overrides: Any) -> SimConfig:
    """Fast intervals for tests; the price walk is slow so prices stay where tests put them."""
    settings: dict[str, Any] = {
        "users": [USER, OTHER_USER],
        "pulse_interval": 0.05,
        "mds_interval": 0.05,
        "price_interval": 3600.0,
        "equity_interval": 0.05,
        "seed": 7,
    }
    settings.update(overrides)
    return SimConfig(**settings)


class Sim:
    """A running simulator and its URLs."""

    def __init__(self, sim: QfexSimulator, urls: SimUrls) -> None:
        self.sim = sim
        self.urls = urls


async def start_sim(nursery: trio.Nursery, **overrides: Any) -> Sim:
    sim = QfexSimulator(make_config(**overrides))
    urls = await nursery.start(sim.serve, "127.0.0.1")
    return Sim(sim, urls)


def sign(secret: str, nonce: str, ts: int) -> str:
    return hmac.new(secret.encode(), f"{nonce}:{ts}".encode(), hashlib.sha256).hexdigest()


def hmac_auth(
    user: SimUser,
    account_id: str | None = None,
    *,
    nonce: str | None = None,
    ts: int | None = None,
    secret: str | None = None,
) -> dict[str, Any]:
    nonce = nonce or secrets.token_hex(16)
    ts = int(time.time()) if ts is None else ts
    params: dict[str, Any] = {
        "hmac": {
            "public_key": user.public_key,
            "nonce": nonce,
            "unix_ts": ts,
            "signature": sign(secret or user.secret, nonce, ts),
        }
    }
    if account_id is not None:
        params["account_id"] = account_id
    return {"type": "auth", "params": params}


def rest_headers(
    user: SimUser, account_id: str | None = None, *, nonce: str | None = None, ts: int | None = None
) -> dict[str, str]:
    nonce = nonce or secrets.token_hex(16)
    ts = int(time.time()) if ts is None else ts
    headers = {
        "x-qfex-public-key": user.public_key,
        "x-qfex-hmac-signature": sign(user.secret, nonce, ts),
        "x-qfex-nonce": nonce,
        "x-qfex-timestamp": str(ts),
    }
    if account_id is not None:
        headers["x-qfex-requested-account-id"] = account_id
    return headers


class Client:
    """A trade or market-data socket with JSON helpers; every wait is bounded."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.ws.send_message(message if isinstance(message, str) else json.dumps(message))

    async def command(self, kind: str, **params: Any) -> None:
        await self.send({"type": kind, "params": params})

    async def recv(self) -> Any:
        with trio.fail_after(TIMEOUT):
            return json.loads(await self.ws.get_message())

    async def recv_until(self, predicate: Callable[[Any], bool]) -> Any:
        with trio.fail_after(TIMEOUT):
            while True:
                frame = json.loads(await self.ws.get_message())
                if predicate(frame):
                    return frame

    async def auth(self, user: SimUser = USER, account_id: str | None = None) -> None:
        await self.send(hmac_auth(user, account_id))
        assert await self.recv() == {"authenticated": True}

    async def subscribe(self, *channels: str) -> None:
        await self.command("subscribe", channels=list(channels))
        for channel in channels:
            assert await self.recv() == {"subscribed": channel}

    async def closed(self) -> int | None:
        """Drain until the server closes; the close code."""
        with trio.fail_after(TIMEOUT):
            try:
                while True:
                    await self.ws.get_message()
            except ConnectionClosed as exc:
                return exc.reason.code


@asynccontextmanager
async def connect(url: str, queue_size: int = 256) -> AsyncIterator[Client]:
    """Open a WebSocket; its TCP stream is always closed, even when the server closed first."""
    stream = None
    try:
        async with open_websocket_url(url, message_queue_size=queue_size) as ws:
            stream = ws._stream
            yield Client(ws)
    finally:
        if stream is not None:
            await stream.aclose()


def order_status(frame: Any) -> str | None:
    return frame.get("order_response", {}).get("status") if isinstance(frame, dict) else None


def market_order(side: str, quantity: float) -> dict[str, Any]:
    """add_order params as the engine receives them (numbers parsed as Decimal)."""
    return {
        "symbol": "AAPL-USD",
        "side": side,
        "order_type": "MARKET",
        "order_time_in_force": "IOC",
        "quantity": Decimal(str(quantity)),
    }


async def wait_until(predicate: Callable[[], bool], poll: float = 0.01) -> None:
    """Poll ``predicate`` until it holds (bound it with the caller's ``trio.fail_after``)."""
    while True:
        if predicate():
            return
        await trio.sleep(poll)
