"""Shipped plugin: sends runtime alerts to a webhook, Slack, Discord or Telegram.

One plugin instance is one sink (``sink = "webhook" | "slack" | "discord" | "telegram"``); give a
bot several instances (``use = "notifier"``) for several sinks. It subscribes to ``AlertEvent``
only, keeps its own bounded queue (oldest dropped, counted) and sends from its own task, so a
failing or hanging receiver never holds up a bot: each request is bounded by ``timeout``, a
failed one is retried with capped, jittered exponential backoff (``backoff_delay``) on the next
``tick``\\ s, and given up after ``max_tries`` tries or ``give_up_after`` seconds (counted).

Alerts of the same kind and subject within ``dedup_window`` become one message with a count, and
at most ``rate_limit`` messages go out per ``rate_window``. The webhook URL and Telegram token
are secret references (``{env = "NAME"}`` / ``{file = "path"}``); log lines name the host only.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
import trio

from qfexbot import (
    AlertEvent,
    AlertKind,
    AlertSeverity,
    BotContext,
    Field,
    TimerEvent,
    backoff_delay,
    hookimpl,
)

SINKS = ("webhook", "slack", "discord", "telegram")
SEVERITIES = {s.name.lower(): s for s in AlertSeverity}
DISCORD_LIMIT = 2000  # characters in a Discord message's content
TELEGRAM_LIMIT = 4096  # characters in a Telegram message's text


class _HideTargets(logging.Filter):
    """Rewrites httpx's own request lines (full URL at INFO) to show the host only."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: dict[str, str] = {}  # secret URL -> what a log line may show

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if any(t in text for t in self.targets):
            for target, shown in self.targets.items():
                text = text.replace(target, shown)
            record.msg, record.args = text, None
        return True


_HIDE = _HideTargets()
logging.getLogger("httpx").addFilter(_HIDE)


@dataclass(slots=True)
class Pending:
    """One message waiting to be sent: the alert, how many alerts it stands for, its tries."""

    alert: AlertEvent
    count: int = 1
    tries: int = 0
    first_try: float | None = None
    next_try: float = 0.0


@dataclass(slots=True)
class Counters:
    """What the notifier did, for its logs and the daily summary."""

    sent: int = 0
    deduplicated: int = 0
    dropped: int = 0
    given_up: int = 0
    retries: int = 0


