"""Account holds through the whole runtime: durable across a start, refused, visible in metrics."""

from __future__ import annotations

from decimal import Decimal

import trio
from prometheus_client.parser import text_string_to_metric_families
from runtime_helpers import DESK_A, PRIMARY, write_config

from qfexbot.money.journal import SqliteJournal
from qfexbot.runtime import Runtime


def metric(text: str, name: str, venue: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("venue") == venue:
                return sample.value
    raise AssertionError(f"no sample {name}{{venue={venue!r}}} in the exposition")


async def test_a_hold_left_by_an_earlier_run_refuses_transfers_and_is_exposed(tmp_path):
    app = write_config(tmp_path)
    journal = await SqliteJournal.open(app.runtime.journal)
    # Keyed by the table's journal owner, as the runtime places them (a simulator table's own
    # key: VenueConfig.owner).
    await journal.place_hold(
        "demo", DESK_A, "late_landing", "late landing of 30 (test)", owner=app.venues["demo"].owner
    )
    await journal.close()
    runtime = Runtime(app)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            service = runtime.venues["demo"].transfers
            assert service is not None
            result = await service.transfer("watch", "recorder", PRIMARY, DESK_A, Decimal(30),
                                            "top-up")  # fmt: skip
            assert (result.state, result.code) == ("refused", "account_held")
            await runtime.metrics.refresh()
            text = runtime.metrics.exposition().decode()
            assert metric(text, "qfexbot_account_holds", "demo") == 1
            assert metric(text, "qfexbot_transfer_late_landings_total", "demo") == 0
            runtime.stop()
    assert runtime.simulators["demo"].ledger == []
    refusal = [e for e in await _entries(app.runtime.journal) if e.kind == "refusal"]
    assert [e.data["code"] for e in refusal] == ["account_held"]


async def _entries(path):
    journal = await SqliteJournal.open(path)
    try:
        return await journal.list()
    finally:
        await journal.close()
