"""bots.toml -> frozen, validated configuration objects; every problem reported with its key path.

``load_config(path)`` reads the file with tomli and hands the table to ``parse_config``, which
walks the whole document and collects *all* problems before raising one ``ConfigError``. Each
problem is one line naming the key path, mostly in the form
``<path>: expected <what>, got <value>``. Credentials are parsed into ``SecretRef`` references and
only read (from the environment or a file) by ``VenueConfig.resolve_credentials()``, so a config
can be checked without the secrets present and no secret value is ever part of a config object's
repr or an error message.

Plugins declare ``config_schema: dict[str, Field]``; ``validate_plugin_config`` checks a plugin
table's options against it with the same error format.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import math
import os
import re
import stat
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import tomli

from qfexbot.core.logs import register_secret
from qfexbot.core.secrets import Secret

__all__ = [
    "DEFAULT_PRIVATE_CHANNELS",
    "FINERY_MARKET_DATA_CHANNELS",
    "FINERY_PRIVATE_CHANNELS",
    "FINERY_SIM_KEYS",
    "INSECURE_SECRET_FILES_ENV",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "MARKET_DATA_CHANNELS",
    "PRIVATE_CHANNELS",
    "RECORD_MAX_BYTES",
    "REQUIRED",
    "VENUE_DEFAULT_URLS",
    "AppConfig",
    "BotConfig",
    "ConfigError",
    "Credentials",
    "Field",
    "Limits",
    "MarketData",
    "PluginConfig",
    "RecordSettings",
    "RuntimeConfig",
    "SecretRef",
    "SessionSettings",
    "VenueConfig",
    "format_errors",
    "load_config",
    "money_mover_conflicts",
    "parse_config",
    "validate_plugin_config",
]

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
RECORD_MAX_BYTES = 64 * 1024 * 1024
"""Default size at which a recording file is rotated (``[runtime] record.max_bytes``)."""
PRIVATE_CHANNELS = ("order_responses", "fills", "positions", "balances", "stop_orders")
DEFAULT_PRIVATE_CHANNELS = ("order_responses", "fills", "positions", "balances")
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
VENUE_DEFAULT_URLS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "qfex": MappingProxyType(
            {
                "trade_url": "wss://trade.qfex.com/",
                "mds_url": "wss://mds.qfex.com/",
                "rest_url": "https://api.qfex.com",
            }
        ),
        # Finery has one WebSocket for everything: mds_url is the same socket and not configurable.
        "finery": MappingProxyType(
            {
                "trade_url": "wss://trade.finerymarkets.com/ws",
                "mds_url": "wss://trade.finerymarkets.com/ws",
                "rest_url": "https://trade.finerymarkets.com",
            }
        ),
    }
)
FINERY_PRIVATE_CHANNELS = ("order_responses", "fills", "positions", "balances")
"""Private channels a ``kind = "finery"`` venue supports (its feeds O, O, K and L)."""
FINERY_MARKET_DATA_CHANNELS = ("level2",)
"""Market-data channels a ``kind = "finery"`` venue supports (``level2`` = the ``F`` book)."""
FINERY_SIM_KEYS = ("pulse_interval", "seed")
"""``[venues.X.sim]`` keys a ``kind = "finery"`` embedded simulator reads."""
INSECURE_SECRET_FILES_ENV = "QFEXBOT_ALLOW_INSECURE_SECRET_FILES"

_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PLUGIN_USE_RE = re.compile(
    r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_]*)*(:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*)?"
)


# ---------------------------------------------------------------------------------------------
# Errors


class ConfigError(Exception):
    """The configuration is invalid; ``errors`` holds one line per problem, each with its key path.

    ``str()`` lists every problem, so printing the exception is enough for an operator.
    """

    def __init__(self, errors: Iterable[str], path: Path | str | None = None) -> None:
        self.errors: list[str] = list(errors)
        self.path = path
        super().__init__(format_errors(self.errors, path))

    def __str__(self) -> str:
        return format_errors(self.errors, self.path)


def format_errors(errors: Iterable[str], path: Path | str | None = None) -> str:
    """Render problems as a header line plus one indented line each (for ``qfexbot check``)."""
    errors = list(errors)
    where = f"{path}: " if path is not None else ""
    noun = "problem" if len(errors) == 1 else "problems"
    return "\n".join([f"{where}{len(errors)} configuration {noun}"] + [f"  {e}" for e in errors])


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _to_decimal(value: Any) -> Decimal | None:
    """A finite Decimal from a TOML int/float, a decimal string, or a Decimal (schema defaults)."""
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if _is_int(value):
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
    if _is_int(value) or isinstance(value, float):
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
    return value if _is_int(value) else err.expected(path, "an integer", value)


def _positive_int(err: _Errors, value: Any, path: str) -> Any:
    if _is_int(value) and value > 0:
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


# ---------------------------------------------------------------------------------------------
# Secrets


@dataclass(frozen=True)
class Credentials:
    """Resolved credentials of a venue: HMAC key pair or a JWT (never both)."""

    public_key: str | None
    secret: Secret | None
    jwt: Secret | None


@dataclass(frozen=True)
class SecretRef:
    """Where a credential comes from; read only by ``resolve()`` (late, at start-up).

    ``kind`` is ``"env"`` (``target`` = variable name), ``"file"`` (``target`` = absolute path)
    or ``"inline"`` (the value is held in a redacted ``Secret``). ``key_path`` names the
    bots.toml key, for error messages.
    """

    kind: Literal["env", "file", "inline"]
    target: str
    key_path: str
    inline: Secret | None = field(default=None, repr=False)

    def resolve(self, environ: Mapping[str, str] | None = None) -> Secret:
        """Read the value now.

        Raises:
            ConfigError: the variable is unset or empty, the file is missing, unreadable, empty,
                or readable by group/others (unless ``QFEXBOT_ALLOW_INSECURE_SECRET_FILES=1``).
        """
        env = os.environ if environ is None else environ
        if self.kind == "inline":
            assert self.inline is not None
            return self.inline
        if self.kind == "env":
            value = env.get(self.target)
            if value is None:
                raise ConfigError(
                    [f"{self.key_path}: environment variable {self.target} is not set"]
                )
            if not value.strip():
                raise ConfigError([f"{self.key_path}: environment variable {self.target} is empty"])
            return Secret(value.strip(), source=f"env:{self.target}")
        return Secret(self._read_file(env), source=f"file:{self.target}")

    def _read_file(self, env: Mapping[str, str]) -> str:
        where = f"{self.key_path}: secrets file {self.target}"
        try:
            mode = os.stat(self.target).st_mode
        except FileNotFoundError:
            raise ConfigError([f"{where} does not exist"]) from None
        except OSError as exc:
            raise ConfigError([f"{where} cannot be read ({exc.strerror})"]) from None
        if not stat.S_ISREG(mode):
            raise ConfigError([f"{where} is not a regular file"])
        if mode & 0o077 and env.get(INSECURE_SECRET_FILES_ENV) != "1":
            raise ConfigError(
                [
                    (
                        f"{where} is readable or writable by group/others (mode {stat.S_IMODE(mode):04o});"
                        f" run `chmod 600 {self.target}` or set {INSECURE_SECRET_FILES_ENV}=1"
                    )
                ]
            )
        try:
            with open(self.target, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise ConfigError([f"{where} cannot be read ({exc.strerror})"]) from None
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ConfigError([f"{where} is not UTF-8 text"]) from None
        if not text:
            raise ConfigError([f"{where} is empty"])
        return text


def _secret_ref(base_dir: Path, *, allow_inline: bool, inline_hint: str = "") -> Callable[..., Any]:
    """Parse a credential value: a string, ``{env = "NAME"}`` or ``{file = "path"}``.

    The value itself is never shown in an error: it may be the secret.
    """

    def check(err: _Errors, value: Any, path: str) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return err.add(path, "expected a non-empty string, got an empty string")
            if not allow_inline:
                return err.add(
                    path,
                    f"inline secrets are not allowed{inline_hint}; use"
                    ' {env = "NAME"} or {file = "path"}',
                )
            return SecretRef("inline", "", path, Secret(value.strip(), source=f"inline:{path}"))
        if isinstance(value, dict):
            if len(value) == 1 and "env" in value:
                name = value["env"]
                if isinstance(name, str) and _ENV_NAME_RE.fullmatch(name):
                    return SecretRef("env", name, path)
                return err.expected(_key(path, "env"), "an environment variable name", name)
            if len(value) == 1 and "file" in value:
                target = _resolve_path(base_dir, value["file"])
                if target is not None:
                    return SecretRef("file", str(target), path)
                return err.expected(_key(path, "file"), "a path (string)", value["file"])
            if not value:
                return err.add(
                    path, 'expected {env = "NAME"} or {file = "path"}, got an empty table'
                )
            if "env" in value and "file" in value:
                return err.add(path, 'expected {env = "NAME"} or {file = "path"}, not both')
            err.unknown_keys(value, path, ("env", "file"))
            return _INVALID
        return err.add(
            path, 'expected a string, {env = "NAME"} or {file = "path"}, got ' + _type_name(value)
        )

    return check


# ---------------------------------------------------------------------------------------------
# Configuration objects


@dataclass(frozen=True)
class RecordSettings:
    """Raw-frame recording (``[runtime] record``): where, and the size that rotates a file."""

    dir: Path
    max_bytes: int = RECORD_MAX_BYTES


@dataclass(frozen=True)
class RuntimeConfig:
    """Process-wide settings (``[runtime]``); paths are absolute.

    ``record`` is None unless recording is configured; ``ops_listen`` is the loopback
    ``(host, port)`` of the ops HTTP endpoint (``/healthz``, ``/status``, ``/metrics``) or None.
    """

    journal: Path
    log_level: str
    log_format: str
    plugin_dirs: tuple[Path, ...]
    kill_switch_file: Path
    dry_run: bool
    record: RecordSettings | None = None
    ops_listen: tuple[str, int] | None = None
    state_dir: Path | None = None
    """Where the journal's second rollback mark lives; None: ``$QFEXBOT_STATE_DIR``, else the
    XDG state directory (see ``qfexbot.money.journal.mark_paths``)."""


DEFAULT_TRANSFER_SETTLE = 600.0
"""Default quiet time (s) before a transfer in doubt may be concluded "not applied"."""


@dataclass(frozen=True)
class SessionSettings:
    """Connection tunables of a venue (``[venues.X.session]``), in seconds unless noted."""

    connect_timeout: float = 10.0
    auth_timeout: float = 10.0
    stale_after: float = 15.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    healthy_after: float = 30.0
    max_auth_failures: int = 3
    request_timeout: float = 10.0
    transfer_settle: float | None = None
    """Quiet time before a doubtful transfer may be declared "not applied"; None = default."""

    @property
    def settle_seconds(self) -> float:
        """``transfer_settle``, or a conservative default of minutes: a request the venue holds
        past our timeout can still be applied later, and "not applied" must not be concluded
        before (a 30 s default was shown to double a request held 40 s)."""
        if self.transfer_settle is not None:
            return self.transfer_settle
        return max(3 * self.request_timeout, DEFAULT_TRANSFER_SETTLE)


@dataclass(frozen=True)
class VenueConfig:
    """One venue connection (``[venues.X]``): URLs, credential references and named accounts.

    ``accounts`` maps alias -> lower-case account UUID (``"primary"`` already resolved to
    ``user_id``); for ``kind = "finery"`` ``user_id`` and the account ids are Finery client ids
    as decimal text (e.g. ``"10"``) and ``trade_url`` is the venue's one WebSocket (``mds_url``
    equals it). ``sim`` holds the ``[venues.X.sim]`` settings given (empty unless
    ``simulator``): ``pulse_interval`` (float s), ``seed`` (int), ``deposits`` (alias -> Decimal),
    ``symbols`` (table passed through as written).
    """

    name: str
    kind: str
    simulator: bool
    trade_url: str
    mds_url: str
    rest_url: str
    user_id: str
    public_key: SecretRef | None
    secret: SecretRef | None
    jwt: SecretRef | None
    accounts: Mapping[str, str]
    session: SessionSettings
    sim: Mapping[str, Any]

    def account_id(self, alias: str) -> str:
        """The account UUID of an alias (KeyError if the venue does not declare it)."""
        return self.accounts[alias]

    @property
    def owner(self) -> str:
        """Whose money this table moves, as the journal keys it: the ``user_id`` of a real venue;
        for ``simulator = true`` a key of its own, ``simulator:<table>:<user_id>`` (no real user
        id has that form), so simulated transfers never block, count against the limits of, or
        get reconciled by a real table, nor the other way round."""
        return f"simulator:{self.name}:{self.user_id}" if self.simulator else self.user_id

    def resolve_credentials(self, environ: Mapping[str, str] | None = None) -> Credentials:
        """Read the credential references now (environment, files, inline).

        Args:
            environ: mapping used instead of ``os.environ`` (tests).
        Raises:
            ConfigError: listing every credential that could not be read, by key path.
        """
        errors: list[str] = []
        resolved: dict[str, Secret | None] = {}
        for name in ("public_key", "secret", "jwt"):
            ref: SecretRef | None = getattr(self, name)
            resolved[name] = None
            if ref is not None:
                try:
                    resolved[name] = ref.resolve(environ)
                except ConfigError as exc:
                    errors.extend(exc.errors)
        if errors:
            raise ConfigError(errors)
        for name in ("secret", "jwt"):
            if (value := resolved[name]) is not None:
                register_secret(value.reveal())
        public = resolved["public_key"]
        return Credentials(public.reveal() if public else None, resolved["secret"], resolved["jwt"])


@dataclass(frozen=True)
class MarketData:
    """Public market data a bot wants (``bots.X.market_data``); empty when not configured."""

    channels: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limits:
    """Money-movement policy of one bot (``[bots.X.limits]``).

    ``allowed_pairs`` holds ordered (source alias, destination alias) tuples; a pair listed in
    bots.toml allows both directions. By default every pair of the bot's own accounts is allowed.
    """

    max_transfer: Decimal = Decimal(1000)
    max_daily: Decimal = Decimal(10000)
    allowed_pairs: frozenset[tuple[str, str]] = frozenset()
    min_interval: float = 30.0
    min_remaining: Decimal = Decimal(0)

    def allows(self, src: str, dst: str) -> bool:
        """Whether a transfer from alias ``src`` to alias ``dst`` is an allowed pair."""
        return (src, dst) in self.allowed_pairs


@dataclass(frozen=True)
class PluginConfig:
    """One plugin instance of a bot (``[bots.X.plugins.NAME]``).

    ``options`` holds every non-reserved key exactly as written; the plugin loader validates
    them against the plugin's ``config_schema`` with ``validate_plugin_config(schema, options,
    path, accounts)``. ``path`` is the table's key path for those error messages.
    """

    name: str
    use: str
    enabled: bool
    failure_limit: int
    inbox_size: int
    options: Mapping[str, Any]
    path: str


@dataclass(frozen=True)
class BotConfig:
    """One bot (``[bots.X]``): its venue, account aliases, subscriptions, limits and plugins.

    The bot runs dry when ``dry_run`` or ``runtime.dry_run`` is true (see ``effective_dry_run``
    on ``AppConfig``).
    """

    name: str
    venue: str
    accounts: tuple[str, ...]
    channels: tuple[str, ...]
    market_data: MarketData
    dry_run: bool
    limits: Limits
    plugins: tuple[PluginConfig, ...]


@dataclass(frozen=True)
class AppConfig:
    """The whole validated bots.toml."""

    path: Path | None
    base_dir: Path
    runtime: RuntimeConfig
    venues: Mapping[str, VenueConfig]
    bots: Mapping[str, BotConfig]

    def effective_dry_run(self, bot: str) -> bool:
        """True when the bot or the whole runtime is in dry-run mode."""
        return self.runtime.dry_run or self.bots[bot].dry_run


# ---------------------------------------------------------------------------------------------
# Parsing

_TOP_KEYS = ("runtime", "venues", "bots")
_RUNTIME_KEYS = (
    "journal",
    "log_level",
    "log_format",
    "plugin_dirs",
    "kill_switch_file",
    "dry_run",
    "record",
    "ops_listen",
    "state_dir",
)
_RECORD_KEYS = ("dir", "max_bytes")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_VENUE_KEYS = (
    "kind",
    "simulator",
    "trade_url",
    "mds_url",
    "rest_url",
    "user_id",
    "public_key",
    "secret",
    "jwt",
    "accounts",
    "session",
    "sim",
)
_SESSION_KEYS = tuple(f.name for f in dataclasses.fields(SessionSettings))
_SIM_KEYS = ("pulse_interval", "seed", "deposits", "symbols")
_BOT_KEYS = ("venue", "accounts", "channels", "market_data", "dry_run", "limits", "plugins")
_MARKET_DATA_KEYS = ("channels", "symbols")
_LIMIT_KEYS = ("max_transfer", "max_daily", "allowed_pairs", "min_interval", "min_remaining")
_PLUGIN_RESERVED = ("use", "enabled", "failure_limit", "inbox_size")


def load_config(path: str | os.PathLike[str]) -> AppConfig:
    """Read and validate a bots.toml.

    Relative paths in it are resolved against the file's directory.

    Raises:
        ConfigError: the file cannot be read, is not valid TOML (line and column given), or has
            any number of problems (all listed).
    """
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{file}: file not found"]) from None
    except OSError as exc:
        raise ConfigError([f"{file}: cannot be read ({exc.strerror})"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{file}: not UTF-8 text (byte offset {exc.start})"]) from None
    try:
        data = tomli.loads(text)
    except tomli.TOMLDecodeError as exc:
        message = getattr(exc, "msg", None) or str(exc)
        line, column = getattr(exc, "lineno", None), getattr(exc, "colno", None)
        where = f"line {line}, column {column}: " if line is not None else ""
        raise ConfigError([f"{file}: {where}invalid TOML: {message}"]) from None
    except ValueError:
        # Python refuses integers of more than 4300 digits while tomli parses them.
        raise ConfigError([f"{file}: invalid TOML: an integer is too long"]) from None
    except RecursionError:
        raise ConfigError([f"{file}: invalid TOML: arrays/tables nested too deeply"]) from None
    return parse_config(data, file, file.resolve().parent)


def parse_config(
    data: dict[str, Any],
    path: str | os.PathLike[str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> AppConfig:
    """Validate an already-parsed bots.toml table.

    Args:
        data: the table tomli produced (any value is accepted; problems become errors).
        path: the file it came from, for messages and ``AppConfig.path``.
        base_dir: directory that relative paths are resolved against (default: the current one).
    Raises:
        ConfigError: with every problem found.
    """
    file = Path(path) if path is not None else None
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    base = base.absolute()
    err = _Errors()
    top = _Table(err, data, "", _TOP_KEYS)
    if not top.valid:
        err.items[-1] = f"(top level): expected a table, got {_show(data)}"
    runtime = _parse_runtime(err, top.data.get("runtime", {}), base)
    venues, venue_aliases = _parse_venues(err, top, base)
    if venues is not None:
        _check_shared_accounts(err, venues)
    bots = _parse_bots(err, top, venues, venue_aliases)
    if err.items:
        raise ConfigError(err.items, file)
    assert venues is not None  # a missing [venues] is an error
    return AppConfig(file, base, runtime, MappingProxyType(venues), MappingProxyType(bots))


def _parse_runtime(err: _Errors, data: Any, base: Path) -> RuntimeConfig:
    table = _Table(err, data, "runtime", _RUNTIME_KEYS)
    as_path = _path(base)
    return RuntimeConfig(
        journal=table.get("journal", as_path, base / "var" / "journal.sqlite"),
        log_level=table.get("log_level", _choice(LOG_LEVELS), "info"),
        log_format=table.get("log_format", _choice(LOG_FORMATS), "text"),
        plugin_dirs=table.get("plugin_dirs", _list(as_path, "paths"), (base / "plugins",)),
        kill_switch_file=table.get("kill_switch_file", as_path, base / "var" / "PAUSED"),
        dry_run=table.get("dry_run", _bool, False),
        record=table.get("record", _record(base), None),
        ops_listen=table.get("ops_listen", _loopback_address, None),
        state_dir=table.get("state_dir", as_path, None),
    )


def _record(base: Path) -> Callable[[_Errors, Any, str], Any]:
    """``record = {dir = "...", max_bytes = N}`` (``max_bytes`` optional, at least 4096)."""

    def check(err: _Errors, value: Any, path: str) -> Any:
        table = _Table(err, value, path, _RECORD_KEYS)
        if not table.valid:
            return _INVALID
        directory = table.get("dir", _path(base), what="a directory path")
        max_bytes = table.get("max_bytes", _int, RECORD_MAX_BYTES)
        if _is_int(max_bytes) and max_bytes < 4096:
            err.expected(_key(path, "max_bytes"), "an integer of at least 4096", max_bytes)
        return RecordSettings(directory, max_bytes)

    return check


def _loopback_address(err: _Errors, value: Any, path: str) -> Any:
    """``"127.0.0.1:9187"`` (or ``"[::1]:9187"``, ``"localhost:9187"``) as ``(host, port)``."""
    match = re.fullmatch(r"\[?([^\[\]]+?)\]?:(\d{1,5})", value) if isinstance(value, str) else None
    if match is None or int(match.group(2)) > 65535:
        return err.expected(path, 'a "host:port" address such as "127.0.0.1:9187"', value)
    host = match.group(1)
    if host not in _LOOPBACK_HOSTS and not host.startswith("127."):
        return err.add(
            path,
            f"the ops endpoint is unauthenticated and must listen on a loopback "
            f"address (127.0.0.1, ::1 or localhost), got {_show(host)}",
        )
    return host, int(match.group(2))


def _named_tables(err: _Errors, top: _Table, key: str, what: str) -> dict[str, Any]:
    """The sub-tables of ``[key]`` whose names are valid; reports a missing or empty section."""
    if key not in top.data:
        if top.valid:
            err.missing(key, f"at least one [{key}.NAME] table of {what}")
        return {}
    section = top.data[key]
    if not isinstance(section, dict):
        err.expected(key, f"a table of {what}", section)
        return {}
    if not section:
        err.add(key, f"expected at least one [{key}.NAME] table of {what}, got an empty table")
    return {
        name: value
        for name, value in section.items()
        if _name(err, name, _key(key, name)) is not _INVALID
    }


def _parse_venues(
    err: _Errors, top: _Table, base: Path
) -> tuple[dict[str, VenueConfig] | None, dict[str, tuple[str, ...] | None]]:
    """The venues (None when [venues] itself is missing or not a table, so that bots are not
    checked against an unknown set), and per venue its declared aliases (None likewise when
    its [accounts] is not a table)."""
    section = top.data.get("venues")
    if not isinstance(section, dict) or not section:
        _named_tables(err, top, "venues", "venues")
        return None, {}
    venues, aliases = {}, {}
    for name, data in _named_tables(err, top, "venues", "venues").items():
        venues[name] = _parse_venue(err, name, data, base)
        raw = data.get("accounts", {}) if isinstance(data, dict) else None
        aliases[name] = tuple(venues[name].accounts) if isinstance(raw, dict) else None
    return venues, aliases


def _secure_or_loopback(url: str) -> bool:
    """True for wss:// and https:// URLs, and for plain ones whose host is a loopback address."""
    parts = urlsplit(url)
    if parts.scheme in ("wss", "https"):
        return True
    try:
        host = parts.hostname or ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_client_id(value: Any) -> bool:
    return _is_int(value) and 0 < value < 2**32


