"""The economics rejects, funding through the pulses, the underlier admin route and refdata's
market hours over the simulator's real sockets, every frame and body validated against the
vendored spec schemas."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

import httpx
import trio
from sim_client import PRIMARY, connect, start_sim
from validate import ValidationError, validate_problem, validate_rest, validate_trade_frame

from qfexbot.sim import SimSymbol
from qfexbot.sim.qfex.config import WEEKDAYS, MarketHours, default_symbols

D = Decimal
WAIT = 5.0
CLOSED = "AAPL-USD"
CAPPED = "CAP-USD"
FUNDED = "US500-USD"


def _closed_now() -> MarketHours:
    """Hours whose only session is three weekdays from today (UTC): closed all test long."""
    today = datetime.now(UTC).weekday()
    return MarketHours("UTC", {WEEKDAYS[(today + 3) % 7]: (time(0), time(23, 59, 59))})


def _symbols(closed: MarketHours) -> dict[str, SimSymbol]:
    symbols = default_symbols()
    symbols[CLOSED] = SimSymbol(CLOSED, D("200.00"), market_hours=closed)
    symbols[CAPPED] = SimSymbol(CAPPED, D("100.00"), max_open_interest=D("0.5"))
    return symbols


def _order(symbol: str, order_type: str = "MARKET", **extra: Any) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "side": "BUY",
        "order_type": order_type,
        "order_time_in_force": "IOC" if order_type == "MARKET" else "GTC",
        "quantity": 1,
        **extra,
    }


async def test_economics_rejects_funding_and_refdata_validate(nursery: trio.Nursery) -> None:
    closed = _closed_now()
    sim = await start_sim(
        nursery, symbols=_symbols(closed), max_open_orders=1, funding_interval=0.3
    )
    violations: list[str] = []

    def check(frame: Any) -> Any:
        try:
            validate_trade_frame(frame)
        except ValidationError as exc:
            violations.append(f"{exc.message} in {json.dumps(frame)[:300]}")
        return frame

    async with (
        connect(sim.urls.trade_url) as ws,
        httpx.AsyncClient(base_url=sim.urls.rest_url, timeout=WAIT) as rest,
    ):
        await ws.auth()
        await ws.subscribe("order_responses", "positions")

        async def status() -> str:
            frame = await ws.recv_until(lambda f: "order_response" in check(f))
            return frame["order_response"]["status"]

        await ws.command("add_order", **_order(CLOSED))
        assert await status() == "REJECTED_MARKET_CLOSED"
        await ws.command("add_order", **_order(CAPPED))
        assert await status() == "REJECTED_OPEN_INTEREST_LIMIT"
        await ws.command("add_order", **_order(FUNDED, "LIMIT", price=4900.0))
        assert await status() == "ACK"
        await ws.command("add_order", **_order(FUNDED, "LIMIT", price=4800.0))
        assert await status() == "REJECTED_TOO_MANY_OPEN_ORDERS"
        await ws.command("add_order", **_order(FUNDED))
        assert await status() == "ACK"

        # the underlier held 1 % below the mid: the long pays the capped rate each window
        mid = D(sim.sim.engine.markets[FUNDED].mid)
        moved = await rest.post(
            "/_sim/underlier", json={"symbol": FUNDED, "price": float(mid) * 0.99}
        )
        assert moved.status_code == 200
        assert D(moved.json()["offset"]) < 0
        with trio.fail_after(WAIT):
            while True:
                frame = check(await ws.recv())
                position = frame.get("position_response") if isinstance(frame, dict) else None
                if position and position["symbol"] == FUNDED and position["net_funding"] < 0:
                    break
        (first, *_) = sim.sim.engine.economics.payments(PRIMARY)
        assert first.rate == sim.sim.config.funding_cap and first.amount < 0

        bad = await rest.post("/_sim/underlier", json={"symbol": "NOPE-USD", "offset": 1})
        assert bad.status_code == 422
        validate_problem(bad.json())
        both = await rest.post("/_sim/underlier", json={"symbol": FUNDED, "price": 1, "offset": 1})
        assert both.status_code == 422
        validate_problem(both.json())
        cleared = await rest.post("/_sim/underlier", json={"symbol": FUNDED})
        assert cleared.json()["offset"] == "0"

        refdata = (await rest.get("/refdata")).json()
        validate_rest("RefdataResponse", refdata)
        hours = {row["symbol"]: row["market_hours"] for row in refdata["data"]}
        assert hours[CLOSED] == closed.as_refdata() and len(hours[CLOSED]) == 2
        assert hours[FUNDED]["tz"] == "UTC" and len(hours[FUNDED]) == 8
    assert not violations, "\n".join(violations)
