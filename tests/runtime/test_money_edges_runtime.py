"""Money edges 3a and 4 (issue 11) at the runtime: machine-wide account locks between two real
``qfexbot run`` processes, and the start-up refusal for an unresolved entry on accounts the
config no longer names."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import trio
from runtime_helpers import DESK_B, PRIMARY, write_config

from qfexbot.config import ConfigError, load_config
from qfexbot.money.journal import SqliteJournal
from qfexbot.runtime import Runtime

sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))
from proc_helpers import (
    DESK_A,
    SimProcess,
    kill_group,
    runtime_table,
    start_run,
    venue_table,
    wait_exit,
    wait_for_log,
    write_plugins,
)

SECRET = "qfex_secret_account_locks_7e1f"
BOT = """
[bots.mover]
venue = "demo"
accounts = ["treasury", "desk-a"]
channels = ["balances"]

[bots.mover.limits]
min_interval = 0

[bots.mover.plugins.slowstop]
use = "slowstop:SlowStop"
marker = "marker"
"""


def _config(directory: Path, urls: dict[str, str]) -> Path:
    directory.mkdir()
    write_plugins(directory)
    (directory / "var").mkdir()
    config = directory / "bots.toml"
    config.write_text(runtime_table() + venue_table(simulator=False, urls=urls) + BOT)
    return config


def test_a_second_process_on_the_same_accounts_refuses_until_the_first_dies(tmp_path):
    # Two configs, two journals, one real venue (an external simulator process), the same user
    # id and accounts: only the machine-wide account locks can tell. QFEXBOT_LOCK_DIR is the
    # test session's (tests/conftest.py); subprocesses inherit it.
    sim = SimProcess(tmp_path, SECRET, {PRIMARY: "100000", DESK_A: "500"})
    env = {"QFEX_TEST_SECRET": SECRET}
    first_cfg = _config(tmp_path / "first", sim.urls)
    second_cfg = _config(tmp_path / "second", sim.urls)
    first = start_run(first_cfg, tmp_path / "first.log", env)
    try:
        wait_for_log(tmp_path / "first.log", "all bots started", first)
        second = start_run(second_cfg, tmp_path / "second.log", env)
        try:
            assert wait_exit(second, 30) == 1
        finally:
            kill_group(second)
        out = (tmp_path / "second.log").read_text()
        assert "being moved by another qfexbot process" in out
        assert f"pid {first.pid}" in out and str(first_cfg) in out
        assert "venue demo account treasury" in out and PRIMARY in out
        assert "all bots started" not in out
        # The locks die with their process (SIGKILL: nothing is cleaned up by hand).
        kill_group(first)
        again = start_run(second_cfg, tmp_path / "again.log", env)
        try:
            wait_for_log(tmp_path / "again.log", "all bots started", again)
        finally:
            kill_group(again)
    finally:
        kill_group(first)
        sim.close()


async def test_embedded_simulator_accounts_are_not_locked(tmp_path, nursery):
    # A simulator = true venue's accounts exist only inside its own process: two demo runs with
    # the same ids on one machine are no conflict.
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one, two = Runtime(write_config(tmp_path / "one")), Runtime(write_config(tmp_path / "two"))
    with trio.fail_after(30):
        await nursery.start(one.run)
        await nursery.start(two.run)
    one.stop()
    two.stop()


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


NO_DESK_B = """
[venues.demo.accounts]
treasury = "primary"
desk-a = "11111111-1111-4111-8111-111111111111"
"""


def _without_desk_b(tmp_path: Path):
    app = write_config(tmp_path)
    text = app.path.read_text()
    head, rest = text.split("[venues.demo.accounts]")
    rest = rest.split("[venues.demo.session]", 1)[1]
    text = head + NO_DESK_B + "\n[venues.demo.session]" + rest
    text = text.replace("desk-b = 5000", "").replace('["desk-a", "desk-b"]', '["desk-a"]')
    text = text.replace("desk-a = 50, ", "desk-a = 50 ")
    app.path.write_text(text)

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


async def test_an_entry_of_a_renamed_venue_with_the_same_user_and_accounts_does_not_block(
    tmp_path, monkeypatch
):
    # A real venue table (a simulator table's journal owner includes its table name, so
    # renaming one does leave its entries unnamed): the user id and accounts still name it.
    monkeypatch.setenv("QFEX_TEST_SECRET", SECRET)
    sim = SimProcess(tmp_path, SECRET, {PRIMARY: "100000", DESK_A: "500"})
    try:
        app = load_config(_config(tmp_path / "renamed", sim.urls))
        monkeypatch.chdir(app.path.parent)  # its plugin writes marker files relative to cwd
        await _entry_in_doubt(app.runtime.journal, owner=PRIMARY, venue="old-name")
        assert await _start_up_problems(app) == []
    finally:
        sim.close()