def _client_id(err: _Errors, value: Any, path: str) -> Any:
    """A Finery client id (uint32, > 0), kept as decimal text like every account id."""
    if _is_client_id(value):
        return str(value)
    return err.expected(path, "a Finery client id (a positive integer)", value)


def _uuid(err: _Errors, value: Any, path: str) -> Any:
    if isinstance(value, str) and _UUID_RE.fullmatch(value):
        return value.lower()
    return err.expected(path, "an account UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", value)


def _parse_venue(err: _Errors, name: str, data: Any, base: Path) -> VenueConfig:
    path = _key("venues", name)
    table = _Table(err, data, path, _VENUE_KEYS)
    kind = table.get("kind", _choice(tuple(VENUE_DEFAULT_URLS)), "qfex")
    simulator = table.get("simulator", _bool, False)
    defaults = VENUE_DEFAULT_URLS.get(kind, {}) if kind is not _INVALID else {}
    urls = {
        # Every kind has a default for every URL; with an invalid kind (already reported)
        # an absent URL is simply unknown.
        key: table.get(key, _url(schemes), defaults.get(key))
        for key, schemes in (
            ("trade_url", ("ws", "wss")),
            ("mds_url", ("ws", "wss")),
            ("rest_url", ("http", "https")),
        )
    }
    if simulator is not True:
        for key, url in urls.items():
            if isinstance(url, str) and not _secure_or_loopback(url):
                err.add(
                    _key(path, key),
                    f"expected a {url.split(':', 1)[0]}s:// URL (TLS) for a"
                    f" real venue, got {_show(url)}; plain ws:// and http:// are only allowed"
                    " for loopback hosts (127.0.0.1, ::1, localhost)",
                )
    finery = kind == "finery"
    if finery and table.has("mds_url"):
        err.add(
            _key(path, "mds_url"),
            'not used by kind "finery" (one WebSocket, trade_url, carries market data too)',
        )
    if finery:
        urls["mds_url"] = urls["trade_url"]
    account = _client_id if finery else _uuid
    user_id = table.get(
        "user_id",
        account,
        what=(
            "the Finery client id of the API key (a positive integer)"
            if finery
            else "the primary account UUID, which is the user id"
        ),
    )
    allow_inline = simulator is True
    hint = " unless simulator = true"
    credential = _secret_ref(base, allow_inline=allow_inline, inline_hint=hint)
    public_key = table.get("public_key", _secret_ref(base, allow_inline=True), None)
    secret = table.get("secret", credential, None)
    jwt = table.get("jwt", credential, None)
    if table.valid:
        present = {k for k in ("public_key", "secret", "jwt") if k in table.data}
        if finery and "jwt" in present:
            err.add(
                _key(path, "jwt"),
                'not available for kind "finery" (use public_key = the EFX key, and secret)',
            )
        elif "jwt" in present and present & {"public_key", "secret"}:
            err.add(_key(path, "jwt"), "expected either jwt or public_key/secret, not both")
        elif present == {"public_key"}:
            err.missing(_key(path, "secret"), 'the API secret, e.g. {env = "QFEX_SECRET"}')
        elif present == {"secret"}:
            err.missing(_key(path, "public_key"), "the API public key")
        elif not present:
            err.add(path, "missing credentials (expected public_key and secret, or jwt)")
    accounts = _parse_accounts(err, table, user_id, account)
    session = _parse_session(err, table.data.get("session", {}), _key(path, "session"))
    sim: Mapping[str, Any] = MappingProxyType({})
    if table.has("sim"):
        if simulator is False:
            err.add(_key(path, "sim"), "only allowed when simulator = true")
        else:
            sim = _parse_sim(
                err,
                table.data["sim"],
                _key(path, "sim"),
                accounts,
                FINERY_SIM_KEYS if finery else _SIM_KEYS,
            )
    return VenueConfig(
        name,
        kind,
        simulator,
        urls["trade_url"],
        urls["mds_url"],
        urls["rest_url"],
        user_id,
        public_key,
        secret,
        jwt,
        MappingProxyType(accounts),
        session,
        sim,
    )


