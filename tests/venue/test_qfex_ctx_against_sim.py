"""Each new ``ctx`` action and read through the real runtime (``qfexbot.testing.run_bot``) and the
QFEX adapter against the embedded simulator: orders are modified, stops rest and fire, a position
is closed, leverage is read and set, open orders and single orders are read back; the order
lookup the journal reconciles with; funding payments derived from the positions stream."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from qfexbot import (
    ActionError,
    ActionRejected,
    ActionUnavailable,
    BotContext,
    FundingPaymentEvent,
    MarkPriceEvent,
    OrderUpdateEvent,
    PositionEvent,
    hookimpl,
)
from qfexbot.testing import BotHarness, run_bot
from qfexbot.venues.qfex.driver import QfexMarketDataDriver, QfexTradeDriver
from qfexbot.venues.qfex.rest import QfexRest

D = Decimal
SIM = {"pulse_interval": 0.1}


class Quiet:
    """A plugin that does nothing by itself; the test acts through its context."""

    @hookimpl
    def qfexbot_event(self, ctx: BotContext, event: object) -> None:
        return None


def updates(bot: BotHarness, client_order_id: str, status: str | None = None) -> list[Any]:
    return [
        e
        for e in bot.events_of(OrderUpdateEvent, "desk-a")
        if e.client_order_id == client_order_id and (status is None or e.status == status)
    ]


async def status_of(bot: BotHarness, client_order_id: str, status: str) -> OrderUpdateEvent:
    found = await bot.wait_for(lambda: updates(bot, client_order_id, status),
                               what=f"{client_order_id} {status}")  # fmt: skip
    return found[-1]


async def buy(bot: BotHarness, client_order_id: str, quantity: str = "1", **extra: Any) -> None:
    await bot.ctx.add_order("desk-a", symbol="AAPL-USD", side="BUY", order_type="MARKET",
                            quantity=D(quantity), time_in_force="IOC",
                            client_order_id=client_order_id, **extra)  # fmt: skip
    await status_of(bot, client_order_id, "FILLED")


async def position(bot: BotHarness, symbol: str = "AAPL-USD") -> Decimal:
    snapshot = await bot.ctx.positions("desk-a")
    return sum((p.size for p in snapshot.positions if p.symbol == symbol), D(0))


async def test_modify_get_order_open_orders_and_cancel_all(tmp_path) -> None:
    async with run_bot(Quiet, tmp_path=tmp_path, sim=SIM) as bot:
        ctx = bot.ctx
        for n, price in enumerate(("150", "151")):
            await ctx.add_order("desk-a", symbol="AAPL-USD", side="BUY", order_type="LIMIT",
                                quantity=D(1), price=D(price),
                                client_order_id=f"rest-{n}")  # fmt: skip
        ack = await status_of(bot, "rest-0", "ACK")
        await status_of(bot, "rest-1", "ACK")
        open_now = await ctx.open_orders("desk-a", symbol="AAPL-USD")
        assert sorted(o.client_order_id for o in open_now.orders) == ["rest-0", "rest-1"]
        assert open_now.twaps == () and open_now.stop_orders == ()

        await ctx.modify_order("desk-a", symbol="AAPL-USD", order_id=ack.order_id, side="BUY",
                               order_type="LIMIT", price=D("155"), quantity=D(2))  # fmt: skip
        modified = await status_of(bot, "rest-0", "MODIFIED")
        assert modified.price == D(155) and modified.quantity == D(2)
        read = await ctx.get_order("desk-a", symbol="AAPL-USD", order_id=ack.order_id)
        assert read is not None and read.price == D(155) and not read.terminal
        # The reply answered the query: it was not published as an event as well.
        assert len(updates(bot, "rest-0")) == 2  # ACK, MODIFIED
        # A side that is not the order's own: the venue refuses, the order is unchanged.
        await ctx.modify_order("desk-a", symbol="AAPL-USD", order_id=ack.order_id, side="SELL",
                               order_type="LIMIT", price=D("156"))  # fmt: skip
        refusal = await bot.wait_for(lambda: [
            e for e in bot.events_of(OrderUpdateEvent, "desk-a")
            if e.order_id == ack.order_id and e.status == "CANNOT_MODIFY_NO_SUCH_ORDER"],
            what="the refusal")  # fmt: skip
        assert refusal[0].side == "SELL"  # the request's, as the venue echoes it

        await ctx.cancel_all("desk-a")
        await status_of(bot, "rest-0", "CANCELLED")
        await status_of(bot, "rest-1", "CANCELLED")
        assert (await ctx.open_orders("desk-a")).orders == ()
        done = await ctx.get_order("desk-a", symbol="AAPL-USD", order_id=ack.order_id)
        assert done is not None and done.status == "CANCELLED" and done.terminal
        assert await ctx.get_order("desk-a", symbol="AAPL-USD", order_id="no-such") is None

        async def journaled():
            rows = [(e.kind, e.data["type"], e.state) for e in await bot.journal_entries()
                    if e.kind in ("order", "cancel", "request")]  # fmt: skip
            # The order tracker reads the same events from its own inbox: wait for it.
            return rows if all(state != "acked" for *_, state in rows) else None

        kinds = await bot.wait_for(journaled, what="the journal's final states")
        # Orders to their final states; modify and cancel-all are requests, sent (the venue's
        # answers above are the events), never left submitted.
        assert kinds == [("order", "add_order", "cancelled"), ("order", "add_order", "cancelled"),
                         ("request", "modify_order", "sent"),
                         ("request", "modify_order", "sent"),
                         ("request", "cancel_all_orders", "sent")]  # fmt: skip


async def test_stop_orders_rest_change_cancel_and_fire(tmp_path) -> None:
    async with run_bot(Quiet, tmp_path=tmp_path, sim=SIM, channels=[
        "balances", "positions", "order_responses", "fills", "stop_orders"]) as bot:  # fmt: skip
        ctx = bot.ctx
        await buy(bot, "long-1", "2")
        await ctx.place_stop_order("desk-a", symbol="AAPL-USD", side="SELL",
                                   stop_type="STOP_LOSS", trigger_price=D(150), quantity=D(1),
                                   client_order_id="sl-1")  # fmt: skip
        stop = await status_of(bot, "sl-1", "ACK")
        assert stop.order_type == "STOP_LOSS"
        resting = await ctx.open_orders("desk-a")
        assert [s.stop_order_id for s in resting.stop_orders] == [stop.order_id]
        await ctx.modify_stop_order("desk-a", stop_order_id=stop.order_id, symbol="AAPL-USD",
                                    trigger_price=D(160), quantity=D(2))  # fmt: skip
        changed = await status_of(bot, "sl-1", "MODIFIED")
        assert changed.price == D(160) and changed.quantity == D(2)
        await ctx.cancel_stop_order("desk-a", stop_order_id=stop.order_id)
        await status_of(bot, "sl-1", "CANCELLED")
        assert (await ctx.open_orders("desk-a")).stop_orders == ()

        # A take-profit that fires when the mark rises through it.
        await ctx.place_stop_order("desk-a", symbol="AAPL-USD", side="SELL",
                                   stop_type="TAKE_PROFIT", trigger_price=D(210), quantity=D(1),
                                   client_order_id="tp-1")  # fmt: skip
        await status_of(bot, "tp-1", "ACK")
        bot.sim.set_price("AAPL-USD", D(215))
        await status_of(bot, "tp-1", "FILLED")
        assert await position(bot) == D(1)


async def test_close_position_flattens_and_a_flat_one_is_rejected(tmp_path) -> None:
    async with run_bot(Quiet, tmp_path=tmp_path, sim=SIM) as bot:
        await buy(bot, "long-2", "3")
        await bot.ctx.close_position("desk-a", symbol="AAPL-USD", client_order_id="close-1")
        await status_of(bot, "close-1", "FILLED")
        assert await position(bot) == D(0)
        await bot.ctx.close_position("desk-a", symbol="AAPL-USD", client_order_id="close-2")
        rejected = await status_of(bot, "close-2", "REJECTED")
        assert rejected.terminal


async def test_leverage_levels_read_and_set(tmp_path) -> None:
    async with run_bot(Quiet, tmp_path=tmp_path, sim=SIM) as bot:
        ctx = bot.ctx
        levels = await ctx.leverage_levels("desk-a")
        aapl = sorted(lv.leverage for lv in levels if lv.symbol == "AAPL-USD")
        assert len(aapl) >= 2 and all(lv.max_notional > 0 for lv in levels)
        target = aapl[0]
        await ctx.set_leverage("desk-a", symbol="AAPL-USD", leverage=target)
        current = {lv.symbol: lv.leverage for lv in await ctx.leverage("desk-a")}
        assert current["AAPL-USD"] == target
        with pytest.raises(ActionRejected) as refused:
            await ctx.set_leverage("desk-a", symbol="AAPL-USD", leverage=D("7.77"))
        assert refused.value.code


async def test_attached_take_profit_and_stop_loss_reach_the_venue(tmp_path) -> None:
    async with run_bot(Quiet, tmp_path=tmp_path, sim=SIM) as bot:
        await buy(bot, "bracket-1", "1", take_profit=D(260), stop_loss=D(150))
        filled = updates(bot, "bracket-1", "FILLED")[-1]
        assert filled.take_profit == D(260) and filled.stop_loss == D(150)


async def test_find_order_finds_an_open_order_by_client_order_id(tmp_path) -> None:
    async with run_bot(Quiet, tmp_path=tmp_path, sim=SIM) as bot:
        await bot.ctx.add_order("desk-a", symbol="AAPL-USD", side="BUY", order_type="LIMIT",
                                quantity=D(1), price=D(150), client_order_id="look-1")  # fmt: skip
        await status_of(bot, "look-1", "ACK")
        venue = bot.runtime.venues[bot.venue].venue
        found = await venue.find_order(bot.account_id("desk-a"), "look-1")
        assert found is not None and found.client_order_id == "look-1" and found.status == "ACK"
        # No session of that account here: it cannot tell, which is not "the venue has none".
        with pytest.raises(ActionUnavailable, match="no live session"):
            await venue.find_order(bot.account_id("treasury"), "look-1")


async def test_reads_need_one_of_the_bots_own_accounts(tmp_path) -> None:
    async with run_bot(Quiet, tmp_path=tmp_path, sim=SIM) as bot:
        with pytest.raises(ActionError, match="no trade session"):
            await bot.ctx.open_orders("treasury")


async def test_a_dry_run_bot_journals_actions_and_leverage_and_sends_nothing(tmp_path) -> None:
    async with run_bot(Quiet, tmp_path=tmp_path, sim=SIM, dry_run=True) as bot:
        await bot.ctx.close_position("desk-a", symbol="AAPL-USD")
        await bot.ctx.set_leverage("desk-a", symbol="AAPL-USD", leverage=D(5))
        dry = await bot.journal_entries(kind="dry_run")
        assert [e.detail for e in dry] == ["would send close_position",
                                           "would set leverage 5 on AAPL-USD"]  # fmt: skip
        assert await bot.journal_entries(kind="order") == []


# ---------------------------------------------------------------- funding and candles


def _position_frame(size: str, net_funding: str) -> str:
    return json.dumps({"position_response": {
        "symbol": "AAPL-USD", "position": size, "position_side": "LONG", "average_price": "200",
        "realised_pnl": "0", "unrealised_pnl": "0", "net_funding": net_funding,
        "leverage": "10", "open_orders": 0, "open_quantity": "0"}})  # fmt: skip


def test_funding_payments_are_net_funding_changes_on_an_open_position() -> None:
    rest = QfexRest("http://127.0.0.1:9", None)
    driver = QfexTradeDriver(url="ws://x", venue="v", account_id="a", user_id="a", rest=rest,
                             jwt="t")  # fmt: skip

    def payments(frame: str) -> list[FundingPaymentEvent]:
        return [e for e in driver.parse(frame, 1.0) if isinstance(e, FundingPaymentEvent)]

    assert payments(_position_frame("2", "-1.5")) == []  # the first one is the baseline
    assert payments(_position_frame("2", "-1.5")) == []
    (paid,) = payments(_position_frame("2", "-2.25"))
    assert (paid.symbol, paid.amount, paid.net_funding) == ("AAPL-USD", D("-0.75"), D("-2.25"))
    assert isinstance(driver.parse(_position_frame("2", "-2.25"), 1.0)[0], PositionEvent)
    assert payments(_position_frame("0", "0")) == []  # closed: a reset is no payment
    assert payments(_position_frame("1", "0")) == []  # reopened: a new baseline
    (received,) = payments(_position_frame("1", "0.4"))
    assert received.amount == D("0.4")


def test_candle_pairs_subscribe_one_message_per_interval_and_route_back() -> None:
    driver = QfexMarketDataDriver(url="ws://x", venue="v")
    pairs = [("candle", "AAPL-USD/1MIN"), ("candle", "CL-USD/1MIN"), ("candle", "AAPL-USD/1HOUR"),
             ("bbo", "AAPL-USD")]  # fmt: skip
    assert driver.subscribe_messages(pairs) == [
        {"type": "subscribe", "channels": ["candle"], "symbols": ["AAPL-USD", "CL-USD"],
         "intervals": ["1MIN"]},
        {"type": "subscribe", "channels": ["candle"], "symbols": ["AAPL-USD"],
         "intervals": ["1HOUR"]},
        {"type": "subscribe", "channels": ["bbo"], "symbols": ["AAPL-USD"]},
    ]  # fmt: skip
    assert driver.unsubscribe_messages([("candle", "CL-USD/5MINS")]) == [
        {"type": "unsubscribe", "channels": ["candle"], "symbols": ["CL-USD"],
         "intervals": ["5MINS"]}
    ]  # fmt: skip
    frame = json.dumps({"type": "candle", "start": "2026-12-02T03:00:00Z", "symbol": "CL-USD",
                        "resolution": "1MIN", "open": "70", "high": "71", "low": "69",
                        "close": "70.5", "usdVolume": 1000, "trades": 3})  # fmt: skip
    (candle,) = driver.parse(frame, 1.0)
    assert driver.route(candle) == ("candle", "CL-USD/1MIN")


async def test_the_runtime_subscribes_candles_per_symbol_and_interval(tmp_path) -> None:
    market_data = {"channels": ["mark_price", "candle"], "symbols": ["AAPL-USD"],
                   "candle_intervals": ["1MIN", "1HOUR"]}  # fmt: skip
    async with run_bot(Quiet, tmp_path=tmp_path, sim=SIM, market_data=market_data) as bot:
        feed = bot.runtime.venues[bot.venue].venue.market_data()
        assert sorted(feed.pairs()) == [
            ("candle", "AAPL-USD/1HOUR"), ("candle", "AAPL-USD/1MIN"), ("mark_price", "AAPL-USD")
        ]  # fmt: skip
        # The other channels still flow on the same feed.
        await bot.wait_for(lambda: bot.events_of(MarkPriceEvent), what="a mark price")
