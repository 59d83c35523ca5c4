"""bots.toml -> ``AppConfig``: read the file, walk the whole document, report every problem.

``load_config(path)`` reads the file with tomli and hands the table to ``parse_config``, which
collects *all* problems before raising one ``ConfigError``, each a line naming the key path,
mostly ``<path>: expected <what>, got <value>``. A ``[venues.X]`` table is read with the rules
of its kind, which the venue's own package provides (``qfexbot.venues.registry.config_rules``).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import tomli

from qfexbot.config.model import (
    DEFAULT_PRIVATE_CHANNELS,
    LOG_FORMATS,
    LOG_LEVELS,
    RECORD_MAX_BYTES,
    AppConfig,
    BotConfig,
    Limits,
    MarketData,
    PluginConfig,
    PostgresJournalConfig,
    RecordSettings,
    RuntimeConfig,
    SessionSettings,
    VenueConfig,
)
from qfexbot.config.secretref import secret_ref
from qfexbot.config.validate import (
    _INVALID,
    PRIVATE_CHANNELS,
    ConfigError,
    VenueRules,
    _alias_in,
    _bool,
    _choice,
    _duration,
    _Errors,
    _int,
    _key,
    _list,
    _name,
    _non_negative_number,
    _path,
    _positive_duration,
    _positive_int,
    _positive_number,
    _show,
    _str,
    _Table,
    _unknown_alias,
    _url,
    is_int,
)
from qfexbot.venues import registry

__all__ = ["load_config", "parse_config"]

_PLUGIN_USE_RE = re.compile(
    r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_]*)*(:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*)?"
)
_TOP_KEYS = ("runtime", "venues", "bots")
_RUNTIME_KEYS = (
    "journal",
    "log_level",
    "log_format",
    "plugin_dirs",
    "kill_switch_file",
    "kill_switch_cancels_orders",
    "dry_run",
    "record",
    "ops_listen",
    "state_dir",
    "journal_password",
    "ops_token",
    "ops_tls_cert",
    "ops_tls_key",
    "ops_remote_without_tls",
)
_PG_SCHEMES = ("postgresql", "postgres")
_RECORD_KEYS = ("dir", "max_bytes")
DEFAULT_OPS_LISTEN = ("127.0.0.1", 0)
"""The ops endpoint by default: loopback, on a port picked at start (``qfexbot status`` finds it
through the state file beside the journal)."""
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
_CREDENTIAL_KEYS = ("public_key", "secret", "jwt")
_INLINE_HINT = " unless simulator = true"
_BOT_KEYS = ("venue", "accounts", "channels", "market_data", "dry_run", "limits", "plugins")
_MARKET_DATA_KEYS = ("channels", "symbols", "candle_intervals")
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
        partial = _valid_part(err.items, file, base, runtime, venues, bots)
        raise ConfigError(err.items, file, partial=partial)
    assert venues is not None  # a missing [venues] is an error
    return AppConfig(file, base, runtime, MappingProxyType(venues), MappingProxyType(bots))


def _valid_part(
    errors: list[str],
    file: Path | None,
    base: Path,
    runtime: RuntimeConfig,
    venues: dict[str, VenueConfig] | None,
    bots: dict[str, Any],
) -> AppConfig | None:
    """The bots with no problem of their own, of their venue or of ``[runtime]`` (so their
    plugins can still be loaded and checked), as an ``AppConfig``; None if there is none."""

    def clean(prefix: str) -> bool:
        return not any(e == prefix or e.startswith((f"{prefix}.", f"{prefix}:")) for e in errors)

    if venues is None or not clean("runtime") or not clean("(top level)"):
        return None
    good = {
        name: bot
        for name, bot in bots.items()
        if isinstance(bot, BotConfig)
        and bot.venue in venues
        and clean(f"bots.{name}")
        and clean(f"venues.{bot.venue}")
    }
    if not good:
        return None
    used = {bot.venue for bot in good.values()}
    return AppConfig(
        file,
        base,
        runtime,
        MappingProxyType({name: venues[name] for name in used}),
        MappingProxyType(good),
    )


def _parse_runtime(err: _Errors, data: Any, base: Path) -> RuntimeConfig:
    table = _Table(err, data, "runtime", _RUNTIME_KEYS)
    as_path = _path(base)
    postgres = table.get("journal", _postgres_dsn, None)
    password = table.get("journal_password", secret_ref(base, allow_inline=False), None)
    if password is not None and not isinstance(postgres, PostgresJournalConfig):
        err.add("runtime.journal_password", "only a PostgreSQL journal takes a password")
    if isinstance(postgres, PostgresJournalConfig):
        postgres = dataclasses.replace(postgres, password=password)
        journal = base / "var" / "journal.postgresql"
    else:
        postgres = None
        journal = table.get("journal", as_path, base / "var" / "journal.sqlite")
    config = RuntimeConfig(
        journal=journal,
        postgres=postgres,
        log_level=table.get("log_level", _choice(LOG_LEVELS), "info"),
        log_format=table.get("log_format", _choice(LOG_FORMATS), "text"),
        plugin_dirs=table.get("plugin_dirs", _list(as_path, "paths"), (base / "plugins",)),
        kill_switch_file=table.get("kill_switch_file", as_path, base / "var" / "PAUSED"),
        dry_run=table.get("dry_run", _bool, False),
        record=table.get("record", _record(base), None),
        ops_listen=table.get("ops_listen", _ops_address, DEFAULT_OPS_LISTEN),
        state_dir=table.get("state_dir", as_path, None),
        kill_switch_cancels_orders=table.get("kill_switch_cancels_orders", _bool, False),
        ops_token=table.get("ops_token", secret_ref(base, allow_inline=False), None),
        ops_tls=_ops_tls(err, table, as_path),
        ops_remote_without_tls=table.get("ops_remote_without_tls", _bool, False),
    )
    _check_ops_exposure(err, config)
    return config


def _ops_tls(err: _Errors, table: _Table, as_path: Any) -> tuple[Path, Path] | None:
    """``ops_tls_cert`` and ``ops_tls_key``: both or neither."""
    cert = table.get("ops_tls_cert", as_path, None)
    key = table.get("ops_tls_key", as_path, None)
    if (cert is None) != (key is None):
        err.add("runtime.ops_tls_cert", "ops_tls_cert and ops_tls_key go together: set both")
        return None
    return None if cert is None or key is None else (cert, key)


def _check_ops_exposure(err: _Errors, config: RuntimeConfig) -> None:
    """Beyond loopback the control API needs ``ops_token`` and TLS, or the explicit override."""
    listen = config.ops_listen
    if not isinstance(listen, tuple) or _is_loopback(listen[0]) or config.ops_remote_without_tls:
        return
    missing = [
        key
        for key, absent in (
            ("ops_token", config.ops_token is None),
            ("ops_tls_cert/ops_tls_key", config.ops_tls is None),
        )
        if absent
    ]
    if missing:
        err.add(
            "runtime.ops_listen",
            f"listening on {_show(listen[0])} (not loopback) exposes the dashboard "
            f"and control API: set {' and '.join(missing)} in [runtime], or set "
            "ops_remote_without_tls = true if a proxy in front authenticates and encrypts",
        )


def _postgres_dsn(err: _Errors, value: Any, path: str) -> Any:
    """A ``postgresql://`` DSN as a ``PostgresJournalConfig`` (anything else: None, a path). The
    password may not be in it (it would sit in every repr): ``journal_password`` holds it."""
    if not isinstance(value, str) or value.split("://", 1)[0] not in _PG_SCHEMES:
        return None
    try:
        parts = urlsplit(value)
        has_password = parts.password is not None or "password=" in parts.query
        ok = bool(parts.hostname) and not has_password and bool(parts.path.strip("/"))
        _ = parts.port
    except ValueError:
        ok, has_password = False, False
    if has_password:
        return err.add(path, 'the DSN must not hold the password: set journal_password = '
                       '{env = "NAME"} or {file = "path"} (or PGPASSWORD / ~/.pgpass)')  # fmt: skip
    if not ok:
        return err.add(path, "expected postgresql://user@host:port/database")
    return PostgresJournalConfig(value)


def _record(base: Path) -> Callable[[_Errors, Any, str], Any]:
    """``record = {dir = "...", max_bytes = N}`` (``max_bytes`` optional, at least 4096)."""

    def check(err: _Errors, value: Any, path: str) -> Any:
        table = _Table(err, value, path, _RECORD_KEYS)
        if not table.valid:
            return _INVALID
        directory = table.get("dir", _path(base), what="a directory path")
        max_bytes = table.get("max_bytes", _int, RECORD_MAX_BYTES)
        if is_int(max_bytes) and max_bytes < 4096:
            err.expected(_key(path, "max_bytes"), "an integer of at least 4096", max_bytes)
        return RecordSettings(directory, max_bytes)

    return check


def _is_loopback(host: str) -> bool:
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


def _ops_address(err: _Errors, value: Any, path: str) -> Any:
    """``"127.0.0.1:9187"`` (or ``"[::1]:9187"``, ``"0.0.0.0:9187"``) as ``(host, port)``;
    ``false``: no ops endpoint. Beyond loopback see ``_check_ops_exposure``."""
    if value is False:
        return None
    match = re.fullmatch(r"\[?([^\[\]]+?)\]?:(\d{1,5})", value) if isinstance(value, str) else None
    if match is None or int(match.group(2)) > 65535:
        return err.expected(path, 'a "host:port" address such as "127.0.0.1:9187", or false', value)
    return match.group(1), int(match.group(2))


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


def _venue_rules(err: _Errors, table: _Table) -> tuple[Any, VenueRules, bool]:
    """The table's ``kind``, its venue's rules, and whether the kind is known. With an unknown
    kind (already reported) the default kind's rules check the rest of the table."""
    kind = table.get("kind", _choice(registry.kinds()), registry.DEFAULT_KIND)
    if kind is _INVALID:
        return kind, registry.config_rules(registry.DEFAULT_KIND), False
    try:
        return kind, registry.config_rules(kind), True
    except (ImportError, AttributeError) as exc:
        err.add(_key(table.path, "kind"), f"venue kind {_show(kind)} cannot be loaded ({exc})")
        return _INVALID, registry.config_rules(registry.DEFAULT_KIND), False


