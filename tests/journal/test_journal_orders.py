"""Orders in the journal: their own columns, every state change, the refused ones, old files.

All against a real SQLite journal file (``SqliteJournal`` on its worker thread; the CLI's
``SqliteStore`` directly for ``qfexbot journal``).
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal

import pytest
from journal_helpers import DESK_A, DESK_B

from qfexbot.cli.journal import journal_list
from qfexbot.money.journal import InvalidTransition, SqliteJournal, SqliteStore
from qfexbot.money.journal.model import CANCEL_TRANSITIONS, ORDER_TRANSITIONS

ORIGIN = {"bot": "b", "plugin": "p", "venue": "demo"}


async def order(journal, coid="c-1", account=DESK_A, **fields):
    """A ``submitted`` order entry (the way the runtime's tracker writes one)."""
    values = {
        "symbol": "AAPL-USD",
        "side": "BUY",
        "quantity": Decimal("1.5"),
        "price": Decimal("190.25"),
        "client_order_id": coid,
        **fields,
    }
    return await journal.record_order(
        **ORIGIN, account=account, data={"type": "add_order", "params": {}}, **values
    )


async def cancel(journal, venue_order_id="v-1"):
    return await journal.record_order(
        **ORIGIN, account=DESK_A, kind="cancel", data={"type": "cancel_order"},
        symbol="AAPL-USD", venue_order_id=venue_order_id,
    )  # fmt: skip


async def trail(journal, entry_id):
    return [(e["from_state"], e["to_state"], e["by"]) for e in await journal.events(entry_id)]


async def test_an_order_entry_carries_its_fields_in_columns(journal, journal_path):
    entry = await order(journal)
    assert (entry.kind, entry.state, entry.src, entry.dst) == ("order", "submitted", DESK_A, None)
    assert (entry.symbol, entry.side, entry.quantity, entry.price) == (
        "AAPL-USD",
        "BUY",
        Decimal("1.5"),
        Decimal("190.25"),
    )
    assert (entry.client_order_id, entry.venue_order_id) == ("c-1", None)
    assert entry.unsettled and not entry.unresolved  # followed, but blocks no transfer
    # Exact decimals as text in the file, not floats.
    with sqlite3.connect(journal_path) as db:
        row = db.execute(
            "SELECT quantity, price, client_order_id FROM entries WHERE id = ?", (entry.id,)
        ).fetchone()
    assert row == ("1.5", "190.25", "c-1")
    as_json = entry.to_json()
    assert (as_json["quantity"], as_json["price"], as_json["client_order_id"]) == (
        "1.5",
        "190.25",
        "c-1",
    )
    with pytest.raises(TypeError, match="float"):
        await order(journal, coid="c-2", quantity=1.5)


async def test_ack_then_fill(journal, clock):
    entry = await order(journal)
    clock.advance(1)
    acked = await journal.mark_order(entry.id, "acked", "ACK", venue_order_id="v-1")
    assert (acked.state, acked.venue_order_id, acked.updated_at) == ("acked", "v-1", clock.now)
    filled = await journal.mark_order(entry.id, "filled", "FILLED")
    assert (filled.state, filled.venue_order_id, filled.resolved_by) == ("filled", "v-1", None)
    assert not filled.unsettled
    assert await trail(journal, entry.id) == [
        (None, "submitted", None),
        ("submitted", "acked", None),
        ("acked", "filled", None),
    ]


@pytest.mark.parametrize(
    ("path", "by"),
    [
        (["acked", "cancelled"], None),
        (["filled"], None),  # a market order fills at once
        (["cancelled"], None),  # an IOC with nothing to take
        (["rejected"], None),
        (["failed"], None),  # never reached the venue
        (["unknown", "acked", "filled"], "reconcile"),
        (["unknown", "filled"], "reconcile"),
        (["unknown", "cancelled"], "reconcile"),
        (["unknown", "rejected"], "reconcile"),
        (["unknown", "failed"], "reconcile"),
    ],
)
async def test_every_order_path(journal, path, by):
    entry = await order(journal)
    for state in path:
        reconciled = by if state != "unknown" and "unknown" in path else None
        entry = await journal.mark_order(entry.id, state, f"to {state}", by=reconciled)
        assert entry.state == state
    assert entry.resolved_by == by
    assert [t for _, t, _ in await trail(journal, entry.id)] == ["submitted", *path]
    assert not entry.unsettled
    assert await journal.unsettled_orders() == []


@pytest.mark.parametrize("path", [["done"], ["failed"], ["unknown", "done"], ["unknown", "failed"]])
async def test_every_cancel_path(journal, path):
    entry = await cancel(journal)
    assert (entry.kind, entry.state, entry.venue_order_id) == ("cancel", "submitted", "v-1")
    for state in path:
        entry = await journal.mark_order(entry.id, state, f"to {state}")
    assert entry.state == path[-1] and not entry.unsettled


def _illegal(machine, states):
    return [(a, b) for a in states for b in states if b not in machine.get(a, frozenset())]


ORDER_STATES = [
    "submitted",
    "acked",
    "filled",
    "cancelled",
    "rejected",
    "unknown",
    "failed",
    "done",
]


async def _reach(journal, entry, state):
    """Drive a fresh order entry to ``state`` along legal changes."""
    route = {
        "submitted": [],
        "acked": ["acked"],
        "filled": ["filled"],
        "cancelled": ["cancelled"],
        "rejected": ["rejected"],
        "unknown": ["unknown"],
        "failed": ["failed"],
    }[state]
    for step in route:
        entry = await journal.mark_order(entry.id, step)
    return entry


@pytest.mark.parametrize(
    ("start", "to"), [p for p in _illegal(ORDER_TRANSITIONS, ORDER_STATES) if p[0] != "done"]
)
async def test_illegal_order_changes_are_refused(journal, start, to):
    entry = await _reach(journal, await order(journal), start)
    before = await trail(journal, entry.id)
    with pytest.raises(InvalidTransition, match=f"from {start} to {to}"):
        await journal.mark_order(entry.id, to, "nope")
    after = await journal.get(entry.id)
    assert after.state == start and await trail(journal, entry.id) == before


CANCEL_STATES = ["submitted", "unknown", "done", "failed"]


@pytest.mark.parametrize(
    ("start", "to"),
    [
        (a, b)
        for a in CANCEL_STATES
        for b in [*CANCEL_STATES, "acked", "filled", "cancelled", "rejected"]
        if b not in CANCEL_TRANSITIONS.get(a, frozenset())
    ],
)
async def test_illegal_cancel_changes_are_refused(journal, start, to):
    entry = await cancel(journal)
    if start != "submitted":
        entry = await journal.mark_order(entry.id, start)
    with pytest.raises(InvalidTransition, match=f"from {start} to {to}"):
        await journal.mark_order(entry.id, to)
    assert (await journal.get(entry.id)).state == start


async def test_orders_and_transfers_keep_their_own_machines(journal):
    entry = await order(journal)
    transfer = await journal.record_intent(
        **ORIGIN, src=DESK_A, dst=DESK_B, amount=Decimal(5), reason="r"
    )
    with pytest.raises(InvalidTransition, match="not an order"):
        await journal.mark_order(transfer.id, "acked")
    with pytest.raises(InvalidTransition, match="not a transfer"):
        await journal.mark_sent(entry.id)
    with pytest.raises(InvalidTransition):
        await journal.resolve(entry.id, True, "operator")
    refusal = await journal.record_refusal(
        **ORIGIN, action="transfer", code="x", detail="no"
    )  # fmt: skip
    with pytest.raises(InvalidTransition):
        await journal.mark_order(refusal.id, "done")
    with pytest.raises(ValueError, match="resolved_by"):
        await journal.mark_order(entry.id, "acked", by="plugin")
    assert (await journal.get(entry.id)).state == "submitted"
    # Orders never block transfers: only transfers are unresolved.
    assert [e.id for e in await journal.unresolved()] == [transfer.id]


async def test_unsettled_orders_and_lookup_by_client_order_id(journal, clock):
    first = await order(journal, coid="c-1")
    clock.advance(1)
    acked = await journal.mark_order((await order(journal, coid="c-2")).id, "acked")
    clock.advance(1)
    done = await journal.mark_order((await order(journal, coid="c-3")).id, "filled")
    other_account = await order(journal, coid="c-1", account=DESK_B)
    clock.advance(1)
    pending_cancel = await cancel(journal)
    unsettled = await journal.unsettled_orders()
    assert [e.id for e in unsettled] == [first.id, acked.id, other_account.id, pending_cancel.id]
    assert await journal.unsettled_orders("other-venue") == []
    assert done.id not in {e.id for e in unsettled}
    assert [e.id for e in await journal.orders_by_client_id("demo", DESK_A, "c-1")] == [first.id]
    assert [e.id for e in await journal.orders_by_client_id("demo", DESK_B, "c-1")] == [
        other_account.id
    ]
    assert await journal.orders_by_client_id("demo", DESK_A, "missing") == []


async def test_a_venue_order_id_once_known_is_kept(journal):
    entry = await order(journal)
    await journal.mark_order(entry.id, "acked", venue_order_id="v-9")
    cancelled = await journal.mark_order(entry.id, "cancelled", "CANCELLED")
    assert cancelled.venue_order_id == "v-9"


# -- a journal file written before orders had columns and states ----------------------------

OLD_SCHEMA = """
CREATE TABLE entries (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, bot TEXT NOT NULL, plugin TEXT NOT NULL,
    venue TEXT NOT NULL, src TEXT, dst TEXT, amount TEXT, reason TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL, updated_at REAL NOT NULL, state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0, sent_at REAL,
    resolved_by TEXT CHECK (resolved_by IN ('reconcile', 'operator')), src_before TEXT,
    dst_before TEXT, data TEXT, src_deposit_before TEXT, dst_deposit_before TEXT, owner TEXT
);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, entry_id TEXT NOT NULL REFERENCES entries (id),
    at REAL NOT NULL, from_state TEXT, to_state TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '',
    by TEXT
);
INSERT INTO entries (id, kind, bot, plugin, venue, src, created_at, updated_at, state, data)
VALUES ('old-order', 'order', 'b', 'p', 'demo', '11111111-1111-4111-8111-111111111111',
    1.0, 1.0, 'submitted', '{"type": "add_order", "params": {"client_order_id": "c-old"}}');
INSERT INTO entries (id, kind, bot, plugin, venue, src, dst, amount, created_at, updated_at,
    state)
VALUES ('old-transfer', 'transfer', 'b', 'p', 'demo', '11111111-1111-4111-8111-111111111111',
    '22222222-2222-4222-8222-222222222222', '7', 2.0, 2.0, 'done');
INSERT INTO events (entry_id, at, from_state, to_state) VALUES ('old-order', 1.0, NULL,
    'submitted');
"""


async def test_an_old_journal_file_opens_keeps_its_rows_and_gains_the_order_columns(
    tmp_path, clock
):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    async with await SqliteJournal.open(path, clock=clock) as journal:
        old = await journal.get("old-order")
        assert (old.kind, old.state, old.src) == ("order", "submitted", DESK_A)
        assert (old.symbol, old.client_order_id, old.quantity) == (None, None, None)
        assert old.data == {"type": "add_order", "params": {"client_order_id": "c-old"}}
        assert (await journal.get("old-transfer")).amount == Decimal(7)
        # An old submitted order is unsettled like a new one and moves on the same machine.
        assert [e.id for e in await journal.unsettled_orders()] == ["old-order"]
        moved = await journal.mark_order("old-order", "unknown", "found at start-up")
        assert moved.state == "unknown"
        new = await order(journal, coid="c-new")
        assert (await journal.get(new.id)).client_order_id == "c-new"
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(entries)")}
        indexes = {row[1] for row in db.execute("PRAGMA index_list(entries)")}
        ids = [row[0] for row in db.execute("SELECT id FROM entries ORDER BY rowid")]
    assert {"symbol", "side", "quantity", "price", "client_order_id", "venue_order_id"} <= columns
    assert "entries_client_order" in indexes
    assert ids[:2] == ["old-order", "old-transfer"]
    # Opening again changes nothing (the migration is idempotent).
    async with await SqliteJournal.open(path, clock=clock) as journal:
        assert len(await journal.list(limit=10)) == 3


# -- qfexbot journal ------------------------------------------------------------------------


def test_qfexbot_journal_shows_order_states_and_columns(tmp_path):
    path = tmp_path / "journal.sqlite"
    store = SqliteStore(path)
    try:
        entry = store.record_order(
            **ORIGIN, account=DESK_A, data={"type": "add_order"}, symbol="AAPL-USD", side="SELL",
            quantity=Decimal(2), price=Decimal("180.5"), client_order_id="c-7",
        )  # fmt: skip
        store.mark_order(entry.id, "acked", "ACK", venue_order_id="v-7")
        lost = store.record_order(
            **ORIGIN, account=DESK_A, data={}, symbol="AAPL-USD", side="BUY",
            quantity=Decimal(1), client_order_id="c-8",
        )  # fmt: skip
        store.mark_order(lost.id, "unknown", "no reply within 30 s")
        store.mark_order(lost.id, "filled", "reconciled: FILLED", by="reconcile")
    finally:
        store.close()
    text = journal_list(path, names={DESK_A: "desk-a"})
    header, *rows = text.splitlines()
    assert "order" in header.split()
    acked = next(r for r in rows if entry.id in r)
    assert "acked" in acked and "SELL 2 AAPL-USD @ 180.5" in acked
    assert "client c-7" in acked and "venue v-7" in acked and "desk-a" in acked
    filled = next(r for r in rows if lost.id in r)
    assert "filled" in filled and "BUY 1 AAPL-USD @ market" in filled
    assert "[resolved by reconcile]" in filled
    assert journal_list(path, state="acked").count("\n") == 1  # header + the acked order
    rows_json = [json.loads(line) for line in journal_list(path, as_json=True).splitlines()]
    by_id = {r["id"]: r for r in rows_json}
    assert by_id[entry.id]["venue_order_id"] == "v-7"
    assert by_id[entry.id]["price"] == "180.5"
    assert by_id[lost.id]["state"] == "filled"


async def test_a_modified_resting_order_takes_its_new_price_and_quantity(journal):
    entry = await order(journal)
    with pytest.raises(InvalidTransition, match="not a resting order"):
        await journal.amend_order(entry.id, price=Decimal(191))  # not acked yet
    await journal.mark_order(entry.id, "acked", venue_order_id="v-1")
    amended = await journal.amend_order(
        entry.id, price=Decimal("191.5"), quantity=Decimal(2), detail="MODIFIED"
    )
    assert (amended.state, amended.price, amended.quantity) == ("acked", Decimal("191.5"), 2)
    assert (await journal.amend_order(entry.id, quantity=Decimal(3))).price == Decimal("191.5")
    assert await trail(journal, entry.id) == [
        (None, "submitted", None),
        ("submitted", "acked", None),
        ("acked", "acked", None),
        ("acked", "acked", None),
    ]
    await journal.mark_order(entry.id, "filled")
    with pytest.raises(InvalidTransition, match="not a resting order"):
        await journal.amend_order(entry.id, price=Decimal(1))
    with pytest.raises(InvalidTransition):
        await journal.amend_order((await cancel(journal)).id, price=Decimal(1))
