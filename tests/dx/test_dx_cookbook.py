"""Every cookbook recipe (docs/examples/*.py) loads in a real bot and does what the recipe says."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

from qfexbot import (
    BalanceEvent,
    FillEvent,
    FundingRateEvent,
    OrderUpdateEvent,
    TransferOutcomeEvent,
)
from qfexbot.testing import run_bot

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


async def test_top_up_moves_money_from_the_treasury_once(tmp_path):
    async with run_bot(
        "top_up",
        plugin_dirs=[EXAMPLES],
        tmp_path=tmp_path,
        options={"min": 100, "target": 500},
        accounts={"desk-a": 40},
    ) as bot:
        await bot.wait_for(lambda: bot.balance("desk-a") == Decimal(500), what="the top-up")
        outcomes = await bot.wait_for(
            lambda: [e for e in bot.events_of(TransferOutcomeEvent, "desk-a") if e.state == "done"]
        )
        await bot.wait_for(lambda: not bot.plugin.in_flight, what="the in-flight mark cleared")
        # Balance pulses keep coming: no second transfer is made once the desk is funded.
        await bot.wait_for(lambda: len(bot.events_of(BalanceEvent, "desk-a")) >= 5)
        desk_a = bot.account_id("desk-a")
        assert [(t.dst, t.amount) for t in bot.transfers] == [(desk_a, Decimal(460))]
        assert outcomes[0].amount == Decimal(460)
        [entry] = await bot.journal_entries(kind="transfer")
        assert (entry.state, entry.plugin, entry.reason) == ("done", "top_up", "top up below 100")


async def test_drawdown_alert_warns_once_per_episode(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    async with run_bot(
        "drawdown_alert",
        plugin_dirs=[EXAMPLES],
        tmp_path=tmp_path,
        options={"max_drawdown_pct": 20},
        accounts={"desk-a": 1000},
    ) as bot:
        desk_a = bot.account_id("desk-a")
        await bot.wait_for(lambda: bot.plugin.peaks.get(desk_a) == Decimal(1000))
        for available in (Decimal(700), Decimal(650)):  # 30 % then 35 % down: one alert
            await bot.inject(BalanceEvent, "desk-a", available=available)
        await bot.wait_for(lambda: bot.plugin.alerts, what="the alert")
        await bot.wait_for(lambda: desk_a not in bot.plugin.alerting, what="recovery (pulses)")
        await bot.inject(BalanceEvent, "desk-a", available=Decimal(100))
        await bot.wait_for(lambda: len(bot.plugin.alerts) == 2, what="a second episode")
        assert [(a, round(d, 2)) for a, d in bot.plugin.alerts] == [
            (desk_a, Decimal("0.30")),
            (desk_a, Decimal("0.90")),
        ]
        assert "drawdown desk-a: equity 700 is 30.0% under its peak" in caplog.text


async def test_order_then_cancel_goes_through_the_order_life_cycle(tmp_path):
    async with run_bot(
        "order_then_cancel",
        plugin_dirs=[EXAMPLES],
        tmp_path=tmp_path,
        options={"account": "desk-a"},
        accounts={"desk-a": 5000},
    ) as bot:
        await bot.wait_for(lambda: "CANCELLED" in bot.plugin.statuses, what="the cancel")
        assert bot.plugin.statuses == ["ACK", "CANCELLED"]
        kinds = [e.kind for e in await bot.journal_entries()]
        assert kinds == ["order", "cancel"]
        assert bot.sim.state_snapshot()["accounts"][bot.account_id("desk-a")]["open_orders"] == []


async def test_heartbeat_ticks_and_counts_events(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with run_bot(
        "heartbeat",
        plugin_dirs=[EXAMPLES],
        tmp_path=tmp_path,
        options={"every": 0.3},
        accounts={"desk-a": 100},
    ) as bot:
        await bot.wait_for(lambda: bot.plugin.ticks >= 2, what="two ticks")
    assert "heartbeat 1: " in caplog.text
    assert "balance=" in caplog.text  # pulses were counted between ticks


async def test_shared_state_reporter_reads_what_the_board_wrote(tmp_path):
    async with run_bot(
        "shared_state:BalanceBoard",
        name="board",
        plugin_dirs=[EXAMPLES],
        tmp_path=tmp_path,
        accounts={"desk-a": 100, "desk-b": 900},
        extra_plugins={"reporter": ("shared_state:RichestReporter", {"every": 0.2})},
    ) as bot:
        reporter = bot.slot("reporter").plugin
        await bot.wait_for(lambda: ("desk-b", Decimal(900)) in reporter.reports)
        assert bot.ctx.state is bot.slot("reporter").ctx.state
        assert bot.ctx.state["balance_board"] == {"desk-a": Decimal(100), "desk-b": Decimal(900)}


async def test_stop_loss_guard_stops_out_a_new_position_on_a_price_drop(tmp_path):
    async with run_bot(
        "stop_loss_guard",
        plugin_dirs=[EXAMPLES],
        tmp_path=tmp_path,
        options={"pct": 5},
        accounts={"desk-a": 100_000},
        channels=["positions", "order_responses", "fills"],
    ) as bot:
        desk_a = bot.account_id("desk-a")
        await bot.ctx.add_order(
            "desk-a", symbol="AAPL-USD", side="BUY", order_type="MARKET",
            time_in_force="IOC", quantity=Decimal(2),
        )  # fmt: skip
        await bot.wait_for(lambda: (desk_a, "AAPL-USD") in bot.plugin.guarded, what="the stop")
        trigger = bot.plugin.guarded[(desk_a, "AAPL-USD")]
        entry = bot.sim.engine.accounts[desk_a].positions["AAPL-USD"].average_price
        assert trigger == (entry * Decimal("0.95") / Decimal("0.01")).to_integral_value(
            rounding="ROUND_DOWN"
        ) * Decimal("0.01")

        def stop_updates(status: str) -> list[OrderUpdateEvent]:
            return [
                e
                for e in bot.events_of(OrderUpdateEvent, "desk-a")
                if e.order_type == "STOP_LOSS" and e.status == status
            ]

        await bot.wait_for(lambda: stop_updates("ACK"), what="the venue's ACK of the stop")
        bot.sim.set_price("AAPL-USD", trigger * Decimal("0.97"))  # the market falls through it
        [filled] = await bot.wait_for(lambda: stop_updates("FILLED"), what="the stop firing")
        assert (filled.side, filled.quantity) == ("SELL", Decimal(2))
        await bot.wait_for(
            lambda: bot.sim.engine.accounts[desk_a].positions["AAPL-USD"].size == 0,
            what="the position closed",
        )
        await bot.wait_for(lambda: not bot.plugin.guarded, what="the guard forgetting it")
        assert len(stop_updates("ACK")) == 1, "one stop per position, not one per pulse"


async def test_twap_rebalance_moves_a_position_to_its_target_in_child_orders(tmp_path):
    async with run_bot(
        "twap_rebalance",
        plugin_dirs=[EXAMPLES],
        tmp_path=tmp_path,
        options={"symbol": "AAPL-USD", "target": 3, "orders": 3, "interval": 1},
        accounts={"desk-a": 100_000},
        channels=["order_responses", "fills", "positions"],
        sim={"twap_min_interval": 1, "twap_tick": 0.05},
    ) as bot:
        desk_a = bot.account_id("desk-a")
        await bot.wait_for(lambda: bot.plugin.finished, what="the TWAP's end", timeout=20)
        [done] = bot.plugin.finished
        assert (done.status, done.side, done.total_quantity) == ("COMPLETED", "BUY", Decimal(3))
        assert done.filled_quantity == Decimal(3)
        assert bot.sim.engine.accounts[desk_a].positions["AAPL-USD"].size == Decimal(3)
        children = {f.client_order_id for f in bot.events_of(FillEvent, "desk-a")}
        assert children == {f"{done.client_twap_id}:{n}" for n in (1, 2, 3)}
        assert bot.plugin.started == 1 and not bot.plugin.running, "on target: no second TWAP"


async def test_funding_alert_warns_once_when_the_implied_rate_passes_its_limit(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    async with run_bot(
        "funding_alert",
        plugin_dirs=[EXAMPLES],
        tmp_path=tmp_path,
        options={"max_bps": 10},
        market_data={"channels": ["funding"], "symbols": ["AAPL-USD"]},
    ) as bot:
        await bot.wait_for(
            lambda: len(bot.events_of(FundingRateEvent)) >= 2, what="funding updates"
        )
        assert not bot.plugin.alerts, "no premium yet: no alert"
        # The underlying trades 2 % under the perpetual: longs pay (capped at funding_cap).
        economics = bot.sim.engine.economics
        mid = bot.sim.engine.markets["AAPL-USD"].mid
        economics.set_underlier("AAPL-USD", price=mid * Decimal("0.98"))
        await bot.wait_for(lambda: bot.plugin.alerts, what="the alert")
        seen = len(bot.events_of(FundingRateEvent))
        await bot.wait_for(
            lambda: len(bot.events_of(FundingRateEvent)) >= seen + 3, what="more updates"
        )
        [(symbol, rate)] = bot.plugin.alerts
        assert symbol == "AAPL-USD" and rate >= Decimal("0.001")
        assert "funding AAPL-USD: implied rate" in caplog.text
        assert "longs pay shorts" in caplog.text