def _venue_urls(
    err: _Errors, table: _Table, rules: VenueRules, known: bool, simulator: Any
) -> dict[str, Any]:
    """trade_url, mds_url and rest_url: given, or the kind's defaults; TLS unless on loopback."""
    # Every kind has a default for every URL; with an invalid kind (already reported) an
    # absent URL is simply unknown.
    defaults = rules.default_urls if known else {}
    urls = {
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
                    _key(table.path, key),
                    f"expected a {url.split(':', 1)[0]}s:// URL (TLS) for a"
                    f" real venue, got {_show(url)}; plain ws:// and http:// are only allowed"
                    " for loopback hosts (127.0.0.1, ::1, localhost)",
                )
    if rules.single_socket:
        if table.has("mds_url"):
            err.add(
                _key(table.path, "mds_url"),
                f'not used by kind "{rules.kind}" (one WebSocket, trade_url, carries market'
                " data too)",
            )
        urls["mds_url"] = urls["trade_url"]
    return urls


def _account_id(rules: VenueRules, what: str) -> Callable[[_Errors, Any, str], Any]:
    """One account id in the venue's form; a bad one is reported as expected ``what``."""

    def check(err: _Errors, value: Any, path: str) -> Any:
        account = rules.account_id(value)
        return account if account is not None else err.expected(path, what, value)

    return check


