"""The shipped bots.toml, run as the README says: the main job works on a fresh machine."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from qfexbot.config import load_config
from qfexbot.core.plugins import PluginLoadError
from qfexbot.runtime.plugins import build_plugin_host

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_and_its_plugins_validate():
    app = load_config(REPO / "bots.toml")
    assert any(v.simulator for v in app.venues.values())
    for bot in app.bots.values():
        try:
            build_plugin_host(
                bot, app.venues[bot.venue], plugin_dirs=app.runtime.plugin_dirs, actions=None
            )
        except PluginLoadError as exc:  # pragma: no cover - the message is the assertion
            raise AssertionError(str(exc)) from None


def test_qfexbot_run_with_shipped_bots_toml_logs_balances_and_rebalances(tmp_path):
    shutil.copy(REPO / "bots.toml", tmp_path / "bots.toml")
    shutil.copytree(
        REPO / "plugins", tmp_path / "plugins", ignore=shutil.ignore_patterns("__pycache__")
    )
    run = subprocess.run(
        [sys.executable, "-m", "qfexbot.cli", "run", "bots.toml", "--duration", "12"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    log = run.stderr
    # The example plugin logs live balance events for several subaccounts.
    accounts = set(re.findall(r"balance_logger: balance account=(\S+) available=", log))
    assert {"desk-a", "desk-b", "desk-c", "treasury"} <= accounts, log[-3000:]
    assert "runtime: stopped" in log
    # The rebalancer brought the desks into their bands through journaled, confirmed transfers.
    listing = subprocess.run(
        [sys.executable, "-m", "qfexbot.cli", "journal", "bots.toml", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert listing.returncode == 0, listing.stderr
    entries = [json.loads(line) for line in listing.stdout.splitlines()]
    transfers = [e for e in entries if e["kind"] == "transfer"]
    app = load_config(tmp_path / "bots.toml")
    alias = {v: k for k, v in app.venues["demo"].accounts.items()}
    moved = sorted((alias[e["src"]], alias[e["dst"]], Decimal(e["amount"])) for e in transfers)
    assert moved == [
        ("desk-b", "treasury", Decimal(2000)),
        ("treasury", "desk-a", Decimal(950)),
        ("treasury", "desk-c", Decimal(600)),
    ]
    assert {e["state"] for e in transfers} == {"done"}
    # Later balance lines show every desk inside its band.
    last = {}
    for account, available in re.findall(r"balance account=(desk-\w) available=(\S+)", log):
        last[account] = Decimal(available)
    assert Decimal(500) <= last["desk-a"] <= Decimal(2000)
    assert Decimal(1000) <= last["desk-b"] <= Decimal(4000)
    assert Decimal(500) <= last["desk-c"] <= Decimal(2000)


def test_the_demos_log_is_worth_reading(tmp_path):
    """Issue 15, "a log worth reading": changes, not repeats; amounts to the cent in messages;
    each state change once; fills with price and fee; a summary at shutdown; no server banner
    that looks like a line of the bot."""
    shutil.copy(REPO / "bots.toml", tmp_path / "bots.toml")
    run = subprocess.run(
        [sys.executable, "-m", "qfexbot.cli", "run", "bots.toml", "--duration", "8"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    log = run.stderr
    assert "Running on http" not in log, "hypercorn's banner"
    assert 'reason=""' not in log and "attempt=0" not in log, "empty fields of a state change"
    assert "balance_logger: session" not in log, "session changes are logged once, by the core"
    assert len(re.findall(r"session live venue=demo account=desk-a ", log)) == 1
    for value in re.findall(r"balance account=\S+ available=(\S+) equity=(\S+)", log):
        assert all(Decimal(v).as_tuple().exponent >= -2 for v in value), value
    fills = re.findall(r"runtime\.orders: fill (BUY|SELL) \S+ AAPL-USD @ \S+, fee \S+ (.*)", log)
    assert fills, log[-3000:]
    assert all("bot=trader plugin=demo_trader" in rest for _, rest in fills), fills[:3]
    fills = [side for side, _ in fills]
    [summary] = re.findall(r"runtime: run summary (.*)", log)
    assert 'transfers="3 done"' in summary and f"fills={len(fills)}" in summary, summary
    balances = len(re.findall(r"balance account=", log))
    assert balances < 4 * 8, f"{balances} balance lines in 8 s: repeats, not changes"
