"""Operator commands on the journal and the kill switch: list, resolve by hand, back up, accept a
restored journal, pause, resume.

Plain synchronous functions returning the text to print; :func:`journal_command` wires them to
``qfexbot journal``, ``qfexbot journal resolve|release|backup|accept-restore``, ``qfexbot pause``
and ``qfexbot resume``.
They open the journal file directly (no event loop in the CLI); SQLite's WAL mode lets them run
beside a live ``qfexbot run``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from qfexbot.config import AppConfig
from qfexbot.config.model import PostgresJournalConfig
from qfexbot.core.accounts import AccountBook
from qfexbot.errors import JournalError
from qfexbot.money import killswitch
from qfexbot.money.journal import (
    Entry,
    EntryKind,
    EntryNotFound,
    EntryState,
    Hold,
    InvalidTransition,
    JournalLocked,
    SqliteStore,
    acquire_journal_lock,
    journal_holder,
)
from qfexbot.money.journal.postgres import OPEN_ERRORS, PostgresStore
from qfexbot.money.journal.store import JournalStore

__all__ = [
    "JournalCommandError",
    "account_for_release",
    "journal_accept_restore",
    "journal_backup",
    "journal_command",
    "journal_list",
    "journal_release",
    "journal_resolve",
    "pause",
    "resume",
]


class JournalCommandError(JournalError):
    """An operator command could not be carried out; the message says why (exit status 1)."""


JournalLocation = str | Path | PostgresJournalConfig
"""Where a command finds the journal: a SQLite file, or the PostgreSQL journal's config."""


def open_store(journal: JournalLocation) -> JournalStore:
    """The journal's synchronous store (close it after use).

    Raises:
      JournalCommandError: no such SQLite file, or the PostgreSQL journal cannot be opened.
    """
    if isinstance(journal, PostgresJournalConfig):
        try:
            password = None if journal.password is None else journal.password.resolve()
            return PostgresStore(journal.dsn, password=password)
        except OPEN_ERRORS as exc:
            raise JournalCommandError(f"cannot open the journal {journal.dsn}: {exc}") from None
    path = Path(journal)
    if not path.exists():
        raise JournalCommandError(f"no journal at {path}")
    return SqliteStore(path)


def _sqlite_only(journal: JournalLocation, what: str) -> Path:
    """The SQLite file of ``journal``; a PostgreSQL journal refuses ``what`` with the reason."""
    if isinstance(journal, PostgresJournalConfig):
        raise JournalCommandError(
            f"{what} is for a SQLite journal file; the PostgreSQL journal {journal.dsn} is backed "
            "up and restored by the database server (pg_dump / pg_basebackup, replicas): see "
            'docs/operations.md "PostgreSQL journal"'
        )
    return Path(journal)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + "Z"


def journal_list(
    journal_path: JournalLocation,
    state: str | None = None,
    as_json: bool = False,
    limit: int = 100,
    names: Mapping[str, str] | None = None,
) -> str:
    """The newest entries (optionally only one state) as a table, or as JSON lines.

    ``names`` maps account ids to aliases for the table (JSON keeps the ids, for scripts).
    Orders and cancels show their state (submitted, acked, filled, cancelled, rejected,
    unknown, failed; a cancel: done) and, in the ``order`` column, what they are: side,
    quantity, symbol and price, the client and venue order ids.
    """
    store = open_store(journal_path)
    try:
        entries = store.list(state=state, limit=limit)
        holds = store.active_holds()
    finally:
        store.close()
    if as_json:
        return "\n".join(json.dumps(e.to_json(), sort_keys=True) for e in entries)
    if not entries:
        return "no entries" + (f" in state {state}" if state else "") + _holds_text(holds, names)
    header = (
        "created (UTC)",
        "id",
        "kind",
        "state",
        "bot/plugin",
        "src -> dst",
        "amount",
        "order",
        "detail",
    )
    rows = [header]
    for e in entries:
        src, dst = (names or {}).get(e.src, e.src), (names or {}).get(e.dst, e.dst)
        orderly = e.kind in (EntryKind.ORDER, EntryKind.CANCEL, EntryKind.REQUEST)
        move = (src or "-") if orderly else f"{src or '-'} -> {dst or '-'}"
        detail = e.detail if not e.resolved_by else f"{e.detail} [resolved by {e.resolved_by}]"
        rows.append(
            (
                _when(e.created_at),
                e.id,
                e.kind,
                e.state,
                f"{e.bot}/{e.plugin}",
                move,
                "" if e.amount is None else str(e.amount),
                _order_text(e) if orderly else "",
                detail,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True))
        + "  "
        + row[-1]
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + _holds_text(holds, names)


def _order_text(entry: Entry) -> str:
    """What an order or cancel is, for the table: ``BUY 1.5 AAPL-USD @ 190 client C venue V``
    (a cancel: the symbol and the venue order id it cancels); empty for rows written before
    orders had columns."""
    parts = []
    if entry.kind == EntryKind.ORDER and entry.side is not None:
        price = "market" if entry.price is None else str(entry.price)
        parts.append(f"{entry.side} {entry.quantity} {entry.symbol} @ {price}")
    elif entry.symbol is not None:
        parts.append(entry.symbol)
    if entry.client_order_id:
        parts.append(f"client {entry.client_order_id}")
    if entry.venue_order_id:
        parts.append(f"venue {entry.venue_order_id}")
    return " ".join(parts)


