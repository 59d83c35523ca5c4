"""The state file a running ``qfexbot run`` keeps beside its journal: where its ops endpoint
listens and which process it is, so ``qfexbot status`` finds a process whose port was picked
at start (the default, ``127.0.0.1:0``) without being told a URL."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = [
    "STATE_SUFFIX",
    "process_alive",
    "read_state",
    "remove_state",
    "state_path",
    "write_state",
]

STATE_SUFFIX = ".ops.json"


def state_path(journal: Path) -> Path:
    """The state file of the process that holds ``journal`` (one journal, one process)."""
    return journal.with_name(journal.name + STATE_SUFFIX)


def write_state(journal: Path, url: str) -> Path:
    """Record this process's ops URL beside ``journal`` (atomically); returns the file."""
    path = state_path(journal)
    data = {"url": url, "pid": os.getpid(), "started_at": time.time()}
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data) + "\n")
    os.replace(tmp, path)
    return path


def read_state(journal: Path) -> dict[str, Any] | None:
    """The state file's content, or None when there is none or it is not one of ours."""
    try:
        data = json.loads(state_path(journal).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return None
    if not isinstance(data.get("pid"), int):
        return None
    return data


def remove_state(path: Path) -> None:
    """Remove the state file at shutdown if this process wrote it (never another's)."""
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and data.get("pid") == os.getpid():
            path.unlink()


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (the state file of a killed one is left behind)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
