"""bots.toml parsing and validation: bad-input table, defaults, paths, secrets, plugin schemas."""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import tomli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qfexbot.config import (
    DEFAULT_PRIVATE_CHANNELS,
    INSECURE_SECRET_FILES_ENV,
    REQUIRED,
    AppConfig,
    ConfigError,
    Field,
    Limits,
    SessionSettings,
    format_errors,
    load_config,
    parse_config,
    validate_plugin_config,
)
from qfexbot.core.secrets import Secret

UID = "0020ce8e-eaee-480e-8d7f-b9241d756ee5"
A = "11111111-1111-4111-8111-111111111111"
B = "22222222-2222-4222-8222-222222222222"
SENTINEL = "SENTINEL-s3cr3t-value-4f9a"
REPO = Path(__file__).resolve().parent.parent


def base() -> dict[str, Any]:
    """A minimal valid configuration (as tomli would produce it)."""
    return {
        "venues": {
            "demo": {
                "simulator": True,
                "user_id": UID,
                "public_key": "qfex_pub_t",
                "secret": "qfex_secret_t",
                "accounts": {"treasury": "primary", "desk-a": A, "desk-b": B},
            }
        },
        "bots": {
            "keep-funded": {
                "venue": "demo",
                "accounts": ["desk-a", "desk-b"],
                "plugins": {"rebalancer": {"target": 100}},
            }
        },
    }


DELETE = object()


def setting(*changes: tuple[str, Any]) -> Callable[[dict[str, Any]], None]:
    """A mutation of ``base()``: each change is (dotted path, value or DELETE)."""

    def apply(data: dict[str, Any]) -> None:
        for dotted, value in changes:
            *parents, last = dotted.split("/")
            node = data
            for key in parents:
                node = node.setdefault(key, {})
            if value is DELETE:
                del node[last]
            else:
                node[last] = value

    return apply


V = "venues/demo"
BOT = "bots/keep-funded"
NOT_SIM = (f"{V}/simulator", False), (f"{V}/secret", {"env": "QFEX_SECRET"})
PRIVATE = '"order_responses", "fills", "positions", "balances", "stop_orders"'
DURATION = 'a duration >= 0 (seconds, or a string like "90s", "5m")'
POS_DURATION = 'a duration > 0 (seconds, or a string like "90s", "5m")'

