"""Rebalancer: keeps each managed subaccount's available balance inside its band, via a treasury.

Two parts. ``decide()`` is a pure function, so the decision can be reasoned about and
property-tested apart from events and I/O. ``Rebalancer`` is the plugin around it: it tracks
balances from events, calls ``decide()`` on a timer, executes the proposals through
``ctx.transfer`` (policy and journal apply) and then waits for the venue's balance events to show
each transfer before it looks at those accounts again. See docs/rebalancer.md.

Rules of ``decide()``:

* Hysteresis: an account is touched only when it is *outside* its band ``[min, max]``, and then
  restored to ``target`` (below min -> top up from the treasury; above max -> sweep into the
  treasury). Once inside, it gets no proposal, so the rebalancer cannot flap.
* Limits: no proposal exceeds ``max_transfer`` (a larger need becomes a partial move, continued
  in later rounds); the proposals of one round together stay within what is left of ``max_daily``
  and never take a source below ``min_remaining``; pairs not in ``allowed_pairs`` are skipped.
* Busy accounts are skipped: pass every account with a transfer in flight, an unresolved journal
  entry, a transfer whose balance event has not arrived yet, or a pair inside ``min_interval``.
  If the treasury itself is busy, nothing is proposed.
* Top-ups are served first, largest deficit first (an underfunded desk risks liquidation), then
  sweeps. Sweeps do not fund top-ups of the same round: that money has not moved yet.
* Amounts are rounded *down* to ``step`` (cents by default), so rounding never breaks a limit.

Convergence needs a consistent configuration: ``min_remaining`` at most each band's target, and
bands at least ``step`` wide where balances are not multiples of ``step``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any, ClassVar

import trio

from qfexbot import (
    AlertKind,
    AlertSeverity,
    BalanceEvent,
    BotContext,
    ConnectionState,
    ConnectionStateEvent,
    Event,
    Field,
    ResyncEvent,
    TimerEvent,
    TransferOutcomeEvent,
    hookimpl,
)

__all__ = ["Band", "ProposedTransfer", "Rebalancer", "decide", "parse_band_override"]


@dataclass(frozen=True, slots=True)
class Band:
    """The allowed range of one account's available balance and the level to restore it to."""

    min: Decimal
    target: Decimal
    max: Decimal

    def __post_init__(self) -> None:
        if not (Decimal(0) <= self.min <= self.target <= self.max):
            raise ValueError(
                f"band needs 0 <= min <= target <= max, got min={self.min} target={self.target} "
                f"max={self.max}"
            )

    def contains(self, balance: Decimal) -> bool:
        """True if ``balance`` is inside the band (bounds included)."""
        return self.min <= balance <= self.max


@dataclass(frozen=True, slots=True)
class ProposedTransfer:
    """One transfer the rebalancer wants: ``amount`` from ``src`` to ``dst``, with a reason."""

    src: str
    dst: str
    amount: Decimal
    reason: str


def _limit(limits: Any, name: str) -> Decimal | None:
    value = getattr(limits, name, None)
    if value is None:
        return None
    return Decimal(str(value)) if isinstance(value, float) else Decimal(value)


def _allowed_pairs(
    pairs: Iterable[Iterable[str]] | None, accounts: Mapping[str, str]
) -> set[frozenset[str]] | None:
    if pairs is None:
        return None
    return {frozenset(accounts.get(name, name) for name in pair) for pair in pairs}


