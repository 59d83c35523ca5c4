"""Finery simulator configuration: the ``[finery]`` part of SIM.toml, validated with key paths.

```toml
[finery]                          # optional tunables
nonce_window = 120.0              # seconds a nonce stays "used" (error 6 on reuse)
timestamp_tolerance = 120.0       # |server - timestamp| above this -> error 7
strict_nonce = false              # true: every nonce must exceed the key's previous one
idle_timeout = 80.0               # WS closed after this long without a client message

[finery.house]                    # the house maker: quotes every instrument (on by default)
enabled = true                    # false: books hold only what configured makers rest
interval = 1.0                    # seconds between quote replacements
seed = 1                          # random seed of sizes and of the quote replaced
levels = 5                        # quotes per side
spread = 0.0005                   # level spacing, a fraction of the mid (the USD prices)

[[finery.clients]]
key = "fm_maker_key"
secret = "fm_maker_secret"
client_id = 2
role = "maker"                    # maker | taker | master
subaccounts = []                  # client ids of a master's sub-accounts
gross_limit = 1000000             # USD; the `L` feed's ownLimit.grossLimit towards each peer
positions = [{ currency = "USD", counterparty = 1, amount = "250.5" }]   # mirrored on the peer
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from qfexbot.sim.common.config import ConfigProblems, read_toml, unknown_key, unknown_keys

__all__ = [
    "FineryCurrency",
    "FineryHouse",
    "FineryInstrument",
    "FinerySimClient",
    "FinerySimConfig",
    "FinerySimConfigError",
    "default_currencies",
    "default_instruments",
    "demo_finery_config",
    "load_finery_sim_config",
    "parse_finery_sim_config",
]

ROLES = ("maker", "taker", "master")


class FinerySimConfigError(ConfigProblems):
    """The ``[finery]`` part of SIM.toml is invalid; ``errors`` names every problem."""

    title = "invalid Finery simulator configuration"


@dataclass(frozen=True)
class FineryCurrency:
    """A currency: ``balance_step`` and ``usd_price`` are 1e-8 integers as on the wire."""

    name: str
    id: int
    balance_step: int
    usd_price: int
    type_name: str
    networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class FineryInstrument:
    """An instrument ``ASSET-BALANCE``."""

    name: str
    id: int
    asset: str
    balance: str


@dataclass(frozen=True)
class FinerySimClient:
    """One API key of the simulated venue and the client (account) it belongs to."""

    key: str
    secret: str = field(repr=False)
    client_id: int
    role: str
    subaccounts: tuple[int, ...] = ()
    gross_limit: Decimal = Decimal(1000000)
    positions: tuple[tuple[str, int, Decimal], ...] = ()


@dataclass(frozen=True)
class FineryHouse:
    """House quotes: ``levels`` per side ``spread`` apart; one replaced every ``interval`` s."""

    interval: float = 1.0
    seed: int = 1
    levels: int = 5
    spread: Decimal = Decimal("0.0005")


def default_currencies() -> tuple[FineryCurrency, ...]:
    """USD (step 0.01), USDT (step 0.000001), BTC and ETH (step 1e-8)."""
    return (
        FineryCurrency("USD", 1, 1_000_000, 100_000_000, "fiat", ("SWIFT",)),
        FineryCurrency("USDT", 2, 100, 100_000_000, "stablecoin", ("ERC20", "TRC20")),
        FineryCurrency("BTC", 3, 1, 6_000_000_000_000, "crypto", ("BTC",)),
        FineryCurrency("ETH", 4, 1, 300_000_000_000, "crypto", ("ERC20",)),
    )


def default_instruments() -> tuple[FineryInstrument, ...]:
    """BTC-USD, ETH-USD and BTC-USDT."""
    return (
        FineryInstrument("BTC-USD", 4955410050, "BTC", "USD"),
        FineryInstrument("ETH-USD", 4955410051, "ETH", "USD"),
        FineryInstrument("BTC-USDT", 4955410052, "BTC", "USDT"),
    )


@dataclass(frozen=True)
class FinerySimConfig:
    """Everything the Finery simulator needs; tunables default to the protocol's §7 values."""

    clients: tuple[FinerySimClient, ...]
    currencies: tuple[FineryCurrency, ...] = field(default_factory=default_currencies)
    instruments: tuple[FineryInstrument, ...] = field(default_factory=default_instruments)
    nonce_window: float = 120.0
    timestamp_tolerance: float = 120.0
    strict_nonce: bool = False
    idle_timeout: float = 80.0
    max_orders_per_side: int = 30
    book_depth: int = 25
    house: FineryHouse | None = None
    """The house maker the simulator runs (None: no house liquidity)."""

    def replace(self, **changes: Any) -> FinerySimConfig:
        """A copy with some fields changed (tests shorten timeouts this way)."""
        return dataclasses.replace(self, **changes)


