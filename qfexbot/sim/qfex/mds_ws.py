"""The public market-data WebSocket: level2, bbo, trade and mark_price from the engine (§3)."""

from __future__ import annotations

import json
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest

from qfexbot.sim.common.connection import WsPeer, dumps
from qfexbot.sim.qfex.engine import Engine
from qfexbot.sim.qfex.model import PublicTrade, rfc3339

__all__ = ["MDS_CHANNELS", "MdsGateway"]

MDS_CHANNELS = ("level2", "bbo", "trade", "mark_price")
ALL = "*"


class MdsConnection(WsPeer):
    """One market-data socket and its (channel, symbol-or-"*") subscriptions."""

    def __init__(self, ws: Any) -> None:
        super().__init__(ws)
        self.subscriptions: set[tuple[str, str]] = set()

    def wants(self, channel: str, symbol: str) -> bool:
        return (channel, symbol) in self.subscriptions or (channel, ALL) in self.subscriptions


class MdsGateway:
    """Accepts market-data connections; pulses books and marks, streams trades.

    Args:
        engine: the books, marks and clock the frames are made of.
        ping_interval, pong_timeout: server pings from the start.
    """

    def __init__(self, engine: Engine, *, ping_interval: float, pong_timeout: float) -> None:
        self._engine = engine
        self._ping_interval = ping_interval
        self._pong_timeout = pong_timeout
        self.connections: set[MdsConnection] = set()

    async def handle(self, request: WebSocketRequest) -> None:
        """trio-websocket handler: no auth; server pings from the start (§6 #3)."""
        try:
            ws = await request.accept()
        except ConnectionClosed:
            return
        conn = MdsConnection(ws)
        self.connections.add(conn)
        try:
            with conn.cancel_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(conn.run_writer)
                    nursery.start_soon(conn.run_pinger, self._ping_interval, self._pong_timeout)
                    await conn.read_messages(lambda message: self._on_message(conn, message))
                    nursery.cancel_scope.cancel()
        finally:
            self.connections.discard(conn)
            conn.finish()

    def drop(self) -> int:
        """Close every market-data connection; returns how many."""
        for conn in self.connections:
            conn.close(1001, "dropped by simulator")
        return len(self.connections)

    def _on_message(self, conn: MdsConnection, message: str | bytes) -> None:
        try:
            request = json.loads(message)
        except ValueError:
            text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
            _err(conn, "message is not valid JSON", text)
            return
        if not isinstance(request, dict) or request.get("type") not in ("subscribe", "unsubscribe"):
            _err(conn, "expected a subscribe or unsubscribe message", request)
            return
        channels, symbols = request.get("channels"), request.get("symbols")
        if not _str_list(channels) or not _str_list(symbols):
            _err(conn, "channels and symbols must be lists of strings", request)
            return
        known = self._engine.markets
        for channel in channels:
            if channel not in MDS_CHANNELS:
                continue
            for symbol in symbols:
                if symbol != ALL and symbol not in known:
                    continue
                if request["type"] == "unsubscribe":
                    conn.subscriptions.discard((channel, symbol))
                    continue
                conn.subscriptions.add((channel, symbol))
                if channel == "mark_price":
                    for name in known if symbol == ALL else [symbol]:
                        conn.send(self._mark_frame(name))

    def publish_trade(self, trade: PublicTrade) -> None:
        """A public print to every ``trade`` subscriber of its symbol."""
        text = None
        for conn in self.connections:
            if conn.wants("trade", trade.symbol):
                text = text or dumps(trade.frame)
                conn.send(text)

    def pulse(self) -> None:
        """Full top-20 ``level2`` snapshots, ``bbo`` and ``mark_price`` to their subscribers."""
        if not self.connections:
            return
        engine = self._engine
        now = rfc3339(engine.clock())
        for symbol in engine.markets:
            wanted = {
                ch
                for ch in ("level2", "bbo", "mark_price")
                if any(c.wants(ch, symbol) for c in self.connections)
            }
            if not wanted:
                continue
            frames: dict[str, str] = {}
            if wanted & {"level2", "bbo"}:
                bids, asks = engine.book(symbol)
                sequence = engine.next_book_sequence(symbol)
                for channel, depth in (("level2", None), ("bbo", 1)):
                    frames[channel] = dumps(
                        {
                            "type": channel,
                            "symbol": symbol,
                            "bid": [[str(p), str(q)] for p, q in bids[:depth]],
                            "ask": [[str(p), str(q)] for p, q in asks[:depth]],
                            "sequence": sequence,
                            "time": now,
                        }
                    )
            if "mark_price" in wanted:
                frames["mark_price"] = dumps(self._mark_frame(symbol))
            for conn in list(self.connections):
                for channel, text in frames.items():
                    if conn.wants(channel, symbol):
                        conn.send(text)

    def _mark_frame(self, symbol: str) -> dict[str, Any]:
        engine = self._engine
        return {
            "type": "mark_price",
            "symbol": symbol,
            "price": str(engine.mark_price(symbol)),
            "time": rfc3339(engine.clock()),
        }


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _err(conn: WsPeer, message: str, incoming: Any) -> None:
    conn.send(
        {
            "err": {
                "error_code": "InvalidJSONFormat",
                "message": message,
                "incoming_message": incoming,
            }
        }
    )