BAD_INPUTS: list[tuple[str, Callable[[dict[str, Any]], None], list[str]]] = [
    (
        "unknown key with suggestion",
        setting((f"{BOT}/chanels", ["fills"])),
        ['bots.keep-funded.chanels: unknown key (did you mean "channels"?)'],
    ),
    ("unknown top-level key", setting(("bot", {})), ['bot: unknown key (did you mean "bots"?)']),
    (
        "unknown key without suggestion",
        setting(("runtime/colour", "red")),
        [
            (
                "runtime.colour: unknown key (allowed: dry_run, journal, journal_password, "
                "kill_switch_cancels_orders, kill_switch_file, log_format, log_level, "
                "ops_listen, ops_remote_without_tls, ops_tls_cert, ops_tls_key, ops_token, "
                "plugin_dirs, record, state_dir)"
            )
        ],
    ),
    (
        "wrong type bool",
        setting(("runtime/dry_run", "yes")),
        ['runtime.dry_run: expected a boolean, got "yes"'],
    ),
    (
        "log level enum",
        setting(("runtime/log_level", "verbose")),
        ['runtime.log_level: expected one of "debug", "info", "warning", "error", got "verbose"'],
    ),
    (
        "log format enum",
        setting(("runtime/log_format", "xml")),
        ['runtime.log_format: expected one of "text", "json", got "xml"'],
    ),
    (
        "plugin_dirs not an array",
        setting(("runtime/plugin_dirs", "plugins")),
        ['runtime.plugin_dirs: expected an array of paths, got "plugins"'],
    ),
    ("runtime not a table", setting(("runtime", 3)), ["runtime: expected a table, got 3"]),
    (
        "missing venues",
        setting(("venues", DELETE)),
        ["venues: missing required key (expected at least one [venues.NAME] table of venues)"],
    ),
    (
        "empty bots",
        setting(("bots", {})),
        ["bots: expected at least one [bots.NAME] table of bots, got an empty table"],
    ),
    (
        "bad bot name",
        setting(("bots/my bot", base()["bots"]["keep-funded"])),
        ['bots."my bot": expected a name of 1-64 letters, digits, "-" or "_", got "my bot"'],
    ),
    (
        "unknown venue kind",
        setting((f"{V}/kind", "binance")),
        ['venues.demo.kind: expected one of "qfex", "finery", got "binance"'],
    ),
    (
        "trade url scheme",
        setting((f"{V}/trade_url", "https://trade.qfex.com/")),
        ['venues.demo.trade_url: expected a ws:// or wss:// URL, got "https://trade.qfex.com/"'],
    ),
    (
        "missing user_id",
        setting((f"{V}/user_id", DELETE)),
        [
            (
                "venues.demo.user_id: missing required key (expected the primary account UUID, "
                "which is the user id)"
            )
        ],
    ),
    (
        "bad user_id",
        setting((f"{V}/user_id", "abc")),
        [
            (
                "venues.demo.user_id: expected an account UUID "
                "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx),"
                ' got "abc"'
            )
        ],
    ),
    (
        "bad account uuid",
        setting((f"{V}/accounts/desk-a", "1234")),
        ['venues.demo.accounts.desk-a: expected an account UUID or "primary", got "1234"'],
    ),
    (
        "account not a string",
        setting((f"{V}/accounts/desk-a", 7)),
        ['venues.demo.accounts.desk-a: expected an account UUID or "primary", got 7'],
    ),
    (
        "two aliases, one uuid",
        setting((f"{V}/accounts/desk-b", A.upper())),
        [
            (
                f'venues.demo.accounts.desk-b: expected a unique account, got "{A.upper()}"'
                " (same account as alias desk-a)"
            )
        ],
    ),
    (
        "alias duplicates primary",
        setting((f"{V}/accounts/main", UID)),
        [
            (
                f'venues.demo.accounts.main: expected a unique account, got "{UID}"'
                " (same account as alias treasury)"
            )
        ],
    ),
    (
        "inline secret on a real venue",
        setting((f"{V}/simulator", False)),
        [
            (
                "venues.demo.secret: inline secrets are not allowed unless simulator = true; use"
                ' {env = "NAME"} or {file = "path"}'
            )
        ],
    ),
    (
        "inline jwt on a real venue",
        setting(
            (f"{V}/simulator", False),
            (f"{V}/public_key", DELETE),
            (f"{V}/secret", DELETE),
            (f"{V}/jwt", "eyJ.x.y"),
        ),
        [
            (
                "venues.demo.jwt: inline secrets are not allowed unless simulator = true; use"
                ' {env = "NAME"} or {file = "path"}'
            )
        ],
    ),
    (
        "secret ref unknown key",
        setting((f"{V}/secret", {"envv": "X"})),
        ['venues.demo.secret.envv: unknown key (did you mean "env"?)'],
    ),
    (
        "secret ref bad env name",
        setting((f"{V}/secret", {"env": "1X"})),
        ['venues.demo.secret.env: expected an environment variable name, got "1X"'],
    ),
    (
        "secret ref both env and file",
        setting((f"{V}/secret", {"env": "X", "file": "y"})),
        ['venues.demo.secret: expected {env = "NAME"} or {file = "path"}, not both'],
    ),
    (
        "secret wrong type",
        setting((f"{V}/secret", 12345)),
        [
            'venues.demo.secret: expected a string, {env = "NAME"} or {file = "path"},'
            " got an integer"
        ],
    ),
    (
        "public key without secret",
        setting((f"{V}/secret", DELETE)),
        [
            (
                "venues.demo.secret: missing required key (expected the API secret, e.g."
                ' {env = "QFEX_SECRET"})'
            )
        ],
    ),
    (
        "jwt and hmac together",
        setting((f"{V}/jwt", {"env": "QFEX_JWT"})),
        ["venues.demo.jwt: expected either jwt or public_key/secret, not both"],
    ),
    (
        "no credentials",
        setting((f"{V}/public_key", DELETE), (f"{V}/secret", DELETE)),
        ["venues.demo: missing credentials (expected public_key and secret, or jwt)"],
    ),
    (
        "sim table without simulator",
        setting(*NOT_SIM, (f"{V}/sim", {"seed": 1})),
        ["venues.demo.sim: only allowed when simulator = true"],
    ),
    (
        "sim unknown key",
        setting((f"{V}/sim", {"pulse_intervall": 1})),
        ['venues.demo.sim.pulse_intervall: unknown key (did you mean "pulse_interval"?)'],
    ),
    (
        "sim deposit for unknown alias",
        setting((f"{V}/sim", {"deposits": {"dsk-a": 5}})),
        [
            (
                'venues.demo.sim.deposits.dsk-a: expected an account alias, got "dsk-a" (not in the'
                ' venue\'s accounts; did you mean "desk-a"?)'
            )
        ],
    ),
    (
        "sim negative deposit",
        setting((f"{V}/sim", {"deposits": {"desk-a": -5}})),
        ["venues.demo.sim.deposits.desk-a: expected a non-negative number, got -5"],
    ),
    (
        "session unknown key",
        setting((f"{V}/session", {"stale": 3})),
        ['venues.demo.session.stale: unknown key (did you mean "stale_after"?)'],
    ),
    (
        "session zero timeout",
        setting((f"{V}/session", {"connect_timeout": 0})),
        [f"venues.demo.session.connect_timeout: expected {POS_DURATION}, got 0"],
    ),
    (
        "session auth failures",
        setting((f"{V}/session", {"max_auth_failures": 0})),
        ["venues.demo.session.max_auth_failures: expected a positive integer, got 0"],
    ),
    (
        "backoff max below initial",
        setting((f"{V}/session", {"backoff_initial": 5, "backoff_max": 1})),
        ["venues.demo.session.backoff_max: expected at least backoff_initial (5), got 1"],
    ),
    (
        "bot venue missing",
        setting((f"{BOT}/venue", "dmeo")),
        [
            (
                'bots.keep-funded.venue: expected the name of a [venues.NAME] table, got "dmeo"'
                ' (did you mean "demo"?)'
            )
        ],
    ),
    (
        "bot venue absent",
        setting((f"{BOT}/venue", DELETE)),
        [
            "bots.keep-funded.venue: missing required key (expected the name of a [venues.NAME] "
            "table)"
        ],
    ),
    (
        "bot alias missing",
        setting((f"{BOT}/accounts", ["desk-a", "ops"])),
        [
            (
                'bots.keep-funded.accounts[1]: expected an account alias, got "ops" (not in the '
                "venue's accounts; declared: treasury, desk-a, desk-b)"
            )
        ],
    ),
    (
        "bot alias duplicated",
        setting((f"{BOT}/accounts", ["desk-a", "desk-b", "desk-a"])),
        [
            (
                'bots.keep-funded.accounts[2]: expected each item once, got "desk-a" again'
                " (first at bots.keep-funded.accounts[0])"
            )
        ],
    ),
    (
        "bot accounts empty",
        setting((f"{BOT}/accounts", [])),
        ["bots.keep-funded.accounts: expected a non-empty array of account aliases, got []"],
    ),
    (
        "private channel enum",
        setting((f"{BOT}/channels", ["balances", "fill"])),
        [f'bots.keep-funded.channels[1]: expected one of {PRIVATE}, got "fill"'],
    ),
    (
        "market data channel enum",
        setting((f"{BOT}/market_data", {"channels": ["l2"], "symbols": ["AAPL-USD"]})),
        [
            (
                'bots.keep-funded.market_data.channels[0]: "l2" is not available on a kind = '
                '"qfex" venue (supported: "level2", "bbo", "trade", "mark_price", "candle", '
                '"funding", "underlier", "open_interest", "minmax_price", "market_stats")'
            )
        ],
    ),
    (
        "market data without symbols",
        setting((f"{BOT}/market_data", {"channels": ["bbo"]})),
        [
            (
                "bots.keep-funded.market_data.symbols: missing required key (expected an array of"
                ' symbols, e.g. ["AAPL-USD"])'
            )
        ],
    ),
    (
        "limit not a number",
        setting((f"{BOT}/limits", {"max_transfer": "lots"})),
        ['bots.keep-funded.limits.max_transfer: expected a positive number, got "lots"'],
    ),
    (
        "limit bool is not a number",
        setting((f"{BOT}/limits", {"max_daily": True})),
        ["bots.keep-funded.limits.max_daily: expected a positive number, got true"],
    ),
    (
        "max transfer above max daily",
        setting((f"{BOT}/limits", {"max_transfer": 500, "max_daily": 100})),
        ["bots.keep-funded.limits.max_transfer: expected at most max_daily (100), got 500"],
    ),
    (
        "negative min interval",
        setting((f"{BOT}/limits", {"min_interval": -1})),
        [f"bots.keep-funded.limits.min_interval: expected {DURATION}, got -1"],
    ),
    (
        "bad duration string",
        setting((f"{BOT}/limits", {"min_interval": "soon"})),
        [f'bots.keep-funded.limits.min_interval: expected {DURATION}, got "soon"'],
    ),
    (
        "allowed pair unknown alias",
        setting((f"{BOT}/limits", {"allowed_pairs": [["treasury", "dsk-a"]]})),
        [
            (
                "bots.keep-funded.limits.allowed_pairs[0][1]: expected an account alias, got "
                '"dsk-a" (not in the venue\'s accounts; did you mean "desk-a"?)'
            )
        ],
    ),
    (
        "allowed pair of one account",
        setting((f"{BOT}/limits", {"allowed_pairs": [["desk-a", "desk-a"]]})),
        [
            (
                "bots.keep-funded.limits.allowed_pairs[0]: expected two different accounts,"
                ' got ["desk-a", "desk-a"]'
            )
        ],
    ),
    (
        "allowed pair not a pair",
        setting((f"{BOT}/limits", {"allowed_pairs": [["desk-a"]]})),
        [
            (
                "bots.keep-funded.limits.allowed_pairs[0]: expected a pair of account aliases"
                ' [source, destination], got ["desk-a"]'
            )
        ],
    ),
    (
        "allowed pair repeated reversed",
        setting((f"{BOT}/limits", {"allowed_pairs": [["desk-a", "desk-b"], ["desk-b", "desk-a"]]})),
        [
            (
                "bots.keep-funded.limits.allowed_pairs[1]: expected each item once, got"
                ' ["desk-b", "desk-a"] again (first at bots.keep-funded.limits.allowed_pairs[0])'
            )
        ],
    ),
    (
        "no plugins",
        setting((f"{BOT}/plugins", DELETE)),
        [
            (
                "bots.keep-funded.plugins: missing required key (expected at least one"
                " [bots.NAME.plugins.INSTANCE] table)"
            )
        ],
    ),
    (
        "plugin failure limit",
        setting((f"{BOT}/plugins/rebalancer/failure_limit", 0)),
        ["bots.keep-funded.plugins.rebalancer.failure_limit: expected a positive integer, got 0"],
    ),
    (
        "plugin use",
        setting((f"{BOT}/plugins/rebalancer/use", "a b")),
        [
            (
                "bots.keep-funded.plugins.rebalancer.use: expected a plugin name, module or"
                ' "module:attribute", got "a b"'
            )
        ],
    ),
    (
        "plugin not a table",
        setting((f"{BOT}/plugins/rebalancer", "yes")),
        ['bots.keep-funded.plugins.rebalancer: expected a table of plugin settings, got "yes"'],
    ),
]


