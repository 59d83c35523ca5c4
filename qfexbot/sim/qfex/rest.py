"""The REST API as a plain ASGI app (§4): auth headers, subaccounts, transfers, positions, and
the public market routes (``rest_market``) and private history routes (``rest_user``) it mounts.

Also the sim-only admin routes under ``/_sim/`` (ledger, state, events, faults, price).
"""

from __future__ import annotations

import gc
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import asdict
from decimal import Decimal
from http import HTTPStatus
from typing import Any

import trio

from qfexbot.core.asgi import Receive, Send, answer_lifespan, read_body
from qfexbot.core.logs import get_logger, log_event
from qfexbot.errors import SimulatorError
from qfexbot.sim.common.connection import dumps
from qfexbot.sim.qfex import payloads, rest_market, rest_user
from qfexbot.sim.qfex.auth import Authenticator, AuthFailure
from qfexbot.sim.qfex.config import SimUser
from qfexbot.sim.qfex.engine import Engine
from qfexbot.sim.qfex.faults import Faults
from qfexbot.sim.qfex.model import LedgerEntry, TransferError, rfc3339
from qfexbot.sim.qfex.rest_params import (
    SCHEMA_BASE,
    HttpError,
    Raw,
    Request,
    Scope,
    duration_window,
    match_route,
)

__all__ = ["RestApp"]

log = get_logger(__name__)

TIMEOUT_HOLD = 300.0
FAULTS = (
    "drop_connections",
    "reject_next_auths",
    "fail_next_rest",
    "delay_rest",
    "drop_transfer_response",
    "send_malformed_frame",
    "stop_pulses",
    "resume_pulses",
    "hold_transfers",
    "outside_transfer",
)


