"""Finery Markets (EFX) request signing: WebSocket upgrade headers and signed REST bodies.

Signature = base64(HMAC-SHA384(secret as UTF-8, message)). For REST the message is the method
name followed by the exact body bytes sent; for the WebSocket upgrade it is the ``EFX-Content``
header value. The secret is used as a plain string (not base64-decoded).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any

import httpx

from qfexbot.core.secrets import Secret

__all__ = [
    "FineryAuth",
    "NonceSource",
    "rest_body",
    "rest_method_of",
    "sign",
    "ws_auth_headers",
]


def _reveal(secret: Secret | str) -> str:
    return secret.reveal() if isinstance(secret, Secret) else secret


def sign(secret: Secret | str, message: bytes | str) -> str:
    """``base64(HMAC-SHA384(secret, message))`` as ASCII text (the ``EFX-Sign`` value)."""
    data = message.encode("utf-8") if isinstance(message, str) else message
    digest = hmac.new(_reveal(secret).encode("utf-8"), data, hashlib.sha384).digest()
    return base64.b64encode(digest).decode("ascii")


class NonceSource:
    """Strictly increasing, unique nonces with their millisecond timestamps.

    A nonce is ``ms * 1000 + counter``: bigger than every earlier one from this source (the
    venue's older "must increase" rule) and unique (the newer "unique within 2 minutes" rule),
    even when the clock stands still or steps back.

    Args:
        clock: seconds since the epoch (default ``time.time``); injectable for tests.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> tuple[int, int]:
        """The next ``(nonce, timestamp_ms)``."""
        ts = int(self._clock() * 1000)
        with self._lock:
            nonce = max(ts * 1000, self._last + 1)
            self._last = nonce
        return nonce, ts


def ws_auth_headers(
    key: str, secret: Secret | str, nonces: NonceSource
) -> list[tuple[bytes, bytes]]:
    """The ``EFX-Key``/``EFX-Content``/``EFX-Sign`` upgrade headers, as the (name, value) byte
    pairs a driver's ``handshake_headers`` returns."""
    nonce, ts = nonces.next()
    content = json.dumps({"nonce": nonce, "timestamp": ts})
    return [
        (b"EFX-Key", key.encode("ascii")),
        (b"EFX-Content", content.encode("ascii")),
        (b"EFX-Sign", sign(secret, content).encode("ascii")),
    ]


def rest_body(params: Mapping[str, Any] | None, nonces: NonceSource) -> bytes:
    """The body of one REST call: ``nonce`` and ``timestamp`` first, then the parameters."""
    nonce, ts = nonces.next()
    body: dict[str, Any] = {"nonce": nonce, "timestamp": ts}
    for name, value in (params or {}).items():
        if name in body:
            raise ValueError(f"parameter {name!r} is reserved for signing")
        body[name] = value
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def rest_method_of(path: str) -> str:
    """The signed method name of a REST path: what follows ``/api/`` (``pending/add`` too)."""
    marker = "/api/"
    index = path.find(marker)
    if index < 0:
        raise ValueError(f"not a Finery API path: {path!r}")
    return path[index + len(marker) :]


class FineryAuth(httpx.Auth):
    """Adds ``EFX-Key`` and ``EFX-Sign`` to a ``POST /api/<method>`` request.

    The signature covers the method name and the request's body bytes exactly as they will be
    sent (build the body with :func:`rest_body`); nothing is re-serialised here.
    """

    requires_request_body = True

    def __init__(self, key: str, secret: Secret | str) -> None:
        self._key = key
        self._secret = secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        method = rest_method_of(request.url.path)
        request.headers["EFX-Key"] = self._key
        request.headers["EFX-Sign"] = sign(self._secret, method.encode("utf-8") + request.content)
        yield request
