"""The validation combinators bots.toml is read with, and the rules a venue's table follows.

A converter is ``(errors, value, path) -> value``: it returns the converted value, or records one
problem on ``errors`` (``<path>: expected <what>, got <value>``) and returns ``_INVALID``, so a
whole document is walked and every problem reported at once. ``_Table`` reads one TOML table with
them. Names with one underscore are the config package's own; a venue's ``config`` module uses
the public ones: ``VenueRules`` (what its ``RULES`` provides), ``is_int`` and the channel names.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Collection, Hashable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from qfexbot.core.venue import VenueRules
from qfexbot.errors import ConfigError, format_errors

__all__ = [
    "MARKET_DATA_CHANNELS",
    "PRIVATE_CHANNELS",
    "ConfigError",
    "VenueRules",
    "format_errors",
    "is_int",
]

PRIVATE_CHANNELS = ("order_responses", "fills", "positions", "balances", "stop_orders")
"""Every private channel a bot may ask for; a venue's ``VenueRules.private_channels`` says which
of them it has."""
MARKET_DATA_CHANNELS = (
    "level2",
    "bbo",
    "trade",
    "mark_price",
    "candle",
    "funding",
    "underlier",
    "open_interest",
    "minmax_price",
    "market_stats",
)
"""Market-data channel names with one meaning on every venue that has them, for a venue's
rules to pick from. They are not the vocabulary: a bot may ask for exactly its venue's
``VenueRules.market_data_channels``, which may add names of the venue's own."""

_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class _Invalid:
    """Marks a value that failed validation (its error is already recorded)."""

    def __repr__(self) -> str:
        return "<invalid>"


_INVALID: Any = _Invalid()


def _show(value: Any, limit: int = 60, depth: int = 0) -> str:
    """A TOML-flavoured, length-capped rendering of an offending value for error messages."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, dict):
        text = "a table" if value else "an empty table"
    elif isinstance(value, list):
        if depth < 3:
            shown = [_show(v, limit, depth + 1) for v in value[:10]]
        else:
            shown = ["…"] * bool(value)
        text = "[" + ", ".join(shown + ["…"] * (len(value) > 10)) + "]"
    elif isinstance(value, int) and value.bit_length() > 256:
        text = "a very large integer"
    elif isinstance(value, (int, float, Decimal)):
        text = str(value)
    else:
        text = value.isoformat() if hasattr(value, "isoformat") else type(value).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _type_name(value: Any) -> str:
    """The kind of a value without showing it (used where the value may be a secret)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def _key(path: str, key: str) -> str:
    """Append a key to a dotted key path, quoting it as TOML would when it is not a bare key."""
    shown = key if _NAME_RE.fullmatch(key) else json.dumps(key, ensure_ascii=False)
    return f"{path}.{shown}" if path else shown


_CREDENTIAL_KEY_RE = re.compile(r"secret|jwt|token|password|passphrase|private", re.IGNORECASE)


def _names_a_credential(path: str) -> bool:
    """Whether the last key of ``path`` looks like a credential (e.g. a ``secret = ...`` line
    pasted into the wrong table): its value is then never shown in an error."""
    last = re.split(r"[.\[]", path)[-1]
    return bool(_CREDENTIAL_KEY_RE.search(last))


