"""Chaos soak, bounded for CI: the runtime keeps working through every kind of venue fault.

The engine is bench/soak.py (``python bench/soak.py --minutes N --runs K`` for long runs); see
its docstring for the bots, the fault schedule and the four checks. ~20 s of faults here, with
a fresh seed on every run so each CI run explores a new schedule; the seed is in every failure
message (set ``QFEXBOT_SOAK_SEED`` to replay it).
"""

from __future__ import annotations

import os
import random
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))

from soak import (
    FAULT_KINDS,
    MONEY_FAULTS,
    NET_FAULTS,
    SoakReport,
    check_delivery,
    check_delivery_order,
    check_money,
    run_soak,
    total_line,
)

from qfexbot.money.journal import SqliteJournal
from qfexbot.sim.qfex.model import LedgerEntry

CI_SECONDS = 20.0
SEED = int(os.environ.get("QFEXBOT_SOAK_SEED") or random.SystemRandom().randrange(1, 2**31))
REPRODUCE = (
    f"seed={SEED}; reproduce with QFEXBOT_SOAK_SEED={SEED} python -m pytest "
    f"tests/reliability/test_soak.py, or python bench/soak.py --seed {SEED}"
)


async def test_soak_under_faults_loses_nothing(tmp_path: Path) -> None:
    report = await run_soak(tmp_path, CI_SECONDS, seed=SEED, desks=4, vaults=3)
    print(REPRODUCE)
    print(report.summary())
    print(report.line())
    assert report.problems == [], f"{REPRODUCE}\n" + "\n".join(report.problems)
    # The soak did what it claims: every fault kind, real reconnects, real traffic.
    assert set(report.faults) == set(FAULT_KINDS), f"{REPRODUCE}: {report.faults}"
    assert report.net_links_faulted >= 1, REPRODUCE
    assert report.reconnects >= report.faults["drop_one"] + report.faults["drop_all"], REPRODUCE
    assert report.parse_errors >= 1, REPRODUCE
    assert report.transfers_landed >= 20, REPRODUCE
    # The money edges really happened: a held POST applied late, another client's moves.
    assert report.held_posts_landed >= 1 and report.outside_moves >= 1, REPRODUCE
    assert set(report.holds) <= {"late_landing", "unexplained_deposits"}, REPRODUCE
    assert report.private_events_emitted >= 100, REPRODUCE
    # The contract over every event the sim wrote: each delivered once and in order, or lost
    # only where the plugin was told of the gap (check_delivery_order); none left uncounted.
    assert report.private_events_written >= 100, REPRODUCE
    assert (
        report.private_events_in_order + report.private_events_lost_in_gaps
        == report.private_events_written
    ), REPRODUCE
    # Most private events fall inside checked windows (cut only around faults; a connection
    # that outlives a network fault is checked again once it is over).
    assert report.private_events_checked >= report.private_events_emitted // 2, REPRODUCE
    assert report.rss_start_kib > 0 and report.rss_end_kib > 0, REPRODUCE


async def test_soak_reports_a_dropped_event(tmp_path: Path) -> None:
    # No faults: every event is in a window, so the one forgotten must be reported missing.
    report = await run_soak(
        tmp_path, 3.0, seed=SEED, desks=2, vaults=2, fault_kinds=[], drop_event=True
    )
    assert report.private_events_missing == 1, f"{REPRODUCE}: {report.problems}"
    # The window's gap, the same loss seen by the contract check (no gap signal), its trace.
    assert len(report.problems) == 3, f"{REPRODUCE}: {report.problems}"
    assert "1 private events emitted on a live connection never delivered" in report.problems[0]
    assert "with no gap signal" in report.problems[1], report.problems
    assert "trace" in report.problems[2]


async def test_soak_reports_a_duplicated_transfer(tmp_path: Path) -> None:
    report = await run_soak(
        tmp_path, 3.0, seed=SEED, desks=2, vaults=2, fault_kinds=[], duplicate_transfer=True
    )
    assert len(report.problems) == 1, f"{REPRODUCE}: {report.problems}"
    assert report.problems[0].startswith("journal done != ledger on "), REPRODUCE
    assert "only in the journal []" in report.problems[0], report.problems
    assert "not paused: [" in report.problems[0] and report.explained == [], report.problems


