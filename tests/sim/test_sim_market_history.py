"""The market history (engine level, injected clock): candle buckets, OHLC from marks and trades,
volume, open interest, long/short counts, taker flow, daily volume reset, settlements."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sim_client import OTHER, PRIMARY, make_config, market_order

from qfexbot.sim.qfex.engine import Engine
from qfexbot.sim.qfex.market_history import (
    RESOLUTIONS,
    bucket,
    next_settlement_time,
    settlement_contract,
)

D = Decimal
T0 = 1_759_968_000.0  # 2025-10-09T00:00:00Z: the start of a bucket of every resolution


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def engine(now: float = T0) -> tuple[Engine, Clock]:
    clock = Clock(now)
    return Engine(make_config(), clock), clock


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_candles_take_marks_and_trades_and_start_new_buckets() -> None:
    sim, clock = engine()
    history = sim.market_history
    assert history.candle("AAPL-USD", "1MIN") is None
    history.sample()
    bar = history.candle("AAPL-USD", "1MIN")
    assert bar is not None and bar.start == T0
    assert (bar.open, bar.high, bar.low, bar.close) == (D("200.00"),) * 4
    assert bar.trades == 0 and bar.usd_volume == 0 and bar.starting_open_interest == 0
    clock.now = T0 + 10
    sim.add_order(PRIMARY, market_order("BUY", 2))  # takes 200.01 from the synthetic book
    assert (bar.high, bar.close, bar.trades) == (D("200.01"), D("200.01"), 1)
    assert bar.base_volume == 2 and bar.usd_volume == D("400.02")
    clock.now = T0 + 20
    sim.set_price("AAPL-USD", D("190.00"))
    low = sim.mark_price("AAPL-USD")
    assert low < D("200") and bar.low == low and bar.close == low
    assert bar.mid_open == D("200.00") and bar.mid_close == D("190.00")
    clock.now = T0 + 65
    history.sample()
    minute = history.candle("AAPL-USD", "1MIN")
    assert minute is not None and minute is not bar and minute.start == T0 + 60
    assert minute.open == low and minute.trades == 0 and minute.starting_open_interest == 2
    for resolution in RESOLUTIONS:  # every longer bar still holds the whole history
        longer = history.candle("AAPL-USD", resolution)
        assert longer is not None
        if resolution != "1MIN":
            assert longer.start == T0 and longer.trades == 1 and longer.high == D("200.01")
    assert [b.start for b in history.candles("AAPL-USD", "1MIN", T0, T0 + 60)] == [T0, T0 + 60]
    assert history.candles("AAPL-USD", "1MIN", T0 + 1, T0 + 59) == []


def test_open_interest_long_short_and_taker_flow() -> None:
    sim, clock = engine()
    history = sim.market_history
    sim.add_order(PRIMARY, market_order("BUY", 3))
    sim.add_order(OTHER, market_order("SELL", 1))
    snap = history.snapshot("AAPL-USD")
    assert snap.open_interest == 3  # the longs; the synthetic book is no account
    assert (snap.long_accounts, snap.short_accounts) == (1, 1)
    (minute,) = history.minutes("AAPL-USD", T0, T0 + 60)
    assert minute.taker_buy_qty == 3 and minute.taker_buy_notional == D("600.03")
    assert minute.taker_sell_qty == 1 and minute.taker_sell_notional == D("199.99")
    assert minute.open_interest == 3 and (minute.long_accounts, minute.short_accounts) == (1, 1)
    clock.now = T0 + 120
    sim.add_order(PRIMARY, market_order("SELL", 3))
    assert history.snapshot("AAPL-USD").open_interest == 0
    assert history.before("AAPL-USD", T0 + 120) is minute  # the forward-fill source
    assert history.minutes("AAPL-USD", T0 + 120, T0 + 180)[0].long_accounts == 0
    assert history.volume_24h("AAPL-USD", T0 + 120) == D("600.03") + D("199.99") + D("599.97")


def test_funding_and_underlier_samples_follow_economics() -> None:
    sim, clock = engine()
    sim.economics.underlier_offsets["AAPL-USD"] = D(2)
    sim.market_history.sample()
    (minute,) = sim.market_history.minutes("AAPL-USD", T0, T0 + 60)
    assert minute.underlier_close == D("202.00")
    assert minute.funding_rate == sim.economics.funding_rate("AAPL-USD", T0) < 0
    clock.now = T0 + 30
    sim.set_price("AAPL-USD", D("210.00"))
    assert minute.underlier_open == D("202.00") and minute.underlier_high == D("212.00")
    assert minute.underlier_close == D("212.00") and minute.underlier_low == D("202.00")


def test_daily_volume_resets_at_20_chicago() -> None:
    before = utc("2025-10-10T00:59:00")  # 19:59 in Chicago (CDT, UTC-5)
    sim, clock = engine(before)
    history = sim.market_history
    sim.add_order(PRIMARY, market_order("BUY", 1))
    assert history.daily_volume("AAPL-USD", before) == 1
    assert history.daily_volume("AAPL-USD", before + 59) == 1
    clock.now = before + 61  # 20:00:01 Chicago: a new trading day
    assert history.daily_volume("AAPL-USD", clock.now) == 0
    sim.add_order(PRIMARY, market_order("SELL", 2))
    assert history.daily_volume("AAPL-USD", clock.now) == 2


def test_price_change_over_24_hours() -> None:
    sim, clock = engine()
    history = sim.market_history
    history.sample()
    assert history.price_change_24h("AAPL-USD", T0) == 0
    clock.now = T0 + 3600
    sim.set_price("AAPL-USD", D("205.00"))
    assert history.price_change_24h("AAPL-USD", clock.now) == D("5.00")  # history < 24 h
    clock.now = T0 + 86_400 + 3600
    sim.set_price("AAPL-USD", D("210.00"))
    assert history.price_24h_ago("AAPL-USD", clock.now) == D("205.00")
    assert history.price_change_24h("AAPL-USD", clock.now) == D("5.00")


def test_settlement_calendar_and_daily_settlement() -> None:
    entry = settlement_contract("CL-USD", utc("2026-04-13T00:00:00"))
    assert entry is not None
    assert entry[0] == "CLK6"  # the spec's example
    assert entry[1] == datetime(2026, 4, 21, 21, 30, tzinfo=UTC)
    assert entry[2] == datetime(2026, 4, 13, 21, 30, tzinfo=UTC)
    assert settlement_contract("CL-USD", utc("2026-04-14T00:00:00"))[0] == "CLM6"  # type: ignore[index]
    assert settlement_contract("CL-USD", utc("2026-12-14T00:00:00"))[0] == "CLG7"  # type: ignore[index]
    assert settlement_contract("AAPL-USD", T0) is None
    assert next_settlement_time(T0) == T0 + 21.5 * 3600
    sim, clock = engine()
    history = sim.market_history
    history.sample()
    assert history.settlements("CL-USD") == []
    clock.now = T0 + 21.5 * 3600 + 5
    history.sample()
    (row,) = history.settlements("CL-USD")
    assert (row.symbol, row.future_symbol, row.asof) == ("CL-USD", "CLX5", "2025-10-09")
    assert row.future_price == D("70.00") and row.spot_price == D("70.00")
    clock.now += 60
    history.sample()
    assert len(history.settlements("CL-USD")) == 1  # once a day
    assert history.settlements("AAPL-USD") == []


def test_bucket_floors_to_the_interval() -> None:
    assert bucket(T0 + 59.9, 60) == T0
    assert bucket(T0 + 60, 60) == T0 + 60
    assert bucket(T0 + 86_399, 86_400) == T0
