"""Orders journaled with their final states, through the real runtime and embedded simulator.

``qfexbot.testing.run_bot`` runs the whole bot (sessions, buses, the SQLite journal, the order
tracker) against the embedded QFEX simulator; the plugin acts through its real ``ctx``.

The lookup reconciliation uses (``OrderLookup.find_order``) is :class:`SimOrderHistory` here:
a real implementation over the simulator's own order history (``Engine.order_log``: every
order, finished ones too). The venue's own ``find_order`` (socket open orders + REST historic
orders) is built in s14-ctx; the runtime uses it whenever the venue has one.
"""

from __future__ import annotations

import time
import types
from decimal import Decimal

import pytest
import trio

from qfexbot import ActionRejected, ActionUnavailable, BotContext, ConnectionState, hookimpl
from qfexbot.events import OrderUpdateEvent
from qfexbot.money.journal import SqliteJournal
from qfexbot.runtime.orders import DUPLICATE_CODE, OrderTracker, order_state
from qfexbot.sim import demo_sim_config
from qfexbot.sim.qfex.engine import Engine
from qfexbot.sim.qfex.model import Order as SimOrder
from qfexbot.testing import run_bot

SETTLE = 0.6
"""The settle time the tests give the tracker (default: max(3 x request_timeout, 30 s))."""


class Quiet:
    """A plugin that does nothing by itself; the test acts through its context."""

    @hookimpl
    def qfexbot_event(self, ctx: BotContext, event: object) -> None:
        return None


class SimOrderHistory:
    """``find_order`` over a simulator engine's order history (open and finished orders)."""

    def __init__(self, engine: Engine, venue: str = "sim") -> None:
        self.engine = engine
        self.venue = venue
        self.calls: list[str] = []

    async def find_order(self, account_id: str, client_order_id: str) -> OrderUpdateEvent | None:
        await trio.lowlevel.checkpoint()
        self.calls.append(client_order_id)
        found: list[SimOrder] = [
            o
            for o in self.engine.order_log.values()
            if o.account_id == account_id and o.client_order_id == client_order_id
        ]
        if not found:
            return None
        o = found[-1]
        return OrderUpdateEvent(
            venue=self.venue, account_id=account_id, received_at=time.time(),
            order_id=o.order_id, client_order_id=o.client_order_id, symbol=o.symbol,
            status=o.status, side=o.side, order_type=o.order_type, time_in_force=o.tif,
            price=o.price, quantity=o.quantity, remaining=o.remaining,
        )  # fmt: skip


def sim_orders_of(engine: Engine, coid: str) -> list[SimOrder]:
    """The simulator's orders (ever) with this client order id."""
    return [o for o in engine.order_log.values() if o.client_order_id == coid]


def sim_orders(bot, coid: str) -> list[SimOrder]:
    """The embedded simulator's orders (ever) with this client order id."""
    return sim_orders_of(bot.sim.engine, coid)


async def entry(bot, coid: str):
    journal = bot.runtime.journal
    [found] = await journal.orders_by_client_id("sim", bot.account_id("desk-a"), coid)
    return found


async def reaches(bot, coid: str, state: str):
    """Wait until the order's entry is in ``state``; return it."""

    async def check():
        e = await entry(bot, coid)
        return e if e.state == state else None

    return await bot.wait_for(check, what=f"order {coid} {state}")


async def states(bot, entry_id: str) -> list[tuple[str, str | None]]:
    return [(e["to_state"], e["by"]) for e in await bot.runtime.journal.events(entry_id)]


async def limit(bot, coid: str, price: str, side: str = "BUY", **extra) -> None:
    await bot.ctx.add_order(
        "desk-a", symbol="AAPL-USD", side=side, order_type="LIMIT", quantity=Decimal(1),
        price=Decimal(price), client_order_id=coid, **extra,
    )  # fmt: skip


