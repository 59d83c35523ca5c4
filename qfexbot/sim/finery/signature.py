"""EFX signature checks written from protocol/finery.md §1.1-§1.2, not from the client's signer.

``EFX-Sign = base64(HMAC-SHA384(key = secret as UTF-8, msg))``; for REST ``msg`` is the method
name followed by the body bytes exactly as received, for the WebSocket upgrade it is the
``EFX-Content`` header value. The secret is a plain string (never base64-decoded).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["expected_signature", "signature_matches"]


def expected_signature(secret: str, message: bytes) -> str:
    """The ``EFX-Sign`` value a client holding ``secret`` sends for ``message``."""
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha384).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_matches(secret: str, message: bytes, signature: str | None) -> bool:
    """Whether ``signature`` (an ``EFX-Sign`` header, latin-1 text) signs ``message``."""
    if signature is None:
        return False
    expected = expected_signature(secret, message).encode("ascii")
    return hmac.compare_digest(expected, signature.encode("latin-1", "replace"))