@pytest.mark.parametrize(
    "mutate, expected", [pytest.param(m, e, id=name) for name, m, e in BAD_INPUTS]
)
def test_bad_input_gives_exactly_its_error(
    mutate: Callable[[dict[str, Any]], None], expected: list[str]
) -> None:
    data = base()
    mutate(data)
    with pytest.raises(ConfigError) as info:
        parse_config(data, "bots.toml", "/srv/bots")
    assert info.value.errors == expected
    assert all(line in str(info.value) for line in expected)


def test_the_table_is_big_enough_and_the_base_is_valid() -> None:
    assert len(BAD_INPUTS) >= 20
    assert isinstance(parse_config(base(), None, "/srv/bots"), AppConfig)


def test_every_problem_is_collected_in_document_order() -> None:
    data = base()
    data["runtime"] = {"log_level": "loud"}
    data["venues"]["demo"]["accounts"]["desk-a"] = "nope"
    data["bots"]["keep-funded"]["chanels"] = []
    data["bots"]["other"] = {"venue": "nowhere", "accounts": ["x"], "plugins": {"p": {}}}
    with pytest.raises(ConfigError) as info:
        parse_config(data, "bots.toml", "/srv")
    assert [e.split(":")[0] for e in info.value.errors] == [
        "runtime.log_level",
        "venues.demo.accounts.desk-a",
        "bots.keep-funded.chanels",
        "bots.other.venue",
    ]
    assert str(info.value).startswith("bots.toml: 4 configuration problems\n  runtime.log_level")


