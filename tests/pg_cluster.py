"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl under a temp dir, on a free
loopback port, as an unprivileged user, removed afterwards.

Fixtures: ``pg_cluster`` (one per session: a ``PgCluster`` with the admin DSN) and
``pg_database`` (a DSN whose tables land in a fresh empty schema per test: a schema costs a few
ms where CREATE DATABASE costs a file copy; advisory locks are per database, so a test that needs
them isolated from earlier tests' leftovers takes ``pg_cluster.create_database()``).

Without PostgreSQL (server binaries or psycopg) they skip with the reason; with ``CI`` set in
the environment they fail instead: CI must run these tests (``.ci/run`` installs PostgreSQL
and exports ``CI``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

try:
    import psycopg
except ImportError:  # the skip (or the CI failure) says so
    psycopg = None

__all__ = [
    "PASSWORD_ROLE",
    "PgCluster",
    "find_bindir",
    "pg_cluster",
    "pg_database",
    "start_cluster",
]

_SHARED_DB = "qfexbot_tests"
"""The database holding the per-test schemas (created with the cluster)."""

_SUPERUSER = "postgres"
"""The cluster's superuser (trust authentication on loopback only)."""

PASSWORD_ROLE = "qfexbot_pw"
"""The one role that must log in with a password (scram-sha-256): tests of the secret path
create it (``CREATE ROLE qfexbot_pw LOGIN PASSWORD ...``); every other role is trusted."""


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl: ``pg_config --bindir``, Debian's
    /usr/lib/postgresql/*/bin (newest first), then PATH."""
    candidates: list[Path] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, timeout=10, check=True
        )
        candidates.append(Path(out.stdout.strip()))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(p) for p in sorted(versions, key=_version_key, reverse=True)]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(os.path.realpath(initdb)).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def _version_key(path: str) -> tuple[int, ...]:
    parts = Path(path).parent.name.split(".")
    return tuple(int(p) for p in parts if p.isdigit())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class PgCluster:
    """A running throwaway cluster: its data dir, port and the superuser's DSN."""

    root: Path
    port: int
    bindir: Path
    run_as: str | None

    @property
    def dsn(self) -> str:
        """The superuser's DSN on the maintenance database ``postgres``."""
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        """The superuser's DSN on ``database``."""
        return f"postgresql://{_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh empty database; returns its DSN."""
        assert psycopg is not None
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.dsn_for(name)

    def create_schema(self) -> str:
        """A fresh empty schema in the shared database ``qfexbot_tests``; returns a DSN whose
        ``search_path`` is that schema alone (unqualified names are created and found there)."""
        assert psycopg is not None
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.dsn_for(_SHARED_DB), autocommit=True, connect_timeout=10) as c:
            c.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.dsn_for(_SHARED_DB)}?options=-csearch_path%3D{name}"

    def stop(self) -> None:
        """Stop the server (immediately: nothing in it is kept) and remove its directory."""
        with contextlib.suppress(subprocess.SubprocessError):
            _run(self.run_as, [str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"),
                               "-m", "immediate", "-w", "-t", "30", "stop"])  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


def _run(user: str | None, argv: list[str]) -> None:
    cmd = ["runuser", "-u", user, "--", *argv] if user else argv
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise subprocess.SubprocessError(
            f"{' '.join(argv[:1])} failed ({result.returncode}): {result.stderr.strip()[-800:]}"
        )


def _unprivileged_user() -> str | None:
    """None when not root; else the OS user to run the server as (initdb refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run initdb")


def start_cluster(bindir: Path, attempts: int = 3) -> PgCluster:
    """initdb a cluster under a new temp dir and start it on a free 127.0.0.1 port.

    fsync is off (a throwaway cluster needs no durability); the unix socket lives in the temp
    dir, so nothing outside it is touched. A port taken between picking and binding (another
    pytest-xdist worker starting its own cluster) is retried on a new one, ``attempts`` times.
    """
    user = _unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="qfexbot-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data = root / "data"
    cluster = PgCluster(root, 0, bindir, user)
    try:
        _run(user, [str(bindir / "initdb"), "-D", str(data), "-U", _SUPERUSER, "-A", "trust",
                    "-E", "UTF8", "--no-sync", "--locale=C"])  # fmt: skip
        hba = data / "pg_hba.conf"
        hba.write_text(f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        for attempt in range(attempts):
            cluster = PgCluster(root, _free_port(), bindir, user)
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={cluster.port} "
                f"-c unix_socket_directories={root} -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=60 -c shared_buffers=16MB"
            )
            try:
                _run(user, [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"),
                            "-o", options, "-w", "-t", "60", "start"])  # fmt: skip
                break
            except subprocess.SubprocessError:
                if attempt == attempts - 1:
                    raise
        assert psycopg is not None
        with psycopg.connect(cluster.dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"CREATE DATABASE {_SHARED_DB}")
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL cluster for the whole test session."""
    if psycopg is None:
        _unavailable("psycopg is not installed (pip install -e '.[postgres]')")
    bindir = find_bindir()
    if bindir is None:
        _unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")
    cluster = start_cluster(bindir)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_database(pg_cluster: PgCluster) -> str:
    """A DSN on the session's cluster whose tables live in a fresh empty schema."""
    return pg_cluster.create_schema()