def _check_shared_accounts(err: _Errors, venues: Mapping[str, VenueConfig]) -> None:
    """Two real venue tables of one kind must not declare the same account id.

    Each table gets its own transfer service, which reconciles a transfer in doubt from balances
    alone: the other table's transfers on a shared account look like evidence, and one process
    duplicates a transfer. The check is by account id alone, whatever the ``user_id``: QFEX
    subaccount ids are UUIDs unique across users (``primary`` is the user id itself), and a
    mistyped ``user_id`` must not hide the overlap. Tables with disjoint accounts are fine (a
    transfer only moves between the accounts of one table). A ``simulator = true`` table runs
    its own exchange under its own journal owner (``VenueConfig.owner``): it shares nothing.
    """
    owners: dict[tuple[str, str], str] = {}
    for name, venue in venues.items():
        if venue.simulator is not False or venue.kind is _INVALID:
            continue
        for alias, account in venue.accounts.items():
            if account is _INVALID:
                continue
            path = _key(_key(_key("venues", name), "accounts"), alias)
            first = owners.setdefault((venue.kind, account), path)
            if first != path:
                err.add(
                    path,
                    f"expected an account no other venue table declares, got account "
                    f"{account}, also declared as {first} (whatever each table's user_id):"
                    " two tables would each move and reconcile money on it and can repeat"
                    " a transfer; declare each account in one table only",
                )