async def test_ack_then_fill(tmp_path):
    async with run_bot(Quiet, tmp_path=tmp_path) as bot:
        await limit(bot, "rest-1", "190")  # below the market (200): rests
        acked = await reaches(bot, "rest-1", "acked")
        [venue_order] = sim_orders(bot, "rest-1")
        assert acked.venue_order_id == venue_order.order_id
        assert (acked.symbol, acked.side, acked.quantity, acked.price) == (
            "AAPL-USD",
            "BUY",
            Decimal(1),
            Decimal(190),
        )
        bot.sim.set_price("AAPL-USD", Decimal(180))  # the ask falls through the bid: filled
        filled = await reaches(bot, "rest-1", "filled")
        assert filled.venue_order_id == venue_order.order_id and filled.resolved_by is None
        assert await states(bot, filled.id) == [
            ("submitted", None),
            ("acked", None),
            ("filled", None),
        ]
        assert bot.runtime.orders.tracked() == []


async def test_cancel(tmp_path):
    async with run_bot(Quiet, tmp_path=tmp_path) as bot:
        await limit(bot, "rest-2", "190")
        acked = await reaches(bot, "rest-2", "acked")
        await bot.ctx.cancel_order("desk-a", symbol="AAPL-USD", order_id=acked.venue_order_id)
        cancelled = await reaches(bot, "rest-2", "cancelled")
        assert [s for s, _ in await states(bot, cancelled.id)] == [
            "submitted",
            "acked",
            "cancelled",
        ]

        async def cancels(state):
            rows = await bot.journal_entries(kind="cancel", state=state)
            return rows or None

        [done] = await bot.wait_for(lambda: cancels("done"), what="cancel done")
        assert (done.venue_order_id, done.symbol) == (acked.venue_order_id, "AAPL-USD")
        # A cancel of an order the venue does not have (any more): NO_SUCH_ORDER -> failed.
        await bot.ctx.cancel_order("desk-a", symbol="AAPL-USD", order_id=acked.venue_order_id)
        [failed] = await bot.wait_for(lambda: cancels("failed"), what="cancel failed")
        assert "no open order" in failed.detail
        # Two cancels of one order in flight: neither is left behind. The first is done by the
        # order's CANCELLED; the second too if it was journaled before that arrived, else the
        # venue's NO_SUCH_ORDER reply to it fails it.
        await limit(bot, "rest-3", "190")
        second = await reaches(bot, "rest-3", "acked")
        for _ in range(2):
            await bot.ctx.cancel_order("desk-a", symbol="AAPL-USD", order_id=second.venue_order_id)
        await reaches(bot, "rest-3", "cancelled")

        async def both_settled():
            rows = await bot.journal_entries(kind="cancel")
            mine = [r for r in rows if r.venue_order_id == second.venue_order_id]
            return mine if len(mine) == 2 and not any(r.unsettled for r in mine) else None

        first, last = await bot.wait_for(both_settled, what="both cancels settled")
        assert first.state == "done"
        assert last.state == "done" or "no open order" in last.detail
        assert bot.runtime.orders.tracked() == []


async def test_reject(tmp_path):
    async with run_bot(Quiet, tmp_path=tmp_path) as bot:
        await limit(bot, "far-1", "250")  # above the price band (mark 200 + 10 %)
        rejected = await reaches(bot, "far-1", "rejected")
        assert "PRICE_GREATER_THAN_MAX_PRICE" in rejected.detail
        assert [s for s, _ in await states(bot, rejected.id)] == ["submitted", "rejected"]


async def test_an_order_that_never_reached_the_venue_is_failed(tmp_path):
    async with run_bot(Quiet, tmp_path=tmp_path) as bot:
        desk = bot.account_id("desk-a")
        session = bot.runtime.venues["sim"].sessions[desk]
        bot.sim.faults.reject_next_auths(1000)
        bot.sim.faults.drop_connections(desk)
        await bot.wait_for(lambda: session.state is not ConnectionState.LIVE, what="session down")
        with pytest.raises(ActionUnavailable):
            await limit(bot, "down-1", "190")
        failed = await entry(bot, "down-1")
        assert failed.state == "failed" and failed.detail.startswith("not sent: ")
        assert sim_orders(bot, "down-1") == []