class RestApp:
    """ASGI application; one instance per simulator.

    Args:
        engine: the exchange state the venue routes read and change.
        auth: checks every venue route's credentials.
        faults: the pending REST faults, and the knobs of ``/_sim/faults/<name>``.
        equity_interval: seconds between equity samples (reported by account-equity).
        state: the ``/_sim/state`` document.
        set_price: moves a symbol's mid and delivers what it crossed (``/_sim/price``).
    """

    def __init__(
        self,
        engine: Engine,
        auth: Authenticator,
        faults: Faults,
        *,
        equity_interval: float,
        state: Callable[[], dict[str, Any]],
        set_price: Callable[[str, Decimal], None],
    ) -> None:
        self._engine = engine
        self._authenticator = auth
        self._faults = faults
        self._equity_interval = equity_interval
        self._state = state
        self._set_price = set_price

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if body is None:
            return
        request = Request(scope, body)
        try:
            if request.path.startswith("/_sim/"):
                status, payload = self._admin(request)
            else:
                faults = self._faults
                failure = faults.take_rest_failure(request.path)
                if failure is not None:
                    raise HttpError(failure, "failed by fault injection")
                delay = faults.take_rest_delay()
                if delay:
                    await trio.sleep(delay)
                if (request.method, request.path) == ("POST", "/user/transfer"):
                    held = faults.take_transfer_hold()
                    if held is not None:
                        request.held_for = held
                        await trio.sleep(held)
                status, payload = self._route(request)
        except HttpError as exc:
            await _problem(send, exc)
            return
        except _DropResponse as drop:
            await self._drop(scope, receive, drop.mode)
            return
        await _respond(send, status, payload)

    # ------------------------------------------------------------ venue routes

    def _route(self, request: Request) -> tuple[int, Any]:
        key = (request.method, request.path)
        if key == ("GET", "/refdata"):
            rows = [
                payloads.refdata_row(index, market)
                for index, market in enumerate(self._engine.markets.values())
            ]
            ticker = request.query.get("ticker")
            if ticker:
                rows = [r for r in rows if r["symbol"] == ticker]
            history, now = self._engine.market_history, self._engine.clock()
            for row in rows:  # the mark's change over 24 h
                row["price_change_24h"] = str(history.price_change_24h(row["symbol"], now))
            return 200, {"type": "refdata", "data": rows}
        market = match_route(rest_market.ROUTES, request.path)
        if market is not None:
            if request.method != "GET":
                raise HttpError(405, f"no route {request.method} {request.path}")
            handler, params = market
            return handler(self._engine, request, params)
        routes = {
            ("GET", "/user/subaccounts"): self._list_subaccounts,
            ("POST", "/user/subaccounts"): self._create_subaccount,
            ("POST", "/user/transfer"): self._transfer,
            ("GET", "/user/positions"): self._positions,
            ("GET", "/user/account-equity"): self._account_equity,
        }
        handler = routes.get(key)
        user_handler = rest_user.ROUTES.get(key)
        if handler is None and user_handler is None:
            known_path = any(path == request.path for _, path in (*routes, *rest_user.ROUTES))
            raise HttpError(405 if known_path else 404, f"no route {request.method} {request.path}")
        user, account_id = self._authenticate(request)
        if user_handler is not None:
            return user_handler(self._engine, request, account_id)
        assert handler is not None
        return handler(request, user, account_id)

    def _authenticate(self, request: Request) -> tuple[SimUser, str]:
        headers = request.headers
        auth = self._authenticator
        try:
            bearer = headers.get("authorization", "")
            if bearer.lower().startswith("bearer "):
                user = auth.verify_jwt(bearer[7:].strip())
            else:
                names = (
                    "x-qfex-public-key",
                    "x-qfex-nonce",
                    "x-qfex-timestamp",
                    "x-qfex-hmac-signature",
                )
                missing = [n for n in names if n not in headers]
                if missing:
                    raise AuthFailure(f"missing headers {', '.join(missing)}")
                user = auth.verify_hmac(
                    headers["x-qfex-public-key"],
                    headers["x-qfex-nonce"],
                    headers["x-qfex-timestamp"],
                    headers["x-qfex-hmac-signature"],
                )
        except AuthFailure as exc:
            raise HttpError(401, exc.reason) from None
        requested = headers.get("x-qfex-requested-account-id")
        account_id = user.account_id
        if requested:
            if not self._engine.owns(user.account_id, requested.lower()):
                raise HttpError(
                    403,
                    "requested account is not owned by this user",
                    "header.x-qfex-requested-account-id",
                )
            account_id = requested.lower()
        return user, account_id

    def _list_subaccounts(
        self, request: Request, user: SimUser, account_id: str
    ) -> tuple[int, Any]:
        ids = [a for a in self._engine.user_accounts[user.account_id] if a != user.account_id]
        return 200, {
            "$schema": f"{SCHEMA_BASE}/ListSubaccountsResponseBody.json",
            "account_ids": ids,
        }

    def _create_subaccount(
        self, request: Request, user: SimUser, account_id: str
    ) -> tuple[int, Any]:
        request.json()
        new_id = self._engine.create_subaccount(user.account_id)
        log_event(log, logging.INFO, "subaccount created", user=user.account_id, account=new_id)
        return 200, {
            "$schema": f"{SCHEMA_BASE}/CreateSubaccountResponseBody.json",
            "account_id": new_id,
        }

    def _transfer(self, request: Request, user: SimUser, account_id: str) -> tuple[int, Any]:
        src = request.query.get("src_account_id")
        dst = request.query.get("dst_account_id")
        for name, value in (("src_account_id", src), ("dst_account_id", dst)):
            if not value:
                raise HttpError(422, f"required query parameter {name} is missing", f"query.{name}")
        body = request.json()
        amount = body.get("amount") if isinstance(body, dict) else None
        if isinstance(amount, bool) or not isinstance(amount, (int, Decimal)):
            raise HttpError(422, "amount must be a number", "body.amount")
        assert src is not None and dst is not None
        try:
            entry = self._engine.transfer(
                user.account_id,
                src.lower(),
                dst.lower(),
                Decimal(amount),
                held_for=request.held_for,
            )
        except TransferError as exc:
            raise HttpError(exc.status, exc.detail, exc.location) from None
        log_event(
            log,
            logging.INFO,
            "transfer applied",
            id=entry.id,
            src=entry.src,
            dst=entry.dst,
            amount=str(entry.amount),
        )
        mode = self._faults.take_transfer_drop()
        if mode is not None:
            entry.response_dropped = True
            raise _DropResponse(mode)
        return 204, None

    def _positions(self, request: Request, user: SimUser, account_id: str) -> tuple[int, Any]:
        engine = self._engine
        fields = (
            "deposit",
            "realised_pnl",
            "order_margin",
            "position_margin",
            "unrealised_pnl",
            "net_funding",
            "available_balance",
        )
        balance = payloads.balance_response(engine.balance(account_id))
        positions = []
        for figures in engine.positions(account_id):
            payload = payloads.position_response(figures)
            row = {k: v for k, v in payload.items() if k not in ("id", "margin_alloc")}
            row["open_orders"] = int(row["open_orders"])
            positions.append(row)
        return 200, {
            "$schema": f"{SCHEMA_BASE}/PositionsBalanceResponseBody.json",
            "balance": {k: balance[k] for k in fields},
            "positions": positions,
        }

    def _account_equity(self, request: Request, user: SimUser, account_id: str) -> tuple[int, Any]:
        engine = self._engine
        now = engine.clock()
        duration, start = duration_window(request, "duration", now)
        history = [(t, v) for t, v in engine.accounts[account_id].equity_history if t >= start]
        data = [{"value": float(v), "window_start": rfc3339(t)} for t, v in history]
        return 200, {
            "$schema": f"{SCHEMA_BASE}/AccountEquityResponseBody.json",
            "count": len(data),
            "data": data,
            "duration": duration,
            "start": rfc3339(max(start, 0.0)),
            "end": rfc3339(now),
            # int64 in the spec: whole minutes, at least 1 (the tests sample every 0.05 s)
            "interval_minutes": max(1, round(self._equity_interval / 60)),
        }

    # ------------------------------------------------------------ lost responses

    async def _drop(self, scope: Scope, receive: Receive, mode: str) -> None:
        """Send nothing: hold the request until the client gives up, or tear the socket down."""
        if mode == "reset":
            _abort_connection(scope["client"], scope["server"])
        with trio.move_on_after(TIMEOUT_HOLD):
            while (await receive())["type"] != "http.disconnect":
                pass

    # ------------------------------------------------------------ admin

    def _admin(self, request: Request) -> tuple[int, Any]:
        engine = self._engine
        route = request.path[len("/_sim/") :]
        if request.method == "GET" and route == "ledger":
            return 200, {"data": [_ledger_row(e) for e in engine.ledger]}
        if request.method == "GET" and route == "state":
            return 200, self._state()
        if request.method == "GET" and route == "events":
            account_id = request.query.get("account_id", "")
            account = engine.accounts.get(account_id)
            if account is None:
                raise HttpError(404, f"unknown account {account_id!r}", "query.account_id")
            events = [
                {"seq": e.seq, "channel": e.channel, "frame": e.frame} for e in account.events
            ]
            return 200, {"account_id": account_id, "seq": account.event_seq, "events": events}
        if request.method == "POST" and route == "price":
            body = request.json()
            symbol, price = body.get("symbol"), body.get("price")
            if symbol not in engine.markets:
                raise HttpError(422, f"unknown symbol {symbol!r}", "body.symbol")
            if isinstance(price, bool) or not isinstance(price, (int, Decimal, str)):
                raise HttpError(422, "price must be a number", "body.price")
            self._set_price(symbol, Decimal(str(price)))
            return 200, {"symbol": symbol, "mid": str(engine.markets[symbol].mid)}
        if request.method == "POST" and route.startswith("faults/"):
            name = route[len("faults/") :]
            if name not in FAULTS:
                raise HttpError(404, f"unknown fault {name!r}")
            kwargs = request.json()
            if not isinstance(kwargs, dict):
                raise HttpError(422, "body must be an object of keyword arguments", "body")
            try:
                result = getattr(self._faults, name)(
                    **{k: float(v) if isinstance(v, Decimal) else v for k, v in kwargs.items()}
                )
            except (TypeError, ValueError) as exc:
                raise HttpError(422, str(exc), "body") from None
            return 200, {"fault": name, "result": result}
        raise HttpError(404, f"no admin route {request.method} {request.path}")


