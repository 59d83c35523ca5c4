"""Replay a recording through the live parse → bus → plugin path, with actions collected, not sent.

The frames of a recording (``qfexbot.ops.recorder``) are parsed by the same venue parsers with the
recorded receive time, published on one :class:`~qfexbot.core.bus.Bus` per account and delivered by
the same :class:`~qfexbot.core.dispatch.Dispatcher` to the plugins of the bots of a bots.toml.
Session behaviour that shapes what plugins see is rebuilt from the recorded state changes:
events of frames read during a handshake are held back until LIVE, and the recorded REST
snapshot is expanded by the venue driver's own ``resync`` (ResyncEvent, balance, positions).
Each connection's driver comes from its venue kind's adapter (``VenueAdapter.replay_driver``);
a kind without one is skipped.

Actions never leave the process: :class:`ReplayActions` records each decision (transfer,
add_order, cancel_order, the other order actions and set_leverage, with their arguments) in
order, answers a transfer like a dry-run bot (state ``dry_run``, with a
``TransferOutcomeEvent`` on both accounts' buses), answers ``positions`` from the latest
recorded snapshot, and refuses ``account_equity`` and the other reads (open orders, history,
leverage, market history) with ``LookupError``.

Determinism. ``speed="max"`` runs under a virtual clock (``trio.testing.MockClock`` with
autojump): the feeder sleeps until each record's recorded offset, and time only jumps when every
task (plugins included) is idle. So plugin timers fire at the recorded times, interleaved with
the frames exactly as the timeline says, as fast as the CPU allows, and the same recording gives
the same decisions for each plugin, run after run. ``speed="recorded"`` paces the same way on the
real clock. Limits: ``TimerEvent.received_at`` is stamped by the dispatcher with the wall clock;
a plugin that reads the wall clock itself, or waits on real I/O under the virtual clock, is not
deterministic; results of actions differ from the live run (dry-run answers).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import trio
import trio.testing

from qfexbot.config import AppConfig, validate_plugin_config
from qfexbot.core.accounts import AccountBook
from qfexbot.core.bus import Bus
from qfexbot.core.context import Query
from qfexbot.core.dispatch import Dispatcher
from qfexbot.core.logs import get_logger, log_event
from qfexbot.core.plugins import PluginHost, PluginLoadError, load_plugin_host
from qfexbot.core.venue import Order, OrderAction, ParseError, ReplayDriver
from qfexbot.errors import QfexbotError
from qfexbot.events import (
    ConnectionState,
    ConnectionStateEvent,
    Event,
    ResyncEvent,
    TransferOutcomeEvent,
)
from qfexbot.money.transfers import TransferResult
from qfexbot.ops.recorder import FORMAT_VERSION, decision_args
from qfexbot.venues.registry import adapter as adapter_of

__all__ = [
    "Decision",
    "RecordingError",
    "ReplayActions",
    "ReplayResult",
    "compare_decisions",
    "read_recording",
    "recording_files",
    "replay",
    "replay_recording",
]

log = get_logger(__name__)

SPEEDS = ("max", "recorded")
PROGRESS_EVERY = 2.0
"""Wall-clock seconds between two progress log lines."""
_HANDSHAKE = frozenset(
    {
        ConnectionState.CONNECTING,
        ConnectionState.AUTHENTICATING,
        ConnectionState.SUBSCRIBING,
        ConnectionState.RESYNCING,
    }
)


class RecordingError(QfexbotError):
    """A recording cannot be read (missing, not a recording, newer format, bad line)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One action a plugin asked for: ``action`` is ``transfer``, ``add_order``,
    ``cancel_order``, ``set_leverage`` or the ``ctx`` method of another order action
    (``modify_order``, ``start_twap``, ...); ``args`` as
    :func:`qfexbot.ops.recorder.decision_args` renders them."""

    bot: str
    plugin: str
    action: str
    args: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "bot": self.bot,
            "plugin": self.plugin,
            "action": self.action,
            "args": dict(self.args),
        }


@dataclass
class ReplayResult:
    """What a replay did: its decisions, and those the recording says the live run took."""

    decisions: list[Decision] = field(default_factory=list)
    recorded_decisions: list[Decision] = field(default_factory=list)
    records: int = 0
    frames: int = 0
    parse_errors: int = 0
    accounts: set[tuple[str, str]] = field(default_factory=set)
    recorded_seconds: float = 0.0

    def mismatches(self) -> list[str]:
        """How the replay's decisions differ from the recorded ones (empty: identical)."""
        return compare_decisions(self.recorded_decisions, self.decisions)