async def test_no_reply_within_the_settle_time_is_unknown_then_reconciled(tmp_path):
    # The session does not subscribe order_responses: the venue's replies never reach the bot,
    # exactly as if each were lost on the way.
    channels = ["balances", "positions", "fills"]
    async with run_bot(Quiet, tmp_path=tmp_path, channels=channels) as bot:
        history = SimOrderHistory(bot.sim.engine)
        bot.runtime.orders.use_lookup("sim", history)
        bot.runtime.orders.settle_seconds = SETTLE
        await bot.ctx.add_order(
            "desk-a", symbol="AAPL-USD", side="BUY", order_type="MARKET", quantity=Decimal(1),
            time_in_force="IOC", client_order_id="lost-1",
        )  # fmt: skip
        await limit(bot, "lost-2", "190")
        filled = await reaches(bot, "lost-1", "filled")
        assert await states(bot, filled.id) == [
            ("submitted", None),
            ("unknown", None),
            ("filled", "reconcile"),
        ]
        assert filled.resolved_by == "reconcile"
        assert filled.venue_order_id == sim_orders(bot, "lost-1")[0].order_id
        acked = await reaches(bot, "lost-2", "acked")
        assert acked.resolved_by == "reconcile"
        unknown = next(
            e for e in await bot.runtime.journal.events(acked.id) if e["to_state"] == "unknown"
        )
        assert unknown["detail"] == f"no reply within {SETTLE:g} s"
        # Never re-placed: one order each at the venue.
        assert len(sim_orders(bot, "lost-1")) == len(sim_orders(bot, "lost-2")) == 1


async def test_an_unsettled_client_order_id_is_never_sent_again(tmp_path):
    channels = ["balances", "positions", "fills"]  # replies never arrive (see above)
    async with run_bot(Quiet, tmp_path=tmp_path, channels=channels) as bot:
        history = SimOrderHistory(bot.sim.engine)
        bot.runtime.orders.use_lookup("sim", history)
        bot.runtime.orders.settle_seconds = 3600.0  # nothing settles by itself in this test
        await limit(bot, "dup-1", "190")
        await bot.wait_for(lambda: sim_orders(bot, "dup-1"), what="the venue has it")
        with pytest.raises(ActionRejected) as refused:
            await limit(bot, "dup-1", "190")
        assert refused.value.code == DUPLICATE_CODE
        assert "the venue has it (ACK" in str(refused.value)
        # Reconciled first: the entry took the venue's state; the second send wrote nothing.
        acked = await entry(bot, "dup-1")
        assert (acked.state, acked.resolved_by) == ("acked", "reconcile")
        with pytest.raises(ActionRejected, match="the venue has it"):
            await limit(bot, "dup-1", "190")
        assert history.calls == ["dup-1", "dup-1"]
        assert len(sim_orders(bot, "dup-1")) == 1
        assert len(await bot.journal_entries(kind="order")) == 1
        refusals = await bot.journal_entries(kind="refusal")
        assert [(r.data["code"], r.data["client_order_id"]) for r in refusals] == [
            (DUPLICATE_CODE, "dup-1"),
            (DUPLICATE_CODE, "dup-1"),
        ]
        # Still within its settle time and not at the venue (yet): refused as well.
        history.engine = Engine(demo_sim_config(), time.time)  # a venue that has nothing
        await limit(bot, "dup-2", "190")
        with pytest.raises(ActionRejected, match="within its settle time"):
            await limit(bot, "dup-2", "190")


async def test_a_reply_lost_while_disconnected_is_reconciled_after_the_resync(tmp_path):
    async with run_bot(Quiet, tmp_path=tmp_path) as bot:
        history = SimOrderHistory(bot.sim.engine)
        bot.runtime.orders.use_lookup("sim", history)
        bot.runtime.orders.settle_seconds = SETTLE
        await limit(bot, "gap-1", "190")
        await reaches(bot, "gap-1", "acked")
        desk = bot.account_id("desk-a")
        session = bot.runtime.venues["sim"].sessions[desk]
        bot.sim.faults.reject_next_auths(1000)
        bot.sim.faults.drop_connections(desk)
        await bot.wait_for(lambda: session.state is not ConnectionState.LIVE, what="session down")
        bot.sim.set_price("AAPL-USD", Decimal(180))  # fills while no connection hears it
        assert sim_orders(bot, "gap-1")[0].status == "FILLED"
        assert (await entry(bot, "gap-1")).state == "acked"
        bot.sim.faults.reject_next_auths(0)
        await bot.wait_live()
        filled = await reaches(bot, "gap-1", "filled")
        assert (filled.resolved_by, filled.detail.split(":")[0]) == ("reconcile", "reconciled")
        assert len(sim_orders(bot, "gap-1")) == 1


