"""Finery simulator servers: header-authenticated WebSocket feeds/requests and the signed REST API.

The WebSocket server is trio-websocket; the REST API is a small ASGI app served by hypercorn's
trio worker. Both share one :class:`FineryEngine`, one nonce book per key and the
:class:`FineryFaults`.
Behaviour the protocol leaves open follows protocol/finery.md §7 (see docs/venues/finery.md).
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio
from hypercorn.trio import serve as hypercorn_serve
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from qfexbot.core.asgi import Receive, Send, answer_lifespan, hypercorn_config, read_body
from qfexbot.core.logs import get_logger, log_event
from qfexbot.sim.finery.config import FinerySimClient, FinerySimConfig
from qfexbot.sim.finery.engine import EngineError, FineryEngine, Notice, is_int
from qfexbot.sim.finery.house import HouseMaker
from qfexbot.sim.finery.settlement import SETTLEMENT_METHODS, Settlements
from qfexbot.sim.finery.signature import signature_matches

__all__ = ["HOUSE_KEY", "FineryFaults", "FinerySimulator", "FineryUrls"]

HOUSE_KEY = "house-maker"
"""API key of the house maker client a simulator with ``config.house`` adds (random secret)."""

log = get_logger(__name__)

SUPPORTED_FEEDS = {"I", "B", "F", "MD", "O", "K", "L", "S", "R", "N"}
KNOWN_FEEDS = SUPPORTED_FEEDS | {"P", "G", "M"}
_OUTBOX = 10_000
EXPIRY_SWEEP = 1.0
"""Seconds between sweeps for settlement requests past their ``cancelTimestamp``."""


@dataclass(frozen=True)
class FineryUrls:
    """Where the simulator listens: ``ws_url`` like ``ws://127.0.0.1:P/ws``, REST base URL."""

    ws_url: str
    rest_url: str

    def as_dict(self) -> dict[str, str]:
        """The URLs by name, as the ``READY`` line of ``qfexbot sim --venue finery`` prints them."""
        return {"ws_url": self.ws_url, "rest_url": self.rest_url}


@dataclass
class _Binding:
    feed: str
    feed_id: Any  # exactly as the client sent it (echoed back), 0 when absent
    target: str | None  # resolved instrument / currency name, None = all
    acting: int  # the client whose view this is (a master's sub-account with clientId)
    last_levels: list[dict[int, int]] | None = None
    makers: frozenset[int] | None = None  # MD: only these makers' orders


@dataclass
class _Conn:
    id: int
    client: FinerySimClient
    ws: WebSocketConnection
    send: trio.MemorySendChannel[str]
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    bindings: dict[tuple[str, str], _Binding] = field(default_factory=dict)


@dataclass(frozen=True)
class _LostAnswer:
    method: str | None
    hold: float
    close: bool


