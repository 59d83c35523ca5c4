"""Suite-wide fixtures: qfexbot's state directory (journal marks) lives in each test's tmp dir,
so tests never write into the home directory and never see each other's marks."""

from __future__ import annotations

import pytest

from qfexbot.journal import STATE_DIR_ENV


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory: pytest.TempPathFactory,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path_factory.mktemp("qfexbot-state")))
