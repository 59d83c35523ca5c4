"""Money edges 4-7 (issue 11): identity, limits, atomic budget and the kill switch, on the real
transfer path (QfexVenue REST client, SqliteJournal, TransferService) against the simulator.

4. an entry in doubt survives a venue/alias rename across a restart (and old ownerless rows);
5. ``min_interval`` and the rolling 24 h total survive renaming the bot, the venue or an alias;
6. two concurrent transfers on disjoint pairs of one bot cannot both fit in one ``max_daily``;
7. a pause during the balance read, or after the intent is written, stops the send.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio
from runtime_helpers import DESK_A, DESK_B, PRIMARY

from qfexbot.config import Limits, SessionSettings
from qfexbot.core.secrets import Secret
from qfexbot.money.journal import SqliteJournal
from qfexbot.money.killswitch import pause
from qfexbot.money.transfers import TransferAmbiguous, TransferService
from qfexbot.runtime.venues import balance_reader, transfer_sender
from qfexbot.sim import QfexSimulator, SimConfig, SimUser
from qfexbot.venues.qfex import QfexVenue

DESK_C = "33333333-3333-4333-8333-333333333333"
ACCOUNTS = {"treasury": PRIMARY, "desk-a": DESK_A, "desk-b": DESK_B, "desk-c": DESK_C}
RENAMED = {"main": PRIMARY, "alpha": DESK_A, "beta": DESK_B, "gamma": DESK_C}


def limits(pairs=(("treasury", "desk-a"),), **kw: Any) -> Limits:
    values: dict[str, Any] = {
        "max_transfer": Decimal(1000),
        "max_daily": Decimal(1000),
        "min_interval": 0.0,
        "min_remaining": Decimal(0),
    }
    values.update(kw)
    return Limits(allowed_pairs=frozenset(pairs), **values)


class World:
    """One simulator and REST client; journals and transfer services opened like restarts."""

    def __init__(self, sim: QfexSimulator, venue: QfexVenue, path: Path) -> None:
        self.sim = sim
        self.venue = venue
        self.path = path
        self.journal: SqliteJournal | None = None

    async def restart(self) -> SqliteJournal:
        """Close the journal (a process ending) and open it again."""
        if self.journal is not None:
            await self.journal.close()
        self.journal = await SqliteJournal.open(self.path)
        return self.journal

    def service(
        self,
        *,
        venue: str = "demo",
        bots: dict[str, Limits] | None = None,
        accounts: dict[str, str] = ACCOUNTS,
        journal: Any = None,
        kill_switch: Path | None = None,
        read=None,
    ) -> TransferService:
        assert self.journal is not None
        return TransferService(
            journal or self.journal,
            transfer_sender(self.venue),
            read or balance_reader(self.venue),
            venue=venue,
            limits=bots if bots is not None else {"bot": limits()},
            accounts=accounts,
            kill_switch=kill_switch,
            user_id=PRIMARY,
        )

    def transfer_rows(self) -> list[tuple[str, str]]:
        with sqlite3.connect(self.path) as db:
            return db.execute("select state, amount from entries where kind = 'transfer' "
                              "order by created_at").fetchall()  # fmt: skip

    def moved(self) -> list[tuple[str, str, Decimal]]:
        return [(e.src, e.dst, e.amount) for e in self.sim.ledger]


@pytest.fixture
async def world(nursery, tmp_path):
    sim = QfexSimulator(SimConfig(
        users=[SimUser(public_key="qfex_pub_edges", secret="qfex_secret_money_edges",
                       account_id=PRIMARY, subaccounts=[DESK_A, DESK_B, DESK_C],
                       deposits={PRIMARY: Decimal(10000), DESK_A: Decimal(0),
                                 DESK_B: Decimal(5000), DESK_C: Decimal(0)})],
        pulse_interval=0.2,
    ))  # fmt: skip
    urls = await nursery.start(sim.serve, "127.0.0.1")
    venue = QfexVenue(
        "demo", trade_url=urls.trade_url, mds_url=urls.mds_url, rest_url=urls.rest_url,
        user_id=PRIMARY, settings=SessionSettings(request_timeout=2.0),
        public_key="qfex_pub_edges", secret=Secret("qfex_secret_money_edges"),
    )  # fmt: skip
    w = World(sim, venue, tmp_path / "journal.sqlite")
    yield w
    if w.journal is not None:
        await w.journal.close()
    await venue.aclose()


# -- 4. venue or account renamed across a restart ------------------------------------------------


async def test_entry_in_doubt_survives_renaming_the_venue_and_aliases_across_a_restart(world):
    await world.restart()
    world.sim.faults.drop_transfer_response(mode="reset")
    first = await world.service().transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "top-up")
    assert first.state == "unknown"
    # Restart with the venue and every alias renamed (same user id, same account ids).
    await world.restart()
    renamed = world.service(venue="prod", accounts=RENAMED,
                            bots={"bot": limits(pairs=(("main", "alpha"),))})  # fmt: skip
    again = await renamed.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "top-up")
    assert (again.state, again.code) == ("refused", "unresolved")
    assert first.entry_id in again.detail
    # The renamed venue reconciles it (it is keyed by user id + accounts, not by name).
    assert [(r.entry_id, r.state) for r in await renamed.reconcile()] == [(first.entry_id, "done")]
    assert world.moved() == [(PRIMARY, DESK_A, Decimal(100))]
    assert world.transfer_rows() == [("done", "100")]


async def _old_unresolved_row(world: World) -> str:
    """An in-doubt transfer written the way an older qfexbot did (no owner column), for real:
    intent with before-balances, one request whose response is lost, ``unknown``."""
    journal = await world.restart()
    read = balance_reader(world.venue)
    src, dst = await read(PRIMARY), await read(DESK_A)
    entry = await journal.record_intent(
        bot="bot", plugin="p", venue="demo", src=PRIMARY, dst=DESK_A, amount=Decimal(100),
        reason="old", src_before=src.available, dst_before=dst.available,
        src_deposit_before=src.deposit, dst_deposit_before=dst.deposit,
    )  # fmt: skip
    await journal.mark_sent(entry.id)
    world.sim.faults.drop_transfer_response(mode="reset")
    with pytest.raises(TransferAmbiguous):
        await transfer_sender(world.venue)(PRIMARY, DESK_A, Decimal(100))
    await journal.mark_unknown(entry.id, "outcome unknown: connection reset")
    await journal.close()
    world.journal = None
    with sqlite3.connect(world.path) as db:  # the file an older version left behind
        db.execute("ALTER TABLE entries DROP COLUMN owner")
    return entry.id


async def test_old_journal_row_without_owner_blocks_its_accounts_under_any_venue_name(world):
    entry_id = await _old_unresolved_row(world)
    await world.restart()  # migrates: the row's owner is NULL
    assert (await world.journal.get(entry_id)).owner is None
    renamed = world.service(venue="prod", accounts=RENAMED,
                            bots={"bot": limits(pairs=(("main", "alpha"),))})  # fmt: skip
    refused = await renamed.transfer("bot", "p", DESK_A, PRIMARY, Decimal(5), "sweep")
    assert (refused.state, refused.code) == ("refused", "unresolved")
    # Renamed, it is not reconciled from balances (a legacy row names its venue only)...
    assert await renamed.reconcile() == []
    # ... but the venue that wrote it still settles it, once.
    same = world.service()
    assert [(r.entry_id, r.state) for r in await same.reconcile()] == [(entry_id, "done")]
    assert world.moved() == [(PRIMARY, DESK_A, Decimal(100))]


# -- 5. limits reset by renaming ------------------------------------------------------------------


async def test_min_interval_survives_renaming_the_bot_the_venue_and_the_aliases(world):
    await world.restart()
    first = world.service(bots={"bot": limits(min_interval=600.0)})
    assert (await first.transfer("bot", "p", PRIMARY, DESK_A, Decimal(10), "x")).state == "done"
    await world.restart()
    renamed = world.service(
        venue="prod",
        accounts=RENAMED,
        bots={"other": limits(pairs=(("main", "alpha"),), min_interval=600.0)},
    )
    result = await renamed.transfer("other", "p", DESK_A, PRIMARY, Decimal(10), "x")
    assert (result.state, result.code) == ("refused", "min_interval")
    assert len(world.moved()) == 1


async def test_daily_total_survives_renaming_the_bot_and_the_venue(world):
    await world.restart()
    first = world.service(bots={"bot": limits(max_daily=Decimal(800))})
    assert (await first.transfer("bot", "p", PRIMARY, DESK_A, Decimal(500), "x")).state == "done"
    await world.restart()
    renamed = world.service(
        venue="prod",
        accounts=RENAMED,
        bots={"other": limits(pairs=(("main", "alpha"),), max_daily=Decimal(800))},
    )
    result = await renamed.transfer("other", "p", PRIMARY, DESK_A, Decimal(400), "x")
    assert (result.state, result.code) == ("refused", "max_daily")
    assert "already 500" in result.detail
    assert [a for *_, a in world.moved()] == [Decimal(500)]


async def test_two_bots_sharing_a_treasury_do_not_eat_each_others_budget(world):
    # The rule: a bot's max_daily counts the transfers on the pairs its allowed_pairs govern.
    await world.restart()
    service = world.service(bots={
        "bot-a": limits(pairs=(("treasury", "desk-a"),), max_daily=Decimal(800)),
        "bot-c": limits(pairs=(("treasury", "desk-c"),), max_daily=Decimal(800)),
    })  # fmt: skip
    assert (await service.transfer("bot-a", "p", PRIMARY, DESK_A, Decimal(700), "x")).ok
    assert (await service.transfer("bot-c", "p", PRIMARY, DESK_C, Decimal(700), "x")).ok
    over = await service.transfer("bot-a", "p", PRIMARY, DESK_A, Decimal(200), "x")
    assert (over.state, over.code) == ("refused", "max_daily")
    assert len(world.moved()) == 2


# -- 6. the max_daily race ---------------------------------------------------------------------


async def test_concurrent_transfers_on_disjoint_pairs_cannot_both_fit_one_max_daily(world):
    await world.restart()
    bot = limits(pairs=(("treasury", "desk-a"), ("desk-b", "desk-c")), max_daily=Decimal(1000))
    service = world.service(bots={"bot": bot})
    # Slow balance reads: both transfers pass the early budget check before either is journaled.
    world.sim.faults.delay_rest(0.3, n=4)
    results = {}

    async def move(name: str, src: str, dst: str) -> None:
        results[name] = await service.transfer("bot", "p", src, dst, Decimal(800), name)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(move, "a", PRIMARY, DESK_A)
            nursery.start_soon(move, "c", DESK_B, DESK_C)
    outcomes = sorted((r.state, r.code) for r in results.values())
    assert outcomes == [("done", ""), ("refused", "max_daily")]
    assert sum(a for *_, a in world.moved()) == Decimal(800)
    assert world.transfer_rows() == [("done", "800")]


# -- 7. the kill switch during a slow balance read, and after the intent ---------------------------


async def test_pause_during_a_slow_balance_read_stops_the_transfer(world, tmp_path):
    await world.restart()
    switch = tmp_path / "PAUSED"
    service = world.service(kill_switch=switch)
    world.sim.faults.delay_rest(1.0, n=1)  # the source balance read hangs for 1 s
    results = []

    async def move() -> None:
        results.append(await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "x"))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(move)
            await trio.sleep(0.3)  # the read is in flight
            pause(switch, "operator: stop now")
    [result] = results
    assert (result.state, result.code) == ("refused", "paused")
    assert "operator: stop now" in result.detail
    assert world.moved() == []
    assert world.transfer_rows() == []  # no intent was written


class PauseAfterIntent:
    """The real journal; the kill switch appears right after the first intent is committed."""

    def __init__(self, journal: SqliteJournal, switch: Path) -> None:
        self._journal = journal
        self._switch = switch
        self._paused = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._journal, name)

    async def record_intent(self, **kw: Any):
        entry = await self._journal.record_intent(**kw)
        if not self._paused:
            self._paused = True
            pause(self._switch, "operator: paused mid-transfer")
        return entry


async def test_pause_after_the_intent_is_written_marks_it_failed_and_never_sends(world, tmp_path):
    journal = await world.restart()
    switch = tmp_path / "PAUSED"
    service = world.service(journal=PauseAfterIntent(journal, switch), kill_switch=switch)
    result = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "x")
    assert result.state == "failed"
    assert "not sent" in result.detail and "operator: paused mid-transfer" in result.detail
    assert world.moved() == []
    entry = await journal.get(result.entry_id)
    assert entry.state == "failed" and entry.sent_at is None and entry.attempts == 0
    assert [e["to_state"] for e in await journal.events(entry.id)] == ["pending", "failed"]
    # Failed means definitely not sent: nothing blocks the accounts once the pause is lifted.
    switch.unlink()
    assert (await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "x")).ok
    assert len(world.moved()) == 1


async def test_another_venue_table_of_the_same_user_leaves_its_transfer_in_flight_alone(world):
    # Keyed by user id, reconciliation must still take only the rows of accounts it names: the
    # other table's transfer in flight is held by the other service's locks, not ours.
    await world.restart()
    treasury_side = world.service(accounts={"treasury": PRIMARY, "desk-a": DESK_A})
    sending, release = trio.Event(), trio.Event()
    real_send = transfer_sender(world.venue)

    async def slow_send(src: str, dst: str, amount: Decimal) -> None:
        sending.set()
        await release.wait()
        await real_send(src, dst, amount)

    desks = TransferService(
        world.journal, slow_send, balance_reader(world.venue), venue="desks",
        limits={"bot": limits(pairs=(("desk-b", "desk-c"),))},
        accounts={"desk-b": DESK_B, "desk-c": DESK_C}, user_id=PRIMARY,
    )  # fmt: skip
    results = []

    async def move() -> None:
        results.append(await desks.transfer("bot", "p", DESK_B, DESK_C, Decimal(300), "x"))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(move)
            await sending.wait()
            assert await treasury_side.reconcile() == []
            release.set()
    [result] = results
    assert result.state == "done"
    assert world.moved() == [(DESK_B, DESK_C, Decimal(300))]
    assert [r.state for r in await desks.reconcile()] == []


async def test_venue_tables_of_one_user_naming_one_account_share_its_lock(world):
    # Two tables of one user id both name desk-b (config should refuse the overlap; the money
    # path must not depend on it): the runtime gives them one lock mapping, so one service's
    # reconciliation waits for the other's transfer instead of judging it mid-flight.
    await world.restart()
    shared: dict[str, trio.Lock] = {}
    sending, release = trio.Event(), trio.Event()
    real_send = transfer_sender(world.venue)

    async def slow_send(src: str, dst: str, amount: Decimal) -> None:
        sending.set()
        await release.wait()
        await real_send(src, dst, amount)

    def table(venue: str, send, pairs) -> TransferService:
        return TransferService(
            world.journal, send, balance_reader(world.venue), venue=venue,
            limits={"bot": limits(pairs=pairs)}, accounts=ACCOUNTS, user_id=PRIMARY, locks=shared,
        )  # fmt: skip

    mover = table("one", slow_send, (("desk-b", "desk-c"),))
    other = table("two", real_send, (("treasury", "desk-b"),))
    results, reconciled = [], []

    async def move() -> None:
        results.append(await mover.transfer("bot", "p", DESK_B, DESK_C, Decimal(300), "x"))

    async def reconcile() -> None:
        reconciled.append(await other.reconcile())

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(move)
            await sending.wait()
            nursery.start_soon(reconcile)
            await trio.sleep(0.2)
            assert reconciled == []  # waiting for desk-b's lock, not judging the row
            release.set()
    assert [r.state for r in results] == ["done"]
    assert reconciled == [[]]  # by the time it held the lock, the row was done
    assert world.moved() == [(DESK_B, DESK_C, Decimal(300))]
