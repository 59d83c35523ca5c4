"""Simulator authentication: HMAC signatures, the shared 15-minute nonce cache, ES256 JWTs."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from qfexbot.errors import SimulatorError
from qfexbot.sim.qfex.config import SimUser

__all__ = ["AuthFailure", "Authenticator", "NonceCache", "sign"]

_HEX = re.compile(r"^[0-9a-fA-F]{1,100}$")


def sign(secret: str, nonce: str, unix_ts: int) -> str:
    """Lowercase hex HMAC-SHA256(secret, "nonce:unix_ts"), as the venue signs."""
    message = f"{nonce}:{unix_ts}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class AuthFailure(SimulatorError):
    """Credentials refused; ``reason`` is for logs and REST problem details (never a secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NonceCache:
    """Nonces seen per public key within ``window`` seconds, shared by WS and REST (§6 #21)."""

    def __init__(self, window: float, clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self.clock = clock
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def claim(self, public_key: str, nonce: str) -> bool:
        """Record the nonce; False if it was already used inside the window."""
        now = self.clock()
        while self._seen:
            key, seen_at = next(iter(self._seen.items()))
            if now - seen_at < self.window:
                break
            del self._seen[key]
        if (public_key, nonce) in self._seen:
            return False
        self._seen[(public_key, nonce)] = now
        return True


class Authenticator:
    """Checks HMAC and JWT credentials against the configured users.

    The simulator is its own JWT issuer: it generates an ES256 key pair at start and accepts only
    tokens it signed (``issue_jwt``), with ``sub`` = user id.
    """

    def __init__(
        self,
        users: Iterable[SimUser],
        nonce_window: float,
        max_skew: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.max_skew = max_skew
        self.nonces = NonceCache(nonce_window, clock)
        self._by_key = {u.public_key: u for u in users}
        self._by_id = {u.account_id: u for u in self._by_key.values()}
        self._private_key = ec.generate_private_key(ec.SECP256R1())
        self._public_key = self._private_key.public_key()
        self.reject_next = 0

    def issue_jwt(self, user_id: str, ttl: float = 3600.0) -> str:
        """An ES256 access token for ``user_id`` that this simulator accepts."""
        if user_id not in self._by_id:
            raise KeyError(f"unknown user {user_id}")
        now = int(self.clock())
        claims = {"sub": user_id, "iat": now, "exp": now + int(ttl), "iss": "qfexbot-sim"}
        return jwt.encode(claims, self._private_key, algorithm="ES256")

    def verify_hmac(
        self, public_key: object, nonce: object, unix_ts: object, signature: object
    ) -> SimUser:
        """The user of a valid HMAC credential; the nonce is consumed.

        Raises:
            AuthFailure: unknown key, malformed fields, skew > max_skew, bad signature or replay.
        """
        self._injected_rejection()
        if not isinstance(public_key, str) or public_key not in self._by_key:
            raise AuthFailure("unknown public key")
        if not isinstance(nonce, str) or not _HEX.match(nonce):
            raise AuthFailure("nonce must be 1..100 hex characters")
        if isinstance(unix_ts, str) and unix_ts.isdigit():
            unix_ts = int(unix_ts)
        if isinstance(unix_ts, bool) or not isinstance(unix_ts, int):
            raise AuthFailure("timestamp must be integer unix seconds")
        if abs(self.clock() - unix_ts) > self.max_skew:
            raise AuthFailure("timestamp outside the allowed window")
        user = self._by_key[public_key]
        expected = sign(user.secret, nonce, unix_ts)
        if not isinstance(signature, str) or not hmac.compare_digest(expected, signature.lower()):
            raise AuthFailure("bad signature")
        if not self.nonces.claim(public_key, nonce):
            raise AuthFailure("nonce already used")
        return user

    def verify_jwt(self, token: object) -> SimUser:
        """The user named by a valid token's ``sub``.

        Raises:
            AuthFailure: bad signature, expired, wrong algorithm or unknown subject.
        """
        self._injected_rejection()
        if not isinstance(token, str):
            raise AuthFailure("jwt must be a string")
        try:
            claims = jwt.decode(
                token,
                self._public_key,
                algorithms=["ES256"],
                options={"require": ["sub", "exp"]},
                leeway=self.max_skew,
            )
        except jwt.PyJWTError as exc:
            raise AuthFailure(f"invalid jwt ({type(exc).__name__})") from None
        user = self._by_id.get(claims["sub"])
        if user is None:
            raise AuthFailure("unknown jwt subject")
        return user

    def _injected_rejection(self) -> None:
        if self.reject_next > 0:
            self.reject_next -= 1
            raise AuthFailure("rejected by fault injection")