def _parse_accounts(
    err: _Errors,
    venue: _Table,
    user_id: Any,
    account_id: Callable[[_Errors, Any, str], Any] = _uuid,
) -> dict[str, Any]:
    """alias -> account id (or _INVALID when the value was bad: the alias still counts as
    declared). ``account_id`` converts one id (a UUID, or a Finery client id)."""
    path = _key(venue.path, "accounts")
    data = venue.data.get("accounts", {})
    what = "account UUID" if account_id is _uuid else "client id"
    if not isinstance(data, dict):
        err.expected(path, f'a table of alias = {what} or "primary"', data)
        return {}
    accounts: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for alias, value in data.items():
        alias_path = _key(path, alias)
        if _name(err, alias, alias_path) is _INVALID:
            continue
        if value == "primary":
            account = user_id
        elif account_id is _uuid and isinstance(value, str) and _UUID_RE.fullmatch(value):
            account = value.lower()
        elif account_id is _client_id and _is_client_id(value):
            account = str(value)
        else:
            shown = "an account UUID" if account_id is _uuid else "a Finery client id (integer)"
            account = err.expected(alias_path, f'{shown} or "primary"', value)
        if account is not _INVALID:
            if account in owner:
                account = err.add(
                    alias_path,
                    f"expected a unique account, got {_show(value)}"
                    f" (same account as alias {owner[account]})",
                )
            else:
                owner[account] = alias
        accounts[alias] = account
    return accounts


