"""The private trade WebSocket: auth, channels, pulses, order commands, rate limits (§1.4, §2)."""

from __future__ import annotations

import json
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest

from qfexbot.core.logs import get_logger, log_event
from qfexbot.sim.common.connection import WsPeer, dumps
from qfexbot.sim.common.ratelimit import RateLimiter
from qfexbot.sim.qfex import payloads
from qfexbot.sim.qfex.auth import Authenticator, AuthFailure
from qfexbot.sim.qfex.config import SimUser
from qfexbot.sim.qfex.engine import Engine
from qfexbot.sim.qfex.model import EVENT_HISTORY, CommandError, Event, Order, PrivateEvent
from qfexbot.sim.qfex.twap import Twap, twap_response

__all__ = ["CHANNELS", "TradeConnection", "TradeGateway"]

log = get_logger(__name__)

CHANNELS = ("order_responses", "stop_orders", "fills", "positions", "balances")


class TradeConnection(WsPeer):
    """One trade socket: its auth state, bound account, channels and cancel-on-disconnect flag."""

    def __init__(self, ws: Any, api_key: str | None, record: dict[str, deque[int]]) -> None:
        super().__init__(ws)
        self.api_key = api_key
        self.user: SimUser | None = None
        self.account_id: str | None = None
        self.channels: set[str] = set()
        self.cancel_on_disconnect = False
        self.nursery: trio.Nursery | None = None
        self._record = record
        """The gateway's per-account record of written private events (``written_seqs``)."""

    def written(self, seq: int) -> None:
        """Record that the bound account's private event ``seq`` reached this socket."""
        if self.account_id is not None:
            record = self._record.get(self.account_id)
            if record is None:
                record = self._record[self.account_id] = deque(maxlen=EVENT_HISTORY)
            record.append(seq)


