"""Simulator TWAPs on the engine with an injected clock: schedule, sizes, reduce-only, cancel,
validation (docs/simulator.md "TWAPs")."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sim_client import OTHER, PRIMARY, SUB1, make_config

from qfexbot.sim.qfex.engine import Engine
from qfexbot.sim.qfex.model import CommandError, Event, PrivateEvent
from qfexbot.sim.qfex.twap import TwapBook

D = Decimal
T0 = 1_760_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def engine(clock: Clock) -> Engine:
    return Engine(make_config(), clock)


def twap(**params: Any) -> dict[str, Any]:
    """add_twap params as the trade socket hands them over (floats parsed as Decimal)."""
    base: dict[str, Any] = {
        "symbol": "AAPL-USD",
        "side": "BUY",
        "total_quantity": D("1.001"),
        "num_orders": 3,
        "order_interval_secs": 30,
        "reduce_only": False,
        "client_twap_id": "rebalance-1",
    }
    base.update(params)
    return {k: v for k, v in base.items() if v is not ...}


def frames(events: list[Event], key: str) -> list[dict[str, Any]]:
    return [e.frame[key] for e in events if isinstance(e, PrivateEvent) and key in e.frame]


def children(events: list[Event]) -> list[dict[str, Any]]:
    """The children's ACK order_responses (one per child the engine accepted)."""
    return [o for o in frames(events, "order_response") if o["status"] == "ACK"]


def market(side: str, quantity: str) -> dict[str, Any]:
    return {
        "symbol": "AAPL-USD",
        "side": side,
        "order_type": "MARKET",
        "order_time_in_force": "IOC",
        "quantity": D(quantity),
    }


def test_first_child_at_once_then_one_per_interval_and_the_last_takes_the_remainder() -> None:
    clock = Clock()
    eng = engine(clock)
    events = eng.twaps.add(PRIMARY, twap())
    reports = frames(events, "twap_response")
    # the reply first (nothing placed yet), then the first child, then its progress
    assert events[0].frame == {"twap_response": reports[0]}
    assert [r["status"] for r in reports] == ["ACTIVE", "ACTIVE"]
    assert reports[0]["filled_quantity"] == 0 and reports[0]["average_fill_price"] == 0
    first = children(events)
    assert [
        (c["client_order_id"], c["quantity"], c["type"], c["time_in_force"]) for c in first
    ] == [("rebalance-1:1", 0.333, "MARKET", "IOC")]
    (active,) = eng.twaps.active(PRIMARY)
    assert active.placed == 1 and active.next_at == T0 + 30
    assert reports[1]["filled_quantity"] == 0.333 and reports[1]["twap_id"] == active.twap_id

    clock.now = T0 + 29.9
    assert eng.twaps.step(clock.now) == []
    clock.now = T0 + 30.2  # a tick late: the schedule stays on created_at + k x interval
    second = eng.twaps.step(clock.now)
    assert [c["client_order_id"] for c in children(second)] == ["rebalance-1:2"]
    assert active.next_at == T0 + 60
    clock.now = T0 + 60
    last = eng.twaps.step(clock.now)
    assert [(c["client_order_id"], c["quantity"]) for c in children(last)] == [
        ("rebalance-1:3", 0.335)
    ]
    (done,) = frames(last, "twap_response")
    assert done["status"] == "COMPLETED" and done["filled_quantity"] == 1.001
    assert done["created_at"] == T0 and done["updated_at"] == T0 + 60

    assert eng.twaps.active(PRIMARY) == []
    (finished,) = eng.twaps.finished(PRIMARY)
    assert finished is active and finished.status == "COMPLETED"
    assert finished.placed == finished.filled_orders == 3
    # the children are ordinary orders: their trades are in the account's history
    trades = [t for t in eng.trade_log[PRIMARY] if t.client_order_id.startswith("rebalance-1:")]
    assert sum(t.quantity for t in trades) == finished.filled_quantity == D("1.001")
    assert sum(t.price * t.quantity for t in trades) == finished.notional
    assert finished.average_fill_price == finished.notional / finished.filled_quantity
    assert done["average_fill_price"] == float(finished.average_fill_price)
    assert eng.accounts[PRIMARY].positions["AAPL-USD"].size == D("1.001")
    clock.now = T0 + 300
    assert eng.twaps.step(clock.now) == []


