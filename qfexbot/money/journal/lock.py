"""The journal's process lock: one running qfexbot per journal file, keyed by its real path.

A ``.lock`` file beside the journal's real path (a symlink or another spelling of the path finds
the same lock), held with ``flock`` for as long as the process runs.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from qfexbot.money.journal.model import JournalLocked

__all__ = ["acquire_journal_lock", "journal_holder"]


def _lock_path(path: Path) -> Path:
    # Keyed by the real path: a symlink (or a relative path) to the journal finds the same lock.
    real = Path(os.path.realpath(path))
    return real.with_name(real.name + ".lock")


def acquire_journal_lock(path: str | Path) -> int:
    """Take the journal's exclusive lock (a ``.lock`` file beside it) and return its fd.

    Two processes moving money from one journal would each reconcile the other's in-flight
    transfers as doubtful and act independently; the lock makes the second one refuse to start.
    Closing the fd (or the process dying, even by SIGKILL) releases it.

    Raises:
      JournalLocked: another process holds it (its pid is in the message).
    """
    lock = _lock_path(Path(path))
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise JournalLocked(
            f"journal {path} is in use by another qfexbot process (pid {holder}); "
            "one running qfexbot per journal"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
    return fd


def journal_holder(path: str | Path) -> str | None:
    """The pid of the running process holding the journal, or None if none holds it."""
    lock = _lock_path(Path(path))
    if not lock.exists():
        return None
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
    finally:
        os.close(fd)
    return None