def compare_decisions(expected: Sequence[Decision], actual: Sequence[Decision]) -> list[str]:
    """Per (bot, plugin), the first place where two decision sequences differ.

    Order is compared per plugin instance: each plugin decides in its own task, so the
    interleaving of different plugins' decisions is not part of the contract. An argument
    that is None counts as not given, so recordings made before an action gained an optional
    argument (e.g. ``add_order``'s ``take_profit``) still compare equal.
    """

    def by_plugin(decisions: Sequence[Decision]) -> dict[tuple[str, str], list[Decision]]:
        grouped: dict[tuple[str, str], list[Decision]] = {}
        for d in decisions:
            grouped.setdefault((d.bot, d.plugin), []).append(d)
        return grouped

    want, got = by_plugin(expected), by_plugin(actual)
    problems = []
    for key in sorted(set(want) | set(got)):
        a, b = want.get(key, []), got.get(key, [])
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if (x.action, _given(x.args)) != (y.action, _given(y.args)):
                problems.append(
                    f"{key[0]}/{key[1]} decision #{i + 1}: recorded {x.action} "
                    f"{json.dumps(dict(x.args))}, replayed {y.action} "
                    f"{json.dumps(dict(y.args))}"
                )
                break
        else:
            if len(a) != len(b):
                problems.append(
                    f"{key[0]}/{key[1]}: recorded {len(a)} decisions, replayed {len(b)}"
                )
    return problems


def _given(args: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in args.items() if value is not None}


# ---------------------------------------------------------------- reading


def recording_files(path: str | Path) -> list[Path]:
    """The files of a recording: ``path`` itself, or every ``*.jsonl`` in a directory in name
    (= time) order."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.jsonl"))
        if not files:
            raise RecordingError(f"{p}: no *.jsonl recording files in this directory")
        return files
    if not p.exists():
        raise RecordingError(f"{p}: no such file")
    return [p]


def read_recording(files: Iterable[Path]) -> Iterator[tuple[dict[str, Any], int]]:
    """Records of the files in order, each with its size in bytes (for progress).

    Raises:
      RecordingError: a file does not start with a recording header, has a newer format
        version, or holds a line that is not a JSON object.
    """
    for path in files:
        with path.open("rb") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    raise RecordingError(f"{path}:{number}: not a JSON line") from None
                if not isinstance(record, dict) or "type" not in record:
                    raise RecordingError(f"{path}:{number}: not a recording record")
                if number == 1:
                    if record["type"] != "header":
                        raise RecordingError(f"{path}: not a qfexbot recording (no header line)")
                    if record.get("version", 0) > FORMAT_VERSION:
                        raise RecordingError(
                            f"{path}: recording format {record.get('version')} "
                            f"is newer than this qfexbot reads ({FORMAT_VERSION})"
                        )
                yield record, len(line)


# ---------------------------------------------------------------- actions


class ReplayActions:
    """The actions backend of a replay: collects decisions, moves nothing.

    Args:
      app: the configuration (account aliases, as the live backend resolves them).
      publish: ``publish(venue, account_id, event)`` onto the replay's buses.
      now: the replay's current recorded time.
    """

    def __init__(self, app: AppConfig, publish: Any, now: Any) -> None:
        self.decisions: list[Decision] = []
        self.snapshots: dict[tuple[str, str], ResyncEvent] = {}
        self._app = app
        self._publish = publish
        self._now = now
        self._books = {
            name: AccountBook(app.venues[bot.venue].accounts, name=f"bot {name!r}")
            for name, bot in app.bots.items()
        }

    def _decide(self, bot: str, plugin: str, action: str, args: dict[str, Any]) -> None:
        self.decisions.append(Decision(bot, plugin, action, args))
        log_event(
            log,
            logging.INFO,
            f"replay: would {action}",
            bot=bot,
            plugin=plugin,
            args=json.dumps(args),
        )

    def _account(self, bot: str, alias_or_id: str) -> str:
        return self._books[bot].id_of(alias_or_id)

    async def transfer(
        self, bot: str, plugin: str, src: str, dst: str, amount: Decimal, reason: str
    ) -> TransferResult:
        self._decide(
            bot, plugin, "transfer", decision_args(src=src, dst=dst, amount=amount, reason=reason)
        )
        src_id, dst_id = self._account(bot, src), self._account(bot, dst)
        entry_id = f"replay-{len(self.decisions)}"
        venue = self._app.bots[bot].venue
        event = TransferOutcomeEvent(
            venue=venue,
            account_id=src_id,
            received_at=self._now(),
            entry_id=entry_id,
            src=src_id,
            dst=dst_id,
            amount=Decimal(amount),
            state="dry_run",
            detail="replay: not sent",
        )
        await self._publish(venue, src_id, event)
        await self._publish(venue, dst_id, dataclasses.replace(event, account_id=dst_id))
        return TransferResult(entry_id, "dry_run", "replay: not sent", "replay")

    async def add_order(self, bot: str, plugin: str, account: str, order: Order) -> None:
        args = decision_args(account=account, **dataclasses.asdict(order))
        self._decide(bot, plugin, "add_order", args)
        self._account(bot, account)

    async def cancel_order(self, bot: str, plugin: str, account: str, **params: Any) -> None:
        self._decide(bot, plugin, "cancel_order", decision_args(account=account, **params))
        self._account(bot, account)

    async def positions(self, bot: str, plugin: str, account: str) -> ResyncEvent:
        """The latest snapshot of the account replayed so far."""
        venue = self._app.bots[bot].venue
        snapshot = self.snapshots.get((venue, self._account(bot, account)))
        if snapshot is None:
            raise LookupError(f"replay: no snapshot of {account!r} recorded yet")
        return snapshot

    async def account_equity(
        self, bot: str, plugin: str, account: str, duration: str = "1w"
    ) -> list[tuple[Any, Decimal]]:
        raise LookupError("replay: account equity history is not part of a recording")

    async def order_action(self, bot: str, plugin: str, account: str, action: OrderAction) -> None:
        """A decision named after the ``ctx`` method (``modify_order``, ``start_twap``, ...)."""
        args = decision_args(account=account, **_fields(action))
        self._decide(bot, plugin, action.action, args)
        self._account(bot, account)

    async def set_leverage(
        self, bot: str, plugin: str, account: str, symbol: str, leverage: Decimal
    ) -> None:
        args = decision_args(account=account, symbol=symbol, leverage=leverage)
        self._decide(bot, plugin, "set_leverage", args)
        self._account(bot, account)

    async def read(self, bot: str, plugin: str, account: str | None, query: Query) -> Any:
        """Reads of the venue's state or history are not part of a recording."""
        raise LookupError(f"replay: {query.name} is not part of a recording")


