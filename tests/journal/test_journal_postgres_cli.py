"""``journal = "postgresql://..."`` in bots.toml: the config, ``qfexbot journal``, ``journal
resolve``, ``status`` and the SQLite-only commands refusing, against the throwaway cluster."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from journal_helpers import DESK_A, TREASURY, write_bots_toml

from qfexbot.cli import main
from qfexbot.config import ConfigError, load_config
from qfexbot.money.journal.postgres import PostgresStore

SECRET = "pg-pass-never-shown"


def write_config(tmp_path, journal: str, password: str = "") -> str:
    return str(write_bots_toml(tmp_path, journal, password))


def transfer(store: PostgresStore, amount: int = 7):
    return store.record_intent(
        bot="b", plugin="p", venue="demo", src=TREASURY, dst=DESK_A, amount=Decimal(amount),
        reason="top-up",
    )  # fmt: skip


@pytest.fixture
def in_doubt(pg_database) -> str:
    """One transfer left unknown in the test's PostgreSQL journal; returns its id."""
    store = PostgresStore(pg_database)
    try:
        entry = transfer(store)
        store.mark_sent(entry.id)
        store.mark_unknown(entry.id, "outcome unknown: read timeout")
    finally:
        store.close()
    return entry.id


def test_journal_list_resolve_and_status_on_postgres(
    tmp_path, pg_database, in_doubt, capsys, monkeypatch
):
    monkeypatch.setenv("QFEXBOT_TEST_PGPASS", SECRET)
    config = write_config(tmp_path, pg_database, 'journal_password = {env = "QFEXBOT_TEST_PGPASS"}')
    app = load_config(config)
    assert app.runtime.postgres is not None and app.runtime.postgres.dsn == pg_database
    assert SECRET not in repr(app.runtime)
    assert main(["journal", config, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["id"], r["state"]) for r in rows] == [(in_doubt, "unknown")]
    assert main(["status", config, "--json"]) == 1  # nothing running: the journal's doubt shown
    status = json.loads(capsys.readouterr().out)
    assert [t["id"] for t in status["transfers"]] == [in_doubt]
    assert main(["journal", "resolve", in_doubt, "--not-applied", "--config", config]) == 0
    assert "marked failed by operator" in capsys.readouterr().out
    store = PostgresStore(pg_database)
    try:
        resolved = store.get(in_doubt)
        assert resolved is not None and (resolved.state, resolved.resolved_by) == (
            "failed",
            "operator",
        )
    finally:
        store.close()
    assert main(["journal", "backup", str(tmp_path / "copy.sqlite"), config]) == 1
    err = capsys.readouterr().err
    assert "PostgreSQL journal" in err and "pg_dump" in err and SECRET not in err
    assert not (tmp_path / "copy.sqlite").exists()


def test_a_pending_transfer_is_not_resolved_by_hand_on_postgres(tmp_path, pg_database, capsys):
    store = PostgresStore(pg_database)
    try:
        entry = transfer(store, 1)
    finally:
        store.close()
    config = write_config(tmp_path, pg_database)
    assert main(["journal", "resolve", entry.id, "--applied", "--config", config]) == 1
    assert "any host of it may be sending" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("journal", "password", "problem"),
    [
        (f"postgresql://u:{SECRET}@127.0.0.1:5432/db", "", "must not hold the password"),
        ("postgresql://127.0.0.1:5432/", "", "expected postgresql://user@host:port/database"),
        ("var/j.sqlite", 'journal_password = {env = "X"}', "only a PostgreSQL journal"),
        ("postgresql://u@h/db", f'journal_password = "{SECRET}"', "inline secrets"),
    ],
)
def test_bad_journal_settings_are_refused_without_the_secret(tmp_path, journal, password, problem):
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, journal, password))
    assert problem in str(caught.value) and SECRET not in str(caught.value)