def test_after_a_stall_one_child_per_step_and_the_schedule_restarts() -> None:
    clock = Clock()
    eng = engine(clock)
    eng.twaps.add(PRIMARY, twap(num_orders=4, total_quantity=D("0.004")))
    clock.now = T0 + 95  # three intervals late: one child, not a burst of three
    events = eng.twaps.step(clock.now)
    assert len(children(events)) == 1
    (active,) = eng.twaps.active(PRIMARY)
    assert active.placed == 2 and active.next_at == T0 + 125


def test_without_client_twap_id_children_are_named_after_the_twap_id() -> None:
    clock = Clock()
    eng = engine(clock)
    events = eng.twaps.add(PRIMARY, twap(client_twap_id=None))
    (report, _) = frames(events, "twap_response")
    assert report["client_twap_id"] is None
    assert children(events)[0]["client_order_id"] == f"{report['twap_id']}:1"
    assert eng.twaps.active(PRIMARY)[0].client_twap_id is None


def test_a_rejected_child_counts_as_placed_and_the_twap_continues() -> None:
    clock = Clock()
    eng = engine(clock)
    # SUB1 holds 50 USD: 3 AAPL at 200 need 60 of initial margin, at 150 only 45
    events = eng.twaps.add(SUB1, twap(total_quantity=D(6), num_orders=2, client_twap_id="m"))
    assert [o["status"] for o in frames(events, "order_response")] == ["FAILED_MARGIN_CHECK"]
    (active,) = eng.twaps.active(SUB1)
    assert active.placed == 1 and active.filled_orders == 0
    eng.set_price("AAPL-USD", D(150))
    clock.now = T0 + 30
    events = eng.twaps.step(clock.now)
    statuses = [o["status"] for o in frames(events, "order_response")]
    assert statuses[0] == "ACK" and "FILLED" in statuses
    (done,) = frames(events, "twap_response")
    assert done["status"] == "COMPLETED" and done["filled_quantity"] == 3
    (finished,) = eng.twaps.finished(SUB1)
    assert (finished.placed, finished.filled_orders) == (2, 1)


def test_reduce_only_cuts_the_child_to_the_position_and_completes_early() -> None:
    clock = Clock()
    eng = engine(clock)
    eng.add_order(PRIMARY, market("BUY", "0.6"))
    events = eng.twaps.add(
        PRIMARY,
        twap(side="SELL", total_quantity=D("1.2"), num_orders=3, reduce_only=True),
    )
    (first,) = children(events)
    assert first["quantity"] == 0.4
    clock.now = T0 + 30
    (second,) = children(eng.twaps.step(clock.now))
    assert second["quantity"] == 0.2  # only 0.2 of the long is left to reduce
    assert eng.accounts[PRIMARY].positions["AAPL-USD"].size == 0
    clock.now = T0 + 60
    events = eng.twaps.step(clock.now)
    assert frames(events, "order_response") == []  # nothing left: no third child
    (done,) = frames(events, "twap_response")
    assert done["status"] == "COMPLETED" and done["filled_quantity"] == 0.6
    assert done["reduce_only"] is True
    (finished,) = eng.twaps.finished(PRIMARY)
    assert (finished.placed, finished.filled_orders) == (2, 2)


def test_reduce_only_without_a_reducible_position_completes_at_once() -> None:
    clock = Clock()
    eng = engine(clock)
    eng.add_order(PRIMARY, market("BUY", "0.5"))
    # a BUY cannot reduce a long position
    events = eng.twaps.add(PRIMARY, twap(reduce_only=True))
    assert frames(events, "order_response") == []
    assert [r["status"] for r in frames(events, "twap_response")] == ["ACTIVE", "COMPLETED"]
    assert eng.twaps.active(PRIMARY) == [] and eng.twaps.finished(PRIMARY)[0].placed == 0


