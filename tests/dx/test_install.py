"""qfexbot installed as a new user installs it: a fresh venv outside the checkout, ``pip install``
from a git URL (docs/quickstart.md step 1; here the checkout's own repository as ``git+file``),
then ``init``, ``check`` and ``run`` of the shipped rebalancer by name from an empty directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "docs" / "quickstart.md"
RUN_SECONDS = 8  # the rebalancer's first transfers land about a second after start


SECRETS = ("QFEX_PUBLIC_KEY", "QFEX_SECRET")


def _run(
    args: list[str], cwd: Path, timeout: float, **env: str
) -> subprocess.CompletedProcess[str]:
    """``args`` in ``cwd``, without this test run's credentials in the environment (``env``
    adds some)."""
    base = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base, "PYTHONDONTWRITEBYTECODE": "1", **env},
        check=False,
    )


def test_the_starter_bots_toml_is_the_checkouts_demo() -> None:
    """``qfexbot init`` ships the demo the README runs, so the two never drift apart."""
    starter = REPO / "qfexbot" / "cli" / "starter" / "bots.toml"
    assert starter.read_text() == (REPO / "bots.toml").read_text()


@pytest.fixture(scope="module")
def venv_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with qfexbot installed from the repository's git URL, as the page says."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the git-URL install cannot be tried")
    root = tmp_path_factory.mktemp("fresh")
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], root, 120)
    assert made.returncode == 0, made.stderr
    page = QUICKSTART.read_text()
    assert 'pip install "git+https://' in page, "the quick start no longer says it"
    installed = _run([str(venv / "bin" / "pip"), "install", "-q", f"git+file://{REPO}"], root, 600)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv / "bin"


def test_version_is_the_distributions(venv_bin: Path, tmp_path: Path) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    shown = _run([str(venv_bin / "qfexbot"), "--version"], tmp_path, 60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == f"qfexbot {version}"


def test_shipped_plugins_are_found_by_name_outside_the_checkout(
    venv_bin: Path, tmp_path: Path
) -> None:
    listed = _run([str(venv_bin / "qfexbot"), "plugins"], tmp_path, 60)  # no bots.toml yet
    assert listed.returncode == 0, listed.stderr
    for name in (
        "rebalancer",
        "balance_logger",
        "book_imbalance",
        "demo_trader",
        "notifier",
        "settler",
    ):
        line = next((ln for ln in listed.stdout.splitlines() if ln.startswith(f"{name} ")), "")
        assert f"entry point {name} = qfexbot_plugins.{name}" in line, listed.stdout


def test_init_check_and_run_the_rebalancer_from_an_empty_directory(
    venv_bin: Path, tmp_path: Path
) -> None:
    qfexbot = str(venv_bin / "qfexbot")
    work = tmp_path / "mybots"
    init = _run([qfexbot, "init", str(work)], tmp_path, 60)
    assert init.returncode == 0, init.stderr
    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*") if p.is_file()) == [
        "bots.real.toml",
        "bots.toml",
        "plugins/hello.py",
        "tests/test_hello.py",
    ]
    check = _run([qfexbot, "check", "bots.toml"], work, 60)
    assert check.returncode == 0, check.stdout + check.stderr

    run = _run([qfexbot, "run", "bots.toml", "--duration", str(RUN_SECONDS)], work, 120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    moves = re.findall(r"rebalancer: moving [\d.]+ from treasury to desk-a", run.stderr)
    assert moves, run.stderr[-3000:]

    journal = _run([qfexbot, "journal", "bots.toml", "--state", "done", "--json"], work, 60)
    assert journal.returncode == 0, journal.stderr
    assert '"desk-a"' in journal.stdout or "11111111-1111-4111-8111-111111111111" in journal.stdout


def test_real_account_template_passes_check_once_credentials_exist(
    venv_bin: Path, tmp_path: Path
) -> None:
    qfexbot = str(venv_bin / "qfexbot")
    assert _run([qfexbot, "init", "."], tmp_path, 60).returncode == 0
    without = _run([qfexbot, "check", "bots.real.toml"], tmp_path, 60)
    assert without.returncode != 0
    assert "QFEX_PUBLIC_KEY" in without.stdout + without.stderr
    secrets = {"QFEX_PUBLIC_KEY": "qfex_pub_x", "QFEX_SECRET": "qfex_secret_x"}
    ok = _run([qfexbot, "check", "bots.real.toml"], tmp_path, 60, **secrets)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "qfex_secret_x" not in ok.stdout + ok.stderr