def _out_of_band(
    balances: Mapping[str, Decimal],
    treasury: str,
    managed: Mapping[str, Band],
    busy: Collection[str],
    pairs: set[frozenset[str]] | None,
) -> tuple[list[tuple[Decimal, str, Decimal, Band]], list[tuple[str, Decimal, Band]]]:
    """The managed accounts ``decide()`` may touch that are outside their band: top-ups as
    (deficit, account, balance, band), largest deficit first, and sweeps as (account, balance,
    band)."""
    top_ups: list[tuple[Decimal, str, Decimal, Band]] = []
    sweeps: list[tuple[str, Decimal, Band]] = []
    for account in sorted(managed):
        band = managed[account]
        if account == treasury or account in busy or account not in balances:
            continue
        if pairs is not None and frozenset((account, treasury)) not in pairs:
            continue
        balance = Decimal(balances[account])
        if balance < band.min:
            top_ups.append((band.target - balance, account, balance, band))
        elif balance > band.max:
            sweeps.append((account, balance, band))
    top_ups.sort(key=lambda item: (-item[0], item[1]))
    return top_ups, sweeps


def decide(
    balances: Mapping[str, Decimal],
    treasury: str,
    managed: Mapping[str, Band],
    limits: Any,
    *,
    busy: Collection[str] = (),
    spent_24h: Decimal = Decimal(0),
    accounts: Mapping[str, str] | None = None,
    step: Decimal = Decimal("0.01"),
) -> list[ProposedTransfer]:
    """The transfers that bring out-of-band accounts back to target, within every limit.

    Args:
      balances: account -> known available balance (accounts missing here are skipped).
      treasury: the account that funds top-ups and receives sweeps.
      managed: account -> its ``Band``.
      limits: object with ``max_transfer``, ``max_daily``, ``allowed_pairs``, ``min_remaining``
        (``None`` = not enforced; see ``qfexbot.money.policy``).
      busy: accounts to leave alone this round (see the module docstring).
      spent_24h: what the bot's transfers may already have moved in the rolling 24 h.
      accounts: alias -> id, to resolve aliases in ``allowed_pairs``.
      step: smallest amount unit; amounts are rounded down to it.

    Returns:
      At most one proposal per managed account, top-ups first.
    """
    if treasury in busy or treasury not in balances:
        return []
    cap = _limit(limits, "max_transfer")
    max_daily = _limit(limits, "max_daily")
    budget = None if max_daily is None else max_daily - Decimal(spent_24h)
    keep = _limit(limits, "min_remaining") or Decimal(0)
    pairs = _allowed_pairs(getattr(limits, "allowed_pairs", None), accounts or {})
    treasury_spendable = Decimal(balances[treasury]) - keep
    top_ups, sweeps = _out_of_band(balances, treasury, managed, busy, pairs)
    proposals: list[ProposedTransfer] = []

    def bounded(want: Decimal, source_left: Decimal) -> tuple[Decimal, list[str]]:
        bounds = [(want, ""), (source_left, "source balance less min_remaining")]
        if cap is not None:
            bounds.append((cap, f"max_transfer {cap}"))
        if budget is not None:
            bounds.append((budget, "remaining daily budget"))
        amount = min(b for b, _ in bounds)
        why = [label for b, label in bounds if label and b == amount and b < want]
        return amount.quantize(step, rounding=ROUND_DOWN), why

    for deficit, account, balance, band in top_ups:
        amount, why = bounded(deficit, treasury_spendable)
        if amount <= 0:
            continue
        treasury_spendable -= amount
        if budget is not None:
            budget -= amount
        note = f" (partial: capped by {', '.join(why)})" if why else ""
        proposals.append(
            ProposedTransfer(
                treasury,
                account,
                amount,
                f"top-up: {account} has {_shown(balance)}, below band min {band.min}; "
                f"restoring toward target {band.target}{note}",
            )
        )
    for account, balance, band in sweeps:
        amount, why = bounded(balance - band.target, balance - keep)
        if amount <= 0:
            continue
        if budget is not None:
            budget -= amount
        note = f" (partial: capped by {', '.join(why)})" if why else ""
        proposals.append(
            ProposedTransfer(
                account,
                treasury,
                amount,
                f"sweep: {account} has {_shown(balance)}, above band max {band.max}; "
                f"restoring toward target {band.target}{note}",
            )
        )
    return proposals


