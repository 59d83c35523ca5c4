"""The public market-data WebSocket: all ten channels of the MDS AsyncAPI, from the engine (§3).

``level2`` (optionally aggregated by ``sig_figs``), ``bbo``, ``mark_price``, ``funding`` and
``underlier`` are pulsed; ``trade`` is streamed; ``candle`` sends the current bar of each
subscribed interval when it changed; ``open_interest`` and ``minmax_price`` send on change and
once on subscribe; ``market_stats`` a snapshot on subscribe and then every ``pulse_interval``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest

from qfexbot.sim.common.connection import WsPeer, dumps
from qfexbot.sim.qfex.economics import round_step
from qfexbot.sim.qfex.engine import BOOK_DEPTH, Engine
from qfexbot.sim.qfex.market_history import MDS_INTERVALS, CandleBar
from qfexbot.sim.qfex.model import PublicTrade, rfc3339

__all__ = ["FUNDING_INTERVAL", "MDS_CHANNELS", "SIG_FIGS", "MdsGateway"]

MDS_CHANNELS = (
    "level2",
    "bbo",
    "trade",
    "mark_price",
    "candle",
    "funding",
    "underlier",
    "open_interest",
    "minmax_price",
    "market_stats",
)
ALL = "*"
SIG_FIGS = (0, 1, 2)
"""``level2`` aggregation: prices on a grid of tick x 10**sig_figs (bids down, asks up)."""
FUNDING_INTERVAL = 3600.0
"""Funding window length when the config names none (``time_remaining`` counts to its end)."""
FULL_BOOK = 10_000
PULSED = ("level2", "bbo", "mark_price", "candle", "funding", "underlier")

Key = tuple[str, str, Any]
"""A subscription: (channel, symbol or "*", interval for candle / sig_figs for level2 / None)."""


class MdsConnection(WsPeer):
    """One market-data socket and its subscriptions."""

    def __init__(self, ws: Any) -> None:
        super().__init__(ws)
        self.subscriptions: set[Key] = set()
        self.last_sent: dict[tuple[str, str], Any] = {}
        """(channel, symbol) -> the value an on-change channel last sent here."""

    def send_changed(self, channel: str, symbol: str, frame: dict[str, Any]) -> None:
        """Send an on-change channel's frame unless its value is what this socket last got."""
        value = {k: v for k, v in frame.items() if k != "time"}
        if self.last_sent.get((channel, symbol)) != value:
            self.last_sent[(channel, symbol)] = value
            self.send(frame)

    def wants(self, channel: str, symbol: str, param: Any = None) -> bool:
        return (channel, symbol, param) in self.subscriptions or (
            channel,
            ALL,
            param,
        ) in self.subscriptions

    def params(self, channel: str, symbol: str) -> set[Any]:
        """The parameters (intervals, sig_figs) of this connection's subscriptions."""
        return {p for c, s, p in self.subscriptions if c == channel and s in (symbol, ALL)}


