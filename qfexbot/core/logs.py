"""Structured logging: every line says which bot, account and plugin, in text or JSON.

Use ``log = get_logger(__name__)`` and ``log.info("what happened", extra={"fields": {...}})``
or the shorthand ``log_event(log, logging.INFO, "what happened", key=value, ...)``. The context
(bot, account, plugin) comes from ``log_context(...)``, a contextvar that trio tasks inherit.
Registered secret values are scrubbed from every formatted line as a last line of defence.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

__all__ = [
    "configure_logging",
    "get_logger",
    "log_context",
    "log_event",
    "register_secret",
    "scrub",
]

_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "qfexbot_log_context", default=MappingProxyType({})
)
"""Read-only mappings: every record made in a task carries the task's mapping by reference."""
_secrets: set[str] = set()
_CONTEXT_KEYS = ("bot", "venue", "account", "plugin")


def get_logger(name: str) -> logging.Logger:
    """A stdlib logger under the ``qfexbot`` hierarchy."""
    return logging.getLogger(name if name.startswith("qfexbot") else f"qfexbot.{name}")


def log_event(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    """Log ``msg`` with structured ``fields`` (rendered as key=value or JSON keys)."""
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields}, stacklevel=2)


@contextlib.contextmanager
def log_context(**values: str) -> Iterator[None]:
    """Add bot/account/plugin (or any key) to every log line emitted inside this block."""
    token = _context.set(
        MappingProxyType({**_context.get(), **{k: str(v) for k, v in values.items()}})
    )
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str]:
    """The log context of the running task (for copying into spawned tasks or events)."""
    return dict(_context.get())


def register_secret(value: str) -> None:
    """Scrub this value from every log line from now on (values shorter than 4 are ignored)."""
    if value and len(value) >= 4:
        _secrets.add(value)


def scrub(text: str) -> str:
    """``text`` with every registered secret value replaced by ``<redacted>``, as in log lines."""
    for value in _secrets:
        if value in text:
            text = text.replace(value, "<redacted>")
    return text


def _fields_of(record: logging.LogRecord) -> dict[str, Any]:
    merged: dict[str, Any] = dict(getattr(record, "context", None) or {})
    merged.update(getattr(record, "fields", None) or {})
    return merged


class TextFormatter(logging.Formatter):
    """``2026-11-22T02:50:01.123Z INFO  session: went live bot=b account=a state=live``."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        name = record.name.removeprefix("qfexbot.")
        parts = [
            f"{ts}.{int(record.msecs):03d}Z {record.levelname:<5} {name}: {record.getMessage()}"
        ]
        for key, value in _fields_of(record).items():
            text = str(value)
            if not text or any(c in text for c in ' ="'):
                text = json.dumps(text)
            parts.append(f"{key}={text}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return scrub(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, context and fields."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _fields_of(record).items():
            obj.setdefault(
                key, value if isinstance(value, (int, float, bool, type(None))) else str(value)
            )
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return scrub(json.dumps(obj))


def configure_logging(level: str = "info", fmt: str = "text", stream: Any = None) -> None:
    """Install one handler on the ``qfexbot`` and ``plugins`` loggers (idempotent)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for name in ("qfexbot", "plugins"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            if getattr(old, "_qfexbot", False):
                logger.removeHandler(old)
        handler._qfexbot = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(level.upper())


_base_factory = logging.getLogRecordFactory()


def _record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    # The context is read when the record is made, i.e. in the task that logged it.
    record = _base_factory(*args, **kwargs)
    record.context = _context.get()
    return record


logging.setLogRecordFactory(_record_factory)