class _DropResponse(SimulatorError):
    def __init__(self, mode: str) -> None:
        super().__init__(mode)
        self.mode = mode


def _ledger_row(entry: LedgerEntry) -> dict[str, Any]:
    row = asdict(entry)
    row["amount"] = str(entry.amount)
    return row


def _abort_connection(client: tuple[str, int] | None, server: tuple[str, int] | None) -> None:
    """Tear down the TCP connection of this request before any response byte.

    Hypercorn gives an ASGI app no handle on its socket, so the stream is found among live
    ``trio.SocketStream`` objects by its address pair; ``SO_LINGER`` 0 makes the final close a
    reset and ``shutdown`` wakes hypercorn's reader, which then closes the socket itself.
    """
    if client is None or server is None:
        return
    for obj in gc.get_objects():
        if not isinstance(obj, trio.SocketStream):
            continue
        sock = obj.socket
        try:
            if sock.getpeername()[:2] != tuple(client) or sock.getsockname()[:2] != tuple(server):
                continue
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            continue
        return


async def _respond(send: Send, status: int, payload: Any) -> None:
    if status == 204 or payload is None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if not isinstance(payload, Raw):
        payload = Raw("application/json", dumps(payload).encode())
    headers = [
        (b"content-type", payload.content_type.encode()),
        (b"content-length", str(len(payload.body)).encode()),
        *((k.encode(), v.encode()) for k, v in payload.headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload.body})


async def _problem(send: Send, error: HttpError) -> None:
    title = HTTPStatus(error.status).phrase
    problem: dict[str, Any] = {
        "$schema": f"{SCHEMA_BASE}/ErrorModel.json",
        "title": title,
        "status": error.status,
        "detail": error.detail,
        "type": "about:blank",
    }
    if error.location:
        detail: dict[str, Any] = {"location": error.location, "message": error.detail}
        if error.value is not None:
            detail["value"] = error.value
        problem["errors"] = [detail]
    body = dumps(problem).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if error.status == 429:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