class MdsGateway:
    """Accepts market-data connections; pulses books, marks, candles, funding and more.

    Args:
        engine: the books, marks, market history, economics and clock the frames are made of.
        ping_interval, pong_timeout: server pings from the start.
    """

    def __init__(self, engine: Engine, *, ping_interval: float, pong_timeout: float) -> None:
        self._engine = engine
        self._ping_interval = ping_interval
        self._pong_timeout = pong_timeout
        self.connections: set[MdsConnection] = set()
        self._candle_versions: dict[tuple[str, str], tuple[int, int]] = {}
        self._stats_sequence = 0

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

    # ------------------------------------------------------------ subscribe / unsubscribe

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
        try:
            keys = self._keys(request)
        except ValueError as exc:
            _err(conn, str(exc), request)
            return
        if request["type"] == "unsubscribe":
            for key in keys:
                _unsubscribe(conn, key)
            return
        for key in keys:
            if key[2] is None and key[0] == "candle":
                continue  # a candle subscription needs an interval
            conn.subscriptions.add(key)
            self._snapshot(conn, key)

    def _keys(self, request: dict[str, Any]) -> list[Key]:
        """The subscriptions a (un)subscribe message names; unknown channels, symbols and
        intervals are left out (qfex.md §6 #11).

        Raises:
            ValueError: a field of the wrong type (answered with an ``err`` frame).
        """
        channels, symbols = request.get("channels"), request.get("symbols")
        if not _str_list(channels) or not _str_list(symbols):
            raise ValueError("channels and symbols must be lists of strings")
        intervals = request.get("intervals")
        if intervals is not None and not _str_list(intervals):
            raise ValueError("intervals must be a list of strings")
        sig_figs = _sig_figs(request.get("sig_figs"))
        keys: list[Key] = []
        for channel in channels:
            if channel == "candle":
                keys.extend(self._candle_keys(symbols, intervals))
            elif channel == "level2":
                keys.extend((channel, s, f) for s in self._known(symbols) for f in sig_figs)
            elif channel in MDS_CHANNELS:
                keys.extend((channel, s, None) for s in self._known(symbols))
        return keys

    def _known(self, symbols: Iterable[str]) -> list[str]:
        return [s for s in symbols if s == ALL or s in self._engine.markets]

    def _candle_keys(self, symbols: list[str], intervals: list[str] | None) -> list[Key]:
        """Both forms: ``symbols: ["AAPL-USD/1MIN"]`` and ``symbols`` plus ``intervals``."""
        keys: list[Key] = []
        for entry in symbols:
            symbol, _, interval = entry.partition("/")
            if not self._known([symbol]):
                continue
            if interval:
                wanted: list[str | None] = [interval]
            elif intervals is not None:
                wanted = list(intervals)
            else:
                wanted = [None]
            keys.extend(("candle", symbol, i) for i in wanted if i is None or i in MDS_INTERVALS)
        return keys

    def _symbols(self, symbol: str) -> list[str]:
        return list(self._engine.markets) if symbol == ALL else [symbol]

    def _snapshot(self, conn: MdsConnection, key: Key) -> None:
        """What a channel sends right on subscribe (the rest waits for the next pulse)."""
        channel, symbol, param = key
        engine = self._engine
        now = engine.clock()
        if channel == "market_stats":
            conn.send(self._stats_frame(symbol, now))
            return
        for name in self._symbols(symbol):
            frame: dict[str, Any] | None = None
            if channel == "mark_price":
                frame = mark_frame(engine, name, now)
            elif channel in ON_CHANGE:
                conn.last_sent.pop((channel, name), None)  # a subscribe always gets the value
                conn.send_changed(channel, name, ON_CHANGE[channel](engine, name, now))
            elif channel == "candle":
                bar = engine.market_history.candle(name, param)
                frame = candle_frame(name, bar) if bar is not None else None
            if frame is not None:
                conn.send(frame)

    # ------------------------------------------------------------ streaming and pulses

    def publish_trade(self, trade: PublicTrade) -> None:
        """A public print to every ``trade`` subscriber of its symbol."""
        text = None
        for conn in self.connections:
            if conn.wants("trade", trade.symbol):
                text = text or dumps(trade.frame)
                conn.send(text)

    def pulse(self) -> None:
        """Every ``mds_interval``: the pulsed channels, and the on-change ones that changed."""
        if not self.connections:
            return
        now = self._engine.clock()
        engine = self._engine
        for symbol in engine.markets:
            for channel, param, text in self._symbol_frames(symbol, now):
                for conn in list(self.connections):
                    if conn.wants(channel, symbol, param):
                        conn.send(text)
            for channel, build in ON_CHANGE.items():
                subscribers = [c for c in self.connections if c.wants(channel, symbol)]
                if subscribers:
                    frame = build(engine, symbol, now)
                    for conn in subscribers:
                        conn.send_changed(channel, symbol, frame)

    def _symbol_frames(self, symbol: str, now: float) -> list[tuple[str, Any, str]]:
        """(channel, param, encoded frame) of one symbol for this pulse, for wanted channels."""
        wanted: dict[str, set[Any]] = {}
        for conn in self.connections:
            for channel in PULSED:
                wanted.setdefault(channel, set()).update(conn.params(channel, symbol))
        engine = self._engine
        frames: list[tuple[str, Any, dict[str, Any]]] = []
        if wanted["level2"] or wanted["bbo"]:
            frames.extend(self._book_frames(symbol, now, wanted["level2"], bool(wanted["bbo"])))
        if wanted["mark_price"]:
            frames.append(("mark_price", None, mark_frame(engine, symbol, now)))
        if wanted["underlier"]:
            frames.append(("underlier", None, underlier_frame(engine, symbol, now)))
        if wanted["funding"] and engine.economics.is_open(symbol, now):
            frames.append(("funding", None, funding_frame(engine, symbol, now)))
        for interval in wanted["candle"]:
            frame = self._changed_candle(symbol, interval)
            if frame is not None:
                frames.append(("candle", interval, frame))
        return [(channel, param, dumps(frame)) for channel, param, frame in frames]

    def _book_frames(
        self, symbol: str, now: float, level2: set[Any], bbo: bool
    ) -> list[tuple[str, Any, dict[str, Any]]]:
        """Full top-20 ``level2`` snapshots (one per ``sig_figs`` asked for) and the ``bbo``."""
        engine = self._engine
        bids, asks = engine.book(symbol, FULL_BOOK)
        sequence = engine.next_book_sequence(symbol)
        base = {"symbol": symbol, "sequence": sequence, "time": rfc3339(now)}
        frames: list[tuple[str, Any, dict[str, Any]]] = []
        tick = engine.markets[symbol].spec.tick_size
        for sig_figs in level2:
            step = tick * 10 ** (sig_figs or 0)
            frame = {
                "type": "level2",
                **base,
                "bid": _levels(_aggregate(bids, step, ROUND_FLOOR)[:BOOK_DEPTH]),
                "ask": _levels(_aggregate(asks, step, ROUND_CEILING)[:BOOK_DEPTH]),
            }
            if sig_figs is not None:
                frame["sig_figs"] = sig_figs
            frames.append(("level2", sig_figs, frame))
        if bbo:
            frame = {"type": "bbo", **base, "bid": _levels(bids[:1]), "ask": _levels(asks[:1])}
            frames.append(("bbo", None, frame))
        return frames

    def _changed_candle(self, symbol: str, interval: str) -> dict[str, Any] | None:
        """The current candle of (symbol, interval) if it changed since the last pulse."""
        bar = self._engine.market_history.candle(symbol, interval)
        if bar is None:
            return None
        stamp = (bar.start, bar.version)
        if self._candle_versions.get((symbol, interval)) == stamp:
            return None
        self._candle_versions[(symbol, interval)] = stamp
        return candle_frame(symbol, bar)

    def pulse_stats(self) -> None:
        """Every ``pulse_interval``: one ``market_stats`` frame per subscription."""
        now = self._engine.clock()
        for conn in list(self.connections):
            for channel, symbol, _ in list(conn.subscriptions):
                if channel == "market_stats":
                    conn.send(self._stats_frame(symbol, now))

    def _stats_frame(self, symbol: str, now: float) -> dict[str, Any]:
        """BBOs, marks, open interest and daily volume of one symbol or of all (``"*"``)."""
        engine = self._engine
        history = engine.market_history
        self._stats_sequence += 1
        names = self._symbols(symbol)
        bbos = []
        for name in names:
            bids, asks = engine.book(name, 1)
            stamp = rfc3339(now)
            bbos.append({"time": stamp, "symbol": name, "bid": _levels(bids), "ask": _levels(asks)})
        return {
            "type": "market_stats",
            "sequence": self._stats_sequence,
            "time": rfc3339(now),
            "symbol": symbol,
            "bbos": bbos,
            "mark_prices": [_untyped(mark_frame(engine, n, now)) for n in names],
            "open_interests": [_untyped(open_interest_frame(engine, n, now)) for n in names],
            "daily_volumes": [
                {"symbol": n, "volume": str(history.daily_volume(n, now))} for n in names
            ],
        }


