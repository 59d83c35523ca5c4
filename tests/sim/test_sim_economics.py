"""The simulator's economics against the real engine with an injected clock: fees per symbol and
rebates, funding windows, market hours, price-band edges, liquidation and the order limits."""

from __future__ import annotations

import dataclasses
from datetime import time
from decimal import Decimal
from typing import Any

from sim_client import OTHER, PRIMARY, SUB1, make_config

from qfexbot.sim.qfex.config import MarketHours, default_symbols
from qfexbot.sim.qfex.engine import Engine
from qfexbot.sim.qfex.model import PrivateEvent

D = Decimal
T0 = 1_800_000_000.0
"""Friday 2027-01-15 08:00:00 UTC, on an hour boundary (a funding window starts)."""
AAPL = "AAPL-USD"


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_engine(clock: Clock, symbols: dict[str, Any] | None = None, **config: Any) -> Engine:
    """An engine over the built-in symbols, ``symbols`` mapping a name to SimSymbol changes."""
    table = default_symbols()
    for name, changes in (symbols or {}).items():
        table[name] = dataclasses.replace(table[name], **changes)
    return Engine(make_config(symbols=table, **config), clock)


def order(side: str = "BUY", **params: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "symbol": AAPL,
        "side": side,
        "order_type": "LIMIT",
        "order_time_in_force": "GTC",
        "quantity": D(1),
    }
    base.update(params)
    return base


def market(side: str = "BUY", quantity: str = "1", symbol: str = AAPL) -> dict[str, Any]:
    return order(
        side, order_type="MARKET", order_time_in_force="IOC", quantity=D(quantity), symbol=symbol
    )


def frames(events: list, key: str) -> list[dict[str, Any]]:
    return [e.frame[key] for e in events if isinstance(e, PrivateEvent) and key in e.frame]


def statuses(events: list) -> list[str]:
    return [f["status"] for f in frames(events, "order_response")]


# ---------------------------------------------------------------------- fees


def test_symbol_fees_override_the_config_and_a_negative_maker_fee_is_a_rebate() -> None:
    clock = Clock()
    eng = make_engine(clock, {AAPL: {"maker_fee": D("-0.0001"), "taker_fee": D("0.0005")}})
    econ = eng.economics
    assert econ.fee_rate(PRIMARY, AAPL, maker=True) == D("-0.0001")
    assert econ.fee_rate(PRIMARY, AAPL, maker=False) == D("0.0005")
    assert econ.fee_rate(PRIMARY, "US500-USD", maker=False) == eng.config.taker_fee
    assert econ.fees_table(PRIMARY)["US500-USD"] == (eng.config.maker_fee, eng.config.taker_fee)

    taker = frames(eng.add_order(OTHER, market("BUY")), "fill_response")[0]
    assert D(str(taker["fee"])) == D(str(taker["price"])) * D("0.0005")

    resting = eng.add_order(PRIMARY, order("BUY", price=D("195.00")))
    assert statuses(resting) == ["ACK"]
    before = eng.available_balance(PRIMARY) + eng.order_margin(PRIMARY)
    fill = frames(eng.set_price(AAPL, D("190")), "fill_response")[0]
    assert fill["fee"] == float(D("195.00") * D("-0.0001"))
    assert eng.accounts[PRIMARY].fees == D("-0.0195")
    # the rebate is credited: cash before the fill + rebate - new position margin - losses
    after = eng.available_balance(PRIMARY)
    expected = before + D("0.0195") - eng.position_margin(PRIMARY) + eng.unrealised_pnl(PRIMARY)
    assert after == expected

    other = frames(eng.add_order(PRIMARY, market("BUY", symbol="US500-USD")), "fill_response")
    assert D(str(other[0]["fee"])) == D(str(other[0]["price"])) * eng.config.taker_fee


# ---------------------------------------------------------------------- funding


def _long_and_short(eng: Engine) -> None:
    assert "FILLED" in statuses(eng.add_order(PRIMARY, market("BUY", "2")))
    assert "FILLED" in statuses(eng.add_order(OTHER, market("SELL", "1")))


