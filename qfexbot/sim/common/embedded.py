"""What a simulator is told about the one bots.toml table it runs for in-process.

The runtime builds an :class:`EmbeddedTable` from a ``simulator = true`` table and its resolved
credentials, and passes it to the kind's ``start_embedded(root, table)``; the simulator reads
only these plain values, so it stays free of client and config code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["EmbeddedTable"]


@dataclass(frozen=True)
class EmbeddedTable:
    """One ``simulator = true`` venue table, as its embedded simulator needs it.

    Attributes:
      name: the table name (``[venues.<name>]``).
      user_id: the key's own account id.
      accounts: alias -> account id, as listed in ``[accounts]``.
      options: the ``[venues.<name>.sim]`` table.
      public_key, secret: the credentials the bot signs with (the simulator accepts them).
    """

    name: str
    user_id: str
    accounts: Mapping[str, str]
    options: Mapping[str, Any]
    public_key: str
    secret: str
