"""QFEX REST client: typed calls and transfer outcomes against the simulator, and error mapping
of bodies the simulator never sends (HTML, plain text, empty) against a tiny real HTTP server."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from functools import partial

import httpx
import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from venue_helpers import PRIMARY, SUB1, SUB2, FastSettings, SimEnv

from qfexbot.core.secrets import Secret
from qfexbot.venues.qfex.adapter import QfexVenue
from qfexbot.venues.qfex.auth import QfexAuth
from qfexbot.venues.qfex.rest import (
    QfexAmbiguousError,
    QfexApiError,
    QfexNotSentError,
    QfexResponseError,
    QfexRest,
    QfexUnavailableError,
)

# ---------------------------------------------------------------- against the simulator


async def test_typed_reads(venue: QfexVenue) -> None:
    rest = venue.rest
    assert sorted(await rest.subaccounts()) == sorted([SUB1, SUB2])
    snap = await rest.positions(SUB1)
    assert snap.account_id == SUB1 and snap.balance.available == Decimal("250.5")
    primary = await rest.positions()  # no header: the primary account
    assert primary.account_id == PRIMARY and primary.balance.available == Decimal(1000)
    equity = await rest.account_equity(SUB2, "1w")
    assert equity and all(isinstance(v, Decimal) for _, v in equity)
    assert equity[-1][1] == Decimal(75)
    symbols = {s.symbol: s for s in await rest.refdata()}
    assert symbols["AAPL-USD"].tick_size == Decimal("0.01")
    assert symbols["AAPL-USD"].status == "ACTIVE"


async def test_create_subaccount(venue: QfexVenue) -> None:
    new = await venue.rest.create_subaccount()
    assert new in await venue.rest.subaccounts()
    assert (await venue.rest.positions(new)).balance.available == Decimal(0)


async def test_transfer_ok_moves_the_exact_amount(simenv: SimEnv, venue: QfexVenue) -> None:
    assert await venue.rest.transfer(PRIMARY, SUB1, Decimal("10.25")) is None
    (entry,) = simenv.sim.ledger
    assert (entry.src, entry.dst, entry.amount) == (PRIMARY, SUB1, Decimal("10.25"))
    assert simenv.sim.available_balance(SUB1) == Decimal("260.75")
    # A value a float cannot hold exactly still arrives exactly.
    await venue.rest.transfer(SUB1, SUB2, Decimal("0.1000000000000000055511151231257827"))
    assert simenv.sim.ledger[-1].amount == Decimal("0.1000000000000000055511151231257827")


async def test_transfer_refused_is_an_api_error(simenv: SimEnv, venue: QfexVenue) -> None:
    with pytest.raises(QfexApiError) as info:
        await venue.rest.transfer(SUB2, SUB1, Decimal(1000000))
    err = info.value
    assert err.status == 422 and err.title == "Unprocessable Entity"
    assert err.detail and err.method == "POST" and err.path == "/user/transfer"
    assert "422" in str(err)
    assert simenv.sim.ledger == []
    with pytest.raises(QfexApiError) as same:
        await venue.rest.transfer(SUB1, SUB1, Decimal(1))
    assert same.value.status == 400


@pytest.mark.parametrize("mode", ["timeout", "reset"])
async def test_lost_transfer_response_is_ambiguous(simenv: SimEnv, mode: str) -> None:
    venue = simenv.venue(FastSettings(request_timeout=0.5))
    try:
        simenv.sim.faults.drop_transfer_response(1, mode=mode)
        with pytest.raises(QfexAmbiguousError) as info:
            await venue.rest.transfer(PRIMARY, SUB2, Decimal(5))
        assert info.value.status is None and "outcome unknown" in str(info.value)
        (entry,) = simenv.sim.ledger  # applied exactly once: never retried
        assert entry.response_dropped and entry.amount == Decimal(5)
    finally:
        await venue.aclose()


async def test_transfer_5xx_is_ambiguous_and_not_retried(simenv: SimEnv, venue) -> None:
    simenv.sim.faults.fail_next_rest(1, status=503, path="/user/transfer")
    with pytest.raises(QfexAmbiguousError) as info:
        await venue.rest.transfer(PRIMARY, SUB2, Decimal(5))
    assert info.value.status == 503 and info.value.api_error.status == 503
    assert simenv.sim.ledger == []
    await venue.rest.transfer(PRIMARY, SUB2, Decimal(5))  # the fault was consumed once
    assert len(simenv.sim.ledger) == 1


async def test_transfer_not_sent_when_nobody_listens() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with QfexRest(
        f"http://127.0.0.1:{port}", QfexAuth("pk", Secret("sk")), timeout=1.0
    ) as rest:
        with pytest.raises(QfexNotSentError, match="not sent"):
            await rest.transfer(PRIMARY, SUB1, Decimal(1))


async def test_transfer_rejects_floats(venue: QfexVenue) -> None:
    with pytest.raises(TypeError):
        await venue.rest.transfer(PRIMARY, SUB1, 1.5)  # type: ignore[arg-type]


async def test_get_retries_5xx_then_succeeds(simenv: SimEnv, venue: QfexVenue) -> None:
    venue.rest.backoff_initial = 0.01
    simenv.sim.faults.fail_next_rest(2, status=500, path="/user/positions")
    snap = await venue.rest.positions(SUB1)
    assert snap.balance.available == Decimal("250.5")


async def test_get_gives_up_after_bounded_retries(simenv: SimEnv, venue: QfexVenue) -> None:
    venue.rest.backoff_initial = 0.01
    simenv.sim.faults.fail_next_rest(10, status=502, path="/user/subaccounts")
    with pytest.raises(QfexApiError) as info:
        await venue.rest.subaccounts()
    assert info.value.status == 502
    assert simenv.sim.faults.snapshot()["rest_failures"].__len__() == 10 - 4  # 1 + 3 retries


async def test_get_429_honours_retry_after_capped(simenv: SimEnv, venue: QfexVenue) -> None:
    venue.rest.retry_after_max = 0.05  # the sim asks for 1 s; the cap wins
    simenv.sim.faults.fail_next_rest(1, status=429, path="/user/subaccounts")
    with trio.fail_after(0.9):
        assert sorted(await venue.rest.subaccounts()) == sorted([SUB1, SUB2])


async def test_bad_credentials_are_401(simenv: SimEnv) -> None:
    venue = simenv.venue(secret="qfex_secret_nope")
    try:
        with pytest.raises(QfexApiError) as info:
            await venue.rest.subaccounts()
        assert info.value.status == 401
        assert "qfex_secret_nope" not in str(info.value) + repr(info.value)
    finally:
        await venue.aclose()


async def test_not_owned_account_is_403(venue: QfexVenue) -> None:
    with pytest.raises(QfexApiError) as info:
        await venue.rest.positions("33333333-3333-4333-8333-333333333333")
    assert info.value.status == 403
    assert info.value.errors[0]["location"] == "header.x-qfex-requested-account-id"


# ---------------------------------------------------------------- a tiny real server


class ScriptedApp:
    """ASGI app answering each path from a queue of (status, headers, body); records requests."""

    def __init__(self) -> None:
        self.script: dict[str, list[tuple[int, list[tuple[bytes, bytes]], bytes]]] = {}
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append((scope["method"], scope["path"], headers, body))
        status, extra, payload = self.script[scope["path"]].pop(0)
        await send({"type": "http.response.start", "status": status, "headers": extra})
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture
async def scripted(nursery: trio.Nursery) -> AsyncIterator[tuple[ScriptedApp, QfexRest]]:
    app = ScriptedApp()
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = logging.getLogger("tests.venue.hypercorn")
    config.graceful_timeout = 0.5
    binds = await nursery.start(partial(hypercorn_serve, app, config))
    rest = QfexRest(
        binds[0],
        QfexAuth("pk", Secret("sk")),
        timeout=2.0,
        user_id=PRIMARY,
        backoff_initial=0.01,
        rng=random.Random(1),
    )
    try:
        yield app, rest
    finally:
        await rest.aclose()


HTML = [(b"content-type", b"text/html; charset=utf-8")]
JSON = [(b"content-type", b"application/json")]


async def test_html_error_page_on_post_is_ambiguous_with_clear_detail(scripted) -> None:
    app, rest = scripted
    app.script["/user/transfer"] = [
        (502, HTML, b"<html><body><h1>502 Bad Gateway</h1></body></html>")
    ]
    with pytest.raises(QfexAmbiguousError) as info:
        await rest.transfer(PRIMARY, SUB1, Decimal("1.50"))
    api = info.value.api_error
    assert api.status == 502 and api.title == "Bad Gateway"
    assert api.detail.startswith("non-JSON body (text/html): <html>")
    method, path, headers, body = app.requests[0]
    assert (method, path) == ("POST", "/user/transfer")
    assert body == b'{"amount":1.50}' and headers["content-type"] == "application/json"
    assert "x-qfex-requested-account-id" not in headers
    assert len(app.requests) == 1


async def test_plain_text_403_and_empty_bodies(scripted) -> None:
    app, rest = scripted
    app.script["/user/subaccounts"] = [
        (403, [(b"content-type", b"text/plain")], b"error code: 1010"),
        (404, [], b""),
    ]
    with pytest.raises(QfexApiError) as text:
        await rest.subaccounts()
    assert text.value.status == 403 and text.value.errors == []
    assert text.value.detail == "non-JSON body (text/plain): error code: 1010"
    with pytest.raises(QfexApiError) as empty:
        await rest.subaccounts()
    assert empty.value.status == 404 and empty.value.detail == "empty body"


async def test_empty_500_on_post_is_ambiguous(scripted) -> None:
    app, rest = scripted
    app.script["/user/subaccounts"] = [(500, [], b"")]
    with pytest.raises(QfexAmbiguousError) as info:
        await rest.create_subaccount()
    assert info.value.status == 500 and info.value.api_error.detail == "empty body"


async def test_success_with_non_json_body_is_a_response_error(scripted) -> None:
    app, rest = scripted
    app.script["/user/positions"] = [(200, HTML, b"<html>maintenance</html>")]
    with pytest.raises(QfexResponseError, match="non-JSON body"):
        await rest.positions(SUB1)


async def test_retry_after_http_date_and_headers_per_request(scripted) -> None:
    app, rest = scripted
    ok = json.dumps({"balance": {"available_balance": 5}, "positions": []}).encode()
    app.script["/user/positions"] = [
        (429, [(b"retry-after", b"Wed, 21 Oct 2015 07:28:00 GMT")], b""),  # in the past: 0 s
        (503, HTML, b"<html>busy</html>"),
        (200, JSON, ok),
    ]
    snap = await rest.positions(SUB1)
    assert snap.balance.available == Decimal(5)
    assert len(app.requests) == 3
    nonces = {r[2]["x-qfex-nonce"] for r in app.requests}
    assert len(nonces) == 3  # each attempt signed afresh
    assert all(r[2]["x-qfex-requested-account-id"] == SUB1 for r in app.requests)


async def test_primary_account_omits_requested_header(scripted) -> None:
    app, rest = scripted
    ok = json.dumps({"balance": {"available_balance": 1}, "positions": []}).encode()
    app.script["/user/positions"] = [(200, JSON, ok)]
    snap = await rest.positions(PRIMARY)
    assert snap.account_id == PRIMARY
    assert "x-qfex-requested-account-id" not in app.requests[0][2]


async def test_public_refdata_is_not_signed(scripted) -> None:
    app, rest = scripted
    app.script["/refdata"] = [
        (
            200,
            JSON,
            json.dumps(
                {
                    "type": "refdata",
                    "data": [
                        {
                            "symbol": "AAPL-USD",
                            "status": "ACTIVE",
                            "tick_size": "0.01",
                            "lot_size": "0.001",
                            "min_quantity": "0.001",
                            "max_quantity": "1000",
                            "min_price": "0.01",
                            "max_price": "1000000",
                        }
                    ],
                }
            ).encode(),
        )
    ]
    (info,) = await rest.refdata()
    assert info.lot_size == Decimal("0.001")
    assert "x-qfex-hmac-signature" not in app.requests[0][2]


async def test_get_transport_errors_exhaust_to_unavailable() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with QfexRest(
        f"http://127.0.0.1:{port}",
        QfexAuth("pk", Secret("sk")),
        timeout=1.0,
        backoff_initial=0.01,
        max_retries=2,
    ) as rest:
        with pytest.raises(QfexUnavailableError, match="after 3 attempts"):
            await rest.subaccounts()


async def test_shared_client_is_not_closed() -> None:
    async with httpx.AsyncClient() as client:
        rest = QfexRest("http://127.0.0.1:1", None, client=client)
        await rest.aclose()
        assert not client.is_closed