async def test_soak_reports_an_outside_move_labelled_as_ours(tmp_path: Path) -> None:
    # Nothing in doubt, no hold: a ledger move the journal never made is a silent difference.
    report = await run_soak(
        tmp_path, 3.0, seed=SEED, desks=2, vaults=2, fault_kinds=[], unmarked_outside=True
    )
    assert len(report.problems) == 1, f"{REPRODUCE}: {report.problems}"
    assert report.problems[0].startswith(
        "journal done != ledger on treasury <-> vault-1: "
        "only in the ledger [treasury->vault-1 0.05]"
    ), f"{REPRODUCE}: {report.problems}"
    assert "not paused: ['treasury', 'vault-1']" in report.problems[0], report.problems
    assert report.holds == Counter() and report.explained == [], REPRODUCE


A, B, C = "acct-a", "acct-b", "acct-c"
NAMES = {A: "a", B: "b", C: "c"}


async def journal_with(
    path: Path, rows: list[tuple[str, str, str, str]], holds: list[tuple[str, str, int]] = ()
) -> list[str]:
    """A real journal file: transfers (src, dst, amount, final state), then holds (account,
    code, index of the entry). Returns the entry ids."""
    journal = await SqliteJournal.open(path)
    try:
        ids = []
        for src, dst, amount, state in rows:
            entry = await journal.record_intent(
                bot="mover",
                plugin="p",
                venue="demo",
                src=src,
                dst=dst,
                amount=Decimal(amount),
                reason="t",
            )
            await journal.mark_sent(entry.id)
            if state == "done":
                await journal.mark_done(entry.id, "venue confirmed")
            elif state == "failed":
                await journal.mark_unknown(entry.id, "timeout")
                await journal.resolve(entry.id, False, "reconcile", "not applied")
            elif state == "unknown":
                await journal.mark_unknown(entry.id, "timeout")
            ids.append(entry.id)
        for account, code, index in holds:
            await journal.place_hold("demo", account, code, f"{code}: why", ids[index])
        return ids
    finally:
        await journal.close()


def move(src: str, dst: str, amount: str, **labels: object) -> LedgerEntry:
    return LedgerEntry(f"{src}{dst}{amount}", src, dst, Decimal(amount), 0.0, **labels)


def alert(entry: str, code: str) -> dict[str, str]:
    return {"message": "account held: money movement on it is paused", "entry": entry, "code": code}


async def test_money_check_explains_a_difference_only_on_held_accounts(tmp_path: Path) -> None:
    # A late landing after a retry in doubt: the held POST (1.5) landed, the journal says
    # failed; the retry (1.6) is unknown; an outside move (0.05) is not ours. Both held.
    ids = await journal_with(
        tmp_path / "j.sqlite",
        [(A, B, "1.5", "failed"), (A, B, "1.6", "unknown"), (B, C, "1.2", "done")],
        holds=[(A, "unexplained_deposits", 1), (B, "unexplained_deposits", 1)],
    )
    ledger = [move(A, B, "1.5", held_for=9.0), move(B, C, "1.2"), move(A, B, "0.05", outside=True)]
    report = SoakReport()
    alerts = [alert(ids[1], "unexplained_deposits")] * 2
    check_money(tmp_path / "j.sqlite", ledger, report, alerts=alerts, names=NAMES, now=0.0)
    assert report.problems == []
    [line] = report.explained
    assert line.startswith("a <-> b: only in the ledger [a->b 1.5], only in the journal []")
    assert f"{ids[0]} a->b 1.5 failed" in line
    assert line.endswith("both accounts paused (held: unexplained_deposits)")
    assert report.holds == Counter(unexplained_deposits=2) and report.unknown_at_end == 1
    assert (report.transfers_landed, report.held_posts_landed) == (2, 1)
    # The same difference with b neither held (its hold released) nor blocked by an entry in
    # doubt (the retry settled failed) is a problem naming b.
    unheld = tmp_path / "k.sqlite"
    ids = await journal_with(
        unheld,
        [(A, B, "1.5", "failed"), (A, B, "1.6", "failed"), (B, C, "1.2", "done")],
        holds=[(A, "unexplained_deposits", 1)],
    )
    report = SoakReport()
    check_money(
        unheld,
        ledger,
        report,
        alerts=[alert(ids[1], "unexplained_deposits")],
        names=NAMES,
        now=1e12,
    )
    assert report.explained == [] and len(report.problems) == 1, report.problems
    assert report.problems[0].startswith("journal done != ledger on a <-> b: only in the ledger")
    assert report.problems[0].endswith("not paused: ['b']")


