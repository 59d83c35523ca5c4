"""The simulator's private REST history routes, read by a client written from the OpenAPI alone.

The client signs every request per the spec's ``PublicKey`` security scheme (HMAC-SHA256 of
``{nonce}:{unix_ts}`` with the secret, hex; four ``x-qfex-*`` headers) over httpx; it imports
nothing of qfexbot's client. Every 200 body is validated against its vendored component, every
problem against ``ErrorModel``; paging bounds, bad parameters, 401/403/404/405 and the CSV
exports are checked against what the spec says.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import secrets
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
import trio
from sim_client import OTHER, PRIMARY, SUB1, USER, Sim, start_sim, wait_until
from validate import document, validate_problem, validate_rest

from qfexbot.sim import SimUser

WAIT = 5.0
SCHEMAS = "https://api.qfex.com/schemas"
ROUTES = {
    "/user/trade": "TradesResponseBody",
    "/user/historic-orders": "HistoricOrdersResponseBody",
    "/user/historic-twaps": "HistoricTwapsResponseBody",
    "/user/historic-pnl": "HistoricUserPnlResponseBody",
    "/pnl": "HourlyPnlResponseBody",
    "/user/volume": "UserVolumeResponseBody",
    "/user/fees": "FeesResponseBody",
    "/user/referral-rewards": "ReferralRewardsResponseBody",
}
CSV_ROUTES = {
    "/trades-csv": ("/user/trade", "Trade", "id"),
    "/historic-orders-csv": ("/user/historic-orders", "HistoricOrder", "order_id"),
    "/historic-twaps-csv": ("/user/historic-twaps", "HistoricTwap", "twap_id"),
}


class SpecRest:
    """A REST client from the OpenAPI text: every private call carries a fresh signature."""

    def __init__(self, client: httpx.AsyncClient, user: SimUser) -> None:
        self.client = client
        self.user = user

    def headers(self, account_id: str | None = None, *, secret: str | None = None) -> dict:
        nonce = secrets.token_hex(16)
        unix_ts = int(time.time())
        key = (secret or self.user.secret).encode()
        signature = hmac.new(key, f"{nonce}:{unix_ts}".encode(), hashlib.sha256).hexdigest()
        headers = {
            "x-qfex-public-key": self.user.public_key,
            "x-qfex-hmac-signature": signature,
            "x-qfex-nonce": nonce,
            "x-qfex-timestamp": str(unix_ts),
        }
        if account_id is not None:
            headers["x-qfex-requested-account-id"] = account_id
        return headers

    async def get(self, path: str, account_id: str | None = None, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.headers(account_id))

    async def post(self, path: str, body: Any, account_id: str | None = None) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.headers(account_id))


def ok(response: httpx.Response, component: str) -> Any:
    """A 200 JSON body valid against ``component`` and naming it in ``$schema``."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    validate_rest(component, body)
    assert body["$schema"] == f"{SCHEMAS}/{component}.json"
    if "data" in body:
        assert body["count"] == len(body["data"])
    return body


