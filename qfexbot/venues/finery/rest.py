"""Finery REST client: signed ``POST /api/<method>`` calls, errors as ``FineryError``."""

from __future__ import annotations

from typing import Any

import httpx

from qfexbot.core.secrets import Secret
from qfexbot.errors import VenueError
from qfexbot.venues.finery.auth import FineryAuth, NonceSource, rest_body
from qfexbot.venues.finery.methods import FineryMethods
from qfexbot.venues.finery.parse import FineryError, ParseError, decode

__all__ = ["FineryHttpError", "FineryRest"]


class FineryHttpError(VenueError):
    """A REST call failed without a Finery error code (HTTP 5xx, non-JSON body, transport).

    Calls are never retried here: ``add``/``del``/``mod`` are not idempotent, and an ambiguous
    outcome must be reconciled (``positions``, ``dealHistory``) by the caller.
    """

    def __init__(self, method: str, detail: str, status: int | None = None) -> None:
        super().__init__(f"{method}: {detail}")
        self.method = method
        self.status = status


class FineryRest(FineryMethods):
    """Signed REST calls against ``<base_url>/api/<method>``.

    Args:
        base_url: e.g. ``https://trade.finerymarkets.com`` or the simulator's ``rest_url``.
        key, secret: the API key pair (the secret is only used to sign).
        timeout: per-call timeout in seconds.
        client: an ``httpx.AsyncClient`` to use (then not closed by :meth:`aclose`).
        nonces: nonce source (share one per key within the process).

    Resource handling: call :meth:`aclose` (or use ``async with``).
    """

    def __init__(
        self,
        base_url: str,
        key: str,
        secret: Secret,
        *,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
        nonces: NonceSource | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._auth = FineryAuth(key, secret)
        self._nonces = nonces or NonceSource()
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._timeout = timeout

    async def __aenter__(self) -> FineryRest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._own_client:
            await self._client.aclose()

    async def call(self, method: str, content: dict[str, Any] | None = None) -> Any:
        """POST one method; the reply JSON on success.

        Raises:
            FineryError: HTTP 400 (or any body) with a non-zero ``error`` code.
            FineryHttpError: transport failure, timeout, 5xx or an unparseable body.
        """
        body = rest_body({k: v for k, v in (content or {}).items() if k != "cod"}, self._nonces)
        try:
            response = await self._client.post(
                f"{self._base}/api/{method}",
                content=body,
                auth=self._auth,
                headers={"Content-Type": "application/json"},
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise FineryHttpError(method, f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 500:
            raise FineryHttpError(method, f"HTTP {response.status_code}", response.status_code)
        try:
            reply = decode(response.content) if response.content else {}
        except ParseError:
            raise FineryHttpError(
                method, f"HTTP {response.status_code} with a non-JSON body", response.status_code
            ) from None
        if isinstance(reply, dict) and reply.get("error"):
            raise FineryError(
                int(reply["error"]), method=method, param=reply.get("param"), detail=reply
            )
        if response.status_code != 200:
            raise FineryHttpError(method, f"HTTP {response.status_code}", response.status_code)
        return reply
