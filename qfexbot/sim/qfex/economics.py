"""The simulated venue's economics: fees, price bands, market hours, underlier, funding,
liquidation and the open-order / open-interest limits.

One object per engine (``engine.economics``) that the engine asks while validating and executing
orders, that the servers step on a timer (``step(now)``: funding windows and liquidations) and
that the market-data and REST gateways read, so every rule that keeps a simulated strategy honest
lives in one place (docs/simulator.md "Economics").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Protocol

from qfexbot.sim.qfex.config import SimConfig
from qfexbot.sim.qfex.model import ZERO, Account, Event, Market, Order

__all__ = [
    "FUNDING_HISTORY",
    "LIQUIDATION_CLIENT_ORDER_ID",
    "MM_OF_IM",
    "Economics",
    "FundingPayment",
    "Prices",
    "round_step",
]

MM_OF_IM = Decimal(2) / Decimal(3)
"""Maintenance margin as a fraction of initial margin (as ``Engine.positions`` reports it)."""
LIQUIDATION_CLIENT_ORDER_ID = "liquidation"
"""The ``client_order_id`` of the orders a liquidation places."""
FUNDING_HISTORY = 10_000
"""Funding payments kept per account and settled window rates kept per symbol."""


class Prices(Protocol):
    """What economics reads of the engine and the engine calls it makes (a protocol, so the
    engine imports this module and not the other way round)."""

    config: SimConfig
    markets: dict[str, Market]
    accounts: dict[str, Account]
    orders: dict[str, Order]
    stops: dict[str, Order]

    def mark_price(self, symbol: str) -> Decimal: ...

    def equity(self, account_id: str) -> Decimal: ...

    def im_fraction(self, account: Account, symbol: str) -> Decimal: ...

    def cancel_all(self, account_id: str) -> list[Event]: ...

    def add_order(self, account_id: str, params: Mapping[str, Any]) -> list[Event]: ...


@dataclass(frozen=True)
class FundingPayment:
    """One funding payment of one position at the end of a window (``amount`` > 0 = received)."""

    account_id: str
    symbol: str
    window_start: float
    window_end: float
    rate: Decimal
    position: Decimal
    mark: Decimal
    amount: Decimal
    ts: float


class Economics:
    """Fees, bands, hours, underlier, funding, liquidation and limits of one engine's symbols."""

    def __init__(self, engine: Prices) -> None:
        self.engine = engine
        self.underlier_offsets: dict[str, Decimal] = {}
        """Symbol -> price the underlier is held apart from the mid (``POST /_sim/underlier``)."""
        self._window_end: float | None = None
        self._window_full = False
        self._premium_sum: dict[str, Decimal] = {}
        self._premium_count: dict[str, int] = {}
        self._payments: dict[str, deque[FundingPayment]] = {}
        self._settled: dict[str, deque[tuple[float, Decimal]]] = {}

    # ----------------------------------------------------------------- fees, band, hours

    def fee_rate(self, account_id: str, symbol: str, *, maker: bool) -> Decimal:
        """The fee fraction of notional one fill pays (negative = a rebate): the symbol's
        ``maker_fee`` / ``taker_fee`` if configured, else the ``[sim]`` one."""
        config = self.engine.config
        spec = self.engine.markets[symbol].spec if symbol in self.engine.markets else None
        override = None if spec is None else (spec.maker_fee if maker else spec.taker_fee)
        if override is not None:
            return override
        return config.maker_fee if maker else config.taker_fee

    def fees_table(self, account_id: str) -> dict[str, tuple[Decimal, Decimal]]:
        """Symbol -> (maker, taker) fee fractions the account pays (``GET /user/fees``)."""
        return {
            symbol: (
                self.fee_rate(account_id, symbol, maker=True),
                self.fee_rate(account_id, symbol, maker=False),
            )
            for symbol in self.engine.markets
        }

    def band(self, symbol: str) -> tuple[Decimal, Decimal]:
        """The prices a limit order may carry now: mark x (1 -/+ price_band), rounded outward to
        the tick and kept inside the symbol's min/max price (the ``minmax_price`` channel)."""
        spec = self.engine.markets[symbol].spec
        mark = self.engine.mark_price(symbol)
        low = round_step(mark * (1 - spec.price_band), spec.tick_size, ROUND_FLOOR)
        high = round_step(mark * (1 + spec.price_band), spec.tick_size, ROUND_CEILING)
        return max(low, spec.min_price), min(high, spec.max_price)

    def is_open(self, symbol: str, now: float) -> bool:
        """Whether the symbol's market is open at ``now`` (Unix seconds); a symbol without
        ``market_hours`` is always open, an unknown one never."""
        market = self.engine.markets.get(symbol)
        if market is None:
            return False
        hours = market.spec.market_hours
        return hours is None or hours.is_open(now)

    # ----------------------------------------------------------------- limits

    def limit_reject(self, order: Order) -> str | None:
        """``REJECTED_TOO_MANY_OPEN_ORDERS`` for a GTC order of an account that already has
        ``max_open_orders`` open (resting orders and waiting stops),
        ``REJECTED_OPEN_INTEREST_LIMIT`` for an order whose full fill would push its side's open
        interest past the symbol's ``max_open_interest``."""
        engine = self.engine
        if (
            order.tif == "GTC"
            and self.open_orders(order.account_id) >= engine.config.max_open_orders
        ):
            return "REJECTED_TOO_MANY_OPEN_ORDERS"
        cap = engine.markets[order.symbol].spec.max_open_interest
        if cap is None:
            return None
        direction = 1 if order.side == "BUY" else -1
        position = engine.accounts[order.account_id].positions.get(order.symbol)
        size = direction * (position.size if position else ZERO)
        growth = max(size + order.quantity, ZERO) - max(size, ZERO)
        if growth > 0 and self.open_interest(order.symbol, order.side) + growth > cap:
            return "REJECTED_OPEN_INTEREST_LIMIT"
        return None

    def open_orders(self, account_id: str) -> int:
        """The account's resting orders and waiting stops: what ``max_open_orders`` caps."""
        engine = self.engine
        resting = sum(1 for o in engine.orders.values() if o.account_id == account_id)
        return resting + sum(1 for o in engine.stops.values() if o.account_id == account_id)

    def open_interest(self, symbol: str, side: str = "BUY") -> Decimal:
        """All accounts' long (``BUY``) or short (``SELL``) positions in the symbol, base units.
        The synthetic book takes the other side of user trades, so the two may differ."""
        direction = 1 if side == "BUY" else -1
        total = ZERO
        for account in self.engine.accounts.values():
            position = account.positions.get(symbol)
            if position is not None:
                total += max(direction * position.size, ZERO)
        return total

    # ----------------------------------------------------------------- underlier and funding

    def underlier(self, symbol: str) -> Decimal:
        """The underlying's price: the price walk's mid, plus any offset a test set."""
        market = self.engine.markets[symbol]
        return market.mid + self.underlier_offsets.get(symbol, ZERO)

    def set_underlier(
        self, symbol: str, *, price: Decimal | None = None, offset: Decimal | None = None
    ) -> Decimal:
        """Hold the underlier ``offset`` away from the mid, or at ``price`` now (held as the
        offset from today's mid, so it follows the walk); neither clears it. Returns the offset.

        Raises:
            KeyError: unknown symbol.
        """
        mid = self.engine.markets[symbol].mid
        held = offset if offset is not None else (price - mid if price is not None else ZERO)
        if held:
            self.underlier_offsets[symbol] = held
        else:
            self.underlier_offsets.pop(symbol, None)
        return held

    def premium(self, symbol: str) -> Decimal:
        """(mark - underlier) / underlier now: what one funding sample records."""
        underlier = self.underlier(symbol)
        if underlier <= 0:
            return ZERO
        return (self.engine.mark_price(symbol) - underlier) / underlier

    def funding_rate(self, symbol: str, now: float) -> Decimal:
        """The implied funding rate if the window ended now: the mean premium sampled in the
        current window (the premium now before the first sample), capped at +/- funding_cap;
        0 while the market is closed."""
        if not self.is_open(symbol, now):
            return ZERO
        count = self._premium_count.get(symbol, 0)
        mean = self._premium_sum[symbol] / count if count else self.premium(symbol)
        return self._capped(mean)

    def funding_window(self, now: float) -> tuple[float, float]:
        """The funding window containing ``now``: windows are ``funding_interval`` long and
        aligned to the Unix epoch (hourly windows start on the hour)."""
        interval = self.engine.config.funding_interval
        start = (now // interval) * interval
        return start, start + interval

    def time_remaining(self, now: float) -> float:
        """Seconds until the current funding window ends (the ``funding`` channel)."""
        return self.funding_window(now)[1] - now

    def payments(self, account_id: str) -> list[FundingPayment]:
        """The account's funding payments, oldest first (at most ``FUNDING_HISTORY``)."""
        return list(self._payments.get(account_id, ()))

    def settled_rates(self, symbol: str) -> list[tuple[float, Decimal]]:
        """(window start, rate) of every window that settled while the market was open."""
        return list(self._settled.get(symbol, ()))

    # ----------------------------------------------------------------- the timer

    def step(self, now: float) -> list[Event]:
        """Advance to ``now``: settle a funding window that ended, sample every open market's
        premium, then liquidate each account below its maintenance margin. Returns the events
        of the liquidations (funding is carried by the balance and position pulses)."""
        if self._window_end is None:
            start, self._window_end = self.funding_window(now)
            self._window_full = now == start
        elif now >= self._window_end:
            if self._window_full:
                self._settle(self._window_end, now)
            self._window_end = self.funding_window(now)[1]
            self._window_full = True
            self._premium_sum.clear()
            self._premium_count.clear()
        for symbol in self.engine.markets:
            if self.is_open(symbol, now):
                total = self._premium_sum.get(symbol, ZERO)
                self._premium_sum[symbol] = total + self.premium(symbol)
                self._premium_count[symbol] = self._premium_count.get(symbol, 0) + 1
        events: list[Event] = []
        for account_id in list(self.engine.accounts):
            if self.below_maintenance(account_id):
                events.extend(self.liquidate(account_id, now))
        return events

    def _settle(self, window_end: float, now: float) -> None:
        """Pay every open position of every symbol whose market is open at the window's end:
        ``-size x mark x rate`` (longs pay a positive rate, shorts receive it)."""
        window_start = window_end - self.engine.config.funding_interval
        for symbol, count in self._premium_count.items():
            if not count or not self.is_open(symbol, window_end):
                continue
            rate = self._capped(self._premium_sum[symbol] / count)
            self._settled.setdefault(symbol, deque(maxlen=FUNDING_HISTORY)).append(
                (window_start, rate)
            )
            mark = self.engine.mark_price(symbol)
            for account_id, account in self.engine.accounts.items():
                position = account.positions.get(symbol)
                if position is None or not position.size or not rate:
                    continue
                amount = -position.size * mark * rate
                position.net_funding += amount
                account.net_funding += amount
                log = self._payments.setdefault(account_id, deque(maxlen=FUNDING_HISTORY))
                log.append(
                    FundingPayment(
                        account_id=account_id,
                        symbol=symbol,
                        window_start=window_start,
                        window_end=window_end,
                        rate=rate,
                        position=position.size,
                        mark=mark,
                        amount=amount,
                        ts=now,
                    )
                )

    def _capped(self, rate: Decimal) -> Decimal:
        cap = self.engine.config.funding_cap
        return min(max(rate, -cap), cap)

    # ----------------------------------------------------------------- liquidation

    def maintenance_margin(self, account_id: str) -> Decimal:
        """Sum over the account's positions of |size| x mark x MM (MM = 2/3 of 1/leverage)."""
        account = self.engine.accounts[account_id]
        return sum(
            (
                abs(p.size)
                * self.engine.mark_price(p.symbol)
                * self.engine.im_fraction(account, p.symbol)
                * MM_OF_IM
                for p in account.positions.values()
                if p.size
            ),
            ZERO,
        )

    def below_maintenance(self, account_id: str) -> bool:
        """Whether the account holds a position and its equity is below maintenance margin."""
        margin = self.maintenance_margin(account_id)
        return margin > 0 and self.engine.equity(account_id) < margin

    def liquidate(self, account_id: str, now: float) -> list[Event]:
        """Cancel every open order of the account, then close each position whose market is
        open with reduce-only MARKET IOC orders (``client_order_id`` "liquidation", at most
        ``max_quantity`` each). Whatever the book cannot absorb stays for the next step; a
        negative equity left over stays too (no insurance fund). Other accounts are untouched."""
        engine = self.engine
        events = engine.cancel_all(account_id)
        account = engine.accounts[account_id]
        for symbol, position in list(account.positions.items()):
            if not position.size or not self.is_open(symbol, now):
                continue
            events.extend(self._close(account_id, symbol, position.size))
        return events

    def _close(self, account_id: str, symbol: str, size: Decimal) -> list[Event]:
        """Reduce-only MARKET IOC orders that close ``size`` in chunks of ``max_quantity``."""
        spec = self.engine.markets[symbol].spec
        events: list[Event] = []
        left = abs(size)
        while left > 0:
            quantity = min(left, spec.max_quantity)
            params = {
                "symbol": symbol,
                "side": "SELL" if size > 0 else "BUY",
                "order_type": "MARKET",
                "order_time_in_force": "IOC",
                "quantity": quantity,
                "reduce_only": True,
                "client_order_id": LIQUIDATION_CLIENT_ORDER_ID,
            }
            events.extend(self.engine.add_order(account_id, params))
            position = self.engine.accounts[account_id].positions[symbol]
            if abs(position.size) >= left:
                break  # nothing filled: the book is empty on that side or the order was refused
            left = abs(position.size)
        return events


def round_step(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    """``value`` on the grid of ``step`` (tick or lot), rounded the way ``rounding`` says."""
    return ((value / step).to_integral_value(rounding=rounding) * step).quantize(step)
