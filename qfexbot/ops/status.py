"""Operator status: what a running Runtime reports (``/status``, ``/healthz``) and ``qfexbot status``.

The runtime side builds a JSON-ready snapshot from live objects (sessions' stats, plugin hosts,
the last balance event per account, the journal's unresolved transfers). The command side asks
a running process for it over the loopback ops endpoint and renders tables: with rich when it
is installed and stdout is a terminal, else plain aligned text. When no process answers it says
so and still lists the journal's pending/unknown transfers, read from the journal file.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import trio

from qfexbot.core.logs import get_logger, log_event
from qfexbot.events import BalanceEvent, ConnectionState, ConnectionStateEvent, Event

if TYPE_CHECKING:
    from qfexbot.config import AppConfig
    from qfexbot.core.session import Supervisor
    from qfexbot.runtime import Runtime

__all__ = [
    "AccountsView",
    "alias_of",
    "health",
    "iter_sessions",
    "render_status",
    "report_connect_progress",
    "status_command",
    "status_snapshot",
]

log = get_logger(__name__)

Publish = Callable[[Event], Awaitable[None]]
PROGRESS_EVERY = 5.0
"""Seconds between "N/M sessions live" lines while sessions connect."""
MARKET_DATA = "market-data"


class AccountsView:
    """The latest balance event and last event time per (venue, account), kept by wrapping each
    session's publish callable (one dict store per event)."""

    def __init__(self) -> None:
        self.balances: dict[tuple[str, str], BalanceEvent] = {}
        self.last_event_at: dict[tuple[str, str], float] = {}

    def observe(self, publish: Publish) -> Publish:
        """``publish`` that also remembers what it passed on."""
        balances, last = self.balances, self.last_event_at

        async def observed(event: Event) -> None:
            if type(event) is not ConnectionStateEvent:
                key = (event.venue, event.account_id)
                last[key] = event.received_at
                if type(event) is BalanceEvent:
                    balances[key] = event
            await publish(event)

        return observed


def alias_of(runtime: Runtime, venue: str, account: str) -> str:
    """The bots.toml alias of an account id (the id itself if it has none)."""
    if not account:
        return MARKET_DATA
    config = runtime.app.venues.get(venue)
    if config is not None:
        for alias, account_id in config.accounts.items():
            if account_id == account:
                return alias
    return account


def iter_sessions(runtime: Runtime) -> Iterator[tuple[str, str, str, Supervisor]]:
    """(venue, account id, alias, supervisor) of every session, market data included."""
    for venue, run in runtime.venues.items():
        # One map per call: alias_of is a linear scan, and this runs for every session.
        aliases = {i: a for a, i in reversed(list(runtime.app.venues[venue].accounts.items()))}
        for account, session in run.sessions.items():
            yield venue, account, aliases.get(account, account), session
    for venue, md in runtime.market_data.items():
        yield venue, "", MARKET_DATA, md.supervisor


def health(runtime: Runtime) -> tuple[bool, list[str]]:
    """Whether every session is LIVE and no plugin is disabled; the problems if not."""
    problems = []
    sessions = list(iter_sessions(runtime))
    if not sessions:
        problems.append("no sessions started yet")
    for venue, _, alias, session in sessions:
        if session.state is not ConnectionState.LIVE:
            problems.append(f"session {venue}/{alias} is {session.state.value}")
    for bot, host in runtime.hosts.items():
        for plugin, stats in host.stats().items():
            if stats["disabled"]:
                problems.append(f"plugin {bot}/{plugin} disabled: {stats['disabled_reason']}")
    return not problems, problems