def journal_resolve(journal_path: JournalLocation, entry_id: str, applied: bool) -> str:
    """Operator resolution of a transfer in doubt: ``applied`` -> done, else failed.

    Refuses unless the entry is a transfer in pending, sent or unknown. Check the venue (balances,
    account history) before answering: ``--not-applied`` unblocks the pair and allows a new
    transfer, which would double the money if the old one did land. So ``--not-applied`` also
    starts the late-landing watch (in the same journal transaction) from the deposits recorded
    just before the send: if the transfer had in fact landed, the next reconciliation pass
    re-marks it done and holds both accounts.

    Raises:
      JournalCommandError: no journal, no such entry, or the entry is not in doubt.
    """
    store = open_store(journal_path)
    try:
        current = store.get(entry_id)
        if isinstance(journal_path, PostgresJournalConfig):
            # Any host may be sending it: no lock file here says whether one runs.
            holder = "a PostgreSQL journal: any host of it may be sending"
        else:
            holder = journal_holder(journal_path)
            holder = f"pid {holder}" if holder else None
        if current is not None and holder and current.state in ("pending", "sent"):
            raise JournalCommandError(
                f"transfer {entry_id} is {current.state} in a running qfexbot ({holder}): "
                "it may be being sent right now; wait for its outcome or reconciliation, or stop "
                "that process first"
            )
        verdict = "applied" if applied else "not applied"
        entry = store.resolve(entry_id, applied, "operator", f"resolved by operator: {verdict}")
    except EntryNotFound:
        raise JournalCommandError(f"no journal entry {entry_id}") from None
    except InvalidTransition as exc:
        raise JournalCommandError(str(exc)) from None
    finally:
        store.close()
    text = (
        f"transfer {entry.id} ({entry.src} -> {entry.dst}, {entry.amount}) marked {entry.state} "
        f"by operator"
    )
    if applied:
        return text
    if None in (entry.src_deposit_before, entry.dst_deposit_before):
        return text + (
            "; WARNING: no deposits were recorded before its send, so a late landing of it "
            "cannot be detected: check the venue's history before moving money on this pair"
        )
    return text + (
        f"; watched for a late landing from the deposits before its send "
        f"({entry.src_deposit_before} / {entry.dst_deposit_before})"
    )


def journal_backup(journal_path: JournalLocation, dest: str | Path, overwrite: bool = False) -> str:
    """A consistent online copy of the journal at ``dest`` (0600), safe beside ``qfexbot run``.

    Raises:
      JournalCommandError: no journal, ``dest`` exists (without ``overwrite``) or is the journal.
    """
    path = _sqlite_only(journal_path, "qfexbot journal backup")
    if not path.exists():
        raise JournalCommandError(f"no journal at {path}")
    store = SqliteStore(path)
    try:
        info = store.backup(dest, overwrite=overwrite)
    except FileExistsError:
        raise JournalCommandError(f"{dest} exists; pass --force to overwrite it") from None
    except ValueError as exc:
        raise JournalCommandError(str(exc)) from None
    finally:
        store.close()
    return (
        f"journal {path} backed up to {info.path} (mode 0600): {info.entries} entries, "
        f"{info.unresolved} transfers in doubt, last audit event {info.last_seq}, journal id "
        f"{info.journal_id or 'not assigned yet'}"
    )


def journal_accept_restore(
    journal_path: JournalLocation, reason: str, state_dir: str | Path | None = None
) -> str:
    """Accept a journal that qfexbot refused as rolled back, after the operator checked it.

    Takes the journal's lock (so no ``qfexbot run`` is using it), records who accepted it and
    why in the journal's meta table, and makes its current state the new mark (``state_dir``:
    ``runtime.state_dir``).

    Raises:
      JournalCommandError: no journal, or a running qfexbot holds it.
    """
    path = _sqlite_only(journal_path, "qfexbot journal accept-restore")
    if not path.exists():
        raise JournalCommandError(f"no journal at {path}")
    try:
        lock = acquire_journal_lock(path)
    except JournalLocked as exc:
        raise JournalCommandError(f"{exc}; stop it before accepting a restored journal") from None
    try:
        store = SqliteStore(path)
        try:
            return store.accept_restore(reason, by=f"operator {_user()}", state_dir=state_dir)
        finally:
            store.close()
    finally:
        os.close(lock)


def _user() -> str:
    """Who runs this command, for the journal's record (the uid if there is no user name)."""
    try:
        return getpass.getuser()
    except OSError:
        return f"uid {os.getuid()}"


def pause(kill_switch_path: str | Path, reason: str) -> str:
    """Pause all money movement (creates the kill switch file)."""
    killswitch.pause(kill_switch_path, reason)
    return f"paused: money movement stops ({kill_switch_path}): {reason}"