def test_a_full_window_pays_minus_size_times_mark_times_the_mean_premium() -> None:
    clock = Clock()
    eng = make_engine(clock, funding_interval=60.0)
    econ = eng.economics
    _long_and_short(eng)
    offset = econ.set_underlier(AAPL, price=eng.markets[AAPL].mid - D("0.5"))
    assert offset == D("-0.5")
    mark, underlier = eng.mark_price(AAPL), econ.underlier(AAPL)
    premium = (mark - underlier) / underlier
    assert 0 < premium < eng.config.funding_cap
    assert econ.step(T0) == []
    clock.now = T0 + 30
    econ.step(clock.now)
    assert econ.funding_rate(AAPL, clock.now) == premium
    assert econ.time_remaining(clock.now) == 30
    assert econ.payments(PRIMARY) == []
    clock.now = T0 + 60
    econ.step(clock.now)

    long_pays = -D(2) * mark * premium
    assert long_pays < 0
    (payment,) = econ.payments(PRIMARY)
    assert (payment.symbol, payment.rate, payment.position, payment.amount) == (
        AAPL,
        premium,
        D(2),
        long_pays,
    )
    assert (payment.window_start, payment.window_end) == (T0, T0 + 60)
    assert eng.accounts[PRIMARY].positions[AAPL].net_funding == long_pays
    assert eng.balance(PRIMARY).net_funding == long_pays
    (short,) = econ.payments(OTHER)
    assert short.amount == D(1) * mark * premium > 0
    assert eng.accounts[OTHER].net_funding == short.amount
    assert econ.payments(SUB1) == []
    assert econ.settled_rates(AAPL) == [(T0, premium)]
    # other symbols had no premium offset and no positions: nobody paid for them
    assert {p.symbol for p in econ.payments(PRIMARY)} == {AAPL}


def test_the_rate_is_capped_and_a_window_joined_midway_pays_nothing() -> None:
    clock = Clock(T0 + 10)
    eng = make_engine(clock, funding_interval=60.0, funding_cap=D("0.001"))
    econ = eng.economics
    _long_and_short(eng)
    econ.set_underlier(AAPL, offset=D("-20"))
    econ.step(T0 + 10)
    assert econ.funding_rate(AAPL, T0 + 10) == D("0.001")
    econ.step(T0 + 60)  # the first window began before the simulator sampled it
    assert econ.payments(PRIMARY) == []
    econ.step(T0 + 120)
    (payment,) = econ.payments(PRIMARY)
    assert payment.rate == D("0.001")
    assert payment.amount == -D(2) * eng.mark_price(AAPL) * D("0.001")
    econ.set_underlier(AAPL)  # neither price nor offset: cleared
    assert econ.underlier(AAPL) == eng.markets[AAPL].mid


def _friday_day_session(tz: str = "UTC") -> MarketHours:
    return MarketHours(tz, {"friday": (time(9, 0, 0), time(17, 0, 0))})


def test_a_closed_market_rejects_orders_allows_cancels_and_pays_no_funding() -> None:
    clock = Clock(T0 + 3600)  # Friday 09:00 UTC: open
    eng = make_engine(clock, {AAPL: {"market_hours": _friday_day_session()}}, funding_interval=60.0)
    econ = eng.economics
    assert econ.is_open(AAPL, clock.now) and econ.is_open("US500-USD", T0)
    _long_and_short(eng)
    resting = frames(eng.add_order(PRIMARY, order("BUY", price=D("190.00"))), "order_response")
    assert resting[0]["status"] == "ACK"
    econ.set_underlier(AAPL, offset=D("-0.5"))

    clock.now = T0 + 9 * 3600  # 17:00:00 is still open (close is inclusive to the second)
    assert econ.is_open(AAPL, clock.now)
    clock.now = T0 + 9 * 3600 + 1  # 17:00:01: closed
    assert not econ.is_open(AAPL, clock.now)
    assert statuses(eng.add_order(PRIMARY, order("BUY", price=D("190.00")))) == [
        "REJECTED_MARKET_CLOSED"
    ]
    assert statuses(eng.add_order(OTHER, market("BUY"))) == ["REJECTED_MARKET_CLOSED"]
    assert "FILLED" in statuses(eng.add_order(PRIMARY, market("BUY", symbol="US500-USD")))
    cancelled = eng.cancel_order(PRIMARY, {"order_id": resting[0]["order_id"]})
    assert statuses(cancelled) == ["CANCELLED"]
    assert econ.funding_rate(AAPL, clock.now) == 0

    start = T0 + 10 * 3600  # Friday 18:00, a window wholly outside the session
    for now in (start, start + 30, start + 60, start + 120):
        econ.step(now)
    paid = [p.symbol for account in (PRIMARY, OTHER) for p in econ.payments(account)]
    assert AAPL not in paid and "US500-USD" in paid  # the always-open symbol still pays
    assert eng.accounts[PRIMARY].positions[AAPL].net_funding == 0
    assert eng.accounts[OTHER].net_funding == 0
    assert econ.settled_rates(AAPL) == []