class Notifier:
    """Sends runtime alerts to one webhook, Slack, Discord or Telegram sink."""

    subscribes = (AlertEvent,)

    config_schema: ClassVar[dict[str, Field]] = {
        "sink": Field(("choice", SINKS), doc="where messages go"),
        "url": Field("secret", default=None, doc="webhook URL (webhook, slack, discord)"),
        "token": Field("secret", default=None, doc="Telegram bot token"),
        "chat_id": Field("str", default=None, doc="Telegram chat id"),
        "base_url": Field("str", default="https://api.telegram.org", doc="Telegram API base"),
        "kinds": Field("str_list", default=None, doc="alert kinds to send (default: all)"),
        "min_severity": Field(("choice", tuple(SEVERITIES)), default="info"),
        "dedup_window": Field("duration", default=300.0, doc="same kind+subject: one message"),
        "rate_limit": Field("positive_int", default=20, doc="messages per rate_window"),
        "rate_window": Field("duration", default=60.0),
        "queue_size": Field("positive_int", default=100, doc="messages kept; oldest dropped"),
        "timeout": Field("duration", default=10.0, doc="bound on one request"),
        "max_tries": Field("positive_int", default=5),
        "give_up_after": Field("duration", default=600.0, doc="stop retrying a message after"),
        "retry_initial": Field("duration", default=1.0),
        "retry_max": Field("duration", default=60.0),
        "tick": Field("duration", default=1.0, doc="how often retries and repeats are looked at"),
        "summary_every": Field("duration", default=86400.0, doc="daily summary; 0 = none"),
    }

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.sink: str = config["sink"]
        kinds = config["kinds"]
        unknown = sorted(set(kinds or ()) - set(AlertKind))
        if unknown:
            raise ValueError(
                f"unknown alert kinds {unknown}; known: {', '.join(k.value for k in AlertKind)}"
            )
        self.kinds = None if kinds is None else frozenset(AlertKind(k) for k in kinds)
        self.min_severity = SEVERITIES[config["min_severity"]]
        needs = ("token", "chat_id") if self.sink == "telegram" else ("url",)
        missing = [k for k in needs if config[k] is None]
        if missing:
            raise ValueError(f"sink {self.sink!r} needs {' and '.join(missing)}")
        self.config = config
        self.queue: deque[Pending] = deque()
        self.sent_at: deque[float] = deque()  # send times within rate_window
        # (kind, subject) -> (window end, alerts suppressed meanwhile)
        self.recent: dict[tuple[str, str], tuple[float, int]] = {}
        self.last_sent: dict[tuple[str, str], AlertEvent] = {}  # what a repeat count refers to
        self.counters = Counters()
        self.since_summary: dict[str, int] = {}
        self._target = ""  # the URL, with its secret: only ever handed to httpx
        self.host = ""  # what logs show
        self.client: httpx.AsyncClient | None = None
        self.failing = False  # the last try failed: new alerts wait for the tick

    # -- lifecycle ---------------------------------------------------------------------------

    @hookimpl
    async def qfexbot_startup(self, ctx: BotContext) -> None:
        """Resolve the secret, open the HTTP client."""
        config = self.config
        if self.sink == "telegram":
            token = config["token"].resolve().reveal()
            base = httpx.URL(config["base_url"])
            self._target = f"{str(base).rstrip('/')}/bot{token}/sendMessage"
        else:
            self._target = config["url"].resolve().reveal()
        self.host = httpx.URL(self._target).host or "?"
        shown = f"<{self.sink} at {self.host}>"
        # httpx logs the URL it normalised (host lower-cased, default port dropped, spaces
        # encoded), which need not be the configured string: hide both.
        _HIDE.targets[self._target] = _HIDE.targets[str(httpx.URL(self._target))] = shown
        self.client = httpx.AsyncClient(timeout=float(config["timeout"]), follow_redirects=False)
        ctx.log.info("notifier ready: sink=%s host=%s", self.sink, self.host)

    @hookimpl
    async def qfexbot_shutdown(self, ctx: BotContext) -> None:
        """Close the HTTP client; say what was left unsent."""
        if self.client is not None:
            await self.client.aclose()
        if self.queue:
            ctx.log.warning(
                "notifier stopped with %d message(s) unsent (sink=%s host=%s)",
                len(self.queue), self.sink, self.host,
            )  # fmt: skip

    @hookimpl
    def qfexbot_schedules(self, ctx: BotContext) -> list[tuple[str, float]]:
        """A tick for retries and repeat counts, and the summary timer."""
        timers = [("tick", float(self.config["tick"]))]
        if float(self.config["summary_every"]) > 0:
            timers.append(("summary", float(self.config["summary_every"])))
        return timers

    # -- events ------------------------------------------------------------------------------

    @hookimpl
    async def qfexbot_event(self, ctx: BotContext, event: object) -> None:
        """Queue an alert (or a summary), then send what is due."""
        match event:
            case AlertEvent():
                self.take(ctx, event)
                if self.failing:
                    return  # the receiver is failing: leave it to the tick, drain the inbox
            case TimerEvent(name="summary"):
                self.take(ctx, self.summary(ctx))
            case _:
                pass
        await self.flush(ctx)

    def wanted(self, alert: AlertEvent) -> bool:
        """Whether this sink sends ``alert`` (its kinds and minimum severity)."""
        if alert.severity < self.min_severity:
            return False
        return self.kinds is None or alert.alert in self.kinds

    def take(self, ctx: BotContext, alert: AlertEvent) -> None:
        """Queue ``alert``: merged into a queued or recently sent one of the same kind and
        subject, else appended (the oldest dropped when the queue is full)."""
        counters = self.counters
        kind = str(alert.alert)
        summary = alert.alert is AlertKind.DAILY_SUMMARY
        if not summary:  # the summary counts every alert of the process, sent here or not
            self.since_summary[kind] = self.since_summary.get(kind, 0) + 1
        if not self.wanted(alert):
            return
        key = (kind, alert.subject)
        for pending in () if summary else self.queue:  # summaries are never folded
            if (str(pending.alert.alert), pending.alert.subject) == key:
                pending.count += 1
                counters.deduplicated += 1
                return
        now = trio.current_time()
        recent = None if summary else self.recent.get(key)
        if recent is not None and now < recent[0]:
            self.recent[key] = (recent[0], recent[1] + 1)
            counters.deduplicated += 1
            return
        if len(self.queue) >= int(self.config["queue_size"]):
            lost = self.queue.popleft()
            counters.dropped += 1
            ctx.log.warning(
                "notifier queue full: oldest message dropped (alert=%s subject=%s sink=%s "
                "host=%s dropped=%d)", lost.alert.alert, lost.alert.subject, self.sink,
                self.host, counters.dropped,
            )  # fmt: skip
        self.queue.append(Pending(alert))

    def summary(self, ctx: BotContext) -> AlertEvent:
        """The periodic summary: alerts seen since the last one, and delivery counters."""
        seen = ", ".join(f"{n} {k}" for k, n in sorted(self.since_summary.items())) or "none"
        c = self.counters
        self.since_summary = {}
        return AlertEvent(
            venue=ctx.venue,
            account_id="",
            received_at=time.time(),
            alert=AlertKind.DAILY_SUMMARY,
            severity=AlertSeverity.INFO,
            summary=f"alerts in the last {float(self.config['summary_every']):g} s: {seen}",
            bot=ctx.bot,
            subject=f"summary/{ctx.bot}",
            details=(
                ("sent", str(c.sent)),
                ("deduplicated", str(c.deduplicated)),
                ("dropped", str(c.dropped)),
                ("given_up", str(c.given_up)),
            ),
        )

    # -- sending -----------------------------------------------------------------------------

    async def flush(self, ctx: BotContext) -> None:
        """Send queued messages that are due, within the rate limit; emit repeat counts."""
        now = trio.current_time()
        for key, (until, repeats) in list(self.recent.items()):
            if now >= until:
                del self.recent[key]
                last = self.last_sent.pop(key)
                if repeats:
                    self.queue.append(Pending(self._repeated(last, repeats), count=repeats))
        window = float(self.config["rate_window"])
        while self.sent_at and self.sent_at[0] <= now - window:
            self.sent_at.popleft()
        for pending in list(self.queue):
            if len(self.sent_at) >= int(self.config["rate_limit"]):
                return
            if pending.next_try > trio.current_time():
                continue
            if not await self.attempt(ctx, pending):
                return  # one failure per flush: a receiver that is down is not hammered

    def _repeated(self, last: AlertEvent, repeats: int) -> AlertEvent:
        """The follow-up of ``last``: how often it recurred within the de-duplication window."""
        return AlertEvent(
            venue=last.venue,
            account_id=last.account_id,
            received_at=time.time(),
            alert=last.alert,
            severity=last.severity,
            summary=f"{last.summary} (repeated {repeats} more time(s) in "
            f"{float(self.config['dedup_window']):g} s)",
            bot=last.bot,
            account=last.account,
            subject=last.subject,
            details=last.details,
        )

    async def attempt(self, ctx: BotContext, pending: Pending) -> bool:
        """One try at sending ``pending``: done (True), rescheduled with backoff, or given up."""
        assert self.client is not None
        config = self.config
        now = trio.current_time()
        if pending.first_try is None:
            pending.first_try = now
        else:
            self.counters.retries += 1
        pending.tries += 1
        problem = None
        try:
            with trio.fail_after(float(config["timeout"])):
                response = await self.client.post(self._target, json=self.payload(pending))
        except trio.TooSlowError:
            problem = f"no answer within {float(config['timeout']):g} s"
        except httpx.HTTPError as exc:  # the message may hold the URL: show the type only
            problem = type(exc).__name__
        else:
            if response.is_success:
                self.failing = False
                self._sent(pending)
                return True
            problem = f"HTTP {response.status_code}"
        self.failing = True
        elapsed = trio.current_time() - pending.first_try
        if pending.tries >= int(config["max_tries"]) or elapsed >= float(config["give_up_after"]):
            self.queue.remove(pending)
            self.counters.given_up += 1
            ctx.log.error(
                "notifier gave up on a message after %d tries in %.1f s (alert=%s subject=%s "
                "sink=%s host=%s last=%s given_up=%d)", pending.tries, elapsed,
                pending.alert.alert, pending.alert.subject, self.sink, self.host, problem,
                self.counters.given_up,
            )  # fmt: skip
            return False
        delay = backoff_delay(
            pending.tries - 1, float(config["retry_initial"]), float(config["retry_max"])
        )
        pending.next_try = trio.current_time() + delay
        ctx.log.warning(
            "notifier send failed, retrying in %.1f s (try %d of %d, alert=%s sink=%s host=%s: "
            "%s)", delay, pending.tries, int(config["max_tries"]), pending.alert.alert,
            self.sink, self.host, problem,
        )  # fmt: skip
        return False

    def _sent(self, pending: Pending) -> None:
        self.queue.remove(pending)
        self.counters.sent += 1
        now = trio.current_time()
        self.sent_at.append(now)
        key = (str(pending.alert.alert), pending.alert.subject)
        window = float(self.config["dedup_window"])
        if window > 0 and key not in self.recent and pending.alert.alert != AlertKind.DAILY_SUMMARY:
            self.recent[key] = (now + window, 0)
            self.last_sent[key] = pending.alert

    def payload(self, pending: Pending) -> dict[str, Any]:
        """The JSON body for this sink."""
        text = message_text(pending.alert, pending.count)
        if self.sink == "slack":
            return {"text": text}
        if self.sink == "discord":
            return {"content": text[:DISCORD_LIMIT], "allowed_mentions": {"parse": []}}
        if self.sink == "telegram":
            return {
                "chat_id": self.config["chat_id"],
                "text": text[:TELEGRAM_LIMIT],
                "disable_web_page_preview": True,
            }
        alert = pending.alert
        return {
            "alert": str(alert.alert),
            "severity": alert.severity.name.lower(),
            "summary": alert.summary,
            "bot": alert.bot,
            "venue": alert.venue,
            "account": alert.account,
            "subject": alert.subject,
            "details": dict(alert.details),
            "count": pending.count,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(alert.received_at)),
        }


def message_text(alert: AlertEvent, count: int = 1) -> str:
    """A chat message: severity, kind and summary, then where, then the details."""
    times = f" (x{count})" if count > 1 else ""
    where = " ".join(
        f"{k}={v}" for k, v in (("bot", alert.bot), ("venue", alert.venue),
                                ("account", alert.account)) if v
    )  # fmt: skip
    lines = [f"[{alert.severity.name}] {alert.alert}{times}: {alert.summary}"]
    if where:
        lines.append(where)
    lines.extend(f"{k}: {v}" for k, v in alert.details)
    return "\n".join(lines)
