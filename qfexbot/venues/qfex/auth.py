"""QFEX request signing: HMAC signature, WS auth messages and an ``httpx.Auth`` for REST.

The signature covers only ``f"{nonce}:{unix_ts}"`` (protocol §1.2), never the method, path or
body. Every message and every request gets a fresh nonce: the venue rejects a nonce reused
within 15 minutes, across WS and REST.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets
import time
from collections.abc import Callable, Generator
from typing import Any

import httpx

from qfexbot.core.secrets import Secret

__all__ = [
    "REQUESTED_ACCOUNT_HEADER",
    "QfexAuth",
    "new_nonce",
    "sign",
    "ws_auth_message",
    "ws_jwt_auth_message",
]

REQUESTED_ACCOUNT_HEADER = "x-qfex-requested-account-id"


def sign(secret: str, nonce: str, ts: int) -> str:
    """Lower-case hex HMAC-SHA256 of ``"{nonce}:{ts}"`` keyed with the secret (UTF-8)."""
    return hmac.new(secret.encode(), f"{nonce}:{int(ts)}".encode(), hashlib.sha256).hexdigest()


def new_nonce() -> str:
    """A fresh random nonce: 16 random bytes as 32 lower-case hex characters."""
    return _secrets.token_hex(16)


def _public_key_text(public_key: str | Secret) -> str:
    return public_key.reveal() if isinstance(public_key, Secret) else public_key


def ws_auth_message(
    public_key: str | Secret,
    secret: Secret,
    account_id: str | None,
    *,
    nonce: str | None = None,
    ts: int | None = None,
) -> dict[str, Any]:
    """The trade-WS ``auth`` command with an HMAC signature.

    Args:
      public_key: the API public key.
      secret: the API secret; only its signature goes into the message.
      account_id: subaccount to bind the connection to; ``None`` for the primary account.
      nonce, ts: fixed values for tests; by default a fresh nonce and the current time.
    """
    nonce = nonce if nonce is not None else new_nonce()
    ts = int(ts if ts is not None else time.time())
    params: dict[str, Any] = {
        "hmac": {
            "public_key": _public_key_text(public_key),
            "nonce": nonce,
            "unix_ts": ts,
            "signature": sign(secret.reveal(), nonce, ts),
        }
    }
    if account_id:
        params["account_id"] = account_id
    return {"type": "auth", "params": params}


def ws_jwt_auth_message(jwt: Secret, account_id: str | None) -> dict[str, Any]:
    """The trade-WS ``auth`` command with a JWT access token (never log the result)."""
    params: dict[str, Any] = {"jwt": jwt.reveal()}
    if account_id:
        params["account_id"] = account_id
    return {"type": "auth", "params": params}


class QfexAuth(httpx.Auth):
    """Adds the four ``x-qfex-*`` HMAC headers (or ``Authorization: Bearer``) to each request.

    A request that already carries ``x-qfex-requested-account-id`` keeps it; otherwise
    ``requested_account_id`` (if given) is added, so one auth object can serve a whole venue
    (per-call header) or be bound to one subaccount. ``clock`` and ``nonce_factory`` are
    injectable so the flow is testable without I/O.
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        public_key: str | Secret | None = None,
        secret: Secret | None = None,
        *,
        jwt: Secret | None = None,
        requested_account_id: str | None = None,
        clock: Callable[[], float] = time.time,
        nonce_factory: Callable[[], str] = new_nonce,
    ) -> None:
        if jwt is None and (public_key is None or secret is None):
            raise ValueError("QfexAuth needs public_key and secret, or jwt")
        if jwt is not None and secret is not None:
            raise ValueError("QfexAuth takes either HMAC credentials or a jwt, not both")
        self._public_key = _public_key_text(public_key) if public_key is not None else None
        self._secret = secret
        self._jwt = jwt
        self.requested_account_id = requested_account_id
        self._clock = clock
        self._nonce_factory = nonce_factory

    def __repr__(self) -> str:
        mode = "jwt" if self._jwt is not None else f"hmac public_key={self._public_key}"
        return f"QfexAuth({mode}, requested_account_id={self.requested_account_id!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        headers = request.headers
        if self._jwt is not None:
            headers["Authorization"] = f"Bearer {self._jwt.reveal()}"
        else:
            assert self._secret is not None and self._public_key is not None
            nonce = self._nonce_factory()
            ts = int(self._clock())
            headers["x-qfex-public-key"] = self._public_key
            headers["x-qfex-nonce"] = nonce
            headers["x-qfex-timestamp"] = str(ts)
            headers["x-qfex-hmac-signature"] = sign(self._secret.reveal(), nonce, ts)
        if self.requested_account_id and REQUESTED_ACCOUNT_HEADER not in headers:
            headers[REQUESTED_ACCOUNT_HEADER] = self.requested_account_id
        yield request
