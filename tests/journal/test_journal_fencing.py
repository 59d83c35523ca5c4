"""Fencing (issue 18): an entry carries the leadership epoch it was written under, and
``mark_sent(fence=(group, epoch))`` sends only while that epoch still leads its group; on both
backends, with the leaders row written by another connection (as part B's leader does)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from journal_helpers import DESK_A, TREASURY

from qfexbot.errors import JournalError
from qfexbot.money.journal import StaleEpoch


async def intent(journal, **kw):
    return await journal.record_intent(
        bot="bot1", plugin="rebalancer", venue="demo", src=TREASURY, dst=DESK_A,
        amount=Decimal(5), reason="test", **kw,
    )  # fmt: skip


def lead(raw_sql, table, group, epoch, holder="host-a:1", at=1_800_000_000.5):
    raw_sql(
        f"INSERT INTO {table} (grp, epoch, holder, acquired_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (grp) DO UPDATE SET epoch = excluded.epoch, holder = excluded.holder, "
        "acquired_at = excluded.acquired_at",
        group, epoch, holder, at,
    )  # fmt: skip


async def test_rows_carry_epoch_and_group_and_default_to_unfenced(journal):
    fenced = await intent(journal, epoch=7, group="desk")
    plain = await intent(journal)
    refusal = await journal.record_refusal(
        bot="b", plugin="p", venue="demo", detail="no", action="transfer", code="kill_switch",
        epoch=7, group="desk",
    )  # fmt: skip
    order = await journal.record_order(
        bot="b", plugin="p", venue="demo", account=DESK_A, data={"x": 1}, epoch=3, group="g"
    )
    assert (fenced.epoch, fenced.group) == (7, "desk")
    assert (plain.epoch, plain.group) == (0, "")
    assert (refusal.epoch, refusal.group, order.epoch, order.group) == (7, "desk", 3, "g")
    again = await journal.get(fenced.id)
    assert (
        again is not None and again.to_json()["epoch"] == 7 and again.to_json()["group"] == "desk"
    )


async def test_the_current_epoch_sends(journal, raw_sql, leaders_table):
    lead(raw_sql, leaders_table, "desk", 4)
    entry = await intent(journal, epoch=4, group="desk")
    sent = await journal.mark_sent(entry.id, fence=("desk", 4))
    assert sent.state == "sent" and sent.attempts == 1
    assert await journal.get_leader("desk") == (4, "host-a:1", 1_800_000_000.5)
    assert await journal.get_leader("other") is None


@pytest.mark.parametrize(
    ("leader", "written", "held"),
    [
        (5, 4, 4),  # a newer leader took the group after this process wrote and holds 4
        (5, 4, 5),  # the entry was written under an older epoch than the one now held
        (None, 1, 1),  # the group was never led
    ],
)
async def test_a_stale_epoch_is_refused_and_the_entry_stays_pending(
    journal, raw_sql, leaders_table, leader, written, held
):
    if leader is not None:
        lead(raw_sql, leaders_table, "desk", leader)
    entry = await intent(journal, epoch=written, group="desk")
    with pytest.raises(StaleEpoch, match="not sent") as caught:
        await journal.mark_sent(entry.id, fence=("desk", held))
    assert isinstance(caught.value, JournalError)
    current = await journal.get(entry.id)
    assert current is not None and current.state == "pending" and current.attempts == 0
    assert [e["to_state"] for e in await journal.events(entry.id)] == ["pending"]
    failed = await journal.mark_failed(entry.id, "not sent: stale epoch")
    assert failed.state == "failed"


async def test_a_takeover_between_intent_and_send_fences_the_old_leader(
    journal, raw_sql, leaders_table
):
    lead(raw_sql, leaders_table, "desk", 1)
    entry = await intent(journal, epoch=1, group="desk")
    lead(raw_sql, leaders_table, "desk", 2, holder="host-b:9")  # the standby took over
    with pytest.raises(StaleEpoch):
        await journal.mark_sent(entry.id, fence=("desk", 1))
    assert await journal.get_leader("desk") == (2, "host-b:9", 1_800_000_000.5)


async def test_unfenced_mark_sent_is_unchanged(journal):
    entry = await intent(journal, epoch=9, group="desk")
    assert (await journal.mark_sent(entry.id)).state == "sent"


async def test_an_order_is_fenced_where_it_is_journaled(journal, raw_sql, leaders_table):
    lead(raw_sql, leaders_table, "desk", 3)
    order = {"bot": "b", "plugin": "p", "venue": "demo", "account": DESK_A, "data": {"x": 1}}
    placed = await journal.record_order(**order, epoch=3, group="desk", fence=("desk", 3))
    assert (placed.state, placed.epoch) == ("submitted", 3)
    with pytest.raises(StaleEpoch, match="order for"):
        await journal.record_order(**order, epoch=2, group="desk", fence=("desk", 2))
    lead(raw_sql, leaders_table, "desk", 4)
    with pytest.raises(StaleEpoch):
        await journal.record_order(**order, epoch=3, group="desk", fence=("desk", 3))
    assert [e.id for e in await journal.list(kind="order")] == [placed.id]  # nothing written
