"""``qfexbot init`` and ``qfexbot new-plugin``: a starter directory (bots.toml for the
simulator, a real-account template, a plugin), and a plugin module (or an installable plugin
package) with a passing test that runs it on the embedded simulator with ``qfexbot.testing``.

Nothing is ever overwritten: if any file to be written exists, nothing is written at all.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
from importlib import resources
from pathlib import Path

from qfexbot.errors import QfexbotError

__all__ = [
    "ScaffoldError",
    "class_name",
    "init_command",
    "new_plugin_command",
    "plan_init",
    "plan_module",
    "plan_package",
    "write_files",
]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class ScaffoldError(QfexbotError, ValueError):
    """The plugin cannot be scaffolded (bad name, files already exist); the message says why."""


def _check_name(name: str) -> None:
    if not _NAME.match(name) or name.endswith("_") or "__" in name:
        raise ScaffoldError(
            f"invalid plugin name {name!r}: use lower-case letters, digits and single "
            f"underscores, starting with a letter (e.g. low_balance)"
        )
    if name == "qfexbot" or name in sys.stdlib_module_names:
        raise ScaffoldError(f"invalid plugin name {name!r}: it would shadow the module {name!r}")


def class_name(name: str) -> str:
    """``low_balance`` -> ``LowBalance``."""
    return "".join(part.capitalize() for part in name.split("_"))


# -- templates --------------------------------------------------------------------------------

_PLUGIN = '''\
"""{name}: a qfexbot plugin. Logs each account's balance when it changes, warns when one drops
below ``min_balance``, and reports a summary on a timer.

Hook reference: docs/plugins.md; events and ctx methods: docs/events.md.
"""

from __future__ import annotations

from decimal import Decimal

from qfexbot import BalanceEvent, BotContext, Event, Field, TimerEvent, hookimpl


class {cls}:
    """One instance per ``[bots.BOT.plugins.INSTANCE]`` table that uses ``{name}``."""

    config_schema = {{
        "min_balance": Field("non_negative_number", default=Decimal(100),
                             doc="warn when an account's available balance is below this"),
        "report_every": Field("duration", default=10.0, doc="seconds between summary lines"),
    }}

    def __init__(self, config) -> None:
        self.min_balance: Decimal = config["min_balance"]
        self.report_every = float(config["report_every"])
        self.balances: dict[str, Decimal] = {{}}  # account id -> last available balance

    @hookimpl
    def qfexbot_schedules(self, ctx: BotContext) -> list[tuple[str, float]]:
        """One timer: the summary report."""
        return [("report", self.report_every)]

    @hookimpl
    async def qfexbot_event(self, ctx: BotContext, event: Event) -> None:
        """React to balance changes and to the report timer."""
        match event:
            case BalanceEvent(account_id=account, available=available):
                if self.balances.get(account) == available:
                    return  # the venue pulses balances: only changes are news
                self.balances[account] = available
                alias = ctx.alias_of(account)
                ctx.log.info("{name}: %s available=%s", alias, available)
                if available < self.min_balance:
                    ctx.log.warning("{name}: %s is below %s", alias, self.min_balance)
            case TimerEvent(name="report"):
                total = sum(self.balances.values(), Decimal(0))
                ctx.log.info("{name}: %d accounts, total available %s", len(self.balances), total)
'''

_TEST = '''\
"""Tests of the {name} plugin: it runs in a real bot on the embedded simulator."""

from __future__ import annotations

import logging
from decimal import Decimal
{path_import}
import pytest

from qfexbot import BalanceEvent
from qfexbot.testing import run_bot

pytestmark = pytest.mark.trio
{plugin_dir}

async def test_logs_balances_and_warns_when_one_is_low(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with run_bot({use!r},{plugin_dirs} tmp_path=tmp_path,
                       options={{"min_balance": 100}}, accounts={{"desk-a": 500}}) as bot:
        desk_a = bot.account_id("desk-a")
        # The session's first balance event reaches the plugin.
        await bot.wait_for(lambda: bot.plugin.balances.get(desk_a) == Decimal(500))
        # A synthetic event, as if the venue had sent it.
        await bot.inject(BalanceEvent, "desk-a", available=Decimal(20))
        await bot.wait_for(lambda: "desk-a is below 100" in caplog.text, what="the warning")


async def test_reports_on_its_timer(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with run_bot({use!r},{plugin_dirs} tmp_path=tmp_path, options={{"report_every": 0.2}},
                       accounts={{"desk-a": 500, "desk-b": 250}}) as bot:
        await bot.wait_for(lambda: "2 accounts, total available 750" in caplog.text,
                           what="a report with both balances")
'''

_PACKAGE_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "{name}: a qfexbot plugin"
requires-python = ">=3.11"
dependencies = ["qfexbot"]

[project.optional-dependencies]
test = ["pytest>=8", "pytest-trio>=0.8"]

# How qfexbot finds the plugin once the package is installed: `use = "{name}"` in bots.toml.
[project.entry-points."qfexbot.plugins"]
{name} = "{module}:{cls}"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
trio_mode = true
pythonpath = ["src"]
testpaths = ["tests"]
"""

