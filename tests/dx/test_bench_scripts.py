"""Every benchmark script still starts: its imports follow the package when modules move (a move
once left e2e.py and latency.py importing a name from its old module, and nothing noticed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if p.stem not in {"benchlib", "frameserver"})
"""The runnable scripts (benchlib is their library; frameserver is the child server they start,
which e2e and latency exercise)."""


def test_the_scripts_are_found() -> None:
    assert {"e2e.py", "latency.py", "bus.py", "sessions.py", "reconnect.py", "soak.py"} <= set(
        SCRIPTS
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_benchmark_script_imports_and_parses_its_arguments(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=BENCH.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