class FineryFaults:
    """Fault injection (same vocabulary as the QFEX simulator's ``sim.faults``)."""

    def __init__(self, sim: FinerySimulator) -> None:
        self._sim = sim
        self.auth_rejections: list[int] = []
        self.rest_failures: list[tuple[int, str | None]] = []
        self.lost_answers: list[_LostAnswer] = []

    def drop_connections(self, client_id: int | None = None) -> int:
        """Close every WS connection (of one client); cancel-on-disconnect applies.

        Returns:
            How many connections were closed.
        """
        conns = self._sim.connections(client_id)
        for conn in conns:
            conn.scope.cancel()
        return len(conns)

    def reject_next_auths(self, n: int = 1, code: int = 14) -> None:
        """Refuse the next ``n`` WS handshakes (HTTP 401, body ``{"error": code}``)."""
        self.auth_rejections.extend([code] * n)

    def fail_next_rest(self, n: int = 1, status: int = 500, method: str | None = None) -> None:
        """Fail the next ``n`` REST calls (of ``method``) with HTTP ``status`` before applying."""
        self.rest_failures.extend([(status, method)] * n)

    def lose_next_answers(
        self, n: int = 1, *, method: str | None = None, hold: float = 30.0, close: bool = False
    ) -> None:
        """Apply the next ``n`` requests (of ``method``) but lose their answers.

        Over WS the reply is never sent (``close``: the connection is dropped instead, so
        cancel-on-disconnect applies); over REST the response is held ``hold`` seconds (the
        client times out first) and then is HTTP 504 ``{"error": 10}``, saying nothing of the
        outcome. What the venue did is only learnt from its state (feeds, queries).
        """
        self.lost_answers.extend([_LostAnswer(method, hold, close)] * n)

    def take_lost_answer(self, method: str) -> _LostAnswer | None:
        """The loss planned for this request of ``method``, if any (consumed)."""
        for index, loss in enumerate(self.lost_answers):
            if loss.method in (None, method):
                return self.lost_answers.pop(index)
        return None

    def send_malformed_frame(self, client_id: int | None = None) -> None:
        """Send a frame that is not JSON to every connection (of one client)."""
        for conn in self._sim.connections(client_id):
            self._sim.push(conn, '["O", 0, "D", [not json')

    def backend_status(self, code: int) -> None:
        """Send ``['X',0,'Z',code]`` to everyone; non-zero drops every binding until 0 again."""
        self._sim.set_backend_status(code)


class _NonceBook:
    """Nonce rules per key: unique within ``window`` seconds (or strictly increasing)."""

    def __init__(self, window: float, strict: bool) -> None:
        self.window = window
        self.strict = strict
        self.seen: dict[str, dict[int, float]] = {}
        self.last: dict[str, int] = {}

    def accept(self, key: str, nonce: int, now: float) -> bool:
        seen = self.seen.setdefault(key, {})
        for old in [n for n, t in seen.items() if now - t > self.window]:
            del seen[old]
        if nonce in seen or (self.strict and nonce <= self.last.get(key, -1)):
            return False
        seen[nonce] = now
        self.last[key] = max(nonce, self.last.get(key, -1))
        return True


