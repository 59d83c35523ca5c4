"""The simulated venue's economics: fee rates, price bands, market hours, underlier, funding.

One object per engine (``engine.economics``) that the engine asks while validating and executing
orders and that the market-data and REST gateways read, so every rule that keeps a simulated
strategy honest lives in one place (docs/simulator.md "Economics").
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Protocol

from qfexbot.sim.qfex.config import SimConfig
from qfexbot.sim.qfex.model import Market

__all__ = ["Economics", "Prices", "round_step"]


class Prices(Protocol):
    """What economics reads of the engine (a protocol, so the engine imports this module and
    not the other way round)."""

    config: SimConfig
    markets: dict[str, Market]

    def mark_price(self, symbol: str) -> Decimal: ...


class Economics:
    """Fees, bands, hours, underlier and the implied funding rate of one engine's symbols."""

    def __init__(self, engine: Prices) -> None:
        self.engine = engine
        self.underlier_offsets: dict[str, Decimal] = {}
        """Symbol -> price the underlier is held apart from the mid (``POST /_sim/underlier``)."""

    def fee_rate(self, account_id: str, symbol: str, *, maker: bool) -> Decimal:
        """The fee fraction of notional one fill pays (negative = a rebate)."""
        config = self.engine.config
        return config.maker_fee if maker else config.taker_fee

    def band(self, symbol: str) -> tuple[Decimal, Decimal]:
        """The prices a limit order may carry now: mark x (1 -/+ price_band), rounded outward to
        the tick and kept inside the symbol's min/max price (the ``minmax_price`` channel)."""
        spec = self.engine.markets[symbol].spec
        mark = self.engine.mark_price(symbol)
        low = round_step(mark * (1 - spec.price_band), spec.tick_size, ROUND_FLOOR)
        high = round_step(mark * (1 + spec.price_band), spec.tick_size, ROUND_CEILING)
        return max(low, spec.min_price), min(high, spec.max_price)

    def is_open(self, symbol: str, now: float) -> bool:
        """Whether the symbol's market is open at ``now`` (Unix seconds)."""
        return symbol in self.engine.markets

    def underlier(self, symbol: str) -> Decimal:
        """The underlying's price: the price walk's mid, plus any offset a test set."""
        market = self.engine.markets[symbol]
        return market.mid + self.underlier_offsets.get(symbol, Decimal(0))

    def funding_rate(self, symbol: str, now: float) -> Decimal:
        """The implied funding rate now: the mark's premium over the underlier."""
        underlier = self.underlier(symbol)
        if underlier <= 0:
            return Decimal(0)
        return (self.engine.mark_price(symbol) - underlier) / underlier


def round_step(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    """``value`` on the grid of ``step`` (tick or lot), rounded the way ``rounding`` says."""
    return ((value / step).to_integral_value(rounding=rounding) * step).quantize(step)
