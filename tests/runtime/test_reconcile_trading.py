"""Reconciling transfers in doubt between accounts that trade, against the simulator.

Both accounts trade through real trade WebSocket sessions (market orders: fees, margin and PnL
move their available balances) while a transfer's outcome is lost. The production pieces are
used as in the runtime: QfexVenue's REST client, SqliteJournal, TransferService with the
runtime's sender/reader adapters. The sim's ledger is the truth the journal is checked against.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import pytest
import trio
from runtime_helpers import DESK_A, DESK_B, PRIMARY
from wait_helpers import wait_until

from qfexbot.config import Limits, SessionSettings
from qfexbot.core.secrets import Secret
from qfexbot.core.session import Supervisor
from qfexbot.events import ConnectionState
from qfexbot.money.journal import SqliteJournal
from qfexbot.money.transfers import TransferService, deposit_meta_key
from qfexbot.runtime.venues import balance_reader, transfer_sender
from qfexbot.sim import QfexSimulator, SimConfig, SimUser
from qfexbot.venues.qfex import QfexVenue

ACCOUNTS = {"treasury": PRIMARY, "desk-a": DESK_A, "desk-b": DESK_B}
LIMITS = Limits(
    max_transfer=Decimal(500), max_daily=Decimal(10**6), min_interval=0.0,
    allowed_pairs=frozenset({("treasury", "desk-a"), ("desk-a", "treasury")}),
)  # fmt: skip
TIMEOUT = 10.0


class TradingWorld:
    """A simulator, trade sessions on the treasury and desk-a, a journal and a service."""

    def __init__(self, sim: QfexSimulator, venue: QfexVenue, path: Path) -> None:
        self.sim = sim
        self.venue = venue
        self.path = path
        self.sessions: dict[str, Supervisor] = {}
        self.journal: SqliteJournal | None = None
        self.side = "BUY"

    async def service(self, path: Path | None = None) -> TransferService:
        if self.journal is not None:
            await self.journal.close()
        self.journal = await SqliteJournal.open(path or self.path)
        return TransferService(
            self.journal, transfer_sender(self.venue),
            balance_reader(self.venue), venue="demo", limits={"bot": LIMITS},
            accounts=ACCOUNTS,
        )  # fmt: skip

    async def trade(self, *accounts: str) -> None:
        """A market order on each account; returns once the sim shows its available moved."""
        for account in accounts:
            before = self.sim.available_balance(account)
            await self.sessions[account].send({"type": "add_order", "params": {
                "symbol": "AAPL-USD", "side": self.side, "order_type": "MARKET",
                "order_time_in_force": "IOC", "quantity": Decimal("0.5"), "price": Decimal(0),
                "client_order_id": "", "take_profit": Decimal(0), "stop_loss": Decimal(0),
                "reduce_only": False,
            }})  # fmt: skip
            await wait_until(
                lambda account=account, before=before: (
                    self.sim.available_balance(account) != before
                ),
                within=TIMEOUT,
            )
        self.side = "SELL" if self.side == "BUY" else "BUY"

    def ledger(self) -> list[tuple[str, str, Decimal]]:
        return [(e.src, e.dst, e.amount) for e in self.sim.ledger]

    def done_rows(self, path: Path | None = None) -> list[tuple[str, str, Decimal]]:
        with sqlite3.connect(path or self.path) as db:
            rows = db.execute(
                "select src, dst, amount from entries where kind = 'transfer' "
                "and state = 'done' order by created_at"
            ).fetchall()
        return [(s, t, Decimal(a)) for s, t, a in rows]


def entry_done(journal: SqliteJournal, entry_id: str) -> Callable[[], Awaitable[bool]]:
    """A ``wait_until`` predicate: the journal entry ``entry_id`` is "done"."""

    async def done() -> bool:
        return (await journal.get(entry_id)).state == "done"

    return done


@pytest.fixture
async def world(nursery, tmp_path):
    sim = QfexSimulator(SimConfig(
        users=[SimUser(public_key="qfex_pub_t", secret="qfex_secret_trading_tests",
                       account_id=PRIMARY, subaccounts=[DESK_A, DESK_B],
                       deposits={PRIMARY: Decimal(10000), DESK_A: Decimal(500)})],
        pulse_interval=0.2,
    ))  # fmt: skip
    urls = await nursery.start(sim.serve, "127.0.0.1")
    venue = QfexVenue(
        "demo",
        trade_url=urls.trade_url,
        mds_url=urls.mds_url,
        rest_url=urls.rest_url,
        user_id=PRIMARY,
        settings=SessionSettings(request_timeout=1.0),
        public_key="qfex_pub_t",
        secret=Secret("qfex_secret_trading_tests"),
    )
    w = TradingWorld(sim, venue, tmp_path / "journal.sqlite")

    async def ignore(event):
        pass

    async with trio.open_nursery() as sessions:
        for account in (PRIMARY, DESK_A):
            session = venue.private_session(account, channels=["order_responses"], publish=ignore)
            await sessions.start(session.run)
            w.sessions[account] = session
        with trio.fail_after(TIMEOUT):
            for session in w.sessions.values():
                await session.wait_for(ConnectionState.LIVE)
        await w.trade(PRIMARY, DESK_A)  # both hold positions from here on
        yield w
        sessions.cancel_scope.cancel()
    if w.journal is not None:
        await w.journal.close()
    await venue.aclose()


async def test_lost_response_between_trading_accounts_is_reconciled_to_done_by_deposit(world):
    service = await world.service()
    world.sim.faults.drop_transfer_response(mode="timeout")
    result = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "top-up")
    assert result.state == "unknown"
    await world.trade(DESK_A, PRIMARY)  # available moves on both sides meanwhile
    [settled] = await service.reconcile()
    assert (settled.entry_id, settled.state) == (result.entry_id, "done")
    assert "applied (by deposit)" in settled.detail
    assert world.ledger() == [(PRIMARY, DESK_A, Decimal(100))]
    assert world.done_rows() == world.ledger()  # exactly one transfer per applied entry


async def test_5xx_before_apply_on_trading_accounts_fails_only_on_a_verified_venue(world, tmp_path):
    # A fresh journal: the venue is not verified, so unchanged deposits prove nothing.
    fresh = tmp_path / "fresh.sqlite"
    service = await world.service(fresh)
    world.sim.faults.fail_next_rest(1, status=503, path="/user/transfer")
    doubt = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "x")
    assert doubt.state == "unknown"
    await world.trade(DESK_A)
    [still] = await service.reconcile()
    assert still.state == "unknown" and "not verified" in still.detail
    assert world.ledger() == []
    assert await service.journal.get_meta(deposit_meta_key("demo")) is None

    # A journal that saw a confirmed transfer move both deposits: verified.
    service = await world.service()
    first = await service.transfer("bot", "p", DESK_A, PRIMARY, Decimal(50), "sweep")
    assert first.state == "done"
    assert await service.journal.get_meta(deposit_meta_key("demo")) == "true"
    await world.trade(DESK_A)
    world.sim.faults.fail_next_rest(1, status=503, path="/user/transfer")
    lost = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "x")
    assert lost.state == "unknown"
    await world.trade(DESK_A, PRIMARY)
    [settled] = await service.reconcile()
    assert (settled.entry_id, settled.state) == (lost.entry_id, "failed")
    assert "not applied (by deposit)" in settled.detail
    retry = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(100), "retry")
    assert retry.state == "done"
    assert world.ledger() == [(DESK_A, PRIMARY, Decimal(50)), (PRIMARY, DESK_A, Decimal(100))]
    assert world.done_rows() == world.ledger()


async def test_the_reconciler_settles_a_lost_transfer_on_trading_accounts_on_its_own(world):
    service = await world.service()
    assert (await service.transfer("bot", "p", DESK_A, PRIMARY, Decimal(10), "t")).state == "done"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: service.run_reconciler(interval=3600.0))
        for amount in (Decimal(20), Decimal(30)):
            world.sim.faults.drop_transfer_response(mode="reset")
            result = await service.transfer("bot", "p", PRIMARY, DESK_A, amount, "top-up")
            assert result.state == "unknown"
            await world.trade(DESK_A)
            # Woken by the unknown outcome, not the hour:
            await wait_until(entry_done(service.journal, result.entry_id), within=TIMEOUT)
        world.sim.faults.fail_next_rest(1, status=503, path="/user/transfer")
        failed = await service.transfer("bot", "p", PRIMARY, DESK_A, Decimal(40), "x")
        await world.trade(DESK_A)
        await trio.sleep(0.5)  # the early pass never declares "not applied" (late landings)
        assert (await service.journal.get(failed.entry_id)).state == "unknown"
        nursery.cancel_scope.cancel()
    assert [r.state for r in await service.reconcile()] == ["failed"]  # a periodic pass
    assert await service.journal.unresolved() == []
    assert world.done_rows() == world.ledger()
    assert len(world.ledger()) == 3