class FinerySimulator:
    """A local Finery Markets venue.

    ``await nursery.start(sim.serve, "127.0.0.1")`` returns :class:`FineryUrls`; cancelling the
    nursery stops it. ``sim.faults`` injects failures; ``sim.engine`` exposes the state. With
    ``config.house`` the simulator adds a maker client (``sim.house``, the next free client id)
    and ``serve`` quotes every book with it before reporting started.

    Args:
        config: clients and tunables.
        clock: seconds since the epoch, for timestamps and the nonce window (injectable).
    """

    def __init__(self, config: FinerySimConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.house: FinerySimClient | None = None
        if config.house is not None:
            free = max(c.client_id for c in config.clients) + 1
            self.house = FinerySimClient(HOUSE_KEY, secrets.token_hex(16), free, "maker")
            config = config.replace(clients=(*config.clients, self.house))
        self.config = config
        self.clock = clock
        self.engine = FineryEngine(config, clock_ms=lambda: int(self.clock() * 1000))
        self.settlements = Settlements(self.engine)
        self.faults = FineryFaults(self)
        self.backend_code = 0
        self._by_key = {c.key: c for c in config.clients}
        self._nonces = _NonceBook(config.nonce_window, config.strict_nonce)
        self._conns: dict[int, _Conn] = {}
        self._conn_ids = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle

    async def serve(
        self,
        host: str = "127.0.0.1",
        *,
        ws_port: int = 0,
        rest_port: int = 0,
        task_status: trio.TaskStatus[FineryUrls] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run both servers until cancelled; reports their URLs through ``task_status``."""
        async with trio.open_nursery() as nursery:
            ws_server = await nursery.start(
                partial(
                    serve_websocket,
                    self._handle_ws,
                    host,
                    ws_port,
                    None,
                    handler_nursery=nursery,
                    message_queue_size=256,
                )
            )
            cfg = hypercorn_config(host, rest_port, logger=None, graceful_timeout=0.1)
            binds = await nursery.start(partial(hypercorn_serve, self._asgi, cfg, mode="asgi"))
            ws_port_bound = ws_server.port
            urls = FineryUrls(ws_url=f"ws://{host}:{ws_port_bound}/ws", rest_url=binds[0])
            if self.house is not None:
                assert self.config.house is not None
                quoting = self.config.house
                maker = HouseMaker(
                    self,
                    self.house,
                    interval=quoting.interval,
                    seed=quoting.seed,
                    levels=quoting.levels,
                    spread=quoting.spread,
                )
                await nursery.start(maker.run)
            nursery.start_soon(self._expire_requests)
            log_event(
                log,
                logging.INFO,
                "finery sim listening",
                ws_url=urls.ws_url,
                rest_url=urls.rest_url,
            )
            task_status.started(urls)

    async def _expire_requests(self) -> None:
        """Withdraw expired settlement requests once a second (and before settlement calls)."""
        while True:
            await trio.sleep(EXPIRY_SWEEP)
            self._publish(self.settlements.expire())

    def connections(self, client_id: int | None = None) -> list[_Conn]:
        """Open WS connections (of one client)."""
        return [
            c for c in self._conns.values() if client_id is None or c.client.client_id == client_id
        ]

    # ------------------------------------------------------------------ authentication

    def _authenticate(
        self, key: str | None, signature: str | None, signed: bytes, content: Any
    ) -> tuple[FinerySimClient | None, int]:
        """``(client, 0)`` or ``(None, error code)`` for a signed message."""
        client = self._by_key.get(key or "")
        if client is None:
            return None, 3
        if not signature_matches(client.secret, signed, signature):
            return None, 14
        if not isinstance(content, dict):
            return None, 9
        nonce, ts = content.get("nonce"), content.get("timestamp")
        if not is_int(nonce) or nonce < 0:
            return None, 6
        if not is_int(ts):
            return None, 7
        now = self.clock()
        if abs(now - ts / 1000) > self.config.timestamp_tolerance:
            return None, 7
        if not self._nonces.accept(client.key, nonce, now):
            return None, 6
        return client, 0

    # ------------------------------------------------------------------ WebSocket

    async def _handle_ws(self, request: WebSocketRequest) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        content_text = headers.get("efx-content", "")
        try:
            content = json.loads(content_text)
        except ValueError:
            content = None
        if self.faults.auth_rejections:
            client, code = None, self.faults.auth_rejections.pop(0)
        else:
            client, code = self._authenticate(
                headers.get("efx-key"),
                headers.get("efx-sign"),
                content_text.encode("utf-8"),
                content,
            )
        if client is None:
            log_event(log, logging.INFO, "finery sim handshake rejected", error=code)
            await request.reject(
                401,
                extra_headers=[(b"Content-Type", b"application/json")],
                body=json.dumps({"error": code}).encode(),
            )
            return
        ws = await request.accept()
        send, receive = trio.open_memory_channel[str](_OUTBOX)
        conn = _Conn(next(self._conn_ids), client, ws, send)
        self._conns[conn.id] = conn
        self.push(conn, ["X", 0, "Z", self.backend_code])
        try:
            with conn.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer, ws, receive)
                    await self._reader(conn)
                    nursery.cancel_scope.cancel()
        finally:
            del self._conns[conn.id]
            self._publish(self.engine.cancel_connection(conn.id))
            send.close()
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await ws.aclose()

    async def _writer(
        self, ws: WebSocketConnection, receive: trio.MemoryReceiveChannel[str]
    ) -> None:
        async with receive:
            async for frame in receive:
                try:
                    await ws.send_message(frame)
                except ConnectionClosed:
                    return

    async def _reader(self, conn: _Conn) -> None:
        while True:
            with trio.move_on_after(self.config.idle_timeout) as idle:
                try:
                    text = await conn.ws.get_message()
                except ConnectionClosed:
                    return
            if idle.cancelled_caught:
                log_event(log, logging.INFO, "finery sim idle timeout", conn=conn.id)
                return
            self._on_message(conn, text)

    def push(self, conn: _Conn, frame: Any) -> None:
        """Queue a frame for one connection; a connection that cannot keep up is dropped."""
        text = frame if isinstance(frame, str) else json.dumps(frame, separators=(",", ":"))
        try:
            conn.send.send_nowait(text)
        except trio.WouldBlock:
            conn.scope.cancel()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def _on_message(self, conn: _Conn, text: str | bytes) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            self.push(conn, {"event": "error", "error": 9})
            return
        if not isinstance(message, dict):
            self.push(conn, {"event": "error", "error": 9})
            return
        event = message.get("event")
        if event == "ping":
            return
        if event in ("bind", "unbind"):
            self._bind(conn, message, event == "bind")
        elif event == "request":
            self._ws_request(conn, message)
        elif event == "auth":
            self.push(conn, {"event": "auth", "error": 4})
        else:
            self.push(conn, {"event": event, "error": 8})

    def _ws_request(self, conn: _Conn, message: dict[str, Any]) -> None:
        req_id = message.get("reqId")
        content = message.get("content", {})
        if not isinstance(content, dict):
            self.push(conn, {"event": "request", "reqId": req_id, "error": 9, "param": "content"})
            return
        method = str(message.get("method"))
        try:
            reply = self._call(conn.client, method, content, conn.id)
        except EngineError as exc:
            body: dict[str, Any] = {"event": "request", "reqId": req_id, "error": exc.code}
            if exc.param:
                body["param"] = exc.param
            self.push(conn, body)
            return
        loss = self.faults.take_lost_answer(method)
        if loss is not None:
            log_event(log, logging.INFO, "finery sim lost an answer", method=method, conn=conn.id)
            if loss.close:
                conn.scope.cancel()
            return
        self.push(conn, {"event": "request", "reqId": req_id, "reply": reply})

    # ------------------------------------------------------------------ feeds

    def _bind(self, conn: _Conn, message: dict[str, Any], bind: bool) -> None:
        feed = message.get("feed")
        feed_id = message.get("feedId", 0)
        echo = feed_id
        if not isinstance(feed, str) or feed not in KNOWN_FEEDS:
            self.push(conn, [feed, echo, "Z", 102])
            return
        key = (feed, json.dumps(feed_id, sort_keys=True))
        if not bind:
            if conn.bindings.pop(key, None) is None:
                self.push(conn, [feed, echo, "Z", 101])
            else:
                self.push(conn, [feed, echo, "U", 0])
            return
        if feed not in SUPPORTED_FEEDS:
            self.push(conn, [feed, echo, "Z", 1])
            return
        if self.backend_code:
            self.push(conn, [feed, echo, "Z", 2])
            return
        if key in conn.bindings:
            self.push(conn, [feed, echo, "Z", 100])
            return
        try:
            binding = self._resolve_binding(conn.client, feed, feed_id)
        except EngineError as exc:
            self.push(conn, [feed, echo, "Z", exc.code])
            return
        conn.bindings[key] = binding
        self.push(conn, [feed, echo, "S", self._snapshot(conn, binding)])

    def _resolve_binding(self, client: FinerySimClient, feed: str, feed_id: Any) -> _Binding:
        """What a bind means: the instrument/currency filtered on and whose view it is.

        ``F``/``MD`` take ``{"instrument", "clientId"?}`` objects (§3.1); ``MD`` also
        ``"makers"``. A master's ``O``/``K`` bind may be ``{"clientId", "instrument"?}`` /
        ``{"clientId", "currency"?}`` for a sub-account's orders/positions (by analogy, [I]).
        """
        target: str | None = None
        acting = client.client_id
        makers: frozenset[int] | None = None
        try:
            ident = feed_id
            if isinstance(feed_id, dict):
                if feed not in ("F", "MD", "O", "K"):
                    raise EngineError(103)
                acting = self.engine.acting_client(client, feed_id).client_id
                ident = feed_id.get("currency" if feed == "K" else "instrument", 0)
            elif feed == "MD":
                raise EngineError(103)
            if feed == "MD" and "makers" in feed_id:
                listed = feed_id["makers"]
                if not isinstance(listed, list) or not all(is_int(m) for m in listed):
                    raise EngineError(103)
                makers = frozenset(listed)
            if feed in ("B", "F", "MD") or (feed == "O" and ident != 0):
                target = self.engine.instrument(ident)
            elif feed in ("K", "S") and ident != 0:
                target = self.engine.currency(ident)
        except EngineError as exc:
            raise EngineError(3 if exc.code == 3 else 103) from None
        return _Binding(feed, feed_id, target, acting, makers=makers)

    def _book(self, binding: _Binding) -> list[list[list[int]]]:
        """The levels a ``B``/``F``/``MD`` binding shows (F and MD: what its client can hit)."""
        assert binding.target is not None
        if binding.feed == "B":
            return self.engine.levels(binding.target)
        return self.engine.levels(binding.target, exclude=binding.acting, makers=binding.makers)

    def _snapshot(self, conn: _Conn, binding: _Binding) -> Any:
        engine, me = self.engine, binding.acting
        if binding.feed == "I":
            return [engine.currency_arrays(), engine.instrument_arrays()]
        if binding.feed in ("B", "MD"):
            return self._book(binding)
        if binding.feed == "F":
            levels = self._book(binding)
            binding.last_levels = [dict(map(tuple, side)) for side in levels]  # type: ignore[misc]
            return levels
        if binding.feed == "O":
            return [
                o.array()
                for o in sorted(engine.orders.values(), key=lambda o: o.id)
                if o.owner == me and binding.target in (None, o.instrument)
            ]
        if binding.feed == "K":
            return [p for p in engine.position_arrays(me) if binding.target in (None, p[0])]
        if binding.feed in ("S", "R", "N"):
            return self.settlements.snapshot(binding.feed, me, binding.target)
        return engine.limit_objects(me)  # "L"

    def _publish(self, notices: list[Notice]) -> None:
        """Deliver engine notices and book changes to the bound connections."""
        for notice in notices:
            for conn in self.connections():
                for binding in conn.bindings.values():
                    if (
                        binding.acting == notice.client_id
                        and binding.feed == notice.feed
                        and binding.target in (None, notice.key)
                    ):
                        self.push(conn, [notice.feed, binding.feed_id, notice.action, notice.data])
        changed, self.engine.books_changed = self.engine.books_changed, set()
        for instrument in sorted(changed):
            for conn in self.connections():
                for binding in conn.bindings.values():
                    if binding.target != instrument:
                        continue
                    if binding.feed in ("B", "MD"):  # current doc: B (and MD) send snapshots
                        self.push(conn, [binding.feed, binding.feed_id, "S", self._book(binding)])
                    elif binding.feed == "F":
                        self._push_book_updates(conn, binding)

    def _push_book_updates(self, conn: _Conn, binding: _Binding) -> None:
        levels = self._book(binding)
        new = [{p: s for p, s in side} for side in levels]
        old = binding.last_levels or [{}, {}]
        binding.last_levels = new
        sides = [_diff(old[i], new[i], is_bid=i == 0) for i in (0, 1)]
        if any(sides):
            self.push(conn, ["F", binding.feed_id, "M", sides])

    def set_backend_status(self, code: int) -> None:
        """Announce the venue backend status; a non-zero code loses every binding."""
        self.backend_code = code
        for conn in self.connections():
            if code:
                conn.bindings.clear()
            self.push(conn, ["X", 0, "Z", code])

    # ------------------------------------------------------------------ requests

    def act(self, client: FinerySimClient, method: str, content: dict[str, Any]) -> Any:
        """Run one API method for ``client`` in-process, as its REST request would be run.

        For clients that live inside the simulator (the embedded house maker): no signature,
        no REST fault injection; the same validation, engine call and feed publishing.

        Raises:
            EngineError: the venue error the request would have been answered with.
        """
        return self._call(client, method, content, None)

    def _call(
        self, client: FinerySimClient, method: str, content: dict[str, Any], conn_id: int | None
    ) -> Any:
        """Run one API method for ``client`` (WS and REST share this)."""
        if self.backend_code:
            raise EngineError(2)
        engine = self.engine
        if method == "add":
            reply, notices = engine.add(client, content, conn_id=conn_id)
        elif method == "del":
            reply, notices = engine.delete(client, content)
        elif method == "delAll":
            reply, notices = engine.delete_all(client, content)
        elif method == "mod":
            reply, notices = engine.modify(client, content)
        elif method == "book":
            return engine.book(client, content)
        elif method == "positions":
            reply = engine.positions_reply(client)
            reply[3] = self.settlements.legacy_orders(client.client_id)
            return reply
        elif method == "instruments":
            return engine.instruments_reply()
        elif method == "dealHistory":
            return engine.deal_history(client, content)
        elif method == "climits":
            return engine.limit_objects(client.client_id)
        elif method in SETTLEMENT_METHODS:
            self._publish(self.settlements.expire())
            reply, notices = self.settlements.call(client, method, content)
        else:
            raise EngineError(8)
        self._publish(notices)
        return reply

    async def _asgi(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if body is None:
            return
        status, reply, method = self._rest(scope, body)
        loss = self.faults.take_lost_answer(method) if status == 200 else None
        if loss is not None:
            log_event(log, logging.INFO, "finery sim lost an answer", method=method)
            await trio.sleep(loss.hold)
            status, reply = 504, {"error": 10}
        payload = json.dumps(reply, separators=(",", ":")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _rest(self, scope: dict[str, Any], body: bytes) -> tuple[int, Any, str]:
        """``(HTTP status, JSON answer, method)`` of one REST request, applied."""
        path: str = scope["path"]
        if scope["method"] != "POST" or not path.startswith("/api/"):
            return 404, {"error": 8}, ""
        method = path[len("/api/") :]
        for index, (status, only) in enumerate(self.faults.rest_failures):
            if only in (None, method):
                del self.faults.rest_failures[index]
                return status, {"error": 10}, method
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            content = json.loads(body)
        except ValueError:
            content = None
        client, code = self._authenticate(
            headers.get("efx-key"), headers.get("efx-sign"), method.encode() + body, content
        )
        if client is None:
            return 400, {"error": code}, method
        assert isinstance(content, dict)
        params = {k: v for k, v in content.items() if k not in ("nonce", "timestamp", "cod")}
        try:
            return 200, self._call(client, method, params, None), method
        except EngineError as exc:
            error: dict[str, Any] = {"error": exc.code}
            if exc.param:
                error["param"] = exc.param
            return 400, error, method


def _diff(old: dict[int, int], new: dict[int, int], *, is_bid: bool) -> list[list[Any]]:
    """``+``/``M``/``-`` updates (``~`` when only top levels vanished) from ``old`` to ``new``."""

    def better(a: int, b: int) -> bool:
        return a > b if is_bid else a < b

    updates: list[list[Any]] = []
    removed = [p for p in old if p not in new]
    top = (max(new) if is_bid else min(new)) if new else None
    if removed and (top is None or all(better(p, top) for p in removed)):
        if top is None:
            updates.append(["~", 0, 0])
        else:
            updates.append(["~", top, new[top]])
        removed = []
    else:
        top = None
    for price in removed:
        updates.append(["-", price, old[price]])
    for price, size in new.items():
        if price == top:
            continue
        if price not in old:
            updates.append(["+", price, size])
        elif old[price] != size:
            updates.append(["M", price, size])
    return updates
