"""The rebalancer plugin driven through the real plugin host, dispatcher and buses.

The venue is an in-test ActionsBackend: it applies transfers to in-memory balances and, like the
venue's balance pulses, publishes BalanceEvents on the accounts' buses. Time is trio's autojump
clock, so minutes of decisions run in milliseconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio

from qfexbot.config import load_config, parse_config
from qfexbot.core.bus import Bus
from qfexbot.core.dispatch import Dispatcher
from qfexbot.core.plugins import PluginLoadError
from qfexbot.events import BalanceEvent, ResyncEvent, TransferOutcomeEvent
from qfexbot.money.transfers import TransferResult
from qfexbot.runtime.plugins import build_plugin_host

REPO = Path(__file__).resolve().parents[2]
TREASURY = "0020ce8e-eaee-480e-8d7f-b9241d756ee5"
DESK_A = "11111111-1111-4111-8111-111111111111"
DESK_B = "22222222-2222-4222-8222-222222222222"
D = Decimal

# Script entries: a TransferResult to return instead of applying the transfer.
Script = Callable[[str, str, Decimal], TransferResult | None]


class Venue:
    """Test double of the venue behind ``ctx``: balances, a ledger, balance pulses."""

    def __init__(self, balances: dict[str, Decimal], buses: dict[str, Bus]) -> None:
        self.balances = dict(balances)
        self.buses = buses
        self.calls: list[tuple[float, str, str, Decimal]] = []  # every transfer asked for
        self.ledger: list[tuple[float, str, str, Decimal]] = []  # the ones applied
        self.reads: list[str] = []
        self.equity: dict[str, list[tuple[str, Decimal]]] = {}
        self.script: Script = lambda src, dst, amount: None

    async def transfer(
        self, bot: str, plugin: str, src: str, dst: str, amount: Decimal, reason: str
    ) -> TransferResult:
        now = trio.current_time()
        self.calls.append((now, src, dst, amount))
        forced = self.script(src, dst, amount)
        if forced is not None:
            return forced
        assert self.balances[src] >= amount, "the plugin moved more than the source has"
        self.balances[src] -= amount
        self.balances[dst] += amount
        self.ledger.append((now, src, dst, amount))
        return TransferResult(f"e{len(self.calls)}", "done", "venue confirmed")

    def balance_event(self, account: str, available: Decimal | None = None) -> BalanceEvent:
        value = self.balances[account] if available is None else available
        return BalanceEvent(venue="v", account_id=account, received_at=time.time(),
                            available=value)  # fmt: skip

    async def pulse(self) -> None:
        """Publish every bus account's balance, as the venue's periodic balance pulse does."""
        for account, bus in self.buses.items():
            await bus.publish(self.balance_event(account))

    async def positions(self, bot: str, plugin: str, account: str) -> ResyncEvent:
        self.reads.append(account)
        return ResyncEvent(venue="v", account_id=account, received_at=time.time(),
                           balance=self.balance_event(account))  # fmt: skip

    async def account_equity(
        self, bot: str, plugin: str, account: str, duration: str = "1w"
    ) -> list[tuple[str, Decimal]]:
        return self.equity.get(account, [])

    def moves(self) -> list[tuple[str, str, Decimal]]:
        return [(src, dst, amount) for _, src, dst, amount in self.ledger]


def app_config(options: dict[str, Any]):
    data = {
        "runtime": {"plugin_dirs": [str(REPO / "plugins")]},
        "venues": {"v": {
            "kind": "qfex", "simulator": True, "user_id": TREASURY, "public_key": "qfex_pub_t",
            "secret": "qfex_secret_t",
            "accounts": {"treasury": "primary", "desk-a": DESK_A, "desk-b": DESK_B},
        }},
        "bots": {"b": {"venue": "v", "accounts": ["desk-a", "desk-b"],
                       "plugins": {"rebalancer": options}}},
    }  # fmt: skip
    return parse_config(data, base_dir=REPO)


BASE = {"min": 500, "target": 1000, "max": 2000, "interval": "10s", "settle_timeout": "60s",
        "retry_after": "60s", "max_transfer": 2000}  # fmt: skip


@asynccontextmanager
async def running(
    balances: dict[str, Decimal],
    *,
    pulse_every: float | None = 1.0,
    venue_type: type[Venue] | None = None,
    **options: Any,
) -> AsyncIterator[Venue]:
    """Run the rebalancer of bot ``b`` against a ``Venue``; time starts at 0 (autojump)."""
    app = app_config({**BASE, **options})
    buses = {DESK_A: Bus(DESK_A, "v"), DESK_B: Bus(DESK_B, "v")}
    venue = (venue_type or Venue)(balances, buses)
    host = build_plugin_host(
        app.bots["b"], app.venues["v"], plugin_dirs=app.runtime.plugin_dirs, actions=venue
    )
    for bus in buses.values():
        host.subscribe(bus)
    dispatcher = Dispatcher(host)
    async with trio.open_nursery() as nursery:
        await nursery.start(dispatcher.run)
        await venue.pulse()
        if pulse_every is not None:

            async def pulses() -> None:
                while True:
                    await trio.sleep(pulse_every)
                    await venue.pulse()

            nursery.start_soon(pulses)
        yield venue
        assert not host.slots[0].disabled, host.slots[0].disabled_reason
        assert host.slots[0].failures == 0
        dispatcher.stop()
        nursery.cancel_scope.cancel()


async def until(t: float) -> None:
    """Sleep until trio time ``t`` (ticks of a 10 s interval fire at 10, 20, ...)."""
    await trio.sleep_until(t)


def start(a: int, b: int, treasury: int = 10000) -> dict[str, Decimal]:
    return {TREASURY: D(treasury), DESK_A: D(a), DESK_B: D(b)}


async def test_brings_desks_into_band_in_order_then_stays_quiet(autojump_clock, caplog):
    caplog.set_level(logging.INFO)
    async with running(start(50, 5000)) as venue:
        await until(35)
        # Tick 10: top-ups first (desk-a 50 -> 1000), then the sweep, capped by max_transfer.
        # Tick 20: the pulse at 11 s showed desk-b at 3000, so it sweeps the rest.
        assert [(t, *m) for t, *m in venue.ledger] == [
            (10, TREASURY, DESK_A, D(950)),
            (10, DESK_B, TREASURY, D(2000)),
            (20, DESK_B, TREASURY, D(2000)),
        ]
        assert venue.balances == start(1000, 1000, treasury=10000 - 950 + 4000)
        # Balances drift inside their bands: nothing happens, however long we wait.
        venue.balances[DESK_A], venue.balances[DESK_B] = D(1999), D(501)
        await until(200)
        assert len(venue.ledger) == 3
        # Leaving the band again is acted on, once.
        venue.balances[DESK_A] = D("2100.50")
        await until(300)
        assert venue.moves()[3:] == [(DESK_A, TREASURY, D("1100.50"))]
    text = caplog.text
    assert (
        "moving 950.00 from treasury to desk-a: top-up: desk-a has 50, below band min 500" in text
    )
    assert "desk-b in band: 1000 within [500, 2000]" in text


async def test_waits_for_a_balance_event_showing_the_transfer(autojump_clock, caplog):
    async with running(start(1000, 5000), pulse_every=None) as venue:
        await until(15)
        assert venue.moves() == [(DESK_B, TREASURY, D(2000))]
        # A late event from before the transfer (same balance as decided on) is not proof.
        await venue.buses[DESK_B].publish(venue.balance_event(DESK_B, D(5000)))
        await until(65)
        assert len(venue.calls) == 1, "decided again on a balance that did not show the transfer"
        assert DESK_B not in venue.reads
        # settle_timeout (60 s after the transfer at 10 s) passed: desk-b is read afresh (3000)
        # at the tick of 70 s and the rest is swept.
        await until(75)
        assert DESK_B in venue.reads
        assert venue.moves() == [(DESK_B, TREASURY, D(2000))] * 2
    assert "no balance event for desk-b showed the last transfer within settle_timeout" in (
        caplog.text
    )


async def test_refusal_is_not_retried_every_tick(autojump_clock, caplog):
    refused = TransferResult("r1", "refused", "pair treasury -> desk-a not allowed",
                             "pair_not_allowed")  # fmt: skip
    async with running(start(50, 1000)) as venue:
        venue.script = lambda src, dst, amount: refused
        await until(65)
        assert [t for t, *_ in venue.calls] == [10]
        await until(75)
        assert [t for t, *_ in venue.calls] == [10, 70]
    assert "refused by policy [pair_not_allowed]: pair treasury -> desk-a not allowed" in (
        caplog.text
    )


async def test_kill_switch_refusal_holds_every_account(autojump_clock):
    paused = TransferResult("r1", "refused", "money movement paused", "paused")
    async with running(start(50, 5000)) as venue:
        venue.script = lambda src, dst, amount: paused
        await until(65)
        # Only the first proposal of the round was tried: the sweep would be paused as well.
        assert [(t, dst) for t, _, dst, _ in venue.calls] == [(10, DESK_A)]
        venue.script = lambda src, dst, amount: None  # resumed
        await until(75)
        assert venue.moves() == [(TREASURY, DESK_A, D(950)), (DESK_B, TREASURY, D(2000))]


async def test_unknown_outcome_blocks_until_the_journal_resolves_it(autojump_clock, caplog):
    caplog.set_level(logging.INFO)
    unknown = TransferResult("u1", "unknown", "outcome unknown: timeout")
    async with running(start(50, 5000)) as venue:
        venue.script = lambda src, dst, amount: unknown if not venue.calls[:-1] else None
        await until(35)
        # The top-up's outcome is unknown: nothing touching the treasury is tried any more,
        # not even the sweep of the same round.
        assert [(t, dst) for t, _, dst, _ in venue.calls] == [(10, DESK_A)]
        # Reconciliation finds it was not applied; the journal's outcome event lifts the block.
        await venue.buses[DESK_A].publish(TransferOutcomeEvent(
            venue="v", account_id=TREASURY, received_at=time.time(), entry_id="u1",
            src=TREASURY, dst=DESK_A, amount=D(950), state="failed"))  # fmt: skip
        await until(45)
        assert venue.moves() == [(TREASURY, DESK_A, D(950)), (DESK_B, TREASURY, D(2000))]
        assert [t for t, *_ in venue.ledger] == [40, 40]
    text = caplog.text
    assert (
        "transfer u1 treasury -> desk-a 950.00 ended unknown (outcome unknown: timeout); no "
        "action on treasury or desk-a until the journal resolves it"
    ) in text
    assert "transfer u1 resolved as failed; acting on treasury and desk-a again" in text


async def test_unknown_outcome_is_probed_again_after_retry_after(autojump_clock):
    unknown = TransferResult("u1", "unknown", "outcome unknown: timeout")
    async with running(start(50, 1000)) as venue:
        venue.script = lambda src, dst, amount: unknown if len(venue.calls) == 1 else None
        await until(65)
        assert len(venue.calls) == 1
        await until(75)  # no outcome event came: asked again at 70 s (the journal decides)
        assert venue.moves() == [(TREASURY, DESK_A, D(950))]


async def test_dry_run_is_logged_and_not_repeated_every_tick(autojump_clock, caplog):
    caplog.set_level(logging.INFO)
    dry = TransferResult("d1", "dry_run", "would transfer 950 treasury -> desk-a", "dry_run")
    async with running(start(50, 1000)) as venue:
        venue.script = lambda src, dst, amount: dry
        await until(135)
        assert [t for t, *_ in venue.calls] == [10, 70, 130]
        assert venue.balances == start(50, 1000)
    assert "dry run: would move 950.00 from treasury to desk-a" in caplog.text


async def test_drawdown_stops_top_ups_but_not_sweeps(autojump_clock, caplog):
    caplog.set_level(logging.INFO)
    async with running(start(50, 5000), drawdown_pct=20, drawdown_check="5s") as venue:
        venue.equity[DESK_A] = [("t0", D(1000)), ("t1", D(1200)), ("t2", D(900))]  # -25 %
        venue.equity[DESK_B] = [("t0", D(5000)), ("t1", D(4900))]
        await until(35)
        assert venue.moves() == [(DESK_B, TREASURY, D(2000))] * 2
        venue.equity[DESK_A].append(("t3", D(1150)))  # recovered: -4.2 %
        await until(45)
        assert venue.moves()[2:] == [(TREASURY, DESK_A, D(950))]
    text = caplog.text
    assert "desk-a equity 900 is 25.0% below its 1d peak 1200 (drawdown_pct 20): no more " in text
    assert "desk-a equity 1150 is back within 20% of its peak 1200: top-ups resume" in text


async def test_per_account_band_and_treasury_reserve(autojump_clock):
    balances = start(50, 5000, treasury=10500)
    async with running(balances, bands=["desk-b: min=1000 max=6000"],
                       treasury_reserve=10000) as venue:  # fmt: skip
        await until(35)
        # desk-b (5000) is inside its own band; desk-a may take only what the reserve spares.
        assert venue.moves() == [(TREASURY, DESK_A, D(500))]
        await until(100)
        assert len(venue.ledger) == 1


def test_shipped_bots_toml_validates():
    app = load_config(REPO / "bots.toml")
    bot = app.bots["keep-funded"]
    host = build_plugin_host(bot, app.venues[bot.venue], plugin_dirs=app.runtime.plugin_dirs,
                             actions=Venue({}, {}))  # fmt: skip
    [slot] = host.slots
    assert type(slot.plugin).__name__ == "Rebalancer"
    assert slot.ctx.config["treasury"] == "treasury"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bands": ["desk-b min=1"]}, 'expected "alias: min=N target=N max=N"'),
        ({"bands": ["desk-b: floor=1"]}, "'floor=1' is not one of min=N, target=N, max=N"),
        ({"bands": ["desk-b: target=3000"]}, "band needs 0 <= min <= target <= max"),
        ({"max_transfer": "lots"}, "rebalancer.max_transfer: expected a positive number"),
        ({"treasury": "nope"}, "rebalancer.treasury: expected an account alias"),
    ],
)
def test_config_errors_name_the_problem(options, message):
    app = app_config({**BASE, **options})
    with pytest.raises(PluginLoadError) as info:
        build_plugin_host(app.bots["b"], app.venues["v"], plugin_dirs=app.runtime.plugin_dirs,
                          actions=Venue({}, {}))  # fmt: skip
    assert message in str(info.value)


class DepositVenue(Venue):
    """A venue double whose balance events also carry ``deposit``: transfers move it (as on
    QFEX), trading moves only the available balance."""

    def __init__(self, balances: dict[str, Decimal], buses: dict[str, Bus]) -> None:
        super().__init__(balances, buses)
        self.initial = dict(balances)

    def deposit(self, account: str) -> Decimal:
        moved = sum((a if dst == account else -a for _, src, dst, a in self.ledger
                     if account in (src, dst)), D(0))  # fmt: skip
        return self.initial[account] + moved

    def apply(self, src: str, dst: str, amount: Decimal) -> None:
        """Apply a transfer without answering it (its response is lost)."""
        self.balances[src] -= amount
        self.balances[dst] += amount
        self.ledger.append((trio.current_time(), src, dst, amount))

    def balance_event(self, account: str, available: Decimal | None = None) -> BalanceEvent:
        value = self.balances[account] if available is None else available
        return BalanceEvent(venue="v", account_id=account, received_at=time.time(),
                            available=value, deposit=self.deposit(account))  # fmt: skip


async def test_a_transfer_reconciled_done_after_its_balance_event_is_seen_at_once(
    autojump_clock, caplog
):
    # The test failed before this change: the rebalancer took the balance that already showed
    # the transfer as "before", waited settle_timeout (60 s) for a change that had happened,
    # and only topped desk-a up again after reading it afresh at 80 s.
    caplog.set_level(logging.INFO)
    unknown = TransferResult("u1", "unknown", "outcome unknown: timeout")

    def lose_response(src: str, dst: str, amount: Decimal) -> TransferResult | None:
        if len(venue.calls) == 1:
            venue.apply(src, dst, amount)  # the venue applied it; the response was lost
            return unknown
        return None

    async with running(start(50, 1000), venue_type=DepositVenue) as venue:
        venue.script = lose_response
        await until(15)  # top-up at 10 s; the pulses since show desk-a at 1000 (deposit moved)
        assert venue.moves() == [(TREASURY, DESK_A, D(950))]
        # Reconciliation settles it applied (the balance events already showed it).
        await venue.buses[DESK_A].publish(TransferOutcomeEvent(
            venue="v", account_id=TREASURY, received_at=time.time(), entry_id="u1",
            src=TREASURY, dst=DESK_A, amount=D(950), state="done"))  # fmt: skip
        await until(16)
        venue.balances[DESK_A] = D(100)  # a trading loss: out of band again, deposit unchanged
        await until(35)
        assert venue.moves() == [(TREASURY, DESK_A, D(950)), (TREASURY, DESK_A, D(900))]
        assert [t for t, *_ in venue.ledger][1] in (20, 30)
    assert "no balance event for" not in caplog.text