def test_top_level_not_a_table() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config([1, 2], None, "/srv")  # type: ignore[arg-type]
    assert info.value.errors == ["(top level): expected a table, got [1, 2]"]


def test_toml_syntax_error_keeps_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bots.toml"
    path.write_text('[bots.a]\nvenue = "x"\n[bots.a]\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.errors == [
        f"{path}: line 3, column 8: invalid TOML: Cannot declare ('bots', 'a') twice"
    ]


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"a = 1\n\xff")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert info.value.errors == [f"{bad}: not UTF-8 text (byte offset 6)"]


@pytest.mark.parametrize(
    "text, error",
    [
        ("a = " + "1" * 5000, "invalid TOML: an integer is too long"),
        ("a = " + "[" * 1000 + "]" * 1000, "invalid TOML: arrays/tables nested too deeply"),
    ],
)
def test_pathological_toml(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "bots.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.errors == [f"{path}: {error}"]


def test_pathological_values() -> None:
    deep: list[Any] = []
    for _ in range(3000):
        deep = [deep]
    data = base()
    data["runtime"] = {
        "plugin_dirs": deep,
        "journal": "~no-such-user-qfexbot/j",
        "kill_switch_file": 10**5000,
    }
    data["venues"]["demo"]["session"] = {"stale_after": 10**400}
    with pytest.raises(ConfigError) as info:
        parse_config(data, None, "/srv")
    assert info.value.errors == [
        'runtime.journal: expected a path (string), got "~no-such-user-qfexbot/j"',
        "runtime.plugin_dirs[0]: expected a path (string), got [[[[…]]]]",
        "runtime.kill_switch_file: expected a path (string), got a very large integer",
        f"venues.demo.session.stale_after: expected {POS_DURATION}, got a very large integer",
    ]


def test_format_errors() -> None:
    assert format_errors(["a: x"]) == "1 configuration problem\n  a: x"
    assert format_errors(["a: x", "b: y"], "bots.toml") == (
        "bots.toml: 2 configuration problems\n  a: x\n  b: y"
    )


# --- good configurations ------------------------------------------------------------------


def test_defaults() -> None:
    app = parse_config(base(), "/srv/bots/bots.toml", "/srv/bots")
    base_dir = Path("/srv/bots")
    assert app.runtime.journal == base_dir / "var/journal.sqlite"
    assert app.runtime.kill_switch_file == base_dir / "var/PAUSED"
    assert app.runtime.plugin_dirs == (base_dir / "plugins",)
    assert (app.runtime.log_level, app.runtime.log_format, app.runtime.dry_run) == (
        "info",
        "text",
        False,
    )
    venue = app.venues["demo"]
    assert (venue.kind, venue.trade_url, venue.mds_url, venue.rest_url) == (
        "qfex",
        "wss://trade.qfex.com/",
        "wss://mds.qfex.com/",
        "https://api.qfex.com",
    )
    assert venue.session == SessionSettings(10.0, 10.0, 15.0, 0.5, 30.0, 30.0, 3, 10.0)
    assert venue.sim == {}
    bot = app.bots["keep-funded"]
    assert bot.channels == DEFAULT_PRIVATE_CHANNELS
    assert bot.market_data.channels == () and bot.market_data.symbols == ()
    assert bot.dry_run is False and app.effective_dry_run("keep-funded") is False
    assert bot.limits.max_transfer == Decimal(1000) and bot.limits.max_daily == Decimal(10000)
    assert bot.limits.min_interval == 30.0 and bot.limits.min_remaining == Decimal(0)
    # Default allowed pairs: every pair of the bot's own accounts, both directions, nothing else.
    assert bot.limits.allowed_pairs == {("desk-a", "desk-b"), ("desk-b", "desk-a")}
    assert ("treasury", "desk-a") not in bot.limits.allowed_pairs
    (plugin,) = bot.plugins
    assert (plugin.name, plugin.use, plugin.enabled, plugin.failure_limit, plugin.inbox_size) == (
        "rebalancer",
        "rebalancer",
        True,
        5,
        1000,
    )
    assert plugin.options == {"target": 100}
    assert plugin.path == "bots.keep-funded.plugins.rebalancer"


def test_explicit_values() -> None:
    data = base()
    data["runtime"] = {
        "log_level": "debug",
        "log_format": "json",
        "dry_run": True,
        "journal": "/var/lib/qfexbot/j.sqlite",
        "plugin_dirs": ["a", "../b"],
    }
    venue = data["venues"]["demo"]
    venue["session"] = {"stale_after": "2m", "connect_timeout": "250ms", "max_auth_failures": 5}
    venue["sim"] = {
        "pulse_interval": 0.2,
        "seed": 7,
        "deposits": {"treasury": 100000, "desk-a": 0.1},
        "symbols": {"AAPL-USD": {"mark": 200}},
    }
    bot = data["bots"]["keep-funded"]
    bot.update(
        channels=["fills"],
        dry_run=True,
        market_data={"channels": ["level2", "mark_price"], "symbols": ["AAPL-USD"]},
        limits={
            "max_transfer": "12.50",
            "max_daily": 100,
            "min_interval": "5s",
            "min_remaining": 0.3,
            "allowed_pairs": [["treasury", "desk-a"]],
        },
    )
    bot["plugins"]["rebalancer"].update(use="mypkg.mod:Plugin", enabled=False, inbox_size=10)
    app = parse_config(data, None, "/srv/bots")
    assert app.runtime.journal == Path("/var/lib/qfexbot/j.sqlite")
    assert app.runtime.plugin_dirs == (Path("/srv/bots/a"), Path("/srv/bots/../b"))
    assert app.runtime.dry_run and app.effective_dry_run("keep-funded")
    session = app.venues["demo"].session
    assert (session.stale_after, session.connect_timeout, session.max_auth_failures) == (
        120.0,
        0.25,
        5,
    )
    sim = app.venues["demo"].sim
    assert sim["pulse_interval"] == 0.2 and sim["seed"] == 7
    assert sim["deposits"] == {"treasury": Decimal(100000), "desk-a": Decimal("0.1")}
    assert sim["symbols"] == {"AAPL-USD": {"mark": 200}}
    b = app.bots["keep-funded"]
    assert b.channels == ("fills",) and b.dry_run
    assert b.market_data.channels == ("level2", "mark_price")
    assert b.market_data.symbols == ("AAPL-USD",)
    assert b.limits == Limits(
        Decimal("12.50"),
        Decimal(100),
        frozenset({("treasury", "desk-a"), ("desk-a", "treasury")}),
        5.0,
        Decimal("0.3"),
    )
    plugin = b.plugins[0]
    assert (plugin.use, plugin.enabled, plugin.inbox_size) == ("mypkg.mod:Plugin", False, 10)
    assert plugin.options == {"target": 100}


def test_primary_resolves_to_user_id_and_uuids_are_lower_cased() -> None:
    data = base()
    data["venues"]["demo"]["user_id"] = UID.upper()
    data["venues"]["demo"]["accounts"]["desk-a"] = A.upper()
    venue = parse_config(data, None, "/srv").venues["demo"]
    assert venue.user_id == UID
    assert venue.accounts == {"treasury": UID, "desk-a": A, "desk-b": B}
    assert venue.account_id("treasury") == UID


def test_objects_are_frozen() -> None:
    app = parse_config(base(), None, "/srv")
    with pytest.raises(dataclasses.FrozenInstanceError):
        app.bots["keep-funded"].venue = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        app.venues["demo"].accounts["desk-a"] = B  # type: ignore[index]
    with pytest.raises(TypeError):
        app.bots["keep-funded"].plugins[0].options["target"] = 1  # type: ignore[index]


def test_load_config_resolves_paths_against_the_file_directory(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "bots.toml"
    path.write_text(f"""
[runtime]
journal = "state/j.sqlite"
kill_switch_file = "~/PAUSED"
[venues.live]
user_id = "{UID}"
public_key = "qfex_pub_live"
secret = {{file = "secrets/qfex"}}
[venues.live.accounts]
treasury = "primary"
desk-a = "{A}"
[bots.b]
venue = "live"
accounts = ["desk-a"]
[bots.b.plugins.p]
""")
    app = load_config(path)
    assert app.path == path and app.base_dir == path.parent
    assert app.runtime.journal == path.parent / "state/j.sqlite"
    assert app.runtime.kill_switch_file == Path.home() / "PAUSED"
    assert app.venues["live"].secret.target == str(path.parent / "secrets/qfex")


def test_shipped_bots_toml_loads() -> None:
    app = load_config(REPO / "bots.toml")
    venue = app.venues["demo"]
    assert venue.simulator and len(venue.accounts) == 4
    assert venue.accounts["treasury"] == venue.user_id
    assert {"watch", "keep-funded"} <= set(app.bots)
    credentials = venue.resolve_credentials(environ={})
    assert credentials.public_key and credentials.secret is not None


# --- secrets ------------------------------------------------------------------------------


def real_venue(secret: Any, **extra: Any) -> dict[str, Any]:
    data = base()
    data["venues"]["demo"].update(simulator=False, secret=secret, **extra)
    return data


def test_env_secret_is_resolved_late() -> None:
    venue = parse_config(real_venue({"env": "QFEX_SECRET"}), None, "/srv").venues["demo"]
    assert venue.secret is not None and venue.secret.kind == "env"
    with pytest.raises(ConfigError) as info:
        venue.resolve_credentials(environ={})
    assert info.value.errors == ["venues.demo.secret: environment variable QFEX_SECRET is not set"]
    with pytest.raises(ConfigError, match="QFEX_SECRET is empty"):
        venue.resolve_credentials(environ={"QFEX_SECRET": " "})
    credentials = venue.resolve_credentials(environ={"QFEX_SECRET": SENTINEL})
    assert isinstance(credentials.secret, Secret)
    assert credentials.secret.reveal() == SENTINEL
    assert credentials.secret.source == "env:QFEX_SECRET"
    assert credentials.public_key == "qfex_pub_t" and credentials.jwt is None


def test_jwt_and_public_key_from_env_all_errors_listed() -> None:
    data = real_venue(DELETE)
    del data["venues"]["demo"]["secret"], data["venues"]["demo"]["public_key"]
    data["venues"]["demo"]["jwt"] = {"env": "QFEX_JWT"}
    venue = parse_config(data, None, "/srv").venues["demo"]
    assert venue.resolve_credentials(environ={"QFEX_JWT": "eyJ"}).jwt.reveal() == "eyJ"
    data = real_venue({"env": "S"}, public_key={"env": "P"})
    with pytest.raises(ConfigError) as info:
        parse_config(data, None, "/srv").venues["demo"].resolve_credentials(environ={})
    assert info.value.errors == [
        "venues.demo.public_key: environment variable P is not set",
        "venues.demo.secret: environment variable S is not set",
    ]


def write_secret(path: Path, mode: int) -> None:
    path.write_text(SENTINEL + "\n")
    path.chmod(mode)


def test_file_secret_relative_to_config_dir(tmp_path: Path) -> None:
    write_secret(tmp_path / "qfex.secret", 0o600)
    venue = parse_config(real_venue({"file": "qfex.secret"}), None, tmp_path).venues["demo"]
    secret = venue.resolve_credentials(environ={}).secret
    assert secret.reveal() == SENTINEL
    assert secret.source == f"file:{tmp_path / 'qfex.secret'}"


def test_file_secret_missing_or_empty(tmp_path: Path) -> None:
    venue = parse_config(real_venue({"file": "nope"}), None, tmp_path).venues["demo"]
    with pytest.raises(ConfigError) as info:
        venue.resolve_credentials(environ={})
    missing = tmp_path / "nope"
    assert info.value.errors == [f"venues.demo.secret: secrets file {missing} does not exist"]
    (tmp_path / "nope").write_text("\n")
    (tmp_path / "nope").chmod(0o600)
    with pytest.raises(ConfigError, match="is empty"):
        venue.resolve_credentials(environ={})


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_insecure_secret_file_refused_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "qfex.secret"
    write_secret(path, 0o640)
    venue = parse_config(real_venue({"file": "qfex.secret"}), None, tmp_path).venues["demo"]
    with pytest.raises(ConfigError) as info:
        venue.resolve_credentials(environ={})
    assert info.value.errors == [
        (
            f"venues.demo.secret: secrets file {path} is readable or writable by group/others"
            f" (mode 0640); run `chmod 600 {path}` or set {INSECURE_SECRET_FILES_ENV}=1"
        )
    ]
    assert SENTINEL not in str(info.value)
    with pytest.raises(ConfigError):
        venue.resolve_credentials(environ={INSECURE_SECRET_FILES_ENV: "0"})
    allowed = venue.resolve_credentials(environ={INSECURE_SECRET_FILES_ENV: "1"})
    assert allowed.secret.reveal() == SENTINEL


def test_sentinel_secret_never_in_repr_str_or_errors(tmp_path: Path) -> None:
    # Inline (simulator), env and file: resolved objects and the config itself stay redacted.
    data = base()
    data["venues"]["demo"]["secret"] = SENTINEL
    sim = parse_config(data, None, tmp_path)
    write_secret(tmp_path / "s", 0o600)
    filed = parse_config(real_venue({"file": "s"}), None, tmp_path)
    env = parse_config(real_venue({"env": "S"}), None, tmp_path)
    texts = []
    for app, environ in ((sim, {}), (filed, {}), (env, {"S": SENTINEL})):
        credentials = app.venues["demo"].resolve_credentials(environ=environ)
        assert credentials.secret.reveal() == SENTINEL
        texts += [repr(app), str(app), repr(credentials), str(credentials), f"{credentials.secret}"]
    # Errors about a value that is (or might be) a secret never echo it.
    bad = [
        real_venue(SENTINEL),
        real_venue([SENTINEL]),
        real_venue({"env": "S", "value": SENTINEL}),
        real_venue({"env": "S"}, jwt=SENTINEL),
    ]
    for data in bad:
        with pytest.raises(ConfigError) as info:
            parse_config(data, None, tmp_path)
        texts += [str(info.value), repr(info.value), *info.value.errors]
    assert texts and not [t for t in texts if SENTINEL in t]


# --- plugin schemas -----------------------------------------------------------------------

P = "bots.keep-funded.plugins.rebalancer"
ALIASES = ("treasury", "desk-a", "desk-b")
SCHEMA = {
    "treasury": Field("account", "treasury", "where funds come from"),
    "managed": Field("accounts", REQUIRED),
    "target": Field("positive_number"),
    "floor": Field("non_negative_number", 0),
    "offset": Field("number", -1.5),
    "max_transfer": Field("positive_number", 1000),
    "every": Field("duration", "1m"),
    "retries": Field("positive_int", 3),
    "bias": Field("int", 0),
    "name": Field("str", "rb"),
    "verbose": Field("bool", False),
    "tags": Field("str_list", []),
    "mode": Field(("choice", ("band", "target")), "band"),
    "note": Field("str", None),
}


def test_plugin_config_good_values_and_defaults() -> None:
    values, errors = validate_plugin_config(
        SCHEMA,
        {"managed": ["desk-a", "desk-b"], "target": 0.1, "every": 2, "tags": ["x"]},
        P,
        ALIASES,
    )
    assert errors == []
    assert dict(values) == {
        "treasury": "treasury",
        "managed": ("desk-a", "desk-b"),
        "target": Decimal("0.1"),
        "floor": Decimal(0),
        "offset": Decimal("-1.5"),
        "max_transfer": Decimal(1000),
        "every": 2.0,
        "retries": 3,
        "bias": 0,
        "name": "rb",
        "verbose": False,
        "tags": ("x",),
        "mode": "band",
        "note": None,
    }
    assert isinstance(values["target"], Decimal) and isinstance(values["retries"], int)
    with pytest.raises(TypeError):
        values["target"] = 1  # type: ignore[index]


def test_plugin_config_large_int_stays_exact() -> None:
    values, errors = validate_plugin_config({"n": Field("number")}, {"n": 10**30 + 1}, P)
    assert errors == [] and values["n"] == Decimal(10**30 + 1)


@pytest.mark.parametrize(
    "options, expected",
    [
        (
            {"managed": ["desk-a"], "target": 5, "max_transfer": "lots"},
            [f'{P}.max_transfer: expected a positive number, got "lots"'],
        ),
        (
            {"managed": ["desk-a"]},
            [f"{P}.target: missing required key (expected a positive number)"],
        ),
        (
            {"managed": ["desk-a"], "target": 5, "treasury": "vault"},
            [
                (
                    f'{P}.treasury: expected an account alias, got "vault" (not in the venue\'s '
                    "accounts; declared: treasury, desk-a, desk-b)"
                )
            ],
        ),
        (
            {"managed": ["desk-a", "dsk-a"], "target": 5},
            [
                (
                    f'{P}.managed[1]: expected an account alias, got "dsk-a" (not in the venue\'s '
                    'accounts; did you mean "desk-a"?)'
                )
            ],
        ),
        (
            {"managed": ["desk-a"], "target": 5, "mode": "wild"},
            [f'{P}.mode: expected one of "band", "target", got "wild"'],
        ),
        (
            {"managed": ["desk-a"], "target": 5, "targte": 1},
            [f'{P}.targte: unknown key (did you mean "target"?)'],
        ),
        (
            {"managed": ["desk-a"], "target": 5, "retries": 1.5, "verbose": 1, "every": "-3s"},
            [
                (
                    f'{P}.every: expected a duration >= 0 (seconds, or a string like "90s", "5m"),'
                    ' got "-3s"'
                ),
                f"{P}.retries: expected a positive integer, got 1.5",
                f"{P}.verbose: expected a boolean, got 1",
            ],
        ),
    ],
)
def test_plugin_config_errors(options: dict[str, Any], expected: list[str]) -> None:
    _, errors = validate_plugin_config(SCHEMA, options, P, ALIASES)
    assert errors == expected


def test_plugin_config_broken_schema_is_reported_not_raised() -> None:
    schema = {"a": Field("decimal"), "b": Field("positive_int", -1), "c": "str"}
    _, errors = validate_plugin_config(schema, {}, P)  # type: ignore[arg-type]
    assert errors == [
        f"{P}.a: plugin schema error: unknown field kind 'decimal'",
        f"{P}.b: plugin schema error: default -1 is not a positive integer",
        f"{P}.c: plugin schema error: unknown field kind 'str'",
    ]


def test_an_empty_str_default_is_refused_saying_what_str_means() -> None:
    """ "str" is a non-empty string; the message says so and what to do instead (issue 15)."""
    _, errors = validate_plugin_config({"name": Field("str", default="")}, {}, P)
    assert errors == [
        f"{P}.name: plugin schema error: default '' is not a non-empty string "
        '("str" fields are non-empty; use default=None for an optional string)'
    ]
    values, errors = validate_plugin_config({"name": Field("str", default=None)}, {}, P)
    assert (dict(values), errors) == ({"name": None}, [])


# --- robustness -------------------------------------------------------------------------

toml_scalars = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["primary", A, "desk-a", "5s", "-1", "treasury", "fills", "demo"]),
    st.dates(),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


def leaf_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        out = [prefix] if prefix else []
        for key, value in node.items():
            out += leaf_paths(value, (*prefix, key))
        return out
    if isinstance(node, list):
        return [prefix] + [p for i, v in enumerate(node) for p in leaf_paths(v, (*prefix, i))]
    return [prefix]


BASE_PATHS = leaf_paths(base())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.sampled_from(BASE_PATHS), toml_values), max_size=4),
    st.dictionaries(st.text(max_size=6), toml_values, max_size=2),
)
def test_any_mutation_gives_config_or_config_error(
    changes: list[tuple[tuple[Any, ...], Any]], extra: dict[str, Any]
) -> None:
    data = copy.deepcopy(base())
    for path, value in changes:
        node: Any = data
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    bot = data.get("bots", {}).get("keep-funded") if isinstance(data.get("bots"), dict) else None
    if isinstance(bot, dict):
        bot.update(extra)
    try:
        app = parse_config(data, None, "/srv")
    except ConfigError as exc:
        assert exc.errors and all(isinstance(e, str) and ": " in e for e in exc.errors)
    else:
        assert isinstance(app, AppConfig)