def _check_credentials(err: _Errors, table: _Table, rules: VenueRules) -> None:
    """Either public_key and secret, or jwt, of the forms the venue takes."""
    path = table.path
    present = {k for k in _CREDENTIAL_KEYS if k in table.data}
    unavailable = [k for k in _CREDENTIAL_KEYS if k in present and k not in rules.credentials]
    if unavailable:
        for key in unavailable:
            err.add(
                _key(path, key), f'not available for kind "{rules.kind}" ({rules.credential_hint})'
            )
    elif "jwt" in present and present & {"public_key", "secret"}:
        err.add(_key(path, "jwt"), "expected either jwt or public_key/secret, not both")
    elif present == {"public_key"}:
        err.missing(_key(path, "secret"), 'the API secret, e.g. {env = "QFEX_SECRET"}')
    elif present == {"secret"}:
        err.missing(_key(path, "public_key"), "the API public key")
    elif not present:
        err.add(path, "missing credentials (expected public_key and secret, or jwt)")


def _kinds_with_flag(key: str) -> list[str]:
    """The kinds whose rules have ``key`` among their ``flags``. Only asked for a key no table
    takes, so other kinds' packages are imported only for such a mistake."""
    found = []
    for kind in registry.kinds():
        try:
            if key in getattr(registry.config_rules(kind), "flags", {}):
                found.append(kind)
        except (ImportError, AttributeError):
            continue  # its own tables report it
    return found


