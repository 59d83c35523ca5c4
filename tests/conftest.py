"""Suite-wide fixtures: every test run uses its own machine-wide account-lock directory.

The tests reuse a few fixed account ids, so two test runs on one machine (or a test run next
to a real qfexbot) would otherwise hold each other's account locks (``qfexbot.account_locks``).
Subprocesses inherit the variable.
"""

from __future__ import annotations

import pytest

from qfexbot.account_locks import ENV


@pytest.fixture(autouse=True, scope="session")
def _account_lock_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV, str(tmp_path_factory.mktemp("account-locks")))
        yield
