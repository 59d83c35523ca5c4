"""Simulator configuration: SIM.toml users, tunables and symbols, validated with key-path errors."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as time_of_day
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from qfexbot.sim.common.config import (
    ConfigProblems,
    non_empty_string,
    read_toml,
    unknown_key,
    unknown_keys,
)

__all__ = [
    "ALWAYS_OPEN",
    "WEEKDAYS",
    "MarketHours",
    "SimConfig",
    "SimConfigError",
    "SimSymbol",
    "SimUser",
    "default_symbols",
    "demo_sim_config",
    "load_sim_config",
    "parse_sim_config",
]


class SimConfigError(ConfigProblems):
    """SIM.toml is invalid; ``errors`` lists every problem, each naming its key path."""

    title = "invalid simulator configuration"


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class MarketHours:
    """A symbol's trading week: per weekday one session, open..close (both inclusive, to the
    second) in the time zone ``tz``; a weekday without a session is closed all day."""

    tz: str
    sessions: Mapping[str, tuple[time_of_day, time_of_day]]

    def is_open(self, now: float) -> bool:
        """Whether ``now`` (Unix seconds) falls inside that local day's session."""
        local = datetime.fromtimestamp(now, ZoneInfo(self.tz))
        session = self.sessions.get(WEEKDAYS[local.weekday()])
        if session is None:
            return False
        moment = local.time().replace(microsecond=0)
        return session[0] <= moment <= session[1]

    def as_refdata(self) -> dict[str, Any]:
        """The refdata ``market_hours`` object: ``tz`` and ``{open, close}`` per open weekday."""
        row: dict[str, Any] = {"tz": self.tz}
        for day in WEEKDAYS:
            if day in self.sessions:
                opens, closes = self.sessions[day]
                row[day] = {"open": opens.isoformat(), "close": closes.isoformat()}
        return row


ALWAYS_OPEN = MarketHours(
    "UTC", {day: (time_of_day(0, 0, 0), time_of_day(23, 59, 59)) for day in WEEKDAYS}
)
"""What refdata shows for a symbol without ``market_hours`` (it trades around the clock)."""


@dataclass(frozen=True)
class SimSymbol:
    """One perpetual: reference data plus the synthetic market around it."""

    symbol: str
    price: Decimal
    tick_size: Decimal = Decimal("0.01")
    lot_size: Decimal = Decimal("0.001")
    min_price: Decimal = Decimal("0.01")
    max_price: Decimal = Decimal(1000000)
    min_quantity: Decimal = Decimal("0.001")
    max_quantity: Decimal = Decimal(1000)
    leverage: int = 10
    volatility: Decimal = Decimal("0.0005")
    spread_ticks: int = 2
    depth: Decimal = Decimal(5)
    price_band: Decimal = Decimal("0.1")
    max_position_notional: Decimal = Decimal(2500000)
    product_category: str = "equity"
    maker_fee: Decimal | None = None
    """Overrides ``SimConfig.maker_fee`` for this symbol (negative = a rebate)."""
    taker_fee: Decimal | None = None
    """Overrides ``SimConfig.taker_fee`` for this symbol."""
    market_hours: MarketHours | None = None
    """None = always open (the default, so a strategy trades around the clock)."""
    max_open_interest: Decimal | None = None
    """Cap on the sum of all accounts' long positions (base units); None = no cap."""


@dataclass(frozen=True)
class SimUser:
    """A user: API key pair, primary account (= user id), subaccounts and initial deposits."""

    public_key: str
    secret: str = field(repr=False)
    account_id: str
    subaccounts: list[str] = field(default_factory=list)
    deposits: dict[str, Decimal] = field(default_factory=dict)

    @property
    def accounts(self) -> list[str]:
        """Primary first, then subaccounts."""
        return [self.account_id, *self.subaccounts]


