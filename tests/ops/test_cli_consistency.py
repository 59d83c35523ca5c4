"""Command-line habits an operator relies on: --dry-run on run, quiet when piped into head."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from qfexbot.cli.scaffold import init_command


def _qfexbot(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qfexbot.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )


def test_run_dry_run_journals_what_it_would_do_and_moves_nothing(tmp_path: Path) -> None:
    assert init_command(tmp_path) == 0
    run = _qfexbot(tmp_path, "run", "bots.toml", "--dry-run", "--duration", "6", timeout=90)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "dry run: would move" in run.stderr
    journal = _qfexbot(tmp_path, "journal", "bots.toml", "--json")
    entries = [json.loads(line) for line in journal.stdout.splitlines() if line.strip()]
    transfers = [e for e in entries if e.get("bot") == "keep-funded"]
    assert transfers, journal.stdout
    assert {e["state"] for e in transfers} == {"dry_run"}


def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`qfexbot plugins | head -0`: no traceback, the shell's SIGPIPE status."""
    with subprocess.Popen(
        [sys.executable, "-m", "qfexbot.cli", "plugins"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # the reader went away before anything was written
        stderr = process.stderr.read()
        assert process.wait(timeout=60) == 141
    assert stderr == b""


def test_check_reports_file_and_plugin_problems_in_one_pass(tmp_path: Path) -> None:
    """A problem in one bot's table no longer hides another bot's plugin problems until the
    first is fixed: one run of check lists both (each by key path)."""
    assert init_command(tmp_path) == 0
    path = tmp_path / "bots.toml"
    text = path.read_text()
    text = text.replace("max = 2000\nbands", 'max = "lots"\nbands', 1)  # the rebalancer's option
    text = text.replace('[bots.watch]\nvenue = "demo"', '[bots.watch]\nvenue = "demo"\ncolour = 1')
    path.write_text(text)
    check = _qfexbot(tmp_path, "check", "bots.toml")
    assert check.returncode == 1
    assert "2 problem(s)" in check.stderr
    assert "bots.watch.colour: unknown key" in check.stderr
    assert (
        'bots.keep-funded.plugins.rebalancer.max: expected a non-negative number, got "lots"'
        in (check.stderr)
    )
