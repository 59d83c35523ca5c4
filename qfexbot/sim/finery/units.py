"""Finery amounts as the simulator keeps them: integers of 1e-8 units (protocol/finery.md §5)."""

from __future__ import annotations

from decimal import Decimal

__all__ = ["UNITS_PER_WHOLE", "to_units"]

UNITS_PER_WHOLE = 10**8
"""Every Size and Price on the wire is an integer count of 1e-8 of the currency."""


def to_units(value: Decimal | int | str) -> int:
    """An exact amount (``Decimal("1.5")``) as wire units (``150000000``).

    Raises:
        ValueError: not finite, or finer than 1e-8.
    """
    numerator, denominator = Decimal(value).as_integer_ratio()
    units, rest = divmod(numerator * UNITS_PER_WHOLE, denominator)
    if rest:
        raise ValueError(f"amount {value!r} is finer than 1e-8")
    return units
