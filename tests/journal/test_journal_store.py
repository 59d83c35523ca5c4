"""The SQLite journal: state machine, audit trail, persistence, queries, the worker thread."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from decimal import Decimal

import pytest
import trio
from journal_helpers import DESK_A, DESK_B, TREASURY

from qfexbot.core.secrets import Secret
from qfexbot.money.journal import (
    EntryNotFound,
    InvalidTransition,
    Journal,
    JournalClosed,
    SqliteJournal,
    SqliteStore,
)


async def intent(journal, src=TREASURY, dst=DESK_A, amount="10", bot="bot1", **kw):
    return await journal.record_intent(
        bot=bot, plugin="rebalancer", venue="demo", src=src, dst=dst, amount=Decimal(amount),
        reason="test", **kw,
    )  # fmt: skip


def raw_row(path, entry_id):
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(
            "SELECT state, amount, attempts, resolved_by FROM entries WHERE id = ?", (entry_id,)
        ).fetchone()


async def test_is_a_journal_and_uses_wal(journal, journal_path):
    assert isinstance(journal, Journal)
    with contextlib.closing(sqlite3.connect(journal_path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store = SqliteStore(journal_path)
    try:
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        store.close()


async def test_happy_path_and_audit_trail(journal, journal_path, clock):
    entry = await intent(
        journal, amount="12.345", src_before=Decimal("100.5"), dst_before=Decimal(7)
    )
    assert entry.state == "pending" and entry.amount == Decimal("12.345")
    assert entry.src_before == Decimal("100.5") and entry.dst_before == Decimal(7)
    assert raw_row(journal_path, entry.id) == ("pending", "12.345", 0, None)
    clock.advance(1)
    sent = await journal.mark_sent(entry.id)
    assert sent.state == "sent" and sent.attempts == 1 and sent.sent_at == clock.now
    done = await journal.mark_done(entry.id, "venue confirmed")
    assert (done.state, done.detail) == ("done", "venue confirmed")
    assert done.updated_at == clock.now and done.created_at == clock.now - 1
    trail = await journal.events(entry.id)
    assert [(e["from_state"], e["to_state"]) for e in trail] == [
        (None, "pending"),
        ("pending", "sent"),
        ("sent", "done"),
    ]


@pytest.mark.parametrize(
    "path, bad",
    [
        ([], ["mark_done"]),  # pending -> done skips sent
        (["mark_sent"], ["mark_sent"]),  # never sent twice
        (["mark_sent", "mark_done"], ["mark_failed", "mark_unknown", "mark_sent", "resolve"]),
        (["mark_failed"], ["mark_done", "mark_unknown", "mark_sent", "resolve"]),
        (["mark_unknown"], ["mark_sent", "mark_done", "mark_failed"]),
    ],
)
async def test_invalid_transitions_raise(journal, path, bad):
    entry = await intent(journal)
    for step in path:
        await getattr(journal, step)(
            entry.id, *(["why"] if step in ("mark_failed", "mark_unknown") else [])
        )
    before = await journal.get(entry.id)
    for step in bad:
        args = {
            "mark_sent": (),
            "mark_done": (),
            "mark_failed": ("x",),
            "mark_unknown": ("x",),
            "resolve": (True, "operator"),
        }[step]
        with pytest.raises(InvalidTransition):
            await getattr(journal, step)(entry.id, *args)
    assert await journal.get(entry.id) == before  # a refused transition changes nothing


async def test_legal_paths(journal):
    a = await intent(journal)
    assert (await journal.mark_failed(a.id, "connection refused")).state == "failed"
    b = await intent(journal)
    assert (await journal.mark_unknown(b.id, "crashed")).state == "unknown"
    c = await intent(journal)
    await journal.mark_sent(c.id)
    assert (await journal.mark_unknown(c.id, "timeout")).state == "unknown"
    resolved = await journal.resolve(c.id, True, "reconcile")
    assert (resolved.state, resolved.resolved_by) == ("done", "reconcile")
    resolved = await journal.resolve(b.id, False, "operator", "checked the venue")
    assert (resolved.state, resolved.resolved_by, resolved.detail) == (
        "failed",
        "operator",
        "checked the venue",
    )


async def test_resolving_a_pending_row_records_it_as_unknown_first(journal):
    entry = await intent(journal)
    resolved = await journal.resolve(entry.id, False, "operator")
    assert resolved.state == "failed"
    assert [e["to_state"] for e in await journal.events(entry.id)] == [
        "pending",
        "unknown",
        "failed",
    ]


async def test_resolve_checks_who_and_what(journal):
    entry = await intent(journal)
    with pytest.raises(ValueError, match="resolved_by"):
        await journal.resolve(entry.id, True, "plugin")
    with pytest.raises(EntryNotFound):
        await journal.resolve("no-such-id", True, "operator")
    order = await journal.record_order(
        bot="b", plugin="p", venue="demo", account=DESK_A, data={"symbol": "AAPL-USD"}
    )
    with pytest.raises(InvalidTransition):
        await journal.resolve(order.id, True, "operator")
    with pytest.raises(InvalidTransition):
        await journal.mark_sent(order.id)


async def test_events_are_append_only(journal, journal_path):
    entry = await intent(journal)
    with contextlib.closing(sqlite3.connect(journal_path)) as db:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE events SET to_state = 'done' WHERE entry_id = ?", (entry.id,))
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM events")
    assert len(await journal.events(entry.id)) == 1


async def test_queries(journal, clock):
    old = await intent(journal, amount="1")  # will fall out of the window
    clock.advance(3600)
    since = clock.now
    pending = await intent(journal, amount="2")
    sent = await intent(journal, src=DESK_B, dst=TREASURY, amount="3")
    await journal.mark_sent(sent.id)
    unknown = await intent(journal, src=DESK_A, dst=DESK_B, amount="4")
    await journal.mark_unknown(unknown.id, "timeout")
    failed = await intent(journal, amount="5")
    await journal.mark_failed(failed.id, "rejected")
    other_bot = await intent(journal, amount="6", bot="bot2")
    for e in (old, other_bot):
        await journal.mark_sent(e.id)
        await journal.mark_done(e.id)
    clock.advance(1)
    done = await intent(journal, amount="7")
    await journal.mark_sent(done.id)
    await journal.mark_done(done.id)

    window = await journal.transfers_since("bot1", since)
    assert sorted(e.amount for e in window) == [2, 3, 4, 7]  # failed and old excluded
    pair = await journal.unresolved_for_pair("demo", DESK_A, TREASURY)
    assert [e.id for e in pair] == [pending.id]
    assert [e.id for e in await journal.unresolved_for_pair("demo", TREASURY, DESK_B)] == [sent.id]
    assert await journal.unresolved_for_pair("other-venue", TREASURY, DESK_A) == []
    touching_b = await journal.unresolved_for_accounts("demo", [DESK_B])
    assert {e.id for e in touching_b} == {sent.id, unknown.id}
    assert [e.id for e in await journal.unresolved()] == [pending.id, sent.id, unknown.id]
    assert await journal.last_transfer_at("demo", DESK_A, TREASURY) == clock.now
    assert await journal.last_transfer_at("demo", DESK_B, TREASURY) == since
    assert await journal.last_transfer_at("demo", DESK_A, "nobody") is None
    assert [e.id for e in await journal.list(state="unknown")] == [unknown.id]
    assert (await journal.list(limit=1))[0].id == done.id
    assert await journal.get("missing") is None


async def test_refusals_dry_runs_and_orders(journal):
    refusal = await journal.record_refusal(
        bot="b", plugin="p", venue="demo", action="transfer", code="max_transfer",
        detail="amount 5000 exceeds max_transfer 1000", src=TREASURY, dst=DESK_A,
        amount=Decimal(5000),
    )  # fmt: skip
    assert (refusal.kind, refusal.state) == ("refusal", "refused")
    assert refusal.data == {"action": "transfer", "code": "max_transfer"}
    dry = await journal.record_dry_run(
        bot="b",
        plugin="p",
        venue="demo",
        detail="would",
        src=TREASURY,
        dst=DESK_A,
        amount=Decimal(1),
    )
    assert (dry.kind, dry.state) == ("dry_run", "dry_run")
    order = await journal.record_order(
        bot="b", plugin="p", venue="demo", account=DESK_A,
        data={"symbol": "AAPL-USD", "quantity": Decimal("1.5"), "client_order_id": "c1"},
    )  # fmt: skip
    assert order.data == {"symbol": "AAPL-USD", "quantity": "1.5", "client_order_id": "c1"}
    cancel = await journal.record_order(
        bot="b", plugin="p", venue="demo", account=DESK_A, data={"order_id": "o1"}, kind="cancel"
    )
    assert (cancel.kind, cancel.state) == ("cancel", "submitted")
    # Refusals etc. are not transfers: they neither block nor count.
    assert await journal.unresolved() == []
    assert await journal.transfers_since("b", 0) == []


async def test_secrets_and_floats_are_never_stored(journal):
    with pytest.raises(TypeError, match="Secret"):
        await journal.record_order(
            bot="b", plugin="p", venue="demo", account=DESK_A, data={"key": Secret("s3cret-value")}
        )
    with pytest.raises(TypeError, match="float"):
        await intent(journal, src_before=100.5)
    with pytest.raises(ValueError, match="positive"):
        await intent(journal, amount="0")
    assert await journal.list() == []


async def test_survives_reopen(journal_factory):
    async with await journal_factory() as first:
        entry = await intent(first)
        await first.mark_sent(entry.id)
    async with await journal_factory() as second:
        again = await second.get(entry.id)
        assert again.state == "sent" and again.attempts == 1


async def test_a_submitted_write_completes_even_if_the_caller_is_cancelled(journal):
    with trio.CancelScope() as scope:
        scope.cancel()
        entry = await intent(journal)
    assert (await journal.get(entry.id)).state == "pending"


async def test_work_runs_on_one_worker_thread_and_close_joins_it(journal_path):
    journal = await SqliteJournal.open(journal_path)
    worker = journal._thread
    assert worker.is_alive() and worker is not threading.current_thread()
    async with trio.open_nursery() as nursery:  # concurrent callers share the one thread
        for n in range(20):
            nursery.start_soon(intent, journal, TREASURY, DESK_A, str(n + 1))
    assert len(await journal.list(limit=50)) == 20
    await journal.close()
    await journal.close()  # idempotent
    assert not worker.is_alive()
    with pytest.raises(JournalClosed):
        await journal.list()


async def test_open_reports_a_bad_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError):
        await SqliteJournal.open(blocker / "journal.sqlite")
