"""``qfexbot status`` against the quick-start demo as shipped: no ops_listen in bots.toml, the
endpoint on a port picked at start, found through the state file beside the journal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from qfexbot.cli.scaffold import init_command
from qfexbot.ops.state import state_path

RUN_SECONDS = 30  # stopped by the test long before; bounds a run the test could not stop


def _qfexbot(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qfexbot.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )


def _wait_for(path: Path, within: float) -> None:
    deadline = time.monotonic() + within
    while not path.exists():  # a file another process writes: nothing to wait on but the disk
        assert time.monotonic() < deadline, f"{path} did not appear within {within}s"
        time.sleep(0.05)


def test_status_finds_the_running_demo_and_says_when_it_is_gone(tmp_path: Path) -> None:
    assert init_command(tmp_path) == 0
    assert "ops_listen" not in (tmp_path / "bots.toml").read_text()
    journal = tmp_path / "var" / "journal.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "qfexbot.cli", "run", "bots.toml", "--duration", str(RUN_SECONDS)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(state_path(journal), within=30)
        state = json.loads(state_path(journal).read_text())
        assert state["pid"] == proc.pid and state["url"].startswith("http://127.0.0.1:")
        deadline = time.monotonic() + 30
        while True:  # the sessions come up a moment after the endpoint
            status = _qfexbot(tmp_path, "status", "bots.toml", "--json")
            data = json.loads(status.stdout)
            live = [s for s in data.get("sessions", []) if s.get("state") == "live"]
            if status.returncode == 0 and len(live) >= 4:
                break
            assert time.monotonic() < deadline, status.stdout + status.stderr
            time.sleep(0.2)
        assert data["running"] is True
        table = _qfexbot(tmp_path, "status", "bots.toml")
        assert table.returncode == 0 and "keep-funded" in table.stdout, table.stdout
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr[-3000:]
    assert not state_path(journal).exists(), "a clean stop removes its state file"
    gone = _qfexbot(tmp_path, "status", "bots.toml")
    assert gone.returncode == 1
    assert "no process is running this config" in gone.stdout


def test_a_state_file_left_by_a_killed_process_is_reported_as_such(tmp_path: Path) -> None:
    assert init_command(tmp_path) == 0
    journal = tmp_path / "var" / "journal.sqlite"
    journal.parent.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    pid = int(dead.stdout)  # that process has exited
    state_path(journal).write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": pid}))
    status = _qfexbot(tmp_path, "status", "bots.toml")
    assert status.returncode == 1
    assert f"was left by process {pid}, which has exited" in status.stdout


def test_status_says_when_the_endpoint_is_off(tmp_path: Path) -> None:
    assert init_command(tmp_path) == 0
    path = tmp_path / "bots.toml"
    path.write_text(path.read_text().replace("[runtime]\n", "[runtime]\nops_listen = false\n", 1))
    status = _qfexbot(tmp_path, "status", "bots.toml")
    assert status.returncode == 1
    assert "the ops endpoint is off ([runtime] ops_listen = false)" in status.stdout