def _parse_session(err: _Errors, data: Any, path: str) -> SessionSettings:
    table = _Table(err, data, path, _SESSION_KEYS)
    defaults = SessionSettings()
    values: dict[str, Any] = {}
    for key in _SESSION_KEYS:
        convert = _positive_int if key == "max_auth_failures" else _positive_duration
        values[key] = table.get(key, convert, getattr(defaults, key))
    initial, maximum = values["backoff_initial"], values["backoff_max"]
    if _INVALID not in (initial, maximum) and maximum < initial:
        err.add(
            _key(path, "backoff_max"),
            f"expected at least backoff_initial ({initial:g}), got {maximum:g}",
        )
    return SessionSettings(**values)


def _parse_sim(
    err: _Errors,
    data: Any,
    path: str,
    accounts: Mapping[str, Any],
    allowed: tuple[str, ...] = _SIM_KEYS,
) -> Mapping[str, Any]:
    table = _Table(err, data, path, allowed)
    sim: dict[str, Any] = {}
    if table.has("pulse_interval"):
        sim["pulse_interval"] = table.get("pulse_interval", _positive_duration)
    if table.has("seed"):
        sim["seed"] = table.get("seed", _int)
    if "deposits" in allowed and table.has("deposits"):
        deposits_path = _key(path, "deposits")
        raw = table.data["deposits"]
        if isinstance(raw, dict):
            deposits = {}
            for alias, amount in raw.items():
                amount_path = _key(deposits_path, alias)
                if alias not in accounts:
                    err.add(amount_path, _unknown_alias(alias, accounts))
                    continue
                deposits[alias] = _non_negative_number(err, amount, amount_path)
            sim["deposits"] = MappingProxyType(deposits)
        else:
            err.expected(deposits_path, "a table of alias = amount", raw)
    if "symbols" in allowed and table.has("symbols"):
        symbols = table.data["symbols"]
        if isinstance(symbols, dict):
            sim["symbols"] = symbols
        else:
            err.expected(_key(path, "symbols"), "a table", symbols)
    return MappingProxyType(sim)


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


