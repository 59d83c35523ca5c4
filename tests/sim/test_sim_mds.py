"""The market-data WebSocket: level2/bbo snapshots, mark price, public trades, no acks."""

from __future__ import annotations

from decimal import Decimal

import trio
from sim_client import Sim, connect, market_order


async def test_level2_bbo_and_mark_price_for_all_symbols(running: Sim) -> None:
    async with connect(running.urls.mds_url) as ws:
        await ws.send({"type": "subscribe", "channels": ["mark_price"], "symbols": ["AAPL-USD"]})
        mark = await ws.recv()
        assert mark["type"] == "mark_price" and mark["symbol"] == "AAPL-USD"
        assert isinstance(mark["price"], str) and mark["time"].endswith("Z")
        await ws.send({"type": "subscribe", "channels": ["level2", "bbo"], "symbols": ["*"]})
        books = {}
        with trio.fail_after(3):
            while len(books) < 8:
                frame = await ws.recv()
                if frame["type"] in ("level2", "bbo"):
                    books.setdefault((frame["type"], frame["symbol"]), []).append(frame)
        level2 = books[("level2", "AAPL-USD")][0]
        assert 1 <= len(level2["bid"]) <= 20 and 1 <= len(level2["ask"]) <= 20
        assert all(isinstance(p, str) and isinstance(q, str) for p, q in level2["bid"])
        assert Decimal(level2["bid"][0][0]) < Decimal(level2["ask"][0][0])
        bbo = books[("bbo", "AAPL-USD")][0]
        assert len(bbo["bid"]) == len(bbo["ask"]) == 1
        assert bbo["bid"][0] == level2["bid"][0] and bbo["sequence"] == level2["sequence"]
        later = await ws.recv_until(lambda f: f["type"] == "level2" and f["symbol"] == "AAPL-USD")
        assert later["sequence"] > level2["sequence"]


async def test_trade_channel_prints_sim_trades(running: Sim) -> None:
    account = running.sim.config.users[0].account_id
    async with connect(running.urls.mds_url) as ws:
        await ws.send(
            {
                "type": "subscribe",
                "channels": ["trade", "mark_price"],
                "symbols": ["AAPL-USD", "NOPE-USD"],
            }
        )
        assert (await ws.recv())["symbol"] == "AAPL-USD"  # the subscription is in place
        running.sim.deliver(running.sim.engine.add_order(account, market_order("SELL", 1)))
        trade = await ws.recv_until(lambda f: f["type"] == "trade")
        assert trade["symbol"] == "AAPL-USD" and trade["side"] == "SELL"
        assert trade["size"] == "1" and trade["execution_type"] == "T"
        assert Decimal(trade["price"]) == Decimal("199.99")
        await ws.send(
            {"type": "unsubscribe", "channels": ["trade", "mark_price"], "symbols": ["AAPL-USD"]}
        )
        await ws.send({"type": "subscribe", "channels": ["mark_price"], "symbols": ["EUR-USD"]})
        await ws.recv_until(lambda f: f["symbol"] == "EUR-USD")
        running.sim.deliver(running.sim.engine.add_order(account, market_order("SELL", 1)))
        with trio.move_on_after(0.3):
            frame = await ws.recv_until(lambda f: f["type"] == "trade")
            raise AssertionError(f"trade after unsubscribe: {frame}")


async def test_malformed_mds_message_gets_err(running: Sim) -> None:
    async with connect(running.urls.mds_url) as ws:
        await ws.send("nope")
        assert (await ws.recv())["err"]["error_code"] == "InvalidJSONFormat"
        await ws.send({"type": "subscribe", "channels": "level2"})
        assert (await ws.recv())["err"]["error_code"] == "InvalidJSONFormat"