@settings(max_examples=200, deadline=None)
@given(toml_values)
def test_any_value_at_the_top_gives_config_error(value: Any) -> None:
    with pytest.raises(ConfigError):
        parse_config(value, None, "/srv")


def test_docs_examples_are_valid() -> None:
    text = (REPO / "docs" / "configuration.md").read_text()
    examples = [
        block
        for block in re.findall(r"```toml\n(.*?)```", text, re.DOTALL)
        if "[venues." in block and "[bots." in block
    ]
    assert len(examples) == 2
    for example in examples:
        assert isinstance(parse_config(tomli.loads(example), None, "/srv"), AppConfig)


def test_transfer_settle_defaults_to_a_generous_multiple_of_the_request_timeout():
    # Minutes, not 30 s: a request the venue held 40 s was doubled by the old default.
    assert SessionSettings().settle_seconds == 600.0
    assert SessionSettings(request_timeout=20.0).settle_seconds == 600.0
    assert SessionSettings(request_timeout=300.0).settle_seconds == 900.0
    assert SessionSettings(transfer_settle=2.0).settle_seconds == 2.0


# ---------------------------------------------------------------------------------------------
# Venue tables sharing accounts (issue 11, case 3b)

C = "33333333-3333-4333-8333-333333333333"


def _two_tables(second_accounts: dict[str, str], *, simulator: bool = False) -> dict[str, Any]:
    """``base()`` with two real venue tables on one user and a bot on each."""
    data = base()
    first = data["venues"]["demo"]
    first.update(simulator=False, secret={"env": "QFEX_SECRET"})
    second = copy.deepcopy(first)
    second.update(accounts=second_accounts, simulator=simulator)
    if simulator:
        second["secret"] = "qfex_secret_t"
    data["venues"]["other"] = second
    return data