def demo_finery_config() -> FinerySimConfig:
    """The demo set used without ``--config`` (documented in docs/venues/finery.md)."""
    return FinerySimConfig(
        clients=(
            FinerySimClient("fm_taker_demo", "fm_taker_secret_demo", 1, "taker"),
            FinerySimClient("fm_maker_demo", "fm_maker_secret_demo", 2, "maker"),
            FinerySimClient(
                "fm_master_demo", "fm_master_secret_demo", 10, "master", subaccounts=(11, 12)
            ),
            FinerySimClient("fm_sub11_demo", "fm_sub11_secret_demo", 11, "taker"),
            FinerySimClient("fm_sub12_demo", "fm_sub12_secret_demo", 12, "taker"),
        ),
        house=FineryHouse(),
    )


def load_finery_sim_config(path: str | Path) -> FinerySimConfig:
    """Read the ``[finery]`` part of a SIM.toml file (the demo set if it has none).

    Raises:
        FinerySimConfigError: unreadable file, TOML error, or invalid keys (all listed).
    """
    data = read_toml(path, FinerySimConfigError)
    if "finery" not in data:
        return demo_finery_config()
    return parse_finery_sim_config(data["finery"])


_FLOATS = ("nonce_window", "timestamp_tolerance", "idle_timeout")


def parse_finery_sim_config(table: Mapping[str, Any]) -> FinerySimConfig:
    """Validate the ``[finery]`` table.

    Raises:
        FinerySimConfigError: every problem as ``finery.<key.path>: <what is wrong>``.
    """
    errors: list[str] = []
    if not isinstance(table, Mapping):
        raise FinerySimConfigError([f"finery: expected a table, got {table!r}"])
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        path = f"finery.{key}"
        if key in _FLOATS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                errors.append(f"{path}: expected a positive number, got {value!r}")
            else:
                kwargs[key] = float(value)
        elif key == "strict_nonce":
            if not isinstance(value, bool):
                errors.append(f"{path}: expected true or false, got {value!r}")
            else:
                kwargs[key] = value
        elif key not in ("clients", "house"):
            errors.append(
                unknown_key(path, str(key), (*_FLOATS, "strict_nonce", "clients", "house"))
            )
    clients = _clients(table.get("clients"), errors)
    house = _house(table.get("house", {}), errors)
    if errors:
        raise FinerySimConfigError(errors)
    return FinerySimConfig(clients=clients, house=house, **kwargs)


_HOUSE_KEYS = ("enabled", "interval", "seed", "levels", "spread")


def _house(table: Any, errors: list[str]) -> FineryHouse | None:
    """The ``[finery.house]`` table: a :class:`FineryHouse` unless ``enabled = false``."""
    path = "finery.house"
    if not isinstance(table, Mapping):
        errors.append(f"{path}: expected a table, got {table!r}")
        return None
    unknown_keys(table, _HOUSE_KEYS, path, errors)
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        errors.append(f"{path}.enabled: expected true or false, got {enabled!r}")
    interval = table.get("interval", 1.0)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
        errors.append(f"{path}.interval: expected a positive number, got {interval!r}")
    seed = table.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int):
        errors.append(f"{path}.seed: expected an integer, got {seed!r}")
    levels = table.get("levels", 5)
    if isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= 25:
        errors.append(f"{path}.levels: expected an integer from 1 to 25, got {levels!r}")
    spread = _decimal(table.get("spread", "0.0005"), f"{path}.spread", errors)
    if spread is not None and not 0 < spread < 1:
        errors.append(f"{path}.spread: expected a fraction between 0 and 1, got {spread}")
    if enabled is not True or any(e.startswith(path) for e in errors):
        return None
    assert spread is not None
    return FineryHouse(float(interval), seed, levels, spread)


_CLIENT_KEYS = ("key", "secret", "client_id", "role", "subaccounts", "gross_limit", "positions")


