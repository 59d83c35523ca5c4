"""Suite-wide fixtures: each test run gets its own machine-wide account-lock directory, and
qfexbot's state directory (journal marks) lives in each test's tmp dir.

The tests reuse a few fixed account ids, so two test runs on one machine (or a test run next
to a real qfexbot) would otherwise hold each other's account locks
(``qfexbot.money.account_locks``); and tests must never write marks into the home directory
nor see each other's marks.
Subprocesses inherit both variables.
"""

from __future__ import annotations

import pytest

from qfexbot.money.account_locks import ENV
from qfexbot.money.journal import STATE_DIR_ENV

# The throwaway PostgreSQL cluster's fixtures (pg_cluster, pg_database): tests/pg_cluster.py.
pytest_plugins = ["pg_cluster"]


@pytest.fixture(autouse=True, scope="session")
def _account_lock_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV, str(tmp_path_factory.mktemp("account-locks")))
        yield


@pytest.fixture(autouse=True)
def _private_state_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path_factory.mktemp("qfexbot-state")))
