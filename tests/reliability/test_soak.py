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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))

from soak import FAULT_KINDS, NET_FAULTS, SoakReport, check_delivery, run_soak, total_line

CI_SECONDS = 20.0
SEED = int(os.environ.get("QFEXBOT_SOAK_SEED") or random.SystemRandom().randrange(1, 2**31))
REPRODUCE = (f"seed={SEED}; reproduce with QFEXBOT_SOAK_SEED={SEED} python -m pytest "
             f"tests/reliability/test_soak.py, or python bench/soak.py --seed {SEED}")


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
    assert report.private_events_emitted >= 100, REPRODUCE
    # Most private events fall inside checked windows (cut only around faults).
    assert report.private_events_checked >= report.private_events_emitted // 2, REPRODUCE
    assert report.rss_start_kib > 0 and report.rss_end_kib > 0, REPRODUCE


async def test_soak_reports_a_dropped_event(tmp_path: Path) -> None:
    # No faults: every event is in a window, so the one forgotten must be reported missing.
    report = await run_soak(tmp_path, 3.0, seed=SEED, desks=2, vaults=2, fault_kinds=[],
                            drop_event=True)
    assert report.private_events_missing == 1, f"{REPRODUCE}: {report.problems}"
    assert len(report.problems) == 2, f"{REPRODUCE}: {report.problems}"  # the gap + its trace
    assert "1 private events emitted on a live connection never delivered" in report.problems[0]
    assert "trace" in report.problems[1]


async def test_soak_reports_a_duplicated_transfer(tmp_path: Path) -> None:
    report = await run_soak(tmp_path, 3.0, seed=SEED, desks=2, vaults=2, fault_kinds=[],
                            duplicate_transfer=True)
    assert [p for p in report.problems if p.startswith("journal done != ledger")] == \
        report.problems, f"{REPRODUCE}: {report.problems}"
    assert len(report.problems) == 1 and "only in ledger {('" in report.problems[0], (
        f"{REPRODUCE}: {report.problems}")


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


def test_per_seed_and_total_lines_carry_the_figures() -> None:
    one = SoakReport(seed=7, seconds=60, faults=Counter({"drop_one": 2, "net_stall": 1}),
                     reconnects=5, private_events_emitted=100, private_events_checked=90,
                     transfers_landed=12, rss_start_kib=1000, rss_end_kib=1100)
    two = SoakReport(seed=8, seconds=60, faults=Counter({"net_stall": 3}), reconnects=1,
                     private_events_emitted=50, private_events_checked=40,
                     private_events_missing=1, problems=["x"], rss_start_kib=1100,
                     rss_end_kib=1150)
    assert one.line() == ("seed=7 ok 60s faults=3 reconnects=5 private events emitted=100 "
                          "checked=90 missing=0 transfers=12 rss=1000->1100 KiB")
    assert two.line().startswith("seed=8 1 PROBLEMS")
    total = total_line([one, two], 900, 1200)
    assert total.startswith("TOTAL 2 runs (seeds 7,8): 1 PROBLEMS 120s faults=6 ")
    assert '{"drop_one": 2, "net_stall": 4}' in total
    assert "checked=130 missing=1 transfers=12 rss=900->1200 KiB" in total
    assert set(NET_FAULTS) <= set(FAULT_KINDS)
