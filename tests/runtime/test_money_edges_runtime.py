"""Money edges 3a and 4 (issue 11) at the runtime: machine-wide account locks between two real
``qfexbot run`` processes, and the start-up refusal for an unresolved entry on accounts the
config no longer names."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import trio
from runtime_helpers import DESK_B, PRIMARY, write_config

from qfexbot.config import ConfigError
from qfexbot.journal import SqliteJournal
from qfexbot.runtime import Runtime

REPO = Path(__file__).parents[2]


def _start(config: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # QFEXBOT_LOCK_DIR: the suite's (conftest)
    with log.open("wb") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "qfexbot.cli", "run", str(config), "--log-format", "json"],
            cwd=config.parent, stdout=handle, stderr=handle, env=env, start_new_session=True,
        )  # fmt: skip


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before {text!r}:\n{log.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"no {text!r} within {timeout} s:\n{log.read_text()}")


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def test_a_second_process_on_the_same_accounts_refuses_until_the_first_dies(tmp_path):
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    # Two configs, two journals, same user id and accounts: only the account locks can tell.
    first_cfg = write_config(first_dir).path
    second_cfg = write_config(second_dir).path
    first = _start(first_cfg, first_dir / "log")
    try:
        _wait_for(first_dir / "log", "all bots started", first)
        second = _start(second_cfg, second_dir / "log")
        try:
            assert second.wait(timeout=30) == 1
        finally:
            _kill(second)
        out = (second_dir / "log").read_text()
        assert "being moved by another qfexbot process" in out
        assert f"pid {first.pid}" in out and str(first_cfg) in out
        assert "all bots started" not in out
        # The lock dies with its process (SIGKILL: nothing is cleaned up by hand).
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        again = _start(second_cfg, second_dir / "log2")
        try:
            _wait_for(second_dir / "log2", "all bots started", again)
        finally:
            _kill(again)
    finally:
        _kill(first)


async def _entry_in_doubt(journal_path: Path, *, owner: str | None, venue: str = "demo") -> str:
    async with await SqliteJournal.open(journal_path) as journal:
        entry = await journal.record_intent(
            bot="watch", plugin="p", venue=venue, src=PRIMARY, dst=DESK_B, amount=Decimal(70),
            reason="top-up", src_before=Decimal(100000), dst_before=Decimal(5000), owner=owner,
        )  # fmt: skip
        await journal.mark_sent(entry.id)
        await journal.mark_unknown(entry.id, "outcome unknown: read timeout")
    return entry.id


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        leaves.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return leaves


async def _start_up_problems(app) -> list[str]:
    """Run the runtime to the point of starting; the start-up refusal lines, or [] if it started."""
    runtime = Runtime(app)
    problems: list[str] = []
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(runtime.run)
                runtime.stop()
    except* ConfigError as group:
        problems = [line for exc in _leaves(group) for line in exc.errors]
    return problems


NO_DESK_B = '''
[venues.demo.accounts]
treasury = "primary"
desk-a = "11111111-1111-4111-8111-111111111111"
'''


def _without_desk_b(tmp_path: Path):
    app = write_config(tmp_path)
    text = app.path.read_text()
    head, rest = text.split("[venues.demo.accounts]")
    rest = rest.split("[venues.demo.session]", 1)[1]
    text = head + NO_DESK_B + "\n[venues.demo.session]" + rest
    text = text.replace("desk-b = 5000", "").replace('["desk-a", "desk-b"]', '["desk-a"]')
    text = text.replace("desk-a = 50, ", "desk-a = 50 ")
    app.path.write_text(text)
    from qfexbot.config import load_config

    return load_config(app.path)


async def test_start_up_refuses_an_entry_in_doubt_on_accounts_the_config_no_longer_names(tmp_path):
    app = _without_desk_b(tmp_path)
    entry_id = await _entry_in_doubt(app.runtime.journal, owner=PRIMARY)
    [problem] = await _start_up_problems(app)
    assert entry_id in problem
    assert PRIMARY in problem and DESK_B in problem  # the accounts, by id
    assert f"qfexbot journal resolve {entry_id} --applied" in problem
    assert "restore the venue" in problem
    # Once an operator resolved it, the same config starts.
    async with await SqliteJournal.open(app.runtime.journal) as journal:
        await journal.resolve(entry_id, False, "operator", "checked at the venue: not applied")
    assert await _start_up_problems(app) == []


async def test_an_old_entry_of_a_renamed_venue_blocks_start_up_too(tmp_path):
    # Written before entries carried the user id, by a venue now called something else: only
    # its venue name ties it to balances, so an operator decides.
    app = write_config(tmp_path)
    entry_id = await _entry_in_doubt(app.runtime.journal, owner=None, venue="old-name")
    [problem] = await _start_up_problems(app)
    assert entry_id in problem and "not recorded" in problem and "'old-name'" in problem


async def test_an_entry_of_a_renamed_venue_with_the_same_user_and_accounts_does_not_block(tmp_path):
    app = write_config(tmp_path)
    await _entry_in_doubt(app.runtime.journal, owner=PRIMARY, venue="old-name")
    assert await _start_up_problems(app) == []
