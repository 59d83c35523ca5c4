"""Chaos soak, bounded for CI: the runtime keeps working through every kind of venue fault.

The engine is bench/soak.py (``python bench/soak.py --minutes N`` for long runs); see its
docstring for the bots, the fault schedule and the four checks. ~25 s of faults here.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))

from soak import FAULT_KINDS, SoakReport, check_delivery, run_soak

CI_SECONDS = 20.0


async def test_soak_under_faults_loses_nothing(tmp_path: Path) -> None:
    report = await run_soak(tmp_path, CI_SECONDS, seed=11, desks=4, vaults=3)
    print(report.summary())
    assert report.problems == []
    # The soak did what it claims: every fault kind, real reconnects, real traffic.
    assert set(report.faults) == set(FAULT_KINDS), report.faults
    assert report.reconnects >= report.faults["drop_one"] + report.faults["drop_all"]
    assert report.parse_errors >= 1
    assert report.transfers_landed >= 20
    assert report.private_events_emitted >= 100
    # Most private events fall inside checked windows (cut only around faults).
    assert report.private_events_checked >= report.private_events_emitted // 2


def test_gap_check_reports_a_missing_event() -> None:
    history = {"a": {1: "f1", 2: "f2", 3: "f3", 4: "f4"}}
    frames = {"a": Counter({"f1": 1, "f2": 1, "f4": 1})}
    report = SoakReport()
    check_delivery(frames, {"a": [(1, 4)]}, history, report)  # 2, 3, 4 expected; 3 lost
    assert report.private_events_checked == 3
    assert len(report.problems) == 1 and "1 private events" in report.problems[0]
    clean = SoakReport()
    check_delivery(frames, {"a": [(0, 2), (3, 4)]}, history, clean)  # 3 fell in a gap
    assert clean.problems == [] and clean.private_events_checked == 3
