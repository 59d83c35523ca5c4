"""Start-up refusals: what must hold before this process moves money, checked in order.

The journal is not older than the last state seen (:func:`refuse_rolled_back_journal`); the
machine-wide lock of every account this process may move money on or reconcile is taken
(:func:`lock_accounts`); no unresolved transfer sits on accounts this config no longer names
(:func:`refuse_unnamed_entries`). Each raises ``ConfigError`` with what to do.
"""

from __future__ import annotations

import logging

from qfexbot.config import AppConfig, ConfigError, VenueConfig
from qfexbot.core.accounts import AccountBook
from qfexbot.core.logs import get_logger, log_event
from qfexbot.money.account_locks import AccountLocks, AccountsLocked, acquire_account_locks
from qfexbot.money.journal import (
    STATE_DIR_ENV,
    Entry,
    Journal,
    JournalRolledBack,
    RecoverableJournal,
)
from qfexbot.venues.registry import adapter as adapter_of

__all__ = [
    "lock_accounts",
    "refuse_rolled_back_journal",
    "refuse_unnamed_entries",
    "transfer_venues",
]

log = get_logger("qfexbot.runtime")


def transfer_venues(app: AppConfig) -> list[VenueConfig]:
    """The venues in use that move money (their adapter has transfers)."""
    venues = (app.venues[name] for name in sorted({bot.venue for bot in app.bots.values()}))
    return [venue for venue in venues if adapter_of(venue.kind).transfer_refusal is None]


async def lock_accounts(journal: Journal, app: AppConfig) -> AccountLocks:
    """Take the machine-wide lock of every account this process may move money on or read
    as evidence, before anything moves: the accounts of its bots' ``allowed_pairs``, and
    those of every unresolved entry, active late-landing watch and active hold in the
    journal that a real venue table of this config reconciles or checks (a pair taken out
    of ``allowed_pairs`` while in doubt is still judged from its balances here, so no other
    process may move it). An embedded simulator's accounts exist only inside this process,
    so they are not locked.

    Raises:
      ConfigError: another qfexbot process holds one of them, or the lock directory fails.
    """
    keys: list[tuple[str, str]] = []
    real = [venue for venue in transfer_venues(app) if not venue.simulator]
    for venue in real:
        book = AccountBook(venue.accounts, name=f"venues.{venue.name}")
        ids = set(book.ids())
        why: dict[str, str] = {}  # account id -> why it is locked (for the refusal message)
        for bot in app.bots.values():
            if bot.venue == venue.name:
                for alias in sorted({a for pair in bot.limits.allowed_pairs for a in pair}):
                    why.setdefault(book.get(alias, alias), "")
        for entry in await journal.unresolved():
            if _names_entry(venue, entry):
                for account in (entry.src or "", entry.dst or ""):
                    why.setdefault(account, f" (journal entry {entry.id} is in doubt)")
        for watch in await journal.watches(venue.name, owner=venue.owner):
            if watch.src in ids and watch.dst in ids:
                for account in (watch.src, watch.dst):
                    why.setdefault(
                        account, f" (entry {watch.entry_id} is watched for a late landing)"
                    )
        for hold in await journal.active_holds(owner=venue.owner):
            if hold.account in ids:
                why.setdefault(hold.account, " (held)")
        keys += [
            (account, f"venue {venue.name} account {book.alias_of(account)}{note}")
            for account, note in why.items()
        ]
    try:
        return acquire_account_locks(
            keys, holder=f"config {app.path}, journal {app.runtime.journal}"
        )
    except (AccountsLocked, OSError) as exc:
        raise ConfigError([f"cannot take the account locks: {exc}"], app.path) from None


async def refuse_unnamed_entries(journal: Journal, app: AppConfig) -> None:
    """Refuse to start while the journal holds an unresolved transfer on accounts that no
    venue of this config names: nothing here could reconcile it, and the accounts (maybe
    under a new name) could otherwise move again.

    An entry is named when a venue in use has its owner (user id, or a simulator table's own
    key) and both account ids; an entry written before entries carried an owner needs its
    venue's name and both ids. A changed or mistyped ``user_id`` therefore refuses here (the
    safe side): the message says which table names the accounts under another owner.

    Raises:
      ConfigError: one line per such entry, saying how to resolve it.
    """
    venues = transfer_venues(app)
    problems = []
    for entry in await journal.unresolved():
        if not any(_names_entry(venue, entry) for venue in venues):
            problems.append(_unnamed_entry_problem(entry, venues))
    if problems:
        raise ConfigError(problems, app.path)


def _names_entry(venue: VenueConfig, entry: Entry) -> bool:
    """Whether ``venue`` names both accounts of ``entry`` under the entry's owner (the user id,
    or a simulator table's own key: ``VenueConfig.owner``; for an entry written before entries
    carried one, under the entry's venue name)."""
    if entry.owner is None and entry.venue != venue.name:
        return False
    if entry.owner is not None and entry.owner != venue.owner:
        return False
    ids = set(venue.accounts.values())
    return entry.src in ids and entry.dst in ids


def _unnamed_entry_problem(entry: Entry, venues: list[VenueConfig]) -> str:
    """The start-up refusal for an unresolved entry on accounts the config no longer names."""
    owner = entry.owner or "not recorded (written by an older qfexbot)"
    problem = (
        f"journal entry {entry.id} (transfer of {entry.amount} from account {entry.src} to "
        f"account {entry.dst}, venue {entry.venue!r} at the time, user id {owner}, bot "
        f"{entry.bot}) is {entry.state}: its money may or may not have moved, and no venue of "
        f"this config names both accounts under that user id, so nothing can reconcile it. "
        f"Check both balances at the venue, then run `qfexbot journal resolve {entry.id} "
        f"--applied` or `--not-applied`; or restore the venue and its accounts in bots.toml"
    )
    others = [venue for venue in venues if {entry.src, entry.dst} <= set(venue.accounts.values())]
    for venue in others:
        if venue.simulator:
            problem += (
                f". venues.{venue.name} names both accounts, but it is an embedded "
                "simulator (simulator = true): its balances are no evidence for this entry"
            )
        else:
            problem += (
                f". venues.{venue.name} names both accounts, but under user_id "
                f"{venue.user_id}: if a user_id was changed or mistyped, set it back"
            )
    return problem


async def refuse_rolled_back_journal(journal: Journal, app: AppConfig) -> None:
    """Before anything moves money: the journal must not be older than the last state seen
    (restored from an older copy, replaced, copied while live). See docs/operations.md.

    A PostgreSQL journal has no file this host could find replaced: the database server is the
    reference (its own backups and replicas), so there is nothing to check here.
    """
    if not isinstance(journal, RecoverableJournal):
        log_event(log, logging.INFO, "journal is PostgreSQL: no file continuity mark to check")
        return
    try:
        mark = await journal.check_continuity(app.runtime.state_dir)
    except JournalRolledBack as exc:
        log_event(
            log,
            logging.ERROR,
            "journal rolled back: not starting",
            journal=str(exc.path),
            problem=exc.problem,
        )
        raise ConfigError([f"runtime.journal: {exc}"], app.path) from None
    except OSError as exc:
        problem = (
            f"runtime.journal: cannot write the journal's mark ({exc}); set "
            f"runtime.state_dir (or {STATE_DIR_ENV}) to a writable directory"
        )
        raise ConfigError([problem], app.path) from None
    log_event(
        log,
        logging.INFO,
        "journal continuity checked",
        journal=str(journal.path),
        journal_id=mark.journal_id,
        last_event=mark.seq,
    )
