"""Every benchmark script still starts: its imports follow the package when modules move (a move
once left e2e.py and latency.py importing a name from its old module, and nothing noticed); e2e
and latency, run tiny, print every runner's figures, and a peer shown as a number really ran."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
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


PEER_MODULES = {
    "websockets": ("websockets",),
    "aiohttp": ("aiohttp",),
    "picows": ("picows", "orjson"),
}
"""The asyncio peers bench/peers.py runs (the optional ``bench`` extra), with what each imports."""


def _installed(peer: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in PEER_MODULES[peer])


def _run_tiny(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=BENCH.parent,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _result(stdout: str) -> dict[str, str]:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, stdout
    return dict(field.split("=", 1) for field in lines[0].split()[1:])


def _check_peer_fields(
    stdout: str, result: dict[str, str], keys: dict[str, list[str]], counted: str, sent: int
) -> None:
    """A peer installed shows numbers and counted every frame sent; one not installed, ``na``."""
    for peer, peer_keys in keys.items():
        values = [result[key] for key in peer_keys]
        if _installed(peer):
            assert all(math.isfinite(float(v)) for v in values), (peer, values)
            rounds = re.findall(rf"^round \d+ {peer}: .*\b{counted}=(\d+)\b", stdout, re.M)
            assert rounds, stdout
            assert all(int(n) == sent for n in rounds), (peer, rounds, sent)
        else:
            assert values == ["na"] * len(peer_keys), (peer, values)
            assert f"{peer}: skipped (" in stdout


def test_e2e_prints_every_peer_beside_qfexbot_in_its_result_line() -> None:
    frames = 2000
    stdout = _run_tiny("e2e.py", "--frames", str(frames), "--rounds", "1")
    result = _result(stdout)
    peer_keys = {peer: [f"{peer}_fps", f"ratio_{peer}"] for peer in PEER_MODULES}
    own = ["e2e_fps", "baseline_fps", "ratio"]
    assert set(result) == set(own).union(*peer_keys.values())
    assert all(math.isfinite(float(result[key])) and float(result[key]) > 0 for key in own)
    assert re.search(rf"^round 1 baseline: .*\bframes={frames}\b", stdout, re.M), stdout
    assert re.search(r"^round 1 qfexbot: .*'parse_errors': 0\b", stdout, re.M), stdout
    _check_peer_fields(stdout, result, peer_keys, "frames", frames)


def test_latency_prints_every_peer_beside_qfexbot_in_its_result_line() -> None:
    rate, seconds = 200, 1
    args = ("--rate", str(rate), "--accounts", "3", "--seconds", str(seconds), "--rounds", "1")
    stdout = _run_tiny("latency.py", *args)
    result = _result(stdout)
    quantiles = ("p50", "p99", "p999")
    own = [f"{q}_us" for q in quantiles] + [f"baseline_{q}_us" for q in quantiles]
    peer_keys = {peer: [f"{peer}_{q}_us" for q in quantiles] for peer in PEER_MODULES}
    assert set(result) == {"rate", "accounts", *own}.union(*peer_keys.values())
    assert (result["rate"], result["accounts"]) == (str(rate), "3")
    assert all(math.isfinite(float(result[key])) and float(result[key]) > 0 for key in own)
    for runner in ("baseline", "qfexbot"):
        assert re.search(rf"^round 1 {runner}: n={rate * seconds}\b", stdout, re.M), stdout
    _check_peer_fields(stdout, result, peer_keys, "n", rate * seconds)


@pytest.mark.parametrize("peer", sorted(PEER_MODULES))
def test_a_peer_that_cannot_be_imported_is_skipped_not_measured(peer: str, tmp_path: Path) -> None:
    for module in PEER_MODULES[peer]:
        (tmp_path / f"{module}.py").write_text('raise ImportError("hidden by the test")\n')
    done = subprocess.run(
        [sys.executable, str(BENCH / "peers.py"), "--peer", peer, "--mode", "e2e", "--port", "9"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=BENCH.parent,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["peer"] == peer
    assert "hidden by the test" in result["skipped"]
    assert "elapsed_s" not in result