def _venue_flags(
    err: _Errors, table: _Table, rules: VenueRules, known: bool, extra: Collection[str]
) -> Mapping[str, bool]:
    """The kind's own boolean keys, as set or defaulted. Of the ``extra`` keys (not a key of
    every venue table): another kind's flag is refused as such, anything else is unknown."""
    own: Mapping[str, bool] = getattr(rules, "flags", {})
    unknown = {}
    for key in extra:
        if key in own:
            continue
        kinds = _kinds_with_flag(key) if known else []
        if kinds:
            shown = ", ".join(f'"{k}"' for k in kinds)
            err.add(
                _key(table.path, key),
                f'not available for kind "{rules.kind}" (a setting of kind {shown} venues'
                " only; remove it)",
            )
        else:
            unknown[key] = table.data[key]
    err.unknown_keys(unknown, table.path, (*_VENUE_KEYS, *own))
    return MappingProxyType({key: table.get(key, _bool, default) for key, default in own.items()})


def _parse_venue(err: _Errors, name: str, data: Any, base: Path) -> VenueConfig:
    path = _key("venues", name)
    # Keys beyond every table's depend on the kind: reported once it is known (_venue_flags).
    extra = [k for k in data if k not in _VENUE_KEYS] if isinstance(data, dict) else []
    table = _Table(err, data, path, (*_VENUE_KEYS, *extra))
    kind, rules, known = _venue_rules(err, table)
    flags = _venue_flags(err, table, rules, known, extra)
    simulator = table.get("simulator", _bool, False)
    urls = _venue_urls(err, table, rules, known, simulator)
    user_id = table.get(
        "user_id", _account_id(rules, rules.user_id_expected), what=rules.user_id_missing
    )
    credential = secret_ref(base, allow_inline=simulator is True, inline_hint=_INLINE_HINT)
    public_key = table.get("public_key", secret_ref(base, allow_inline=True), None)
    secret = table.get("secret", credential, None)
    jwt = table.get("jwt", credential, None)
    if table.valid:
        _check_credentials(err, table, rules)
    accounts = _parse_accounts(err, table, user_id, rules)
    session = _parse_session(err, table.data.get("session", {}), _key(path, "session"))
    sim: Mapping[str, Any] = MappingProxyType({})
    if table.has("sim"):
        if simulator is False:
            err.add(_key(path, "sim"), "only allowed when simulator = true")
        else:
            sim = _parse_sim(err, table.data["sim"], _key(path, "sim"), accounts, rules.sim_keys)
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
        flags,
    )


def _check_shared_accounts(err: _Errors, venues: Mapping[str, VenueConfig]) -> None:
    """Two real venue tables of one kind must not declare the same account id.

    Each table gets its own transfer service, which reconciles a transfer in doubt from balances
    alone: the other table's transfers on a shared account look like evidence, and one process
    duplicates a transfer. The check is by account id alone, whatever the ``user_id``: a
    venue's account ids are unique across its users (``primary`` is the user id itself), and a
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


def _parse_accounts(err: _Errors, venue: _Table, user_id: Any, rules: VenueRules) -> dict[str, Any]:
    """alias -> account id (or _INVALID when the value was bad: the alias still counts as
    declared), each id in the form the venue's rules give it."""
    path = _key(venue.path, "accounts")
    data = venue.data.get("accounts", {})
    if not isinstance(data, dict):
        err.expected(path, f'a table of alias = {rules.account_noun} or "primary"', data)
        return {}
    account_id = _account_id(rules, f'{rules.account_expected} or "primary"')
    accounts: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for alias, value in data.items():
        alias_path = _key(path, alias)
        if _name(err, alias, alias_path) is _INVALID:
            continue
        account = user_id if value == "primary" else account_id(err, value, alias_path)
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


