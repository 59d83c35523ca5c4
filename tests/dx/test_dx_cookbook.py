"""Every cookbook recipe (docs/examples/*.py) loads in a real bot and does what the recipe says."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

from qfexbot import BalanceEvent, TransferOutcomeEvent
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
