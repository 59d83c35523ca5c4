"""Cookbook: a timer. Every ``every`` seconds, log how many events of each kind arrived since
the last tick."""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

from qfexbot import BotContext, Event, Field, TimerEvent, hookimpl


class Heartbeat:
    config_schema: ClassVar[dict[str, Field]] = {
        "every": Field("duration", default=60.0, doc="seconds between lines")
    }

    def __init__(self, config) -> None:
        self.every = float(config["every"])
        self.counts: Counter[str] = Counter()
        self.ticks = 0

    @hookimpl
    def qfexbot_schedules(self, ctx: BotContext) -> list[tuple[str, float]]:
        return [("heartbeat", self.every)]

    @hookimpl
    def qfexbot_event(self, ctx: BotContext, event: Event) -> None:
        if isinstance(event, TimerEvent) and event.name == "heartbeat":
            self.ticks += 1
            summary = " ".join(f"{kind}={n}" for kind, n in sorted(self.counts.items()))
            ctx.log.info("heartbeat %d: %s", self.ticks, summary or "no events")
            self.counts.clear()
        else:
            self.counts[event.kind] += 1