# ------------------------------------------------------------ frames


def mark_frame(engine: Engine, symbol: str, now: float) -> dict[str, Any]:
    """``mark_price``: median(best bid, best ask, last trade)."""
    price = engine.mark_price(symbol)
    return {"type": "mark_price", "symbol": symbol, "price": str(price), "time": rfc3339(now)}


def candle_frame(symbol: str, bar: CandleBar) -> dict[str, Any]:
    """``candle``: one bar, prices as strings, USD volume and trade count as integers."""
    return {
        "type": "candle",
        "symbol": symbol,
        "start": rfc3339(bar.start),
        "resolution": bar.resolution,
        "open": str(bar.open),
        "high": str(bar.high),
        "low": str(bar.low),
        "close": str(bar.close),
        "usdVolume": int(bar.usd_volume),
        "trades": bar.trades,
    }


def funding_frame(engine: Engine, symbol: str, now: float) -> dict[str, Any]:
    """``funding``: the implied rate if the window ended now and the seconds left in it."""
    interval = float(getattr(engine.config, "funding_interval", FUNDING_INTERVAL))
    remaining = interval - now % interval
    return {
        "type": "funding",
        "symbol": symbol,
        "funding_rate": str(engine.economics.funding_rate(symbol, now)),
        "time_remaining": int(remaining),
        "time": rfc3339(now),
    }