class TradeGateway:
    """Accepts trade connections and routes account events and pulses to them.

    Args:
        engine: the exchange state commands run against.
        auth: checks the ``auth`` command's credentials.
        limiter: the per-user message budget.
        deliver: routes the events a command produced (to this and the market-data gateway).
        auth_deadline: seconds a connection may stay unauthenticated.
        ping_interval, pong_timeout: server pings once authenticated.
    """

    def __init__(
        self,
        engine: Engine,
        auth: Authenticator,
        limiter: RateLimiter,
        deliver: Callable[[Iterable[Event]], None],
        *,
        auth_deadline: float,
        ping_interval: float,
        pong_timeout: float,
    ) -> None:
        self._engine = engine
        self._authenticator = auth
        self._limiter = limiter
        self._deliver = deliver
        self._auth_grace = auth_deadline
        self._ping_interval = ping_interval
        self._pong_timeout = pong_timeout
        self._commands: dict[str, Callable[[TradeConnection, str, dict[str, Any], Any], None]] = {
            "add_order": self._add_order,
            "cancel_order": self._cancel_order,
            "cancel_all_orders": self._cancel_all_orders,
            "get_user_orders": self._get_user_orders,
            "get_order": self._get_order,
            "cancel_on_disconnect": self._cancel_on_disconnect,
            "set_user_leverage": self._set_user_leverage,
            "get_user_leverage": self._get_user_leverage,
            "get_available_leverage_levels": self._get_available_leverage_levels,
            "modify_order": self._engine_command(Engine.modify_order),
            "close_position": self._engine_command(Engine.close_position),
            "cancel_stop_order": self._engine_command(Engine.cancel_stop_order),
            "modify_stop_order": self._engine_command(Engine.modify_stop_order),
            "get_user_trades": self._get_user_trades,
            "add_twap": self._add_twap,
        }
        self.connections: set[TradeConnection] = set()
        self._written: dict[str, deque[int]] = {}

    def written_seqs(self, account_id: str) -> list[int]:
        """Numbers of the account's private events written to one of its trade sockets, in write
        order (the last ``EVENT_HISTORY``; an event written to two sockets appears twice).

        An event is numbered when the engine makes it, but only these reached a socket before
        that socket's close: frames queued behind the close, or still queued when the client
        closed or vanished, are never written. QFEX does not replay private events, so a client
        can only be expected to receive these (bench/soak.py's delivery check)."""
        return list(self._written.get(account_id, ()))

    # ------------------------------------------------------------ connection lifecycle

    async def handle(self, request: WebSocketRequest) -> None:
        """trio-websocket handler: one task per connection."""
        query = parse_qs(urlsplit(request.path).query)
        api_key = query.get("api_key", [None])[0]
        try:
            ws = await request.accept()
        except ConnectionClosed:
            return
        conn = TradeConnection(ws, api_key, self._written)
        self.connections.add(conn)
        try:
            with conn.cancel_scope:
                async with trio.open_nursery() as nursery:
                    conn.nursery = nursery
                    nursery.start_soon(conn.run_writer)
                    nursery.start_soon(self._auth_deadline, conn, self._auth_grace)
                    await conn.read_messages(lambda message: self._on_message(conn, message))
                    nursery.cancel_scope.cancel()
        finally:
            self.connections.discard(conn)
            conn.finish()
            unexpected = not conn.closed_normally_by_client()
            if conn.cancel_on_disconnect and conn.account_id and unexpected:
                events = self._engine.cancel_all(conn.account_id)
                log_event(
                    log,
                    logging.INFO,
                    "cancel on disconnect",
                    account=conn.account_id,
                    cancelled=len(events),
                )
                self._deliver(events)

    async def _auth_deadline(self, conn: TradeConnection, deadline: float) -> None:
        await trio.sleep(deadline)
        if conn.user is None:
            conn.close(1008, "authentication timeout")

    def drop(self, account_id: str | None = None) -> int:
        """Close every connection (of one account); returns how many."""
        targets = [c for c in self.connections if account_id in (None, c.account_id)]
        for conn in targets:
            conn.close(1001, "dropped by simulator")
        return len(targets)

    def send_raw(self, text: str, account_id: str | None = None) -> int:
        """Send a verbatim frame to every connection (of one account); returns how many."""
        targets = [c for c in self.connections if account_id in (None, c.account_id)]
        for conn in targets:
            conn.send(text)
        return len(targets)

    # ------------------------------------------------------------ fan-out

    def publish(self, event: PrivateEvent) -> None:
        """Deliver an account event to that account's connections subscribed to its channel."""
        text = None
        for conn in self.connections:
            if conn.account_id == event.account_id and event.channel in conn.channels:
                text = text or dumps(event.frame)
                conn.send(text, seq=event.seq)

    def pulse(self) -> None:
        """Send balances and positions snapshots to their subscribers (one per symbol)."""
        engine = self._engine
        cache: dict[str, tuple[str, list[str]]] = {}
        for conn in list(self.connections):
            if conn.account_id is None or not conn.channels & {"balances", "positions"}:
                continue
            if conn.account_id not in cache:
                figures = engine.balance(conn.account_id)
                balance = dumps({"balance_response": payloads.balance_response(figures)})
                positions = [
                    dumps({"position_response": payloads.position_response(p)})
                    for p in engine.positions(conn.account_id)
                ]
                cache[conn.account_id] = (balance, positions)
            balance, positions = cache[conn.account_id]
            if "positions" in conn.channels:
                for text in positions:
                    conn.send(text)
            if "balances" in conn.channels:
                conn.send(balance)

    # ------------------------------------------------------------ messages

    def _on_message(self, conn: TradeConnection, message: str | bytes) -> None:
        try:
            text = message.decode() if isinstance(message, bytes) else message
            request = json.loads(text, parse_float=Decimal)
        except (UnicodeDecodeError, ValueError):
            _err(conn, "InvalidJSONFormat", "message is not valid JSON", _echo_text(message))
            return
        if (
            not isinstance(request, dict)
            or not isinstance(request.get("type"), str)
            or not isinstance(request.get("params"), dict)
        ):
            # ErrResponse.incoming_message is an object or a string: a request that is not an
            # object (a list, a number) is echoed as the text the client sent
            incoming = request if isinstance(request, dict) else text
            _err(
                conn, "InvalidJSONFormat", 'expected {"type": <command>, "params": {...}}', incoming
            )
            return
        kind, params = request["type"], request["params"]
        if kind == "auth":
            self._auth(conn, params, request)
            return
        if conn.user is None or conn.account_id is None:
            _err(conn, "PermissionDenied", "authenticate first", request)
            return
        retry_after = self._limiter.check(conn.user.account_id, kind)
        if retry_after is not None:
            _err(
                conn,
                "RateLimited",
                f"You have exceeded the allowed message rate; retry after {retry_after:.2f}s",
                request,
            )
            return
        try:
            self._command(conn, conn.account_id, kind, params, request)
        except CommandError as exc:
            _err(conn, exc.error_code, exc.message, request)
        except Exception:  # a simulator bug must not take the whole venue down
            log.exception("trade command failed", extra={"fields": {"type": kind}})
            _err(conn, "ServerError", "internal simulator error", request)

    def _auth(self, conn: TradeConnection, params: dict[str, Any], request: dict[str, Any]) -> None:
        if conn.user is not None:
            _err(conn, "AlreadyAuthenticated", "this connection is already authenticated", request)
            return
        auth = self._authenticator
        try:
            hmac_params, token = params.get("hmac"), params.get("jwt")
            if (hmac_params is None) == (token is None):
                raise AuthFailure("exactly one of hmac or jwt is required")
            if hmac_params is not None:
                if not isinstance(hmac_params, dict):
                    raise AuthFailure("hmac must be an object")
                public_key = hmac_params.get("public_key")
                if conn.api_key is not None and conn.api_key != public_key:
                    raise AuthFailure("api_key query parameter does not match public_key")
                user = auth.verify_hmac(
                    public_key,
                    hmac_params.get("nonce"),
                    hmac_params.get("unix_ts"),
                    hmac_params.get("signature"),
                )
            else:
                user = auth.verify_jwt(token)
            account_id = _account(params.get("account_id"), user.account_id)
            if account_id is None or not self._engine.owns(user.account_id, account_id):
                raise AuthFailure("account not owned by this user")
        except AuthFailure as exc:
            log_event(log, logging.INFO, "trade auth refused", reason=exc.reason)
            conn.send({"authenticated": False})
            conn.close(1008, "authentication failed")
            return
        conn.user, conn.account_id = user, account_id
        conn.send({"authenticated": True})
        assert conn.nursery is not None
        conn.nursery.start_soon(conn.run_pinger, self._ping_interval, self._pong_timeout)

    def _command(
        self,
        conn: TradeConnection,
        account_id: str,
        kind: str,
        params: dict[str, Any],
        request: dict[str, Any],
    ) -> None:
        if kind in ("subscribe", "unsubscribe"):
            self._subscribe(conn, kind == "subscribe", params, request)
            return
        command = self._commands.get(kind)
        if command is not None:
            command(conn, account_id, params, request)
        else:
            raise CommandError("InvalidJSONFormat", f"unknown message type {kind!r}")

    def _subscribe(
        self, conn: TradeConnection, subscribe: bool, params: dict[str, Any], request: Any
    ) -> None:
        channels = params.get("channels")
        if not isinstance(channels, list) or not channels:
            raise CommandError("InvalidParameter", "channels must be a non-empty list")
        for channel in channels:
            if channel not in CHANNELS:
                _err(conn, "InvalidParameter", f"unknown channel {channel!r}", request)
            elif subscribe:
                conn.channels.add(channel)
                conn.send({"subscribed": channel})
            else:
                conn.channels.discard(channel)
                conn.send({"unsubscribed": channel})

    def _add_order(
        self, conn: TradeConnection, account_id: str, params: dict[str, Any], request: Any
    ) -> None:
        self._deliver(self._engine.add_order(account_id, params))

    def _cancel_order(
        self, conn: TradeConnection, account_id: str, params: dict[str, Any], request: Any
    ) -> None:
        twap_events = self._engine.twaps.cancel(account_id, params)
        if twap_events is not None:  # cancel_order_id_type twap_id / client_twap_id
            self._deliver(twap_events)
            return
        self._deliver(self._engine.cancel_order(account_id, params))

    def _engine_command(
        self, method: Callable[[Engine, str, dict[str, Any]], list[Event]]
    ) -> Callable[[TradeConnection, str, dict[str, Any], Any], None]:
        """A command whose replies are the engine's events (``order_response`` on the account's
        ``order_responses`` channel, fills, ``stop_order_response``), as ``add_order``."""

        def command(conn: TradeConnection, account_id: str, params: dict[str, Any], _: Any) -> None:
            self._deliver(method(self._engine, account_id, params))

        return command

    def _add_twap(
        self, conn: TradeConnection, account_id: str, params: dict[str, Any], request: Any
    ) -> None:
        self._deliver(self._engine.twaps.add(account_id, params))

    def _cancel_all_orders(
        self, conn: TradeConnection, account_id: str, params: dict[str, Any], request: Any
    ) -> None:
        self._deliver(self._engine.cancel_all(account_id))
        conn.send({"ack": {"incoming_message": request}})

    def _get_user_orders(
        self, conn: TradeConnection, account_id: str, params: dict[str, Any], request: Any
    ) -> None:
        limit = _int_param(params, "limit", 1000, 1, 1000)
        offset = _int_param(params, "offset", 0, 0, None)
        symbol = params.get("symbol")
        engine, only = self._engine, symbol if isinstance(symbol, str) else None
        stops = engine.open_stops(account_id, only)
        orders = sorted([*engine.open_orders(account_id, only), *stops], key=lambda o: o.arrival)
        page = orders[offset : offset + limit]
        stop_ids = {o.order_id for o in stops}
        twaps = [t for t in engine.twaps.active(account_id) if only is None or t.symbol == only]
        conn.send(_all_orders(page, [o for o in page if o.order_id in stop_ids], twaps))

    def _get_order(
        self, conn: TradeConnection, account_id: str, params: dict[str, Any], request: Any
    ) -> None:
        """One ``order_response`` to the asking connection only (qfex.md §6 #7, revised: the
        vendor's client reads it so): the order's current state, finished orders included;
        an unknown id gets ``NO_SUCH_ORDER`` as cancel_order does."""
        order_id, symbol = params.get("order_id"), params.get("symbol")
        if not isinstance(order_id, str) or not order_id:
            raise CommandError("InvalidParameter", "missing parameter order_id")
        if symbol is not None and not isinstance(symbol, str):
            raise CommandError("InvalidJSONFormat", "symbol must be a string")
        engine = self._engine
        order = engine.find_order(account_id, order_id, symbol)
        if order is None:
            reply = payloads.missing_order_response(
                account_id, symbol or "", engine.clock(), order_id=order_id, client_order_id=""
            )
        else:
            reply = payloads.order_response(order, order.status)
        conn.send({"order_response": reply})

    def _cancel_on_disconnect(
        self, conn: TradeConnection, account_id: str, params: dict[str, Any], request: Any
    ) -> None:
        flag = params.get("cancel_on_disconnect")
        if not isinstance(flag, bool):
            raise CommandError("InvalidParameter", "cancel_on_disconnect must be a boolean")
        conn.cancel_on_disconnect = flag
        conn.send({"ack": {"incoming_message": request}})

    def _set_user_leverage(
        self, conn: TradeConnection, account_id: str, params: dict[str, Any], request: Any
    ) -> None:
        self._engine.set_leverage(account_id, params.get("symbol"), params.get("leverage"))
        conn.send({"ack": {"incoming_message": request}})

    def _get_user_leverage(
        self, conn: TradeConnection, account_id: str, params: dict[str, Any], request: Any
    ) -> None:
        # limit/offset are `number` in the spec (get_user_orders has `integer`): whole numbers
        # written as 10 or 10.0 are both accepted; same bounds as get_user_orders [I]
        limit = _int_param(params, "limit", 1000, 1, 1000, integral=True)
        offset = _int_param(params, "offset", 0, 0, None, integral=True)
        rows = [payloads.leverage_row(f) for f in self._engine.leverages(account_id)]
        conn.send({"user_leverage_response": rows[offset : offset + limit]})

    def _get_available_leverage_levels(
        self, conn: TradeConnection, account_id: str, params: dict[str, Any], request: Any
    ) -> None:
        """Every symbol's allowed levels, one row each, paged like ``get_user_leverage``."""
        limit = _int_param(params, "limit", 1000, 1, 1000, integral=True)
        offset = _int_param(params, "offset", 0, 0, None, integral=True)
        rows = [payloads.leverage_row(f) for f in self._engine.available_leverage_levels()]
        conn.send({"available_leverage_levels_response": rows[offset : offset + limit]})

    def _get_user_trades(
        self, conn: TradeConnection, account_id: str, params: dict[str, Any], request: Any
    ) -> None:
        """The account's trades, newest first, to the asking connection (qfex.md §6 #5, Q9):
        ``limit`` 1..1000 (default 1000), ``offset`` >= 0, ``order_id``, ``start_ts`` / ``end_ts``
        (Unix seconds, inclusive)."""
        limit = _int_param(params, "limit", 1000, 1, 1000)
        offset = _int_param(params, "offset", 0, 0, None)
        order_id = params.get("order_id")
        if order_id is not None and not isinstance(order_id, str):
            raise CommandError("InvalidJSONFormat", "order_id must be a string")
        start, end = _optional_int(params, "start_ts"), _optional_int(params, "end_ts")
        trades = self._engine.user_trades(account_id, order_id=order_id, start=start, end=end)
        rows = [payloads.user_trade_row(t) for t in trades[offset : offset + limit]]
        conn.send({"user_trades_response": rows})


