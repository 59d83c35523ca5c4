"""``qfexbot journal backup`` beside a running ``qfexbot run``, and the restore an operator does:
real processes, real files (docs/operations.md, "Backup and restore")."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

from runtime_helpers import write_config


def qfexbot(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qfexbot.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _done_transfers(path: Path) -> int:
    if not path.exists():
        return 0
    with closing(sqlite3.connect(path, timeout=5)) as db:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'entries'").fetchone() is None:
            return 0
        return db.execute(
            "SELECT COUNT(*) FROM entries WHERE kind = 'transfer' AND state = 'done'"
        ).fetchone()[0]


def test_backup_beside_a_running_process_then_restore_is_refused_until_accepted(tmp_path):
    app = write_config(tmp_path, recorder_options="transfer_amount = 10")
    journal = app.runtime.journal
    log = (tmp_path / "run.log").open("wb")
    run = subprocess.Popen(
        [sys.executable, "-m", "qfexbot.cli", "run", "bots.toml"],
        cwd=tmp_path,
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        while _done_transfers(journal) < 1:
            assert run.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no transfer within 30 s"
            time.sleep(0.1)
        made = qfexbot("journal", "backup", "backup.sqlite", "bots.toml", cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        assert "backed up to" in made.stdout and "1 entries, 0 transfers in doubt" in made.stdout
        again = qfexbot("journal", "backup", "backup.sqlite", "bots.toml", cwd=tmp_path)
        assert again.returncode == 1 and "exists; pass --force" in again.stderr
    finally:
        run.send_signal(signal.SIGINT)
        assert run.wait(20) == 0
        log.close()
    backup = tmp_path / "backup.sqlite"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    # A second run moves money again; the backup is now older than the journal.
    second = qfexbot("run", "bots.toml", "--duration", "5", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert _done_transfers(journal) == 2
    # Restore as documented: process stopped, -wal/-shm removed, backup copied into place.
    for suffix in ("-wal", "-shm"):
        journal.with_name(journal.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(backup, journal)
    refused = qfexbot("run", "bots.toml", "--duration", "5", cwd=tmp_path)
    assert refused.returncode == 1
    assert "older than the last state qfexbot saw" in refused.stderr
    assert "qfexbot journal accept-restore" in refused.stderr and "Traceback" not in refused.stderr
    assert _done_transfers(journal) == 1  # nothing moved
    accepted = qfexbot(
        "journal", "accept-restore", "bots.toml", "--reason", "venue checked", cwd=tmp_path
    )
    assert accepted.returncode == 0, accepted.stderr
    assert "accepted as the reference" in accepted.stdout
    runs = qfexbot("run", "bots.toml", "--duration", "5", cwd=tmp_path)
    assert runs.returncode == 0, runs.stderr
    assert _done_transfers(journal) == 2