def default_symbols() -> dict[str, SimSymbol]:
    """The built-in instruments (one per asset class the venue lists)."""
    return {
        "AAPL-USD": SimSymbol("AAPL-USD", Decimal("200.00")),
        "US500-USD": SimSymbol(
            "US500-USD",
            Decimal("5000.0"),
            tick_size=Decimal("0.1"),
            leverage=30,
            depth=Decimal(1),
            max_position_notional=Decimal(10000000),
            product_category="index",
        ),
        "EUR-USD": SimSymbol(
            "EUR-USD",
            Decimal("1.10000"),
            tick_size=Decimal("0.00001"),
            lot_size=Decimal(1),
            min_price=Decimal("0.00001"),
            max_price=Decimal(100),
            min_quantity=Decimal(1),
            max_quantity=Decimal(10000000),
            leverage=50,
            volatility=Decimal("0.0001"),
            depth=Decimal(100000),
            max_position_notional=Decimal(50000000),
            product_category="fx",
        ),
        "CL-USD": SimSymbol(
            "CL-USD",
            Decimal("70.00"),
            lot_size=Decimal("0.01"),
            min_quantity=Decimal("0.01"),
            max_quantity=Decimal(100000),
            leverage=20,
            depth=Decimal(50),
            max_position_notional=Decimal(5000000),
            product_category="commodity",
        ),
    }


@dataclass(frozen=True)
class SimConfig:
    """Everything the simulator needs; every tunable has the venue-like default."""

    users: list[SimUser]
    symbols: dict[str, SimSymbol] = field(default_factory=default_symbols)
    seed: int = 1
    pulse_interval: float = 1.0
    auth_deadline: float = 60.0
    ping_interval: float = 30.0
    pong_timeout: float = 60.0
    rate_limit_budget: Decimal = Decimal(12000)
    rate_limit_window: float = 60.0
    mds_interval: float = 0.5
    price_interval: float = 0.5
    equity_interval: float = 60.0
    nonce_window: float = 900.0
    max_skew: float = 300.0
    taker_fee: Decimal = Decimal("0.0002")
    maker_fee: Decimal = Decimal("0.0001")
    funding_interval: float = 3600.0
    funding_cap: Decimal = Decimal("0.005")
    max_open_orders: int = 200
    twap_min_interval: float = 30.0
    twap_tick: float = 0.5
    trade_port: int = 0
    mds_port: int = 0
    rest_port: int = 0

    def replace(self, **changes: Any) -> SimConfig:
        """A copy with some fields changed (tests use this to shorten intervals)."""
        return dataclasses.replace(self, **changes)


_SIM_FLOATS = (
    "pulse_interval",
    "auth_deadline",
    "ping_interval",
    "pong_timeout",
    "rate_limit_window",
    "mds_interval",
    "price_interval",
    "equity_interval",
    "nonce_window",
    "max_skew",
    "funding_interval",
    "twap_min_interval",
    "twap_tick",
)
_SIM_DECIMALS = ("rate_limit_budget", "funding_cap")
_FEES = ("taker_fee", "maker_fee")
_SIM_INTS = ("seed", "trade_port", "mds_port", "rest_port", "max_open_orders")
_SYMBOL_DECIMALS = (
    "price",
    "tick_size",
    "lot_size",
    "min_price",
    "max_price",
    "min_quantity",
    "max_quantity",
    "volatility",
    "depth",
    "price_band",
    "max_position_notional",
    "max_open_interest",
)
_SYMBOL_INTS = ("leverage", "spread_ticks")
_SYMBOL_STRS = ("product_category",)


def demo_sim_config() -> SimConfig:
    """The built-in configuration of ``qfexbot sim`` without ``--config`` (docs/simulator.md)."""
    primary = "00000000-0000-4000-8000-000000000001"
    desk_a = "11111111-1111-4111-8111-111111111111"
    desk_b = "22222222-2222-4222-8222-222222222222"
    return SimConfig(
        users=[
            SimUser(
                public_key="qfex_pub_demo",
                secret="qfex_secret_demo",
                account_id=primary,
                subaccounts=[desk_a, desk_b],
                deposits={primary: Decimal(100000), desk_a: Decimal(50), desk_b: Decimal(0)},
            )
        ]
    )


