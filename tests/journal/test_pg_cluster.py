"""The throwaway PostgreSQL cluster: on loopback, a fresh empty schema per test."""

from __future__ import annotations

import pg_cluster as pg_cluster_module
import pytest

psycopg = pytest.importorskip(
    "psycopg", reason="psycopg is not installed (pip install -e '.[postgres]')"
)


def test_fresh_database_is_empty_and_on_loopback(pg_cluster, pg_database):
    assert pg_database.startswith("postgresql://postgres@127.0.0.1:")
    with psycopg.connect(pg_database, connect_timeout=10) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchone()
        address = conn.execute("SELECT inet_server_addr()::text").fetchone()
        conn.execute("CREATE TABLE scratch (x INT)")
    assert tables == (0,)
    assert address == ("127.0.0.1/32",)
    assert pg_cluster.root.is_dir()


def test_each_test_gets_its_own_schema(pg_database):
    with psycopg.connect(pg_database, connect_timeout=10) as conn:
        found = conn.execute("SELECT to_regclass('public.scratch')").fetchone()
    assert found == (None,)


def test_a_fresh_database_is_empty(pg_cluster):
    dsn = pg_cluster.create_database()
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        found = conn.execute("SELECT current_database(), to_regclass('scratch')").fetchone()
    assert found is not None and found[0] != "postgres" and found[1] is None


def test_missing_postgresql_skips_locally_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no initdb"):
        pg_cluster_module._unavailable("no initdb")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL is required in CI: no initdb"):
        pg_cluster_module._unavailable("no initdb")


def test_the_server_binaries_are_found(pg_cluster):
    bindir = pg_cluster_module.find_bindir()
    assert bindir is not None and (bindir / "pg_ctl").is_file()
