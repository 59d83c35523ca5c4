"""``qfexbot run`` on a PostgreSQL journal, end to end: embedded simulator, a plugin's transfer
journaled in the throwaway cluster's database and sent once, no SQLite file written."""

from __future__ import annotations

import shutil
from decimal import Decimal

import pytest
import trio
from runtime_helpers import DESK_A, recorder, write_config
from wait_helpers import wait_until

from qfexbot.config import load_config
from qfexbot.money.journal.postgres import PostgresJournal
from qfexbot.ops.state import read_state
from qfexbot.runtime import Runtime

psycopg = pytest.importorskip(
    "psycopg", reason="psycopg is not installed (pip install -e '.[postgres]')"
)


async def test_plugin_transfer_is_journaled_in_postgres_and_sent_once(tmp_path, pg_database):
    app = write_config(tmp_path, recorder_options="transfer_amount = 100")
    text = app.path.read_text().replace(
        'journal = "var/journal.sqlite"', f'journal = "{pg_database}"'
    )
    app.path.write_text(text)
    shutil.rmtree(tmp_path / "var")  # nothing local is needed but this host's state file
    app = load_config(app.path)
    runtime = Runtime(app)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            assert isinstance(runtime.journal, PostgresJournal)
            assert read_state(app.runtime.journal) is not None  # `qfexbot status` finds it
            plugin = recorder(runtime)
            await wait_until(lambda: plugin.results, what="the plugin's transfer", within=10)
            assert plugin.results[0].state == "done"
            sim = runtime.simulators["demo"]
            assert [(e.dst, e.amount) for e in sim.ledger] == [(DESK_A, Decimal(100))]
            runtime.stop()
    with psycopg.connect(pg_database, connect_timeout=10) as conn:
        rows = conn.execute("select state, amount from entries where kind = 'transfer'").fetchall()
        trail = conn.execute(
            "select to_state from events join entries on entries.id = events.entry_id "
            "where kind = 'transfer' order by seq"
        ).fetchall()
    assert rows == [("done", "100")]
    assert trail == [("pending",), ("sent",), ("done",)]
    assert not (tmp_path / "var" / "journal.sqlite").exists()