_PACKAGE_README = """\
# {dist}

A qfexbot plugin. Install it next to qfexbot (`pip install -e .`), then use it in bots.toml:

```toml
[bots.BOT.plugins.{name}]
min_balance = 100
```

Run its tests: `pip install -e ".[test]" && python -m pytest`.
"""


# -- planning and writing ---------------------------------------------------------------------


def plan_module(name: str, plugin_dir: Path, tests_dir: Path) -> dict[Path, str]:
    """Files for a local plugin module: ``plugin_dir/NAME.py`` and ``tests_dir/test_NAME.py``.

    Raises:
      ScaffoldError: ``name`` is not a valid plugin name.
    """
    _check_name(name)
    relative = Path(os.path.relpath(plugin_dir.resolve(), tests_dir.resolve()))
    test = _TEST.format(
        name=name,
        use=name,
        path_import="from pathlib import Path\n",
        plugin_dir=f'PLUGINS = Path(__file__).resolve().parent / "{relative.as_posix()}"\n',
        plugin_dirs=" plugin_dirs=[PLUGINS],",
    )
    return {
        plugin_dir / f"{name}.py": _PLUGIN.format(name=name, cls=class_name(name)),
        tests_dir / f"test_{name}.py": test,
    }


def plan_package(name: str, directory: Path) -> dict[Path, str]:
    """Files for an installable package ``directory/qfexbot-NAME`` (src layout, entry point in
    group ``qfexbot.plugins``, tests runnable without installing).

    Raises:
      ScaffoldError: ``name`` is not a valid plugin name.
    """
    _check_name(name)
    dist = f"qfexbot-{name.replace('_', '-')}"
    module = f"qfexbot_{name}"
    cls = class_name(name)
    root = directory / dist
    test = _TEST.format(
        name=name, use=f"{module}:{cls}", path_import="", plugin_dir="", plugin_dirs=""
    )
    return {
        root / "pyproject.toml": _PACKAGE_PYPROJECT.format(
            dist=dist, name=name, module=module, cls=cls
        ),
        root / "README.md": _PACKAGE_README.format(dist=dist, name=name),
        root / "src" / module / "__init__.py": _PLUGIN.format(name=name, cls=cls),
        root / "tests" / f"test_{name}.py": test,
    }


def write_files(files: dict[Path, str]) -> list[Path]:
    """Write every file, creating directories; refuse (writing nothing) if any exists.

    Raises:
      ScaffoldError: naming every file that already exists.
    """
    existing = [path for path in files if path.exists()]
    if existing:
        listed = ", ".join(str(p) for p in existing)
        raise ScaffoldError(f"refusing to overwrite existing file(s): {listed}")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x") as handle:  # "x": never clobber, even if created meanwhile
            handle.write(text)
    return list(files)


STARTER = ("bots.toml", "bots.real.toml")
"""The files ``qfexbot init`` copies from the package (``qfexbot/cli/starter``); the first is the
checkout's own demo bots.toml (a test keeps them equal)."""


def plan_init(directory: Path) -> dict[Path, str]:
    """The starter files of ``directory`` -> their text, plus the example plugin and its test."""
    starter = resources.files("qfexbot.cli") / "starter"
    files = {directory / name: (starter / name).read_text() for name in STARTER}
    files.update(plan_module("hello", directory / "plugins", directory / "tests"))
    return files


def init_command(directory: Path) -> int:
    """``qfexbot init DIR``: write the starter directory, or nothing if any of its files exists.

    Returns 0, or 1 with the reason on stderr."""
    try:
        written = write_files(plan_init(directory))
    except (ScaffoldError, OSError) as exc:
        print(f"qfexbot init: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"created {path}")
    print(
        textwrap.dedent(f"""
        Next: cd {directory}
          qfexbot run bots.toml              # the demo bots on the embedded simulator (Ctrl-C)
          python -m pytest tests             # the example plugin's test (pip install pytest-trio)
        For a real account: fill in bots.real.toml, export QFEX_PUBLIC_KEY and QFEX_SECRET, then
          qfexbot check bots.real.toml && qfexbot run bots.real.toml""")
    )
    return 0


def new_plugin_command(
    name: str, *, directory: str | None = None, tests: str = "tests", package: bool = False
) -> int:
    """``qfexbot new-plugin``: scaffold, print what was written and what to do next.

    Returns 0, or 1 with the reason on stderr.
    """
    try:
        if package:
            files = plan_package(name, Path(directory or "."))
        else:
            files = plan_module(name, Path(directory or "plugins"), Path(tests))
        written = write_files(files)
    except (ScaffoldError, OSError) as exc:
        print(f"qfexbot new-plugin: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"created {path}")
    if package:
        root = written[0].parent
        print(
            textwrap.dedent(f"""
            Next: cd {root} && pip install -e ".[test]" && python -m pytest
            Then use it in bots.toml (found through its entry point):

              [bots.BOT.plugins.{name}]
              min_balance = 100""")
        )
    else:
        print(
            textwrap.dedent(f"""
            Next: add it to a bot in bots.toml (its directory must be in runtime.plugin_dirs):

              [bots.BOT.plugins.{name}]
              min_balance = 100

            then: qfexbot check bots.toml && qfexbot run bots.toml --duration 20
            and run its test: python -m pytest {written[1]}""")
        )
    return 0
