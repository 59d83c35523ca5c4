"""Pure policy checks and the kill switch file."""

from __future__ import annotations

import os
from decimal import Decimal

import pytest
from journal_helpers import ACCOUNTS, DESK_A, DESK_B, TREASURY, make_limits

from qfexbot.money.policy import (
    ALLOWED,
    check_remaining,
    check_transfer,
    dry_run_decision,
    kill_switch_reason,
    pair_allowed,
    pause,
    resume,
)

NAMES = {v: k for k, v in ACCOUNTS.items()}
NOW = 1_800_000_000.0


def check(limits=None, amount="100", src=TREASURY, dst=DESK_A, spent="0", last=None, paused=None):
    return check_transfer(
        limits or make_limits(), src=src, dst=dst, amount=Decimal(amount), spent_24h=Decimal(spent),
        last_transfer_at=last, now=NOW, paused_reason=paused, accounts=ACCOUNTS, names=NAMES,
    )  # fmt: skip


def test_allowed():
    assert check() == ALLOWED and ALLOWED.allowed


@pytest.mark.parametrize(
    "kwargs, code, words",
    [
        ({"paused": "incident 42"}, "paused", ["kill switch", "incident 42"]),
        ({"amount": "0"}, "invalid_amount", ["positive", "0"]),
        ({"amount": "-5"}, "invalid_amount", ["-5"]),
        ({"amount": "NaN"}, "invalid_amount", ["NaN"]),
        ({"amount": "0.0000005"}, "below_minimum", ["0.0000005", "minimum transfer 0.01"]),
        ({"amount": "0.009"}, "below_minimum", ["0.009"]),
        ({"dst": TREASURY}, "same_account", ["treasury"]),
        (
            {"src": DESK_A, "dst": DESK_B},
            "pair_not_allowed",
            ["desk-a <-> desk-b", "allowed_pairs"],
        ),
        ({"amount": "1000.01"}, "max_transfer", ["1000.01", "max_transfer 1000"]),
        (
            {"spent": "9950", "amount": "100"},
            "max_daily",
            ["10050", "max_daily 10000", "already 9950"],
        ),
        (
            {"last": NOW - 10, "limits": make_limits(min_interval=30)},
            "min_interval",
            ["10.0 s ago", "30 s", "wait 20.0 s"],
        ),
    ],
)
def test_each_limit_refuses_with_a_readable_reason(kwargs, code, words):
    decision = check(**kwargs)
    assert not decision.allowed and decision.code == code
    for word in words:
        assert word in decision.reason, decision.reason


def test_boundaries_are_inclusive():
    assert check(amount="1000").allowed
    assert check(spent="9000", amount="1000").allowed
    assert check(last=NOW - 30, limits=make_limits(min_interval=30)).allowed


def test_unset_limits_are_not_enforced():
    limits = make_limits(max_transfer=None, max_daily=None, allowed_pairs=None, min_interval=None)
    assert check(limits=limits, src=DESK_A, dst=DESK_B, amount="1e9", last=NOW).allowed


def test_empty_allowed_pairs_allow_nothing():
    assert check(limits=make_limits(allowed_pairs=())).code == "pair_not_allowed"


def test_pairs_are_unordered_and_accept_ids_or_aliases():
    by_id = make_limits(allowed_pairs=[[DESK_A, TREASURY]])
    assert pair_allowed(by_id, TREASURY, DESK_A) and pair_allowed(by_id, DESK_A, TREASURY)
    by_alias = make_limits(allowed_pairs=[["desk-a", "treasury"]])
    assert pair_allowed(by_alias, TREASURY, DESK_A, ACCOUNTS)
    assert not pair_allowed(by_alias, TREASURY, DESK_A)  # aliases need the mapping
    with pytest.raises(ValueError, match="exactly two"):
        pair_allowed(make_limits(allowed_pairs=[["a", "b", "c"]]), "a", "b")


def test_min_remaining():
    limits = make_limits(min_remaining=Decimal(50))
    assert check_remaining(
        limits, src=TREASURY, amount=Decimal(50), src_available=Decimal(100)
    ).allowed
    decision = check_remaining(
        limits, src=TREASURY, amount=Decimal("50.01"), src_available=Decimal(100), names=NAMES
    )
    assert decision.code == "min_remaining"
    assert decision.reason == (
        "treasury has 100 available; moving 50.01 would leave 49.99, below min_remaining 50"
    )
    unknown = check_remaining(limits, src=TREASURY, amount=Decimal(1), src_available=None)
    assert (unknown.allowed, unknown.code) == (False, "balance_unknown")


def test_floats_in_limits_are_converted_exactly():
    decision = check(limits=make_limits(max_transfer=0.1), amount="0.1")
    assert decision.allowed


def test_dry_run_decision():
    decision = dry_run_decision(TREASURY, DESK_A, Decimal("12.50"), NAMES)
    assert not decision.allowed and decision.is_dry_run
    assert decision.reason == "dry run: would transfer 12.50 from treasury to desk-a"


def test_kill_switch(tmp_path):
    path = tmp_path / "var" / "PAUSED"
    assert kill_switch_reason(path) is None and kill_switch_reason(None) is None
    pause(path, "investigating\nthe desk")
    reason = kill_switch_reason(path)
    assert reason.startswith("investigating the desk (paused at ")
    assert [p.name for p in path.parent.iterdir()] == ["PAUSED"]  # no temp file left
    assert resume(path) is True
    assert kill_switch_reason(path) is None
    assert resume(path) is False
    path.write_text("")
    assert kill_switch_reason(path) == "paused"
    os.remove(path)


def test_unreadable_kill_switch_still_pauses(tmp_path):

    switch = tmp_path / "PAUSED"
    switch.write_bytes(b"\xff\xfe not utf-8")
    assert kill_switch_reason(switch).startswith("paused (kill switch")
