"""Graceful shutdown of ``qfexbot run`` (a real subprocess against its embedded simulator).

SIGINT/SIGTERM: intake stops (sessions STOPPED), plugins are drained and their shutdown hooks
run, the journal is closed cleanly, the process exits 0 with a "stopped" log line. A second
signal forces the exit even while a shutdown hook hangs.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest
from proc_helpers import (
    DESK_A,
    DESK_B,
    kill_group,
    log_lines,
    runtime_table,
    start_run,
    venue_table,
    wait_exit,
    wait_for_log,
    write_plugins,
)

GRACEFUL_WITHIN = 15.0
FORCED_WITHIN = 5.0


def write_config(tmp_path: Path, delay: float) -> Path:
    write_plugins(tmp_path)
    (tmp_path / "var").mkdir(exist_ok=True)
    text = (
        runtime_table()
        + venue_table(simulator=True)
        + f"""
[bots.watch]
venue = "demo"
accounts = ["desk-a", "desk-b"]
channels = ["balances", "positions"]

[bots.watch.limits]
min_interval = 0

[bots.watch.plugins.slowstop]
use = "slowstop:SlowStop"
delay = {delay}
marker = "{tmp_path / "marker"}"

[bots.watch.plugins.transferrer]
use = "transferrer:Transferrer"
interval = 0.2
pairs = ["desk-a>desk-b", "desk-b>desk-a"]
"""
    )
    path = tmp_path / "bots.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_gracefully(tmp_path: Path, signum: int) -> None:
    config = write_config(tmp_path, delay=0.3)
    log = tmp_path / "run.log"
    proc = start_run(config, log)
    try:
        wait_for_log(log, "all bots started", proc)
        # Let a few transfers happen so journal writes are in flight when the signal lands.
        deadline = time.monotonic() + 20
        while sum(1 for line in log_lines(log) if line.get("msg") == "transfer done") < 2:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        proc.send_signal(signum)
        code = wait_exit(proc, GRACEFUL_WITHIN)
        assert code == 0, f"exit {code}:\n{log.read_text()[-3000:]}"
    finally:
        kill_group(proc)
    lines = log_lines(log)
    messages = [line.get("msg") for line in lines]
    assert messages[-1] == "stopped", messages[-5:]
    assert not [
        line
        for line in lines
        if line.get("level") in ("error", "critical")
        or "Traceback" in line.get("text", "")
        or "exc" in line
    ]
    # Intake stopped: both sessions reported STOPPED; the shutdown hook ran to its end.
    stopped = {line.get("account_id") for line in lines if line.get("msg") == "session stopped"}
    assert {DESK_A, DESK_B} <= stopped
    assert (tmp_path / "marker.stopped").exists()
    # Journal writes finished: no transfer left pending/sent, file consistent, WAL checkpointed.
    with sqlite3.connect(tmp_path / "var" / "journal.sqlite") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        states = dict(
            db.execute("select state, count(*) from entries where kind = 'transfer' group by state")
        )
    assert states.get("done", 0) >= 2
    assert not set(states) - {"done"}, states


def test_second_signal_forces_exit_while_a_shutdown_hook_hangs(tmp_path: Path) -> None:
    config = write_config(tmp_path, delay=120.0)
    log = tmp_path / "run.log"
    proc = start_run(config, log)
    try:
        wait_for_log(log, "all bots started", proc)
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + GRACEFUL_WITHIN
        while not (tmp_path / "marker.stopping").exists():
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            assert proc.poll() is None
            time.sleep(0.05)
        assert proc.poll() is None  # the graceful stop is waiting for the hook
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = wait_exit(proc, FORCED_WITHIN + 10)
        took = time.monotonic() - started
    finally:
        kill_group(proc)
    assert code is not None, "still running after the second signal"
    assert took < FORCED_WITHIN, f"second signal took {took:.1f}s to force the exit"
    assert "second signal: forcing exit" in [line.get("msg") for line in log_lines(log)]
    assert not (tmp_path / "marker.stopped").exists()