def load_sim_config(path: str | Path) -> SimConfig:
    """Read and validate a SIM.toml file.

    Raises:
        SimConfigError: unreadable file, TOML syntax error or any invalid key (all listed).
    """
    return parse_sim_config(read_toml(path, SimConfigError))


def parse_sim_config(data: Mapping[str, Any]) -> SimConfig:
    """Validate a parsed SIM.toml document; the ``[finery]`` table is left alone.

    Raises:
        SimConfigError: listing every problem as ``<key.path>: <what is wrong>``.
    """
    errors: list[str] = []
    for key in data:
        if key not in ("users", "sim", "finery"):
            errors.append(unknown_key(str(key), str(key), ("users", "sim", "finery")))
    users = _parse_users(data.get("users"), errors)
    kwargs: dict[str, Any] = {}
    sim = data.get("sim", {})
    if not isinstance(sim, Mapping):
        errors.append(f"sim: expected a table, got {sim!r}")
        sim = {}
    for key, value in sim.items():
        _tunable(key, value, kwargs, errors)
    if errors:
        raise SimConfigError(errors)
    return SimConfig(users=users, **kwargs)


def _tunable(key: str, value: Any, kwargs: dict[str, Any], errors: list[str]) -> None:
    """Check one ``[sim]`` key into ``kwargs`` (the SimConfig field of the same name)."""
    path = f"sim.{key}"
    if key in _SIM_FLOATS:
        number = _number(value, path, errors, positive=True)
        if number is not None:
            kwargs[key] = float(number)
    elif key in _SIM_DECIMALS:
        number = _number(value, path, errors, positive=True)
        if number is not None:
            kwargs[key] = number
    elif key in _FEES:
        fee = _fee(value, path, errors, rebate=key == "maker_fee")
        if fee is not None:
            kwargs[key] = fee
    elif key in _SIM_INTS:
        number = _sim_int(key, value, path, errors)
        if number is not None:
            kwargs[key] = number
    elif key == "symbols":
        symbols = _parse_symbols(value, errors)
        if symbols is not None:
            kwargs["symbols"] = symbols
    else:
        known = (*_SIM_FLOATS, *_SIM_DECIMALS, *_FEES, *_SIM_INTS, "symbols")
        errors.append(unknown_key(path, key, known))


def _sim_int(key: str, value: Any, path: str, errors: list[str]) -> int | None:
    """A non-negative integer ``[sim]`` key (a port at most 65535, ``max_open_orders`` >= 1)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        errors.append(f"{path}: expected a non-negative integer, got {value!r}")
    elif key.endswith("_port") and value > 65535:
        errors.append(f"{path}: expected a port number, got {value!r}")
    elif key == "max_open_orders" and value < 1:
        errors.append(f"{path}: expected a positive integer, got {value!r}")
    else:
        return value
    return None


def _fee(value: Any, path: str, errors: list[str], *, rebate: bool) -> Decimal | None:
    """A fee as a fraction of notional below 1; a maker fee may be negative (a rebate)."""
    number = _finite(value)
    if number is None or not ((-1 < number < 1) if rebate else (0 <= number < 1)):
        what = "a fraction above -1 and below 1" if rebate else "a fraction from 0 to below 1"
        errors.append(f"{path}: expected {what}, got {value!r}")
        return None
    return number


_USER_KEYS = ("public_key", "secret", "account_id", "subaccounts", "deposits")


def _parse_users(value: Any, errors: list[str]) -> list[SimUser]:
    if value is None:
        errors.append("users: at least one [[users]] entry is required")
        return []
    if not isinstance(value, list) or not value:
        errors.append(f"users: expected a non-empty array of tables, got {value!r}")
        return []
    users: list[SimUser] = []
    seen_accounts: set[str] = set()
    seen_keys: set[str] = set()
    for index, entry in enumerate(value):
        path = f"users[{index}]"
        if not isinstance(entry, Mapping):
            errors.append(f"{path}: expected a table, got {entry!r}")
            continue
        user = _parse_user(entry, path, errors, seen_accounts, seen_keys)
        if user is not None:
            users.append(user)
    return users


def _parse_user(
    entry: Mapping[str, Any],
    path: str,
    errors: list[str],
    seen_accounts: set[str],
    seen_keys: set[str],
) -> SimUser | None:
    """One ``[[users]]`` table; accounts and keys are checked against the earlier users'."""
    unknown_keys(entry, _USER_KEYS, path, errors)
    public_key = non_empty_string(entry.get("public_key"), f"{path}.public_key", errors)
    secret = non_empty_string(entry.get("secret"), f"{path}.secret", errors, show=False)
    account_id = _uuid(entry.get("account_id"), f"{path}.account_id", errors)
    subaccounts = _subaccounts(entry.get("subaccounts", []), path, errors)
    for account in [account_id, *subaccounts]:
        if account is None:
            continue
        if account in seen_accounts:
            errors.append(f"{path}: account {account} is declared twice")
        seen_accounts.add(account)
    if public_key is not None:
        if public_key in seen_keys:
            errors.append(f"{path}.public_key: {public_key!r} is used by another user")
        seen_keys.add(public_key)
    owned = {a for a in [account_id, *subaccounts] if a is not None}
    deposits = _deposits(entry.get("deposits", {}), owned, path, errors)
    if public_key is None or secret is None or account_id is None:
        return None
    return SimUser(public_key, secret, account_id, subaccounts, deposits)