def _parse_bots(
    err: _Errors,
    top: _Table,
    venues: Mapping[str, VenueConfig] | None,
    venue_aliases: Mapping[str, tuple[str, ...] | None],
) -> dict[str, BotConfig]:
    return {
        name: _parse_bot(err, name, data, venues, venue_aliases)
        for name, data in _named_tables(err, top, "bots", "bots").items()
    }


def _bot_venue(
    err: _Errors,
    table: _Table,
    venues: Mapping[str, VenueConfig] | None,
    aliases: Mapping[str, tuple[str, ...] | None],
) -> tuple[Any, Collection[str] | None]:
    """The bot's venue name and that venue's aliases (None when they cannot be known)."""
    venue = table.get("venue", _name, what="the name of a [venues.NAME] table")
    if venue is _INVALID or venues is None:
        return venue, None
    if venue not in venues:
        close = difflib.get_close_matches(venue, list(venues), n=1, cutoff=0.6)
        hint = (
            f'did you mean "{close[0]}"?'
            if close
            else ("declared: " + ", ".join(venues) if venues else "no venues are declared")
        )
        err.add(
            _key(table.path, "venue"),
            f"expected the name of a [venues.NAME] table, got {_show(venue)} ({hint})",
        )
        return _INVALID, None
    return venue, aliases[venue]


def _parse_bot(
    err: _Errors,
    name: str,
    data: Any,
    venues: Mapping[str, VenueConfig] | None,
    venue_aliases: Mapping[str, tuple[str, ...] | None],
) -> BotConfig:
    path = _key("bots", name)
    table = _Table(err, data, path, _BOT_KEYS)
    venue, aliases = _bot_venue(err, table, venues, venue_aliases)
    accounts = table.get(
        "accounts",
        _list(_alias_in(aliases), "account aliases", non_empty=True),
        what="an array of account aliases of the bot's venue",
    )
    channels = table.get(
        "channels", _list(_choice(PRIVATE_CHANNELS), "channel names"), DEFAULT_PRIVATE_CHANNELS
    )
    market_data = MarketData()
    if table.has("market_data"):
        market_data = _parse_market_data(err, table.data["market_data"], _key(path, "market_data"))
    dry_run = table.get("dry_run", _bool, False)
    limits = _parse_limits(
        err, table.data.get("limits", {}), _key(path, "limits"), accounts, aliases
    )
    plugins = _parse_plugins(err, table, _key(path, "plugins"))
    if venues is not None and venue in venues and venues[venue].kind == "finery":
        _check_finery_bot(err, table, channels, market_data)
    return BotConfig(name, venue, accounts, channels, market_data, dry_run, limits, plugins)


def _check_finery_bot(err: _Errors, table: _Table, channels: Any, market_data: MarketData) -> None:
    """Channels that exist on QFEX but not on Finery are errors for a finery bot."""
    checks = [("channels", channels, FINERY_PRIVATE_CHANNELS)]
    md_channels = market_data.channels
    if isinstance(md_channels, tuple) and table.has("market_data"):
        checks.append(("market_data.channels", md_channels, FINERY_MARKET_DATA_CHANNELS))
    for key, values, supported in checks:
        if not isinstance(values, tuple) or not table.has(key.split(".")[0]):
            continue
        for index, value in enumerate(values):
            if value is not _INVALID and value not in supported:
                err.add(
                    f"{table.path}.{key}[{index}]",
                    f'{_show(value)} is not available on a kind = "finery" venue'
                    f" (supported: {', '.join(_show(c) for c in supported)})",
                )


def _parse_market_data(err: _Errors, data: Any, path: str) -> MarketData:
    table = _Table(err, data, path, _MARKET_DATA_KEYS)
    channel_list = _list(_choice(MARKET_DATA_CHANNELS), "channel names", non_empty=True)
    channels = table.get("channels", channel_list, what="an array of market-data channel names")
    symbols = table.get(
        "symbols",
        _list(_str, "symbols", non_empty=True),
        what='an array of symbols, e.g. ["AAPL-USD"]',
    )
    return MarketData(channels, symbols)


