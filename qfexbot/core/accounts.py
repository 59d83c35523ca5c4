"""The one alias <-> account id book of a venue's accounts.

bots.toml declares ``alias = id`` per venue and refuses two aliases for one id, so the book is a
bijection; where a caller builds one from a mapping that repeats an id anyway, the first alias
declared wins (one rule, everywhere: logs, status, the journal and plugins agree).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType

from qfexbot.errors import UnknownAccountError

__all__ = ["AccountBook"]


class AccountBook(Mapping[str, str]):
    """alias -> account id, with the reverse lookup; a read-only ``Mapping`` of the aliases."""

    __slots__ = ("_aliases", "_ids", "name")

    def __init__(self, accounts: Mapping[str, str], *, name: str = "") -> None:
        """``accounts`` maps alias -> account id; ``name`` (e.g. the venue or bot) goes into
        error messages."""
        self.name = name
        self._ids: Mapping[str, str] = MappingProxyType(dict(accounts))
        aliases: dict[str, str] = {}
        for alias, account_id in self._ids.items():
            aliases.setdefault(account_id, alias)
        self._aliases: Mapping[str, str] = MappingProxyType(aliases)

    def __getitem__(self, alias: str) -> str:
        return self._ids[alias]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"AccountBook({self.name!r}, {len(self)} accounts)"

    def knows(self, alias_or_id: str) -> bool:
        """True for an alias or an account id of this book."""
        return alias_or_id in self._ids or alias_or_id in self._aliases

    def id_of(self, alias_or_id: str) -> str:
        """The account id for an alias (an account id is returned as is).

        Raises:
          UnknownAccountError: neither an alias nor an id of this book.
        """
        found = self._ids.get(alias_or_id)
        if found is not None:
            return found
        if alias_or_id in self._aliases:
            return alias_or_id
        known = ", ".join(sorted(self._ids)) or "none"
        where = f"{self.name}: " if self.name else ""
        raise UnknownAccountError(
            f"{where}unknown account {alias_or_id!r} (known aliases: {known})"
        )

    def alias_of(self, account_id: str) -> str:
        """The alias of ``account_id``, or the id itself if it has none (for readable logs)."""
        return self._aliases.get(account_id, account_id)

    def ids(self) -> tuple[str, ...]:
        """Every account id, in declaration order."""
        return tuple(self._aliases)