def _shown(amount: Decimal) -> str:
    """An amount as a message shows it: to the cent, without trailing zeros (the transfer
    itself and the events keep the exact value)."""
    return format(amount.quantize(Decimal("0.01")).normalize(), "f")


# ---------------------------------------------------------------------------------------------
# The plugin
# ---------------------------------------------------------------------------------------------

EQUITY_WINDOWS = ("1d", "1w", "1m", "3m", "ytd", "all")
"""The ``duration`` values of QFEX's ``GET /user/account-equity``."""

_GLOBAL = "*"  # key of a hold that stops every transfer (kill switch, daily budget, no limits)
_GLOBAL_REFUSALS = frozenset({"paused", "max_daily", "no_limits"})
# The journal blocks both accounts (treasury included): a transfer in doubt, or an account hold
# (late landing, unexplained deposits) that only an operator lifts.
_BOTH_REFUSALS = frozenset({"unresolved", "account_held"})
_BAND_RE = re.compile(r"\s*([^:\s]+)\s*:(.*)")


def parse_band_override(text: str, default: Band) -> tuple[str, Band]:
    """Parse one ``bands`` entry, ``"desk-b: min=2000 target=5000 max=10000"``.

    Keys left out inherit from ``default``. Returns (alias, band).

    Raises:
      ValueError: with a message naming the entry and what is wrong.
    """
    match = _BAND_RE.fullmatch(text)
    if match is None:
        raise ValueError(f'{text!r}: expected "alias: min=N target=N max=N"')
    alias, rest = match.group(1), match.group(2)
    values = {"min": default.min, "target": default.target, "max": default.max}
    seen: set[str] = set()
    for item in rest.split():
        key, sep, raw = item.partition("=")
        if not sep or key not in values or key in seen:
            raise ValueError(f"{text!r}: {item!r} is not one of min=N, target=N, max=N (once each)")
        try:
            number = Decimal(raw)
        except InvalidOperation:
            raise ValueError(f"{text!r}: {key} must be a number, got {raw!r}") from None
        if not number.is_finite():
            raise ValueError(f"{text!r}: {key} must be a finite number, got {raw!r}")
        values[key] = number
        seen.add(key)
    if not seen:
        raise ValueError(f"{text!r}: give at least one of min=N, target=N, max=N")
    try:
        return alias, Band(values["min"], values["target"], values["max"])
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class _Limits:
    """What the plugin knows of the bot's limits, for ``decide()`` (the rest is None there)."""

    max_transfer: Decimal | None
    min_remaining: Decimal | None


@dataclass(slots=True)
class _Pending:
    """A done transfer's effect on one account that no balance event has shown yet."""

    before: Decimal | None  # the balance the decision was based on (None: not known)
    delta: Decimal  # expected net change of the available balance
    done_at: float  # wall clock (like ``event.received_at``) when the transfer completed
    deadline: float  # trio clock: after this the balance is read afresh with ctx.positions
    deposit_before: Decimal | None = None  # last deposit seen (a transfer moves it by delta)


def _shows(pending: _Pending, event: BalanceEvent) -> bool:
    """Whether a balance event reflects the pending transfer(s).

    Trading never moves ``deposit`` and a transfer moves it by exactly its amount, so when the
    deposit is known that is the test: an event produced before the transfer (but delivered
    after its HTTP response) cannot pass it. Without a deposit, any change of the available
    balance counts, as before.
    """
    if pending.delta == 0:
        return True
    if pending.deposit_before is not None and event.deposit != 0:
        return abs(event.deposit - pending.deposit_before - pending.delta) <= Decimal("0.000001")
    return pending.before is None or event.available != pending.before


@dataclass(frozen=True, slots=True)
class _Hold:
    """Leave an account (or everything, key ``*``) alone until ``until`` (trio clock)."""

    until: float
    why: str
    entry: str = ""  # journal entry whose resolution lifts the hold early (unknown outcomes)
    # Deposits seen just before that transfer was sent, so a later "done" from reconciliation
    # is measured from them, not from balances that may already show it.
    deposits_before: tuple[tuple[str, Decimal | None], ...] = ()


