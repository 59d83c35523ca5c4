"""Raw-frame recorder: every frame of every session, with timestamps, to size-rotated JSON Lines.

Why a runtime tap and not a plugin: a plugin sees *events*, after parsing. It never sees
control frames (auth replies, subscription acks, venue errors), frames that failed to parse,
the REST snapshot a session re-reads on every (re)connect, or which events came from one frame.
A replay that must reproduce what plugins saw needs all of that, in arrival order. So the
recorder wraps each session's driver (``tap``): ``parse(frame, now)`` writes the frame and the
receive time before parsing it, ``resync`` writes the REST snapshot body. Connection state
changes are written from the session's publish callable (``observe``), and the decisions
plugins take (transfer, add_order, cancel_order) from a proxy of the actions backend
(``decisions``), so ``qfexbot replay`` can check that a replay decides the same.

One recording is a series of files ``DIR/qfexbot-<UTC start>-<segment>.jsonl``; a new segment
starts when the current one reaches ``max_bytes``. Each line is one JSON object with ``type``:

- ``header``: ``version``, ``recording`` (id), ``segment`` (first line of every file);
- ``start``: the runtime started its sessions (replay aligns plugin timers to it);
- ``frame``: ``venue``, ``account`` (``""`` for market data), ``ch`` (``trade`` | ``mds``),
  ``data`` (text frame) or ``data_b64`` (binary frame);
- ``state``: a connection state change (``state``, ``previous``, ``reason``, ``attempt``);
- ``snapshot``: the REST positions body a session resynced from (``body``);
- ``decision``: ``bot``, ``plugin``, ``action``, ``args`` (what the plugin asked for).

Every line has ``t``, the wall-clock receive time (seconds since the epoch) that the live
parser was given, so a replay rebuilds identical events.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import trio

from qfexbot.config import RECORD_MAX_BYTES, AppConfig, RecordSettings
from qfexbot.core.logs import get_logger, log_event
from qfexbot.core.venue import Order
from qfexbot.events import ConnectionStateEvent, Event, ResyncEvent

__all__ = ["FORMAT_VERSION", "Recorder", "decision_args", "with_recording"]

log = get_logger(__name__)

FORMAT_VERSION = 1
FLUSH_INTERVAL = 1.0
"""Seconds between flushes of the current file (also flushed on rotation and close)."""

Publish = Callable[[Event], Awaitable[None]]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def with_recording(app: AppConfig, directory: str | Path) -> AppConfig:
    """``app`` with recording into ``directory`` (``qfexbot run --record DIR``); a configured
    ``max_bytes`` is kept."""
    current = app.runtime.record
    settings = RecordSettings(
        Path(directory).absolute(), current.max_bytes if current else RECORD_MAX_BYTES
    )
    return dataclasses.replace(app, runtime=dataclasses.replace(app.runtime, record=settings))


def decision_args(**kwargs: Any) -> dict[str, Any]:
    """The arguments of an action as a JSON-ready dict (Decimals as strings, sorted keys), the
    form in which live and replayed decisions are compared."""
    return {key: _jsonable(kwargs[key]) for key in sorted(kwargs)}


def redact_auth_echo(frame: str) -> str:
    """``frame`` with any echoed ``auth`` request blanked out.

    A venue error frame echoes the request it answers in ``incoming_message``; for an ``auth``
    request that is our signature (or JWT), which must never be written to disk.
    """
    if "incoming_message" not in frame or "auth" not in frame:
        return frame
    try:
        message = json.loads(frame)
    except ValueError:
        return frame
    changed = False
    for holder in (message, message.get("err")) if isinstance(message, dict) else ():
        echo = holder.get("incoming_message") if isinstance(holder, dict) else None
        if echo is not None and "auth" in json.dumps(echo):
            holder["incoming_message"] = {"type": "auth", "params": "<redacted>"}
            changed = True
    return json.dumps(message, separators=(",", ":")) if changed else frame


class Recorder:
    """Writes a recording into ``directory``; ``open()`` it, run ``run()`` in a nursery.

    Args:
      directory: where the files go (created if missing).
      max_bytes: a file is rotated once it holds at least this many bytes.
      clock: wall clock for ``t`` of records that have no receive time of their own.

    Resource handling: ``run()`` flushes every second and closes the file when cancelled;
    ``close()`` is idempotent. Writes are synchronous and buffered (no await in the read path).
    """

    def __init__(
        self,
        directory: Path,
        max_bytes: int = RECORD_MAX_BYTES,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.records = 0
        self.files: list[Path] = []
        self._clock = clock
        self._file: IO[str] | None = None
        self._size = 0
        self._segment = 0
        self._id = ""

    def __repr__(self) -> str:
        return f"Recorder({str(self.directory)!r}, records={self.records})"

    # -- files --------------------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory and the first file of a new recording."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        self._segment = 0
        self._rotate()
        log_event(
            log,
            logging.INFO,
            "recording raw frames",
            file=str(self.files[-1]),
            max_bytes=self.max_bytes,
        )

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
        self._segment += 1
        path = self.directory / f"qfexbot-{self._id}-{self._segment:04d}.jsonl"
        # Owner-only: recordings hold account activity (the auth echo is redacted, see frame()).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "w", encoding="utf-8")
        self.files.append(path)
        self._size = 0
        self._write(
            {
                "type": "header",
                "t": self._clock(),
                "version": FORMAT_VERSION,
                "recording": self._id,
                "segment": self._segment,
            }
        )

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Flush and close the current file (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Flush periodically until cancelled, then close."""
        task_status.started()
        try:
            while True:
                await trio.sleep(FLUSH_INTERVAL)
                self.flush()
        finally:
            self.close()

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return  # closed at shutdown: late frames are not recorded
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
        self._file.write(line)
        self._size += len(line)
        self.records += 1
        if self._size >= self.max_bytes and record["type"] != "header":
            self._rotate()

    # -- records ------------------------------------------------------------------------------

    def start(self) -> None:
        """Mark the moment the runtime starts its sessions."""
        self._write({"type": "start", "t": self._clock()})

    def frame(self, venue: str, account: str, channel: str, frame: str | bytes, t: float) -> None:
        record: dict[str, Any] = {
            "type": "frame",
            "t": t,
            "venue": venue,
            "account": account,
            "ch": channel,
        }
        if isinstance(frame, bytes):
            record["data_b64"] = base64.b64encode(frame).decode("ascii")
        else:
            record["data"] = redact_auth_echo(frame)
        self._write(record)

    def state(self, channel: str, event: ConnectionStateEvent) -> None:
        self._write(
            {
                "type": "state",
                "t": event.received_at,
                "venue": event.venue,
                "account": event.account_id,
                "ch": channel,
                "state": event.state.value,
                "previous": event.previous.value if event.previous is not None else None,
                "reason": event.reason,
                "attempt": event.attempt,
            }
        )

    def snapshot(self, venue: str, account: str, body: Any, t: float) -> None:
        self._write({"type": "snapshot", "t": t, "venue": venue, "account": account, "body": body})

    def decision(self, bot: str, plugin: str, action: str, args: dict[str, Any]) -> None:
        self._write(
            {
                "type": "decision",
                "t": self._clock(),
                "bot": bot,
                "plugin": plugin,
                "action": action,
                "args": args,
            }
        )

    # -- taps ---------------------------------------------------------------------------------

    def tap(self, session: Any, venue: str, account: str, channel: str) -> None:
        """Record every frame ``session`` (a ``qfexbot.core.session.Supervisor``) reads, and its
        resync snapshots, by wrapping its driver."""
        session.driver = _RecordingDriver(session.driver, self, venue, account, channel)

    def observe(self, channel: str, publish: Publish) -> Publish:
        """``publish`` that also records connection state events."""

        async def recorded(event: Event) -> None:
            if type(event) is ConnectionStateEvent:
                self.state(channel, event)
            await publish(event)

        return recorded

    def decisions(self, backend: Any) -> _RecordingActions:
        """A proxy of an actions backend that records every decision before forwarding it."""
        return _RecordingActions(backend, self)