def _subaccounts(raw: Any, path: str, errors: list[str]) -> list[str]:
    if not isinstance(raw, list):
        errors.append(f"{path}.subaccounts: expected an array of UUIDs, got {raw!r}")
        return []
    subaccounts = []
    for i, sub in enumerate(raw):
        sub_id = _uuid(sub, f"{path}.subaccounts[{i}]", errors)
        if sub_id is not None:
            subaccounts.append(sub_id)
    return subaccounts


def _deposits(raw: Any, owned: set[str], path: str, errors: list[str]) -> dict[str, Decimal]:
    if not isinstance(raw, Mapping):
        errors.append(f"{path}.deposits: expected a table, got {raw!r}")
        return {}
    deposits: dict[str, Decimal] = {}
    for raw_account, amount in raw.items():
        key_path = f'{path}.deposits."{raw_account}"'
        account = _normalise_uuid(raw_account)
        if account not in owned:
            errors.append(f"{key_path}: not an account of this user")
            continue
        number = _number(amount, key_path, errors, positive=False)
        if number is not None:
            deposits[account] = number
    return deposits


def _parse_symbols(value: Any, errors: list[str]) -> dict[str, SimSymbol] | None:
    if not isinstance(value, Mapping) or not value:
        errors.append(f"sim.symbols: expected a non-empty table of symbols, got {value!r}")
        return None
    builtin = default_symbols()
    symbols: dict[str, SimSymbol] = {}
    for name, table in value.items():
        path = f'sim.symbols."{name}"'
        if not isinstance(table, Mapping):
            errors.append(f"{path}: expected a table, got {table!r}")
            continue
        base = builtin.get(name)
        if base is None and "price" not in table:
            errors.append(f"{path}.price: required for a symbol that is not built in")
            continue
        changes = _symbol_changes(table, path, errors)
        try:
            symbol = (
                dataclasses.replace(base, **changes) if base else SimSymbol(symbol=name, **changes)
            )
        except TypeError as exc:
            errors.append(f"{path}: {exc}")
            continue
        if symbol.price % symbol.tick_size != 0:
            errors.append(f"{path}.price: {symbol.price} is not a multiple of tick_size")
        if not symbol.min_price <= symbol.price <= symbol.max_price:
            errors.append(f"{path}.price: {symbol.price} outside min_price..max_price")
        symbols[name] = symbol
    return symbols


