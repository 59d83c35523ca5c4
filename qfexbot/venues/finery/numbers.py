"""Finery integer amounts (1e-8 units) <-> Decimal, exactly: no float ever, any magnitude."""

from __future__ import annotations

from decimal import Decimal

__all__ = ["SCALE_DIGITS", "from_units", "to_units"]

SCALE_DIGITS = 8
"""Every Finery Size and Price is an integer count of 1e-8 units."""


def from_units(value: int) -> Decimal:
    """Scaled integer -> Decimal (``150000000`` -> ``Decimal("1.50000000")``), exact for any size.

    Raises:
        TypeError: ``value`` is not an ``int`` (floats and bools are refused: a float has
            already lost digits, a bool is a parsing mistake).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer amount, got {type(value).__name__}")
    sign = 1 if value < 0 else 0
    digits = tuple(int(c) for c in str(abs(value)))
    # Built from its tuple: no context rounding, so values above 2**53 (or 28 digits) stay exact.
    return Decimal((sign, digits, -SCALE_DIGITS))


def to_units(value: Decimal | int | str) -> int:
    """Decimal (or int, or decimal string) -> scaled integer, exact.

    Raises:
        TypeError: ``value`` is a float.
        ValueError: ``value`` is not finite or has more than 8 decimal places.
    """
    if isinstance(value, (float, bool)):
        raise TypeError("floats are not accepted for amounts; use Decimal or str")
    dec = value if isinstance(value, Decimal) else Decimal(value)
    if not dec.is_finite():
        raise ValueError(f"amount is not finite: {value!r}")
    sign, digits, exponent = dec.as_tuple()
    assert isinstance(exponent, int)
    exponent += SCALE_DIGITS
    magnitude = int("".join(map(str, digits)) or "0")
    if exponent >= 0:
        magnitude *= 10**exponent
    else:
        magnitude, rest = divmod(magnitude, 10**-exponent)
        if rest:
            raise ValueError(f"amount has more than {SCALE_DIGITS} decimal places: {value!r}")
    return -magnitude if sign else magnitude