def test_market_hours_are_read_in_the_configured_time_zone() -> None:
    hours = _friday_day_session("America/New_York")  # UTC-5 in January
    assert not hours.is_open(T0 + 3600)  # 04:00 in New York
    assert hours.is_open(T0 + 6 * 3600)  # 14:00 UTC = 09:00 in New York
    assert hours.is_open(T0 + 14 * 3600)  # 22:00 UTC = 17:00 in New York
    assert not hours.is_open(T0 + 14 * 3600 + 1)
    assert not hours.is_open(T0 + 7 * 86400 - 86400)  # Thursday: no session
    assert hours.as_refdata() == {
        "tz": "America/New_York",
        "friday": {"open": "09:00:00", "close": "17:00:00"},
    }


# ---------------------------------------------------------------------- band


def test_band_edges_accept_the_edge_and_reject_one_tick_beyond() -> None:
    clock = Clock()
    eng = make_engine(clock)
    low, high = eng.economics.band(AAPL)
    tick = eng.markets[AAPL].spec.tick_size
    mark = eng.mark_price(AAPL)
    assert low == (mark * D("0.9")).quantize(tick, rounding="ROUND_FLOOR")
    assert high == (mark * D("1.1")).quantize(tick, rounding="ROUND_CEILING")
    assert statuses(eng.add_order(PRIMARY, order("BUY", price=high + tick))) == [
        "PRICE_GREATER_THAN_MAX_PRICE"
    ]
    assert statuses(eng.add_order(PRIMARY, order("SELL", price=low - tick))) == [
        "PRICE_LESS_THAN_MIN_PRICE"
    ]
    assert statuses(eng.add_order(PRIMARY, order("BUY", price=high)))[0] == "ACK"
    assert statuses(eng.add_order(OTHER, order("SELL", price=low)))[0] == "ACK"
    # the band is measured from the mark when the order arrives
    eng.set_price(AAPL, D("150"))
    assert eng.economics.band(AAPL)[1] < high


# ---------------------------------------------------------------------- liquidation


def test_liquidation_cancels_the_accounts_orders_and_closes_its_positions() -> None:
    clock = Clock()
    eng = make_engine(clock)
    econ = eng.economics
    # SUB1 has 50 USD: 2 AAPL at 10x uses 40 of it; PRIMARY's position is small and healthy
    assert "FILLED" in statuses(eng.add_order(SUB1, market("BUY", "2")))
    resting = eng.add_order(SUB1, order("SELL", price=D("210.00"), quantity=D("0.01")))
    assert statuses(resting) == ["ACK"]
    assert "FILLED" in statuses(eng.add_order(PRIMARY, market("BUY", "1")))
    assert econ.step(T0) == []
    assert not econ.below_maintenance(SUB1)

    eng.set_price(AAPL, D("180"))  # equity ~10 USD, maintenance margin ~24 USD
    assert eng.equity(SUB1) < econ.maintenance_margin(SUB1)
    events = econ.step(T0 + 1)
    replies = frames(events, "order_response")
    assert replies[0]["status"] == "CANCELLED" and replies[0]["price"] == 210.0
    liquidations = [r for r in replies if r["client_order_id"] == "liquidation"]
    assert liquidations and all(r["side"] == "SELL" for r in liquidations)
    assert all(r["type"] == "MARKET" and r["time_in_force"] == "IOC" for r in liquidations)
    fills = frames(events, "fill_response")
    assert sum(D(str(f["quantity"])) for f in fills) == D(2)
    assert {f["execution_type"] for f in fills} == {"LIQUIDATION"}
    assert eng.accounts[SUB1].positions[AAPL].size == 0
    assert eng.open_orders(SUB1) == []
    assert {e.account_id for e in events if isinstance(e, PrivateEvent)} == {SUB1}
    assert eng.accounts[PRIMARY].positions[AAPL].size == 1
    assert econ.step(T0 + 2) == []  # flat: nothing more to do


