"""The operator console: the dashboard page and the JSON control API under ``/api/``.

Served by the ops endpoint (``qfexbot.ops.endpoint``). Read views (``GET /api/status``,
``/api/journal``, ``/api/orders``, ``/api/equity``, ``/api/events`` as server-sent events) need
no token; state-changing calls (``POST /api/pause``, ``/api/resume``, ``/api/resolve``,
``/api/plugins/enable``) need
``Authorization: Bearer <token>``, a JSON body, and no foreign ``Origin``: the token lives in a
header (never a cookie), so another site's page cannot make the browser send it (CSRF).
The page's files are package data beside this module: no CDN, no build step.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

import trio

from qfexbot.core.asgi import read_body
from qfexbot.core.dispatch import PluginStateError
from qfexbot.core.logs import get_logger, log_event
from qfexbot.errors import QfexbotError
from qfexbot.money import killswitch
from qfexbot.money.journal import EntryKind, EntryState, InvalidTransition
from qfexbot.ops.status import status_snapshot
from qfexbot.ops.view import RuntimeView

__all__ = ["Console", "ConsoleError"]

log = get_logger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

EVENTS_EVERY = 1.0
"""Seconds between two status documents on ``/api/events``."""
JOURNAL_LIMIT = 200
EQUITY_TIMEOUT = 10.0
"""Seconds the venue may take to answer an equity history read."""
_STATIC = {
    "/": ("index.html", b"text/html; charset=utf-8"),
    "/console/console.js": ("console.js", b"text/javascript; charset=utf-8"),
    "/console/console.css": ("console.css", b"text/css; charset=utf-8"),
}
_JSON = b"application/json"
_IN_DOUBT = (EntryState.PENDING, EntryState.SENT, EntryState.UNKNOWN)


class ConsoleError(QfexbotError):
    """A control call refused: HTTP ``status`` and the message the operator reads."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Console:
    """Answers ``/``, ``/console/*`` and ``/api/*`` for a running process.

    ``token`` is the bearer token of the control calls (None: every control call is refused
    with 401; read views stay open).
    """

    def __init__(self, runtime: RuntimeView, token: str | None) -> None:
        self.runtime = runtime
        self._token = token

    def __repr__(self) -> str:
        return f"Console(token={'set' if self._token else 'none'})"

    def handles(self, path: str) -> bool:
        """Whether ``path`` is the console's (the page, its files or the API)."""
        return path in _STATIC or path.startswith("/api/")

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        try:
            if path in _STATIC:
                _require(method in ("GET", "HEAD"), 405, "method not allowed: use GET")
                name, content_type = _STATIC[path]
                body = resources.files(__package__).joinpath(name).read_bytes()
                await respond(send, 200, content_type, body, cache=False)
            elif path == "/api/events":
                _require(method == "GET", 405, "method not allowed: use GET")
                await self._events(receive, send)
            elif method in ("GET", "HEAD"):
                await respond_json(send, 200, await self._read(path, scope))
            elif method == "POST":
                await self._control(path, scope, receive, send)
            else:
                raise ConsoleError(405, "method not allowed: read views are GET, controls POST")
        except ConsoleError as exc:
            await respond_json(send, exc.status, {"error": str(exc)})

    async def _read(self, path: str, scope: dict[str, Any]) -> Any:
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        if path == "/api/status":
            return await status_snapshot(self.runtime, history=query.get("history") == "1")
        if path == "/api/journal":
            return await self._journal(query)
        if path == "/api/orders":
            return await self._journal({"kind": EntryKind.ORDER, **query})
        if path == "/api/equity":
            return await self._equity(query)
        raise ConsoleError(404, f"no read view {path}")

    async def _journal(self, query: dict[str, str]) -> dict[str, Any]:
        """Newest journal entries, filtered by state, kind, bot and account (id or alias)."""
        journal = self.runtime.journal
        if journal is None:
            return {"entries": [], "note": "the journal is not open yet"}
        state, kind = query.get("state") or None, query.get("kind") or None
        with trio.fail_after(5):
            entries = await journal.list(state=state, limit=JOURNAL_LIMIT, kind=kind)
        bot, account = query.get("bot"), query.get("account")
        if account:
            ids = {
                a
                for v in self.runtime.app.venues.values()
                for k, a in v.accounts.items()
                if account in (k, a)
            } or {account}
        rows = []
        for entry in entries:
            if bot and entry.bot != bot:
                continue
            if account and not ids & {entry.src, entry.dst}:
                continue
            row = entry.to_json()
            row["in_doubt"] = entry.kind == EntryKind.TRANSFER and entry.state in _IN_DOUBT
            rows.append(row)
        return {"entries": rows}

    async def _equity(self, query: dict[str, str]) -> dict[str, Any]:
        """The venue's equity history of one account (``GET /user/account-equity`` on QFEX)."""
        venue, account = query.get("venue", ""), query.get("account", "")
        duration = query.get("duration") or "1d"
        run = self.runtime.venues.get(venue)
        config = self.runtime.app.venues.get(venue)
        _require(run is not None and config is not None, 404, f"no running venue {venue!r}")
        assert run is not None and config is not None
        account_id = config.accounts.get(account, account)
        _require(account_id in config.accounts.values(), 404, f"no account {account!r} on {venue}")
        try:
            with trio.fail_after(EQUITY_TIMEOUT):
                points = await run.venue.account_equity(account_id, duration)
        except trio.TooSlowError:
            raise ConsoleError(504, f"{venue} did not answer within {EQUITY_TIMEOUT} s") from None
        except QfexbotError as exc:
            raise ConsoleError(502, f"{venue}: {exc}") from None
        return {
            "venue": venue,
            "account": account_id,
            "points": [[str(t), str(v)] for t, v in points],
        }

    async def _control(
        self, path: str, scope: dict[str, Any], receive: Receive, send: Send
    ) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self._authorise(headers)
        _same_origin(headers, scope)
        _require(
            headers.get("content-type", "").split(";")[0].strip() == "application/json",
            415,
            "control calls take a JSON body (Content-Type: application/json)",
        )
        raw = await read_body(receive)
        if raw is None:
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise ConsoleError(400, "the body is not JSON") from None
        _require(isinstance(body, dict), 400, "the body must be a JSON object")
        result = await self._act(path, body)
        await respond_json(send, 200, result)

    def _authorise(self, headers: dict[str, str]) -> None:
        if self._token is None:
            raise ConsoleError(401, "control calls are disabled: no ops token in this process")
        scheme, _, given = headers.get("authorization", "").partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(
            given.encode(), self._token.encode()
        )
        _require(ok, 401, "missing or wrong token (Authorization: Bearer <ops token>)")

    async def _act(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        kill_switch = self.runtime.app.runtime.kill_switch_file
        if path == "/api/pause":
            reason = body.get("reason")
            _require(isinstance(reason, str) and reason.strip() != "", 400, "give a reason")
            killswitch.pause(kill_switch, f"{reason} (from the dashboard)")
            log_event(log, logging.WARNING, "kill switch engaged from the dashboard", reason=reason)
            return {"paused": True, "reason": killswitch.kill_switch_reason(kill_switch)}
        if path == "/api/resume":
            existed = killswitch.resume(kill_switch)
            log_event(
                log, logging.WARNING, "kill switch released from the dashboard", was_paused=existed
            )
            return {"paused": False, "was_paused": existed}
        if path == "/api/resolve":
            return await self._resolve(body)
        if path == "/api/plugins/enable":
            return await self._enable(body)
        raise ConsoleError(404, f"no control {path}")

    async def _enable(self, body: dict[str, Any]) -> dict[str, Any]:
        """Re-enable a plugin its circuit breaker disabled (events from now on)."""
        bot, plugin, reason = body.get("bot"), body.get("plugin"), body.get("reason", "")
        _require(isinstance(bot, str) and bot != "", 400, "give the bot")
        _require(isinstance(plugin, str) and plugin != "", 400, "give the plugin")
        _require(isinstance(reason, str), 400, "reason must be a string")
        assert isinstance(bot, str) and isinstance(plugin, str)
        dispatcher = self.runtime.dispatchers.get(bot)
        _require(dispatcher is not None, 404, f"no running bot {bot!r}")
        assert dispatcher is not None
        try:
            stats = await dispatcher.reenable(
                plugin, by="operator (dashboard)", reason=reason.strip()
            )
        except LookupError as exc:
            raise ConsoleError(404, str(exc)) from None
        except PluginStateError as exc:
            raise ConsoleError(409, str(exc)) from None
        return {"bot": bot, "plugin": plugin, **stats}

    async def _resolve(self, body: dict[str, Any]) -> dict[str, Any]:
        """The operator's verdict on a transfer in doubt (state ``unknown`` only: in a running
        process a pending or sent one may be being sent right now)."""
        entry_id, applied = body.get("id"), body.get("applied")
        _require(isinstance(entry_id, str) and entry_id != "", 400, "give the entry id")
        _require(isinstance(applied, bool), 400, "give applied: true or false")
        journal = self.runtime.journal
        _require(journal is not None, 409, "the journal is not open yet")
        assert journal is not None
        with trio.fail_after(5):
            entry = await journal.get(entry_id)
        _require(entry is not None, 404, f"no journal entry {entry_id}")
        assert entry is not None
        _require(
            entry.kind == EntryKind.TRANSFER and entry.state == EntryState.UNKNOWN,
            409,
            f"entry {entry_id} is a {entry.kind} in state {entry.state}: only a transfer in "
            "state unknown is resolved here (a pending or sent one may be being sent now)",
        )
        verdict = "applied" if applied else "not applied"
        try:
            with trio.fail_after(5):
                done = await journal.resolve(
                    entry_id, applied, "operator", f"resolved by operator (dashboard): {verdict}"
                )
        except InvalidTransition as exc:  # settled by reconciliation meanwhile
            raise ConsoleError(409, str(exc)) from None
        log_event(
            log,
            logging.WARNING,
            "transfer resolved from the dashboard",
            entry=entry_id,
            verdict=verdict,
        )
        return {"entry": done.to_json()}

    async def _events(self, receive: Receive, send: Send) -> None:
        """Server-sent events: the status document every ``EVENTS_EVERY`` s until the client
        goes away."""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        async with trio.open_nursery() as nursery:

            async def until_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(until_disconnect)
            while True:
                document = await status_snapshot(self.runtime)
                data = json.dumps(document).encode()
                await send(
                    {
                        "type": "http.response.body",
                        "body": b"data: " + data + b"\n\n",
                        "more_body": True,
                    }
                )
                await trio.sleep(EVENTS_EVERY)


def _require(ok: bool, status: int, message: str) -> None:
    if not ok:
        raise ConsoleError(status, message)


def _same_origin(headers: dict[str, str], scope: dict[str, Any]) -> None:
    """Refuse a request a page of another origin made (browsers always send ``Origin`` on a
    cross-origin POST); a request without ``Origin`` (curl, scripts) passes."""
    origin = headers.get("origin")
    if origin is None:
        return
    own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
    _require(origin == own, 403, f"foreign Origin {origin!r} refused (this endpoint is {own})")


async def respond(
    send: Send, status: int, content_type: bytes, body: bytes, *, cache: bool = True
) -> None:
    """One whole HTTP response."""
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        # The page loads only its own files and is never framed by another site.
        (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
    ]
    if not cache:
        headers.append((b"cache-control", b"no-store"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Send, status: int, document: Any) -> None:
    """A JSON response."""
    await respond(send, status, _JSON, json.dumps(document).encode())