_SIM_KNOBS: dict[str, Callable[[_Errors, Any, str], Any]] = {
    "twap_min_interval": _positive_duration,
    "twap_tick": _positive_duration,
    "funding_interval": _positive_duration,
    "funding_cap": _positive_number,
    "max_open_orders": _positive_int,
}
"""Scalar simulator settings a kind may let bots.toml set (its ``sim_keys``), and their checks:
what a strategy test shortens (TWAP intervals, funding windows) or tightens (limits)."""


def _parse_sim(
    err: _Errors,
    data: Any,
    path: str,
    accounts: Mapping[str, Any],
    allowed: Collection[str],
) -> Mapping[str, Any]:
    """The ``[venues.X.sim]`` keys of ``allowed`` (the kind's), each of a known meaning."""
    table = _Table(err, data, path, allowed)
    sim: dict[str, Any] = {}
    if "pulse_interval" in allowed and table.has("pulse_interval"):
        sim["pulse_interval"] = table.get("pulse_interval", _positive_duration)
    if "seed" in allowed and table.has("seed"):
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
    for key, check in _SIM_KNOBS.items():
        if key in allowed and table.has(key):
            sim[key] = table.get(key, check)
    if "symbols" in allowed and table.has("symbols"):
        symbols = table.data["symbols"]
        if isinstance(symbols, dict):
            sim["symbols"] = symbols
        else:
            err.expected(_key(path, "symbols"), "a table", symbols)
    return MappingProxyType(sim)


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
    if venues is not None and venue in venues and venues[venue].kind is not _INVALID:
        _check_venue_channels(err, table, channels, market_data, venues[venue].kind)
    return BotConfig(name, venue, accounts, channels, market_data, dry_run, limits, plugins)


def _check_venue_channels(
    err: _Errors, table: _Table, channels: Any, market_data: MarketData, kind: str
) -> None:
    """Channels the bot's venue does not have are errors: private ones (they exist on another
    kind), and market-data ones, whose vocabulary is the venue's own (``market_data_channels``).
    A bot whose venue is unknown (already reported) has its market-data names unchecked."""
    rules = registry.config_rules(kind)
    checks = [("channels", channels, tuple(rules.private_channels))]
    md_channels = market_data.channels
    if isinstance(md_channels, tuple) and table.has("market_data"):
        checks.append(("market_data.channels", md_channels, tuple(rules.market_data_channels)))
        # A kind's rules name its candle intervals if it has the candle channel.
        intervals = tuple(getattr(rules, "candle_intervals", ()))
        checks.append(("market_data.candle_intervals", market_data.candle_intervals, intervals))
    for key, values, supported in checks:
        if not isinstance(values, tuple) or not table.has(key.split(".")[0]):
            continue
        for index, value in enumerate(values):
            if value is not _INVALID and value not in supported:
                err.add(
                    f"{table.path}.{key}[{index}]",
                    f'{_show(value)} is not available on a kind = "{kind}" venue'
                    f" (supported: {', '.join(_show(c) for c in supported)})",
                )


def _parse_market_data(err: _Errors, data: Any, path: str) -> MarketData:
    table = _Table(err, data, path, _MARKET_DATA_KEYS)
    # Any names here: which exist is the bot's venue's vocabulary (_check_venue_channels).
    channel_list = _list(_str, "channel names", non_empty=True)
    channels = table.get("channels", channel_list, what="an array of market-data channel names")
    symbols = table.get(
        "symbols",
        _list(_str, "symbols", non_empty=True),
        what='an array of symbols, e.g. ["AAPL-USD"]',
    )
    intervals: Any = ()
    if table.has("candle_intervals"):
        intervals = table.get(
            "candle_intervals",
            _list(_str, "candle intervals", non_empty=True),
            what='an array of candle intervals, e.g. ["1MIN"]',
        )
        if isinstance(channels, tuple) and "candle" not in channels:
            err.add(f"{path}.candle_intervals", 'needs "candle" in market_data.channels')
    return MarketData(channels, symbols, intervals)


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