class _Errors:
    """Collects problems while the whole document is walked."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> Any:
        self.items.append(f"{path}: {message}")
        return _INVALID

    def expected(self, path: str, what: str, value: Any) -> Any:
        shown = _type_name(value) if _names_a_credential(path) else _show(value)
        return self.add(path, f"expected {what}, got {shown}")

    def missing(self, path: str, what: str) -> Any:
        return self.add(path, f"missing required key (expected {what})")

    def unknown_keys(self, table: Mapping[str, Any], path: str, allowed: Collection[str]) -> None:
        for key in table:
            if key in allowed:
                continue
            close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
            if close:
                self.add(_key(path, key), f'unknown key (did you mean "{close[0]}"?)')
            else:
                self.add(_key(path, key), f"unknown key (allowed: {', '.join(sorted(allowed))})")


# ---------------------------------------------------------------------------------------------
# Scalar converters: (errors, value, path) -> converted value or _INVALID (error recorded)


def is_int(value: Any) -> bool:
    """An integer that is not a boolean (TOML keeps them apart; Python does not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _to_decimal(value: Any) -> Decimal | None:
    """A finite Decimal from a TOML int/float, a decimal string, or a Decimal (schema defaults)."""
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if is_int(value):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(str(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except (InvalidOperation, ValueError):
            return None
        return number if number.is_finite() else None
    return None


def _to_seconds(value: Any) -> float | None:
    """Seconds from a number or a string like "90s", "5m", "250ms"; None if it is not one."""
    if is_int(value) or isinstance(value, float):
        seconds = float(value) if abs(value) < 1e300 else math.inf
    elif isinstance(value, str) and (match := _DURATION_RE.fullmatch(value)):
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        return None
    return seconds if math.isfinite(seconds) else None


def _str(err: _Errors, value: Any, path: str) -> Any:
    if isinstance(value, str) and value:
        return value
    return err.expected(path, "a non-empty string", value)


def _bool(err: _Errors, value: Any, path: str) -> Any:
    return value if isinstance(value, bool) else err.expected(path, "a boolean", value)


def _int(err: _Errors, value: Any, path: str) -> Any:
    return value if is_int(value) else err.expected(path, "an integer", value)


def _positive_int(err: _Errors, value: Any, path: str) -> Any:
    if is_int(value) and value > 0:
        return value
    return err.expected(path, "a positive integer", value)


def _number(err: _Errors, value: Any, path: str) -> Any:
    number = _to_decimal(value)
    return number if number is not None else err.expected(path, "a number", value)


def _positive_number(err: _Errors, value: Any, path: str) -> Any:
    number = _to_decimal(value)
    if number is not None and number > 0:
        return number
    return err.expected(path, "a positive number", value)


def _non_negative_number(err: _Errors, value: Any, path: str) -> Any:
    number = _to_decimal(value)
    if number is not None and number >= 0:
        return number
    return err.expected(path, "a non-negative number", value)


def _duration(err: _Errors, value: Any, path: str) -> Any:
    seconds = _to_seconds(value)
    if seconds is not None and seconds >= 0:
        return seconds
    return err.expected(path, 'a duration >= 0 (seconds, or a string like "90s", "5m")', value)


def _positive_duration(err: _Errors, value: Any, path: str) -> Any:
    seconds = _to_seconds(value)
    if seconds is not None and seconds > 0:
        return seconds
    return err.expected(path, 'a duration > 0 (seconds, or a string like "90s", "5m")', value)


def _name(err: _Errors, value: Any, path: str) -> Any:
    if isinstance(value, str) and _NAME_RE.fullmatch(value):
        return value
    return err.expected(path, 'a name of 1-64 letters, digits, "-" or "_"', value)


def _choice(choices: tuple[Any, ...]) -> Callable[[_Errors, Any, str], Any]:
    def check(err: _Errors, value: Any, path: str) -> Any:
        if not isinstance(value, bool) and value in choices:
            return value
        return err.expected(path, "one of " + ", ".join(_show(c) for c in choices), value)

    return check


def _url(schemes: tuple[str, ...]) -> Callable[[_Errors, Any, str], Any]:
    def check(err: _Errors, value: Any, path: str) -> Any:
        pattern = rf"(?:{'|'.join(schemes)})://[^\s/]+(/\S*)?"
        if isinstance(value, str) and re.fullmatch(pattern, value):
            return value
        what = " or ".join(f"{s}://" for s in schemes)
        return err.expected(path, f"a {what} URL", value)

    return check


def _resolve_path(base_dir: Path, value: Any) -> Path | None:
    """``value`` as a path (``~`` expanded) relative to ``base_dir``; None if it is not one."""
    if not isinstance(value, str) or not value or "\x00" in value:
        return None
    try:
        return base_dir / Path(value).expanduser()
    except RuntimeError:  # "~someone" whose home directory is unknown
        return None


def _path(base_dir: Path) -> Callable[[_Errors, Any, str], Any]:
    def check(err: _Errors, value: Any, path: str) -> Any:
        resolved = _resolve_path(base_dir, value)
        return resolved if resolved is not None else err.expected(path, "a path (string)", value)

    return check


def _list(
    item: Callable[[_Errors, Any, str], Any],
    what: str,
    *,
    unique: bool = True,
    non_empty: bool = False,
) -> Callable[[_Errors, Any, str], Any]:
    """An array whose items pass ``item``; duplicates (and emptiness if asked) are errors."""

    def check(err: _Errors, value: Any, path: str) -> Any:
        if not isinstance(value, list):
            return err.expected(path, f"an array of {what}", value)
        if non_empty and not value:
            return err.expected(path, f"a non-empty array of {what}", value)
        out: list[Any] = []
        first_at: dict[Any, int] = {}
        ok = True
        for i, raw in enumerate(value):
            item_path = f"{path}[{i}]"
            converted = item(err, raw, item_path)
            if converted is _INVALID:
                ok = False
                continue
            marker = (type(converted), converted)
            if unique and isinstance(converted, Hashable):
                if marker in first_at:
                    err.add(
                        item_path,
                        f"expected each item once, got {_show(raw)} again"
                        f" (first at {path}[{first_at[marker]}])",
                    )
                    ok = False
                    continue
                first_at[marker] = i
            out.append(converted)
        return tuple(out) if ok else _INVALID

    return check


class _Table:
    """One TOML table being read: unknown keys reported up front, then typed ``get`` per key."""

    def __init__(self, err: _Errors, data: Any, path: str, allowed: Collection[str]) -> None:
        self.err = err
        self.path = path
        self.valid = isinstance(data, dict)
        self.data: dict[str, Any] = data if self.valid else {}
        if not self.valid:
            err.expected(path, "a table", data)
        else:
            err.unknown_keys(data, path, allowed)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(
        self,
        key: str,
        convert: Callable[[_Errors, Any, str], Any],
        default: Any = _INVALID,
        what: str | None = None,
    ) -> Any:
        """The converted value of ``key``; ``default`` if absent, or a missing-key error when
        there is no default (``what`` then describes the expected value)."""
        path = _key(self.path, key)
        if key not in self.data:
            if default is _INVALID and self.valid:
                return self.err.missing(path, what or "a value")
            return default
        return convert(self.err, self.data[key], path)


def _unknown_alias(alias: Any, accounts: Collection[str]) -> str:
    """Message for an alias that the venue does not declare, with a suggestion if one is close."""
    if not isinstance(alias, str):
        return f"expected an account alias, got {_show(alias)}"
    close = difflib.get_close_matches(alias, list(accounts), n=1, cutoff=0.6)
    hint = (
        f'did you mean "{close[0]}"?'
        if close
        else ("declared: " + ", ".join(accounts) if accounts else "the venue declares no accounts")
    )
    return f"expected an account alias, got {_show(alias)} (not in the venue's accounts; {hint})"


def _alias_in(accounts: Collection[str] | None) -> Callable[[_Errors, Any, str], Any]:
    """An alias declared by the venue; any non-empty name when the venue's accounts are unknown
    (its own error is already reported)."""

    def check(err: _Errors, value: Any, path: str) -> Any:
        if accounts is None:
            return _name(err, value, path)
        if isinstance(value, str) and value in accounts:
            return value
        return err.add(path, _unknown_alias(value, accounts))

    return check
