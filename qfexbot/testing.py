"""Test harness for plugin authors: run a plugin in a real bot against the embedded simulator.

``run_bot`` writes a ``bots.toml`` for one bot on a simulator venue into a directory, starts the
real :class:`~qfexbot.runtime.Runtime` (simulator, sessions, buses, journal, policy) in the
caller's trio run, waits until every session is LIVE and hands back a :class:`BotHarness`.
Nothing is mocked: what the plugin does is what it would do against the venue. Use it from
pytest-trio tests (``trio_mode = true`` or ``@pytest.mark.trio``)::

    from decimal import Decimal
    from qfexbot import BalanceEvent
    from qfexbot.testing import run_bot

    async def test_tops_up_low_desk(tmp_path):
        async with run_bot("my_plugin", plugin_dirs=["plugins"], tmp_path=tmp_path,
                           options={"min": 100}, accounts={"desk-a": 50}) as bot:
            await bot.inject(BalanceEvent, "desk-a", available=Decimal(10))
            await bot.wait_for(lambda: bot.transfers, what="a transfer")
            assert bot.transfers[0].amount == Decimal(90)

Account aliases: every key of ``accounts`` is an account of the bot (it gets a session and the
plugin sees its events), funded with the given deposit. ``treasury`` is always the venue's
primary account, funded with ``treasury=`` unless listed in ``accounts``.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import tempfile
import time
import types
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from inspect import isawaitable
from pathlib import Path
from typing import Any

import trio

from qfexbot.config import load_config
from qfexbot.core.accounts import AccountBook
from qfexbot.core.context import BotContext
from qfexbot.core.plugins import PluginSlot
from qfexbot.events import ConnectionState, Event
from qfexbot.hookspecs import hookimpl
from qfexbot.money.journal import Entry
from qfexbot.runtime import Runtime
from qfexbot.sim import LedgerEntry, QfexSimulator

__all__ = ["BotHarness", "EventLog", "account_uuid", "run_bot"]

VENUE = "sim"
TREASURY = "treasury"
EVENT_LOG_PLUGIN = "harness_events"
_NAMESPACE = uuid.UUID("9c0f8a52-3a55-4a8e-9d0e-6f1c3b3e7a10")

# Plugin objects handed to run_bot (classes, modules, instances) are made loadable by name:
# bots.toml says ``use = "qfexbot.testing:_objects.pN"``, resolved by the normal loader.
_objects = types.SimpleNamespace()
_object_ids = itertools.count(1)


def account_uuid(alias: str) -> str:
    """The account id the harness gives ``alias`` (stable across runs, so tests can hard-code
    or recompute it)."""
    return str(uuid.uuid5(_NAMESPACE, alias))


class EventLog:
    """Records every event of the bot, in the order the bot's plugins receive them.

    Installed by ``run_bot`` as an extra plugin instance (``harness_events``) of the bot, so it
    sees exactly what a plugin with no ``subscribes`` filter sees, through the real bus (timer
    events are per plugin: other plugins' timers are not in it).
    """

    def __init__(self) -> None:
        self.events: list[Event] = []

    @hookimpl
    def qfexbot_event(self, event: Event) -> None:
        self.events.append(event)


class BotHarness:
    """A running bot under test; yielded by :func:`run_bot`.

    Attributes:
      runtime: the real :class:`~qfexbot.runtime.Runtime`.
      sim: the embedded :class:`~qfexbot.sim.QfexSimulator` (``.faults``, ``.ledger``, ...).
      bot: the bot's name; ``venue``: the venue's name.
      config_path: the ``bots.toml`` that was written (e.g. for ``qfexbot journal``).
      accounts: alias -> account id, for every account of the venue (``treasury`` included).
    """

    def __init__(self, runtime: Runtime, bot: str, plugin: str, config_path: Path) -> None:
        self.runtime = runtime
        self.bot = bot
        self.venue = VENUE
        self.config_path = config_path
        self.sim: QfexSimulator = runtime.simulators[VENUE]
        self.accounts: Mapping[str, str] = runtime.app.venues[VENUE].accounts
        self._book = AccountBook(self.accounts, name=f"venue {VENUE}")
        self._plugin = plugin
        self._slots = {slot.name: slot for slot in runtime.hosts[bot].slots}
        self._log: EventLog = self._slots[EVENT_LOG_PLUGIN].plugin  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BotHarness(bot={self.bot!r}, plugin={self._plugin!r})"

    # -- the plugins ---------------------------------------------------------------------

    @property
    def plugin(self) -> Any:
        """The instance of the plugin under test (the module, for a module plugin)."""
        return self.slot().plugin

    @property
    def ctx(self) -> BotContext:
        """The plugin's ``ctx`` (its config, accounts, shared ``state``)."""
        return self.slot().ctx

    def slot(self, name: str | None = None) -> PluginSlot:
        """The runtime's record of a plugin instance (default: the one under test): ``.plugin``,
        ``.ctx``, ``.disabled``, ``.disabled_reason``, ``.stats()``.

        Raises:
          KeyError: no enabled plugin instance of that name.
        """
        return self._slots[name or self._plugin]

    # -- what happened -------------------------------------------------------------------

    @property
    def events(self) -> list[Event]:
        """Every event published to the bot's buses so far (sessions' and injected), in
        order; timer events are per plugin and not included."""
        return list(self._log.events)

    def events_of(self, kind: type[Event], account: str | None = None) -> list[Event]:
        """The delivered events of type ``kind`` (and subclasses), optionally of one account
        (alias or id)."""
        wanted = None if account is None else self.account_id(account)
        return [
            e
            for e in self._log.events
            if isinstance(e, kind) and (wanted is None or e.account_id == wanted)
        ]

    @property
    def transfers(self) -> list[LedgerEntry]:
        """Transfers the simulator applied (``src``, ``dst``, ``amount``), oldest first."""
        return self.sim.ledger

    def balance(self, account: str) -> Decimal:
        """The simulator's available balance of an account (alias or id), right now."""
        return self.sim.available_balance(self.account_id(account))

    async def journal_entries(
        self, kind: str | None = None, state: str | None = None
    ) -> list[Entry]:
        """Journal entries (transfers, orders, cancels, refusals, dry runs), oldest first.

        Every action a plugin takes is journaled before it is sent, so this is the action log:
        ``kind`` is ``"transfer"``, ``"order"``, ``"cancel"``, ``"refusal"`` or ``"dry_run"``.
        """
        journal = self.runtime.journal
        if journal is None:
            raise RuntimeError("the journal is closed: read it inside the run_bot block")
        entries = await journal.list(state=state, kind=kind, limit=1_000_000)
        return entries[::-1]

    # -- acting on the bot ---------------------------------------------------------------

    def account_id(self, account: str) -> str:
        """The id of an alias (an id is returned as is).

        Raises:
          KeyError: neither an alias nor an id of the venue.
        """
        if account == "":
            return account
        if self._book.knows(account):
            return self._book.id_of(account)
        raise KeyError(f"unknown account {account!r} (aliases: {', '.join(self.accounts)})")

    def make_event(self, kind: type[Event], account: str | None = None, **fields: Any) -> Event:
        """Build an event of type ``kind`` for ``account`` (alias or id; default: the bot's
        first account), with ``venue`` and ``received_at`` filled in."""
        account_id = self.account_id(account) if account is not None else self._first_account()
        fields.setdefault("received_at", time.time())
        return kind(venue=self.venue, account_id=account_id, **fields)

    async def inject(
        self, event: Event | type[Event], account: str | None = None, **fields: Any
    ) -> Event:
        """Publish a synthetic event on an account's bus, as if its session received it; it
        reaches every plugin of the bot. Returns the event.

        ``await bot.inject(event)`` publishes a built event on the bus of ``event.account_id``
        (the bot's first account for market data and timers, whose ``account_id`` is ``""``);
        ``await bot.inject(BalanceEvent, "desk-a", available=Decimal(5))`` builds it first (see
        :meth:`make_event`). Returns once the event is in the inboxes, not once handled: follow
        with :meth:`wait_for`.
        """
        if isinstance(event, type):
            event = self.make_event(event, account, **fields)
        elif account is not None or fields:
            raise TypeError("pass account and fields only with an event type, not an event")
        bus_account = event.account_id or self._first_account()
        buses = self.runtime.venues[self.venue].buses
        if bus_account not in buses:
            raise KeyError(f"account {bus_account} is not one of the bot's accounts")
        await buses[bus_account].publish(event)
        return event

    # The bound is part of these waits' contract for test authors: on expiry they fail the test
    # with an AssertionError that names what was awaited, not a bare trio.TooSlowError.
    async def wait_for(
        self,
        predicate: Callable[[], Any],
        timeout: float = 20.0,  # noqa: ASYNC109
        what: str | None = None,
    ) -> Any:
        """Poll ``predicate`` (sync, or returning an awaitable) until it is truthy; return
        that value.

        Raises:
          AssertionError: still falsy after ``timeout`` seconds (names ``what``).
        """
        with trio.move_on_after(timeout):
            while True:
                value = predicate()
                if isawaitable(value):
                    value = await value
                if value:
                    return value
                await trio.sleep(0.01)
        raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")

    async def wait_live(self, timeout: float = 20.0) -> None:  # noqa: ASYNC109
        """Wait until every session of the bot is LIVE (again, e.g. after a fault)."""
        sessions = self.runtime.venues[self.venue].sessions
        await self.wait_for(
            lambda: all(s.state is ConnectionState.LIVE for s in sessions.values()),
            timeout,
            "every session LIVE",
        )

    def _first_account(self) -> str:
        return self.accounts[self.runtime.app.bots[self.bot].accounts[0]]


@asynccontextmanager
async def run_bot(
    plugin: Any,
    *,
    options: Mapping[str, Any] | None = None,
    accounts: Mapping[str, Decimal | int | str] | None = None,
    treasury: Decimal | int | str = 100_000,
    tmp_path: str | Path | None = None,
    plugin_dirs: Sequence[str | Path] = (),
    name: str | None = None,
    extra_plugins: Mapping[str, Any] | None = None,
    channels: Sequence[str] | None = None,
    market_data: Mapping[str, Sequence[str]] | None = None,
    limits: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    sim: Mapping[str, Any] | None = None,
    runtime: Mapping[str, Any] | None = None,
    wait_live: bool = True,
    start_timeout: float = 20.0,
    stop_timeout: float = 20.0,
) -> AsyncIterator[BotHarness]:
    """Run ``plugin`` in a bot on the embedded simulator for the duration of the block.

    Args:
      plugin: what bots.toml's ``use`` would say (``"name"`` from ``plugin_dirs`` or an entry
        point, ``"module:Class"``), or the plugin object itself (a class, module or instance).
      options: the plugin's own options, validated by its ``config_schema``.
      accounts: the bot's accounts, alias -> starting balance (default ``{"desk-a": 1000}``).
      treasury: starting balance of the ``treasury`` alias (the primary account), which the bot
        may move money from without listening to it.
      tmp_path: where bots.toml, the journal and the kill-switch file go (default: a temporary
        directory removed afterwards).
      plugin_dirs: directories of local plugin modules (relative to the current directory).
      name: the plugin instance name (default: derived from ``plugin``).
      extra_plugins: more plugin instances of the same bot, name -> ``plugin`` or
        ``(plugin, options)``; reach them with ``bot.slot(name)``.
      channels, market_data, dry_run: as in ``[bots.NAME]``.
      limits: ``[bots.NAME.limits]`` keys; by default every pair among the treasury and the
        bot's accounts is allowed and ``min_interval`` is 0, other limits keep their defaults.
      sim: extra ``[venues.NAME.sim]`` keys (``pulse_interval`` defaults to 0.1 s).
      runtime: extra ``[runtime]`` keys (e.g. ``kill_switch_cancels_orders``).
      wait_live: wait until every session is LIVE before running the block.
      start_timeout, stop_timeout: bounds (s) on starting and on the graceful stop.

    Raises:
      qfexbot.config.ConfigError: the generated bots.toml is invalid (e.g. a bad alias).
      qfexbot.core.plugins.PluginLoadError: the plugin failed to load or its options are invalid.
      trio.TooSlowError: the bot did not start within ``start_timeout``.

    Resource handling: on leaving the block the runtime is stopped gracefully (sessions closed,
    inboxes drained, shutdown hooks called, journal closed); after ``stop_timeout`` it is
    cancelled. Errors come out unwrapped when there is only one.
    """
    if tmp_path is None:
        with tempfile.TemporaryDirectory(prefix="qfexbot-test-") as directory:
            async with run_bot(
                plugin,
                options=options,
                accounts=accounts,
                treasury=treasury,
                tmp_path=directory,
                plugin_dirs=plugin_dirs,
                name=name,
                extra_plugins=extra_plugins,
                channels=channels,
                market_data=market_data,
                limits=limits,
                dry_run=dry_run,
                sim=sim,
                runtime=runtime,
                wait_live=wait_live,
                start_timeout=start_timeout,
                stop_timeout=stop_timeout,
            ) as harness:
                yield harness
        return
    instance = name or _default_name(plugin)
    plugins: dict[str, tuple[Any, Mapping[str, Any]]] = {instance: (plugin, options or {})}
    for extra_name, spec in (extra_plugins or {}).items():
        plugins[extra_name] = spec if isinstance(spec, tuple) else (spec, {})
    plugins[EVENT_LOG_PLUGIN] = ("qfexbot.testing:EventLog", {})
    path = write_bots_toml(
        Path(tmp_path),
        plugins,
        accounts={"desk-a": 1000} if accounts is None else accounts,
        treasury=treasury,
        plugin_dirs=plugin_dirs,
        channels=channels,
        market_data=market_data,
        limits=limits,
        dry_run=dry_run,
        sim=sim,
        runtime=runtime,
    )
    process = Runtime(load_config(path))
    try:
        async with trio.open_nursery() as nursery:
            with trio.fail_after(start_timeout):
                await nursery.start(process.run)
            harness = BotHarness(process, "bot", instance, path)
            try:
                if wait_live:
                    await harness.wait_live(start_timeout)
                yield harness
            finally:
                process.stop()
                nursery.cancel_scope.deadline = trio.current_time() + stop_timeout
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


def write_bots_toml(
    directory: Path,
    plugins: Mapping[str, tuple[Any, Mapping[str, Any]]],
    *,
    accounts: Mapping[str, Decimal | int | str],
    treasury: Decimal | int | str = 100_000,
    plugin_dirs: Sequence[str | Path] = (),
    channels: Sequence[str] | None = None,
    market_data: Mapping[str, Sequence[str]] | None = None,
    limits: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    sim: Mapping[str, Any] | None = None,
    runtime: Mapping[str, Any] | None = None,
) -> Path:
    """Write the harness's ``bots.toml`` (venue ``sim``, bot ``bot``) into ``directory``
    (``runtime``: more ``[runtime]`` keys).

    Returns:
      The path of the file written.
    """
    if not accounts:
        raise ValueError("the bot needs at least one account")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "var").mkdir(exist_ok=True)
    bot_aliases = list(accounts)
    deposits = {TREASURY: treasury, **accounts}
    aliases = {TREASURY: "primary", **{a: account_uuid(a) for a in bot_aliases if a != TREASURY}}
    every = [TREASURY, *(a for a in bot_aliases if a != TREASURY)]
    limit_table: dict[str, Any] = {
        "allowed_pairs": [[a, b] for a, b in itertools.combinations(every, 2)],
        "min_interval": 0,
        **(limits or {}),
    }
    bot: dict[str, Any] = {"venue": VENUE, "accounts": bot_aliases, "dry_run": dry_run}
    if channels is not None:
        bot["channels"] = list(channels)
    if market_data is not None:
        bot["market_data"] = {k: list(v) for k, v in market_data.items()}
    lines = [
        "# Written by qfexbot.testing.run_bot.",
        "[runtime]",
        'journal = "var/journal.sqlite"',
        'kill_switch_file = "var/PAUSED"',
        'state_dir = "var/state"',  # the journal's rollback mark stays in the test's directory
        f"plugin_dirs = {_toml([str(Path(d).resolve()) for d in plugin_dirs])}",
        *(f"{_key(k)} = {_toml(v)}" for k, v in (runtime or {}).items()),
        "",
        f"[venues.{VENUE}]",  # the default kind: the embedded QFEX simulator
        "simulator = true",
        f'user_id = "{account_uuid(TREASURY)}"',
        'public_key = "qfex_pub_harness"',
        'secret = "qfex_secret_harness"',
        _table(f"venues.{VENUE}.accounts", aliases),
        _table(
            f"venues.{VENUE}.session",
            {
                "stale_after": 5.0,
                "backoff_initial": 0.05,
                "backoff_max": 0.5,
                "request_timeout": 5.0,
            },
        ),
        _table(
            f"venues.{VENUE}.sim",
            {"pulse_interval": 0.1, "seed": 1, **(sim or {}), "deposits": deposits},
        ),
        _table("bots.bot", bot),
        _table("bots.bot.limits", limit_table),
    ]
    for instance, (spec, plugin_options) in plugins.items():
        lines.append(
            _table(f"bots.bot.plugins.{instance}", {"use": _use_of(spec), **plugin_options})
        )
    path = directory / "bots.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


# -- helpers ----------------------------------------------------------------------------------


def _use_of(spec: Any) -> str:
    """The ``use`` string for a plugin spec: strings as they are, objects registered here."""
    if isinstance(spec, str):
        return spec
    key = f"p{next(_object_ids)}"
    setattr(_objects, key, spec)
    return f"{__name__}:_objects.{key}"


def _default_name(spec: Any) -> str:
    if isinstance(spec, str):
        base = spec.partition(":")[2] or spec
        base = base.rsplit(".", 1)[-1]
    else:
        base = getattr(spec, "__name__", type(spec).__name__).rsplit(".", 1)[-1]
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", base)[:64]
    return cleaned or "plugin"


def _leaves(group: BaseExceptionGroup) -> Iterable[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _toml(value: Any) -> str:
    """A TOML literal for a str, bool, number, list or mapping (inline table)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value!r} to bots.toml")
        return repr(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot write {value!r} to bots.toml")
        return format(value, "f")
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to bots.toml")


def _table(header: str, values: Mapping[str, Any]) -> str:
    body = "\n".join(f"{_key(k)} = {_toml(v)}" for k, v in values.items())
    return f"\n[{header}]\n{body}"