def underlier_frame(engine: Engine, symbol: str, now: float) -> dict[str, Any]:
    """``underlier``: ``external`` while the market is open, ``internal`` otherwise."""
    economics = engine.economics
    return {
        "type": "underlier",
        "symbol": symbol,
        "price": str(economics.underlier(symbol)),
        "source": "external" if economics.is_open(symbol, now) else "internal",
        "time": rfc3339(now),
    }


def open_interest_frame(engine: Engine, symbol: str, now: float) -> dict[str, Any]:
    """``open_interest``: the sum of long positions, in base units."""
    open_interest = engine.market_history.snapshot(symbol).open_interest
    return {
        "type": "open_interest",
        "symbol": symbol,
        "open_interest": str(open_interest),
        "time": rfc3339(now),
    }


def minmax_frame(engine: Engine, symbol: str, now: float) -> dict[str, Any]:
    """``minmax_price``: the price band limit orders must stay inside."""
    low, high = engine.economics.band(symbol)
    return {
        "type": "minmax_price",
        "symbol": symbol,
        "min_price": str(low),
        "max_price": str(high),
        "time": rfc3339(now),
    }


ON_CHANGE: dict[str, Callable[[Engine, str, float], dict[str, Any]]] = {
    "open_interest": open_interest_frame,
    "minmax_price": minmax_frame,
}
"""Channels sent on change (checked every pulse) and with the latest value on subscribe."""


def _untyped(frame: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in frame.items() if k != "type"}


def _aggregate(
    levels: list[tuple[Decimal, Decimal]], step: Decimal, rounding: str
) -> list[tuple[Decimal, Decimal]]:
    """Levels merged onto the ``step`` grid, best first (bids round down, asks up)."""
    merged: dict[Decimal, Decimal] = {}
    for price, qty in levels:
        grid = round_step(price, step, rounding)
        merged[grid] = merged.get(grid, Decimal(0)) + qty
    return sorted(merged.items(), reverse=rounding == ROUND_FLOOR)


def _levels(levels: Iterable[tuple[Decimal, Decimal]]) -> list[list[str]]:
    return [[str(p), str(q)] for p, q in levels]


def _unsubscribe(conn: MdsConnection, key: Key) -> None:
    """Drop a subscription; without an interval / ``sig_figs`` every variant of it goes."""
    channel, symbol, param = key
    if param is None:
        for held in [k for k in conn.subscriptions if k[:2] == (channel, symbol)]:
            conn.subscriptions.discard(held)
    else:
        conn.subscriptions.discard(key)


def _sig_figs(value: Any) -> list[int | None]:
    """``sig_figs`` as sent (a number or a list of them; absent = plain books)."""
    if value is None:
        return [None]
    values = value if isinstance(value, list) else [value]
    if not values or any(type(v) is not int or v not in SIG_FIGS for v in values):
        raise ValueError("sig_figs must be 0, 1 or 2 (or a list of them)")
    return list(values)


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
