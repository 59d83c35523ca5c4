"""REST error bodies of any shape become clear QfexApiErrors; 429 without a hint backs off.

tests/venue/test_qfex_rest.py covers HTML, plain text, empty bodies and Retry-After. Here:
any error body (arbitrary bytes, arbitrary JSON, problem+json with nonsense fields) gives a
``QfexApiError`` with the real HTTP status and a bounded message, and a 429 *without*
Retry-After is retried with jittered backoff against a real hypercorn server.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
from decimal import Decimal
from functools import partial
from typing import Any

import httpx
import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_helpers import JSON_VALUES

from qfexbot.config import SessionSettings
from qfexbot.core.secrets import Secret
from qfexbot.money.transfers import TransferAmbiguous
from qfexbot.runtime.venues import transfer_sender
from qfexbot.venues.qfex.adapter import QfexVenue
from qfexbot.venues.qfex.auth import QfexAuth
from qfexbot.venues.qfex.rest import QfexAmbiguousError, QfexApiError, QfexRest, api_error_from

REQUEST = httpx.Request("GET", "http://127.0.0.1:1/user/positions")
STATUSES = st.sampled_from([400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504, 599])
CONTENT_TYPES = st.sampled_from(
    [
        "application/problem+json",
        "application/json",
        "text/html",
        "text/plain",
        "",
        "application/octet-stream",
    ]
)


def check(error: QfexApiError, status: int) -> None:
    assert isinstance(error, QfexApiError)
    assert error.status == status or 100 <= error.status <= 599
    text = str(error)
    assert text.startswith("GET /user/positions -> ")
    repr(error)


@settings(max_examples=300, deadline=None)
@given(STATUSES, CONTENT_TYPES, st.binary(max_size=300))
def test_any_bytes_body(status: int, content_type: str, body: bytes) -> None:
    response = httpx.Response(
        status, content=body, headers={"content-type": content_type}, request=REQUEST
    )
    check(api_error_from(response), status)


@settings(max_examples=300, deadline=None)
@given(STATUSES, JSON_VALUES, JSON_VALUES, JSON_VALUES)
def test_any_problem_json(status: int, body_status: Any, title: Any, errors: Any) -> None:
    body = {"status": body_status, "title": title, "detail": title, "errors": errors}
    response = httpx.Response(
        status,
        content=json.dumps(body, allow_nan=True).encode(),
        headers={"content-type": "application/problem+json"},
        request=REQUEST,
    )
    check(api_error_from(response), status)


@pytest.mark.parametrize("body_status", ["error", [1], 1e400, None, True, 99, 1000, "503"])
def test_nonsense_problem_status_keeps_the_http_status(body_status: Any) -> None:
    # Found by fuzzing: {"status": "error"} escaped as ValueError instead of a QfexApiError.
    body = json.dumps({"status": body_status, "title": "Down"}, allow_nan=True).encode()
    response = httpx.Response(503, content=body, request=REQUEST)
    error = api_error_from(response)
    assert error.status == 503 and error.title == "Down"


class Always:
    """ASGI app: answers each request from a script of (status, headers, body), then 200."""

    def __init__(self, script: list[tuple[int, list[tuple[bytes, bytes]], bytes]]) -> None:
        self.script = script
        self.times: list[float] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        self.times.append(trio.current_time())
        status, headers, body = (
            self.script.pop(0)
            if self.script
            else (200, [(b"content-type", b"application/json")], b'{"account_ids": []}')
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def test_429_without_retry_after_backs_off_and_then_succeeds(nursery: trio.Nursery) -> None:
    app = Always([(429, [], b""), (429, [(b"content-type", b"text/html")], b"<h1>slow down</h1>")])
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = logging.getLogger("tests.reliability.hypercorn")
    config.graceful_timeout = 0.5
    binds = await nursery.start(partial(hypercorn_serve, app, config))
    rest = QfexRest(
        binds[0],
        QfexAuth("pk", Secret("sk")),
        timeout=2.0,
        backoff_initial=0.2,
        backoff_max=0.2,
        rng=random.Random(3),
    )
    try:
        with trio.fail_after(10):
            assert await rest.subaccounts() == []
    finally:
        await rest.aclose()
    assert len(app.times) == 3
    gaps = [b - a for a, b in itertools.pairwise(app.times)]
    # Full jitter: each wait is uniform(0, 0.2); with this seed both are clearly non-zero.
    expected = [random.Random(3).uniform(0, 0.2)]
    assert all(gap > 0.01 for gap in gaps), gaps
    assert gaps[0] >= expected[0] * 0.9


async def test_429_on_every_attempt_ends_in_a_clear_error(nursery: trio.Nursery) -> None:
    app = Always([(429, [(b"content-type", b"text/plain")], b"rate limited")] * 10)
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = logging.getLogger("tests.reliability.hypercorn")
    config.graceful_timeout = 0.5
    binds = await nursery.start(partial(hypercorn_serve, app, config))
    rest = QfexRest(
        binds[0], QfexAuth("pk", Secret("sk")), timeout=2.0, backoff_initial=0.01, max_retries=2
    )
    try:
        with pytest.raises(QfexApiError) as info, trio.fail_after(10):
            await rest.subaccounts()
    finally:
        await rest.aclose()
    assert info.value.status == 429
    assert "non-JSON body (text/plain): rate limited" in str(info.value)
    assert len(app.times) == 3  # 1 + 2 retries, then give up


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirected_transfer_is_ambiguous_not_a_rejection(
    nursery: trio.Nursery, status: int
) -> None:
    # httpx does not follow redirects, but a 3xx does not say the venue did not process the
    # POST (303 See Other is the usual answer after processing it): outcome unknown, reconciled.
    app = Always([(status, [(b"location", b"https://api.example/user/transfer/result/1")], b"")])
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = logging.getLogger("tests.reliability.hypercorn")
    config.graceful_timeout = 0.5
    binds = await nursery.start(partial(hypercorn_serve, app, config))
    rest = QfexRest(binds[0], QfexAuth("pk", Secret("sk")), timeout=2.0)
    send = transfer_sender(
        QfexVenue(
            "t",
            trade_url="",
            mds_url="",
            rest_url="",
            user_id="",
            settings=SessionSettings(),
            rest=rest,
        )
    )
    try:
        with trio.fail_after(10), pytest.raises(TransferAmbiguous) as raised:
            await send(
                "0020ce8e-eaee-480e-8d7f-b9241d756ee5",
                "11111111-1111-4111-8111-111111111111",
                Decimal("1"),
            )
    finally:
        await rest.aclose()
    cause = raised.value.__cause__
    assert isinstance(cause, QfexAmbiguousError) and cause.status == status
    assert "outcome unknown" in str(raised.value) and "redirect" in str(raised.value)
    assert len(app.times) == 1  # never retried
