"""Retry delays: capped exponential backoff with full jitter, for reconnects and REST retries."""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(
    attempt: int, initial: float, maximum: float, rng: random.Random | None = None
) -> float:
    """Capped exponential backoff with full jitter: uniform(0, min(maximum, initial·2^attempt))."""
    ceiling = min(maximum, initial * 2.0 ** min(attempt, 62))
    return (rng or random).uniform(0.0, ceiling)
