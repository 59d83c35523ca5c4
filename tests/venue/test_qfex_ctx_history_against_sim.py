"""The ``ctx`` methods that read the simulator's TWAPs, REST account history and market
history, through ``run_bot`` against the embedded simulator; funding payments from its funding
windows."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from venue_helpers import PRIMARY, PUB, SECRET, FastSettings, Recorder

from qfexbot import (
    BotContext,
    CandleEvent,
    FundingPaymentEvent,
    OrderUpdateEvent,
    TwapEvent,
    hookimpl,
)
from qfexbot.core.secrets import Secret
from qfexbot.events import ConnectionState
from qfexbot.sim import QfexSimulator, SimConfig, SimUser
from qfexbot.testing import BotHarness, run_bot
from qfexbot.venues.qfex.adapter import QfexVenue

D = Decimal
SIM = {"pulse_interval": 0.1}


class Quiet:
    """A plugin that does nothing by itself; the test acts through its context."""

    @hookimpl
    def qfexbot_event(self, ctx: BotContext, event: object) -> None:
        return None


async def filled(bot: BotHarness, client_order_id: str) -> OrderUpdateEvent:
    found = await bot.wait_for(lambda: [
        e for e in bot.events_of(OrderUpdateEvent, "desk-a")
        if e.client_order_id == client_order_id and e.status == "FILLED"],
        what=f"{client_order_id} filled")  # fmt: skip
    return found[-1]


async def market_buy(bot: BotHarness, client_order_id: str, quantity: str = "1") -> Any:
    await bot.ctx.add_order("desk-a", symbol="AAPL-USD", side="BUY", order_type="MARKET",
                            quantity=D(quantity), time_in_force="IOC",
                            client_order_id=client_order_id)  # fmt: skip
    return await filled(bot, client_order_id)


async def test_a_twap_starts_shows_as_open_is_cancelled_and_lands_in_history(tmp_path) -> None:
    async with run_bot(Quiet, tmp_path=tmp_path, sim=SIM) as bot:
        ctx = bot.ctx
        await ctx.start_twap("desk-a", symbol="AAPL-USD", side="BUY", total_quantity=D(2),
                             num_orders=2, interval_seconds=30,
                             client_twap_id="twap-1")  # fmt: skip
        active = await bot.wait_for(lambda: bot.events_of(TwapEvent, "desk-a"), what="a TWAP")
        twap_id = active[0].twap_id
        assert active[0].client_twap_id == "twap-1" and active[0].total_quantity == D(2)
        # The first child is placed at once; the TWAP rests until the next interval.
        await filled(bot, "twap-1:1")
        resting = await ctx.open_orders("desk-a")
        assert [t.twap_id for t in resting.twaps] == [twap_id]
        await ctx.cancel_twap("desk-a", symbol="AAPL-USD", client_twap_id="twap-1")
        ended = await bot.wait_for(lambda: [
            e for e in bot.events_of(TwapEvent, "desk-a") if e.status == "CANCELLED"],
            what="the TWAP cancelled")  # fmt: skip
        assert ended[-1].twap_id == twap_id and ended[-1].filled_quantity == D(1)
        assert (await ctx.open_orders("desk-a")).twaps == ()
        history = await ctx.twap_history("desk-a", symbol="AAPL-USD")
        assert [(t.twap_id, t.status) for t in history] == [(twap_id, "CANCELLED")]


async def test_trades_order_history_fees_and_find_order_read_the_account_history(
    tmp_path,
) -> None:
    async with run_bot(Quiet, tmp_path=tmp_path, sim=SIM) as bot:
        ctx = bot.ctx
        since = time.time() - 5
        order = await market_buy(bot, "hist-1")
        second = await market_buy(bot, "hist-2", "2")
        trades = await ctx.trades("desk-a", symbol="AAPL-USD", start=since)
        # Newest first (the REST trade row has no client order id; an order may fill in parts).
        assert list(dict.fromkeys(t.order_id for t in trades)) == [second.order_id, order.order_id]
        assert sum(t.quantity for t in trades if t.order_id == second.order_id) == D(2)
        assert all(t.fee > 0 and t.symbol == "AAPL-USD" for t in trades)
        mine = await ctx.trades("desk-a", order_id=order.order_id)
        assert [t.order_id for t in mine] == [order.order_id]
        assert len(await ctx.trades("desk-a", limit=1)) == 1
        (done,) = await ctx.order_history("desk-a", client_order_id="hist-1")
        assert (done.order_id, done.filled_quantity) == (order.order_id, D(1))
        fees = await ctx.fees("desk-a")
        assert fees["AAPL-USD"].maker < fees["AAPL-USD"].taker
        venue = bot.runtime.venues[bot.venue].venue
        found = await venue.find_order(bot.account_id("desk-a"), "hist-1")
        assert found is not None and found.terminal and found.order_id == order.order_id
        assert await venue.find_order(bot.account_id("desk-a"), "never-sent") is None


async def test_candles_funding_and_open_interest_history_and_live_candles(tmp_path) -> None:
    market_data = {"channels": ["candle"], "symbols": ["AAPL-USD"], "candle_intervals": ["1MIN"]}
    async with run_bot(Quiet, tmp_path=tmp_path, sim=SIM, market_data=market_data) as bot:
        ctx = bot.ctx
        live = await bot.wait_for(lambda: bot.events_of(CandleEvent), what="a live candle")
        assert (live[0].symbol, live[0].resolution) == ("AAPL-USD", "1MIN")
        await market_buy(bot, "oi-1")
        now = time.time()
        candles = await ctx.candles("AAPL-USD", resolution="1MIN", start=now - 300, end=now + 60)
        assert candles and all(c.low <= c.close <= c.high for c in candles)
        funding = await ctx.funding_history("AAPL-USD", start=now - 3600, end=now,
                                            interval_minutes=60)  # fmt: skip
        assert funding and all(p.symbol == "AAPL-USD" for p in funding)
        interest = await ctx.open_interest_history("AAPL-USD", start=now - 120, end=now + 60,
                                                   interval_minutes=1)  # fmt: skip
        assert interest[-1].open_interest is not None and interest[-1].open_interest >= D(1)


async def test_funding_paid_on_a_position_arrives_as_funding_payment_events(nursery) -> None:
    user = SimUser(public_key=PUB, secret=SECRET, account_id=PRIMARY,
                   deposits={PRIMARY: D(100000)})  # fmt: skip
    sim = QfexSimulator(SimConfig(users=[user], pulse_interval=0.1, mds_interval=0.1,
                                  price_interval=0.1, seed=3, funding_interval=0.5))  # fmt: skip
    urls = await nursery.start(sim.serve, "127.0.0.1")
    venue = QfexVenue("simq", trade_url=urls.trade_url, mds_url=urls.mds_url,
                      rest_url=urls.rest_url, user_id=PRIMARY, settings=FastSettings(),
                      public_key=PUB, secret=Secret(SECRET))  # fmt: skip
    try:
        rec = Recorder()
        session = venue.private_session(PRIMARY, publish=rec)
        await nursery.start(session.run)
        await rec.wait_state(ConnectionState.LIVE)
        await session.send({"type": "add_order", "params": {
            "symbol": "AAPL-USD", "side": "BUY", "order_type": "MARKET",
            "order_time_in_force": "IOC", "quantity": 5, "price": 0,
            "client_order_id": "long-funding"}})  # fmt: skip
        # The underlier far below the mark: longs pay at every window's end.
        sim.engine.economics.set_underlier("AAPL-USD", offset=D(-20))
        first = await rec.wait(lambda e: isinstance(e, FundingPaymentEvent), timeout=8)
        second = await rec.wait(lambda e: isinstance(e, FundingPaymentEvent),
                                after=rec.events.index(first) + 1, timeout=8)  # fmt: skip
        for payment in (first, second):
            assert payment.symbol == "AAPL-USD" and payment.amount < 0
        assert second.net_funding == first.net_funding + second.amount
    finally:
        await venue.aclose()
