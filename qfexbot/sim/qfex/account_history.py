"""Each account's history for the private REST routes: pnl samples, hourly position rows, daily
volume, and the fills of every order (plan F10).

The engine keeps trades (``Engine.trade_log``) and orders (``Engine.order_log``); this folds the
trades into what the routes need without a hook in the matching code: ``absorb`` reads the trades
appended since it last ran (the routes call it before answering) and ``sample`` (the server's
timer, every ``equity_interval``) also records the pnl figures of every account. Every store is
bounded; the oldest entries go first.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from qfexbot.sim.qfex.model import ZERO, Account, TradeRecord

__all__ = [
    "DAY",
    "HOUR",
    "ORDER_FILLS_MAX",
    "PNL_HOURS_MAX",
    "PNL_SAMPLES_MAX",
    "VOLUME_DAYS_MAX",
    "AccountHistory",
    "HistoryHost",
    "OrderFills",
    "PnlHourRow",
    "PnlSample",
    "day_start",
]

HOUR = 3600
DAY = 86400
PNL_SAMPLES_MAX = 131_072
"""pnl samples kept per account (about 91 days at the default 60 s ``equity_interval``)."""
PNL_HOURS_MAX = 2160
"""Hours of ``/pnl`` rows kept per account and symbol (the route's largest ``limit_hours``)."""
VOLUME_DAYS_MAX = 3660
"""UTC days of ``/user/volume`` kept per account."""
ORDER_FILLS_MAX = 100_000
"""Orders (all accounts) whose fill figures are kept, as many as ``Engine.order_log`` keeps."""


class HistoryHost(Protocol):
    """What the history reads of the engine (a protocol: the engine imports this module)."""

    clock: Callable[[], float]
    accounts: dict[str, Account]
    trade_log: dict[str, deque[TradeRecord]]

    def equity(self, account_id: str) -> Decimal: ...

    def unrealised_pnl(self, account_id: str, symbol: str | None = None) -> Decimal: ...


@dataclass
class OrderFills:
    """What one order filled: total and as maker (``passive``), notional, first and last fill."""

    filled: Decimal = ZERO
    passive: Decimal = ZERO
    notional: Decimal = ZERO
    first_ts: float | None = None
    last_ts: float | None = None

    @property
    def average_price(self) -> Decimal | None:
        """Quantity-weighted fill price, None before any fill."""
        return self.notional / self.filled if self.filled else None


@dataclass(frozen=True)
class PnlSample:
    """An account's pnl at one moment: per symbol (realised + funding - fees + unrealised) and
    its equity (the base of ``unit=percent``)."""

    ts: float
    equity: Decimal
    pnl: dict[str, Decimal]

    def total(self, symbols: list[str] | None = None) -> Decimal:
        """The pnl of ``symbols`` (every symbol when None)."""
        return sum(
            (v for s, v in self.pnl.items() if symbols is None or s in symbols),
            ZERO,
        )


@dataclass(frozen=True)
class PnlHourRow:
    """The first sample of one position in one UTC hour (a ``/pnl`` ``PnlHour``)."""

    symbol: str
    hour: float
    realised_pnl: Decimal
    unrealised_pnl: Decimal
    net_funding: Decimal
    fees: Decimal
    quantity: Decimal
    cost: Decimal


@dataclass
class _AccountState:
    last_trade: TradeRecord | None = None
    fees: dict[str, Decimal] = field(default_factory=dict)
    volume: OrderedDict[float, dict[str, list[Decimal]]] = field(default_factory=OrderedDict)
    samples: deque[PnlSample] = field(default_factory=lambda: deque(maxlen=PNL_SAMPLES_MAX))
    hours: deque[PnlHourRow] = field(default_factory=deque)
    hour_seen: tuple[float, set[str]] = (-1.0, set())


def day_start(ts: float) -> float:
    """Unix time of 00:00 UTC of the day containing ``ts``."""
    return ts - ts % DAY


class AccountHistory:
    """Every account's pnl samples, hourly position rows, daily volume and order fills."""

    def __init__(self, engine: HistoryHost) -> None:
        self.engine = engine
        self._accounts: dict[str, _AccountState] = {}
        self._orders: OrderedDict[str, OrderFills] = OrderedDict()

    def _state(self, account_id: str) -> _AccountState:
        return self._accounts.setdefault(account_id, _AccountState())

    # ------------------------------------------------------------ feeding

    def absorb(self) -> None:
        """Fold the trades every account made since the last call into fees, volume, fills."""
        for account_id, log in self.engine.trade_log.items():
            state = self._state(account_id)
            fresh: list[TradeRecord] = []
            last = state.last_trade
            for record in reversed(log):
                if record is last or (last is not None and record.ts < last.ts):
                    break
                fresh.append(record)
            for record in reversed(fresh):
                self._fold(state, record)
            if fresh:
                state.last_trade = fresh[0]

    def _fold(self, state: _AccountState, record: TradeRecord) -> None:
        symbol = record.symbol
        state.fees[symbol] = state.fees.get(symbol, ZERO) + record.fee
        notional = record.price * record.quantity
        day = state.volume.setdefault(day_start(record.ts), {})
        maker_taker = day.setdefault(symbol, [ZERO, ZERO])
        maker_taker[0 if record.maker else 1] += notional
        while len(state.volume) > VOLUME_DAYS_MAX:
            state.volume.popitem(last=False)
        fills = self._orders.get(record.order_id)
        if fills is None:
            fills = self._orders[record.order_id] = OrderFills(first_ts=record.ts)
            if len(self._orders) > ORDER_FILLS_MAX:
                self._orders.popitem(last=False)
        fills.filled += record.quantity
        fills.passive += record.quantity if record.maker else ZERO
        fills.notional += notional
        fills.last_ts = record.ts

    def sample(self) -> None:
        """Absorb new trades, record every account's pnl now and the hour's first row of each
        new position (the server calls this every ``equity_interval``)."""
        self.record_hours()
        engine = self.engine
        now = engine.clock()
        for account_id, account in engine.accounts.items():
            state = self._state(account_id)
            pnl = {
                symbol: position.realised_pnl
                + position.net_funding
                - state.fees.get(symbol, ZERO)
                + engine.unrealised_pnl(account_id, symbol)
                for symbol, position in account.positions.items()
            }
            state.samples.append(PnlSample(now, engine.equity(account_id), pnl))

    def record_hours(self) -> None:
        """Absorb new trades and record, for each position of every account not yet seen in the
        current UTC hour, its figures now (``/pnl`` calls this too, so a row exists as soon as
        the position does)."""
        self.absorb()
        engine = self.engine
        now = engine.clock()
        hour = now - now % HOUR
        for account_id, account in engine.accounts.items():
            state = self._state(account_id)
            if state.hour_seen[0] != hour:
                state.hour_seen = (hour, set())
            seen = state.hour_seen[1]
            for symbol, position in account.positions.items():
                if symbol in seen:
                    continue
                seen.add(symbol)
                state.hours.append(
                    PnlHourRow(
                        symbol=symbol,
                        hour=hour,
                        realised_pnl=position.realised_pnl,
                        unrealised_pnl=engine.unrealised_pnl(account_id, symbol),
                        net_funding=position.net_funding,
                        fees=state.fees.get(symbol, ZERO),
                        quantity=position.size,
                        cost=abs(position.size) * position.average_price,
                    )
                )
            while len(state.hours) > PNL_HOURS_MAX * max(1, len(account.positions)):
                state.hours.popleft()

    # ------------------------------------------------------------ queries

    def order_fills(self, order_id: str) -> OrderFills:
        """What the order filled so far (zeros when it never filled)."""
        return self._orders.get(order_id) or OrderFills()

    def samples(self, account_id: str) -> list[PnlSample]:
        """The account's pnl samples, oldest first."""
        return list(self._state(account_id).samples)

    def hours(self, account_id: str) -> list[PnlHourRow]:
        """The account's hourly position rows, oldest first."""
        return list(self._state(account_id).hours)

    def volume(self, account_id: str) -> dict[float, dict[str, tuple[Decimal, Decimal]]]:
        """UTC day start -> symbol -> (maker notional, taker notional), oldest day first."""
        return {
            day: {s: (v[0], v[1]) for s, v in symbols.items()}
            for day, symbols in self._state(account_id).volume.items()
        }

    def first_day(self, account_id: str) -> float | None:
        """The first UTC day the account traded on, None if it never did."""
        volume = self._state(account_id).volume
        return next(iter(volume), None)