async def test_money_check_counts_an_account_blocked_by_an_entry_in_doubt_as_paused(
    tmp_path: Path,
) -> None:
    # CI seed 79641707: a -> c landed but its response was lost (unknown); a is held for
    # another entry's unexplained deposits, so the entry gets no automatic verdict, and being
    # in doubt it refuses every transfer on c: the difference is explained, not silent.
    ids = await journal_with(
        tmp_path / "j.sqlite",
        [(A, B, "1.5", "unknown"), (A, C, "1.7", "unknown")],
        holds=[(A, "unexplained_deposits", 0), (B, "unexplained_deposits", 0)],
    )
    ledger = [move(A, C, "1.7"), move(A, B, "0.05", outside=True)]
    report = SoakReport()
    check_money(
        tmp_path / "j.sqlite",
        ledger,
        report,
        alerts=[alert(ids[0], "unexplained_deposits")] * 2,
        names=NAMES,
        now=1e12,
    )
    assert report.problems == [], report.problems
    [line] = report.explained
    assert line.startswith("a <-> c: only in the ledger [a->c 1.7], only in the journal []")
    assert f"blocked by unknown entry {ids[1]} next to a held account" in line


async def test_money_check_reports_holds_without_cause_or_alert_and_stale_unknowns(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.sqlite"
    ids = await journal_with(
        path,
        [(A, B, "1.5", "done"), (B, C, "1.2", "unknown")],
        holds=[(A, "late_landing", 0), (B, "unexplained_deposits", 0)],
    )
    ledger = [move(A, B, "1.5")]  # b -> c not applied; no POST held, no outside move
    report = SoakReport()
    check_money(path, ledger, report, alerts=[alert(ids[0], "late_landing")], names=NAMES, now=1e12)
    assert report.problems == [
        f"hold on a (late_landing, entry {ids[0]}): no held transfer POST of that amount landed",
        f"hold on b (unexplained_deposits, entry {ids[0]}) was placed with no ERROR alert",
    ], report.problems
    # An unknown on accounts that are not held, past the settle time, is a problem too.
    stale = tmp_path / "k.sqlite"
    [unknown] = await journal_with(stale, [(B, C, "1.2", "unknown")])
    report = SoakReport()
    check_money(stale, [], report, alerts=[], names=NAMES, now=1e12)
    assert report.unknown_at_end == 1 and len(report.problems) == 1, report.problems
    assert report.problems[0].startswith(f"transfer {unknown} (b -> c, 1.2) unknown for ")
    assert report.problems[0].endswith("on accounts that are not held")


def test_gap_check_reports_a_missing_event() -> None:
    history = {"a": {1: "f1", 2: "f2", 3: "f3", 4: "f4"}}
    frames = {"a": Counter({"f1": 1, "f2": 1, "f4": 1})}
    report = SoakReport()
    check_delivery(frames, {"a": [(1, 4)]}, history, report)  # 2, 3, 4 expected; 3 lost
    assert report.private_events_checked == 3 and report.private_events_missing == 1
    assert len(report.problems) == 1 and "1 private events" in report.problems[0]
    clean = SoakReport()
    check_delivery(frames, {"a": [(0, 2), (3, 4)]}, history, clean)  # 3 fell in a gap
    assert clean.problems == [] and clean.private_events_checked == 3


def test_order_check_allows_a_loss_only_behind_a_gap_signal() -> None:
    history = {"a": {1: "f1", 2: "f2", 3: "f3", 4: "f4", 5: "f5"}}
    written = {"a": {1, 2, 3, 4, 5}}
    live, stale = ("state", "live"), ("state", "stale")

    def ev(frame: str) -> tuple[str, str]:
        return ("event", frame)

    def check(log: list[tuple[str, str]]) -> SoakReport:
        report = SoakReport()
        check_delivery_order({"a": log}, history, written, report)
        return report

    clean = check([live, ev("f1"), ev("f2"), stale, live, ev("f4"), ev("f5")])  # 3 in a gap
    assert clean.problems == [], clean.problems
    assert (clean.private_events_in_order, clean.private_events_lost_in_gaps) == (4, 1)
    assert clean.private_events_written == 5
    silent = check([live, ev("f1"), ev("f2"), ev("f4"), ev("f5")])
    assert silent.problems == ["a: seqs [3] lost between 2 and 4 with no gap signal"]
    twice = check([live, ev("f1"), ev("f2"), ev("f2"), ev("f3"), ev("f4"), ev("f5")])
    assert twice.problems == ["a: seq 2 delivered twice"]
    swapped = check([live, ev("f1"), ev("f3"), ev("f2"), ev("f4"), ev("f5")])
    assert swapped.problems == [  # when 3 came, 2 was missing; then 2 came late
        "a: seqs [2] lost between 1 and 3 with no gap signal",
        "a: seq 2 delivered after seq 3",
    ]
    tail = check([live, ev("f1"), ev("f2"), ev("f3")])
    assert tail.problems == ["a: seqs [4, 5] after the last delivered (3) lost, no gap signal"]
    assert check([live, ev("f1"), ev("f2"), ev("f3"), stale]).problems == []
    # The states of the first start are no gap signal: losing the first event is a problem.
    first = check([("state", "connecting"), ("state", "resyncing"), live, ev("f2"), ev("f3")])
    assert first.problems[0] == "a: seqs [1] lost between 0 and 2 with no gap signal"
    # An event the sim numbered but never wrote (queued behind its close) is not expected.
    unwritten = SoakReport()
    log = [live, ev("f1"), ev("f2"), ev("f4"), ev("f5")]
    check_delivery_order({"a": log}, history, {"a": {1, 2, 4, 5}}, unwritten)
    assert unwritten.problems == [], unwritten.problems


def test_per_seed_and_total_lines_carry_the_figures() -> None:
    one = SoakReport(
        seed=7,
        seconds=60,
        faults=Counter({"drop_one": 2, "net_stall": 1}),
        reconnects=5,
        private_events_emitted=100,
        private_events_checked=90,
        transfers_landed=12,
        outside_moves=2,
        late_landings=1,
        holds=Counter(late_landing=2),
        unknown_at_end=1,
        explained=["x"],
        rss_start_kib=1000,
        rss_end_kib=1100,
    )
    two = SoakReport(
        seed=8,
        seconds=60,
        faults=Counter({"net_stall": 3}),
        reconnects=1,
        private_events_emitted=50,
        private_events_checked=40,
        private_events_missing=1,
        problems=["x"],
        rss_start_kib=1100,
        rss_end_kib=1150,
    )
    assert one.line() == (
        "seed=7 ok 60s faults=3 reconnects=5 private events emitted=100 "
        "checked=90 missing=0 transfers=12 outside=2 late_landings=1 "
        "holds=2 unknown=1 explained=1 rss=1000->1100 KiB"
    )
    assert two.line().startswith("seed=8 1 PROBLEMS")
    total = total_line([one, two], 900, 1200)
    assert total.startswith("TOTAL 2 runs (seeds 7,8): 1 PROBLEMS 120s faults=6 ")
    assert '{"drop_one": 2, "net_stall": 4}' in total
    assert (
        "checked=130 missing=1 transfers=12 outside=2 late_landings=1 holds=2 "
        '{"late_landing": 2} unknown=1 explained=1 rss=900->1200 KiB'
    ) in total
    assert set(NET_FAULTS) | set(MONEY_FAULTS) <= set(FAULT_KINDS)
