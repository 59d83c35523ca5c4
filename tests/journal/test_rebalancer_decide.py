"""Property tests of the rebalancer's decision: limits always hold; it converges and never flaps."""

from __future__ import annotations

import importlib.util
import math
import sys
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qfexbot.events import BalanceEvent


def _load_rebalancer():
    path = Path(__file__).resolve().parents[2] / "plugins" / "rebalancer.py"
    spec = importlib.util.spec_from_file_location("qfexbot_test_rebalancer", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while building classes
    spec.loader.exec_module(module)
    return module


rebalancer = _load_rebalancer()
Band, decide = rebalancer.Band, rebalancer.decide

TREASURY = "treasury"
CENT = Decimal("0.01")
money = st.integers(min_value=0, max_value=500_000).map(lambda c: Decimal(c) * CENT)
positive = st.integers(min_value=1, max_value=300_000).map(lambda c: Decimal(c) * CENT)


@st.composite
def bands(draw):
    low = draw(money)
    target = low + draw(st.integers(0, 50_000).map(lambda c: Decimal(c) * CENT))
    high = target + draw(st.integers(0, 50_000).map(lambda c: Decimal(c) * CENT))
    return Band(low, target, high)


@st.composite
def scenarios(draw):
    names = [f"desk-{i}" for i in range(draw(st.integers(1, 5)))]
    managed = {name: draw(bands()) for name in names}
    balances = {name: draw(money) for name in names}
    balances[TREASURY] = draw(money)
    allowed = draw(st.none() | st.lists(st.sampled_from(names), unique=True))
    limits = SimpleNamespace(
        max_transfer=draw(st.none() | positive),
        max_daily=draw(st.none() | positive),
        allowed_pairs=None if allowed is None else [[TREASURY, n] for n in allowed],
        min_interval=30.0,
        min_remaining=draw(st.none() | money),
    )
    busy = set(draw(st.lists(st.sampled_from([*names, TREASURY]), unique=True, max_size=2)))
    spent = draw(money)
    return balances, managed, limits, busy, spent


def apply(balances, proposals):
    out = dict(balances)
    for p in proposals:
        out[p.src] -= p.amount
        out[p.dst] += p.amount
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_never_violates_a_limit(scenario):
    balances, managed, limits, busy, spent = scenario
    proposals = decide(balances, TREASURY, managed, limits, busy=busy, spent_24h=spent)
    keep = limits.min_remaining or Decimal(0)
    if TREASURY in busy:
        assert proposals == []
    per_source: dict[str, Decimal] = {}
    seen = set()
    for p in proposals:
        desk = p.dst if p.src == TREASURY else p.src
        assert TREASURY in (p.src, p.dst) and desk in managed and desk != TREASURY
        assert desk not in seen, "at most one proposal per account"
        seen.add(desk)
        assert desk not in busy
        assert p.amount > 0 and p.amount == p.amount.quantize(CENT)
        if limits.max_transfer is not None:
            assert p.amount <= limits.max_transfer
        if limits.allowed_pairs is not None:
            assert [TREASURY, desk] in limits.allowed_pairs
        band, balance = managed[desk], balances[desk]
        if p.src == TREASURY:  # top-up: only below the band, never past target
            assert balance < band.min and balance + p.amount <= band.target
        else:  # sweep: only above the band, never below target
            assert balance > band.max and balance - p.amount >= band.target
        per_source[p.src] = per_source.get(p.src, Decimal(0)) + p.amount
    for src, total in per_source.items():
        assert total <= balances[src] - keep, "never moves more than the source has"
    if limits.max_daily is not None:
        assert sum((p.amount for p in proposals), Decimal(0)) <= max(
            limits.max_daily - spent, Decimal(0)
        )
    after = apply(balances, proposals)
    assert all(after[a] >= 0 for a in after)


@st.composite
def affordable(draw):
    names = [f"desk-{i}" for i in range(draw(st.integers(1, 5)))]
    managed = {name: draw(bands()) for name in names}
    balances = {name: draw(money) for name in names}
    keep = draw(st.integers(0, 100).map(lambda c: Decimal(c) * CENT))
    keep = min([keep, *(b.target for b in managed.values())])
    deficits = sum(
        (b.target - balances[n] for n, b in managed.items() if balances[n] < b.min), Decimal(0)
    )
    balances[TREASURY] = keep + deficits + draw(money)
    distance = max(abs(b.target - balances[n]) for n, b in managed.items())
    # At most ~20 partial moves per account, so the bound stays small enough to iterate.
    floor = (distance / 20).quantize(CENT) + CENT
    limits = SimpleNamespace(
        max_transfer=max(draw(positive), floor), max_daily=None, allowed_pairs=None,
        min_interval=0, min_remaining=keep,
    )  # fmt: skip
    return balances, managed, limits


@settings(max_examples=300, deadline=None)
@given(affordable())
def test_converges_within_a_bound_and_then_stays_quiet(scenario):
    balances, managed, limits = scenario
    total = sum(balances.values())
    distance = max(abs(b.target - balances[n]) for n, b in managed.items())
    bound = math.ceil(distance / limits.max_transfer) + 1
    for _ in range(bound):
        proposals = decide(balances, TREASURY, managed, limits)
        if not proposals:
            break
        balances = apply(balances, proposals)
        assert sum(balances.values()) == total  # money is only moved, never made
    assert all(band.contains(balances[n]) for n, band in managed.items()), balances
    for _ in range(3):  # in band: nothing to do, however often it is asked
        assert decide(balances, TREASURY, managed, limits) == []


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_in_band_accounts_are_left_alone(scenario):
    balances, managed, limits, busy, spent = scenario
    in_band = {n: band.target for n, band in managed.items()}
    balances = {**balances, **in_band}
    assert decide(balances, TREASURY, managed, limits, busy=busy, spent_24h=spent) == []


def test_partial_moves_say_why():
    limits = SimpleNamespace(
        max_transfer=Decimal(100), max_daily=None, allowed_pairs=None, min_remaining=None
    )
    [p] = decide(
        {TREASURY: Decimal(1000), "a": Decimal(0)},
        TREASURY,
        {"a": Band(Decimal(50), Decimal(250), Decimal(400))},
        limits,
    )
    assert (p.src, p.dst, p.amount) == (TREASURY, "a", Decimal(100))
    assert "below band min 50" in p.reason and "max_transfer 100" in p.reason


def test_sweep_and_top_up_priority():
    limits = SimpleNamespace(
        max_transfer=None, max_daily=Decimal(100), allowed_pairs=None, min_remaining=None
    )
    band = Band(Decimal(10), Decimal(50), Decimal(90))
    balances = {
        TREASURY: Decimal(1000),
        "poor": Decimal(0),
        "poorer": Decimal(-20),
        "rich": Decimal(200),
    }
    proposals = decide(balances, TREASURY, {"poor": band, "poorer": band, "rich": band}, limits)
    # Largest deficit first; the daily budget runs out before the sweep.
    assert [(p.dst, p.amount) for p in proposals] == [
        ("poorer", Decimal(70)),
        ("poor", Decimal(30)),
    ]


def test_band_validation():
    with pytest.raises(ValueError, match="min <= target <= max"):
        Band(Decimal(10), Decimal(5), Decimal(20))


def test_only_a_balance_whose_deposit_moved_by_the_transfer_clears_the_wait():
    # A pulse produced before the transfer but delivered after its HTTP response must not
    # count as "the balance now shows my transfer" (the rebalancer would decide on stale data).

    pending = rebalancer._Pending(
        before=Decimal(50),
        delta=Decimal(950),
        done_at=0.0,
        deadline=0.0,
        deposit_before=Decimal(50),
    )

    def event(available, deposit):
        return BalanceEvent(
            venue="v",
            account_id="a",
            received_at=1.0,
            available=Decimal(available),
            deposit=Decimal(deposit),
        )

    assert not rebalancer._shows(pending, event(48, 50))  # trading moved it; deposit did not
    assert rebalancer._shows(pending, event(998, 1000))
    no_deposit = rebalancer._Pending(
        before=Decimal(50), delta=Decimal(950), done_at=0.0, deadline=0.0
    )
    assert rebalancer._shows(no_deposit, event(48, 0))  # fallback: any change of available
