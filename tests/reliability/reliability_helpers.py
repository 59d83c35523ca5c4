"""Shared helpers for the reliability tests: event type checks and hypothesis JSON strategies."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from qfexbot.events import Event

# --------------------------------------------------------------------------- JSON-ish values

NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**4000), max_value=10**4000),  # bigger than any float
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "1e999999",
            "-1e-999999",
            "NaN",
            "sNaN",
            "Infinity",
            "-inf",
            "1_000",
            "0x10",
            " 1 ",
            "",
            "1e400",
            "9" * 500,
        ]
    ),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=20))
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
    ),
    max_leaves=20,
)


def nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    """A JSON text nested ``depth`` levels deep."""
    return opener * depth + closer * depth


def deep_object(depth: int) -> str:
    """``{"a":{"a":...{}}}`` ``depth`` levels deep."""
    return '{"a":' * depth + "{}" + "}" * depth


# --------------------------------------------------------------------------- event checks


# The leaf types an event field may declare, each with its check (matched by identity).
_LEAVES: tuple[tuple[Any, Callable[[Any], bool]], ...] = (
    (type(None), lambda v: v is None),
    (Decimal, lambda v: isinstance(v, Decimal) and v.is_finite()),
    (float, lambda v: isinstance(v, float) and not isinstance(v, bool)),
    (int, lambda v: isinstance(v, int) and not isinstance(v, bool)),
    (str, lambda v: isinstance(v, str)),
    (bool, lambda v: isinstance(v, bool)),
)


def _is_instance(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_instance(value, h) for h in typing.get_args(hint))
    if origin is tuple:
        return _is_tuple(value, typing.get_args(hint))
    check = next((check for leaf, check in _LEAVES if leaf is hint), None)
    if check is not None:
        return check(value)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _is_tuple(value: Any, args: tuple[Any, ...]) -> bool:
    if not isinstance(value, tuple):
        return False
    if len(args) == 2 and args[1] is Ellipsis:
        return all(_is_instance(v, args[0]) for v in value)
    return len(value) == len(args) and all(
        _is_instance(v, a) for v, a in zip(value, args, strict=True)
    )


def assert_well_typed(event: Event) -> None:
    """Every declared field of ``event`` has its declared type (Decimals finite)."""
    hints = typing.get_type_hints(type(event))
    for f in dataclasses.fields(event):
        if f.name == "raw":
            continue
        value = getattr(event, f.name)
        assert _is_instance(value, hints[f.name]), (
            f"{type(event).__name__}.{f.name} = {value!r:.100} is not {hints[f.name]}"
        )
    if isinstance(event.received_at, float):
        assert math.isfinite(event.received_at)