# -- start-up: entries an earlier process left unsettled -----------------------------------

DESK = "11111111-1111-4111-8111-111111111111"  # an account of demo_sim_config()


def _order(coid: str, price: str = "190", order_type: str = "LIMIT") -> dict[str, object]:
    return {
        "symbol": "AAPL-USD", "side": "BUY", "order_type": order_type,
        "order_time_in_force": "GTC" if order_type == "LIMIT" else "IOC",
        "quantity": Decimal(1), "price": Decimal(price), "client_order_id": coid,
    }  # fmt: skip


async def test_start_up_reconciles_what_an_earlier_process_left(tmp_path):
    engine = Engine(demo_sim_config(), time.time)
    engine.add_order(DESK, _order("resting"))
    engine.add_order(DESK, _order("taken", order_type="MARKET"))
    path = tmp_path / "journal.sqlite"
    wall = [time.time() - 120]  # written two minutes ago by the process that crashed
    async with await SqliteJournal.open(path, clock=lambda: wall[0]) as journal:
        ids = {}
        for coid in ("resting", "taken", "never-arrived", "acked-before"):
            e = await journal.record_order(
                bot="b", plugin="p", venue="demo", account=DESK, data={}, symbol="AAPL-USD",
                side="BUY", quantity=Decimal(1), price=Decimal(190), client_order_id=coid,
            )  # fmt: skip
            ids[coid] = e.id
        await journal.mark_order(ids["taken"], "unknown", "maybe sent: connection closed")
        await journal.mark_order(ids["acked-before"], "acked", "ACK", venue_order_id="v-old")
        wall[0] = time.time() - 10  # and one ten seconds ago: within the settle time
        young = await journal.record_order(
            bot="b", plugin="p", venue="demo", account=DESK, data={}, client_order_id="young"
        )
        wall[0] = time.time()
        # The venue of the table "demo" has find_order: the tracker reconciles through it.
        history = SimOrderHistory(engine, venue="demo")
        session = types.SimpleNamespace(request_timeout=10.0)  # settle: max(3 x 10, 30) s
        config = types.SimpleNamespace(session=session)
        run = types.SimpleNamespace(venue=history, config=config, buses={})
        tracker = OrderTracker(journal, {"demo": run})
        assert tracker.lookup("demo") is history and tracker.settle("demo") == 30.0
        await tracker.load()
        assert {e.client_order_id for e in tracker.tracked()} == {*ids, "young"}
        await tracker.sweep()
        got = {coid: await journal.get(i) for coid, i in ids.items()}
        assert {coid: e.state for coid, e in got.items()} == {
            "resting": "acked",
            "taken": "filled",
            "never-arrived": "failed",
            "acked-before": "acked",  # the venue does not know it: left for an operator
        }
        assert got["never-arrived"].detail == (
            "the venue has no order with client_order_id never-arrived"
        )
        trail = [e["to_state"] for e in await journal.events(ids["never-arrived"])]
        assert trail == ["submitted", "unknown", "failed"]
        assert {e.resolved_by for c, e in got.items() if c != "acked-before"} == {"reconcile"}
        assert sorted(history.calls) == sorted(ids)  # not the young one
        assert (await journal.get(young.id)).state == "submitted"
        # What is still followed: the open order, the one the venue lost, the young one.
        followed = {e.client_order_id for e in tracker.tracked()}
        assert followed == {"resting", "acked-before", "young"}

        # A venue that cannot answer now leaves everything as it is, to be tried again.
        class Down:
            async def find_order(self, account_id, client_order_id):
                raise ActionUnavailable("session reconnecting")

        tracker.use_lookup("demo", Down())
        assert await tracker.reconcile("demo", DESK) is False


