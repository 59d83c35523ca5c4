"""What only the PostgreSQL backend has: several processes on one database (row locks, the
per-owner budget lock, no journal-wide lock), the DSN kept free of passwords."""

from __future__ import annotations

import contextlib
import threading
from decimal import Decimal
from types import SimpleNamespace

import pytest
import trio
from journal_helpers import DESK_A, TREASURY
from pg_cluster import PASSWORD_ROLE

from qfexbot.core.secrets import Secret
from qfexbot.errors import JournalError
from qfexbot.money.journal import (
    BudgetExceeded,
    DailyBudget,
    GuardLost,
    InvalidTransition,
    JournalLocked,
    postgres,
)
from qfexbot.money.journal.postgres import PostgresJournal, PostgresStore, describe_dsn
from qfexbot.money.transfers import TransferService

psycopg = pytest.importorskip(
    "psycopg", reason="psycopg is not installed (pip install -e '.[postgres]')"
)

NOW = 1_800_000_000.0


def intent(store: PostgresStore, amount: str = "5", **kw):
    return store.record_intent(
        bot="bot1", plugin="rebalancer", venue="demo", src=TREASURY, dst=DESK_A,
        amount=Decimal(amount), reason="test", owner="user-1", **kw,
    )  # fmt: skip


async def hold_then_race(pg_database, first, second):
    """Run ``first`` inside an open write transaction of one store (one process) while
    ``second`` runs on another store (another process); commit ``first`` once ``second`` has
    been seen to wait. Returns ``second``'s outcome (a value or the exception)."""
    a = PostgresStore(pg_database, clock=lambda: NOW)
    b = PostgresStore(pg_database, clock=lambda: NOW)
    release, result = threading.Event(), []

    def in_a() -> None:
        def run(db):
            first(a)
            release.wait(10)

        a._write(run)

    def in_b() -> None:
        try:
            result.append(second(b))
        except Exception as exc:  # the outcome under test
            result.append(exc)

    try:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.to_thread.run_sync, in_a)
                await trio.sleep(0.2)
                nursery.start_soon(trio.to_thread.run_sync, in_b)
                await trio.sleep(0.4)
                assert result == [], "the second process did not wait for the first's lock"
                release.set()
    finally:
        a.close()
        b.close()
    return result[0]


async def test_two_processes_cannot_both_send_one_entry(pg_database):
    store = PostgresStore(pg_database, clock=lambda: NOW)
    entry = intent(store)
    outcome = await hold_then_race(
        pg_database, lambda a: a.mark_sent(entry.id), lambda b: b.mark_sent(entry.id)
    )
    assert isinstance(outcome, InvalidTransition)
    sent = store.get(entry.id)
    assert sent is not None and sent.state == "sent" and sent.attempts == 1
    assert [e["to_state"] for e in store.events(entry.id)] == ["pending", "sent"]
    store.close()


async def test_two_processes_cannot_both_fit_one_budget(pg_database):
    budget = DailyBudget(Decimal(8), NOW - 86_400, None)
    outcome = await hold_then_race(
        pg_database, lambda a: intent(a, budget=budget), lambda b: intent(b, budget=budget)
    )
    assert isinstance(outcome, BudgetExceeded) and outcome.spent == Decimal(5)
    store = PostgresStore(pg_database)
    assert len(store.list(kind="transfer")) == 1
    store.close()


async def test_a_second_process_opens_the_journal_read_write(pg_database):
    first = await PostgresJournal.open(pg_database)
    async with first, await PostgresJournal.open(pg_database) as standby:
        entry = await standby.record_intent(
            bot="b", plugin="p", venue="demo", src=TREASURY, dst=DESK_A,
            amount=Decimal(1), reason="standby writes",
        )  # fmt: skip
        seen = await first.get(entry.id)
    assert seen is not None and seen.reason == "standby writes"


