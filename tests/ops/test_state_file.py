"""The state file beside the journal: written and removed by its own process only."""

from __future__ import annotations

import json
import os
from pathlib import Path

from qfexbot.ops.state import read_state, remove_state, state_path, write_state


def test_written_read_and_removed_by_its_own_process_only(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    path = write_state(journal, "http://127.0.0.1:1234")
    assert path == state_path(journal)
    state = read_state(journal)
    assert state is not None and (state["url"], state["pid"]) == (
        "http://127.0.0.1:1234",
        os.getpid(),
    )
    path.write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": os.getpid() + 1}))
    remove_state(path)
    assert path.exists(), "another process's state file is left alone"
    for junk in ("[1]", "not json", '"a string"'):
        path.write_text(junk)
        remove_state(path)  # never raises at shutdown
        assert read_state(journal) is None
    path.write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": os.getpid()}))
    remove_state(path)
    assert not path.exists()