class Rebalancer:
    """Keeps the managed accounts' available balances inside their bands via a treasury.

    One instance per ``[bots.X.plugins.rebalancer]`` table. Every ``interval`` it decides with
    ``decide()`` on the latest known balances and executes the proposals one by one through
    ``ctx.transfer``. An account touched by a done transfer is left alone until a balance event
    received after the transfer shows it (or ``settle_timeout`` passes: then its balance is read
    afresh). Refusals, failures and dry runs hold the account for ``retry_after``; an unknown
    outcome holds both accounts until the journal resolves the entry (or ``retry_after`` passes;
    the journal keeps refusing while it is unresolved). See docs/rebalancer.md.
    """

    config_schema: ClassVar[dict[str, Field]] = {
        "treasury": Field(
            "account",
            default="treasury",
            doc="account that funds top-ups and receives sweeps",
            moves_money="shared",
        ),
        "accounts": Field(
            "accounts",
            default=None,
            doc="accounts to manage (default: the bot's accounts but the treasury)",
            moves_money="own",
        ),
        "min": Field("non_negative_number", doc="default band: top up below this"),
        "target": Field("non_negative_number", doc="default band: restore to this"),
        "max": Field("non_negative_number", doc="default band: sweep above this"),
        "bands": Field(
            "str_list",
            default=[],
            doc='per-account bands: "alias: min=N target=N max=N" (omitted keys '
            "inherit the default band)",
        ),
        "interval": Field("duration", default=10.0, doc="time between two decisions"),
        "settle_timeout": Field(
            "duration",
            default=60.0,
            doc="wait this long for a balance event showing a transfer, "
            "then read the balance afresh",
        ),
        "retry_after": Field(
            "duration",
            default=60.0,
            doc="after a refusal, failure, dry run or unknown outcome, leave "
            "the account alone this long",
        ),
        "max_transfer": Field(
            "positive_number",
            default=None,
            doc="largest single transfer (set it to at most the bot's "
            "limits.max_transfer so big moves are split, not refused)",
        ),
        "min_remaining": Field(
            "non_negative_number",
            default=None,
            doc="the bot's limits.min_remaining, so sweeps and top-ups that "
            "the policy would refuse are not proposed",
        ),
        "treasury_reserve": Field(
            "non_negative_number", default=0, doc="top-ups never take the treasury below this"
        ),
        "drawdown_pct": Field(
            "positive_number",
            default=None,
            doc="equity this many percent below its peak: no more top-ups",
        ),
        "drawdown_window": Field(
            ("choice", EQUITY_WINDOWS), default="1d", doc="equity history the peak is taken over"
        ),
        "drawdown_check": Field(
            "duration", default=300.0, doc="time between two equity drawdown checks"
        ),
    }
    subscribes = (BalanceEvent, ResyncEvent, ConnectionStateEvent, TransferOutcomeEvent)

    def __init__(self, config: Mapping[str, Any]) -> None:
        for key in ("interval", "drawdown_check"):
            if config[key] <= 0:
                raise ValueError(f"{key} must be a duration > 0, got {config[key]}")
        self.interval = float(config["interval"])
        self.settle_timeout = float(config["settle_timeout"])
        self.retry_after = float(config["retry_after"])
        self.default_band = Band(config["min"], config["target"], config["max"])
        self.overrides: dict[str, Band] = {}
        for text in config["bands"]:
            alias, band = parse_band_override(text, self.default_band)
            if alias in self.overrides:
                raise ValueError(f"bands: {alias!r} is given twice")
            self.overrides[alias] = band
        self.limits = _Limits(config["max_transfer"], config["min_remaining"])
        self.treasury_reserve: Decimal = config["treasury_reserve"]
        self.drawdown_pct: Decimal | None = config["drawdown_pct"]
        self.drawdown_window: str = config["drawdown_window"]
        self.drawdown_check = float(config["drawdown_check"])
        self._treasury_alias: str = config["treasury"]
        self._accounts_option: tuple[str, ...] | None = config["accounts"]
        # Set up at startup (account ids need the context).
        self.treasury = ""
        self.bands: dict[str, Band] = {}  # account id -> band
        self.polled: set[str] = set()  # accounts without a bus: balances read with positions()
        # Run-time state, keyed by account id.
        self.balances: dict[str, Decimal] = {}
        self.deposits: dict[str, Decimal] = {}
        self.pending: dict[str, _Pending] = {}
        self.holds: dict[str, _Hold] = {}
        self.drawdown: dict[str, Decimal] = {}
        self._said: dict[str, str] = {}

    # -- hooks ------------------------------------------------------------------------------

    @hookimpl
    def qfexbot_startup(self, ctx: BotContext) -> None:
        """Resolve the accounts and bands; a configuration that cannot work stops the plugin."""
        self.treasury = ctx.account_id(self._treasury_alias)
        if self._accounts_option is None:
            managed = [alias for alias, aid in ctx.accounts.items() if aid != self.treasury]
        else:
            managed = list(self._accounts_option)
        if not managed:
            raise ValueError("no account to manage: the bot has no account but the treasury")
        unknown = sorted(set(self.overrides) - set(managed))
        if unknown:
            raise ValueError(
                f"bands given for {', '.join(unknown)}, which this rebalancer does not manage "
                f"(managed: {', '.join(managed)})"
            )
        self.bands = {}
        for alias in managed:
            account = ctx.account_id(alias)
            if account == self.treasury:
                raise ValueError(f"{alias} is the treasury; it cannot be managed as well")
            self.bands[account] = self.overrides.get(alias, self.default_band)
        own = set(ctx.accounts.values())
        self.polled = {a for a in (self.treasury, *self.bands) if a not in own}
        for account, band in self.bands.items():
            ctx.log.info(
                "rebalancer manages %s: band min %s, target %s, max %s (treasury %s)",
                ctx.alias_of(account), band.min, band.target, band.max,
                ctx.alias_of(self.treasury),
            )  # fmt: skip
        if self.polled:
            ctx.log.info(
                "no balance events for %s (not among the bot's accounts): their balances are "
                "read from the venue on every decision",
                ", ".join(sorted(ctx.alias_of(a) for a in self.polled)),
            )

    @hookimpl
    def qfexbot_schedules(self, ctx: BotContext) -> list[tuple[str, float]]:
        """The decision timer, and the drawdown check if ``drawdown_pct`` is set."""
        timers = [("rebalance", self.interval)]
        if self.drawdown_pct is not None:
            timers.append(("drawdown", self.drawdown_check))
        return timers

    @hookimpl
    async def qfexbot_event(self, ctx: BotContext, event: Event) -> None:
        """Track balances and outcomes; decide and act on the timer."""
        match event:
            case TimerEvent(name="rebalance"):
                await self._tick(ctx)
            case TimerEvent(name="drawdown"):
                await self._check_drawdown(ctx)
            case BalanceEvent():
                self._on_balance(ctx, event)
            case ResyncEvent(balance=BalanceEvent() as balance):
                self._on_balance(ctx, balance)
            case ConnectionStateEvent(state=state) if state is not ConnectionState.LIVE:
                # Until the session resyncs, the last balance may be stale: do not act on it.
                if self.balances.pop(event.account_id, None) is not None:
                    ctx.log.info(
                        "%s session is %s: not acting on it until its balance is known again",
                        ctx.alias_of(event.account_id),
                        state.value,
                    )
            case TransferOutcomeEvent():
                self._on_outcome(ctx, event)

    # -- balances ---------------------------------------------------------------------------

    def _on_balance(self, ctx: BotContext, event: BalanceEvent) -> None:
        account = event.account_id
        if account != self.treasury and account not in self.bands:
            return
        self.balances[account] = event.available
        self.deposits[account] = event.deposit
        pending = self.pending.get(account)
        if pending is not None and event.received_at >= pending.done_at and _shows(pending, event):
            del self.pending[account]
            ctx.log.debug(
                "%s balance %s reflects the last transfer", ctx.alias_of(account), event.available
            )

    async def _refresh(self, ctx: BotContext, now: float) -> None:
        """Read afresh the accounts without events and those whose settle_timeout passed."""
        overdue = {a for a, p in self.pending.items() if now >= p.deadline}
        for account in sorted(self.polled | overdue):
            name = ctx.alias_of(account)
            try:
                snapshot = await ctx.positions(account)
                balance = snapshot.balance
                if not isinstance(balance, BalanceEvent):
                    raise TypeError("the snapshot has no balance")
            except Exception as exc:
                ctx.log.warning(
                    "could not read the balance of %s (%s: %s); leaving it alone",
                    name,
                    type(exc).__name__,
                    exc,
                )
                if account in self.polled:
                    self.balances.pop(account, None)
                continue
            if account in overdue:
                del self.pending[account]
                ctx.log.warning(
                    "no balance event for %s showed the last transfer within settle_timeout "
                    "%gs; read it from the venue instead: %s",
                    name,
                    self.settle_timeout,
                    balance.available,
                )
            self._on_balance(ctx, balance)

    # -- deciding and acting ----------------------------------------------------------------

    async def _tick(self, ctx: BotContext) -> None:
        now = trio.current_time()
        await self._refresh(ctx, now)
        for key in [k for k, hold in self.holds.items() if now >= hold.until]:
            hold = self.holds.pop(key)
            ctx.log.info(
                "%s: hold over (%s); acting again",
                "all accounts" if key == _GLOBAL else ctx.alias_of(key),
                hold.why,
            )
        if _GLOBAL in self.holds:
            return
        busy = set(self.pending) | set(self.holds)
        for account in self.drawdown:
            if account in self.balances and self.balances[account] < self.bands[account].min:
                busy.add(account)
        # decide() works on aliases, so its reasons (journaled and logged) read well.
        name = ctx.alias_of
        balances = {name(a): b for a, b in self.balances.items()}
        treasury = name(self.treasury)
        if treasury in balances:
            balances[treasury] = max(balances[treasury] - self.treasury_reserve, Decimal(0))
        proposals = [
            ProposedTransfer(ctx.account_id(p.src), ctx.account_id(p.dst), p.amount, p.reason)
            for p in decide(
                balances, treasury, {name(a): band for a, band in self.bands.items()},
                self.limits, busy={name(a) for a in busy},
            )
        ]  # fmt: skip
        self._explain(ctx, proposals)
        for proposal in proposals:
            if _GLOBAL in self.holds or self.treasury in self.holds:
                break  # the rest would be refused for the same reason
            await self._execute(ctx, proposal)

    def _explain(self, ctx: BotContext, proposals: list[ProposedTransfer]) -> None:
        """Say, per account, why it is left as it is: logged when the reason changes, not on
        every tick (the numbers in the line are those of that moment)."""
        acting = {p.dst if p.src == self.treasury else p.src for p in proposals}
        treasury_hold = self.holds.get(self.treasury)
        for account, band in self.bands.items():
            balance = self.balances.get(account)
            level = logging.INFO
            if account in acting:
                self._said[account] = "acting"
                continue
            if balance is None:
                key, say = "unknown", "balance not known yet; waiting for a balance event"
            elif band.contains(balance):
                key, say = "in band", f"in band: {_shown(balance)} within [{band.min}, {band.max}]"
            else:
                out = f"{balance} outside [{band.min}, {band.max}]"
                if account in self.pending:
                    key, level = "pending", logging.DEBUG
                    say = f"{out}, waiting for a balance event showing the transfer"
                elif account in self.holds:
                    key = f"hold {self.holds[account].why}"
                    say = f"{out}, on hold: {self.holds[account].why}"
                elif treasury_hold is not None:
                    key = f"treasury hold {treasury_hold.why}"
                    say = f"{out}, treasury on hold: {treasury_hold.why}"
                elif self.treasury in self.pending:
                    key, level = "treasury pending", logging.DEBUG
                    say = f"{out}, waiting for the treasury balance to show transfers"
                elif self.treasury not in self.balances:
                    key, say = "treasury unknown", f"{out}, treasury balance not known"
                elif account in self.drawdown:
                    key = "drawdown"
                    say = f"{out}, not topped up: in drawdown ({self.drawdown[account]}% off peak)"
                else:
                    key = "stuck"
                    say = (
                        f"{out}, but no transfer fits: treasury funds less treasury_reserve, "
                        f"min_remaining or max_transfer"
                    )
            if self._said.get(account) != key:
                self._said[account] = key
                ctx.log.log(level, "%s %s", ctx.alias_of(account), say)

    async def _execute(self, ctx: BotContext, p: ProposedTransfer) -> None:
        src, dst = ctx.alias_of(p.src), ctx.alias_of(p.dst)
        desk = p.dst if p.src == self.treasury else p.src
        ctx.log.info("moving %s from %s to %s: %s", p.amount, src, dst, p.reason)
        deposits_before = tuple((a, self.deposits.get(a)) for a in (p.src, p.dst))
        try:
            result = await ctx.transfer(p.src, p.dst, p.amount, p.reason)
            state = str(result.state)
            entry, detail, code = str(result.entry_id), str(result.detail), str(result.code)
        except Exception as exc:
            ctx.log.error(
                "transfer %s -> %s %s raised %s: %s; treating its outcome as unknown",
                src,
                dst,
                p.amount,
                type(exc).__name__,
                exc,
            )
            state, entry, detail, code = "unknown", "", f"{type(exc).__name__}: {exc}", ""
        until = trio.current_time() + self.retry_after
        if state == "done":
            ctx.log.info(
                "transfer %s done: %s %s -> %s; waiting for balance events to show it",
                entry,
                p.amount,
                src,
                dst,
            )
            self._expect(p.src, p.dst, p.amount, time.time())
        elif state == "dry_run":
            ctx.log.info(
                "dry run: would move %s from %s to %s (%s); asking again in %gs",
                p.amount,
                src,
                dst,
                detail,
                self.retry_after,
            )
            self.holds[desk] = _Hold(until, f"dry run of {p.amount} {src} -> {dst}")
        elif state == "refused":
            ctx.log.warning(
                "transfer %s -> %s %s refused by policy [%s]: %s; not retrying for %gs",
                src,
                dst,
                p.amount,
                code,
                detail,
                self.retry_after,
            )
            hold = _Hold(until, f"refused [{code}]: {detail}")
            if code in _GLOBAL_REFUSALS:
                self.holds[_GLOBAL] = hold
            elif code in _BOTH_REFUSALS:
                self.holds[p.src] = self.holds[p.dst] = hold
            else:
                self.holds[desk] = hold
        elif state == "failed":
            ctx.log.warning(
                "transfer %s %s -> %s %s failed, nothing moved: %s; not retrying for %gs",
                entry,
                src,
                dst,
                p.amount,
                detail,
                self.retry_after,
            )
            self.holds[desk] = _Hold(until, f"transfer {entry} failed: {detail}")
        else:
            ctx.log.warning(
                "transfer %s %s -> %s %s ended %s (%s); no action on %s or %s until the "
                "journal resolves it", entry, src, dst, p.amount, state, detail, src, dst,
            )  # fmt: skip
            hold = _Hold(until, f"transfer {entry} outcome {state}", entry, deposits_before)
            self.holds[p.src] = self.holds[p.dst] = hold

    def _expect(
        self,
        src: str,
        dst: str,
        amount: Decimal,
        done_at: float,
        deposits_before: Mapping[str, Decimal | None] | None = None,
    ) -> None:
        """Mark both accounts as waiting for a balance event that shows this transfer.

        ``deposits_before``: the deposits seen before it was sent, for a transfer settled later
        by reconciliation; an account whose last balance already shows it waits for nothing.
        """
        deadline = trio.current_time() + self.settle_timeout
        for account, delta in ((src, -amount), (dst, amount)):
            pending = self.pending.get(account)
            if pending is None:
                deposit = self.deposits.get(account)
                if deposits_before is not None:
                    deposit = deposits_before.get(account)
                    seen = self.deposits.get(account)
                    if (
                        deposit is not None
                        and seen is not None
                        and seen != 0
                        and (abs(seen - deposit - delta) <= Decimal("0.000001"))
                    ):
                        continue  # its balance event already arrived
                self.pending[account] = _Pending(
                    self.balances.get(account), delta, done_at, deadline, deposit
                )
            else:
                pending.delta += delta
                pending.done_at, pending.deadline = done_at, deadline

    def _on_outcome(self, ctx: BotContext, event: TransferOutcomeEvent) -> None:
        """An unknown transfer we hold accounts for was resolved: act on them again."""
        if event.state not in ("done", "failed") or not event.entry_id:
            return
        freed = [a for a, hold in self.holds.items() if hold.entry == event.entry_id]
        if not freed:
            return
        before = dict(self.holds[freed[0]].deposits_before)
        for account in freed:
            del self.holds[account]
        ctx.log.info(
            "transfer %s resolved as %s; acting on %s again",
            event.entry_id,
            event.state,
            " and ".join(ctx.alias_of(a) for a in freed),
        )
        if event.state == "done":
            self._expect(event.src, event.dst, event.amount, event.received_at, before)

    # -- drawdown ---------------------------------------------------------------------------

    async def _check_drawdown(self, ctx: BotContext) -> None:
        """Mark accounts whose equity fell more than drawdown_pct below its window's peak."""
        assert self.drawdown_pct is not None  # the timer exists only then
        for account in sorted(self.bands):
            name = ctx.alias_of(account)
            try:
                history = await ctx.account_equity(account, self.drawdown_window)
                values = [Decimal(value) for _, value in history]
            except Exception as exc:
                ctx.log.warning(
                    "could not read the equity of %s (%s: %s)", name, type(exc).__name__, exc
                )
                continue
            if not values:
                continue
            peak, now = max(values), values[-1]
            drop = (peak - now) / peak * 100 if peak > 0 else Decimal(0)
            drop = drop.quantize(Decimal("0.1"))
            if drop > self.drawdown_pct:
                if account not in self.drawdown:
                    ctx.log.warning(
                        "%s equity %s is %s%% below its %s peak %s (drawdown_pct %s): no more "
                        "top-ups for it until it recovers; sweeps continue",
                        name, now, drop, self.drawdown_window, peak, self.drawdown_pct,
                    )  # fmt: skip
                    ctx.alert(
                        AlertKind.DRAWDOWN_STOP, AlertSeverity.WARNING,
                        f"{name} equity {now} is {drop}% below its {self.drawdown_window} peak "
                        f"{peak}: no more top-ups for it until it recovers",
                        account=name, subject=f"drawdown/{name}", drop_pct=drop, peak=peak,
                        equity=now,
                    )  # fmt: skip
                self.drawdown[account] = drop
            elif self.drawdown.pop(account, None) is not None:
                ctx.log.info(
                    "%s equity %s is back within %s%% of its peak %s: top-ups resume",
                    name,
                    now,
                    self.drawdown_pct,
                    peak,
                )


qfexbot_plugin = Rebalancer
