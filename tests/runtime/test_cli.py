"""The qfexbot command line as an operator uses it: real subprocesses, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import trio
from runtime_helpers import DESK_A, PRIMARY, write_config

from qfexbot.money.journal import SqliteJournal


def qfexbot(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qfexbot.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_check_ok_and_every_problem_listed_with_its_key_path(tmp_path):
    write_config(tmp_path)
    ok = qfexbot("check", "bots.toml", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "OK (1 bots, 1 venues, 1 plugins)" in ok.stdout
    text = (tmp_path / "bots.toml").read_text()
    text = text.replace('venue = "demo"', 'venue = "nowhere"').replace(
        "[runtime]", "[runtime]\nlog_levl = 1"
    )
    (tmp_path / "bad.toml").write_text(text)
    bad = qfexbot("check", "bad.toml", cwd=tmp_path)
    assert bad.returncode == 1
    assert 'runtime.log_levl: unknown key (did you mean "log_level"?)' in bad.stderr
    assert "bots.watch.venue" in bad.stderr and "nowhere" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_plugins_lists_discovered_plugins_and_their_hooks(tmp_path):
    write_config(tmp_path)
    result = qfexbot("plugins", "bots.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("recorder"))
    assert "qfexbot_event" in line


async def test_journal_list_resolve_pause_resume(tmp_path):
    app = write_config(tmp_path)
    journal = await SqliteJournal.open(app.runtime.journal)
    done = await journal.record_intent(
        bot="watch",
        plugin="p",
        venue="demo",
        src=PRIMARY,
        dst=DESK_A,
        amount=Decimal("12.5"),
        reason="test",
    )
    await journal.mark_sent(done.id)
    await journal.mark_done(done.id)
    doubt = await journal.record_intent(
        bot="watch",
        plugin="p",
        venue="demo",
        src=PRIMARY,
        dst=DESK_A,
        amount=Decimal(7),
        reason="lost response",
    )
    await journal.mark_sent(doubt.id)
    await journal.mark_unknown(doubt.id, "timeout")
    await journal.close()

    def run(*args):
        return qfexbot(*args, cwd=tmp_path)

    listing = await trio.to_thread.run_sync(run, "journal")
    assert listing.returncode == 0 and done.id[:8] in listing.stdout and "unknown" in listing.stdout
    unknown = await trio.to_thread.run_sync(run, "journal", "--state", "unknown", "--json")
    rows = [json.loads(line) for line in unknown.stdout.splitlines()]
    assert [(r["id"], r["state"], r["amount"]) for r in rows] == [(doubt.id, "unknown", "7")]
    refused = await trio.to_thread.run_sync(run, "journal", "resolve", done.id, "--applied")
    assert refused.returncode == 1 and "qfexbot journal resolve:" in refused.stderr
    resolved = await trio.to_thread.run_sync(run, "journal", "resolve", doubt.id, "--not-applied")
    assert resolved.returncode == 0, resolved.stderr
    after = await trio.to_thread.run_sync(run, "journal", "--state", "failed", "--json")
    assert [json.loads(x)["resolved_by"] for x in after.stdout.splitlines()] == ["operator"]

    paused = await trio.to_thread.run_sync(run, "pause", "--reason", "incident 42")
    assert paused.returncode == 0 and "incident 42" in (tmp_path / "var" / "PAUSED").read_text()
    resumed = await trio.to_thread.run_sync(run, "resume")
    assert resumed.returncode == 0 and not (tmp_path / "var" / "PAUSED").exists()


def test_a_journal_that_is_not_a_database_is_reported_without_a_traceback(tmp_path):
    write_config(tmp_path)
    (tmp_path / "var" / "journal.sqlite").write_text("not a database")
    for args in (("journal",), ("run", "--duration", "1")):
        result = qfexbot(*args, cwd=tmp_path)
        assert result.returncode == 1, result.stderr[-2000:]
        assert "Traceback" not in result.stderr and "Exceptions from Trio" not in result.stderr
        assert "not a database" in result.stderr.splitlines()[-1]
