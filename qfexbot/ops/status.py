"""Operator status of a running process: the ``/status`` and ``/healthz`` documents.

Built from live objects read through :class:`~qfexbot.ops.view.RuntimeView` (sessions' stats,
plugin hosts, the last balance event per account, the journal's unresolved transfers), as
JSON-ready data; ``qfexbot status`` (``qfexbot.cli.status``) asks a running process for it and
renders it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import trio

from qfexbot.core.accounts import AccountBook
from qfexbot.core.logs import get_logger, log_event
from qfexbot.events import (
    BalanceEvent,
    ConnectionState,
    ConnectionStateEvent,
    Event,
    PositionEvent,
)
from qfexbot.money.killswitch import kill_switch_reason
from qfexbot.ops.view import RuntimeView, SessionView

__all__ = [
    "MARKET_DATA",
    "AccountsView",
    "account_books",
    "alias_of",
    "health",
    "iter_sessions",
    "report_connect_progress",
    "status_snapshot",
]

log = get_logger(__name__)

Publish = Callable[[Event], Awaitable[None]]
PROGRESS_EVERY = 5.0
CONNECT_PATIENCE = 30.0
"""Seconds of "N/M sessions live" at INFO before it becomes a WARNING."""
PROGRESS_MAX_EVERY = 300.0
"""Seconds between "N/M sessions live" lines while sessions connect."""
MARKET_DATA = "market-data"
"""The alias shown for a venue's market-data connection (it has no account)."""
HISTORY_EVERY = 1.0
"""Seconds between two kept points of an account's equity/available history."""
HISTORY_POINTS = 3600
"""Points kept per account (an hour at one a second; older ones drop off)."""


class AccountsView:
    """The latest balance event and last event time per (venue, account), kept by wrapping each
    session's publish callable (one dict store per event)."""

    def __init__(self) -> None:
        self.balances: dict[tuple[str, str], BalanceEvent] = {}
        self.last_event_at: dict[tuple[str, str], float] = {}
        self.positions: dict[tuple[str, str, str], PositionEvent] = {}
        self.state_since: dict[tuple[str, str], float] = {}
        self.history: dict[tuple[str, str], deque[tuple[float, str, str]]] = {}
        self._failed = trio.Event()

    def _remember(self, key: tuple[str, str], event: BalanceEvent) -> None:
        """Keep (time, equity, available) for the dashboard's chart, one point a second."""
        points = self.history.get(key)
        if points is None:
            points = self.history[key] = deque(maxlen=HISTORY_POINTS)
        if points and event.received_at - points[-1][0] < HISTORY_EVERY:
            points[-1] = (points[-1][0], str(event.equity), str(event.available))
        else:
            points.append((event.received_at, str(event.equity), str(event.available)))

    async def next_failure(self) -> None:
        """Wait until the next session reaches FAILED."""
        await self._failed.wait()

    def observe(self, publish: Publish) -> Publish:
        """``publish`` that also remembers what it passed on."""
        balances, last = self.balances, self.last_event_at

        async def observed(event: Event) -> None:
            if type(event) is not ConnectionStateEvent:
                key = (event.venue, event.account_id)
                last[key] = event.received_at
                if type(event) is BalanceEvent:
                    balances[key] = event
                    self._remember(key, event)
                elif type(event) is PositionEvent:
                    self.positions[(*key, event.symbol)] = event
            else:
                self.state_since[(event.venue, event.account_id)] = event.received_at
                if event.state is ConnectionState.FAILED:
                    self._failed.set()
                    self._failed = trio.Event()
            await publish(event)

        return observed


def account_books(view: RuntimeView) -> dict[str, AccountBook]:
    """venue name -> its alias <-> id book (build it once per report, not per account)."""
    return {name: AccountBook(venue.accounts, name=name) for name, venue in view.app.venues.items()}


def alias_of(books: Mapping[str, AccountBook], venue: str, account: str) -> str:
    """The bots.toml alias of an account id (the id itself if it has none; ``MARKET_DATA`` for
    the empty account of a market-data connection)."""
    if not account:
        return MARKET_DATA
    book = books.get(venue)
    return account if book is None else book.alias_of(account)


def every_account_session_failed(view: RuntimeView) -> bool:
    """Whether the process has account sessions and every one is FAILED (credentials refused
    again and again: final, nothing it runs can work any more)."""
    sessions = [s for run in view.venues.values() for s in run.sessions.values()]
    return bool(sessions) and all(s.state is ConnectionState.FAILED for s in sessions)


def iter_sessions(
    view: RuntimeView, books: Mapping[str, AccountBook] | None = None
) -> Iterator[tuple[str, str, str, SessionView]]:
    """(venue, account id, alias, session) of every session, market data included.

    Runs every 0.2 s while sessions connect: pass ``books`` (:func:`account_books`) when the
    caller has them, else they are built once for this call.
    """
    books = account_books(view) if books is None else books
    for venue, run in view.venues.items():
        book = books[venue]
        for account, session in run.sessions.items():
            yield venue, account, book.alias_of(account), session
    for venue, md in view.market_data.items():
        yield venue, "", MARKET_DATA, md.supervisor