# ---------------------------------------------------------------------- limits


def test_max_open_orders_rejects_a_resting_order_beyond_the_limit() -> None:
    clock = Clock()
    eng = make_engine(clock, max_open_orders=3)
    ids = []
    for k in range(3):
        reply = frames(eng.add_order(PRIMARY, order(price=D("190.00") - k)), "order_response")
        assert reply[0]["status"] == "ACK"
        ids.append(reply[0]["order_id"])
    assert statuses(eng.add_order(PRIMARY, order(price=D("185.00")))) == [
        "REJECTED_TOO_MANY_OPEN_ORDERS"
    ]
    assert "FILLED" in statuses(eng.add_order(PRIMARY, market("BUY")))  # never rests
    assert statuses(eng.add_order(OTHER, order(price=D("185.00")))) == ["ACK"]  # per account
    eng.cancel_order(PRIMARY, {"order_id": ids[0]})
    assert statuses(eng.add_order(PRIMARY, order(price=D("185.00")))) == ["ACK"]


def test_waiting_stops_and_twaps_count_against_max_open_orders() -> None:
    """Stops wait off the book but are open orders: unbounded they would let one account
    grow the engine without limit (and slow every order, which checks them)."""
    clock = Clock()
    eng = make_engine(clock, max_open_orders=2)
    stop = {"order_type": "STOP_MARKET", "order_time_in_force": "IOC", "price": D("300.00")}
    assert statuses(eng.add_order(PRIMARY, order(**stop))) == ["ACK"]
    assert statuses(eng.add_order(PRIMARY, order(price=D("190.00")))) == ["ACK"]
    assert statuses(eng.add_order(PRIMARY, order(**{**stop, "price": D("301.00")}))) == [
        "REJECTED_TOO_MANY_OPEN_ORDERS"
    ]
    assert statuses(eng.add_order(PRIMARY, order(price=D("189.00")))) == [
        "REJECTED_TOO_MANY_OPEN_ORDERS"
    ]
    assert len(eng.stops) == 1
    assert eng.twaps.max_active == 2  # TWAPs: at most max_open_orders running per account


def test_max_open_interest_rejects_an_order_that_would_grow_it_past_the_cap() -> None:
    clock = Clock()
    eng = make_engine(clock, {AAPL: {"max_open_interest": D(2)}})
    assert "FILLED" in statuses(eng.add_order(PRIMARY, market("BUY", "1.5")))
    assert eng.economics.open_interest(AAPL) == D("1.5")
    assert statuses(eng.add_order(OTHER, market("BUY", "1"))) == ["REJECTED_OPEN_INTEREST_LIMIT"]
    assert statuses(eng.add_order(OTHER, order("BUY", price=D("190"), quantity=D(1)))) == [
        "REJECTED_OPEN_INTEREST_LIMIT"
    ]
    assert "FILLED" in statuses(eng.add_order(OTHER, market("BUY", "0.5")))
    assert eng.economics.open_interest(AAPL) == D(2)
    assert "FILLED" in statuses(eng.add_order(PRIMARY, market("SELL", "1")))  # reduces: allowed
    assert eng.economics.open_interest(AAPL) == D(1)
    assert eng.economics.open_interest(AAPL, "SELL") == 0


def test_a_reducing_order_passes_the_margin_check_with_a_negative_available_balance() -> None:
    clock = Clock()
    eng = make_engine(clock)
    assert "FILLED" in statuses(eng.add_order(SUB1, market("BUY", "2")))
    eng.set_price(AAPL, D("180"))
    assert eng.available_balance(SUB1) < 0
    assert statuses(eng.add_order(SUB1, market("BUY", "0.01"))) == ["FAILED_MARGIN_CHECK"]
    reduce = eng.add_order(SUB1, order("SELL", price=D("185.00"), quantity=D("0.5")))
    assert statuses(reduce) == ["ACK"]  # rests: it adds no position margin
    assert "FILLED" in statuses(eng.add_order(SUB1, market("SELL", "1")))
    assert eng.accounts[SUB1].positions[AAPL].size == 1
