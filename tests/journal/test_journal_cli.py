"""Operator commands: journal list / resolve, pause / resume."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from journal_helpers import DESK_A, TREASURY, write_bots_toml

from qfexbot.cli import main
from qfexbot.cli.journal import (
    JournalCommandError,
    journal_list,
    journal_release,
    journal_resolve,
    pause,
    resume,
)
from qfexbot.money.journal import JournalLocked, SqliteJournal, SqliteStore, journal_holder
from qfexbot.money.killswitch import kill_switch_reason


@pytest.fixture
def filled(tmp_path):
    """A journal file with one done, one unknown and one refused entry; returns (path, ids)."""
    path = tmp_path / "journal.sqlite"
    store = SqliteStore(path)
    try:
        done = store.record_intent(
            bot="keep-funded", plugin="rebalancer", venue="demo", src=TREASURY, dst=DESK_A,
            amount=Decimal("250.00"), reason="top-up",
        )  # fmt: skip
        store.mark_sent(done.id)
        store.mark_done(done.id, "venue confirmed")
        unknown = store.record_intent(
            bot="keep-funded", plugin="rebalancer", venue="demo", src=DESK_A, dst=TREASURY,
            amount=Decimal(10), reason="sweep",
        )  # fmt: skip
        store.mark_sent(unknown.id)
        store.mark_unknown(unknown.id, "outcome unknown: read timeout")
        refused = store.record_refusal(bot="keep-funded", plugin="rebalancer", venue="demo",
                                       action="transfer", code="max_transfer",
                                       detail="amount 5000 exceeds max_transfer 1000")  # fmt: skip
    finally:
        store.close()
    return path, {"done": done.id, "unknown": unknown.id, "refused": refused.id}


def test_list_table(filled):
    path, ids = filled
    text = journal_list(path)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["created", "(UTC)", "id"]
    assert len(lines) == 4
    assert any(ids["done"] in line and "done" in line and "250.00" in line for line in lines)
    assert "outcome unknown: read timeout" in text
    only_unknown = journal_list(path, state="unknown")
    assert ids["unknown"] in only_unknown and ids["done"] not in only_unknown
    assert journal_list(path, state="pending") == "no entries in state pending"


def test_list_json_lines(filled):
    path, ids = filled
    rows = [json.loads(line) for line in journal_list(path, as_json=True).splitlines()]
    assert {r["id"]: r["state"] for r in rows} == {
        ids["done"]: "done",
        ids["unknown"]: "unknown",
        ids["refused"]: "refused",
    }
    assert next(r for r in rows if r["id"] == ids["done"])["amount"] == "250.00"


def test_resolve_by_operator(filled):
    path, ids = filled
    assert "marked failed by operator" in journal_resolve(path, ids["unknown"], applied=False)
    store = SqliteStore(path)
    try:
        entry = store.get(ids["unknown"])
        assert (entry.state, entry.resolved_by) == ("failed", "operator")
        assert store.events(entry.id)[-1]["by"] == "operator"
    finally:
        store.close()
    assert "[resolved by operator]" in journal_list(path)


@pytest.mark.parametrize("which", ["done", "refused"])
def test_resolve_refuses_entries_not_in_doubt(filled, which):
    path, ids = filled
    with pytest.raises(JournalCommandError, match="only pending, sent or unknown"):
        journal_resolve(path, ids[which], applied=True)


def test_resolve_and_list_report_missing_things(tmp_path, filled):
    path, _ = filled
    with pytest.raises(JournalCommandError, match="no journal entry nope"):
        journal_resolve(path, "nope", applied=True)
    with pytest.raises(JournalCommandError, match="no journal at"):
        journal_list(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()  # listing never creates a journal


def test_pause_and_resume(tmp_path):
    path = tmp_path / "var" / "PAUSED"
    assert "paused" in pause(path, "desk review")
    assert kill_switch_reason(path).startswith("desk review")
    assert "resumed" in resume(path)
    assert kill_switch_reason(path) is None
    assert "not paused" in resume(path)


async def test_one_process_per_journal_and_no_operator_resolution_mid_send(tmp_path):
    path = tmp_path / "journal.sqlite"
    running = await SqliteJournal.open(path)
    try:
        assert journal_holder(path) is not None  # this process holds it
        with pytest.raises(JournalLocked, match="in use by another qfexbot process"):
            await SqliteJournal.open(path)
        entry = await running.record_intent(
            bot="b", plugin="p", venue="v", src="a", dst="c", amount=Decimal(5), reason="r"
        )
        await running.mark_sent(entry.id)
        with pytest.raises(JournalCommandError, match="running qfexbot"):
            journal_resolve(path, entry.id, applied=False)
    finally:
        await running.close()
    assert journal_holder(path) is None
    # Once the process is gone the operator may settle it.
    assert "marked failed" in journal_resolve(path, entry.id, applied=False)


def test_account_holds_are_listed_and_released_by_the_operator(filled, tmp_path, capsys):
    path, ids = filled
    store = SqliteStore(path)
    try:
        store.place_hold("demo", DESK_A, "late_landing", "late landing of 250.00", ids["done"])
    finally:
        store.close()
    text = journal_list(path, names={DESK_A: "desk-a"})
    assert "ACCOUNT HOLDS" in text and "qfexbot journal release ACCOUNT" in text
    assert f"desk-a  [late_landing] (transfer {ids['done']}): late landing of 250.00" in text
    assert "ACCOUNT HOLDS" in journal_list(path, state="pending")  # shown even with no entries
    # A transfer in doubt touches both accounts: it is resolved first (release refuses before).
    with pytest.raises(JournalCommandError, match=f"still in doubt: {ids['unknown']}"):
        journal_release(path, "desk-a", {"desk-a": DESK_A})
    journal_resolve(path, ids["unknown"], applied=True)
    with pytest.raises(JournalCommandError, match="no active hold on account treasury"):
        journal_release(path, "treasury", {"treasury": TREASURY})
    assert journal_release(path, "desk-a", {"desk-a": DESK_A}) == (
        "released 1 hold(s) on desk-a: money may move on it again"
    )
    assert "ACCOUNT HOLDS" not in journal_list(path)
    # Through the command line, as an operator types it: `qfexbot journal release ALIAS`.
    store = SqliteStore(path)
    try:
        store.place_hold("demo", DESK_A, "unexplained_deposits", "another mover?", ids["unknown"])
    finally:
        store.close()
    config = write_bots_toml(tmp_path, path)
    assert main(["journal", "release", "desk-a", "--config", str(config)]) == 0
    assert "released 1 hold(s) on desk-a" in capsys.readouterr().out
    assert main(["journal", "release", "desk-a", str(config)]) == 1  # CONFIG positional too
    assert "no active hold on account desk-a" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # two different configs: refused, not a guess
        main(["journal", "release", "desk-a", str(config), "--config", "other.toml"])
    assert "two configs given" in capsys.readouterr().err
    # --state is checked: a typo is an error naming the states, not an empty list.
    assert main(["journal", str(config), "--state", "unknwn"]) == 1
    assert "--state 'unknwn' is no entry state; one of:" in capsys.readouterr().err
    store = SqliteStore(path)
    try:
        assert store.active_holds() == []
    finally:
        store.close()
