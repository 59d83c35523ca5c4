"""Restart safety: SIGKILL ``qfexbot run`` at random points while it transfers; nothing is lost
or doubled.

A separate ``qfexbot sim`` process holds the ledger, so it survives the bot's death. The bot
reaches it as a real (non-simulator) venue over loopback, secret from the environment. Each run
transfers treasury <-> desk-a as fast as policy allows and is killed after a random delay;
the next start-up reconciles what the dead process left in doubt. After every restart the
journal's ``done`` transfers must all be in the ledger; after the last one (and the settle
time), a quiet run reconciles everything and journal and ledger must agree exactly.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from proc_helpers import (
    DESK_A,
    PRIMARY,
    SimProcess,
    kill_group,
    log_lines,
    runtime_table,
    start_run,
    venue_table,
    wait_exit,
    wait_for_log,
    write_plugins,
)

RUNS = 5
SECRET = "qfex_secret_restart_safety_3c9d"
SETTLE = 2.0  # = session.transfer_settle: quiet time before "not applied" may be declared


def bot_table(transferring: bool) -> str:
    return f"""
[bots.mover]
venue = "demo"
accounts = ["treasury", "desk-a"]
channels = ["balances"]

[bots.mover.limits]
max_transfer = 10
max_daily = 100000
min_interval = 0

[bots.mover.plugins.transferrer]
use = "transferrer:Transferrer"
enabled = {str(transferring).lower()}
interval = 0.02

[bots.mover.plugins.slowstop]
use = "slowstop:SlowStop"
marker = "marker"
"""


Key = tuple[str, str, Decimal]


def _all_logged(log: Path) -> bool:
    """Whether every entry the run logged as still in doubt was then logged as reconciled."""
    said = [(str(x.get("msg", "")), x.get("entry")) for x in log_lines(log)]
    doubt = {entry for msg, entry in said if msg.startswith("journal entry still in doubt")}
    done = {entry for msg, entry in said if msg.startswith("journal entry reconciled")}
    return doubt <= done


def journal_transfers(path: Path) -> tuple[Counter[Key], Counter[str]]:
    """(done transfers as (src, dst, amount) counts, count per state) read from the file."""
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "select src, dst, amount, state from entries where kind = 'transfer'"
        ).fetchall()
    done = Counter(
        (src, dst, Decimal(amount)) for src, dst, amount, state in rows if state == "done"
    )
    return done, Counter(state for *_, state in rows)


def ledger(sim: SimProcess) -> Counter[Key]:
    rows = sim.get("/_sim/ledger")["data"]
    return Counter((r["src"], r["dst"], Decimal(r["amount"])) for r in rows)


@pytest.fixture
def sim(tmp_path: Path):
    process = SimProcess(tmp_path, SECRET, {PRIMARY: "100000", DESK_A: "500"})
    try:
        yield process
    finally:
        process.close()


def test_sigkill_during_transfers_never_loses_or_doubles_money(
    tmp_path: Path, sim: SimProcess
) -> None:
    write_plugins(tmp_path)
    (tmp_path / "var").mkdir()
    head = runtime_table() + venue_table(simulator=False, urls=sim.urls)
    run_config = tmp_path / "bots.toml"
    run_config.write_text(head + bot_table(transferring=True))
    quiet_config = tmp_path / "quiet.toml"
    quiet_config.write_text(head + bot_table(transferring=False))
    journal = tmp_path / "var" / "journal.sqlite"
    env = {"QFEX_TEST_SECRET": SECRET}
    rng = random.Random(20261122)
    kills_with_doubt = 0
    for run in range(RUNS):
        log = tmp_path / f"run{run}.log"
        proc = start_run(run_config, log, env)
        try:
            wait_for_log(log, "all bots started", proc)
            # After each restart: every transfer the journal calls done really landed.
            done, _ = journal_transfers(journal)
            assert not done - ledger(sim), f"run {run}: done in the journal, not in the ledger"
            time.sleep(rng.uniform(0.2, 1.2))
        finally:
            kill_group(proc)  # SIGKILL: no shutdown, no journal close
        _, states = journal_transfers(journal)
        kills_with_doubt += bool(states["pending"] + states["sent"] + states["unknown"])
        time.sleep(0.5)
    time.sleep(SETTLE)
    log = tmp_path / "quiet.log"
    proc = start_run(quiet_config, log, env)
    try:
        wait_for_log(log, "all bots started", proc)
        # "Not applied" needs transfer_settle of quiet time seen by this process (time before a
        # restart is no evidence), so entries still in doubt settle at a periodic pass.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            _, states = journal_transfers(journal)
            if not states["pending"] + states["sent"] + states["unknown"] and _all_logged(log):
                break  # settled in the journal, and each settling logged (it follows the commit)
            time.sleep(0.2)
    finally:
        proc.send_signal(2)
        assert wait_exit(proc, 15) == 0, log.read_text()[-3000:]
    done, states = journal_transfers(journal)
    landed = ledger(sim)
    assert sum(landed.values()) >= RUNS, "the runs should have moved money"
    assert states["pending"] == states["sent"] == states["unknown"] == 0, states
    assert done == landed, (done - landed, landed - done)
    quiet_lines = log_lines(log)
    in_doubt = {
        line.get("entry")
        for line in quiet_lines
        if str(line.get("msg", "")).startswith("journal entry still in doubt")
    }
    settled = {
        line.get("entry")
        for line in quiet_lines
        if str(line.get("msg", "")).startswith("journal entry reconciled")
    }
    assert in_doubt <= settled, in_doubt - settled
    reconciled_at_start = sum(
        1
        for run in range(RUNS)
        for line in log_lines(tmp_path / f"run{run}.log")
        if str(line.get("msg", "")).startswith("journal entry reconciled")
    )
    # The sim's balances agree with the journal too: desk-a got exactly the net of done moves.
    balances = sim.get("/_sim/state")["accounts"]
    net = sum(
        (amount * count * (1 if dst == DESK_A else -1))
        for (src, dst, amount), count in done.items()
    )
    assert Decimal(str(balances[DESK_A]["balance"]["available_balance"])) == Decimal(500) + net
    print(
        f"restart safety: {RUNS} kills ({kills_with_doubt} left a transfer in doubt, "
        f"{reconciled_at_start} reconciled by a restart), {sum(landed.values())} transfers "
        "landed, journal == ledger"
    )
