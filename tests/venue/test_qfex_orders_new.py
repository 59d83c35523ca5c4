"""The trade-socket command builders (venues/qfex/orders.py): the exact frame each one writes
(qfex.md §2.4's params, optional ones omitted, amounts exact), the argument errors they raise,
and the commands the simulator answers today sent as built, over a real socket, every reply
checked against the vendored schema and read back through qfexbot's parser.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio

from qfexbot.core.venue import Order, OrderRequest
from qfexbot.events import OrderUpdateEvent, TwapEvent
from qfexbot.venues.qfex import orders
from qfexbot.venues.qfex.parse import LeverageLevels, OrdersSnapshot, encode_json, parse_trade_frame

SIM_TESTS = str(Path(__file__).parents[1] / "sim")  # sim_client.py, as tests/spec imports it
SPEC_TESTS = str(Path(__file__).parents[1] / "spec")  # validate.py
for folder in (SIM_TESTS, SPEC_TESTS):
    if folder not in sys.path:
        sys.path.append(folder)

from sim_client import PRIMARY, Client, connect, start_sim  # noqa: E402
from validate import validate_trade_frame  # noqa: E402

D = Decimal


def limit_order(**changes: Any) -> Order:
    fields: dict[str, Any] = {
        "symbol": "AAPL-USD",
        "side": "BUY",
        "order_type": "LIMIT",
        "quantity": D(1),
        "price": D("150.5"),
        "time_in_force": "GTC",
        "client_order_id": "my-order-123",
        "reduce_only": False,
    }
    fields.update(changes)
    return Order(**fields)


# ---------------------------------------------------------------- the frames


def test_add_order_with_attached_take_profit_and_stop_loss() -> None:
    plain = orders.message(orders.order_command(limit_order()))
    assert plain == {
        "type": "add_order",
        "params": {
            "symbol": "AAPL-USD",
            "side": "BUY",
            "order_type": "LIMIT",
            "order_time_in_force": "GTC",
            "quantity": D(1),
            "price": D("150.5"),
            "client_order_id": "my-order-123",
            "take_profit": D(0),
            "stop_loss": D(0),
            "reduce_only": False,
        },
    }
    attached = orders.order_command(limit_order(), take_profit=D(160), stop_loss=D("140.25"))
    assert (attached.params["take_profit"], attached.params["stop_loss"]) == (
        D(160),
        D("140.25"),
    )
    assert '"take_profit":160,"stop_loss":140.25' in encode_json(orders.message(attached))
    fresh = orders.order_command(limit_order(client_order_id=None, price=None))
    assert len(fresh.params["client_order_id"]) == 32 and fresh.params["price"] == 0


@pytest.mark.parametrize(
    ("stop_type", "reduce_only"),
    [("TAKE_PROFIT", True), ("STOP_LOSS", True), ("STOP_MARKET", False)],
)
def test_stop_orders_go_through_add_order(stop_type: str, reduce_only: bool) -> None:
    request = orders.stop_command(
        symbol="AAPL-USD",
        side="SELL",
        stop_type=stop_type,
        trigger_price=D("190.5"),
        quantity=D(2),
        client_order_id="guard",
    )
    assert request.command == "add_order"
    params = request.params
    assert (params["order_type"], params["price"], params["quantity"]) == (
        stop_type,
        D("190.5"),
        D(2),
    )
    assert params["order_time_in_force"] == "IOC" and params["reduce_only"] is reduce_only
    assert params["client_order_id"] == "guard"
    with pytest.raises(ValueError, match="stop_type"):
        orders.stop_command(
            symbol="X", side="SELL", stop_type="LIMIT", trigger_price=D(1), quantity=D(1)
        )


def test_modify_sends_only_what_changes() -> None:
    assert orders.message(
        orders.modify_command(
            symbol="AAPL-USD", order_id="o-1", side="BUY", order_type="LIMIT", price=D("151")
        )
    ) == {
        "type": "modify_order",
        "params": {
            "symbol": "AAPL-USD",
            "order_id": "o-1",
            "side": "BUY",
            "order_type": "LIMIT",
            "price": D(151),
        },
    }
    every = orders.modify_command(
        symbol="X",
        order_id="o",
        side="SELL",
        order_type="ALO",
        price=D(1),
        quantity=D(2),
        take_profit=D(0),
        stop_loss=D(3),
    ).params
    assert (every["quantity"], every["take_profit"], every["stop_loss"]) == (D(2), D(0), D(3))


def test_cancels_by_every_id_type() -> None:
    assert orders.cancel_command(symbol="X", order_id="o").params == {
        "symbol": "X",
        "order_id": "o",
        "cancel_order_id_type": "order_id",
    }
    by_client = orders.cancel_command(symbol="X", order_id="c", id_type="client_order_id")
    assert by_client.params["cancel_order_id_type"] == "client_order_id"
    twap = orders.cancel_twap_command(symbol="X", twap_id="t")
    assert twap == OrderRequest(
        "cancel_order", {"symbol": "X", "order_id": "t", "cancel_order_id_type": "twap_id"}
    )
    client_twap = orders.cancel_twap_command(symbol="X", client_twap_id="mine")
    assert client_twap.params == {
        "symbol": "X",
        "order_id": "mine",
        "cancel_order_id_type": "client_twap_id",
    }
    with pytest.raises(ValueError, match="exactly one"):
        orders.cancel_twap_command(symbol="X")
    with pytest.raises(ValueError, match="exactly one"):
        orders.cancel_twap_command(symbol="X", twap_id="t", client_twap_id="c")
    with pytest.raises(ValueError, match="id_type"):
        orders.cancel_command(symbol="X", order_id="o", id_type="stop_order_id")
    assert orders.cancel_all_command() == OrderRequest("cancel_all_orders", {})


def test_close_position_and_stop_management() -> None:
    made = orders.close_position_command(symbol="X").params
    assert made["symbol"] == "X" and len(made["client_order_id"]) == 32  # always one: followed
    assert orders.close_position_command(symbol="X", client_order_id="c").params == {
        "symbol": "X",
        "client_order_id": "c",
    }
    assert orders.message(orders.cancel_stop_command(stop_order_id="s")) == {
        "type": "cancel_stop_order",
        "params": {"stop_order_id": "s"},
    }
    assert orders.modify_stop_command(
        stop_order_id="s", symbol="X", price=D("1.5"), quantity=D(2)
    ) == OrderRequest(
        "modify_stop_order",
        {"stop_order_id": "s", "symbol": "X", "price": D("1.5"), "quantity": D(2)},
    )


def test_twap_frame_matches_the_documented_example() -> None:
    request = orders.add_twap_command(
        symbol="AAPL-USD",
        side="BUY",
        total_quantity=D(10),
        num_orders=5,
        order_interval_secs=30,
        client_twap_id="rebalance-aapl-001",
    )
    documented = (
        '{"type":"add_twap","params":{"symbol":"AAPL-USD","side":"BUY","total_quantity":10,'
        '"num_orders":5,"order_interval_secs":30,"reduce_only":false,'
        '"client_twap_id":"rebalance-aapl-001"}}'
    )
    assert json.loads(encode_json(orders.message(request))) == json.loads(documented)
    anonymous = orders.add_twap_command(
        symbol="X", side="SELL", total_quantity=D(1), num_orders=2, order_interval_secs=60
    )
    assert "client_twap_id" not in anonymous.params


def test_queries_and_leverage() -> None:
    assert orders.get_order_command(symbol="X", order_id="o").params == {
        "symbol": "X",
        "order_id": "o",
    }
    assert orders.get_user_orders_command().params == {}
    assert orders.get_user_orders_command(symbol="X", limit=10, offset=20).params == {
        "symbol": "X",
        "limit": 10,
        "offset": 20,
    }
    trades = orders.get_user_trades_command(order_id="o", start_ts=1, end_ts=2, limit=5, offset=0)
    assert trades == OrderRequest(
        "get_user_trades",
        {"order_id": "o", "start_ts": 1, "end_ts": 2, "limit": 5, "offset": 0},
    )
    assert orders.get_leverage_command(limit=3).params == {"limit": 3}
    assert orders.leverage_levels_command().command == "get_available_leverage_levels"
    assert orders.leverage_levels_command(offset=4).params == {"offset": 4}
    assert orders.set_leverage_command(symbol="X", leverage=10) == OrderRequest(
        "set_user_leverage", {"symbol": "X", "leverage": D(10)}
    )


# ---------------------------------------------------------------- sent as built


async def send(ws: Client, request: OrderRequest) -> None:
    await ws.send(encode_json(orders.message(request)))


async def reply(ws: Client, key: str) -> tuple[dict[str, Any], list[Any]]:
    """The next frame with top-level ``key``, schema-checked, and what qfexbot parses from it."""
    frame = await ws.recv_until(lambda f: isinstance(f, dict) and key in f)
    validate_trade_frame(frame)
    return frame, parse_trade_frame(json.dumps(frame), "qfex", PRIMARY, 0.0)


async def test_orders_cancels_and_queries_as_built_against_the_simulator(
    nursery: trio.Nursery,
) -> None:
    running = await start_sim(nursery)
    async with connect(running.urls.trade_url) as ws:
        await ws.auth()
        await ws.subscribe("order_responses")
        resting = limit_order(price=D(100), client_order_id="rest-1")  # far below the market
        await send(ws, orders.order_command(resting, take_profit=D(120), stop_loss=D(90)))
        _, (ack,) = await reply(ws, "order_response")
        assert isinstance(ack, OrderUpdateEvent)
        assert (ack.status, ack.client_order_id) == ("ACK", "rest-1")
        assert (ack.take_profit, ack.stop_loss) == (D(120), D(90))

        await send(ws, orders.get_user_orders_command(symbol="AAPL-USD", limit=10))
        _, (snapshot,) = await reply(ws, "all_orders_response")
        assert isinstance(snapshot, OrdersSnapshot)
        assert [o.order_id for o in snapshot.orders] == [ack.order_id]

        await send(ws, orders.cancel_command(symbol="AAPL-USD", order_id=ack.order_id))
        _, (cancelled,) = await reply(ws, "order_response")
        assert (cancelled.order_id, cancelled.status) == (ack.order_id, "CANCELLED")

        await send(ws, orders.order_command(limit_order(price=D(100), client_order_id="rest-2")))
        await reply(ws, "order_response")
        await send(ws, orders.cancel_all_command())
        _, (gone,) = await reply(ws, "order_response")
        assert (gone.client_order_id, gone.status) == ("rest-2", "CANCELLED")
        await reply(ws, "ack")

        await send(ws, orders.set_leverage_command(symbol="AAPL-USD", leverage=5))
        await reply(ws, "ack")
        await send(ws, orders.get_leverage_command())
        _, (levels,) = await reply(ws, "user_leverage_response")
        assert isinstance(levels, LeverageLevels)
        by_symbol = {level.symbol: level for level in levels.levels}
        assert by_symbol["AAPL-USD"].leverage == D(5)
        assert by_symbol["AAPL-USD"].initial_margin == D("0.2")


async def test_a_twap_as_built_against_the_simulator(nursery: trio.Nursery) -> None:
    running = await start_sim(nursery)
    async with connect(running.urls.trade_url) as ws:
        await ws.auth()
        await ws.subscribe("order_responses")
        await send(
            ws,
            orders.add_twap_command(
                symbol="AAPL-USD",
                side="BUY",
                total_quantity=D(2),
                num_orders=2,
                order_interval_secs=30,
                client_twap_id="rebalance-1",
            ),
        )
        _, (started,) = await reply(ws, "twap_response")
        assert isinstance(started, TwapEvent)
        assert (started.client_twap_id, started.total_quantity, started.total_orders) == (
            "rebalance-1",
            D(2),
            2,
        )
        await send(ws, orders.get_user_orders_command())
        _, (snapshot,) = await reply(ws, "all_orders_response")
        assert [t.twap_id for t in snapshot.twaps] == [started.twap_id]
        await send(ws, orders.cancel_twap_command(symbol="AAPL-USD", client_twap_id="rebalance-1"))
        _, (ended,) = await reply(ws, "twap_response")
        while ended.status != "CANCELLED":  # progress reports of the first child come first
            _, (ended,) = await reply(ws, "twap_response")
        assert ended.twap_id == started.twap_id