def test_order_states_of_the_venue_statuses():
    def update(status, remaining="0"):
        return OrderUpdateEvent(
            venue="v", account_id="a", received_at=0.0, order_id="o", client_order_id="c",
            symbol="S", status=status, side="BUY", order_type="LIMIT", time_in_force="GTC",
            price=Decimal(1), quantity=Decimal(2), remaining=Decimal(remaining),
        )  # fmt: skip

    assert order_state(update("ACK", "2")) == "acked"
    assert order_state(update("MODIFIED", "2")) == "acked"
    assert order_state(update("FILLED", "1")) == "acked"  # a partial fill
    assert order_state(update("FILLED")) == "filled"
    assert order_state(update("CANCELLED")) == "cancelled"
    assert order_state(update("CANCELLED_STP")) == "cancelled"
    for status in ("REJECTED", "PRICE_GREATER_THAN_MAX_PRICE", "FAILED_MARGIN_CHECK"):
        assert order_state(update(status)) == "rejected"
    for status in ("NO_SUCH_ORDER", "CANNOT_MODIFY_PARTIAL_FILL", "CANNOT_MODIFY_NO_SUCH_ORDER"):
        assert order_state(update(status)) is None


async def test_a_send_that_may_have_reached_the_venue_is_unknown_until_reconciled(tmp_path):
    engine = Engine(demo_sim_config(), time.time)
    async with await SqliteJournal.open(tmp_path / "journal.sqlite") as journal:
        tracker = OrderTracker(journal, {})
        tracker.use_lookup("demo", SimOrderHistory(engine, venue="demo"))
        tracker.settle_seconds = 0.0
        origin = {"bot": "b", "plugin": "p", "venue": "demo", "account": DESK}

        async def send(coid: str):
            fields = {"symbol": "AAPL-USD", "side": "BUY", "quantity": Decimal(1),
                      "price": Decimal(190), "client_order_id": coid}  # fmt: skip
            return await tracker.record(**origin, kind="order", data={}, fields=fields)

        maybe = await send("maybe-1")
        engine.add_order(DESK, _order("maybe-1"))  # it did reach the venue
        closed = ActionUnavailable("closed while sending", maybe_sent=True)
        unknown = await tracker.not_sent(maybe, closed)
        assert (unknown.state, unknown.detail) == ("unknown", "maybe sent: closed while sending")
        refused = await tracker.not_sent(await send("no-1"), ActionRejected("no liquidity"))
        assert (refused.state, refused.detail) == ("rejected", "rejected: no liquidity")
        cancel = await tracker.record(
            **origin, kind="cancel", data={}, fields={"symbol": "AAPL-USD", "venue_order_id": "x"}
        )
        assert (await tracker.not_sent(cancel, ActionRejected("unknown order"))).state == "failed"
        await tracker.sweep()  # the account is due: the venue has it, resting
        reconciled = await journal.get(maybe.id)
        assert (reconciled.state, reconciled.resolved_by) == ("acked", "reconcile")
        assert reconciled.venue_order_id == sim_orders_of(engine, "maybe-1")[0].order_id


async def test_lost_replies_are_reconciled_through_the_venues_own_find_order(tmp_path):
    """No test lookup: the runtime asks QfexVenue.find_order (socket open orders, then REST
    historic orders by client order id) for what it never heard back about."""
    channels = ["balances", "positions", "fills"]  # replies never arrive (see above)
    async with run_bot(Quiet, tmp_path=tmp_path, channels=channels) as bot:
        bot.runtime.orders.settle_seconds = SETTLE
        await bot.ctx.add_order(
            "desk-a", symbol="AAPL-USD", side="BUY", order_type="MARKET", quantity=Decimal(1),
            time_in_force="IOC", client_order_id="own-1",
        )  # fmt: skip
        await limit(bot, "own-2", "190")
        filled = await reaches(bot, "own-1", "filled")  # finished: from the REST history
        acked = await reaches(bot, "own-2", "acked")  # resting: from the open orders
        assert filled.resolved_by == acked.resolved_by == "reconcile"
        assert len(sim_orders(bot, "own-1")) == len(sim_orders(bot, "own-2")) == 1


