"""What both simulators' SIM.toml parsers share: the error that lists every problem, reading the
file, and the key checks whose messages name the key path."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import tomli

from qfexbot.errors import SimulatorError

__all__ = ["ConfigProblems", "non_empty_string", "read_toml", "unknown_key", "unknown_keys"]


class ConfigProblems(SimulatorError, ValueError):
    """A simulator configuration is invalid; ``errors`` lists every problem by key path."""

    title: ClassVar[str] = "invalid simulator configuration"

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__(f"{self.title}:\n  " + "\n  ".join(self.errors))


def read_toml(path: str | Path, error: type[ConfigProblems]) -> dict[str, Any]:
    """The parsed TOML document at ``path``.

    Raises:
        error: the file cannot be read, is not UTF-8 or is not valid TOML.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise error([f"{path}: cannot read ({exc.strerror})"]) from None
    try:
        return tomli.loads(raw.decode("utf-8"))
    except (tomli.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error([f"{path}: {exc}"]) from None


def unknown_keys(
    table: Mapping[str, Any], known: Iterable[str], path: str, errors: list[str]
) -> None:
    """Add ``<path>.<key>: unknown key (...)`` for every key of ``table`` not in ``known``."""
    allowed = list(known)
    for key in table:
        if key not in allowed:
            errors.append(unknown_key(f"{path}.{key}", str(key), allowed))


def unknown_key(path: str, key: str, allowed: Iterable[str]) -> str:
    """The problem line of an unknown key, as bots.toml words it: the close match ("did you
    mean"), else every allowed key."""
    choices = sorted(set(allowed))
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    if close:
        return f'{path}: unknown key (did you mean "{close[0]}"?)'
    return f"{path}: unknown key (allowed: {', '.join(choices)})"


def non_empty_string(value: Any, path: str, errors: list[str], *, show: bool = True) -> str | None:
    """``value`` if it is a non-empty string, else None and a problem (``show=False`` for secrets:
    the problem names the type, never the value)."""
    if isinstance(value, str) and value:
        return value
    got = repr(value) if show else type(value).__name__
    errors.append(f"{path}: expected a non-empty string, got {got}")
    return None