async def test_events_are_append_only(pg_database):
    store = PostgresStore(pg_database)
    entry = intent(store)
    store.close()
    with psycopg.connect(pg_database, autocommit=True) as conn:
        for sql in ("UPDATE events SET detail = 'x'", "DELETE FROM events"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(sql)
        assert conn.execute(
            "SELECT count(*) FROM events WHERE entry_id = %s", (entry.id,)
        ).fetchone() == (1,)


def test_a_password_in_the_dsn_is_refused_without_repeating_it(pg_cluster):
    dsn = f"postgresql://postgres:hunter2-secret@127.0.0.1:{pg_cluster.port}/qfexbot_tests"
    with pytest.raises(JournalError, match="must not hold the password") as caught:
        PostgresStore(dsn)
    assert "hunter2" not in str(caught.value)
    assert describe_dsn(dsn) == f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/qfexbot_tests"


def test_an_unreachable_server_is_a_clear_error(pg_cluster):
    with pytest.raises(psycopg.OperationalError):
        PostgresStore("postgresql://postgres@127.0.0.1:1/nothing", connect_timeout=2)


async def test_a_lost_connection_fails_one_call_then_the_journal_reconnects(pg_database, caplog):
    async with await PostgresJournal.open(pg_database) as journal:
        entry = await journal.record_intent(
            bot="b", plugin="p", venue="demo", src=TREASURY, dst=DESK_A, amount=Decimal(2),
            reason="before the cut",
        )  # fmt: skip
        with psycopg.connect(pg_database, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(psycopg.OperationalError):
            await journal.mark_sent(entry.id)  # met the loss: nothing written
        current = await journal.get(entry.id)  # reconnected
        assert current is not None and current.state == "pending" and current.attempts == 0
        assert (await journal.mark_sent(entry.id)).state == "sent"
    assert "journal connection to PostgreSQL was lost" in caplog.text


def test_without_psycopg_the_error_names_the_extra(monkeypatch):
    monkeypatch.setattr(postgres, "psycopg", None)
    with pytest.raises(JournalError, match=r"pip install 'qfexbot\[postgres\]'"):
        PostgresStore("postgresql://u@127.0.0.1:5432/db")


async def test_an_exclusive_open_refuses_a_second_process_until_closed(pg_cluster):
    dsn = pg_cluster.create_database()  # advisory locks are per database: one of its own
    first = await PostgresJournal.open(dsn, exclusive=True)
    async with first:
        with pytest.raises(JournalLocked, match="in use by another qfexbot process"):
            await PostgresJournal.open(dsn, exclusive=True)
        async with await PostgresJournal.open(dsn) as reader:  # not exclusive: opens
            assert await reader.list() == []
    async with await PostgresJournal.open(dsn, exclusive=True) as after:
        assert await after.list() == []


async def test_a_lost_guard_stops_sending_and_frees_the_journal_for_another(pg_cluster):
    # The guard's session can end under a running process (server restart, failover, network
    # cut, terminated backend); from then on another process may open the journal, so this one
    # must hand nothing more to a venue: checked before every send and every order.
    dsn = pg_cluster.create_database()
    async with await PostgresJournal.open(dsn, exclusive=True) as first:
        entry = await first.record_intent(
            bot="b", plugin="p", venue="demo", src=TREASURY, dst=DESK_A, amount=Decimal(2),
            reason="before the cut",
        )  # fmt: skip
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND classid = %s AND objid = 0",
                (postgres.PROCESS_LOCK_CLASS,),
            )
        with pytest.raises(GuardLost, match="lost the journal's one-process guard"):
            await first.mark_sent(entry.id)
        with pytest.raises(GuardLost):
            await first.record_order(bot="b", plugin="p", venue="demo", account=DESK_A, data={})
        assert (await first.get(entry.id)).state == "pending"  # nothing written: not sent
        async with await PostgresJournal.open(dsn, exclusive=True) as second:  # free now
            assert [e.id for e in await second.list()] == [entry.id]


async def test_a_transfer_after_the_guard_is_lost_is_failed_and_never_sent(pg_cluster):
    dsn = pg_cluster.create_database()
    sent: list[str] = []

    async def send(src: str, dst: str, amount: Decimal, entry_id: str) -> None:
        sent.append(entry_id)

    async def no_balances(account: str) -> None:
        raise AssertionError("no balance is read on this path")

    async def find_sent(entry_id: str) -> bool:
        return entry_id in sent

    limits = SimpleNamespace(
        max_transfer=Decimal(100), max_daily=Decimal(1000), allowed_pairs=(("a", "b"),),
        min_interval=0.0, min_remaining=None,
    )  # fmt: skip
    async with await PostgresJournal.open(dsn, exclusive=True) as journal:
        service = TransferService(
            journal, send, no_balances, venue="v", accounts={"a": "1", "b": "2"},
            limits={"bot": limits}, settle_seconds=0.0, user_id="1", find_sent=find_sent,
        )  # fmt: skip
        assert (await service.transfer("bot", "p", "1", "2", Decimal(5), "first")).state == "done"
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND classid = %s AND objid = 0",
                (postgres.PROCESS_LOCK_CLASS,),
            )
        after = await service.transfer("bot", "p", "1", "2", Decimal(5), "second")
        assert after.state == "failed" and "lost the journal's one-process guard" in after.detail
        assert len(sent) == 1  # the first only


async def test_the_password_is_given_apart_and_never_shown(pg_cluster):
    dsn = pg_cluster.create_database()
    with psycopg.connect(pg_cluster.dsn, autocommit=True) as admin:
        with contextlib.suppress(psycopg.errors.DuplicateObject):
            admin.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN")
        admin.execute(f"ALTER ROLE {PASSWORD_ROLE} PASSWORD 'right-pw-93'")
        admin.execute(f'ALTER DATABASE "{dsn.rsplit("/", 1)[1]}" OWNER TO {PASSWORD_ROLE}')
    login = dsn.replace("postgres@", f"{PASSWORD_ROLE}@")
    async with await PostgresJournal.open(login, password=Secret("right-pw-93")) as journal:
        assert await journal.list() == []
    with pytest.raises(psycopg.OperationalError, match="password authentication failed") as bad:
        PostgresStore(login, password=Secret("wrong-pw-17"))
    assert "wrong-pw-17" not in str(bad.value)
    with pytest.raises(psycopg.OperationalError):
        PostgresStore(login)  # no password, none from libpq's environment