def problem(response: httpx.Response, status: int, location: str | None = None) -> dict:
    """A problem+json ``ErrorModel`` of ``status`` (its first error at ``location``)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    validate_problem(body)
    assert body["status"] == status and body["title"] and body["detail"]
    if location is not None:
        assert body["errors"][0]["location"] == location, body
        assert body["errors"][0]["message"]
    return body


def _market(side: str, qty: str = "1", symbol: str = "AAPL-USD", **extra: Any) -> dict:
    return {
        "symbol": symbol,
        "side": side,
        "order_type": "MARKET",
        "order_time_in_force": "IOC",
        "quantity": Decimal(qty),
        **extra,
    }


@pytest.fixture
async def traded(nursery: trio.Nursery) -> Sim:
    """A simulator where the primary account has trades, finished orders, a finished TWAP and
    pnl samples, so no list the routes return is empty."""
    sim = await start_sim(nursery)
    engine = sim.sim.engine
    deliver = sim.sim.deliver
    mid = engine.markets["AAPL-USD"].mid
    deliver(engine.add_order(PRIMARY, _market("BUY", "2", client_order_id="open")))
    deliver(engine.add_order(PRIMARY, _market("SELL", "1", client_order_id="close")))
    resting = {
        **_market("SELL", client_order_id="maker"),
        "order_type": "LIMIT",
        "order_time_in_force": "GTC",
        "price": mid + 1,
    }
    deliver(engine.add_order(PRIMARY, resting))
    sim.sim.set_price("AAPL-USD", mid + 5)
    twap = {
        "symbol": "CL-USD",
        "side": "BUY",
        "total_quantity": Decimal(1),
        "num_orders": 2,
        "order_interval_secs": 30,
        "reduce_only": False,
        "client_twap_id": "one-shot",
    }
    deliver(engine.twaps.add(PRIMARY, twap))  # its first child fills now
    cancel = {"cancel_order_id_type": "client_twap_id", "order_id": "one-shot"}
    deliver(engine.twaps.cancel(PRIMARY, cancel) or [])
    assert engine.twaps.finished(PRIMARY)
    with trio.fail_after(WAIT):
        await wait_until(lambda: len(engine.account_history.samples(PRIMARY)) >= 3)
    return sim


async def test_every_route_answers_its_component(traded: Sim) -> None:
    async with httpx.AsyncClient(base_url=traded.urls.rest_url, timeout=WAIT) as client:
        rest = SpecRest(client, USER)
        for path, component in ROUTES.items():
            body = ok(await rest.get(path), component)
            if path not in ("/user/fees", "/user/referral-rewards"):
                assert body.get("data"), f"{path} returned no rows to validate"
        fees = ok(await rest.get("/user/fees"), "FeesResponseBody")["fees"]
        assert fees["AAPL-USD"] == {"maker_fee": 10000, "taker_fee": 20000}
        for duration in ("1d", "1w", "1m", "3m", "ytd", "all"):
            for unit in ("number", "percent"):
                ok(
                    await rest.get("/user/historic-pnl", duration=duration, unit=unit),
                    "HistoricUserPnlResponseBody",
                )
            rewards = await rest.get("/user/referral-rewards", duration=duration)
            ok(rewards, "ReferralRewardsResponseBody")
        for range_ in ("1w", "1m", "ytd", "all"):
            ok(await rest.get("/user/volume", range=range_), "UserVolumeResponseBody")
        filtered = ok(
            await rest.get("/user/historic-pnl", symbol="AAPL-USD,CL-USD"),
            "HistoricUserPnlResponseBody",
        )
        assert filtered["symbols"] == ["AAPL-USD", "CL-USD"]
        ok(await rest.get("/user/volume", symbol="AAPL-USD"), "UserVolumeResponseBody")
        trades = ok(
            await rest.get(
                "/user/trade", symbol="AAPL-USD", ordertype="LIMIT", orderdirection="SELL"
            ),
            "TradesResponseBody",
        )
        assert len(trades["data"]) == 1 and trades["data"][0]["order_type"] == "LIMIT"
        orders = ok(
            await rest.get("/user/historic-orders", client_order_id="maker"),
            "HistoricOrdersResponseBody",
        )
        assert [o["execution_state"] for o in orders["data"]] == ["FILLED"]
        assert orders["data"][0]["passive_qty"] == 1.0
        twaps = ok(
            await rest.get("/user/historic-twaps", symbol="CL-USD"), "HistoricTwapsResponseBody"
        )
        assert [t["client_twap_id"] for t in twaps["data"]] == ["one-shot"]
        ok(await rest.get("/pnl", symbol="AAPL-USD", limit_hours=2), "HourlyPnlResponseBody")
        empty = ok(await rest.get("/user/trade", SUB1), "TradesResponseBody")
        assert empty["data"] == [] and empty["count"] == 0
        leverage = await rest.post("/user/leverage", {"symbol": "EUR-USD", "leverage": 5})
        assert ok(leverage, "SetUserLeverageResponseBody")["leverage"] == 5.0
        assert int(leverage.headers["statuscode"]) == 200


@pytest.mark.parametrize(
    ("path", "name", "low", "high"),
    [
        ("/user/trade", "limit", 1, 1000),
        ("/user/historic-orders", "limit", 1, 1000),
        ("/user/historic-twaps", "limit", 1, 1000),
        ("/pnl", "limit_hours", 1, 2160),
    ],
)
async def test_paging_bounds(traded: Sim, path: str, name: str, low: int, high: int) -> None:
    component = ROUTES[path]
    async with httpx.AsyncClient(base_url=traded.urls.rest_url, timeout=WAIT) as client:
        rest = SpecRest(client, USER)
        everything = ok(await rest.get(path), component)["data"]
        one = ok(await rest.get(path, **{name: low}), component)["data"]
        if path == "/pnl":  # one hour: the latest, a row per position
            latest = everything[-1]["hour"]
            assert one == [r for r in everything if r["hour"] == latest]
        else:
            assert one == everything[:1]
        assert ok(await rest.get(path, **{name: high}), component)["data"] == everything
        below = problem(await rest.get(path, **{name: low - 1}), 422, f"query.{name}")
        assert below["errors"][0]["value"] == low - 1
        above = problem(await rest.get(path, **{name: high + 1}), 422, f"query.{name}")
        assert above["errors"][0]["message"] == f"expected number <= {high}"
        problem(await rest.get(path, **{name: "ten"}), 422, f"query.{name}")


async def test_offset_pages_and_is_bounded(traded: Sim) -> None:
    async with httpx.AsyncClient(base_url=traded.urls.rest_url, timeout=WAIT) as client:
        rest = SpecRest(client, USER)
        for path in ("/user/trade", "/user/historic-orders"):
            everything = ok(await rest.get(path), ROUTES[path])["data"]
            page = ok(await rest.get(path, limit=1, offset=1), ROUTES[path])["data"]
            assert page == everything[1:2]
            problem(await rest.get(path, offset=-1), 422, "query.offset")


@pytest.mark.parametrize(
    ("path", "params", "location"),
    [
        ("/user/trade", {"start": "yesterday"}, "query.start"),
        ("/user/trade", {"end_time": "2025-10-10"}, "query.end_time"),
        ("/user/trade", {"start": "2025-10-10T00:00:00"}, "query.start"),  # no offset
        ("/user/trade", {"ordertype": "ICEBERG"}, "query.ordertype"),
        ("/user/trade", {"orderdirection": "LONG"}, "query.orderdirection"),
        (
            "/user/trade",
            {"start": "2025-10-10T00:00:00Z", "start_time": "2025-10-10T00:00:00Z"},
            "query.start_time",
        ),
        (
            "/user/historic-orders",
            {"start": "2025-10-11T00:00:00Z", "end": "2025-10-10T00:00:00Z"},
            "query.start",
        ),
        ("/user/historic-orders", {"end": "soon"}, "query.end"),
        ("/user/historic-pnl", {"duration": "2w"}, "query.duration"),
        ("/user/historic-pnl", {"unit": "bps"}, "query.unit"),
        ("/user/volume", {"range": "5y"}, "query.range"),
        ("/user/referral-rewards", {"duration": "forever"}, "query.duration"),
        ("/pnl", {"start": "2025-13-01T00:00:00Z"}, "query.start"),
    ],
)
async def test_bad_parameters_are_422(
    traded: Sim, path: str, params: dict[str, str], location: str
) -> None:
    async with httpx.AsyncClient(base_url=traded.urls.rest_url, timeout=WAIT) as client:
        body = problem(await SpecRest(client, USER).get(path, **params), 422, location)
    (error,) = body["errors"]
    if error["message"].startswith("expected string"):
        assert error["message"] == "expected string to be RFC 3339 date-time"
        assert error["value"] == params[location.removeprefix("query.")]


async def test_date_times_are_rfc3339(traded: Sim) -> None:
    async with httpx.AsyncClient(base_url=traded.urls.rest_url, timeout=WAIT) as client:
        rest = SpecRest(client, USER)
        for value in ("yesterday", "2025-10-10", "2025-10-10T00:00:00", "2025-13-01T00:00:00Z"):
            body = problem(await rest.get("/user/trade", start=value), 422, "query.start")
            assert body["errors"][0] == {
                "location": "query.start",
                "message": "expected string to be RFC 3339 date-time",
                "value": value,
            }
        for value in ("2025-10-10T00:00:00Z", "2025-10-10T02:00:00.123456789+02:00"):
            ok(await rest.get("/user/trade", start=value), "TradesResponseBody")


async def test_leverage_body_is_checked_against_its_schema(traded: Sim) -> None:
    async with httpx.AsyncClient(base_url=traded.urls.rest_url, timeout=WAIT) as client:
        rest = SpecRest(client, USER)
        for body, location in [
            ({"symbol": "CL-USD", "leverage": 2, "side": "BUY"}, "body.side"),
            ({"symbol": "CL-USD"}, "body.leverage"),
            ({"leverage": 2}, "body.symbol"),
            ({"symbol": "CL-USD", "leverage": "2"}, "body.leverage"),
            ({"symbol": "NOPE-USD", "leverage": 2}, "body.symbol"),
            ({"symbol": "CL-USD", "leverage": 2}, "body.leverage"),  # the TWAP's position
        ]:
            problem(await rest.post("/user/leverage", body), 422, location)
        ok(
            await rest.post("/user/leverage", {"symbol": "CL-USD", "leverage": 1.0}, SUB1),
            "SetUserLeverageResponseBody",
        )
        bad_json = await client.post("/user/leverage", content=b"{nope", headers=rest.headers())
        problem(bad_json, 400)


async def test_auth_and_routing_problems(traded: Sim) -> None:
    async with httpx.AsyncClient(base_url=traded.urls.rest_url, timeout=WAIT) as client:
        rest = SpecRest(client, USER)
        for path in (*ROUTES, *CSV_ROUTES):
            problem(await client.get(path), 401)
            problem(await client.get(path, headers=rest.headers(secret="wrong")), 401)
            forbidden = await client.get(path, headers=rest.headers(OTHER))
            problem(forbidden, 403, "header.x-qfex-requested-account-id")
        problem(await client.post("/user/leverage", json={}), 401)
        problem(await rest.get("/user/nothing"), 404)
        problem(await rest.get("/user/trades"), 404)
        problem(await rest.post("/user/trade", {}), 405)
        problem(await rest.get("/user/leverage"), 405)
        problem(await rest.post("/trades-csv", {}), 405)


def _columns(component: str) -> list[str]:
    schema = document("qfex_rest")["$defs"][component]
    return list(schema["required"])


async def test_csv_exports_have_the_json_rows(traded: Sim) -> None:
    async with httpx.AsyncClient(base_url=traded.urls.rest_url, timeout=WAIT) as client:
        rest = SpecRest(client, USER)
        for path, (twin, component, key) in CSV_ROUTES.items():
            response = await rest.get(path)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/csv")
            table = list(csv.DictReader(io.StringIO(response.text)))
            header = next(csv.reader(io.StringIO(response.text)))
            assert sorted(header) == sorted(_columns(component))
            rows = ok(await rest.get(twin, limit=1000), ROUTES[twin])["data"]
            assert [r[key] for r in table] == [r[key] for r in rows]
            assert table, f"{path} exported no rows"
            for exported, row in zip(table, rows, strict=True):
                for column in header:
                    value = row[column]
                    if value is None:
                        assert exported[column] == ""
                    elif isinstance(value, bool):
                        assert exported[column] == str(value).lower()
                    elif isinstance(value, (int, float)):
                        assert float(exported[column]) == value
                    else:
                        assert exported[column] == value
        filtered = await rest.get("/historic-twaps-csv", symbol="AAPL-USD")
        assert list(csv.reader(io.StringIO(filtered.text))) == [header_of("HistoricTwap", filtered)]
        sub = await rest.get("/trades-csv", SUB1)
        assert len(list(csv.reader(io.StringIO(sub.text)))) == 1


def header_of(component: str, response: httpx.Response) -> list[str]:
    header = next(csv.reader(io.StringIO(response.text)))
    assert sorted(header) == sorted(_columns(component))
    return header
