"""The ops HTTP endpoint of a running process: ``/healthz``, ``/status``, ``/metrics``, and the
operator console (the dashboard at ``/`` and the control API under ``/api/``).

A plain ASGI app (no web framework) served by hypercorn's trio worker inside the runtime's
nursery, like the simulator's REST API. The read routes are unauthenticated; the console's
control calls need the ops token (``qfexbot.ops.console``). The config lets it listen beyond
loopback only with a token and TLS (``[runtime] ops_token``, ``ops_tls_cert``/``ops_tls_key``)
or the explicit ``ops_remote_without_tls`` override.

- ``GET /healthz``: 200 ``{"status": "ok"}`` when every session is LIVE, no plugin is
  disabled and the kill switch is off, else 503 ``{"status": "degraded", "problems": [...]}``
  (the kill switch's reason among them);
- ``GET /status``: the JSON document ``qfexbot status`` renders (``qfexbot.ops.status``);
- ``GET /metrics``: Prometheus text exposition of the runtime's own registry;
- ``GET /``: the dashboard; ``/api/...``: its JSON API (docs/operations.md "Control API").
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import trio
from hypercorn.trio import serve as hypercorn_serve

from qfexbot.core.asgi import answer_lifespan, hypercorn_config
from qfexbot.ops.console import Console
from qfexbot.ops.metrics import CONTENT_TYPE_LATEST
from qfexbot.ops.status import health, status_snapshot
from qfexbot.ops.view import RuntimeView

__all__ = ["OpsApp", "serve_ops"]

_JSON = b"application/json"


class OpsApp:
    """ASGI app answering the read-only routes and the console's from a running process
    (``token``: the control API's bearer token, None to refuse every control call)."""

    def __init__(
        self, runtime: RuntimeView, token: str | None = None, *, loopback_only: bool = False
    ) -> None:
        self.runtime = runtime
        self.console = Console(runtime, token)
        # Answer only requests addressed to a loopback name (Host): the read views carry no
        # token, so on a loopback bind this keeps a web page that rebinds its own DNS name to
        # 127.0.0.1 from reading them (beyond loopback, TLS and the token do).
        self.loopback_only = loopback_only

    def __repr__(self) -> str:
        return f"OpsApp({self.console!r})"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if self.loopback_only and not _loopback_host(scope):
            await _respond(send, 421, _JSON, b'{"error": "not a loopback Host: refused"}')
            return
        if self.console.handles(scope["path"]):
            await self.console(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, _JSON, b'{"error": "method not allowed"}')
            return
        path = scope["path"]
        if path == "/healthz":
            ok, problems = health(self.runtime)
            body = {"status": "ok"} if ok else {"status": "degraded", "problems": problems}
            await _respond(send, 200 if ok else 503, _JSON, json.dumps(body).encode())
        elif path == "/status":
            document = await status_snapshot(self.runtime)
            await _respond(send, 200, _JSON, json.dumps(document).encode())
        elif path == "/metrics":
            await self.runtime.metrics.refresh()
            await _respond(
                send, 200, CONTENT_TYPE_LATEST.encode(), self.runtime.metrics.exposition()
            )
        else:
            await _respond(
                send,
                404,
                _JSON,
                b'{"error": "not found", "routes": ["/", "/api/status", "/healthz", "/status", '
                b'"/metrics"]}',
            )


def _loopback_host(scope: dict[str, Any]) -> bool:
    """Whether the request's ``Host`` names this machine by a loopback name or address."""
    host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
    name = host.rsplit("]", 1)[0].lstrip("[") if host.startswith("[") else host.split(":")[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


async def _respond(send: Any, status: int, content_type: bytes, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"


async def serve_ops(
    runtime: RuntimeView,
    host: str,
    port: int,
    *,
    token: str | None = None,
    tls: tuple[Path, Path] | None = None,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve :class:`OpsApp` on ``host:port`` until cancelled; ``task_status.started(url)``
    gives the base URL actually bound (``port`` 0 picks a free one). ``tls``: (certificate,
    key) files to serve HTTPS."""
    config = hypercorn_config(host, port, logger="qfexbot.ops.endpoint.hypercorn")
    if tls is not None:
        config.certfile, config.keyfile = str(tls[0]), str(tls[1])
    async with trio.open_nursery() as nursery:
        app = OpsApp(runtime, token, loopback_only=_is_loopback(host))
        binds = await nursery.start(hypercorn_serve, app, config)
        task_status.started(binds[0])