def _symbol_changes(table: Mapping[str, Any], path: str, errors: list[str]) -> dict[str, Any]:
    """The SimSymbol fields a ``[sim.symbols."<name>"]`` table sets."""
    changes: dict[str, Any] = {}
    for key, raw in table.items():
        key_path = f"{path}.{key}"
        if key in _SYMBOL_DECIMALS:
            number = _number(raw, key_path, errors, positive=key != "volatility")
            if number is not None:
                changes[key] = number
        elif key in _SYMBOL_INTS:
            if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
                errors.append(f"{key_path}: expected a positive integer, got {raw!r}")
            else:
                changes[key] = raw
        elif key in _SYMBOL_STRS:
            text = non_empty_string(raw, key_path, errors)
            if text is not None:
                changes[key] = text
        elif key in _FEES:
            fee = _fee(raw, key_path, errors, rebate=key == "maker_fee")
            if fee is not None:
                changes[key] = fee
        elif key == "market_hours":
            hours = _market_hours(raw, key_path, errors)
            if hours is not None:
                changes[key] = hours
        else:
            known = (*_SYMBOL_DECIMALS, *_SYMBOL_INTS, *_SYMBOL_STRS, *_FEES, "market_hours")
            errors.append(unknown_key(key_path, str(key), known))
    return changes


def _market_hours(raw: Any, path: str, errors: list[str]) -> MarketHours | None:
    """A ``market_hours`` table: ``tz`` (IANA name, default UTC) and ``<weekday> = {open,
    close}`` with times as ``"HH:MM[:SS]"`` strings or TOML local times."""
    if not isinstance(raw, Mapping):
        errors.append(f"{path}: expected a table, got {raw!r}")
        return None
    before = len(errors)
    unknown_keys(raw, ("tz", *WEEKDAYS), path, errors)
    tz = raw.get("tz", "UTC")
    if not isinstance(tz, str) or not _known_zone(tz):
        errors.append(f"{path}.tz: expected an IANA time zone name, got {tz!r}")
    sessions: dict[str, tuple[time_of_day, time_of_day]] = {}
    for day in WEEKDAYS:
        if day in raw:
            session = _session(raw[day], f"{path}.{day}", errors)
            if session is not None:
                sessions[day] = session
    if len(errors) > before:
        return None
    return MarketHours(tz, sessions)


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _session(raw: Any, path: str, errors: list[str]) -> tuple[time_of_day, time_of_day] | None:
    """One weekday's ``{open, close}``: open strictly before close, both on the same day."""
    if not isinstance(raw, Mapping):
        errors.append(f"{path}: expected a table with open and close, got {raw!r}")
        return None
    unknown_keys(raw, ("open", "close"), path, errors)
    opens = _time_of_day(raw.get("open"), f"{path}.open", errors)
    closes = _time_of_day(raw.get("close"), f"{path}.close", errors)
    if opens is None or closes is None:
        return None
    if closes <= opens:
        errors.append(f"{path}.close: {closes.isoformat()} is not after open {opens.isoformat()}")
        return None
    return opens, closes


def _time_of_day(value: Any, path: str, errors: list[str]) -> time_of_day | None:
    if isinstance(value, time_of_day) and value.tzinfo is None:
        return value.replace(microsecond=0)
    if isinstance(value, str) and len(value) in (5, 8):
        try:
            return time_of_day.fromisoformat(value)
        except ValueError:
            pass
    errors.append(f'{path}: expected a time of day "HH:MM" or "HH:MM:SS", got {value!r}')
    return None


def _uuid(value: Any, path: str, errors: list[str]) -> str | None:
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    errors.append(f"{path}: expected a UUID string, got {value!r}")
    return None


def _normalise_uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value


def _finite(value: Any) -> Decimal | None:
    """A TOML number or numeric string as a finite Decimal, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _number(value: Any, path: str, errors: list[str], *, positive: bool) -> Decimal | None:
    number = _finite(value)
    if number is None or number < 0 or (positive and number == 0):
        what = "a positive number" if positive else "a non-negative number"
        errors.append(f"{path}: expected {what}, got {value!r}")
        return None
    return number
