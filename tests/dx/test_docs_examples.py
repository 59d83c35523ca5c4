"""Configuration examples in the docs pass ``qfexbot check`` as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _section_toml(page: Path, heading: str) -> str:
    """The first TOML block after ``heading`` on ``page``."""
    text = page.read_text()
    start = text.index(heading)
    match = re.search(r"```toml\n(.*?)```", text[start:], re.DOTALL)
    assert match, f"no TOML block after {heading!r} in {page.name}"
    return match.group(1)


def test_configuration_real_account_example_passes_check(tmp_path: Path) -> None:
    toml = _section_toml(DOCS / "configuration.md", "### A real QFEX account")
    (tmp_path / "bots.toml").write_text(toml)
    env = {**os.environ, "QFEX_PUBLIC_KEY": "qfex_pub_doc", "QFEX_SECRET": "qfex_secret_doc"}
    check = subprocess.run(
        [sys.executable, "-m", "qfexbot.cli", "check", "bots.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "OK" in check.stdout