@pytest.mark.parametrize("by", ["twap_id", "client_twap_id"])
def test_cancel_by_twap_id_or_client_twap_id_stops_the_children(by: str) -> None:
    clock = Clock()
    eng = engine(clock)
    eng.twaps.add(PRIMARY, twap())
    (running,) = eng.twaps.active(PRIMARY)
    ident = running.twap_id if by == "twap_id" else "rebalance-1"
    clock.now = T0 + 5
    events = eng.twaps.cancel(
        PRIMARY, {"symbol": "AAPL-USD", "order_id": ident, "cancel_order_id_type": by}
    )
    assert events is not None
    (report,) = frames(events, "twap_response")
    assert report["status"] == "CANCELLED" and report["updated_at"] == T0 + 5
    assert report["filled_quantity"] == 0.333
    assert eng.twaps.active(PRIMARY) == []
    assert eng.twaps.finished(PRIMARY) == [running] and running.status == "CANCELLED"
    clock.now = T0 + 120
    assert eng.twaps.step(clock.now) == []
    assert running.placed == 1


def test_cancel_takes_the_id_from_a_field_named_after_its_type() -> None:
    clock = Clock()
    eng = engine(clock)
    eng.twaps.add(PRIMARY, twap(client_twap_id="same"))
    eng.twaps.add(PRIMARY, twap(client_twap_id="same"))
    eng.twaps.add(PRIMARY, twap(client_twap_id="other"))
    events = eng.twaps.cancel(
        PRIMARY,
        {"symbol": "AAPL-USD", "client_twap_id": "same", "cancel_order_id_type": "client_twap_id"},
    )
    assert events is not None
    assert [r["client_twap_id"] for r in frames(events, "twap_response")] == ["same", "same"]
    assert [t.client_twap_id for t in eng.twaps.active(PRIMARY)] == ["other"]


@pytest.mark.parametrize(
    ("account", "symbol", "id_type"),
    [
        (PRIMARY, "AAPL-USD", "twap_id"),  # no such TWAP
        (PRIMARY, "AAPL-USD", "client_twap_id"),
        (PRIMARY, "EUR-USD", "client_twap_id"),  # the TWAP's id, another symbol
        (OTHER, "AAPL-USD", "client_twap_id"),  # the TWAP's id, another account
    ],
)
def test_unknown_twap_ids_get_no_such_order_with_valid_enums(
    account: str, symbol: str, id_type: str
) -> None:
    clock = Clock()
    eng = engine(clock)
    eng.twaps.add(PRIMARY, twap())
    ident = "rebalance-1" if symbol != "AAPL-USD" or account != PRIMARY else "nope"
    events = eng.twaps.cancel(
        account, {"symbol": symbol, "order_id": ident, "cancel_order_id_type": id_type}
    )
    assert events is not None
    (missing,) = frames(events, "order_response")
    assert missing["status"] == "NO_SUCH_ORDER" and missing["symbol"] == symbol
    assert (missing["side"], missing["type"], missing["time_in_force"]) == ("BUY", "LIMIT", "GTC")
    assert missing["user_id"] == account
    if id_type == "twap_id":
        assert (missing["order_id"], missing["client_order_id"]) == (ident, "")
    else:
        assert (missing["order_id"], missing["client_order_id"]) == ("", ident)
    assert len(eng.twaps.active(PRIMARY)) == 1


def test_cancel_leaves_order_id_types_to_the_engine_and_needs_an_id() -> None:
    eng = engine(Clock())
    assert eng.twaps.cancel(PRIMARY, {"order_id": "x", "cancel_order_id_type": "order_id"}) is None
    assert eng.twaps.cancel(PRIMARY, {"order_id": "x"}) is None
    with pytest.raises(CommandError) as err:
        eng.twaps.cancel(PRIMARY, {"symbol": "AAPL-USD", "cancel_order_id_type": "twap_id"})
    assert err.value.error_code == "InvalidParameter" and "twap_id" in err.value.message


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        (twap(symbol=...), "InvalidParameter", "symbol"),
        (twap(reduce_only=...), "InvalidParameter", "reduce_only"),
        (twap(total_quantity=None), "InvalidParameter", "total_quantity"),
        (twap(symbol="NOPE-USD"), "InvalidParameter", "symbol"),
        (twap(symbol=5), "InvalidJSONFormat", "symbol"),
        (twap(side="HOLD"), "InvalidJSONFormat", "side"),
        (twap(total_quantity="1"), "InvalidJSONFormat", "total_quantity"),
        (twap(total_quantity=D("NaN")), "InvalidJSONFormat", "total_quantity"),
        (twap(num_orders=D("3.0")), "InvalidJSONFormat", "num_orders"),
        (twap(num_orders=True), "InvalidJSONFormat", "num_orders"),
        (twap(order_interval_secs=D("30.5")), "InvalidJSONFormat", "order_interval_secs"),
        (twap(reduce_only="yes"), "InvalidJSONFormat", "reduce_only"),
        (twap(client_twap_id=7), "InvalidJSONFormat", "client_twap_id"),
        (twap(num_orders=1), "InvalidParameter", "num_orders"),
        (twap(order_interval_secs=29), "InvalidParameter", "order_interval_secs"),
        (twap(total_quantity=D(0)), "InvalidParameter", "total_quantity"),
        (twap(total_quantity=D("-1")), "InvalidParameter", "total_quantity"),
        (twap(total_quantity=D("1.0005")), "InvalidParameter", "total_quantity"),  # off the lot
        (twap(total_quantity=D("0.002")), "InvalidParameter", "min_quantity"),  # 0.002 / 3
        (twap(total_quantity=D(3001)), "InvalidParameter", "max_quantity"),  # 1000.334 last
        (twap(client_twap_id="x" * 63), "InvalidParameter", "client_twap_id"),  # + ":3" > 64
    ],
)
def test_add_twap_validation_errors_name_the_field(
    params: dict[str, Any], code: str, field: str
) -> None:
    eng = engine(Clock())
    with pytest.raises(CommandError) as err:
        eng.twaps.add(PRIMARY, params)
    assert err.value.error_code == code and field in err.value.message
    assert eng.twaps.active(PRIMARY) == [] and eng.accounts[PRIMARY].event_seq == 0


def test_limits_at_their_edges_are_accepted() -> None:
    clock = Clock()
    eng = engine(clock)
    # 61 chars + ":3" fills the 64 of a client order id exactly; 3 x min_quantity; 1/0 flags
    edge = "x" * 61
    events = eng.twaps.add(
        PRIMARY, twap(client_twap_id=edge, total_quantity=D("0.003"), reduce_only=0)
    )
    assert children(events)[0]["client_order_id"] == f"{edge}:1"
    assert children(events)[0]["quantity"] == 0.001
    assert eng.twaps.active(PRIMARY)[0].reduce_only is False


def test_min_interval_is_a_constructor_knob_and_active_is_per_account() -> None:
    clock = Clock()
    eng = engine(clock)
    eng.twaps = TwapBook(eng, min_interval=1, tick=0.05)
    assert eng.twaps.tick == 0.05
    eng.twaps.add(PRIMARY, twap(order_interval_secs=1, client_twap_id="p"))
    eng.twaps.add(OTHER, twap(order_interval_secs=1, client_twap_id="o", total_quantity=D("0.3")))
    assert [t.client_twap_id for t in eng.twaps.active(PRIMARY)] == ["p"]
    assert [t.client_twap_id for t in eng.twaps.active(OTHER)] == ["o"]
    clock.now = T0 + 1
    eng.twaps.step(clock.now)
    clock.now = T0 + 2
    eng.twaps.step(clock.now)
    assert eng.twaps.active(PRIMARY) == eng.twaps.active(OTHER) == []
    assert [t.status for t in eng.twaps.finished(OTHER)] == ["COMPLETED"]


def test_finished_twaps_are_listed_newest_last() -> None:
    clock = Clock()
    eng = engine(clock)
    book = eng.twaps
    for n in range(3):
        book.add(PRIMARY, twap(client_twap_id=f"t{n}"))
        book.cancel(PRIMARY, {"order_id": f"t{n}", "cancel_order_id_type": "client_twap_id"})
    assert [t.client_twap_id for t in book.finished(PRIMARY)] == ["t0", "t1", "t2"]
    assert book.finished(OTHER) == []
