"""Settler: pays down what a desk owes its counterparties on a venue with bilateral positions.

Balance management on Finery: trades leave net positions per counterparty, and value moves
only by settlement. When the desk's net USD position against a counterparty is below
``-max_owed`` (the desk owes more than that), the settler settles the debt with
``ctx.transfer(desk, counterparty, amount)`` (on Finery an outgoing settlement transaction,
under the bot's ``[limits]`` and the journal's exactly-once discipline).

Never twice for one debt. A counterparty is left alone while any outgoing settlement
transaction to it is open (seen on the settlement feed, ``SettlementEvent``, until committed or
removed) and from the moment a settlement is sent until the feed shows it; a settlement whose
outcome is unknown keeps it blocked until the journal's reconciliation says it failed. The debt
is read afresh from the venue (``ctx.positions``) before every settlement, and only while the
desk's session is LIVE: its resync publishes the open settlement transactions before LIVE, so a
restart or reconnect re-learns them before the next look.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import ClassVar

from qfexbot import (
    ActionError,
    BotContext,
    ConnectionState,
    ConnectionStateEvent,
    Event,
    Field,
    SettlementEvent,
    TimerEvent,
    TransferOutcomeEvent,
    hookimpl,
)

__all__ = ["Settler", "debt_to_settle"]

CENT = Decimal("0.01")
_OPEN = frozenset({"snapshot", "added", "modified"})


def debt_to_settle(
    by_counterparty: tuple[tuple[str, Decimal], ...], counterparty: str, max_owed: Decimal
) -> Decimal:
    """What to settle with ``counterparty`` now: the whole debt (cents, rounded down) once it
    exceeds ``max_owed``, else 0. A positive position (owed to the desk) is never settled."""
    position = sum((size for cp, size in by_counterparty if cp == counterparty), Decimal(0))
    debt = -position
    if debt <= max_owed:
        return Decimal(0)
    return debt.quantize(CENT, rounding=ROUND_DOWN)


class Settler:
    """Settles the desk's USD debts to its counterparties (see the module doc)."""

    config_schema: ClassVar[dict[str, Field]] = {
        "desk": Field("account", doc="the paying account (the API key's own client)",
                      moves_money="own"),
        "counterparties": Field("accounts", doc="counterparties whose debts it settles",
                                moves_money="shared"),
        "max_owed": Field("non_negative_number", default=Decimal(0),
                          doc="settle once the debt to one counterparty exceeds this (USD)"),
        "interval": Field("duration", default=10.0, doc="time between two looks"),
    }  # fmt: skip

    def __init__(self, config) -> None:
        self.config = config
        self.open: dict[str, set[str]] = {}
        """counterparty id -> ids of open outgoing settlement transactions to it."""
        self.awaiting: dict[str, str] = {}
        """counterparty id -> journal entry of a settlement sent but not yet seen on the feed."""
        self.live = False
        """The desk's session is LIVE: its resync (open settlements included) is in."""
        self.settled = 0

    @hookimpl
    def qfexbot_schedules(self, ctx: BotContext) -> list[tuple[str, float]]:
        """One look every ``interval``."""
        return [("settle", float(self.config["interval"]))]

    @hookimpl
    async def qfexbot_event(self, ctx: BotContext, event: Event) -> None:
        """Track open settlements and the desk's session; settle on the timer."""
        desk = ctx.account_id(self.config["desk"])
        match event:
            case SettlementEvent(record="transaction", direction="outgoing") if (
                event.account_id == desk
            ):
                ids = self.open.setdefault(event.counterparty, set())
                if event.action in _OPEN and not event.committed:
                    ids.add(event.settlement_id)
                    if event.action != "snapshot":
                        self.awaiting.pop(event.counterparty, None)
                else:
                    ids.discard(event.settlement_id)
            case TransferOutcomeEvent(state="failed") if event.account_id == desk:
                for cp, entry in list(self.awaiting.items()):
                    if entry == event.entry_id:
                        del self.awaiting[cp]
            case ConnectionStateEvent() if event.account_id == desk:
                if event.state is ConnectionState.CONNECTING:
                    # commits missed while away: the resync publishes what is open now
                    self.open.clear()
                self.live = event.state is ConnectionState.LIVE
            case TimerEvent(name="settle") if self.live:
                await self._look(ctx, desk)

    async def _look(self, ctx: BotContext, desk: str) -> None:
        counterparties = [ctx.account_id(a) for a in self.config["counterparties"]]
        idle = [cp for cp in counterparties if not self.open.get(cp) and cp not in self.awaiting]
        if not idle:
            return
        try:
            snapshot = await ctx.positions(self.config["desk"])
        except ActionError as exc:  # not readable now: look again next time
            ctx.log.warning("settler: positions not readable, no settlement now: %s", exc)
            return
        usd = next((p for p in snapshot.positions if p.symbol == "USD"), None)
        if usd is None:
            return
        for cp in idle:
            amount = debt_to_settle(usd.by_counterparty, cp, Decimal(self.config["max_owed"]))
            if amount <= 0:
                continue
            result = await ctx.transfer(self.config["desk"], ctx.alias_of(cp), amount, "debt")
            ctx.log.info("settlement counterparty=%s amount=%s state=%s entry=%s",
                         ctx.alias_of(cp), amount, result.state, result.entry_id)  # fmt: skip
            if result.state in ("done", "unknown", "sent"):
                self.awaiting[cp] = result.entry_id
                self.settled += 1
