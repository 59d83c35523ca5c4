"""The market-data channels beyond books and prints, over the socket: candle (both subscribe
forms), funding, underlier, open_interest, minmax_price, market_stats, and level2 sig_figs."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import trio
from sim_client import Client, Sim, connect, market_order

D = Decimal
Predicate = Callable[[Any], bool]
QUIET = 0.3  # long enough for several pulses (mds_interval is 0.05 s in the tests)


def of(kind: str, symbol: str = "AAPL-USD", **fields: object) -> Predicate:
    """A frame predicate: ``type`` and ``symbol`` (and any other fields) as given."""
    return lambda f: (
        f.get("type") == kind
        and f.get("symbol") == symbol
        and all(f.get(k) == v for k, v in fields.items())
    )


async def nothing_like(ws: Client, predicate: Predicate, within: float = QUIET) -> None:
    """Fail if a frame matching ``predicate`` arrives within ``within`` seconds."""
    with trio.move_on_after(within):
        frame = await ws.recv_until(predicate)
        raise AssertionError(f"unexpected frame {frame}")


async def test_candle_both_subscribe_forms_and_trades(running: Sim) -> None:
    sim = running.sim
    account = sim.config.users[0].account_id
    async with connect(running.urls.mds_url) as a, connect(running.urls.mds_url) as b:
        await a.send(
            {
                "type": "subscribe",
                "channels": ["candle"],
                "symbols": ["AAPL-USD", "NOPE-USD"],
                "intervals": ["1MIN", "2MINS"],
            }
        )
        await b.send({"type": "subscribe", "channels": ["candle"], "symbols": ["AAPL-USD/5MINS"]})
        first = await a.recv_until(of("candle"))
        assert first["resolution"] == "1MIN" and first["start"].endswith("Z")
        assert D(first["low"]) <= D(first["close"]) <= D(first["high"])
        assert (await b.recv_until(of("candle")))["resolution"] == "5MINS"
        sim.deliver(sim.engine.add_order(account, market_order("BUY", 2)))
        traded = await a.recv_until(lambda f: of("candle")(f) and f["trades"] >= 1)
        bar = sim.engine.market_history.candle("AAPL-USD", "1MIN")
        assert bar is not None and traded["trades"] == bar.trades
        assert isinstance(traded["usdVolume"], int) and traded["usdVolume"] >= 400
        assert D(traded["high"]) >= D("200.01")
        later = await b.recv_until(lambda f: of("candle")(f) and f["trades"] >= 1)
        assert later["resolution"] == "5MINS"
        await a.send({"type": "unsubscribe", "channels": ["candle"], "symbols": ["AAPL-USD"]})
        await a.send({"type": "subscribe", "channels": ["mark_price"], "symbols": ["EUR-USD"]})
        await a.recv_until(of("mark_price", "EUR-USD"))  # the unsubscribe is in place
        sim.deliver(sim.engine.add_order(account, market_order("SELL", 1)))
        await nothing_like(a, of("candle"))


async def test_candle_without_intervals_subscribes_nothing(running: Sim) -> None:
    async with connect(running.urls.mds_url) as ws:
        await ws.send({"type": "subscribe", "channels": ["candle"], "symbols": ["AAPL-USD"]})
        await ws.send({"type": "subscribe", "channels": ["candle"], "symbols": ["AAPL-USD/7MINS"]})
        await nothing_like(ws, lambda f: f.get("type") == "candle")


async def test_level2_sig_figs_aggregates_and_echoes(running: Sim) -> None:
    engine = running.sim.engine
    async with connect(running.urls.mds_url) as ws:
        await ws.send(
            {"type": "subscribe", "channels": ["level2"], "symbols": ["AAPL-USD"], "sig_figs": [2]}
        )
        coarse = await ws.recv_until(of("level2"))
        assert coarse["sig_figs"] == 2
        bids, asks = engine.book("AAPL-USD", 10_000)
        assert coarse["bid"] == [["199.00", str(sum(q for _, q in bids))]]  # 199.80-199.99 down
        assert coarse["ask"] == [["201.00", str(sum(q for _, q in asks))]]  # 200.01-200.20 up
        await ws.send(
            {"type": "subscribe", "channels": ["level2"], "symbols": ["AAPL-USD"], "sig_figs": 1}
        )
        fine = await ws.recv_until(of("level2", sig_figs=1))
        assert [p for p, _ in fine["bid"]] == ["199.90", "199.80"]
        assert [p for p, _ in fine["ask"]] == ["200.10", "200.20"]
        await ws.send({"type": "unsubscribe", "channels": ["level2"], "symbols": ["AAPL-USD"]})
        await ws.send({"type": "subscribe", "channels": ["level2"], "symbols": ["AAPL-USD"]})
        plain = await ws.recv_until(lambda f: of("level2")(f) and "sig_figs" not in f)
        assert len(plain["bid"]) == 20 and plain["bid"][0][0] == "199.99"
        await ws.send(
            {"type": "subscribe", "channels": ["level2"], "symbols": ["AAPL-USD"], "sig_figs": [3]}
        )
        assert (await ws.recv_until(lambda f: "err" in f))["err"]["error_code"] == (
            "InvalidJSONFormat"
        )


async def test_funding_and_underlier_are_pulsed(running: Sim) -> None:
    engine = running.sim.engine
    engine.economics.underlier_offsets["AAPL-USD"] = D("-1.00")
    async with connect(running.urls.mds_url) as ws:
        await ws.send(
            {"type": "subscribe", "channels": ["funding", "underlier"], "symbols": ["AAPL-USD"]}
        )
        funding = await ws.recv_until(of("funding"))
        now = engine.clock()
        assert D(funding["funding_rate"]) == engine.economics.funding_rate("AAPL-USD", now) > 0
        assert isinstance(funding["time_remaining"], int)
        assert 0 <= funding["time_remaining"] <= 3600
        underlier = await ws.recv_until(of("underlier"))
        assert underlier["price"] == "199.00" and underlier["source"] == "external"
        again = await ws.recv_until(of("funding"))
        assert again["time"] >= funding["time"]


async def test_open_interest_and_minmax_on_subscribe_and_on_change(running: Sim) -> None:
    sim = running.sim
    account = sim.config.users[0].account_id
    async with connect(running.urls.mds_url) as ws:
        await ws.send(
            {
                "type": "subscribe",
                "channels": ["open_interest", "minmax_price"],
                "symbols": ["AAPL-USD"],
            }
        )
        assert (await ws.recv_until(of("open_interest")))["open_interest"] == "0"
        band = await ws.recv_until(of("minmax_price"))
        low, high = sim.engine.economics.band("AAPL-USD")
        assert (band["min_price"], band["max_price"]) == (str(low), str(high))
        await nothing_like(ws, of("open_interest"))  # unchanged: not sent again
        sim.deliver(sim.engine.add_order(account, market_order("BUY", 3)))
        assert (await ws.recv_until(of("open_interest")))["open_interest"] == "3"
        sim.set_price("AAPL-USD", D("250.00"))
        moved = await ws.recv_until(of("minmax_price"))
        assert D(moved["max_price"]) > high


async def test_market_stats_snapshot_then_every_pulse(running: Sim) -> None:
    sim = running.sim
    account = sim.config.users[0].account_id
    sim.deliver(sim.engine.add_order(account, market_order("BUY", 2)))
    async with connect(running.urls.mds_url) as ws:
        await ws.send({"type": "subscribe", "channels": ["market_stats"], "symbols": ["*"]})
        first = await ws.recv_until(of("market_stats", "*"))
        names = set(sim.engine.markets)
        assert {b["symbol"] for b in first["bbos"]} == names
        assert {m["symbol"] for m in first["mark_prices"]} == names
        volumes = {v["symbol"]: v["volume"] for v in first["daily_volumes"]}
        assert volumes["AAPL-USD"] == "2" and volumes["EUR-USD"] == "0"
        interest = {o["symbol"]: o["open_interest"] for o in first["open_interests"]}
        assert interest["AAPL-USD"] == "2"
        second = await ws.recv_until(of("market_stats", "*"))
        assert second["sequence"] > first["sequence"]
        await ws.send({"type": "subscribe", "channels": ["market_stats"], "symbols": ["EUR-USD"]})
        one = await ws.recv_until(of("market_stats", "EUR-USD"))
        assert [b["symbol"] for b in one["bbos"]] == ["EUR-USD"]
        assert one["daily_volumes"] == [{"symbol": "EUR-USD", "volume": "0"}]