def test_two_venue_tables_of_one_user_sharing_an_account_are_refused_with_both_paths() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(_two_tables({"desk": A, "desk-c": C}))
    assert exc.value.errors == [
        (
            f"venues.other.accounts.desk: expected an account no other venue table declares, got "
            f"account {A}, also declared as venues.demo.accounts.desk-a (whatever each table's "
            "user_id): two tables would each move and reconcile money on it and can repeat a "
            "transfer; declare each account in one table only"
        )
    ]


def test_primary_in_two_tables_of_one_user_is_one_shared_account() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(_two_tables({"main": "primary", "desk-c": C}))
    [error] = exc.value.errors
    assert error.startswith("venues.other.accounts.main: ")
    assert f"account {UID}, also declared as venues.demo.accounts.treasury" in error


def test_two_tables_naming_one_subaccount_under_different_user_ids_are_refused() -> None:
    # Subaccount ids are UUIDs unique across users: a mistyped user_id must not hide the overlap
    # (the transfer POST does not carry the user id, so both tables would move the same money).
    data = _two_tables({"desk": A, "desk-c": C})
    data["venues"]["other"]["user_id"] = C.replace("3", "4")
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    [error] = exc.value.errors
    assert error.startswith("venues.other.accounts.desk: ")
    assert f"account {A}, also declared as venues.demo.accounts.desk-a" in error


