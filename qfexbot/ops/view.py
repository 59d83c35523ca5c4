"""What the ops code reads from a running process: the view protocol a runtime satisfies.

Status, metrics and the ops endpoint take a :class:`RuntimeView`, never the concrete
``qfexbot.runtime.Runtime``: the runtime builds the ops observers, so ops importing it back
would be a cycle, and a test can report on a stand-in. Every member is read-only here except
``JournalView.resolve`` (the dashboard's operator verdict) and ``DispatcherView.reenable`` (its
plugin re-enable); the runtime satisfies the protocol
structurally, by having these attributes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections import deque

    from qfexbot.config import AppConfig
    from qfexbot.core.session import SessionStats
    from qfexbot.events import BalanceEvent, ConnectionState, PositionEvent
    from qfexbot.money.journal import Entry, Hold

__all__ = [
    "AccountsSeen",
    "DispatcherView",
    "EquityHistoryView",
    "JournalView",
    "MarketDataView",
    "MetricsView",
    "PluginHostView",
    "RecorderView",
    "RuntimeView",
    "SessionView",
    "TransfersView",
    "VenueRunView",
]


class SessionView(Protocol):
    """One supervised connection: its state and live counters."""

    @property
    def state(self) -> ConnectionState: ...

    @property
    def stats(self) -> SessionStats: ...


class MarketDataView(Protocol):
    """A venue's public market-data connection."""

    @property
    def supervisor(self) -> SessionView: ...


class TransfersView(Protocol):
    """A venue's transfer service, as far as ops counts it."""

    @property
    def late_landings(self) -> int: ...


class EquityHistoryView(Protocol):
    """A venue's REST reads, as far as the dashboard's equity chart uses them."""

    async def account_equity(self, account_id: str, duration: str) -> Sequence[tuple[Any, Any]]: ...


class VenueRunView(Protocol):
    """One venue while it runs: a private session per account id, its transfers (None on a
    venue without transfers) and its REST reads (``venue``)."""

    @property
    def sessions(self) -> Mapping[str, SessionView]: ...

    @property
    def transfers(self) -> TransfersView | None: ...

    @property
    def venue(self) -> EquityHistoryView: ...


class PluginHostView(Protocol):
    """One bot's plugins: plugin name -> its counters (``PluginHost.stats()``)."""

    def stats(self) -> Mapping[str, Mapping[str, Any]]: ...


class DispatcherView(Protocol):
    """One bot's dispatcher, as the dashboard drives it: re-enable a disabled plugin
    (``qfexbot.core.dispatch.Dispatcher.reenable``)."""

    async def reenable(self, plugin: str, *, by: str, reason: str = "") -> Mapping[str, Any]: ...


class AccountsSeen(Protocol):
    """The latest balance event, last event time, time of the last connection state change,
    equity history and positions per (venue, account id)."""

    @property
    def balances(self) -> Mapping[tuple[str, str], BalanceEvent]: ...

    @property
    def last_event_at(self) -> Mapping[tuple[str, str], float]: ...

    @property
    def positions(self) -> Mapping[tuple[str, str, str], PositionEvent]: ...

    @property
    def state_since(self) -> Mapping[tuple[str, str], float]: ...

    @property
    def history(self) -> Mapping[tuple[str, str], deque[tuple[float, str, str]]]: ...


class JournalView(Protocol):
    """The journal as ops reads it (transfers in doubt, holds, the newest entries) and the
    one write the dashboard makes: an operator's verdict on a transfer in doubt."""

    async def unresolved(self) -> Sequence[Entry]: ...

    async def active_holds(self) -> Sequence[Hold]: ...

    async def get(self, entry_id: str) -> Entry | None: ...

    async def resolve(self, entry_id: str, applied: bool, by: str, detail: str = "") -> Entry: ...

    async def list(
        self, state: str | None = None, limit: int = 100, kind: str | None = None
    ) -> Sequence[Entry]: ...


class RecorderView(Protocol):
    """The raw-frame recorder: files written and records so far."""

    @property
    def files(self) -> Sequence[Path]: ...

    @property
    def records(self) -> int: ...


class MetricsView(Protocol):
    """The process's metrics registry, scraped by ``/metrics``."""

    async def refresh(self) -> None: ...

    def exposition(self) -> bytes: ...


class RuntimeView(Protocol):
    """Everything ops reads from a running process.

    ``app`` gives the config (venues' accounts, bots, dry run, the kill switch file); the rest
    is live state, filled in while the process starts (``journal`` is None until it is open).
    """

    @property
    def app(self) -> AppConfig: ...

    @property
    def started_at(self) -> float | None: ...

    @property
    def venues(self) -> Mapping[str, VenueRunView]: ...

    @property
    def market_data(self) -> Mapping[str, MarketDataView]: ...

    @property
    def hosts(self) -> Mapping[str, PluginHostView]: ...

    @property
    def dispatchers(self) -> Mapping[str, DispatcherView]: ...

    @property
    def accounts_view(self) -> AccountsSeen: ...

    @property
    def journal(self) -> JournalView | None: ...

    @property
    def recorder(self) -> RecorderView | None: ...

    @property
    def metrics(self) -> MetricsView: ...
