"""Per-user EMA rate limiter with the venue's message weights and general/cancel buckets."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal

__all__ = ["CANCEL_COMMANDS", "WEIGHTS", "RateLimiter"]

WEIGHTS: dict[str, float] = {
    "add_order": 1.0,
    "cancel_order": 1.0,
    "modify_order": 1.0,
    "get_order": 2.0,
    "get_user_orders": 5.0,
    "cancel_all_orders": 2.0,
    "get_user_trades": 0.5,
    "subscribe": 0.1,
    "unsubscribe": 0.1,
    "get_user_leverage": 0.1,
    "get_available_leverage_levels": 0.1,
    "set_user_leverage": 0.1,
    "cancel_stop_order": 1.0,
    "modify_stop_order": 1.0,
    "cancel_on_disconnect": 0.1,
    # not documented (qfex.md §2.4 "n/d"): weighted as one order, as what they place is
    "close_position": 1.0,
    "add_twap": 1.0,
}
CANCEL_COMMANDS = frozenset({"cancel_order", "cancel_all_orders", "cancel_stop_order"})
DEFAULT_WEIGHT = 1.0


class RateLimiter:
    """Exponentially decaying load per (user, bucket); a message is refused if it would exceed.

    The load decays with time constant ``window``, so a steady rate of ``budget / window`` weight
    units per second is the most that is sustained (12000 / 60 s ≈ 200/s on the venue).
    Refused messages add no load.
    """

    def __init__(self, budget: Decimal, window: float, clock: Callable[[], float]) -> None:
        self.budget = float(budget)
        self.window = window
        self.clock = clock
        self._load: dict[tuple[str, str], tuple[float, float]] = {}

    def check(self, user_id: str, command: str) -> float | None:
        """Charge the command's weight; None if allowed, else seconds to wait before retrying."""
        weight = WEIGHTS.get(command, DEFAULT_WEIGHT)
        bucket = "cancel" if command in CANCEL_COMMANDS else "general"
        now = self.clock()
        load, at = self._load.get((user_id, bucket), (0.0, now))
        load *= math.exp(-(now - at) / self.window)
        if load + weight > self.budget:
            self._load[(user_id, bucket)] = (load, now)
            if weight >= self.budget:
                # no amount of waiting lets it through (a budget below one message's weight):
                # still a RateLimited answer, with one window as the hint, never a crash
                return self.window
            return max(self.window * math.log(load / (self.budget - weight)), 0.001)
        self._load[(user_id, bucket)] = (load + weight, now)
        return None
