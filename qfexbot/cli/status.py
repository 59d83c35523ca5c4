"""``qfexbot status``: ask a running process for its status document and render it.

The document comes from the loopback ops endpoint (``qfexbot.ops.status`` builds it inside the
process). Tables are drawn with rich when it is installed and stdout is a terminal, else as
plain aligned text. When no process answers it says so and still lists the journal's
pending/unknown transfers, read from the journal file.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from typing import Any

import httpx

from qfexbot.cli.journal import JournalCommandError, open_store
from qfexbot.config import AppConfig
from qfexbot.ops.state import process_alive, read_state, state_path

__all__ = ["fetch_status", "render_status", "status_command"]


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
        reason = data.get("kill_switch_reason") or "paused"
        line += (
            f"\nKILL SWITCH ENGAGED ({reason}): no money movement, no new orders "
            "(qfexbot resume to lift it)"
        )
    return line


def _plain_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def render_status(data: dict[str, Any], *, use_rich: bool = False) -> str:
    """A status document as text: a headline, then one table per section."""
    sections = [_headline(data)]
    tables = _tables(data)
    if use_rich:
        # rich is optional (not a dependency of qfexbot): imported only when asked for.
        from rich.console import Console  # noqa: PLC0415
        from rich.table import Table  # noqa: PLC0415
        from rich.text import Text  # noqa: PLC0415

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
    """rich tables on a terminal, when rich is installed."""
    return sys.stdout.isatty() and importlib.util.find_spec("rich") is not None


def _find_status_url(app: AppConfig) -> tuple[str | None, str]:
    """Where the process running ``app`` answers ``/status``: its state file beside the
    journal (written at start, the port may have been picked then), else a fixed
    ``ops_listen``; or None and why not."""
    journal = app.runtime.journal
    state = read_state(journal)
    if state is not None and process_alive(state["pid"]):
        return state["url"].rstrip("/") + "/status", ""
    listen = app.runtime.ops_listen
    if listen is not None and listen[1] != 0:
        host, port = listen
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/status", ""
    if state is not None:
        return None, (
            f"{state_path(journal)} was left by process {state['pid']}, which has "
            "exited (killed?); it is replaced at the next start"
        )
    if listen is None:
        return None, "the ops endpoint is off ([runtime] ops_listen = false)"
    return None, f"no process is running this config (no {state_path(journal)})"


def fetch_status(url: str, timeout: float = 3.0) -> dict[str, Any]:
    """GET ``url`` (``.../status``) from a running process. Raises ``httpx.HTTPError``."""
    response = httpx.get(url, timeout=timeout)
    response.raise_for_status()
    return response.json()


def status_command(
    app: AppConfig, *, url: str | None = None, as_json: bool = False, use_rich: bool | None = None
) -> int:
    """``qfexbot status``: 0 with the running process's status, 1 if none answers (the
    journal's pending/unknown transfers are shown either way)."""
    reason = None
    if url is None:
        url, reason = _find_status_url(app)
    data: dict[str, Any]
    if url is None:
        data = {"running": False, "reason": reason}
    else:
        try:
            data = fetch_status(url)
        except (httpx.HTTPError, ValueError) as exc:
            data = {"running": False, "reason": f"no answer at {url}: {type(exc).__name__}"}
    if not data.get("running"):
        data["transfers"] = []
        if app.runtime.postgres is not None or app.runtime.journal.exists():
            try:
                store = open_store(app.runtime.postgres or app.runtime.journal)
            except JournalCommandError as exc:
                data["reason"] = f"{data['reason']}; {exc}"
            else:
                try:
                    data["transfers"] = [e.to_json() for e in store.unresolved()]
                finally:
                    store.close()
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(render_status(data, use_rich=_want_rich() if use_rich is None else use_rich))
    return 0 if data.get("running") else 1
