"""The issue's "done when": follow docs/quickstart.md literally in a fresh directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"
RUN_SECONDS = 4  # the page says 20; the sessions are live and logging after about one second


def command(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_quickstart_scaffold_configure_run_and_test(tmp_path):
    page = QUICKSTART.read_text()
    for step in (
        "qfexbot new-plugin hello",
        "qfexbot run bots.toml --duration 20",
        "python -m pytest tests/test_hello.py",
    ):
        assert step in page, f"the quick start no longer says {step!r}"
    [bots_toml] = re.findall(r"```toml\n(.*?)```", page, re.DOTALL)

    scaffold = command(tmp_path, "-m", "qfexbot.cli", "new-plugin", "hello")
    assert scaffold.returncode == 0, scaffold.stderr
    assert (tmp_path / "plugins" / "hello.py").is_file()
    assert (tmp_path / "tests" / "test_hello.py").is_file()

    (tmp_path / "bots.toml").write_text(bots_toml)
    check = command(tmp_path, "-m", "qfexbot.cli", "check", "bots.toml")
    assert check.returncode == 0, check.stderr

    run = command(tmp_path, "-m", "qfexbot.cli", "run", "bots.toml", "--duration", str(RUN_SECONDS))
    assert run.returncode == 0, run.stderr
    logs = run.stderr
    assert "plugins.hello.hello: hello: desk-a available=500" in logs, logs
    assert "WARNING plugins.hello.hello: hello: desk-b is below 100" in logs, logs
    assert "runtime: stopped" in logs

    tests = command(
        tmp_path,
        "-m",
        "pytest",
        "-q",
        "-W",
        "error",
        "-p",
        "no:cacheprovider",
        "tests/test_hello.py",
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout
