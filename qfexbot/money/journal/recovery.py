"""Rollback detection, the state directory and online backups of a journal file.

Rollback detection: the journal carries an identity (a UUID in its meta table) and a high-water
mark (its id and newest audit-event sequence number, ``JournalMark``) is kept outside it, beside
the journal and in the state directory. A journal that does not continue the mark was restored
from an older copy, replaced, or copied while live; it is refused until an operator accepts it.
Backups use SQLite's backup API (a file copy of a live WAL journal is not a backup).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from qfexbot.money.journal.model import UNRESOLVED, BackupInfo, JournalMark

__all__ = [
    "JOURNAL_ID_KEY",
    "RESTORE_ACCEPTED_KEY",
    "STATE_DIR_ENV",
    "copy_database",
    "first_problem",
    "mark_paths",
    "read_marks",
    "update_mark",
    "write_mark",
]

JOURNAL_ID_KEY = "journal.id"
"""Meta key of the journal's identity (a UUID given when the file is first checked)."""
RESTORE_ACCEPTED_KEY = "journal.restore_accepted"
"""Meta key prefix of the records ``qfexbot journal accept-restore`` leaves."""
STATE_DIR_ENV = "QFEXBOT_STATE_DIR"
"""Directory of the second mark copy when ``runtime.state_dir`` is not set (default
``$XDG_STATE_HOME/qfexbot``, else ``~/.local/state/qfexbot``): outside the journal's directory,
so restoring that directory does not roll the mark back with it."""


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + "Z"


def _rollback_problem(seen: JournalMark, found: JournalMark | None, last_seq: int) -> str:
    """Why a journal does not continue ``seen`` ("" when it does)."""
    if found is None:
        return (
            f"it has no journal id and {last_seq} audit events (a new or emptied file, or a plain "
            f"copy of a live journal whose -wal was left behind), while journal "
            f"{seen.journal_id} with {seen.seq} events was seen at {_when(seen.at)}"
        )
    if found.journal_id != seen.journal_id:
        return (
            f"it is journal {found.journal_id}, but journal {seen.journal_id} "
            f"({seen.seq} events) was seen here at {_when(seen.at)}"
        )
    if found.seq < seen.seq:
        return (
            f"it ends at audit event {found.seq}, but event {seen.seq} of this journal "
            f"({seen.journal_id}) was seen at {_when(seen.at)}"
        )
    return ""


def mark_paths(journal_path: str | Path, state_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Where the journal's mark is kept: beside the journal and in the state directory
    (``state_dir``, else ``$QFEXBOT_STATE_DIR``, else the XDG state directory). Keyed by the
    journal's real path, as its lock is: a copy opened through a symlink or another spelling
    of the path still finds its marks."""
    path = Path(os.path.realpath(journal_path))
    beside = path.with_name(path.name + ".mark")
    base = str(state_dir) if state_dir is not None else os.environ.get(STATE_DIR_ENV)
    if not base:
        xdg = os.environ.get("XDG_STATE_HOME")
        base = str(Path(xdg) / "qfexbot") if xdg else str(Path.home() / ".local/state/qfexbot")
    digest = hashlib.sha256(str(path).encode("utf-8")).hexdigest()[:32]
    return beside, Path(base) / "marks" / f"{digest}.json"


def first_problem(
    marks: Iterable[JournalMark], found: JournalMark | None, last_seq: int
) -> tuple[JournalMark | None, str]:
    """The first mark the journal does not continue, and why; ``(None, "")`` if none.

    Every mark must agree: the two copies are written together, so one that differs was
    restored (or could not be written, and is then older: harmless)."""
    for mark in marks:
        problem = _rollback_problem(mark, found, last_seq)
        if problem:
            return mark, problem
    return None, ""


def read_marks(paths: Iterable[Path]) -> list[JournalMark]:
    """The marks stored at ``paths`` (missing or unreadable files are skipped)."""
    marks: list[JournalMark] = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text("utf-8"))
            marks.append(JournalMark(str(data["journal_id"]), int(data["seq"]), float(data["at"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return marks


_MARK_BYTES = 240


def _mark_record(mark: JournalMark) -> bytes:
    """A mark as fixed-width JSON, so an update rewrites it in place without truncating."""
    text = json.dumps({"journal_id": mark.journal_id, "seq": mark.seq, "at": mark.at})
    return text.encode("utf-8").ljust(_MARK_BYTES - 1) + b"\n"


def write_mark(paths: Iterable[Path], mark: JournalMark) -> None:
    """Replace every mark file with ``mark`` atomically (mode 0600), creating directories."""
    record = _mark_record(mark)
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, record)
        finally:
            os.close(fd)
        os.replace(partial, path)


def update_mark(paths: Iterable[Path], mark: JournalMark) -> None:
    """Rewrite existing mark files in place: one small write each, cheap enough for every
    commit (a rename per commit would make ext4 flush each time). A torn write leaves that
    copy unreadable, which counts as no mark; the other copy still holds."""
    record = _mark_record(mark)
    for path in paths:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, record, 0)
        finally:
            os.close(fd)


def _backup_info(db: sqlite3.Connection, path: Path) -> BackupInfo:
    marks = ", ".join("?" for _ in UNRESOLVED)
    row = db.execute("SELECT value FROM meta WHERE key = ?", (JOURNAL_ID_KEY,)).fetchone()
    return BackupInfo(
        path=path,
        journal_id=None if row is None else row[0],
        entries=db.execute("SELECT COUNT(*) FROM entries").fetchone()[0],
        unresolved=db.execute(
            f"SELECT COUNT(*) FROM entries WHERE kind = 'transfer' AND state IN ({marks})",
            UNRESOLVED,
        ).fetchone()[0],
        last_seq=db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0],
    )


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_database(
    db: sqlite3.Connection, journal: Path, dest: str | Path, *, overwrite: bool = False
) -> BackupInfo:
    """A consistent copy at ``dest`` (mode 0600) of ``journal``, open on ``db``, taken online.

    Uses SQLite's backup API from ``db``, so it sees one committed snapshot even
    while another process writes; the copy is one self-contained file (not WAL), checked
    with ``integrity_check``, then moved into place. A plain file copy of a live WAL journal
    is *not* a backup: its commits may still be in ``-wal``.

    Raises:
      FileExistsError: ``dest`` exists and ``overwrite`` is false.
      ValueError: ``dest`` is the journal itself.
      sqlite3.Error, OSError: the copy could not be written (nothing is left at ``dest``).
    """
    dest = Path(dest)
    if dest.resolve() == journal.resolve():
        raise ValueError(f"backup target {dest} is the journal itself")
    if dest.exists() and not overwrite:
        raise FileExistsError(f"{dest} exists; pass --force to overwrite it")
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    os.chmod(partial, 0o600)
    try:
        copy = sqlite3.connect(partial, isolation_level=None)
        try:
            db.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
            status = copy.execute("PRAGMA integrity_check").fetchone()[0]
            if status != "ok":
                raise sqlite3.DatabaseError(f"backup failed integrity_check: {status}")
            info = _backup_info(copy, dest)
        finally:
            copy.close()
        _fsync_path(partial)
        if overwrite:
            os.replace(partial, dest)
        else:
            os.link(partial, dest)  # fails if dest appeared meanwhile: never overwrite
            os.unlink(partial)
        _fsync_path(dest.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return info