def test_tables_of_one_user_with_disjoint_accounts_or_simulated_are_accepted() -> None:
    parse_config(_two_tables({"desk-c": C}))  # disjoint: each transfer stays inside one table
    parse_config(_two_tables({"desk": A}, simulator=True))  # its own in-process exchange


def test_moves_money_only_on_account_fields_with_a_known_role() -> None:
    schema = {
        "name": Field("str", default="x", moves_money="own"),
        "desk": Field("account", default="desk-a", moves_money="mine"),  # type: ignore[arg-type]
        "treasury": Field("account", default="treasury", moves_money="shared"),
    }
    values, errors = validate_plugin_config(schema, {}, "bots.b.plugins.p", ("desk-a", "treasury"))
    needs = 'needs an "account" or "accounts" field and "own" or "shared"'
    assert errors == [
        f"bots.b.plugins.p.name: plugin schema error: moves_money='own' {needs}",
        f"bots.b.plugins.p.desk: plugin schema error: moves_money='mine' {needs}",
    ]
    assert values["treasury"] == "treasury"


def test_runtime_state_dir_is_a_path_relative_to_the_config(tmp_path: Path) -> None:
    data = base()
    assert parse_config(data, base_dir=tmp_path).runtime.state_dir is None
    data["runtime"] = {"state_dir": "state/qfexbot"}
    assert parse_config(data, base_dir=tmp_path).runtime.state_dir == tmp_path / "state/qfexbot"
    data["runtime"] = {"state_dir": 3}
    with pytest.raises(ConfigError) as exc:
        parse_config(data, base_dir=tmp_path)
    assert exc.value.errors == ["runtime.state_dir: expected a path (string), got 3"]


