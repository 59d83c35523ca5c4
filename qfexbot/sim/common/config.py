"""What both simulators' SIM.toml parsers share: the error that lists every problem, reading the
file, and the key checks whose messages name the key path."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import tomli

from qfexbot.errors import SimulatorError

__all__ = ["ConfigProblems", "non_empty_string", "read_toml", "unknown_keys"]


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
    """Add ``<path>.<key>: unknown key`` for every key of ``table`` not in ``known``."""
    allowed = set(known)
    for key in table:
        if key not in allowed:
            errors.append(f"{path}.{key}: unknown key")


def non_empty_string(value: Any, path: str, errors: list[str], *, show: bool = True) -> str | None:
    """``value`` if it is a non-empty string, else None and a problem (``show=False`` for secrets:
    the problem names the type, never the value)."""
    if isinstance(value, str) and value:
        return value
    got = repr(value) if show else type(value).__name__
    errors.append(f"{path}: expected a non-empty string, got {got}")
    return None
