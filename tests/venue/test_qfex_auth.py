"""QFEX signing: the published test vector, WS auth messages, and the httpx.Auth flow."""

from __future__ import annotations

import re

import httpx
import pytest

from qfexbot.core.secrets import Secret
from qfexbot.venues.qfex.auth import (
    REQUESTED_ACCOUNT_HEADER,
    QfexAuth,
    new_nonce,
    sign,
    ws_auth_message,
    ws_jwt_auth_message,
)

SUB = "11111111-1111-4111-8111-111111111111"
VECTOR = "9a892254ce0416371a78a4352130b7825a2f5fb442b12ddfa7c2f5202ef045dc"


def test_signature_matches_published_test_vector() -> None:
    assert sign("qfex_secret_test", "c0ffee", 1760545414) == VECTOR


def test_signature_depends_on_every_input() -> None:
    assert sign("qfex_secret_tesu", "c0ffee", 1760545414) != VECTOR
    assert sign("qfex_secret_test", "c0ffef", 1760545414) != VECTOR
    assert sign("qfex_secret_test", "c0ffee", 1760545415) != VECTOR


def test_new_nonce_is_fresh_32_hex() -> None:
    nonces = {new_nonce() for _ in range(200)}
    assert len(nonces) == 200
    assert all(re.fullmatch(r"[0-9a-f]{32}", n) for n in nonces)


def test_ws_auth_message_subaccount_and_primary() -> None:
    secret = Secret("qfex_secret_test")
    msg = ws_auth_message("qfex_pub_x", secret, SUB, nonce="c0ffee", ts=1760545414)
    assert msg == {
        "type": "auth",
        "params": {
            "hmac": {
                "public_key": "qfex_pub_x",
                "nonce": "c0ffee",
                "unix_ts": 1760545414,
                "signature": VECTOR,
            },
            "account_id": SUB,
        },
    }
    primary = ws_auth_message("qfex_pub_x", secret, None)
    assert "account_id" not in primary["params"]
    assert "qfex_secret_test" not in repr(primary)


def test_ws_auth_message_uses_a_fresh_nonce_each_time() -> None:
    secret = Secret("s3cr3t-value")
    first = ws_auth_message("pk", secret, None)["params"]["hmac"]
    second = ws_auth_message("pk", secret, None)["params"]["hmac"]
    assert first["nonce"] != second["nonce"]
    assert first["signature"] != second["signature"]


def test_ws_jwt_auth_message() -> None:
    msg = ws_jwt_auth_message(Secret("eyJ.token"), SUB)
    assert msg == {"type": "auth", "params": {"jwt": "eyJ.token", "account_id": SUB}}
    assert ws_jwt_auth_message(Secret("eyJ.token"), None) == {
        "type": "auth",
        "params": {"jwt": "eyJ.token"},
    }


def _drive(auth: httpx.Auth, request: httpx.Request) -> httpx.Request:
    flow = auth.auth_flow(request)
    signed = next(flow)
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(200))
    return signed


def test_httpx_auth_adds_the_four_headers() -> None:
    nonces = iter(["c0ffee", "beef"])
    auth = QfexAuth(
        "qfex_pub_x",
        Secret("qfex_secret_test"),
        clock=lambda: 1760545414.9,
        nonce_factory=lambda: next(nonces),
    )
    signed = _drive(auth, httpx.Request("GET", "https://api.example/user/positions"))
    assert signed.headers["x-qfex-public-key"] == "qfex_pub_x"
    assert signed.headers["x-qfex-nonce"] == "c0ffee"
    assert signed.headers["x-qfex-timestamp"] == "1760545414"
    assert signed.headers["x-qfex-hmac-signature"] == VECTOR
    assert REQUESTED_ACCOUNT_HEADER not in signed.headers
    assert "authorization" not in signed.headers
    # A second request gets the next nonce (never reused).
    again = _drive(auth, httpx.Request("GET", "https://api.example/user/positions"))
    assert again.headers["x-qfex-nonce"] == "beef"
    assert again.headers["x-qfex-hmac-signature"] == sign("qfex_secret_test", "beef", 1760545414)


def test_httpx_auth_requested_account_bound_or_per_request() -> None:
    auth = QfexAuth("pk", Secret("sk"), requested_account_id=SUB)
    bound = _drive(auth, httpx.Request("GET", "https://api.example/user/positions"))
    assert bound.headers[REQUESTED_ACCOUNT_HEADER] == SUB
    other = "22222222-2222-4222-8222-222222222222"
    per_call = _drive(
        auth,
        httpx.Request(
            "GET", "https://api.example/user/positions", headers={REQUESTED_ACCOUNT_HEADER: other}
        ),
    )
    assert per_call.headers[REQUESTED_ACCOUNT_HEADER] == other


def test_httpx_auth_bearer_jwt() -> None:
    auth = QfexAuth(jwt=Secret("eyJhbGciOiJFUzI1NiJ9.e30.sig"))
    signed = _drive(auth, httpx.Request("GET", "https://api.example/user/subaccounts"))
    assert signed.headers["authorization"] == "Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig"
    assert "x-qfex-hmac-signature" not in signed.headers


def test_httpx_auth_never_shows_secrets() -> None:
    hmac_auth = QfexAuth("qfex_pub_x", Secret("qfex_secret_zzz"))
    jwt_auth = QfexAuth(jwt=Secret("eyJ.very.secret"))
    assert "qfex_secret_zzz" not in repr(hmac_auth) + str(hmac_auth)
    assert "eyJ.very.secret" not in repr(jwt_auth) + str(jwt_auth)


def test_httpx_auth_requires_credentials() -> None:
    with pytest.raises(ValueError):
        QfexAuth("pk")
    with pytest.raises(ValueError):
        QfexAuth("pk", Secret("sk"), jwt=Secret("t"))