def _fields(action: OrderAction) -> dict[str, Any]:
    return {f.name: getattr(action, f.name) for f in dataclasses.fields(action)}


# ---------------------------------------------------------------- the replay


@dataclass
class _Stream:
    """Replay state of one recorded connection (an account's trade socket or a venue's feed)."""

    driver: ReplayDriver
    state: ConnectionState | None = None
    deferred: list[Event] = field(default_factory=list)


class _Replayer:
    def __init__(self, app: AppConfig) -> None:
        self.app = app
        self.result = ReplayResult()
        self.now = 0.0
        self.actions = ReplayActions(app, self.publish, lambda: self.now)
        self.hosts: dict[str, PluginHost] = {}
        self.buses: dict[tuple[str, str], Bus] = {}
        self.md_routes: dict[str, list[tuple[Bus, frozenset[str], frozenset[str]]]] = {}
        self.streams: dict[tuple[str, str, str], _Stream] = {}

    def build(self) -> list[Dispatcher]:
        errors: list[str] = []
        for name, bot in self.app.bots.items():
            try:
                self.hosts[name] = load_plugin_host(
                    bot,
                    self.app.venues[bot.venue],
                    plugin_dirs=self.app.runtime.plugin_dirs,
                    actions=self.actions,
                    validate=validate_plugin_config,
                )
            except PluginLoadError as exc:
                errors.extend(exc.errors)
        if errors:
            raise PluginLoadError(errors)
        for name, bot in self.app.bots.items():
            venue = self.app.venues[bot.venue]
            for alias in bot.accounts:
                key = (bot.venue, venue.accounts[alias])
                bus = self.buses.get(key) or self.buses.setdefault(key, Bus(key[1], venue=key[0]))
                self.hosts[name].subscribe(bus)
            if bot.market_data.channels and bot.market_data.symbols:
                bus = Bus("", venue=bot.venue)
                self.hosts[name].subscribe(bus)
                self.md_routes.setdefault(bot.venue, []).append(
                    (bus, frozenset(bot.market_data.channels), frozenset(bot.market_data.symbols))
                )
        return [Dispatcher(host) for host in self.hosts.values()]

    async def publish(self, venue: str, account_id: str, event: Event) -> None:
        bus = self.buses.get((venue, account_id))
        if bus is not None:
            await bus.publish(event)

    async def _deliver(self, venue: str, account: str, channel: str, event: Event) -> None:
        if channel == "trade":
            if isinstance(event, ResyncEvent):
                self.actions.snapshots[(venue, account)] = event
            await self.publish(venue, account, event)
            return
        routes = self.md_routes.get(venue, ())
        if isinstance(event, ConnectionStateEvent):
            for bus, _, _ in routes:
                await bus.publish(event)
            return
        stream = self.streams[(venue, account, channel)]
        ch, symbol = stream.driver.route(event)
        for bus, channels, symbols in routes:
            if ch in channels and (symbol in symbols or "*" in symbols):
                await bus.publish(event)

    def _stream(self, venue: str, account: str, channel: str) -> _Stream | None:
        key = (venue, account, channel)
        stream = self.streams.get(key)
        if stream is None:
            config = self.app.venues.get(venue)
            driver = (
                None
                if config is None
                else adapter_of(config.kind).replay_driver(config, account, channel)
            )
            if driver is None:
                return None
            stream = self.streams[key] = _Stream(driver)
        return stream

    async def apply(self, record: dict[str, Any]) -> None:
        kind = record["type"]
        if kind == "decision":
            self.result.recorded_decisions.append(
                Decision(record["bot"], record["plugin"], record["action"], record["args"])
            )
            return
        if kind not in ("frame", "state", "snapshot"):
            return
        venue, account, channel = record["venue"], record["account"], record.get("ch", "trade")
        stream = self._stream(venue, account, channel)
        if stream is None:
            return
        self.result.accounts.add((venue, account))
        t = record["t"]
        if kind == "state":
            state = ConnectionState(record["state"])
            previous = record.get("previous")
            if state is ConnectionState.CONNECTING:
                stream.deferred.clear()  # a connection that never got LIVE drops its events
            stream.state = state
            await self._deliver(
                venue,
                account,
                channel,
                ConnectionStateEvent(
                    venue=venue,
                    account_id=account,
                    received_at=t,
                    state=state,
                    previous=ConnectionState(previous) if previous else None,
                    reason=record.get("reason", ""),
                    attempt=record.get("attempt", 0),
                ),
            )
            if state is ConnectionState.LIVE:
                deferred, stream.deferred = stream.deferred, []
                for event in deferred:
                    await self._deliver(venue, account, channel, event)
        elif kind == "snapshot":
            for event in await stream.driver.resync(record["body"], t):
                await self._deliver(venue, account, channel, event)
        else:
            self.result.frames += 1
            data = record.get("data")
            frame = data if data is not None else base64.b64decode(record["data_b64"])
            try:
                items = stream.driver.parse(frame, t)
            except ParseError:
                self.result.parse_errors += 1
                return
            for item in items:
                if isinstance(item, Event):
                    if stream.state in _HANDSHAKE:
                        stream.deferred.append(item)
                    else:
                        await self._deliver(venue, account, channel, item)

    async def run(self, files: Sequence[Path]) -> ReplayResult:
        dispatchers = self.build()
        total = sum(f.stat().st_size for f in files)
        done = 0
        last_progress = time.monotonic()
        async with trio.open_nursery() as nursery:
            for dispatcher in dispatchers:
                await nursery.start(dispatcher.run)
            clock0 = trio.current_time()
            t0: float | None = None
            for record, size in read_recording(files):
                done += size
                self.result.records += 1
                t = record.get("t")
                if record["type"] in ("header", "decision") or not isinstance(t, (int, float)):
                    await self.apply(record)
                    continue
                if t0 is None:
                    t0 = t
                self.now = t
                self.result.recorded_seconds = t - t0
                await trio.sleep_until(clock0 + (t - t0))
                await self.apply(record)
                if time.monotonic() - last_progress >= PROGRESS_EVERY:
                    last_progress = time.monotonic()
                    log_event(
                        log,
                        logging.INFO,
                        "replay progress",
                        percent=round(100 * done / max(total, 1)),
                        records=self.result.records,
                        decisions=len(self.actions.decisions),
                    )
            for dispatcher in dispatchers:
                dispatcher.stop()
        self.result.decisions = list(self.actions.decisions)
        return self.result


async def replay_recording(app: AppConfig, path: str | Path) -> ReplayResult:
    """Replay inside the running trio loop. Its clock sets the pace: the default clock gives
    recorded speed, ``trio.testing.MockClock(autojump_threshold=0)`` as fast as possible.

    Raises:
      RecordingError: the recording cannot be read.
      PluginLoadError: a bot's plugins failed to load or validate.
    """
    return await _Replayer(app).run(recording_files(path))


def replay(app: AppConfig, path: str | Path, *, speed: str = "max") -> ReplayResult:
    """Replay a recording (a file or a directory of rotated files) through the bots of ``app``
    in a new trio run; ``speed`` is ``"max"`` (virtual clock) or ``"recorded"`` (real time).

    Raises:
      RecordingError, PluginLoadError: as :func:`replay_recording`.
    """
    if speed not in SPEEDS:
        raise ValueError(f"speed must be one of {SPEEDS}, got {speed!r}")
    files = recording_files(path)
    clock = trio.testing.MockClock(autojump_threshold=0) if speed == "max" else None
    return trio.run(_Replayer(app).run, files, clock=clock)
