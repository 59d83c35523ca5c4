"""Prometheus metrics of a running process, in its own CollectorRegistry.

Most numbers already exist as plain counters (``SessionStats``, ``PluginHost.stats()``, bus and
inbox counters), so a custom collector reads them at scrape time: the hot path pays nothing.
Only transfer outcomes and transfer request latency are counted as they happen (transfers are
rare), and journal unresolved counts are read from the journal just before each scrape
(``refresh``), because the journal is asynchronous and a collector is not.

The registry is per runtime, never prometheus-client's global one, so several runtimes (tests)
never clash. The process is read through :class:`~qfexbot.ops.view.RuntimeView`. Metric names
and labels are listed in docs/operations.md.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import trio
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from qfexbot.core.accounts import AccountBook
from qfexbot.events import ConnectionState, TransferOutcomeEvent
from qfexbot.ops.status import account_books, alias_of, iter_sessions
from qfexbot.ops.view import RuntimeView

__all__ = ["CONTENT_TYPE_LATEST", "TRANSFER_LATENCY_BUCKETS", "RuntimeMetrics"]

TRANSFER_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

SendTransfer = Callable[[str, str, Decimal], Awaitable[None]]


class RuntimeMetrics:
    """The metrics of one running process (``runtime``: what it reads them from).

    Attributes:
      registry: the per-runtime ``CollectorRegistry`` (scrape it with :meth:`exposition`).
    """

    def __init__(self, runtime: RuntimeView) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._runtime = runtime
        self._unresolved: dict[tuple[str, str], int] = {}
        self._holds: dict[str, int] = {}
        self.transfer_outcomes = Counter(
            "qfexbot_transfer_outcomes",
            "Transfers by final outcome (done, failed, unknown, refused, dry_run).",
            ["venue", "state"],
            registry=self.registry,
        )
        self.transfer_latency = Histogram(
            "qfexbot_transfer_request_seconds",
            "Duration of the venue's transfer request, by outcome of the request (ok, error).",
            ["venue", "result"],
            buckets=TRANSFER_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_RuntimeCollector(runtime, self))

    def timed_sender(self, venue: str, send: SendTransfer) -> SendTransfer:
        """``send`` that observes its duration in ``qfexbot_transfer_request_seconds``."""
        histogram = self.transfer_latency

        async def timed(src: str, dst: str, amount: Decimal) -> None:
            started = time.perf_counter()
            result = "error"
            try:
                await send(src, dst, amount)
                result = "ok"
            finally:
                histogram.labels(venue, result).observe(time.perf_counter() - started)

        return timed

    def outcome_observer(
        self, callback: Callable[[TransferOutcomeEvent], None]
    ) -> Callable[[TransferOutcomeEvent], None]:
        """A transfer-outcome callback that counts the outcome, then calls ``callback``
        (synchronous: outcomes are reported while the transfer service holds locks)."""
        counter = self.transfer_outcomes

        def observed(event: TransferOutcomeEvent) -> None:
            counter.labels(event.venue, event.state).inc()
            callback(event)

        return observed

    async def refresh(self) -> None:
        """Read the journal's unresolved transfers (call before :meth:`exposition`)."""
        journal = self._runtime.journal
        if journal is None:
            return
        counts: dict[tuple[str, str], int] = {}
        with trio.move_on_after(2.0):
            for entry in await journal.unresolved():
                key = (entry.venue, entry.state)
                counts[key] = counts.get(key, 0) + 1
            self._unresolved = counts
            holds: dict[str, int] = {}
            for hold in await journal.active_holds():
                holds[hold.venue] = holds.get(hold.venue, 0) + 1
            self._holds = holds

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every metric (prometheus-client renders it)."""
        return generate_latest(self.registry)

    def unresolved(self) -> dict[tuple[str, str], int]:
        """(venue, state) -> unresolved journal entries, as of the last :meth:`refresh`."""
        return dict(self._unresolved)

    def holds(self) -> dict[str, int]:
        """venue -> active account holds, as of the last :meth:`refresh`."""
        return dict(self._holds)


class _RuntimeCollector:
    """Reads the runtime's live counters when Prometheus scrapes."""

    def __init__(self, runtime: RuntimeView, metrics: RuntimeMetrics) -> None:
        self._runtime = runtime
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        books = account_books(self._runtime)
        yield from self._sessions(books)
        yield from self._plugins()
        yield from self._journal()
        yield from self._process(books)

    def _sessions(self, books: Mapping[str, AccountBook]) -> Iterator[Metric]:
        """State, counters and last frame age of every session, by venue/account/alias."""
        now = time.time()
        labels = ["venue", "account", "alias"]
        state = GaugeMetricFamily(
            "qfexbot_session_state",
            "1 for the session's current state, 0 for the others.",
            labels=[*labels, "state"],
        )
        live = GaugeMetricFamily(
            "qfexbot_session_live", "1 while the session is LIVE.", labels=labels
        )
        reconnects = CounterMetricFamily(
            "qfexbot_session_reconnects", "Reconnections.", labels=labels
        )
        frames = CounterMetricFamily("qfexbot_session_frames", "Frames read.", labels=labels)
        parse_errors = CounterMetricFamily(
            "qfexbot_session_parse_errors", "Malformed frames ignored.", labels=labels
        )
        age = GaugeMetricFamily(
            "qfexbot_session_last_frame_age_seconds",
            "Seconds since the last frame (absent before the first).",
            labels=labels,
        )
        for venue, account, alias, session in iter_sessions(self._runtime, books):
            stats = session.stats
            values = [venue, account, alias]
            for each in ConnectionState:
                state.add_metric([*values, each.value], 1.0 if stats.state is each else 0.0)
            live.add_metric(values, 1.0 if stats.state is ConnectionState.LIVE else 0.0)
            reconnects.add_metric(values, stats.reconnects)
            frames.add_metric(values, stats.frames)
            parse_errors.add_metric(values, stats.parse_errors)
            if stats.last_frame_at is not None:
                age.add_metric(values, max(0.0, now - stats.last_frame_at))
        yield from (state, live, reconnects, frames, parse_errors, age)

    def _plugins(self) -> Iterator[Metric]:
        """Every plugin's inbox and hook counters (``PluginHost.stats()``), by bot/plugin."""
        plabels = ["bot", "plugin"]
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            "events_in": CounterMetricFamily(
                "qfexbot_plugin_events_in",
                "Events accepted into the plugin's inbox.",
                labels=plabels,
            ),
            "events_handled": CounterMetricFamily(
                "qfexbot_plugin_events_handled",
                "Events the plugin's event hook finished.",
                labels=plabels,
            ),
            "failures": CounterMetricFamily(
                "qfexbot_plugin_failures", "Hook calls that raised or timed out.", labels=plabels
            ),
            "full_waits": CounterMetricFamily(
                "qfexbot_plugin_inbox_full_waits",
                "Times a publisher waited for the full inbox.",
                labels=plabels,
            ),
            "conflated": CounterMetricFamily(
                "qfexbot_plugin_events_conflated",
                "Market-data events replaced by a newer one.",
                labels=plabels,
            ),
            "dropped": CounterMetricFamily(
                "qfexbot_plugin_events_dropped",
                "Events discarded (plugin disabled or closed).",
                labels=plabels,
            ),
            "depth": GaugeMetricFamily(
                "qfexbot_plugin_inbox_depth", "Events waiting now.", labels=plabels
            ),
            "size": GaugeMetricFamily(
                "qfexbot_plugin_inbox_size", "Inbox capacity.", labels=plabels
            ),
            "high_water": GaugeMetricFamily(
                "qfexbot_plugin_inbox_high_water", "Largest inbox depth seen.", labels=plabels
            ),
            "disabled": GaugeMetricFamily(
                "qfexbot_plugin_disabled",
                "1 once the plugin was disabled by its circuit breaker.",
                labels=plabels,
            ),
        }
        for bot, host in self._runtime.hosts.items():
            for plugin, counters in host.stats().items():
                for key, family in families.items():
                    family.add_metric([bot, plugin], float(counters[key]))
        yield from families.values()

    def _journal(self) -> Iterator[Metric]:
        """Transfers in doubt, late landings and account holds, by venue."""
        rt = self._runtime
        unresolved = GaugeMetricFamily(
            "qfexbot_journal_unresolved_transfers",
            "Transfers whose money may or may not have moved (pending, sent, unknown).",
            labels=["venue", "state"],
        )
        counts = self._metrics.unresolved()
        for venue in rt.app.venues:
            for state in ("pending", "sent", "unknown"):
                unresolved.add_metric([venue, state], counts.get((venue, state), 0))
        yield unresolved

        late = CounterMetricFamily(
            "qfexbot_transfer_late_landings",
            "Transfers reconciled not applied that later landed (re-marked done, accounts held).",
            labels=["venue"],
        )
        holds = GaugeMetricFamily(
            "qfexbot_account_holds",
            "Account holds no operator has released yet (money movement paused on them).",
            labels=["venue"],
        )
        held = self._metrics.holds()
        for venue, run in rt.venues.items():
            if run.transfers is not None:
                late.add_metric([venue], run.transfers.late_landings)
            holds.add_metric([venue], held.get(venue, 0))
        yield late
        yield holds

    def _process(self, books: Mapping[str, AccountBook]) -> Iterator[Metric]:
        """Each account's last available balance, the kill switch and the recorder."""
        rt = self._runtime
        balance = GaugeMetricFamily(
            "qfexbot_account_available",
            "Available balance of the "
            "account's last balance event (for dashboards, not money "
            "logic).",
            labels=["venue", "account", "alias"],
        )
        for (venue, account), event in rt.accounts_view.balances.items():
            balance.add_metric(
                [venue, account, alias_of(books, venue, account)], float(event.available)
            )
        yield balance

        kill = GaugeMetricFamily(
            "qfexbot_kill_switch_engaged",
            "1 while the kill switch file exists (all money movement paused).",
        )
        kill.add_metric([], 1.0 if rt.app.runtime.kill_switch_file.exists() else 0.0)
        yield kill

        if rt.recorder is not None:
            records = CounterMetricFamily(
                "qfexbot_recorder_records", "Records written by the raw-frame recorder."
            )
            records.add_metric([], rt.recorder.records)
            yield records

    def describe(self) -> list[Any]:
        return []