async def test_stop_orders_and_closes_are_orders_other_actions_requests(tmp_path):
    """A stop order and a close are followed to their final state by client order id; a stop
    cancel is a cancel of that stop; modify, TWAPs and cancel-all are requests, ``sent`` once
    the venue has them (never left ``submitted``)."""
    async with run_bot(Quiet, tmp_path=tmp_path, accounts={"desk-a": 100_000}) as bot:
        ctx = bot.ctx
        await ctx.add_order(
            "desk-a", symbol="AAPL-USD", side="BUY", order_type="MARKET", quantity=Decimal(2),
            time_in_force="IOC", client_order_id="open-1",
        )  # fmt: skip
        await reaches(bot, "open-1", "filled")
        await ctx.place_stop_order(
            "desk-a", symbol="AAPL-USD", side="SELL", stop_type="STOP_LOSS",
            trigger_price=Decimal(150), quantity=Decimal(1), client_order_id="stop-1",
        )  # fmt: skip
        stop = await reaches(bot, "stop-1", "acked")
        assert (stop.side, stop.quantity, stop.price) == ("SELL", Decimal(1), Decimal(150))
        await ctx.place_stop_order(
            "desk-a", symbol="AAPL-USD", side="SELL", stop_type="TAKE_PROFIT",
            trigger_price=Decimal(400), quantity=Decimal(1), client_order_id="stop-2",
        )  # fmt: skip
        take = await reaches(bot, "stop-2", "acked")
        await ctx.cancel_stop_order("desk-a", stop_order_id=take.venue_order_id)
        await reaches(bot, "stop-2", "cancelled")

        async def settled(kind: str, state: str):
            rows = await bot.journal_entries(kind=kind, state=state)
            return rows or None

        [cancel] = await bot.wait_for(lambda: settled("cancel", "done"), what="stop cancel done")
        assert cancel.venue_order_id == take.venue_order_id
        await ctx.modify_stop_order(
            "desk-a", stop_order_id=stop.venue_order_id, symbol="AAPL-USD",
            trigger_price=Decimal(160), quantity=Decimal(1),
        )  # fmt: skip
        await ctx.cancel_all("desk-a")
        sent = await bot.wait_for(lambda: settled("request", "sent"), what="requests sent")
        assert sorted(e.data["type"] for e in sent) == ["cancel_all_orders", "modify_stop_order"]
        await ctx.close_position("desk-a", symbol="AAPL-USD")

        async def close_entry():
            rows = [
                e
                for e in await bot.journal_entries(kind="order")
                if e.data["type"] == "close_position"
            ]
            return rows[0] if rows and rows[0].state == "filled" else None

        closed = await bot.wait_for(close_entry, what="the close filled")
        assert closed.client_order_id and closed.symbol == "AAPL-USD"
        assert not [e for e in await bot.journal_entries() if e.state == "submitted"]


# -- found by the review of the merged order journal ------------------------------------------


async def test_an_order_beyond_the_first_page_of_open_orders_is_found_not_failed(tmp_path):
    """find_order reads every page of the open orders (1000 each): an order the venue has
    past the first page is reconciled, never marked failed and sent again."""
    channels = ["balances", "positions", "fills"]  # replies never arrive (see above)
    async with run_bot(
        Quiet, tmp_path=tmp_path, channels=channels, sim={"max_open_orders": 5000}
    ) as bot:
        desk = bot.account_id("desk-a")
        for i in range(1000):  # stops count in the open-order pages
            bot.sim.engine.add_order(desk, {
                "symbol": "AAPL-USD", "side": "BUY", "order_type": "STOP_MARKET",
                "order_time_in_force": "IOC", "quantity": Decimal(1),
                "price": Decimal(300) + Decimal(i) / 100,
            })  # fmt: skip
        bot.runtime.orders.settle_seconds = SETTLE
        await limit(bot, "page-1", "190")
        acked = await reaches(bot, "page-1", "acked")
        assert acked.resolved_by == "reconcile"
        with pytest.raises(ActionRejected) as refused:
            await limit(bot, "page-1", "190")
        assert refused.value.code == DUPLICATE_CODE
        assert len(sim_orders(bot, "page-1")) == 1