def _err(conn: WsPeer, code: str, message: str, incoming: Any) -> None:
    conn.send({"err": {"error_code": code, "message": message, "incoming_message": incoming}})


def _echo_text(message: str | bytes) -> str:
    if isinstance(message, bytes):
        return message.decode("utf-8", "replace")
    return message


def _account(value: Any, primary: str) -> str | None:
    if value is None or value == "":
        return primary
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _int_param(
    params: dict[str, Any],
    name: str,
    default: int,
    low: int,
    high: int | None,
    *,
    integral: bool = False,
) -> int:
    """An integer parameter; ``integral`` also takes a whole-valued number such as ``10.0``."""
    value = params.get(name, default)
    if integral and isinstance(value, Decimal) and value.is_finite() and value == int(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandError("InvalidJSONFormat", f"{name} must be an integer")
    if value < low or (high is not None and value > high):
        raise CommandError("InvalidParameter", f"{name} out of range")
    return value


def _optional_int(params: dict[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandError("InvalidJSONFormat", f"{name} must be an integer")
    return value


def _all_orders(orders: list[Order], stops: list[Order], twaps: list[Twap]) -> dict[str, Any]:
    """The ``all_orders_response``: open orders and waiting stops in ``orders`` (changelog
    2025-10-30), TP/SL stops also as ``stop_orders`` rows (STOP_MARKET has no such row, Q29),
    the account's active TWAPs as ``twaps``."""
    rows = [payloads.order_response(o, o.status) for o in orders]
    stop_rows = [payloads.stop_order_response(o) for o in stops if o.order_type != "STOP_MARKET"]
    twap_rows = [twap_response(t) for t in twaps]
    return {"all_orders_response": {"orders": rows, "twaps": twap_rows, "stop_orders": stop_rows}}
