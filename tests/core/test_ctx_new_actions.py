"""The new ``ctx`` actions and reads: what each forwards to the actions backend, the argument
checks made before anything is sent, and the errors a plugin sees from a venue without them
(Finery refuses every one with ``ActionError``) and from a replay."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from core_helpers import DESK_A, PRIMARY, RecordingActions, make_app

from qfexbot import ActionError, BotContext
from qfexbot.core.context import Query
from qfexbot.core.records import OpenOrders
from qfexbot.core.secrets import Secret
from qfexbot.core.venue import (
    CancelAll,
    ClosePosition,
    HistoryQuery,
    Order,
    OrderChange,
    StopCancel,
    StopChange,
    StopOrder,
    TwapCancel,
    TwapOrder,
)
from qfexbot.ops.replay import Decision, ReplayActions, compare_decisions
from qfexbot.runtime.actions import _venue_method
from qfexbot.venues.finery.adapter import FineryVenue

D = Decimal


def make_ctx() -> tuple[BotContext, RecordingActions]:
    actions = RecordingActions()
    ctx = BotContext(
        bot="b",
        plugin="p",
        venue="v",
        config={},
        accounts={"desk-a": DESK_A},
        venue_accounts={"treasury": PRIMARY, "desk-a": DESK_A},
        state={},
        actions=actions,
    )
    return ctx, actions


ACTIONS = [
    (
        "modify_order",
        {"symbol": "AAPL-USD", "order_id": "o1", "side": "BUY", "order_type": "LIMIT",
         "price": D("199.5")},
        OrderChange("AAPL-USD", "o1", "BUY", "LIMIT", price=D("199.5")),
    ),
    (
        "place_stop_order",
        {"symbol": "AAPL-USD", "side": "SELL", "stop_type": "STOP_LOSS",
         "trigger_price": D(190), "quantity": D(1), "client_order_id": "sl-1"},
        StopOrder("AAPL-USD", "SELL", "STOP_LOSS", D(190), D(1), "sl-1"),
    ),
    (
        "modify_stop_order",
        {"stop_order_id": "s1", "symbol": "AAPL-USD", "trigger_price": D(185), "quantity": D(2)},
        StopChange("s1", "AAPL-USD", D(185), D(2)),
    ),
    ("cancel_stop_order", {"stop_order_id": "s1"}, StopCancel("s1")),
    (
        "start_twap",
        {"symbol": "CL-USD", "side": "BUY", "total_quantity": D(10), "num_orders": 5,
         "interval_seconds": 30, "client_twap_id": "t-1"},
        TwapOrder("CL-USD", "BUY", D(10), 5, 30, False, "t-1"),
    ),
    (
        "cancel_twap",
        {"symbol": "CL-USD", "client_twap_id": "t-1"},
        TwapCancel("CL-USD", None, "t-1"),
    ),
    ("close_position", {"symbol": "AAPL-USD"}, ClosePosition("AAPL-USD")),
    ("cancel_all", {}, CancelAll()),
]  # fmt: skip


@pytest.mark.parametrize(("method", "kwargs", "expected"), ACTIONS, ids=[a[0] for a in ACTIONS])
async def test_each_order_action_reaches_the_backend_as_its_neutral_value(
    method: str, kwargs: dict[str, Any], expected: Any
) -> None:
    ctx, actions = make_ctx()
    await getattr(ctx, method)("desk-a", **kwargs)
    assert actions.calls == [("order_action", ("b", "p", "desk-a"), {"action": expected})]
    assert expected.action == method  # the decision's name in recordings and replays


async def test_add_order_carries_attached_take_profit_and_stop_loss() -> None:
    ctx, actions = make_ctx()
    await ctx.add_order("desk-a", symbol="AAPL-USD", side="BUY", order_type="LIMIT",
                        quantity=D(1), price=D(200), take_profit=D(210),
                        stop_loss=D(190))  # fmt: skip
    ((name, _, order),) = actions.calls
    assert name == "add_order" and order["take_profit"] == D(210) and order["stop_loss"] == D(190)
    with pytest.raises(TypeError, match="stop_loss must be a Decimal"):
        await ctx.add_order("desk-a", symbol="AAPL-USD", side="BUY", order_type="LIMIT",
                            quantity=D(1), price=D(200), stop_loss=190.0)  # fmt: skip
    assert Order("S", "BUY", "MARKET", D(1), None, "IOC", None, False).take_profit is None


async def test_set_leverage_forwards_symbol_and_decimal() -> None:
    ctx, actions = make_ctx()
    await ctx.set_leverage("desk-a", symbol="AAPL-USD", leverage=D(5))
    assert actions.calls == [("set_leverage", ("b", "p", "desk-a", "AAPL-USD", D(5)), {})]
    with pytest.raises(TypeError, match="leverage must be a Decimal"):
        await ctx.set_leverage("desk-a", symbol="AAPL-USD", leverage=5)
    assert len(actions.calls) == 1


READS = [
    ("open_orders", ("desk-a",), {"symbol": "AAPL-USD"}, "desk-a",
     Query("open_orders", "session", {"symbol": "AAPL-USD"})),
    ("get_order", ("desk-a",), {"symbol": "AAPL-USD", "order_id": "o1"}, "desk-a",
     Query("get_order", "session", {"symbol": "AAPL-USD", "order_id": "o1"})),
    ("leverage", ("desk-a",), {}, "desk-a", Query("leverage", "session", {})),
    ("leverage_levels", ("desk-a",), {}, "desk-a", Query("leverage_levels", "session", {})),
    ("trades", ("desk-a",), {"order_id": "o1", "start": 10, "end": 20.5, "limit": 5}, "desk-a",
     Query("trades", "account", {"query": HistoryQuery(None, 10.0, 20.5, 5, 0, order_id="o1")})),
    ("order_history", ("desk-a",), {"client_order_id": "c1", "offset": 3}, "desk-a",
     Query("order_history", "account",
           {"query": HistoryQuery(limit=100, offset=3, client_order_id="c1")})),
    ("twap_history", ("desk-a",), {"symbol": "CL-USD", "limit": 7}, "desk-a",
     Query("twap_history", "account", {"query": HistoryQuery("CL-USD", limit=7)})),
    ("fees", ("desk-a",), {}, "desk-a", Query("fees", "account", {})),
    ("candles", ("AAPL-USD",), {"resolution": "1MIN", "start": 0, "end": 60}, None,
     Query("candles", "market",
           {"symbol": "AAPL-USD", "resolution": "1MIN", "start": 0.0, "end": 60.0})),
    ("funding_history", ("AAPL-USD",), {"start": 0, "end": 3600}, None,
     Query("funding_history", "market",
           {"symbol": "AAPL-USD", "interval_minutes": 60, "start": 0.0, "end": 3600.0})),
    ("open_interest_history", ("AAPL-USD",), {"start": 0, "end": 60, "interval_minutes": 1},
     None, Query("open_interest_history", "market",
                 {"symbol": "AAPL-USD", "interval_minutes": 1, "start": 0.0, "end": 60.0})),
]  # fmt: skip


@pytest.mark.parametrize(("method", "args", "kwargs", "account", "query"), READS,
                         ids=[r[0] for r in READS])  # fmt: skip
async def test_each_read_is_one_query_and_returns_the_backends_answer(
    method: str, args: tuple, kwargs: dict[str, Any], account: str | None, query: Query
) -> None:
    ctx, actions = make_ctx()
    answer = OpenOrders()
    actions.answers[method] = answer
    assert await getattr(ctx, method)(*args, **kwargs) is answer
    assert actions.calls == [("read", ("b", "p", account), {"query": query})]


BAD_CALLS = [
    ("modify_order", {"symbol": "S", "order_id": "o", "side": "BUY", "order_type": "LIMIT"},
     ValueError, "needs a new price"),
    ("modify_order", {"symbol": "S", "order_id": "o", "side": "buy", "order_type": "LIMIT",
                      "price": D(1)}, ValueError, "side must be"),
    ("modify_order", {"symbol": "S", "order_id": "o", "side": "BUY", "order_type": "LIMIT",
                      "quantity": 2.0}, TypeError, "quantity must be a Decimal"),
    ("place_stop_order", {"symbol": "S", "side": "SELL", "stop_type": "TRAILING",
                          "trigger_price": D(1), "quantity": D(1)}, ValueError, "stop_type"),
    ("place_stop_order", {"symbol": "S", "side": "SELL", "stop_type": "STOP_LOSS",
                          "trigger_price": 1, "quantity": D(1)}, TypeError, "trigger_price"),
    ("modify_stop_order", {"stop_order_id": "s", "symbol": "S", "trigger_price": D(1),
                           "quantity": 1}, TypeError, "quantity"),
    ("start_twap", {"symbol": "S", "side": "BUY", "total_quantity": D(1), "num_orders": 0,
                    "interval_seconds": 30}, ValueError, "num_orders"),
    ("start_twap", {"symbol": "S", "side": "BUY", "total_quantity": D(1), "num_orders": 2,
                    "interval_seconds": 1.5}, ValueError, "interval_seconds"),
    ("cancel_twap", {"symbol": "S"}, ValueError, "exactly one"),
    ("cancel_twap", {"symbol": "S", "twap_id": "a", "client_twap_id": "b"}, ValueError,
     "exactly one"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "kwargs", "error", "match"), BAD_CALLS)
async def test_bad_arguments_raise_before_anything_is_forwarded(
    method: str, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    ctx, actions = make_ctx()
    with pytest.raises(error, match=match):
        await getattr(ctx, method)("desk-a", **kwargs)
    assert actions.calls == []


async def test_bad_read_arguments_raise_before_anything_is_asked() -> None:
    ctx, actions = make_ctx()
    with pytest.raises(ValueError, match="limit must be an int >= 1"):
        await ctx.trades("desk-a", limit=0)
    with pytest.raises(ValueError, match="offset must be an int >= 0"):
        await ctx.order_history("desk-a", offset=-1)
    with pytest.raises(TypeError, match="start must be Unix seconds"):
        await ctx.trades("desk-a", start="2026-01-01")
    with pytest.raises(ValueError, match="is after end"):
        await ctx.candles("AAPL-USD", resolution="1MIN", start=60, end=0)
    with pytest.raises(ValueError, match="interval_minutes"):
        await ctx.funding_history("AAPL-USD", start=0, end=60, interval_minutes=0)
    assert actions.calls == []


# ---------------------------------------------------------------- a venue without them


class _Settings:
    request_timeout = 1.0


@pytest.fixture
async def finery():
    venue = FineryVenue("fin", ws_url="ws://127.0.0.1:9/", rest_url="http://127.0.0.1:9",
                        user_id="1", settings=_Settings(), key="k", secret=Secret("s"))  # fmt: skip
    try:
        yield venue
    finally:
        await venue.aclose()


FINERY_MAPPERS = [
    ("stop_order", StopOrder("S", "SELL", "STOP_LOSS", D(1), D(1))),
    ("modify_stop", StopChange("s", "S", D(1), D(1))),
    ("cancel_stop", StopCancel("s")),
    ("twap", TwapOrder("S", "BUY", D(1), 2, 30)),
    ("cancel_twap", TwapCancel("S", "t")),
    ("close_position", ClosePosition("S")),
]  # modify (mod) and cancel_all (delAll) exist: tests/finery/test_runtime_orders.py


@pytest.mark.parametrize(("method", "action"), FINERY_MAPPERS, ids=[m for m, _ in FINERY_MAPPERS])
async def test_finery_refuses_each_new_order_action(finery, method: str, action: Any) -> None:
    with pytest.raises(ActionError, match=r"^finery has no "):
        getattr(finery, method)(action)


async def test_finery_refuses_attached_stops_and_every_new_read(finery) -> None:
    order = Order("BTC-USD", "BUY", "LIMIT", D(1), D(1), "GTC", None, False, take_profit=D(2))
    with pytest.raises(ActionError, match="finery has no attached"):
        finery.order(order)
    assert finery.order(dataclasses.replace(order, take_profit=None)).command == "add"
    query = HistoryQuery()
    reads = [
        finery.open_orders(None),
        finery.get_order(None, symbol="S", order_id="1"),
        finery.leverage(None),
        finery.leverage_levels(None),
        finery.set_leverage(None, symbol="S", leverage=D(2)),
        finery.find_order("1", "c"),
        finery.trades("1", query),
        finery.order_history("1", query),
        finery.twap_history("1", query),
        finery.fees("1"),
        finery.candles("S", resolution="1MIN", start=0, end=1),
        finery.funding_history("S", interval_minutes=60, start=0, end=1),
        finery.open_interest_history("S", interval_minutes=60, start=0, end=1),
    ]
    for read in reads:
        with pytest.raises(ActionError, match=r"^finery has no "):
            await read


# ---------------------------------------------------------------- during a replay


async def test_a_replay_records_order_actions_as_decisions_and_refuses_reads() -> None:
    published: list[Any] = []

    async def publish(*args: Any) -> None:
        published.append(args)

    replay = ReplayActions(
        make_app({"p": {"use": "qfexbot.testing:EventLog"}}), publish, lambda: 0.0
    )
    ctx = BotContext(bot="b", plugin="p", venue="v", config={}, accounts={"desk-a": DESK_A},
                     venue_accounts={"desk-a": DESK_A}, state={}, actions=replay)  # fmt: skip
    await ctx.start_twap("desk-a", symbol="CL-USD", side="SELL", total_quantity=D("1.5"),
                         num_orders=3, interval_seconds=30)  # fmt: skip
    await ctx.cancel_all("desk-a")
    await ctx.set_leverage("desk-a", symbol="CL-USD", leverage=D(10))
    names = [(d.action, d.args) for d in replay.decisions]
    assert names == [
        ("start_twap", {"account": "desk-a", "symbol": "CL-USD", "side": "SELL",
                        "total_quantity": "1.5", "num_orders": 3, "interval_seconds": 30,
                        "reduce_only": False, "client_twap_id": None}),
        ("cancel_all", {"account": "desk-a"}),
        ("set_leverage", {"account": "desk-a", "symbol": "CL-USD", "leverage": "10"}),
    ]  # fmt: skip
    with pytest.raises(LookupError, match="replay: open_orders is not part of a recording"):
        await ctx.open_orders("desk-a")
    with pytest.raises(LookupError, match="replay: candles"):
        await ctx.candles("CL-USD", resolution="1MIN", start=0, end=60)
    assert published == []


def test_a_venue_without_a_method_is_an_action_error_not_an_attribute_error() -> None:
    class OldVenue:
        name = "old"

        def order(self, order: Order) -> None: ...

    assert _venue_method(OldVenue(), "order") is not None
    with pytest.raises(ActionError, match="venue 'old' has no modify"):
        _venue_method(OldVenue(), "modify")


def test_a_recording_from_before_take_profit_existed_still_compares_equal() -> None:
    old = [Decision("b", "p", "add_order", {"account": "desk-a", "symbol": "S"})]
    new = [Decision("b", "p", "add_order",
                    {"account": "desk-a", "symbol": "S", "take_profit": None})]  # fmt: skip
    assert compare_decisions(old, new) == []
    given = [Decision("b", "p", "add_order",
                      {"account": "desk-a", "symbol": "S", "take_profit": "210"})]  # fmt: skip
    assert compare_decisions(old, given) != []
