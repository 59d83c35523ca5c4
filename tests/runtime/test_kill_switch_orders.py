"""A kill switch that means stop: no money movement and no new orders while it is engaged,
cancels still allowed, visible in /healthz and status, optionally cancelling open orders."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from qfexbot import ActionRejected, BotContext, OrderUpdateEvent, hookimpl
from qfexbot.money.killswitch import pause, resume
from qfexbot.ops.status import health, status_snapshot
from qfexbot.runtime.actions import PAUSED_CODE
from qfexbot.testing import run_bot


class Quiet:
    """A plugin that does nothing by itself; the test acts through its context."""

    @hookimpl
    def qfexbot_event(self, ctx: BotContext, event: object) -> None:
        return None


def statuses(bot, order_id: str) -> list[str]:
    return [e.status for e in bot.events_of(OrderUpdateEvent, "desk-a") if e.order_id == order_id]


async def test_engaged_it_refuses_new_orders_lets_cancels_through_and_says_so(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="qfexbot")
    async with run_bot(Quiet, tmp_path=tmp_path, accounts={"desk-a": 10_000}) as bot:
        ctx = bot.ctx
        await ctx.add_order("desk-a", symbol="AAPL-USD", side="BUY", order_type="LIMIT",
                            quantity=Decimal(1), price=Decimal(190),
                            client_order_id="rest")  # fmt: skip
        [ack] = await bot.wait_for(
            lambda: [e for e in bot.events_of(OrderUpdateEvent, "desk-a") if e.status == "ACK"]
        )
        switch = bot.runtime.app.runtime.kill_switch_file
        pause(switch, "operator: venue incident")
        with pytest.raises(ActionRejected) as refused:
            await ctx.add_order("desk-a", symbol="AAPL-USD", side="BUY", order_type="MARKET",
                                quantity=Decimal(1), time_in_force="IOC")  # fmt: skip
        assert refused.value.code == PAUSED_CODE
        assert "kill switch engaged (operator: venue incident" in str(refused.value)
        for act in (
            ctx.place_stop_order("desk-a", symbol="AAPL-USD", side="SELL", stop_type="STOP_MARKET",
                                 trigger_price=Decimal(150), quantity=Decimal(1)),
            ctx.modify_order("desk-a", symbol="AAPL-USD", order_id=ack.order_id, side="BUY",
                             order_type="LIMIT", price=Decimal(191)),
            ctx.start_twap("desk-a", symbol="AAPL-USD", side="BUY", total_quantity=Decimal(2),
                           num_orders=2, interval_seconds=30),
        ):  # fmt: skip
            with pytest.raises(ActionRejected, match="kill switch engaged"):
                await act
        refusals = await bot.journal_entries(kind="refusal")
        assert {r.data["type"] for r in refusals} == {"add_order", "modify_order", "add_twap"}
        assert {r.data["code"] for r in refusals} == {PAUSED_CODE}
        # Risk can still be taken away.
        await ctx.cancel_order("desk-a", symbol="AAPL-USD", order_id=ack.order_id)
        await bot.wait_for(lambda: "CANCELLED" in statuses(bot, ack.order_id), what="cancel")
        ok, problems = health(bot.runtime)
        assert not ok and any(p.startswith("kill switch engaged: operator") for p in problems)
        document = await status_snapshot(bot.runtime)
        assert document["kill_switch"] is True
        assert document["kill_switch_reason"].startswith("operator: venue incident")
        engaged = "kill switch engaged: no money movement, no new orders"
        await bot.wait_for(lambda: engaged in caplog.text, what="the watcher's log line")
        resume(switch)
        await bot.wait_for(lambda: "kill switch released" in caplog.text, what="the release")
        await ctx.add_order("desk-a", symbol="AAPL-USD", side="BUY", order_type="MARKET",
                            quantity=Decimal(1), time_in_force="IOC",
                            client_order_id="after")  # fmt: skip
        await bot.wait_for(
            lambda: [e for e in bot.events_of(OrderUpdateEvent, "desk-a")
                     if e.client_order_id == "after" and e.status == "FILLED"],
            what="orders flow again",
        )  # fmt: skip
        assert caplog.text.count(engaged) == 1, "a change is logged once, not each second"


async def test_kill_switch_cancels_orders_cancels_every_open_order_when_it_engages(tmp_path):
    async with run_bot(
        Quiet,
        tmp_path=tmp_path,
        accounts={"desk-a": 10_000, "desk-b": 10_000},
        runtime={"kill_switch_cancels_orders": True},
    ) as bot:
        for account in ("desk-a", "desk-b"):
            await bot.ctx.add_order(account, symbol="AAPL-USD", side="BUY", order_type="LIMIT",
                                    quantity=Decimal(1), price=Decimal(190))  # fmt: skip
        engine = bot.sim.engine
        await bot.wait_for(lambda: len(engine.orders) == 2, what="two resting orders")
        pause(bot.runtime.app.runtime.kill_switch_file, "drawdown")
        await bot.wait_for(lambda: not engine.orders, what="every open order cancelled", timeout=10)
        requests = await bot.journal_entries(kind="request")
        assert sorted(r.plugin for r in requests) == ["kill-switch", "kill-switch"]
        assert {r.data["type"] for r in requests} == {"cancel_all_orders"}
