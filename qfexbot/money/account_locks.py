"""Machine-wide account locks: no two qfexbot processes on one machine move the same accounts.

The venue cannot tell us about another mover (transfers carry no client id, there is no
transfer history), and a second qfexbot process on the same accounts would reconcile the
first one's transfers from balances it is itself moving. So each process that may move money
on an account, or judge a transfer from its balances, takes an exclusive ``flock`` on a file
keyed by the account id alone before anything moves, and holds it until it exits. QFEX
subaccount ids are UUIDs, unique across users, and ``primary`` is the user id itself, so the
account id names the money on its own: a mistyped ``user_id`` in one of two configs cannot make
them lock different files. The kernel releases it when the process dies, even by SIGKILL;
nothing stale is left to clean up.

The files live in one directory for the whole machine: ``$QFEXBOT_LOCK_DIR`` if set, else
``/run/lock/qfexbot`` (a tmpfs that age-based cleaners leave alone) when ``/run/lock`` is
writable, else ``<tempdir>/qfexbot-locks``. Every qfexbot on the machine must use the same
directory for the locks to mean anything: the temp-dir fallback is logged as a WARNING when the
locks are taken, because a service with systemd ``PrivateTmp`` gets a temp dir of its own.
File names are a hash of the account id (ids do not leak into names); the content says which
process holds it. The runtime does not lock the accounts of
an embedded simulator (``simulator = true``): they exist only inside their own process.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from qfexbot.core.logs import get_logger, log_event
from qfexbot.errors import JournalError

__all__ = ["AccountLocks", "AccountsLocked", "acquire_account_locks", "lock_directory"]

ENV = "QFEXBOT_LOCK_DIR"
"""The environment variable that overrides the lock directory."""

RUN_LOCK = Path("/run/lock")
"""The machine's lock tmpfs; ``qfexbot`` below it is the default lock directory."""

log = get_logger(__name__)


class AccountsLocked(JournalError, RuntimeError):
    """Another process holds the lock of an account this process would move money on."""


def lock_directory(environ: Mapping[str, str] | None = None) -> Path:
    """The machine-wide lock directory (see the module doc for the order of choice)."""
    return _choose_directory(environ)[0]


def _choose_directory(environ: Mapping[str, str] | None) -> tuple[Path, bool]:
    """The lock directory, and whether it is the temp-dir fallback."""
    env = os.environ if environ is None else environ
    if env.get(ENV):
        return Path(env[ENV]), False
    if RUN_LOCK.is_dir() and os.access(RUN_LOCK, os.W_OK | os.X_OK):
        return RUN_LOCK / "qfexbot", False
    return Path(tempfile.gettempdir()) / "qfexbot-locks", True


def _file_name(account_id: str) -> str:
    digest = hashlib.sha256(account_id.encode()).hexdigest()[:32]
    return f"account-{digest}.lock"


@dataclass
class AccountLocks:
    """The account locks one process holds; ``release()`` (or process exit) frees them."""

    directory: Path
    _fds: list[int] = field(default_factory=list, repr=False)

    def release(self) -> None:
        """Release every lock (idempotent)."""
        while self._fds:
            os.close(self._fds.pop())


def _open_locked(path: Path) -> int | None:
    """Open ``path`` and take its exclusive lock: the fd, or None if another process holds it.

    Retries if the file was replaced between open and lock, so two processes can never each
    hold a lock on a different file of the same name.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() or "unknown process"
    except OSError:
        return "unknown process"


def acquire_account_locks(
    accounts: Iterable[tuple[str, str]],
    *,
    holder: str,
    directory: Path | None = None,
) -> AccountLocks:
    """Lock every ``(account_id, label)`` for this process, or none of them.

    ``label`` names the account in messages (e.g. ``venue demo account desk-a``); ``holder``
    is written into each lock file after the pid (e.g. the config path), so the refusal of a
    second process says who holds the accounts.

    Raises:
      AccountsLocked: another process holds one of them (every lock taken here is released).
      OSError: the lock directory cannot be created or written.
    """
    keys = dict(sorted(accounts))
    fallback = False
    if directory is None:
        directory, fallback = _choose_directory(None)
    if fallback and keys:
        log_event(log, logging.WARNING, "account locks are in the temp directory, not "
                  f"{RUN_LOCK} (not writable): another qfexbot excludes this one only if it "
                  "sees the same directory, and a service with systemd PrivateTmp has a temp "
                  f"directory of its own; set {ENV} to one directory every qfexbot on this "
                  "machine uses", directory=str(directory))  # fmt: skip
    locks = AccountLocks(directory)
    locks.directory.mkdir(parents=True, exist_ok=True)
    try:
        for account_id, label in keys.items():
            path = locks.directory / _file_name(account_id)
            fd = _open_locked(path)
            if fd is None:
                raise AccountsLocked(
                    f"{label} (account {account_id}) is being moved by another "
                    f"qfexbot process on this machine ({_holder(path)}); one process per account. "
                    f"Stop that process, or take this account out of this config's bots"
                )
            locks._fds.append(fd)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}: {holder}\n".encode(), 0)
    except BaseException:
        locks.release()
        raise
    return locks
