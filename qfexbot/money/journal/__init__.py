"""The action journal: every transfer, order and refusal, written before it happens.

A transfer's row is committed *before* its request is sent, so after any crash we know which
transfers may have moved money. States of a transfer::

    pending ──> sent ──> done
       │          ├────> failed
       │          └────> unknown ──> done | failed   (resolve: reconciliation or operator)
       ├──> failed    (definitely not sent)
       └──> unknown   (crashed or cancelled around the send)

A ``pending`` or ``sent`` row that nobody is working on (found at start-up or by reconciliation)
must be treated as ``unknown``: the request may or may not have reached the venue.
Every state change is also appended to the ``events`` table (append-only, enforced by triggers).

Orders and cancels are journaled the same way (``record_order`` before the send, ``mark_order``
after; their fields in their own columns)::

    order:   submitted ──> acked ──> filled | cancelled
                 ├──> filled | cancelled | rejected | failed
                 └──> unknown ──> acked | filled | cancelled | rejected | failed
    cancel:  submitted ──> done | failed | unknown ──> done | failed

``qfexbot.runtime.orders`` moves them from the venue's replies and reconciles those in doubt by
client order id; an order never blocks money movement.

``Journal`` is the interface callers use; ``SqliteJournal`` is the SQLite backend (WAL,
``synchronous=FULL``), doing all database work on one dedicated thread that owns the connection,
so the trio event loop never waits on the disk. ``postgres.PostgresJournal`` implements the same
``Journal`` protocol on one PostgreSQL database shared by several processes (imported from its
module: it needs the ``postgres`` extra).

Modules: ``model`` (states, ``Entry``, errors), ``protocol`` (``Journal``, the backend seam),
``store`` (``JournalStore``: every operation, written once), ``sqlite`` (``SqliteStore``),
``postgres`` (``PostgresStore``, ``PostgresJournal``), ``threaded`` (``ThreadedJournal``,
``SqliteJournal``, derived from the protocol), ``lock`` (one process per journal file) and
``recovery`` (marks, state directory, backups).

Fencing (leadership, issue 18): rows carry the ``epoch`` and ``group`` they were written under;
``mark_sent(id, fence=(group, epoch))`` raises ``StaleEpoch`` (the entry stays pending) unless
the group's row in the leaders table (``qfexbot_leaders``; SQLite: ``leaders``) still holds that
epoch and the entry was written under it; ``record_order(..., fence=...)`` checks the same
before writing an order's row (an order has no step between its row and the send);
``get_leader(group)`` reads the row.

Secrets are never written: callers pass ids, amounts and reasons only, and ``data`` must be
JSON made of plain values (a ``Secret`` is rejected, not stringified).

The ``meta`` table holds small durable facts keyed by name (``get_meta``/``set_meta``), e.g.
whether a venue has been seen to reflect transfers in its ``deposit`` balance (see
``qfexbot.money.transfers``). Files written by older versions open unchanged: missing columns and
tables are added at open.

Two tables serve the money edges of ``qfexbot.money.transfers``: ``holds`` (durable per-account
pauses of money movement that only an operator releases) and ``watches`` (transfers reconciled "not
applied", watched for a late landing from the deposits read at that verdict).

Identity. A transfer row carries ``owner``: the venue user id the accounts belong to (QFEX
subaccount ids are UUIDs under one user id). ``venue`` is the configured venue *name*, kept for
display and compatibility only; everything that decides whether money may move — blocking,
reconciliation, ``min_interval`` and the rolling 24 h total — is keyed by ``(owner, account
ids)``, so renaming a venue, an account alias or a bot changes nothing. Rows written before the
column existed have ``owner`` NULL: we cannot know their user id, so they match by account ids
alone, under *every* owner (an old unresolved row blocks its accounts whatever the venue is
called now, and counts against every limit on its pair) — never forgotten, at worst too strict.

The rolling 24 h budget is checked and the intent inserted in one transaction
(``record_intent(..., budget=DailyBudget(...))``), so two concurrent transfers can never both
pass a budget only one of them fits in.

``SqliteStore.backup`` makes a consistent online copy (SQLite's backup API; a file copy of a
live WAL journal is not a backup). ``check_continuity`` refuses a journal older than the last
state seen (``JournalMark``: journal id + newest audit-event sequence number, kept beside the
journal and in the state directory) until an operator accepts it (``accept_restore``).
"""

from qfexbot.money.journal.lock import acquire_journal_lock as acquire_journal_lock
from qfexbot.money.journal.lock import journal_holder as journal_holder
from qfexbot.money.journal.model import UNRESOLVED as UNRESOLVED
from qfexbot.money.journal.model import AuditEvent as AuditEvent
from qfexbot.money.journal.model import BackupInfo as BackupInfo
from qfexbot.money.journal.model import BudgetExceeded as BudgetExceeded
from qfexbot.money.journal.model import DailyBudget as DailyBudget
from qfexbot.money.journal.model import Entry as Entry
from qfexbot.money.journal.model import EntryKind as EntryKind
from qfexbot.money.journal.model import EntryNotFound as EntryNotFound
from qfexbot.money.journal.model import EntryState as EntryState
from qfexbot.money.journal.model import GuardLost as GuardLost
from qfexbot.money.journal.model import Hold as Hold
from qfexbot.money.journal.model import InvalidTransition as InvalidTransition
from qfexbot.money.journal.model import JournalClosed as JournalClosed
from qfexbot.money.journal.model import JournalLocked as JournalLocked
from qfexbot.money.journal.model import JournalMark as JournalMark
from qfexbot.money.journal.model import JournalRolledBack as JournalRolledBack
from qfexbot.money.journal.model import StaleEpoch as StaleEpoch
from qfexbot.money.journal.model import Watch as Watch
from qfexbot.money.journal.protocol import Journal as Journal
from qfexbot.money.journal.protocol import RecoverableJournal as RecoverableJournal
from qfexbot.money.journal.recovery import JOURNAL_ID_KEY as JOURNAL_ID_KEY
from qfexbot.money.journal.recovery import RESTORE_ACCEPTED_KEY as RESTORE_ACCEPTED_KEY
from qfexbot.money.journal.recovery import STATE_DIR_ENV as STATE_DIR_ENV
from qfexbot.money.journal.recovery import mark_paths as mark_paths
from qfexbot.money.journal.recovery import read_marks as read_marks
from qfexbot.money.journal.sqlite import SqliteStore as SqliteStore
from qfexbot.money.journal.threaded import SqliteJournal as SqliteJournal

__all__ = [
    "JOURNAL_ID_KEY",
    "RESTORE_ACCEPTED_KEY",
    "STATE_DIR_ENV",
    "UNRESOLVED",
    "AuditEvent",
    "BackupInfo",
    "BudgetExceeded",
    "DailyBudget",
    "Entry",
    "EntryKind",
    "EntryNotFound",
    "EntryState",
    "GuardLost",
    "Hold",
    "InvalidTransition",
    "Journal",
    "JournalClosed",
    "JournalLocked",
    "JournalMark",
    "JournalRolledBack",
    "RecoverableJournal",
    "SqliteJournal",
    "SqliteStore",
    "StaleEpoch",
    "Watch",
    "acquire_journal_lock",
    "journal_holder",
    "mark_paths",
    "read_marks",
]