def test_simulator_knobs_in_bots_toml_are_checked_and_reach_the_simulator(tmp_path) -> None:
    """[venues.X.sim] may shorten TWAP and funding intervals and tighten the open-order limit
    (strategy tests); each value is checked with its key path, and the embedded simulator
    runs with it."""
    from qfexbot.runtime.embedded import embedded_table  # noqa: PLC0415
    from qfexbot.sim.qfex.embedded import embedded_config  # noqa: PLC0415

    knobs = {
        "twap_min_interval": 1,
        "twap_tick": "50ms",
        "funding_interval": 60,
        "funding_cap": 0.01,
        "max_open_orders": 7,
    }
    app = parse_config(with_venue_sim(knobs), base_dir=tmp_path)
    venue = app.venues["demo"]
    config = embedded_config(embedded_table(venue, venue.resolve_credentials({})))
    assert (config.twap_min_interval, config.twap_tick) == (1.0, 0.05)
    assert (config.funding_interval, config.funding_cap) == (60.0, Decimal("0.01"))
    assert config.max_open_orders == 7
    for key, bad, expected in (
        ("twap_tick", "soon", "a duration > 0"),
        ("funding_cap", 0, "a positive number"),
        ("max_open_orders", 0, "a positive integer"),
    ):
        with pytest.raises(ConfigError) as refused:
            parse_config(with_venue_sim({key: bad}), base_dir=tmp_path)
        [line] = refused.value.errors
        assert line.startswith(f"venues.demo.sim.{key}: expected {expected}"), line


def with_venue_sim(sim: dict[str, Any]) -> dict[str, Any]:
    """``base()`` with ``[venues.demo.sim]`` set to ``sim``."""
    data = base()
    data["venues"]["demo"]["sim"] = dict(sim)
    return data