async def test_an_attached_take_profit_never_settles_its_parents_entry(tmp_path):
    """The venue gives the take-profit it attaches its parent's client order id: its fills
    must not move the parent's entry (nor take its venue order id)."""
    async with run_bot(Quiet, tmp_path=tmp_path, accounts={"desk-a": 100_000}) as bot:
        market = bot.sim.engine.markets["AAPL-USD"]
        best = min(p for p, q in market.synthetic["SELL"].items() if q > 0)
        quantity = market.synthetic["SELL"][best] + 3  # part fills now, the rest rests
        await bot.ctx.add_order(
            "desk-a", symbol="AAPL-USD", side="BUY", order_type="LIMIT", quantity=quantity,
            price=best, client_order_id="par-1", take_profit=best + 5,
        )  # fmt: skip
        acked = await reaches(bot, "par-1", "acked")
        parent = next(o for o in sim_orders(bot, "par-1") if o.order_type == "LIMIT")
        assert acked.venue_order_id == parent.order_id
        bot.sim.set_price("AAPL-USD", best + 10)  # the take-profit fires and fills
        await bot.wait_for(
            lambda: [
                e
                for e in bot.events_of(OrderUpdateEvent, "desk-a")
                if e.order_type == "TAKE_PROFIT" and e.status == "FILLED"
            ],
            what="the take-profit's FILLED on the account's bus",
        )
        assert parent.order_id in bot.sim.engine.orders  # the parent still rests
        await trio.sleep(0.3)  # the tracker reads the same bus: give it the same events
        still = await entry(bot, "par-1")
        assert (still.state, still.venue_order_id) == ("acked", parent.order_id)


async def test_two_concurrent_sends_of_one_client_order_id_send_one(tmp_path):
    async with run_bot(Quiet, tmp_path=tmp_path) as bot:
        refused: list[ActionRejected] = []

        async def send() -> None:
            try:
                await limit(bot, "race-1", "190")
            except ActionRejected as exc:
                refused.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            nursery.start_soon(send)
        await reaches(bot, "race-1", "acked")
        assert [e.code for e in refused] == [DUPLICATE_CODE]
        assert len(sim_orders(bot, "race-1")) == 1
        orders = [
            e for e in await bot.journal_entries(kind="order") if e.client_order_id == "race-1"
        ]
        assert len(orders) == 1


async def test_a_partly_filled_ioc_is_final_at_once(tmp_path):
    """An IOC's remainder is cancelled with its last fill and the venue sends nothing more:
    its entry is final then, not left acked until the next reconnect."""
    async with run_bot(Quiet, tmp_path=tmp_path, accounts={"desk-a": 100_000}) as bot:
        market = bot.sim.engine.markets["AAPL-USD"]
        best = min(p for p, q in market.synthetic["SELL"].items() if q > 0)
        quantity = market.synthetic["SELL"][best] + 1
        await bot.ctx.add_order(
            "desk-a", symbol="AAPL-USD", side="BUY", order_type="LIMIT", quantity=quantity,
            price=best, time_in_force="IOC", client_order_id="ioc-1",
        )  # fmt: skip
        done = await reaches(bot, "ioc-1", "filled")
        assert "remaining 1" in done.detail
        assert bot.runtime.orders.tracked() == []


async def test_a_modification_the_venue_refuses_by_removing_the_order_rejects_it(tmp_path):
    async with run_bot(Quiet, tmp_path=tmp_path) as bot:
        await bot.ctx.add_order(
            "desk-a", symbol="AAPL-USD", side="BUY", order_type="ALO", quantity=Decimal(1),
            price=Decimal(190), client_order_id="alo-1",
        )  # fmt: skip
        acked = await reaches(bot, "alo-1", "acked")
        await bot.ctx.modify_order(
            "desk-a", symbol="AAPL-USD", order_id=acked.venue_order_id, side="BUY",
            order_type="ALO", price=Decimal(205),
        )  # fmt: skip  # an ALO that would now cross: REJECTED, removed
        rejected = await reaches(bot, "alo-1", "rejected")
        assert [s for s, _ in await states(bot, rejected.id)] == ["submitted", "acked", "rejected"]


async def test_a_modified_order_is_journaled_with_its_new_price_and_quantity(tmp_path):
    async with run_bot(Quiet, tmp_path=tmp_path) as bot:
        await limit(bot, "mod-1", "190")
        acked = await reaches(bot, "mod-1", "acked")
        await bot.ctx.modify_order(
            "desk-a", symbol="AAPL-USD", order_id=acked.venue_order_id, side="BUY",
            order_type="LIMIT", price=Decimal(189), quantity=Decimal(2),
        )  # fmt: skip

        async def amended():
            e = await entry(bot, "mod-1")
            return e if e.price == Decimal(189) else None

        e = await bot.wait_for(amended, what="the entry amended")
        assert (e.state, e.quantity) == ("acked", Decimal(2))
        assert [s for s, _ in await states(bot, e.id)] == ["submitted", "acked", "acked"]
