"""Wires config, simulators, venues, sessions, buses and plugin hosts in one root nursery.

Start-up order matters for safety: plugins are loaded and validated first (a broken config
never connects anything), then embedded simulators start, then the journal is opened, the
machine-wide locks of every account this process may move money on or reconcile are taken
(``qfexbot.money.account_locks``), start-up is refused while the journal holds an unresolved
transfer on accounts this config no longer names, then venues are opened through their kind's
adapter (``qfexbot.runtime.venues``), their hot paths composed (``qfexbot.runtime.paths``), the
journal is reconciled before any bot acts, then plugins start, then sessions connect. Shutdown
reverses it: stop intake (sessions), drain inboxes and call shutdown hooks, then close REST
clients and the journal. A second SIGINT/SIGTERM cancels everything at once.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import trio

from qfexbot.config import AppConfig, ConfigError, Credentials, money_mover_conflicts
from qfexbot.core.accounts import AccountBook
from qfexbot.core.alerts import AlertHub, make_alert
from qfexbot.core.bus import Bus
from qfexbot.core.dispatch import Dispatcher
from qfexbot.core.logs import get_logger, log_context, log_event, register_secret
from qfexbot.core.plugins import PluginHost, PluginLoadError
from qfexbot.core.venue import MarketDataFeed
from qfexbot.events import AlertKind, AlertSeverity, ConnectionState, Event, TransferOutcomeEvent
from qfexbot.money.account_locks import AccountLocks
from qfexbot.money.journal import Journal, JournalLocked, SqliteJournal
from qfexbot.money.journal.postgres import OPEN_ERRORS, PostgresJournal
from qfexbot.money.killswitch import kill_switch_reason
from qfexbot.money.transfers import TransferService
from qfexbot.ops.metrics import RuntimeMetrics
from qfexbot.ops.recorder import Recorder
from qfexbot.ops.state import remove_state, write_state
from qfexbot.ops.status import (
    AccountsView,
    every_account_session_failed,
    report_connect_progress,
)
from qfexbot.runtime.actions import RuntimeActions
from qfexbot.runtime.embedded import simulator_problems, start_embedded
from qfexbot.runtime.orders import OrderTracker
from qfexbot.runtime.paths import Taps, wire_venue
from qfexbot.runtime.plugins import build_plugin_host
from qfexbot.runtime.startup import (
    lock_accounts,
    refuse_rolled_back_journal,
    refuse_unnamed_entries,
)
from qfexbot.runtime.venues import VenueRun, open_venue

__all__ = ["Runtime"]

log = get_logger("qfexbot.runtime")

RECONCILE_EVERY = 15.0
"""Seconds between reconciliation passes over unknown transfers while running (a transfer that
ends unknown also triggers a pass at once: ``TransferService.run_reconciler``)."""
SUMMARY_WITHIN = 5.0
"""Seconds the run summary may take at shutdown (it reads the journal) before it is skipped."""
KILL_SWITCH_EVERY = 1.0
"""Seconds between two looks at the kill switch file (for its log lines and its cancels)."""


class Runtime:
    """One running qfexbot process: build with a loaded config, then ``await run()``.

    Args:
      app: the validated configuration.
      environ: where ``{env = ...}`` secret references are looked up (default: os.environ).
    """

    def __init__(self, app: AppConfig, *, environ: Mapping[str, str] | None = None) -> None:
        self.app = app
        self._environ = environ
        self._stop = trio.Event()
        self.venues: dict[str, VenueRun] = {}
        self.hosts: dict[str, PluginHost] = {}
        self.dispatchers: dict[str, Dispatcher] = {}
        self.simulators: dict[str, Any] = {}
        self.simulator_urls: dict[str, Any] = {}
        self.journal: Journal | None = None
        self.orders: OrderTracker | None = None
        """Follows every journaled order to its final state (``qfexbot.runtime.orders``)."""
        # scope -> account id -> lock: every real venue table shares one mapping (account ids
        # are unique across users); each simulator table has its own (``VenueConfig.owner``).
        self._money_locks: dict[str, dict[str, trio.Lock]] = {}
        self.market_data: dict[str, MarketDataFeed] = {}
        # Ops: metrics registry, balances/last-event view, recorder, ops endpoint URL.
        self.started_at: float | None = None
        self.metrics = RuntimeMetrics(self)
        self.accounts_view = AccountsView()
        self.recorder: Recorder | None = None
        self.ops_url: str | None = None
        self.dashboard_url: str | None = None
        """The dashboard's URL; it carries a per-run token in its ``#token=`` fragment when
        ``[runtime] ops_token`` is not set (the fragment never reaches a server or its logs)."""
        self.announce: Callable[[str], None] | None = None
        """Called once with the dashboard line (``qfexbot run`` prints it on stdout)."""
        self.failure: str | None = None
        """Why the runtime stopped itself (every account session FAILED), or None."""
        self.alerts = AlertHub()
        """Runtime-wide alerts, handed to plugins that subscribe to ``AlertEvent``."""

    def __repr__(self) -> str:
        return f"Runtime(config={str(self.app.path)!r}, bots={sorted(self.app.bots)})"

    def stop(self) -> None:
        """Ask for a graceful stop (idempotent)."""
        self._stop.set()

    async def publish(self, venue: str, account_id: str, event: Event) -> None:
        """Put ``event`` on an account's bus (no-op for accounts no bot listens to)."""
        bus = self.venues[venue].buses.get(account_id)
        if bus is not None:
            await bus.publish(event)

    def _credentials(self) -> dict[str, Credentials]:
        creds: dict[str, Credentials] = {}
        errors: list[str] = []
        for name, venue in self.app.venues.items():
            try:
                creds[name] = venue.resolve_credentials(self._environ)
            except ConfigError as exc:
                errors.extend(exc.errors)
        if errors:
            raise ConfigError(errors, self.app.path)
        return creds

    def _venues_in_use(self) -> list[str]:
        return sorted({bot.venue for bot in self.app.bots.values()})

    async def run(
        self, *, duration: float | None = None, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run every bot until :meth:`stop`, a signal-driven stop, or ``duration`` seconds.

        ``task_status.started(self)`` is called once every session has been started.

        Raises:
          ConfigError: credentials could not be resolved.
          PluginLoadError: a bot's plugins failed to load or validate.
        """
        creds = self._credentials()
        # Plugins are loaded and validated before anything is opened, so their backend exists
        # before the journal and venues it uses: it is given the journal when it opens, and
        # reads this runtime's venues (filled before any plugin runs).
        actions = RuntimeActions(self.app, self.venues, publish=self.publish)
        record = self.app.runtime.record
        if record is not None:
            self.recorder = Recorder(record.dir, record.max_bytes)
        self._build_hosts(self.recorder.decisions(actions) if self.recorder else actions)
        self.started_at = time.time()
        async with trio.open_nursery() as root:
            if self.recorder is not None:
                self.recorder.open()
                await root.start(self.recorder.run)
            # The journal first: its lock says whether another process runs this config,
            # before this one binds a port or starts a simulator.
            self.journal = await self._open_journal()
            actions.use_journal(self.journal)
            self.orders = OrderTracker(self.journal, self.venues)
            actions.use_orders(self.orders)
            locks: AccountLocks | None = None
            state_file: Path | None = None
            try:
                state_file = await self._serve_ops(root)
                await self._start_simulators(root, creds)
                await refuse_rolled_back_journal(self.journal, self.app)
                locks = await lock_accounts(self.journal, self.app)
                await refuse_unnamed_entries(self.journal, self.app)
                await self._run_venues(root, creds, actions, duration, task_status)
            finally:
                await self.journal.close()
                if locks is not None:
                    locks.release()
                if state_file is not None:
                    remove_state(state_file)
                root.cancel_scope.cancel()

    async def _log_summary(self) -> None:
        """One line at shutdown: what this run did (journal entries since it started, fills,
        reconnects) and what is left for the operator (transfers in doubt, failed sessions,
        disabled plugins)."""
        if self.started_at is None or self.journal is None:
            return
        try:
            counts = await self.journal.counts_since(self.started_at)
        except (sqlite3.Error, OSError):  # the journal failing is reported where it failed
            return
        sessions = [s for run in self.venues.values() for s in run.sessions.values()]
        problems = [
            f"{sum(1 for s in sessions if s.state is ConnectionState.FAILED)} session(s) FAILED",
            f"{len(await self.journal.unresolved())} transfer(s) in doubt",
            f"{sum(1 for h in self.hosts.values() for st in h.stats().values() if st['disabled'])}"
            " plugin(s) disabled",
        ]
        log_event(
            log,
            logging.INFO,
            "run summary",
            transfers=_counted(counts.get("transfer", {})),
            orders=_counted(counts.get("order", {})),
            refusals=sum(counts.get("refusal", {}).values()),
            fills=self.orders.fills if self.orders is not None else 0,
            reconnects=sum(s.stats.reconnects for s in sessions),
            left=", ".join(p for p in problems if not p.startswith("0 ")) or "nothing",
        )

    async def _serve_ops(self, root: trio.Nursery) -> Path | None:
        """Start the ops endpoint (if configured) and write its state file beside the journal,
        where ``qfexbot status`` finds it; returns that file."""
        listen = self.app.runtime.ops_listen
        if listen is None:
            return None
        from qfexbot.ops.endpoint import serve_ops  # noqa: PLC0415 - only when serving

        ref = self.app.runtime.ops_token
        token = secrets.token_urlsafe(24) if ref is None else ref.resolve().reveal()
        register_secret(token)  # never in a log line, whoever logs it
        try:
            self.ops_url = await root.start(
                functools.partial(serve_ops, token=token, tls=self.app.runtime.ops_tls),
                self,
                *listen,
            )
        except (OSError, ExceptionGroup) as exc:
            in_use = _address_in_use(exc)
            if in_use is None:
                raise
            host, port = listen
            raise ConfigError(
                [
                    f"runtime.ops_listen: cannot listen on {host}:{port}: {in_use.strerror} "
                    "(another qfexbot, or another program, has it); free the port or change "
                    "the setting"
                ]
            ) from None
        log_event(log, logging.INFO, "ops endpoint listening", url=self.ops_url)
        fragment = f"#token={token}" if ref is None else ""
        self.dashboard_url = f"{self.ops_url}/{fragment}"
        if self.announce is not None:
            how = (
                "this run's token is in the link: keep it private"
                if ref is None
                else ("control calls take the token of [runtime] ops_token")
            )
            self.announce(f"dashboard: {self.dashboard_url}  ({how})")
        return write_state(self.app.runtime.journal, self.ops_url)

    async def _start_simulators(self, root: trio.Nursery, creds: Mapping[str, Credentials]) -> None:
        """Start the embedded simulator of every venue in use that asks for one."""
        for name in self._venues_in_use():
            config = self.app.venues[name]
            if not config.simulator:
                continue
            sim, urls = await start_embedded(root, config, creds[name])
            self.simulators[name] = sim
            self.simulator_urls[name] = urls
            log_event(
                log,
                logging.INFO,
                "embedded simulator started",
                venue=name,
                **dataclasses.asdict(urls),
            )

    def check(self) -> list[str]:
        """Every problem ``run`` would refuse to start with before connecting anything: the
        credentials, embedded simulators, and each bot's plugins (loaded, not started)."""
        errors: list[str] = []
        try:
            self._credentials()
        except ConfigError as exc:
            errors.extend(exc.errors)
        errors.extend(simulator_problems(self.app.venues))
        try:
            self._build_hosts(actions=None)  # type: ignore[arg-type]  # no hook runs in check
        except PluginLoadError as exc:
            errors.extend(exc.errors)
        return errors

    async def _open_journal(self) -> Journal:
        """The configured journal: a PostgreSQL DSN or a SQLite file (its lock taken)."""
        postgres = self.app.runtime.postgres
        try:
            if postgres is not None:
                # This host's state file (ops URL) lives beside the local journal path.
                self.app.runtime.journal.parent.mkdir(parents=True, exist_ok=True)
                password = None if postgres.password is None else postgres.password.resolve()
                # One process per journal, as with a SQLite file, until leadership per account
                # group lets a standby share it (issue 18).
                return await PostgresJournal.open(postgres.dsn, password=password, exclusive=True)
            return await SqliteJournal.open(self.app.runtime.journal)
        except (sqlite3.Error, OSError, JournalLocked, *OPEN_ERRORS) as exc:
            where = postgres.dsn if postgres is not None else self.app.runtime.journal
            raise ConfigError([f"runtime.journal: cannot open {where}: {exc}"]) from None

    def _build_hosts(self, actions: RuntimeActions) -> None:
        errors: list[str] = []
        for name, bot in self.app.bots.items():
            try:
                self.hosts[name] = build_plugin_host(
                    bot,
                    self.app.venues[bot.venue],
                    plugin_dirs=self.app.runtime.plugin_dirs,
                    actions=actions,
                    alerts=self.alerts.emit,
                )
            except PluginLoadError as exc:
                errors.extend(exc.errors)
        if not errors:  # plugins moving money on one account would fight: check and run refuse
            errors.extend(
                money_mover_conflicts(
                    self.app,
                    {
                        name: [
                            (s.name, getattr(s.plugin, "config_schema", None), s.ctx.config)
                            for s in host.slots
                        ]
                        for name, host in self.hosts.items()
                    },
                )
            )
        if errors:
            raise PluginLoadError(errors)

    async def _run_venues(
        self,
        root: trio.Nursery,
        creds: Mapping[str, Credentials],
        actions: RuntimeActions,
        duration: float | None,
        task_status: Any,
    ) -> None:
        assert self.journal is not None
        taps = Taps(self.accounts_view, self.metrics, self.recorder)
        try:
            for name in self._venues_in_use():
                config = self.app.venues[name]
                self.venues[name] = open_venue(config, creds[name], self.simulator_urls.get(name))
            self._wire_buses()
            for name, run in self.venues.items():
                config = run.config
                feed = await wire_venue(
                    run,
                    taps,
                    app=self.app,
                    hosts=self.hosts,
                    journal=self.journal,
                    on_outcome=functools.partial(self._on_transfer_outcome, actions),
                    money_locks=self._money_locks.setdefault(
                        config.owner if config.simulator else "", {}
                    ),
                    on_alert=self.alerts.emit,
                )
                if feed is not None:
                    self.market_data[name] = feed
            for name, run in self.venues.items():
                if run.transfers is None:
                    continue
                with log_context(venue=name):
                    _log_reconciled(name, await run.transfers.reconcile(), "at start-up")
            # Orders in doubt are reconciled as soon as their venue can answer (sessions live).
            assert self.orders is not None
            await self.orders.load()
            async with trio.open_nursery() as plugins_nursery:
                for name, dispatcher in self.dispatchers.items():
                    with log_context(bot=name):
                        await plugins_nursery.start(dispatcher.run)
                async with trio.open_nursery() as sessions_nursery:
                    if self.recorder is not None:
                        self.recorder.start()
                    self._start_sessions(sessions_nursery)
                    sessions_nursery.start_soon(report_connect_progress, self)
                    sessions_nursery.start_soon(self._stop_when_every_session_failed)
                    sessions_nursery.start_soon(self._alert_failed_sessions)
                    sessions_nursery.start_soon(self._watch_kill_switch, actions)
                    self._start_reconcilers(sessions_nursery)
                    sessions_nursery.start_soon(actions.deliver_outcomes)
                    sessions_nursery.start_soon(self.orders.run)
                    log_event(
                        log,
                        logging.INFO,
                        "all bots started",
                        bots=",".join(sorted(self.app.bots)),
                        sessions=sum(len(v.sessions) for v in self.venues.values()),
                    )
                    task_status.started(self)
                    with trio.move_on_after(duration if duration is not None else float("inf")):
                        await self._stop.wait()
                    log_event(log, logging.INFO, "stopping: closing sessions, draining plugins")
                    sessions_nursery.cancel_scope.cancel()
                for dispatcher in self.dispatchers.values():
                    dispatcher.stop()
        finally:
            with trio.CancelScope(shield=True):
                for run in self.venues.values():
                    await run.venue.aclose()
                with trio.move_on_after(SUMMARY_WITHIN):
                    await self._log_summary()
        log_event(log, logging.INFO, "stopped")

    async def _watch_kill_switch(self, actions: RuntimeActions) -> None:
        """Log each change of the kill switch (the file announces nothing: it is looked at
        every ``KILL_SWITCH_EVERY`` s) and, with ``kill_switch_cancels_orders``, cancel every
        account's open orders when it engages. Refusing money movement and new orders needs
        no watcher: each transfer and order reads the file itself."""
        path = self.app.runtime.kill_switch_file
        engaged: str | None = None
        while True:
            now = kill_switch_reason(path)
            if now is not None and engaged is None:
                log_event(
                    log,
                    logging.WARNING,
                    "kill switch engaged: no money movement, no new orders (qfexbot resume)",
                    reason=now,
                    file=str(path),
                )
                self.alerts.emit(
                    make_alert(
                        AlertKind.KILL_SWITCH_ENGAGED,
                        AlertSeverity.CRITICAL,
                        f"kill switch engaged: {now}; no money movement, no new orders "
                        "until `qfexbot resume`",
                        subject=str(path),
                        reason=now,
                    )
                )
                if self.app.runtime.kill_switch_cancels_orders:
                    sent = await actions.cancel_everything(now)
                    log_event(log, logging.WARNING, "kill switch: open orders cancelled",
                              accounts=sent)  # fmt: skip
            elif now is None and engaged is not None:
                log_event(
                    log,
                    logging.INFO,
                    "kill switch released: money movement and orders resume",
                    file=str(path),
                )
                self.alerts.emit(
                    make_alert(
                        AlertKind.KILL_SWITCH_RELEASED,
                        AlertSeverity.WARNING,
                        "kill switch released: money movement and orders resume",
                        subject=str(path),
                        was=engaged,
                    )
                )
            engaged = now
            await trio.sleep(KILL_SWITCH_EVERY)

    def _on_transfer_outcome(self, actions: RuntimeActions, event: TransferOutcomeEvent) -> None:
        """Alert on a transfer that ended unknown, failed or refused; then hand the outcome to
        the plugins' buses (``RuntimeActions.on_transfer_outcome``, which never waits)."""
        alert = _TRANSFER_ALERTS.get(event.state)
        if alert is not None:
            kind, severity, what = alert
            book = AccountBook(self.app.venues[event.venue].accounts, name=event.venue)
            src, dst = book.alias_of(event.src), book.alias_of(event.dst)
            self.alerts.emit(
                make_alert(
                    kind,
                    severity,
                    f"transfer {event.entry_id} of {event.amount} {src} -> {dst} {what}: "
                    f"{event.detail or 'no detail'}",
                    venue=event.venue,
                    account=src,
                    # Refusals repeat (a plugin retrying a refused pair): one subject per pair,
                    # so the notifier folds them into one message with a count.
                    subject=f"refused {src} -> {dst}"
                    if event.state == "refused"
                    else event.entry_id,
                    entry=event.entry_id,
                    src=src,
                    dst=dst,
                    amount=event.amount,
                    state=event.state,
                )
            )
        actions.on_transfer_outcome(event)

    async def _alert_failed_sessions(self) -> None:
        """Alert once for each account session that reaches FAILED (it will not retry)."""
        alerted: set[tuple[str, str]] = set()
        while True:
            for venue_name, run in self.venues.items():
                book = AccountBook(run.config.accounts, name=f"venues.{venue_name}")
                for account_id, session in run.sessions.items():
                    key = (venue_name, account_id)
                    if session.state is not ConnectionState.FAILED or key in alerted:
                        continue
                    alerted.add(key)
                    alias = book.alias_of(account_id)
                    self.alerts.emit(
                        make_alert(
                            AlertKind.SESSION_FAILED,
                            AlertSeverity.CRITICAL,
                            f"session {venue_name}/{alias} FAILED and will not retry: "
                            "check its credentials and the ERROR lines, then restart",
                            venue=venue_name,
                            account=alias,
                            subject=f"{venue_name}/{alias}",
                            last_error=session.stats.last_error or "none recorded",
                        )
                    )
            await self.accounts_view.next_failure()

    async def _stop_when_every_session_failed(self) -> None:
        """Stop the whole process once every account session is FAILED: nothing it runs can
        work any more, and ``qfexbot run`` must say so with its exit code, not idle on."""
        while not every_account_session_failed(self):
            await self.accounts_view.next_failure()
        self.failure = "every account session FAILED (credentials refused): see the ERROR lines"
        log_event(log, logging.CRITICAL, "stopping: every account session FAILED")
        self.stop()

    def _wire_buses(self) -> None:
        """One bus per account in use; each bot's plugins subscribe to its accounts' buses."""
        for name, bot in self.app.bots.items():
            run = self.venues[bot.venue]
            host = self.hosts[name]
            for alias in bot.accounts:
                account_id = run.config.accounts[alias]
                bus = run.buses.get(account_id)
                if bus is None:
                    bus = run.buses[account_id] = Bus(account_id, venue=bot.venue)
                host.subscribe(bus)
                run.channels.setdefault(account_id, set()).update(bot.channels)
            for slot in host.slots:
                self.alerts.subscribe_if_wanted(slot.plugin, slot.inbox)
            self.dispatchers[name] = Dispatcher(host, alerts=self.alerts)

    def _start_sessions(self, nursery: trio.Nursery) -> None:
        """Run every session and public feed that :func:`~qfexbot.runtime.paths.wire_venue`
        built."""
        for venue_name, run in self.venues.items():
            book = AccountBook(run.config.accounts, name=f"venues.{venue_name}")
            for account_id, session in run.sessions.items():
                alias = book.alias_of(account_id)
                nursery.start_soon(self._run_session, venue_name, alias, session)
            feed = self.market_data.get(venue_name)
            if feed is not None:
                nursery.start_soon(feed.run)

    async def _run_session(self, venue: str, alias: str, session: Any) -> None:
        with log_context(venue=venue, account=alias):
            await session.run()

    def _start_reconcilers(self, nursery: trio.Nursery) -> None:
        """Settle transfers whose outcome is unknown, so blocked accounts unblock on their own:
        one reconciler per venue with transfers, woken early by every unknown outcome."""
        for name, run in self.venues.items():
            if run.transfers is not None:
                nursery.start_soon(self._reconcile_venue, name, run.transfers)

    async def _reconcile_venue(self, name: str, transfers: TransferService) -> None:
        """Run one venue's reconciler; its passes are logged by ``_log_reconciled``."""
        with log_context(venue=name):
            await transfers.run_reconciler(
                interval=RECONCILE_EVERY, report=functools.partial(_log_reconciled, name, when="")
            )


_TRANSFER_ALERTS: dict[str, tuple[AlertKind, AlertSeverity, str]] = {
    "unknown": (
        AlertKind.TRANSFER_UNKNOWN,
        AlertSeverity.CRITICAL,
        "is in doubt (accounts held until reconciled)",
    ),
    "failed": (AlertKind.TRANSFER_FAILED, AlertSeverity.WARNING, "failed"),
    "refused": (AlertKind.TRANSFER_REFUSED, AlertSeverity.WARNING, "was refused"),
}
"""Transfer outcome state -> the alert it raises."""


def _log_reconciled(venue: str, results: list[Any], when: str) -> None:
    """One line per journal entry that reconciliation settled (or could not settle yet)."""
    for result in results:
        settled = result.state in ("done", "failed")
        log_event(
            log,
            logging.WARNING,
            ("journal entry reconciled " if settled else "journal entry still in doubt ") + when,
            venue=venue,
            entry=result.entry_id,
            state=result.state,
            detail=result.detail,
        )


def _address_in_use(exc: BaseException) -> OSError | None:
    """The "address already in use" error inside ``exc`` (hypercorn raises it in a group)."""
    if isinstance(exc, OSError):
        return exc if exc.errno == errno.EADDRINUSE else None
    if isinstance(exc, BaseExceptionGroup):
        for member in exc.exceptions:
            found = _address_in_use(member)
            if found is not None:
                return found
    return None


def _counted(states: Mapping[str, int]) -> str:
    """``{"done": 3, "failed": 1}`` as ``"3 done, 1 failed"`` (``"none"`` when empty)."""
    return ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "none"
