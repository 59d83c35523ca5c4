"""The runtime-wide alert stream: emitters hand ``AlertEvent``\\ s to every plugin that asked.

Alerts are not tied to one account, so they do not travel on an account's ``Bus``. A plugin gets
them by listing ``AlertEvent`` in its ``subscribes`` (opt-in: a plugin without ``subscribes`` is
not handed alerts). ``emit`` is synchronous and never waits: the emitters are the kill switch
watcher, the transfer service's outcome callback and the dispatcher's circuit breaker, none of
which may be held up by a slow notifier. An alert meeting a full inbox is dropped for that plugin
only, counted in ``dropped`` and logged (the emitter logged the alert itself already).
"""

from __future__ import annotations

import logging
import time

from qfexbot.core.bus import Inbox
from qfexbot.core.logs import get_logger, log_event
from qfexbot.events import AlertEvent, AlertKind, AlertSeverity

__all__ = ["AlertHub", "make_alert"]

log = get_logger(__name__)


def make_alert(
    alert: AlertKind,
    severity: AlertSeverity,
    summary: str,
    *,
    venue: str = "",
    bot: str = "",
    account: str = "",
    subject: str = "",
    **details: object,
) -> AlertEvent:
    """An ``AlertEvent`` stamped now; ``details`` become ``(key, str(value))`` pairs."""
    return AlertEvent(
        venue=venue,
        account_id=account,
        received_at=time.time(),
        alert=alert,
        severity=severity,
        summary=summary,
        bot=bot,
        account=account,
        subject=subject,
        details=tuple((k, str(v)) for k, v in details.items()),
    )


class AlertHub:
    """Fans alerts out to the inboxes of subscribing plugins, without ever waiting.

    Counters: ``emitted`` (alerts emitted), ``dropped`` (deliveries lost to a full inbox).
    """

    __slots__ = ("_inboxes", "dropped", "emitted")

    def __init__(self) -> None:
        self._inboxes: list[Inbox] = []
        self.emitted = 0
        self.dropped = 0

    def __repr__(self) -> str:
        return f"AlertHub(subscribers={len(self._inboxes)}, emitted={self.emitted})"

    def subscribe(self, inbox: Inbox) -> None:
        """Hand alerts to ``inbox`` from now on (idempotent)."""
        if inbox not in self._inboxes:
            self._inboxes.append(inbox)

    def subscribe_if_wanted(self, plugin: object, inbox: Inbox) -> None:
        """Subscribe ``inbox`` if ``plugin``'s ``subscribes`` lists ``AlertEvent`` (opt-in)."""
        wanted = getattr(plugin, "subscribes", None) or ()
        if isinstance(wanted, type):
            wanted = (wanted,)
        if any(issubclass(AlertEvent, t) for t in wanted) and not inbox.closed:
            self.subscribe(inbox)

    def emit(self, alert: AlertEvent) -> None:
        """Offer ``alert`` to every open subscribed inbox; a full one misses it (counted)."""
        self.emitted += 1
        for inbox in self._inboxes:
            if inbox.closed:
                continue
            if not inbox.offer(alert):
                self.dropped += 1
                log_event(
                    log,
                    logging.WARNING,
                    "alert not delivered: the plugin's inbox is full (is the notifier stuck?)",
                    inbox=inbox.name,
                    alert=str(alert.alert),
                    subject=alert.subject,
                )