class _RecordingDriver:
    """A session driver that records what passes through ``parse`` and ``resync``."""

    def __init__(
        self, inner: Any, recorder: Recorder, venue: str, account: str, channel: str
    ) -> None:
        self._inner = inner
        self._recorder = recorder
        self._venue = venue
        self._account = account
        self._channel = channel

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def parse(self, frame: str | bytes, now: float) -> list[Any]:
        self._recorder.frame(self._venue, self._account, self._channel, frame, now)
        return self._inner.parse(frame, now)

    async def resync(self, conn: Any) -> Sequence[Event]:
        events = await self._inner.resync(conn)
        for event in events:
            if isinstance(event, ResyncEvent):
                self._recorder.snapshot(self._venue, self._account, event.raw, event.received_at)
                break
        return events


class _RecordingActions:
    """Records every decision (transfers and order actions), then forwards every call."""

    def __init__(self, inner: Any, recorder: Recorder) -> None:
        self._inner = inner
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def transfer(
        self, bot: str, plugin: str, src: str, dst: str, amount: Decimal, reason: str
    ) -> Any:
        self._recorder.decision(
            bot, plugin, "transfer", decision_args(src=src, dst=dst, amount=amount, reason=reason)
        )
        return await self._inner.transfer(bot, plugin, src, dst, amount, reason)

    async def add_order(self, bot: str, plugin: str, account: str, order: Order) -> None:
        args = decision_args(account=account, **dataclasses.asdict(order))
        self._recorder.decision(bot, plugin, "add_order", args)
        await self._inner.add_order(bot, plugin, account, order)

    async def cancel_order(self, bot: str, plugin: str, account: str, **params: Any) -> None:
        self._recorder.decision(
            bot, plugin, "cancel_order", decision_args(account=account, **params)
        )
        await self._inner.cancel_order(bot, plugin, account, **params)

    async def order_action(self, bot: str, plugin: str, account: str, action: Any) -> None:
        """Every other order action (modify, stops, TWAPs, close, cancel all), recorded under
        the name of its ``ctx`` method, as replay decides it."""
        args = decision_args(account=account, **dataclasses.asdict(action))
        self._recorder.decision(bot, plugin, action.action, args)
        await self._inner.order_action(bot, plugin, account, action)

    async def set_leverage(
        self, bot: str, plugin: str, account: str, symbol: str, leverage: Decimal
    ) -> None:
        args = decision_args(account=account, symbol=symbol, leverage=leverage)
        self._recorder.decision(bot, plugin, "set_leverage", args)
        await self._inner.set_leverage(bot, plugin, account, symbol, leverage)