def _clients(value: Any, errors: list[str]) -> tuple[FinerySimClient, ...]:
    if not isinstance(value, list) or not value:
        errors.append("finery.clients: expected at least one [[finery.clients]] table")
        return ()
    clients: list[FinerySimClient] = []
    keys: set[str] = set()
    ids: set[int] = set()
    for index, entry in enumerate(value):
        path = f"finery.clients[{index}]"
        if not isinstance(entry, Mapping):
            errors.append(f"{path}: expected a table, got {entry!r}")
            continue
        client = _client(entry, path, errors, keys, ids)
        if client is not None:
            keys.add(client.key)
            ids.add(client.client_id)
            clients.append(client)
    for client in clients:
        for _, cp, _ in client.positions:
            if cp not in ids or cp == client.client_id:
                errors.append(
                    f"finery.clients: client {client.client_id} has a position "
                    f"against unknown counterparty {cp}"
                )
    return tuple(clients)


def _client(
    entry: Mapping[str, Any], path: str, errors: list[str], keys: set[str], ids: set[int]
) -> FinerySimClient | None:
    """One ``[[finery.clients]]`` table (None if unusable); keys and ids must be new."""
    unknown_keys(entry, _CLIENT_KEYS, path, errors)
    key = entry.get("key")
    secret = entry.get("secret")
    client_id = entry.get("client_id")
    role = entry.get("role")
    ok = True
    if not isinstance(key, str) or not key:
        errors.append(f"{path}.key: expected a non-empty string, got {key!r}")
        ok = False
    elif key in keys:
        errors.append(f"{path}.key: {key!r} is used by another client")
    if not isinstance(secret, str) or not secret:
        errors.append(f"{path}.secret: expected a non-empty string")
        ok = False
    if not _uint32(client_id):
        errors.append(f"{path}.client_id: expected a positive integer, got {client_id!r}")
        ok = False
    elif client_id in ids:
        errors.append(f"{path}.client_id: {client_id} is declared twice")
    if role not in ROLES:
        errors.append(f"{path}.role: expected one of maker, taker, master, got {role!r}")
        ok = False
    subs = _client_subaccounts(entry.get("subaccounts", []), role, path, errors)
    gross = _decimal(entry.get("gross_limit", "1000000"), f"{path}.gross_limit", errors)
    positions = _positions(entry.get("positions", []), path, errors)
    if not ok or gross is None:
        return None
    return FinerySimClient(key, secret, client_id, role, subs, gross, positions)


def _client_subaccounts(subs: Any, role: Any, path: str, errors: list[str]) -> tuple[int, ...]:
    if not isinstance(subs, list) or not all(_uint32(s) for s in subs):
        errors.append(f"{path}.subaccounts: expected an array of client ids, got {subs!r}")
        return ()
    if subs and role != "master":
        errors.append(f"{path}.subaccounts: only a master has sub-accounts")
    return tuple(subs)


def _positions(raw: Any, path: str, errors: list[str]) -> tuple[tuple[str, int, Decimal], ...]:
    if not isinstance(raw, list):
        errors.append(f"{path}.positions: expected an array of tables")
        return ()
    currencies = {c.name for c in default_currencies()}
    positions = []
    for i, pos in enumerate(raw):
        ppath = f"{path}.positions[{i}]"
        if not isinstance(pos, Mapping) or set(pos) != {"currency", "counterparty", "amount"}:
            errors.append(f"{ppath}: expected {{currency, counterparty, amount}}, got {pos!r}")
            continue
        if pos["currency"] not in currencies:
            errors.append(f"{ppath}.currency: unknown currency {pos['currency']!r}")
            continue
        if not _uint32(pos["counterparty"]):
            errors.append(f"{ppath}.counterparty: expected a client id")
            continue
        amount = _decimal(pos["amount"], f"{ppath}.amount", errors, signed=True)
        if amount is not None:
            positions.append((pos["currency"], pos["counterparty"], amount))
    return tuple(positions)


def _uint32(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**32


def _decimal(value: Any, path: str, errors: list[str], *, signed: bool = False) -> Decimal | None:
    try:
        if isinstance(value, bool):
            raise InvalidOperation
        number = Decimal(str(value))
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or (not signed and number < 0):
        errors.append(f"{path}: expected a number, got {value!r}")
        return None
    return number