def resume(kill_switch_path: str | Path) -> str:
    """Resume money movement (removes the kill switch file)."""
    if killswitch.resume(kill_switch_path):
        return f"resumed: kill switch {kill_switch_path} removed"
    return f"not paused: no kill switch at {kill_switch_path}"


def _holds_text(holds: list[Hold], names: Mapping[str, str] | None) -> str:
    """The account holds block of ``qfexbot journal`` (empty when there are none)."""
    if not holds:
        return ""
    lines = [
        "",
        f"ACCOUNT HOLDS: money movement is paused on {len(holds)} account hold(s) until "
        "an operator checks the venue and runs `qfexbot journal release ACCOUNT`:",
    ]
    for h in holds:
        name = (names or {}).get(h.account, h.account)
        entry = f" (transfer {h.entry_id})" if h.entry_id else ""
        lines.append(f"  {_when(h.created_at)}  {h.venue}  {name}  [{h.code}]{entry}: {h.reason}")
    return "\n".join(lines)


def account_for_release(account: str, tables: Mapping[str, Mapping[str, str]]) -> str:
    """The account id ``account`` names: itself, or the alias's id in the venue tables
    (``tables``: venue name -> alias -> id) that define it.

    Raises:
      JournalCommandError: the alias names different account ids in different venue tables.
    """
    found = {name: aliases[account] for name, aliases in tables.items() if account in aliases}
    ids = set(found.values())
    if len(ids) > 1:
        named = ", ".join(f"[venues.{name}] {found[name]}" for name in sorted(found))
        raise JournalCommandError(
            f"alias {account!r} names different accounts in different venue tables ({named}); "
            f"pass the account id instead"
        )
    return ids.pop() if ids else account


def journal_release(
    journal_path: JournalLocation,
    account: str,
    accounts: Mapping[str, str] | None = None,
    note: str = "released by operator",
) -> str:
    """Release the holds on an account (id, or alias through ``accounts``: alias -> id).

    Holds are placed by reconciliation after a late landing or deposits it cannot explain; see
    docs/reliability.md "Money edges". Resolve any transfer still in doubt on the account
    first (``qfexbot journal resolve``): releasing only lets money move again.

    Raises:
      JournalCommandError: no journal, a transfer touching the account is still in doubt
        (resolve it first), or no active hold on that account.
    """
    account_id = (accounts or {}).get(account, account)
    store = open_store(journal_path)
    try:
        doubt = [e for e in store.unresolved() if account_id in (e.src, e.dst)]
        if doubt:
            listed = ", ".join(f"{e.id} ({e.src} -> {e.dst}, {e.amount}, {e.state})" for e in doubt)
            raise JournalCommandError(
                f"not releasing {account}: transfer(s) touching it are still in doubt: {listed}. "
                f"Check the venue's balances and history, resolve each first with `qfexbot "
                f"journal resolve ID --applied|--not-applied`, then release"
            )
        released = store.release_holds(None, account_id, "operator", note)
    finally:
        store.close()
    if not released:
        raise JournalCommandError(f"no active hold on account {account}")
    return f"released {released} hold(s) on {account}: money may move on it again"


def journal_command(app: AppConfig, args: argparse.Namespace) -> int:
    """``qfexbot journal``, ``journal resolve|release|backup|accept-restore``, ``pause`` and
    ``resume`` (``args.command`` says which): print the result, exit 0; or print why not on
    stderr, exit 1."""
    try:
        print(_run(app, args))
    except JournalCommandError as exc:
        print(f"qfexbot {args.command.replace('-', ' ')}: {exc}", file=sys.stderr)
        return 1
    return 0


def _run(app: AppConfig, args: argparse.Namespace) -> str:
    journal: JournalLocation = app.runtime.postgres or app.runtime.journal
    kill_switch = app.runtime.kill_switch_file
    books = {name: AccountBook(venue.accounts, name=name) for name, venue in app.venues.items()}
    if args.command == "journal":
        known = sorted(v for k, v in vars(EntryState).items() if k.isupper())
        if args.state is not None and args.state not in known:
            raise JournalCommandError(
                f"--state {args.state!r} is no entry state; one of: {', '.join(known)}"
            )
        names: dict[str, str] = {}
        for book in books.values():  # an id in two venue tables: the later table's alias
            names.update((account_id, book.alias_of(account_id)) for account_id in book.ids())
        return journal_list(journal, state=args.state, as_json=args.json, names=names)
    if args.command == "journal-resolve":
        return journal_resolve(journal, args.entry_id, args.applied)
    if args.command == "journal-release":
        account_id = account_for_release(args.account, books)
        return journal_release(journal, args.account, {args.account: account_id})
    if args.command == "journal-backup":
        return journal_backup(journal, args.path, overwrite=args.force)
    if args.command == "journal-accept-restore":
        return journal_accept_restore(journal, args.reason, app.runtime.state_dir)
    if args.command == "pause":
        return pause(kill_switch, args.reason)
    return resume(kill_switch)
