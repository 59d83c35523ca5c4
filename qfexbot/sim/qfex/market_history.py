"""The simulator's market history: candles, per-minute series and daily volume of every symbol.

Sampled from the engine's own state (every price change, every trade and a timer), so the
market-data channels (``candle``, ``open_interest``, ``market_stats``, ...) and the public REST
history routes (``/candles``, ``/funding``, ``/open-interest``, ...) report what the simulated
market actually did. Bounded: ``CANDLES_KEPT`` bars per resolution, ``MINUTES_KEPT`` minute bars.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

from qfexbot.sim.qfex.economics import Economics
from qfexbot.sim.qfex.model import ZERO, Account, Market

__all__ = [
    "CANDLES_KEPT",
    "MDS_INTERVALS",
    "MINUTES_KEPT",
    "RESOLUTIONS",
    "SETTLEMENT_ROOTS",
    "CandleBar",
    "MarketHistory",
    "MarketSource",
    "MinuteBar",
    "SettlementRow",
    "Snapshot",
    "bucket",
    "settlement_contract",
    "volume_day",
]

RESOLUTIONS = {
    "1MIN": 60,
    "5MINS": 300,
    "15MINS": 900,
    "30MINS": 1800,
    "1HOUR": 3600,
    "4HOURS": 14400,
    "1DAY": 86400,
}
"""Candle resolution -> seconds: the REST set (qfex.md §6 #18 adds ``30MINS``)."""
MDS_INTERVALS = ("1MIN", "5MINS", "15MINS", "1HOUR", "4HOURS", "1DAY")
"""The ``intervals`` the ``candle`` channel accepts (the AsyncAPI's enum)."""
CANDLES_KEPT = 10_080
MINUTES_KEPT = 43_200
"""Minute bars kept per symbol (30 days): the REST series are aggregated from them."""
DAY = 86_400
VOLUME_DAY_ZONE = ZoneInfo("America/Chicago")
VOLUME_DAY_SHIFT = timedelta(hours=4)
"""The daily volume resets at 20:00 America/Chicago (qfex.md §3.2): 20:00 + 4 h is midnight."""
SETTLEMENT_ROOTS = {"CL-USD": "CL"}
"""Symbols priced off a dated future -> the future's root (the spec's example, plan Q20)."""
SETTLEMENT_TIME = timedelta(hours=21, minutes=30)
ACTIVE_BEFORE_EXPIRY = timedelta(days=8)
MONTH_CODES = "FGHJKMNQUVXZ"


class MarketSource(Protocol):
    """What the history reads of the engine (a protocol: the engine imports this module)."""

    markets: dict[str, Market]
    accounts: dict[str, Account]
    economics: Economics

    def clock(self) -> float: ...

    def mark_price(self, symbol: str) -> Decimal: ...

    def best_bid(self, symbol: str) -> Decimal | None: ...

    def best_ask(self, symbol: str) -> Decimal | None: ...


@dataclass
class CandleBar:
    """One candle: OHLC over mark samples and trade prices, volume and count from trades only."""

    start: int
    resolution: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    starting_open_interest: Decimal
    mid_open: Decimal
    mid_close: Decimal
    base_volume: Decimal = ZERO
    usd_volume: Decimal = ZERO
    trades: int = 0
    version: int = 0
    """Bumped on every change: the ``candle`` channel sends a bar again only when it changed."""

    def update(self, price: Decimal) -> None:
        """One more price in the bar (a new version only when the bar changed)."""
        if price > self.high or price < self.low or price != self.close:
            self.high = max(self.high, price)
            self.low = min(self.low, price)
            self.close = price
            self.version += 1


@dataclass
class MinuteBar:
    """One minute of one symbol: the last values seen in it and the taker flow during it."""

    start: int
    mid: Decimal
    mark_open: Decimal
    mark: Decimal
    underlier_open: Decimal
    underlier_high: Decimal
    underlier_low: Decimal
    underlier_close: Decimal
    funding_rate: Decimal
    open_interest: Decimal
    long_accounts: int
    short_accounts: int
    taker_buy_qty: Decimal = ZERO
    taker_sell_qty: Decimal = ZERO
    taker_buy_notional: Decimal = ZERO
    taker_sell_notional: Decimal = ZERO
    usd_volume: Decimal = ZERO


@dataclass(frozen=True)
class SettlementRow:
    """One daily settlement of a futures-referenced symbol (``/settlement-prices``)."""

    symbol: str
    future_symbol: str
    future_price: Decimal
    spot_price: Decimal
    asof: str
    inserted_at: float


@dataclass(frozen=True)
class Snapshot:
    """A symbol's state at one sample."""

    mid: Decimal
    mark: Decimal
    underlier: Decimal
    funding_rate: Decimal
    open_interest: Decimal
    long_accounts: int
    short_accounts: int


class _SymbolHistory:
    def __init__(self) -> None:
        self.candles: dict[str, deque[CandleBar]] = {
            name: deque(maxlen=CANDLES_KEPT) for name in RESOLUTIONS
        }
        self.minutes: deque[MinuteBar] = deque(maxlen=MINUTES_KEPT)
        self.volume_day: date | None = None
        self.daily_volume = ZERO
        self.settlements: deque[SettlementRow] = deque(maxlen=CANDLES_KEPT)
        self.next_settlement: float | None = None


class MarketHistory:
    """Candles, minute series, daily volume and settlements of every symbol of one engine.

    Args:
        engine: the books, marks, accounts, economics and clock the samples are taken from.
    """

    def __init__(self, engine: MarketSource) -> None:
        self.engine = engine
        self._symbols = {name: _SymbolHistory() for name in engine.markets}

    # ------------------------------------------------------------ sampling

    def sample(self) -> None:
        """Record every symbol's state now (the simulator's timer calls this)."""
        for symbol in self.engine.markets:
            self.on_price(symbol)

    def on_price(self, symbol: str) -> None:
        """A price change (price step, ``set_price``) or a timer tick: sample the symbol."""
        snap = self.snapshot(symbol)
        self._record(symbol, self.engine.clock(), snap, snap.mark)

    def on_trade(self, symbol: str, price: Decimal, qty: Decimal, aggressor: str) -> None:
        """One execution: candle OHLC, volume and count, taker flow, daily volume."""
        now = self.engine.clock()
        history = self._symbols[symbol]
        snap = self.snapshot(symbol)
        notional = price * qty
        for resolution in RESOLUTIONS:
            bar = self._candle(history, resolution, now, snap)
            bar.base_volume += qty
            bar.usd_volume += notional
            bar.trades += 1
            bar.version += 1
        minute = self._minute(history, now, snap)
        minute.usd_volume += notional
        if aggressor == "BUY":
            minute.taker_buy_qty += qty
            minute.taker_buy_notional += notional
        else:
            minute.taker_sell_qty += qty
            minute.taker_sell_notional += notional
        day = volume_day(now)
        if history.volume_day != day:
            history.volume_day, history.daily_volume = day, ZERO
        history.daily_volume += qty
        self._record(symbol, now, snap, price)

    def _record(self, symbol: str, now: float, snap: Snapshot, price: Decimal) -> None:
        """One sample: ``price`` (a mark or a trade price) into every candle, the rest of
        ``snap`` into the minute bar, then the daily settlement."""
        history = self._symbols[symbol]
        for resolution in RESOLUTIONS:
            bar = self._candle(history, resolution, now, snap)
            bar.update(price)
            bar.mid_close = snap.mid
        minute = self._minute(history, now, snap)
        minute.mid, minute.mark = snap.mid, snap.mark
        minute.underlier_high = max(minute.underlier_high, snap.underlier)
        minute.underlier_low = min(minute.underlier_low, snap.underlier)
        minute.underlier_close = snap.underlier
        minute.funding_rate, minute.open_interest = snap.funding_rate, snap.open_interest
        minute.long_accounts, minute.short_accounts = snap.long_accounts, snap.short_accounts
        self._settle(symbol, history, now, snap)

    def snapshot(self, symbol: str) -> Snapshot:
        """The symbol's mid, mark, underlier, implied funding and open interest now."""
        engine = self.engine
        market = engine.markets[symbol]
        bid, ask = engine.best_bid(symbol), engine.best_ask(symbol)
        mid = (bid + ask) / 2 if bid is not None and ask is not None else market.mid
        sizes = [
            position.size
            for account in engine.accounts.values()
            if (position := account.positions.get(symbol)) is not None and position.size
        ]
        return Snapshot(
            mid=mid,
            mark=engine.mark_price(symbol),
            underlier=engine.economics.underlier(symbol),
            funding_rate=engine.economics.funding_rate(symbol, engine.clock()),
            open_interest=sum((s for s in sizes if s > 0), ZERO),
            long_accounts=sum(1 for s in sizes if s > 0),
            short_accounts=sum(1 for s in sizes if s < 0),
        )

    def _candle(
        self, history: _SymbolHistory, resolution: str, now: float, snap: Snapshot
    ) -> CandleBar:
        """The bar of ``resolution`` containing ``now``, opened at the current mark if new."""
        bars = history.candles[resolution]
        start = bucket(now, RESOLUTIONS[resolution])
        if bars and bars[-1].start == start:
            return bars[-1]
        bar = CandleBar(
            start=start,
            resolution=resolution,
            open=snap.mark,
            high=snap.mark,
            low=snap.mark,
            close=snap.mark,
            starting_open_interest=snap.open_interest,
            mid_open=snap.mid,
            mid_close=snap.mid,
        )
        bars.append(bar)
        return bar

    def _minute(self, history: _SymbolHistory, now: float, snap: Snapshot) -> MinuteBar:
        start = bucket(now, 60)
        if history.minutes and history.minutes[-1].start == start:
            return history.minutes[-1]
        bar = MinuteBar(
            start=start,
            mid=snap.mid,
            mark_open=snap.mark,
            mark=snap.mark,
            underlier_open=snap.underlier,
            underlier_high=snap.underlier,
            underlier_low=snap.underlier,
            underlier_close=snap.underlier,
            funding_rate=snap.funding_rate,
            open_interest=snap.open_interest,
            long_accounts=snap.long_accounts,
            short_accounts=snap.short_accounts,
        )
        history.minutes.append(bar)
        return bar

    def _settle(self, symbol: str, history: _SymbolHistory, now: float, snap: Snapshot) -> None:
        """A futures-referenced symbol settles once a day at 21:30 UTC (the first sample after)."""
        if symbol not in SETTLEMENT_ROOTS:
            return
        if history.next_settlement is None:
            history.next_settlement = next_settlement_time(now)
        if now < history.next_settlement:
            return
        contract = settlement_contract(symbol, history.next_settlement)
        assert contract is not None
        history.settlements.append(
            SettlementRow(
                symbol=symbol,
                future_symbol=contract[0],
                future_price=snap.mid,
                spot_price=snap.underlier,
                asof=datetime.fromtimestamp(history.next_settlement, tz=UTC).date().isoformat(),
                inserted_at=now,
            )
        )
        history.next_settlement = next_settlement_time(now)

    # ------------------------------------------------------------ queries

    def candle(self, symbol: str, resolution: str) -> CandleBar | None:
        """The latest candle of a symbol at a resolution (None before the first sample)."""
        bars = self._symbols[symbol].candles[resolution]
        return bars[-1] if bars else None

    def candles(self, symbol: str, resolution: str, start: float, end: float) -> list[CandleBar]:
        """Candles whose start lies in [start, end], oldest first (only buckets that exist)."""
        return [
            bar for bar in self._symbols[symbol].candles[resolution] if start <= bar.start <= end
        ]

    def minutes(self, symbol: str, start: float, end: float) -> list[MinuteBar]:
        """Minute bars whose start lies in [start, end), oldest first."""
        return [bar for bar in self._symbols[symbol].minutes if start <= bar.start < end]

    def before(self, symbol: str, ts: float) -> MinuteBar | None:
        """The last minute bar that started before ``ts`` (forward filling), or None."""
        found = None
        for bar in self._symbols[symbol].minutes:
            if bar.start >= ts:
                break
            found = bar
        return found

    def daily_volume(self, symbol: str, now: float) -> Decimal:
        """Base quantity traded since the last 20:00 America/Chicago."""
        history = self._symbols[symbol]
        return history.daily_volume if history.volume_day == volume_day(now) else ZERO

    def volume_24h(self, symbol: str, now: float) -> Decimal:
        """USD notional traded over the last 24 hours (whole minutes)."""
        return sum((bar.usd_volume for bar in self.minutes(symbol, now - DAY, now + 1)), ZERO)

    def price_24h_ago(self, symbol: str, now: float) -> Decimal:
        """The mark 24 hours ago; the oldest mark known when the history is shorter."""
        minutes = self._symbols[symbol].minutes
        if not minutes:
            return self.engine.mark_price(symbol)
        bar = self.before(symbol, now - DAY + 60)
        return bar.mark if bar is not None else minutes[0].mark_open

    def price_change_24h(self, symbol: str, now: float) -> Decimal:
        """The mark now minus the mark 24 hours ago (refdata ``price_change_24h``)."""
        return self.engine.mark_price(symbol) - self.price_24h_ago(symbol, now)

    def settlements(self, symbol: str) -> list[SettlementRow]:
        """The symbol's daily settlements, oldest first."""
        return list(self._symbols[symbol].settlements)


def bucket(ts: float, seconds: int) -> int:
    """The start (Unix seconds) of the ``seconds``-long window containing ``ts``."""
    return int(ts // seconds) * seconds


def volume_day(ts: float) -> date:
    """The trading day whose daily volume ``ts`` counts in (it starts 20:00 America/Chicago)."""
    return (datetime.fromtimestamp(ts, tz=VOLUME_DAY_ZONE) + VOLUME_DAY_SHIFT).date()


def next_settlement_time(ts: float) -> float:
    """The first daily settlement (21:30 UTC) strictly after ``ts``."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    today = datetime(moment.year, moment.month, moment.day, tzinfo=UTC) + SETTLEMENT_TIME
    return (today if today.timestamp() > ts else today + timedelta(days=1)).timestamp()


def settlement_contract(symbol: str, ts: float) -> tuple[str, datetime, datetime] | None:
    """The dated future a symbol references at ``ts``: (future symbol, expiration, active until).

    Monthly contracts expiring on the 21st of the month before delivery at 21:30 UTC, active
    until 8 days before (the spec's example: CLK6 expires 2026-04-21, active until 04-13);
    the first contract still active after ``ts``. None for a symbol without a future.
    """
    root = SETTLEMENT_ROOTS.get(symbol)
    if root is None:
        return None
    moment = datetime.fromtimestamp(ts, tz=UTC)
    year, month = moment.year, moment.month
    while True:
        expiration = datetime(year, month, 21, tzinfo=UTC) + SETTLEMENT_TIME
        active_until = expiration - ACTIVE_BEFORE_EXPIRY
        delivery_year, delivery_month = (year + 1, 1) if month == 12 else (year, month + 1)
        if active_until.timestamp() > ts:
            code = f"{root}{MONTH_CODES[delivery_month - 1]}{delivery_year % 10}"
            return code, expiration, active_until
        year, month = delivery_year, delivery_month