def _pair(aliases: Collection[str] | None) -> Callable[[_Errors, Any, str], Any]:
    alias = _alias_in(aliases)

    def check(err: _Errors, value: Any, path: str) -> Any:
        if not isinstance(value, list) or len(value) != 2:
            return err.expected(path, "a pair of account aliases [source, destination]", value)
        src, dst = alias(err, value[0], f"{path}[0]"), alias(err, value[1], f"{path}[1]")
        if _INVALID in (src, dst):
            return _INVALID
        if src == dst:
            return err.expected(path, "two different accounts", value)
        return frozenset((src, dst))

    return check


def _parse_limits(
    err: _Errors, data: Any, path: str, accounts: Any, aliases: Collection[str] | None
) -> Limits:
    table = _Table(err, data, path, _LIMIT_KEYS)
    defaults = Limits()
    max_transfer = table.get("max_transfer", _positive_number, defaults.max_transfer)
    max_daily = table.get("max_daily", _positive_number, defaults.max_daily)
    if _INVALID not in (max_transfer, max_daily) and max_transfer > max_daily:
        err.add(
            _key(path, "max_transfer"),
            f"expected at most max_daily ({max_daily}), got {max_transfer}",
        )
    if table.has("allowed_pairs"):
        pairs = table.get("allowed_pairs", _list(_pair(aliases), "account alias pairs"))
        allowed = (
            _INVALID
            if pairs is _INVALID
            else frozenset((a, b) for pair in pairs for a in pair for b in pair if a != b)
        )
    elif accounts is _INVALID:
        allowed = _INVALID
    else:
        allowed = frozenset((a, b) for a in accounts for b in accounts if a != b)
    return Limits(
        max_transfer=max_transfer,
        max_daily=max_daily,
        allowed_pairs=allowed,
        min_interval=table.get("min_interval", _duration, defaults.min_interval),
        min_remaining=table.get("min_remaining", _non_negative_number, defaults.min_remaining),
    )


def _parse_plugins(err: _Errors, bot: _Table, path: str) -> tuple[PluginConfig, ...]:
    if "plugins" not in bot.data:
        if bot.valid:
            err.missing(path, "at least one [bots.NAME.plugins.INSTANCE] table")
        return ()
    data = bot.data["plugins"]
    if not isinstance(data, dict):
        err.expected(path, "a table of plugin instances", data)
        return ()
    if not data:
        err.add(path, "expected at least one plugin instance table, got an empty table")
    plugins = []
    for name, options in data.items():
        plugin_path = _key(path, name)
        if _name(err, name, plugin_path) is _INVALID:
            continue
        if not isinstance(options, dict):
            err.expected(plugin_path, "a table of plugin settings", options)
            continue
        table = _Table(
            err,
            {k: v for k, v in options.items() if k in _PLUGIN_RESERVED},
            plugin_path,
            _PLUGIN_RESERVED,
        )
        plugins.append(
            PluginConfig(
                name=name,
                use=table.get("use", _plugin_use, name),
                enabled=table.get("enabled", _bool, True),
                failure_limit=table.get("failure_limit", _positive_int, 5),
                inbox_size=table.get("inbox_size", _positive_int, 1000),
                options=MappingProxyType(
                    {k: v for k, v in options.items() if k not in _PLUGIN_RESERVED}
                ),
                path=plugin_path,
            )
        )
    return tuple(plugins)


def _plugin_use(err: _Errors, value: Any, path: str) -> Any:
    if isinstance(value, str) and _PLUGIN_USE_RE.fullmatch(value):
        return value
    return err.expected(path, 'a plugin name, module or "module:attribute"', value)


# ---------------------------------------------------------------------------------------------
# Plugin configuration schemas


class _Required:
    """Default of a ``Field`` that must be given."""

    _instance: _Required | None = None

    def __new__(cls) -> Self:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

_FIELD_KINDS: dict[str, tuple[str, Callable[[_Errors, Any, str], Any]]] = {
    "str": ("a string", _str),
    "bool": ("a boolean", _bool),
    "int": ("an integer", _int),
    "positive_int": ("a positive integer", _positive_int),
    "number": ("a number", _number),
    "positive_number": ("a positive number", _positive_number),
    "non_negative_number": ("a non-negative number", _non_negative_number),
    "duration": ("a duration >= 0", _duration),
    "str_list": ("an array of strings", _list(_str, "strings")),
}


@dataclass(frozen=True)
class Field:
    """One key of a plugin's ``config_schema``.

    ``kind`` is one of "str", "bool", "int", "positive_int", "number", "positive_number",
    "non_negative_number" (numbers become ``Decimal``), "duration" (float seconds >= 0, or a string
    like "90s"), "account" (an alias of the bot's venue), "accounts" (array of aliases),
    "str_list", or ``("choice", (value, ...))``. ``default`` is ``REQUIRED`` for a key that must be
    given; a ``None`` default means optional with no value.

    ``moves_money`` (only on "account"/"accounts" fields) declares the accounts this plugin moves
    money on, so two plugins cannot fight over them (see ``money_mover_conflicts``):
    ``"own"``: only this plugin instance may move money on them; when the field is left unset
    (``None``), the plugin owns the bot's accounts except its ``"shared"`` ones. ``"shared"``: a
    counterparty, e.g. a treasury, that several plugins may move money from and to, as long as
    it is no plugin's own account.
    """

    kind: str | tuple[str, tuple[Any, ...]]
    default: Any = REQUIRED
    doc: str = ""
    moves_money: Literal["own", "shared"] | None = None


def _field_checker(kind: Any, accounts: Collection[str]) -> tuple[str, Callable[..., Any]] | None:
    if isinstance(kind, str) and kind in _FIELD_KINDS:
        return _FIELD_KINDS[kind]
    if kind == "account":
        return "an account alias", _alias_in(accounts)
    if kind == "accounts":
        return "an array of account aliases", _list(_alias_in(accounts), "account aliases")
    if (
        isinstance(kind, tuple)
        and len(kind) == 2
        and kind[0] == "choice"
        and isinstance(kind[1], tuple)
        and kind[1]
    ):
        return "one of " + ", ".join(_show(c) for c in kind[1]), _choice(kind[1])
    return None


