"""Two plugins moving money on one account are refused before anything runs (issue 11, case 10).

Two rebalancers on overlapping desks fight each other up to ``max_daily``; so does one whose
treasury is another's desk. ``qfexbot check`` and ``qfexbot run`` name both key paths. A
treasury shared by rebalancers with disjoint desks, and a bot that runs dry, are allowed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from runtime_helpers import DESK_A, PRIMARY, write_config

from qfexbot.cli.run import check_command

REBALANCER = Path(__file__).resolve().parents[2] / "plugins" / "rebalancer.py"


def _rebalancer_bot(
    name: str,
    accounts: list[str],
    *,
    treasury: str = "treasury",
    managed: list[str] | None = None,
    dry_run: bool = False,
) -> str:
    accounts_text = ", ".join(f'"{a}"' for a in accounts)
    managed_text = "" if managed is None else f"accounts = [{', '.join(repr(a) for a in managed)}]"
    return f'''
    [bots.{name}]
    venue = "demo"
    accounts = [{accounts_text}]
    dry_run = {"true" if dry_run else "false"}

    [bots.{name}.plugins.rebalancer]
    treasury = "{treasury}"
    {managed_text}
    min = 100
    target = 200
    max = 300
    '''


def _config(tmp_path: Path, *bots: str):
    app = write_config(tmp_path, extra="".join(bots))
    shutil.copy(REBALANCER, tmp_path / "plugins" / "rebalancer.py")
    return app


def test_two_rebalancers_on_one_desk_are_refused_by_check_and_run(tmp_path, capsys):
    app = _config(
        tmp_path,
        _rebalancer_bot("keep-a", ["desk-a", "desk-b"]),
        _rebalancer_bot("keep-b", ["desk-b"]),
    )
    assert check_command(app) == 1
    err = capsys.readouterr().err
    assert (
        "bots.keep-b.accounts[0]: account desk-b (22222222-2222-4222-8222-222222222222) is also "
        "moved by bots.keep-a.plugins.rebalancer (bots.keep-a.accounts[1], own) and this plugin "
        "(own): two plugins moving money on one account fight each other up to max_daily"
    ) in err
    assert err.count("is also moved by") == 1  # desk-a and the shared treasury are fine
    run = subprocess.run(
        [sys.executable, "-m", "qfexbot.cli", "run", "bots.toml", "--duration", "5"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1
    assert "bots.keep-b.accounts[0]: account desk-b" in run.stderr
    assert "bots.keep-a.plugins.rebalancer" in run.stderr and "Traceback" not in run.stderr
    assert not app.runtime.journal.exists()  # refused before the journal was even opened


def test_one_rebalancers_treasury_being_anothers_desk_is_refused(tmp_path, capsys):
    app = _config(
        tmp_path,
        _rebalancer_bot("keep-a", ["desk-a"]),
        _rebalancer_bot("keep-b", ["desk-b"], treasury="desk-a"),
    )
    assert check_command(app) == 1
    err = capsys.readouterr().err
    assert (
        "bots.keep-b.plugins.rebalancer.treasury: account desk-a "
        f"({DESK_A}) is also moved by bots.keep-a.plugins.rebalancer "
        "(bots.keep-a.accounts[0], own) and this plugin (shared)"
    ) in err


def test_explicit_accounts_option_is_named_by_its_key_path(tmp_path, capsys):
    app = _config(
        tmp_path,
        _rebalancer_bot("keep-a", ["desk-a", "desk-b"], managed=["desk-a"]),
        _rebalancer_bot("keep-b", ["desk-b", "desk-a"], managed=["desk-a"]),
    )
    assert check_command(app) == 1
    err = capsys.readouterr().err
    assert (
        "bots.keep-b.plugins.rebalancer.accounts[0]: account desk-a "
        f"({DESK_A}) is also moved by bots.keep-a.plugins.rebalancer "
        "(bots.keep-a.plugins.rebalancer.accounts[0], own)"
    ) in err


def test_shared_treasury_with_disjoint_desks_and_a_dry_twin_are_allowed(tmp_path, capsys):
    app = _config(
        tmp_path,
        _rebalancer_bot("keep-a", ["desk-a"]),
        _rebalancer_bot("keep-b", ["desk-b"]),
        _rebalancer_bot("shadow-a", ["desk-a"], dry_run=True),
    )
    assert check_command(app) == 0, capsys.readouterr().err
    assert "OK (4 bots, 1 venues, 4 plugins)" in capsys.readouterr().out


def test_two_venue_tables_sharing_an_account_are_refused_by_check_and_run(tmp_path):
    """Case 3b through the command line: both key paths, from `check` and from `run`."""
    write_config(tmp_path)
    config = tmp_path / "bots.toml"
    config.write_text(
        config.read_text()
        + textwrap.dedent(f'''
    [venues.live]
    kind = "qfex"
    trade_url = "ws://127.0.0.1:9/"
    mds_url = "ws://127.0.0.1:9/"
    rest_url = "http://127.0.0.1:9"
    user_id = "{PRIMARY}"
    public_key = "qfex_pub_live"
    secret = {{env = "QFEX_SECRET"}}
    accounts = {{ main = "primary", desk = "{DESK_A}" }}

    [venues.live-too]
    kind = "qfex"
    trade_url = "ws://127.0.0.1:9/"
    mds_url = "ws://127.0.0.1:9/"
    rest_url = "http://127.0.0.1:9"
    user_id = "{PRIMARY}"
    public_key = "qfex_pub_live"
    secret = {{env = "QFEX_SECRET"}}
    accounts = {{ desk2 = "{DESK_A}" }}
    ''')
    )
    for command in ("check", "run"):
        result = subprocess.run(
            [sys.executable, "-m", "qfexbot.cli", command, "bots.toml"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1, command
        assert (
            f"venues.live-too.accounts.desk2: expected an account no other venue table "
            f"declares, got account {DESK_A}, also declared as "
            "venues.live.accounts.desk"
        ) in result.stderr, (command, result.stderr)
        assert "Traceback" not in result.stderr
