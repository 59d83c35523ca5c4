"""Plugin settings schemas (``config_schema: dict[str, Field]``) and the money-mover check.

``validate_plugin_config`` checks a plugin table's options against its schema with the same error
format as bots.toml; ``money_mover_conflicts`` finds two plugins that would move money on one
account.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Self

from qfexbot.config.model import AppConfig, BotConfig, VenueConfig
from qfexbot.config.secretref import secret_ref
from qfexbot.config.validate import (
    _alias_in,
    _bool,
    _choice,
    _duration,
    _Errors,
    _int,
    _key,
    _list,
    _non_negative_number,
    _number,
    _positive_int,
    _positive_number,
    _show,
    _str,
)
from qfexbot.core.accounts import AccountBook

__all__ = ["REQUIRED", "Field", "money_mover_conflicts", "validate_plugin_config"]


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
    "str": ("a non-empty string", _str),
    "bool": ("a boolean", _bool),
    "int": ("an integer", _int),
    "positive_int": ("a positive integer", _positive_int),
    "number": ("a number", _number),
    "positive_number": ("a positive number", _positive_number),
    "non_negative_number": ("a non-negative number", _non_negative_number),
    "duration": ("a duration >= 0", _duration),
    "str_list": ("an array of strings", _list(_str, "strings")),
    # Read late: the plugin calls .resolve() at startup, so `check` needs no secret present;
    # the value read is scrubbed from every qfexbot log line from then on.
    "secret": (
        '{env = "NAME"} or {file = "path"}',
        secret_ref(Path(), allow_inline=False, inline_hint=" for plugin secrets", scrub=True),
    ),
}


@dataclass(frozen=True)
class Field:
    """One key of a plugin's ``config_schema``.

    ``kind`` is one of "str", "bool", "int", "positive_int", "number", "positive_number",
    "non_negative_number" (numbers become ``Decimal``), "duration" (float seconds >= 0, or a string
    like "90s"), "account" (an alias of the bot's venue), "accounts" (array of aliases),
    "str_list", "secret" (``{env = "NAME"}`` or ``{file = "path"}``, a reference whose
    ``.resolve()`` gives a redacted ``Secret``; read it at startup), or
    ``("choice", (value, ...))``. ``default`` is ``REQUIRED`` for a key that must be
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
                hint = (
                    ' ("str" fields are non-empty; use default=None for an optional string)'
                    if spec.kind == "str" and spec.default == ""
                    else ""
                )
                err.add(
                    key_path,
                    f"plugin schema error: default {spec.default!r} is not {what}{hint}",
                )
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
        book = AccountBook(venue.accounts)
        for plugin_name, schema, values in loaded:
            plugin_path = paths.get(plugin_name, _key(_key("bots", bot_name), plugin_name))
            for account, path, role in _claims_of(bot, venue, plugin_path, schema, values):
                claims.setdefault((where, account), []).append(_MoneyClaim(plugin_path, path, role))
                names.setdefault((where, account), book.alias_of(account))
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
