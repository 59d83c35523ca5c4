"""The kill switch: a file; while it exists all money movement is paused.

``pause(path, reason)`` and ``resume(path)`` write and remove it atomically;
``kill_switch_reason(path)`` reads it (failing closed: a file that cannot be read still pauses).
Kept apart from ``qfexbot.money.policy`` so the policy checks stay pure.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

__all__ = ["kill_switch_reason", "pause", "resume"]


def kill_switch_reason(path: str | Path | None) -> str | None:
    """The pause reason if the kill switch file exists (empty file -> "paused"), else None."""
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return f"kill switch path {path} is a directory"
    except (OSError, UnicodeDecodeError) as exc:
        # Fail closed: a kill switch that exists but cannot be read still pauses.
        return f"paused (kill switch {path} unreadable: {type(exc).__name__})"
    return text.splitlines()[0] if text else "paused"


def pause(path: str | Path, reason: str) -> None:
    """Pause all money movement: atomically write the kill switch file with ``reason``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    line = " ".join((reason or "paused").split())
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"{line} (paused at {stamp})\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resume(path: str | Path) -> bool:
    """Resume money movement: remove the kill switch file. Returns whether it existed."""
    try:
        Path(path).unlink()
    except FileNotFoundError:
        return False
    return True