def validate_plugin_config(
    schema: Mapping[str, Field],
    options: Mapping[str, Any],
    path: str,
    accounts: Collection[str] = (),
) -> tuple[MappingProxyType[str, Any], list[str]]:
    """Check a plugin instance's options against its ``config_schema`` and apply defaults.

    Args:
        schema: key -> ``Field``, as the plugin declares it.
        options: ``PluginConfig.options``.
        path: the plugin table's key path (``PluginConfig.path``), prefixed to every error.
        accounts: the aliases of the bot's venue, for "account"/"accounts" fields.
    Returns:
        (values, errors): validated values (defaults applied, numbers as Decimal) and one error
        line per problem; the values are only meaningful when ``errors`` is empty. A broken
        schema (unknown kind, invalid default) is reported as an error too, never raised.
    """
    err = _Errors()
    values: dict[str, Any] = {}
    if not isinstance(schema, Mapping):
        err.add(
            path,
            "plugin schema error: config_schema must be a dict of Field,"
            f" got {type(schema).__name__}",
        )
        return MappingProxyType(values), err.items
    accounts = tuple(accounts)
    err.unknown_keys(options, path, [k for k in schema if isinstance(k, str)])
    for key, spec in schema.items():
        key_path = _key(path, str(key))
        checker = _field_checker(spec.kind, accounts) if isinstance(spec, Field) else None
        if checker is None:
            kind = getattr(spec, "kind", spec)
            err.add(key_path, f"plugin schema error: unknown field kind {kind!r}")
            continue
        what, check = checker
        if spec.moves_money is not None and (
            spec.moves_money not in _MONEY_ROLES or spec.kind not in ("account", "accounts")
        ):
            err.add(
                key_path,
                f"plugin schema error: moves_money={spec.moves_money!r} needs "
                'an "account" or "accounts" field and "own" or "shared"',
            )
            continue
        if key in options:
            values[key] = check(err, options[key], key_path)
        elif spec.default is REQUIRED:
            err.missing(key_path, what)
        elif spec.default is None:
            values[key] = None
        else:
            probe = _Errors()
            values[key] = check(probe, spec.default, key_path)
            if probe.items:
                err.add(key_path, f"plugin schema error: default {spec.default!r} is not {what}")
    return MappingProxyType(values), err.items


_MONEY_ROLES = ("own", "shared")


@dataclass(frozen=True)
class _MoneyClaim:
    """One account a plugin instance moves money on, as its schema declares it."""

    plugin: str  # the plugin table's key path
    path: str  # the key path that names the account
    role: str  # "own" or "shared"


def money_mover_conflicts(
    app: AppConfig,
    plugins: Mapping[str, Iterable[tuple[str, Mapping[str, Any] | None, Mapping[str, Any]]]],
) -> list[str]:
    """Two plugin instances that would move money on one account (one line each, key paths).

    Two rebalancers on overlapping desks fight each other up to ``max_daily``; so do any two
    plugins whose ``moves_money`` fields overlap, unless both only share the account (a
    treasury funding disjoint desks). Bots that run dry move nothing and are left out.

    Args:
      app: the configuration.
      plugins: bot name -> ``(plugin instance name, config_schema, validated values)`` of each
        loaded plugin instance (see ``validate_plugin_config``).
    """
    claims: dict[tuple[str, str], list[_MoneyClaim]] = {}
    names: dict[tuple[str, str], str] = {}
    for bot_name, loaded in plugins.items():
        bot = app.bots[bot_name]
        if app.effective_dry_run(bot_name):
            continue
        venue = app.venues[bot.venue]
        where = venue.name if venue.simulator else f"{venue.kind}:{venue.user_id}"
        paths = {pc.name: pc.path for pc in bot.plugins}
        for plugin_name, schema, values in loaded:
            plugin_path = paths.get(plugin_name, _key(_key("bots", bot_name), plugin_name))
            for account, path, role in _claims_of(bot, venue, plugin_path, schema, values):
                claims.setdefault((where, account), []).append(_MoneyClaim(plugin_path, path, role))
                names.setdefault(
                    (where, account),
                    next((a for a, i in venue.accounts.items() if i == account), account),
                )
    errors: list[str] = []
    for key, found in claims.items():
        for i, first in enumerate(found):
            for second in found[i + 1 :]:
                if first.plugin == second.plugin or first.role == second.role == "shared":
                    continue
                errors.append(
                    f"{second.path}: account {names[key]} ({key[1]}) is also moved by "
                    f"{first.plugin} ({first.path}, {first.role}) and this plugin "
                    f"({second.role}): two plugins moving money on one account fight each other "
                    "up to max_daily; give each its own accounts (only a treasury may be shared)"
                )
    return errors


def _claims_of(
    bot: BotConfig,
    venue: VenueConfig,
    plugin_path: str,
    schema: Mapping[str, Any] | None,
    values: Mapping[str, Any],
) -> list[tuple[str, str, str]]:
    """``(account id, key path, role)`` for every account the plugin's schema declares."""
    fields = [
        (k, f)
        for k, f in (schema or {}).items()
        if isinstance(f, Field) and f.moves_money in _MONEY_ROLES
    ]
    out: list[tuple[str, str, str]] = []
    default_own = False
    for key, spec in fields:
        value = values.get(key)
        if value is None:
            default_own = default_own or spec.moves_money == "own"
            continue
        aliases = (value,) if isinstance(value, str) else tuple(value)
        for index, alias in enumerate(aliases):
            path = _key(plugin_path, key) + ("" if isinstance(value, str) else f"[{index}]")
            if alias in venue.accounts:
                out.append((venue.accounts[alias], path, spec.moves_money))
    if default_own:
        shared = {account for account, _, role in out if role == "shared"}
        for index, alias in enumerate(bot.accounts):
            account = venue.accounts.get(alias)
            if account is not None and account not in shared:
                out.append((account, f"{_key('bots', bot.name)}.accounts[{index}]", "own"))
    return out
