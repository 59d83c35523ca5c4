"""Plugin actions through the real runtime when the account's session is not live."""

from __future__ import annotations

from decimal import Decimal

import pytest

from qfexbot import ActionUnavailable, BotContext, ConnectionState, hookimpl
from qfexbot.testing import run_bot


class Quiet:
    """A plugin that does nothing by itself; the test acts through its context."""

    @hookimpl
    def qfexbot_event(self, ctx: BotContext, event: object) -> None:
        return None


async def test_order_while_reconnecting_raises_action_unavailable_and_sends_nothing(tmp_path):
    async with run_bot(Quiet, tmp_path=tmp_path, sim={"pulse_interval": 0.2}) as bot:
        desk = bot.account_id("desk-a")
        session = bot.runtime.venues["sim"].sessions[desk]
        bot.sim.faults.reject_next_auths(1000)  # keep it down after the drop
        bot.sim.faults.drop_connections(desk)
        await bot.wait_for(lambda: session.state is not ConnectionState.LIVE, what="session down")
        with pytest.raises(ActionUnavailable) as raised:
            await bot.ctx.add_order(
                "desk-a",
                symbol="AAPL-USD",
                side="BUY",
                order_type="MARKET",
                quantity=Decimal(1),
                time_in_force="IOC",
            )
        assert raised.value.maybe_sent is False
        assert "not live" in str(raised.value)
        # The venue never saw it (a market order would have opened a position), and the
        # journal's audit row says so.
        assert bot.sim.state_snapshot()["accounts"][desk]["positions"] == []
        [order] = await bot.journal_entries(kind="order")
        assert order.detail.startswith("not sent: ")
