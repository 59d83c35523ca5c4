"""Fuzzing bots.toml at the text level, through loading *and* plugin validation (``qfexbot check``).

tests/test_config.py fuzzes ``parse_config`` with mutated tables. Here whole files are mutated
as text (lines dropped, duplicated or spliced, values replaced, bytes inserted) and run through
``load_config`` and then ``check_command``, which also loads the plugins and validates their
options: the outcome is a valid config or a ``ConfigError`` whose every line names where the
problem is — never a traceback. A sentinel secret in the file never appears in any message.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from qfexbot.config import ConfigError, load_config, parse_config
from qfexbot.runtime import check_command

PLUGINS = Path(__file__).parents[2] / "plugins"
SENTINEL = "qfex_secret_SENTINEL_7f3a91"
VALID = textwrap.dedent(
    f"""\
    [runtime]
    journal = "var/journal.sqlite"
    log_level = "info"
    plugin_dirs = ["{PLUGINS}"]

    [venues.demo]
    kind = "qfex"
    simulator = true
    user_id = "0020ce8e-eaee-480e-8d7f-b9241d756ee5"
    public_key = "qfex_pub_demo"
    secret = "{SENTINEL}"

    [venues.demo.accounts]
    treasury = "primary"
    desk-a = "11111111-1111-4111-8111-111111111111"

    [venues.demo.session]
    stale_after = 3.0
    backoff_max = "30s"

    [venues.demo.sim]
    deposits = {{ treasury = 100000, desk-a = 50 }}

    [bots.watch]
    venue = "demo"
    accounts = ["treasury", "desk-a"]
    channels = ["balances"]
    market_data = {{ channels = ["mark_price"], symbols = ["AAPL-USD"] }}

    [bots.watch.limits]
    max_transfer = 100
    allowed_pairs = [["treasury", "desk-a"]]
    min_interval = "5s"

    [bots.watch.plugins.balance_logger]
    heartbeat = "30s"

    [bots.watch.plugins.demo_trader]
    use = "demo_trader:DemoTrader"
    symbol = "AAPL-USD"
    quantity = 5
    interval = "3s"
    """
)
LINES = VALID.splitlines()
VALUES = st.sampled_from(
    [
        '""',
        "0",
        "-1",
        "1e400",
        "nan",
        "inf",
        "true",
        "[]",
        "{}",
        "[[]]",
        '"primary"',
        '"5s"',
        "1979-05-27T07:32:00Z",
        "9" * 5000,
        '"\\u0000"',
        '{ env = "X" }',
        '{ file = "/etc/shadow" }',
        '{ file = "" }',
        "[" * 600 + "]" * 600,
        '"' + "x" * 10_000 + '"',
        '"desk-a"',
        "0x10",
    ]
)
# "<path>: <message>" where <path> is a key path, "(top level)" or the file.
ERROR_LINE = re.compile(r"^(\(top level\)|[^\s:][^:]*?|/\S+?): \S.*", re.DOTALL)


def _mutations() -> st.SearchStrategy[list[tuple[str, int, Any]]]:
    op = st.tuples(
        st.sampled_from(["drop", "dup", "value", "insert", "swap", "truncate"]),
        st.integers(min_value=0, max_value=len(LINES) - 1),
        st.one_of(VALUES, st.text(max_size=12)),
    )
    return st.lists(op, min_size=1, max_size=4)


def mutate(ops: list[tuple[str, int, Any]]) -> str:
    lines = list(LINES)
    for name, where, arg in ops:
        i = where % (len(lines) or 1)
        if not lines:
            break
        if name == "drop":
            del lines[i]
        elif name == "dup":
            lines.insert(i, lines[i])
        elif name == "value" and "=" in lines[i]:
            lines[i] = lines[i].split("=", 1)[0] + "= " + str(arg)
        elif name == "insert":
            lines.insert(i, str(arg))
        elif name == "swap":
            j = (i * 7 + 3) % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        elif name == "truncate":
            lines[i] = lines[i][: len(lines[i]) // 2]
    return "\n".join(lines) + "\n"


def assert_clean_errors(exc: ConfigError) -> None:
    assert exc.errors, "a ConfigError must say what is wrong"
    for line in exc.errors:
        assert isinstance(line, str) and ERROR_LINE.match(line), line
        assert SENTINEL not in line
    assert SENTINEL not in str(exc) and SENTINEL not in repr(exc)


def check_file(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Load + check: a config (``check`` then returns 0 or 1, listing problems) or ConfigError."""
    try:
        app = load_config(path)
    except ConfigError as exc:
        assert_clean_errors(exc)
        return
    assert SENTINEL not in repr(app)
    code = check_command(app)
    out, err = capsys.readouterr()
    assert code in (0, 1)
    assert SENTINEL not in out + err
    if code == 1:
        problems = [line.strip() for line in err.splitlines()[1:]]
        assert problems and all(ERROR_LINE.match(p) for p in problems), err


def test_the_unmutated_file_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bots.toml"
    path.write_text(VALID)
    assert check_command(load_config(path)) == 0, capsys.readouterr().err


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=_mutations())
@example(ops=[("value", 11, "[" * 600 + "]" * 600)])
@example(ops=[("value", 11, "9" * 5000)])
@example(ops=[("value", 10, '{ env = "X" }')])
def test_mutated_text_gives_config_or_config_error(
    ops: list[tuple[str, int, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bots.toml"
    path.write_text(mutate(ops))
    check_file(path, capsys)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.binary(max_size=300))
@example(data=b"\xef\xbb\xbf[runtime]\n")  # UTF-8 BOM
@example(data=b"\xff\xfe[\x00")  # UTF-16
def test_arbitrary_bytes_give_config_error(
    data: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bots.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert_clean_errors(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * 100_000,
        "a = " + "{b = " * 5000 + "1" + "}" * 5000,
        "[" + "a." * 5000 + "b]\n",
        "x = 1" + "0" * 5000,
        "[venues.demo]\n" * 3,
        "\x00",
    ],
)
def test_pathological_files(text: str, tmp_path: Path) -> None:
    path = tmp_path / "bots.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert_clean_errors(info.value)


@pytest.mark.parametrize(
    "value",
    [
        {"runtime": {"journal": "\x00"}},
        {"runtime": {"plugin_dirs": ["~nosuchuser_zz/plugins"]}},
        {"venues": {"x" * 65: {}}},
        {"venues": {"demo": {"accounts": {"a b": "primary"}}}},
        {"bots": {"b": {"plugins": {"p": {"use": "os:system"}}}}},
    ],
)
def test_dict_level_oddities_give_config_error(value: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(value, None, "/srv")
    assert_clean_errors(info.value)


def test_secret_line_pasted_into_the_wrong_table_is_never_echoed(tmp_path: Path) -> None:
    # Found by the fuzzer: `secret = "..."` under [venues.demo.accounts] was echoed as a bad UUID.
    text = VALID.replace(f'secret = "{SENTINEL}"\n', "").replace(
        "[venues.demo.accounts]\n", f'[venues.demo.accounts]\nsecret = "{SENTINEL}"\n'
    )
    path = tmp_path / "bots.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "venues.demo.accounts.secret: expected an account UUID" in str(info.value)
    assert_clean_errors(info.value)