async def status_snapshot(runtime: Runtime) -> dict[str, Any]:
    """The ``/status`` document: process, sessions, bots and plugins, balances, transfers."""
    now = time.time()
    sessions = []
    for venue, account, alias, session in iter_sessions(runtime):
        stats = session.stats
        last_event = runtime.accounts_view.last_event_at.get((venue, account))
        sessions.append(
            {
                "venue": venue,
                "account": account,
                "alias": alias,
                "state": stats.state.value,
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
    for name, host in runtime.hosts.items():
        bot = runtime.app.bots[name]
        plugins = [{"name": plugin, **stats} for plugin, stats in host.stats().items()]
        bots.append(
            {
                "name": name,
                "venue": bot.venue,
                "accounts": list(bot.accounts),
                "dry_run": runtime.app.effective_dry_run(name),
                "plugins": plugins,
            }
        )
    balances = [
        {
            "venue": venue,
            "account": account,
            "alias": alias_of(runtime, venue, account),
            "available": str(event.available),
            "deposit": str(event.deposit),
            "currency": event.currency,
            "age": now - event.received_at,
        }
        for (venue, account), event in sorted(runtime.accounts_view.balances.items())
    ]
    transfers: list[dict[str, Any]] = []
    if runtime.journal is not None:
        with trio.move_on_after(2.0):
            transfers = [entry.to_json() for entry in await runtime.journal.unresolved()]
    ok, problems = health(runtime)
    return {
        "running": True,
        "pid": os.getpid(),
        "config": str(runtime.app.path),
        "started_at": runtime.started_at,
        "now": now,
        "healthy": ok,
        "problems": problems,
        "kill_switch": runtime.app.runtime.kill_switch_file.exists(),
        "recording": [str(p) for p in runtime.recorder.files] if runtime.recorder else [],
        "sessions": sessions,
        "bots": bots,
        "balances": balances,
        "transfers": transfers,
    }


async def report_connect_progress(runtime: Runtime, every: float = PROGRESS_EVERY) -> None:
    """While sessions connect, log "N/M sessions live" every ``every`` s; log "all sessions
    live" as soon as they are (or an error once the rest FAILED), then return."""
    next_log = trio.current_time()
    while True:
        sessions = list(iter_sessions(runtime))
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
        if trio.current_time() >= next_log:
            log_event(
                log,
                logging.INFO,
                f"{live}/{len(sessions)} sessions live",
                live=live,
                total=len(sessions),
                failed=failed,
            )
            next_log = trio.current_time() + every
        await trio.sleep(0.2)


# ---------------------------------------------------------------- rendering


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def _tables(data: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every section of a status document."""
    now = data.get("now") or time.time()
    tables = []
    if data.get("running"):
        tables.append(
            (
                "Sessions",
                [
                    "venue",
                    "account",
                    "state",
                    "reconnects",
                    "last event",
                    "last frame",
                    "last error",
                ],
                [
                    [
                        s["venue"],
                        s["alias"],
                        s["state"],
                        str(s["reconnects"]),
                        _age(s["last_event_age"]),
                        _age(s["last_frame_age"]),
                        s["last_error"] if s["state"] != "live" else "",
                    ]
                    for s in data["sessions"]
                ],
            )
        )
        rows = []
        for bot in data["bots"]:
            for p in bot["plugins"]:
                status = "DISABLED: " + p["disabled_reason"] if p["disabled"] else "ok"
                rows.append(
                    [
                        bot["name"] + (" (dry run)" if bot["dry_run"] else ""),
                        p["name"],
                        str(p["events_in"]),
                        str(p["events_handled"]),
                        f"{p['depth']}/{p['size']}",
                        str(p["failures"]),
                        status,
                    ]
                )
        tables.append(
            ("Bots", ["bot", "plugin", "events in", "handled", "inbox", "failures", "status"], rows)
        )
        tables.append(
            (
                "Balances",
                ["venue", "account", "available", "deposit", "age"],
                [
                    [
                        b["venue"],
                        b["alias"],
                        f"{b['available']} {b['currency']}",
                        b["deposit"],
                        _age(b["age"]),
                    ]
                    for b in data["balances"]
                ],
            )
        )
    tables.append(
        (
            "Pending/unknown transfers",
            ["id", "state", "bot/plugin", "src -> dst", "amount", "age", "detail"],
            [
                [
                    t["id"],
                    t["state"],
                    f"{t['bot']}/{t['plugin']}",
                    f"{t['src']} -> {t['dst']}",
                    t["amount"] or "-",
                    _age(now - t["created_at"]),
                    t["detail"],
                ]
                for t in data["transfers"]
            ],
        )
    )
    return tables


def _headline(data: dict[str, Any]) -> str:
    if not data.get("running"):
        return f"qfexbot is NOT running ({data.get('reason', 'no answer')})"
    up = _age(data["now"] - data["started_at"]) if data.get("started_at") else "-"
    health_text = "healthy" if data["healthy"] else "DEGRADED: " + "; ".join(data["problems"])
    line = f"qfexbot running: pid {data['pid']}, up {up}, {health_text}"
    if data.get("kill_switch"):
        line += "\nKILL SWITCH ENGAGED: money movement paused (qfexbot resume to lift it)"
    return line


def _plain_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]
    ]
    return "\n".join(lines)


def render_status(data: dict[str, Any], *, use_rich: bool = False) -> str:
    """A status document as text: a headline, then one table per section."""
    sections = [_headline(data)]
    tables = _tables(data)
    if use_rich:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        console = Console(force_terminal=True, width=120)
        with console.capture() as capture:
            console.print(sections[0], markup=False)
            for title, header, rows in tables:
                table = Table(title=title, title_justify="left")
                for column in header:
                    table.add_column(column)
                for row in rows:
                    table.add_row(*(Text(cell) for cell in row))
                console.print(table if rows else f"{title}: none", markup=False)
        return capture.get().rstrip()
    for title, header, rows in tables:
        sections.append(f"{title}:\n{_plain_table(header, rows)}" if rows else f"{title}: none")
    return "\n\n".join(sections)


def _want_rich() -> bool:
    if not sys.stdout.isatty():
        return False
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def fetch_status(url: str, timeout: float = 3.0) -> dict[str, Any]:
    """GET ``url`` (``.../status``) from a running process. Raises ``httpx.HTTPError``."""
    import httpx

    response = httpx.get(url, timeout=timeout)
    response.raise_for_status()
    return response.json()


def status_command(
    app: AppConfig, *, url: str | None = None, as_json: bool = False, use_rich: bool | None = None
) -> int:
    """``qfexbot status``: 0 with the running process's status, 1 if none answers (the
    journal's pending/unknown transfers are shown either way)."""
    import httpx

    from qfexbot.money.journal import SqliteStore

    if url is None and app.runtime.ops_listen is not None:
        host, port = app.runtime.ops_listen
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}/status"
    data: dict[str, Any]
    if url is None:
        data = {
            "running": False,
            "reason": "no status endpoint configured: set [runtime] "
            'ops_listen = "127.0.0.1:9187" in bots.toml',
        }
    else:
        try:
            data = fetch_status(url)
        except (httpx.HTTPError, ValueError) as exc:
            data = {"running": False, "reason": f"no answer at {url}: {type(exc).__name__}"}
    if not data.get("running"):
        data["transfers"] = []
        if app.runtime.journal.exists():
            store = SqliteStore(app.runtime.journal)
            try:
                data["transfers"] = [e.to_json() for e in store.unresolved()]
            finally:
                store.close()
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(render_status(data, use_rich=_want_rich() if use_rich is None else use_rich))
    return 0 if data.get("running") else 1
