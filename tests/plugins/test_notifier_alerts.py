"""The alert stream the notifier consumes: opt-in, and it never waits for a full inbox."""

from __future__ import annotations

import logging

from qfexbot import AlertEvent, AlertKind, AlertSeverity, BalanceEvent
from qfexbot.core.alerts import AlertHub, make_alert
from qfexbot.core.bus import Inbox


class WantsAlerts:
    subscribes = (BalanceEvent, AlertEvent)


class WantsBalances:
    subscribes = BalanceEvent


class WantsEverything:
    """No ``subscribes``: every bus event, but alerts are opt-in."""


def alert(n: int) -> AlertEvent:
    return make_alert(AlertKind.TRANSFER_FAILED, AlertSeverity.WARNING, f"f{n}", subject=str(n))


def test_only_plugins_that_list_alert_event_get_alerts():
    hub = AlertHub()
    inboxes = {
        cls: Inbox(cls.__name__, 10) for cls in (WantsAlerts, WantsBalances, WantsEverything)
    }
    for cls, inbox in inboxes.items():
        hub.subscribe_if_wanted(cls(), inbox)
    hub.emit(alert(1))
    assert [inbox.depth for inbox in inboxes.values()] == [1, 0, 0]
    assert inboxes[WantsAlerts].pop().summary == "f1"


def test_a_full_inbox_misses_the_alert_without_the_emitter_waiting(caplog):
    caplog.set_level(logging.WARNING)
    hub = AlertHub()
    full, closed, fine = Inbox("bot/full", 2), Inbox("bot/closed", 2), Inbox("bot/fine", 10)
    for inbox in (full, closed, fine):
        hub.subscribe(inbox)
    closed.close()
    for n in range(3):
        hub.emit(alert(n))  # synchronous: there is nothing to wait on
    assert (hub.emitted, hub.dropped) == (3, 1)
    assert [full.pop().subject for _ in range(2)] == ["0", "1"]  # the newest was not taken
    assert fine.depth == 3
    assert closed.depth == 0
    [line] = [r for r in caplog.records if r.name == "qfexbot.core.alerts"]
    assert line.getMessage().startswith("alert not delivered: the plugin's inbox is full")
    assert line.fields == {"inbox": "bot/full", "alert": "transfer_failed", "subject": "2"}