def health(view: RuntimeView) -> tuple[bool, list[str]]:
    """Whether every session is LIVE, no plugin is disabled and the kill switch is off; the
    problems if not."""
    problems = []
    sessions = list(iter_sessions(view))
    if not sessions:
        problems.append("no sessions started yet")
    for venue, _, alias, session in sessions:
        if session.state is not ConnectionState.LIVE:
            problems.append(f"session {venue}/{alias} is {session.state.value}")
    for bot, host in view.hosts.items():
        for plugin, stats in host.stats().items():
            if stats["disabled"]:
                problems.append(f"plugin {bot}/{plugin} disabled: {stats['disabled_reason']}")
    paused = kill_switch_reason(view.app.runtime.kill_switch_file)
    if paused is not None:
        problems.append(f"kill switch engaged: {paused} (no money movement, no new orders)")
    return not problems, problems


async def status_snapshot(view: RuntimeView, *, history: bool = False) -> dict[str, Any]:
    """The ``/status`` document: process, sessions, bots and plugins, balances, transfers;
    with ``history``, each balance's kept equity/available points too (the dashboard reads
    them once at load, then adds the live values itself: not sent every second)."""
    now = time.time()
    books = account_books(view)
    sessions = []
    for venue, account, alias, session in iter_sessions(view, books):
        stats = session.stats
        last_event = view.accounts_view.last_event_at.get((venue, account))
        sessions.append(
            {
                "venue": venue,
                "account": account,
                "alias": alias,
                "state": stats.state.value,
                "state_since": view.accounts_view.state_since.get((venue, account)),
                "reconnects": stats.reconnects,
                "frames": stats.frames,
                "parse_errors": stats.parse_errors,
                "last_frame_age": None
                if stats.last_frame_at is None
                else now - stats.last_frame_at,
                "last_event_age": None if last_event is None else now - last_event,
                "last_error": stats.last_error,
            }
        )
    bots = []
    for name, host in view.hosts.items():
        bot = view.app.bots[name]
        plugins = [{"name": plugin, **stats} for plugin, stats in host.stats().items()]
        bots.append(
            {
                "name": name,
                "venue": bot.venue,
                "accounts": list(bot.accounts),
                "dry_run": view.app.effective_dry_run(name),
                "plugins": plugins,
            }
        )
    balances = [
        {
            "venue": venue,
            "account": account,
            "alias": alias_of(books, venue, account),
            "available": str(event.available),
            "deposit": str(event.deposit),
            "equity": str(event.equity),
            "unrealised_pnl": str(event.unrealised_pnl),
            "currency": event.currency,
            "age": now - event.received_at,
        }
        for (venue, account), event in sorted(view.accounts_view.balances.items())
    ]
    if history:
        for balance in balances:
            points = view.accounts_view.history.get((balance["venue"], balance["account"]), ())
            balance["history"] = [list(p) for p in points]
    positions = [
        {
            "venue": venue,
            "account": account,
            "alias": alias_of(books, venue, account),
            "symbol": symbol,
            "size": str(event.size),
            "average_price": str(event.average_price),
            "unrealised_pnl": str(event.unrealised_pnl),
        }
        for (venue, account, symbol), event in sorted(view.accounts_view.positions.items())
        if event.size
    ]
    transfers: list[dict[str, Any]] = []
    if view.journal is not None:
        with trio.move_on_after(2.0):
            transfers = [entry.to_json() for entry in await view.journal.unresolved()]
    ok, problems = health(view)
    return {
        "running": True,
        "pid": os.getpid(),
        "config": str(view.app.path),
        "started_at": view.started_at,
        "now": now,
        "healthy": ok,
        "problems": problems,
        "kill_switch": view.app.runtime.kill_switch_file.exists(),
        "kill_switch_reason": kill_switch_reason(view.app.runtime.kill_switch_file),
        "recording": [str(p) for p in view.recorder.files] if view.recorder else [],
        "sessions": sessions,
        "bots": bots,
        "balances": balances,
        "positions": positions,
        "transfers": transfers,
    }


async def report_connect_progress(
    view: RuntimeView, every: float = PROGRESS_EVERY, patience: float = CONNECT_PATIENCE
) -> None:
    """While sessions connect, log "N/M sessions live": every ``every`` s at INFO for the first
    ``patience`` s (connecting takes a moment), then at WARNING with the last error of a session
    not live, each time twice as long apart (at most ``PROGRESS_MAX_EVERY``), so a stuck start
    is escalated once and not repeated forever. Logs "all sessions live" as soon as they are,
    or an error once the rest FAILED, then returns."""
    start = trio.current_time()
    next_log = start
    books = account_books(view)
    while True:
        sessions = list(iter_sessions(view, books))
        live = sum(1 for *_, s in sessions if s.state is ConnectionState.LIVE)
        failed = sum(1 for *_, s in sessions if s.state is ConnectionState.FAILED)
        if sessions and live == len(sessions):
            log_event(log, logging.INFO, "all sessions live", sessions=len(sessions))
            return
        if sessions and live + failed == len(sessions):
            log_event(
                log,
                logging.ERROR,
                "sessions settled with failures",
                live=live,
                failed=failed,
                total=len(sessions),
            )
            return
        now = trio.current_time()
        if now >= next_log:
            waited = now - start
            late = waited >= patience
            fields: dict[str, Any] = {"live": live, "total": len(sessions), "failed": failed}
            if late:
                fields["waited"] = f"{waited:.0f}s"
                fields["last_error"] = next(
                    (s.stats.last_error for *_, s in sessions if s.stats.last_error), ""
                )
                every = min(every * 2, PROGRESS_MAX_EVERY)
            level = logging.WARNING if late else logging.INFO
            log_event(log, level, f"{live}/{len(sessions)} sessions live", **fields)
            next_log = now + every
        await trio.sleep(0.2)
