"""The hot paths of a running venue, composed in one place: a frame's way from the venue to the
plugins, and a transfer's way from a plugin to the venue and back.

Every wrapper an ops view puts on a hot path (status observer, recorder tap, metrics timer and
counter) is applied here and nowhere else, so the order in which they run is read off
:func:`wire_venue`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

import trio

from qfexbot.config import AppConfig
from qfexbot.core.bus import Bus
from qfexbot.core.venue import MarketDataFeed, Publish, TransferVenue
from qfexbot.events import AlertEvent, TransferOutcomeEvent
from qfexbot.money.journal import Journal
from qfexbot.money.transfers import TransferService
from qfexbot.ops.metrics import RuntimeMetrics
from qfexbot.ops.recorder import Recorder
from qfexbot.ops.status import AccountsView
from qfexbot.runtime.venues import VenueRun, balance_reader, transfer_sender

__all__ = ["Subscriber", "Taps", "wire_venue"]


class Subscriber(Protocol):
    """A bot's plugin host, as far as wiring goes: it listens to buses."""

    def subscribe(self, bus: Bus) -> None:
        """Deliver every event published on ``bus`` to the bot's plugins."""


@dataclass(frozen=True)
class Taps:
    """The ops observers on the hot paths: the status view, metrics, and the recorder (None
    when not recording)."""

    status: AccountsView
    metrics: RuntimeMetrics
    recorder: Recorder | None

    def observed(self, channel: str, publish: Publish) -> Publish:
        """A session's publish, seen by the status view and (if recording) the recorder."""
        publish = self.status.observe(publish)
        return self.recorder.observe(channel, publish) if self.recorder is not None else publish

    def tap(self, session: Any, venue: str, account: str, channel: str) -> None:
        """Record the frames and snapshots ``session`` reads (if recording)."""
        if self.recorder is not None:
            self.recorder.tap(session, venue, account, channel)


async def wire_venue(
    run: VenueRun,
    taps: Taps,
    *,
    app: AppConfig,
    hosts: Mapping[str, Subscriber],
    journal: Journal,
    on_outcome: Callable[[TransferOutcomeEvent], None],
    money_locks: dict[str, trio.Lock],
    on_alert: Callable[[AlertEvent], None] | None = None,
) -> MarketDataFeed | None:
    """Build one venue's sessions, public feed and transfer service (nothing runs yet).

    The buses of ``run`` must exist (one per account in use, plugins subscribed). Returns the
    venue's public feed, if a bot of it wants market data.
    """
    name = run.config.name
    # Frame path, per account: venue socket -> [recorder: raw frames, REST snapshots] ->
    # venue driver parse -> [recorder: state events] -> [status view: balances, last event]
    # -> the account's bus -> each subscribed plugin's inbox.
    for account_id, channels in run.channels.items():
        publish = taps.observed("trade", run.buses[account_id].publish)
        session = run.venue.private_session(account_id, channels=sorted(channels), publish=publish)
        taps.tap(session, name, account_id, "trade")
        run.sessions[account_id] = session
    # Frame path, public feed: one shared connection -> [recorder] -> parse -> fan-out by
    # (channel, symbol) -> one bus per bot; state events reach every subscriber, so the status
    # view and recorder see them through the first bot's publish only.
    wanted = [
        (bot_name, bot)
        for bot_name, bot in app.bots.items()
        if bot.venue == name and bot.market_data.channels and bot.market_data.symbols
    ]
    feed: MarketDataFeed | None = None
    if wanted:
        feed = run.venue.market_data()
        taps.tap(feed.supervisor, name, "", "mds")
        for index, (bot_name, bot) in enumerate(wanted):
            bus = Bus("", venue=name)
            hosts[bot_name].subscribe(bus)
            publish = taps.observed("mds", bus.publish) if index == 0 else bus.publish
            # Candles are subscribed per (symbol, interval): "AAPL-USD/1MIN" on channel candle.
            for channel, names in bot.market_data.pairs().items():
                await feed.subscribe([channel], names, publish)
    # Transfer path: ctx.transfer -> RuntimeActions.transfer -> TransferService (policy, journal
    # intent, account locks) -> [metrics: request latency] -> venue.transfer (its failure
    # classified by the venue) -> outcome journaled -> [metrics: outcome count] ->
    # RuntimeActions.on_transfer_outcome -> both accounts' buses.
    if run.adapter.transfer_refusal is None:
        venue = cast(TransferVenue, run.venue)
        config = run.config
        # A venue that finds its own requests by journal entry id (Finery settlements) is
        # reconciled from its state, not balances; its sender takes the id (no latency metric).
        find_sent = getattr(venue, "find_sent", None)
        sender = transfer_sender(venue)
        run.transfers = TransferService(
            journal,
            sender if find_sent is not None else taps.metrics.timed_sender(name, sender),
            balance_reader(venue),
            venue=name,
            limits={b.name: b.limits for b in app.bots.values() if b.venue == name},
            accounts=config.accounts,
            kill_switch=app.runtime.kill_switch_file,
            on_outcome=taps.metrics.outcome_observer(on_outcome),
            on_alert=on_alert,
            settle_seconds=config.session.settle_seconds,
            user_id=config.owner,
            locks=money_locks,
            find_sent=find_sent,
        )
    return feed
