"""The one way money moves: policy, journal intent, a single send, the outcome, and reconciliation.

``TransferService.transfer`` is the only function that sends a transfer. In order it:

1. takes the locks of both accounts (so no two transfers touching an account run at once —
   this also covers "two transfers on one pair never race");
2. refuses while any transfer touching either account is unresolved (pending/sent/unknown);
3. runs the policy checks (``qfexbot.money.policy``): kill switch, amount, allowed pair,
   per-transfer and rolling 24 h maximum, minimum interval, then reads the available balances
   of both accounts afresh and checks ``min_remaining``;
4. dry run: journals "would transfer" and returns; nothing is sent;
5. checks the kill switch again (a balance read can take seconds) and journals the intent
   (``pending``, committed) in the same journal transaction as the final rolling 24 h check
   (so two concurrent transfers cannot both fit in one budget); checks the kill switch once
   more — if it appeared meanwhile the row is marked ``failed`` (never sent) — then marks it
   ``sent`` and calls ``send`` exactly once — never retried;
6. records the outcome: success -> ``done``; ``TransferRejected`` / ``TransferNotSent`` ->
   ``failed``; ``TransferAmbiguous``, any other error or a cancellation -> ``unknown``.

Refusals and dry runs are journaled too, and every outcome is reported through ``on_outcome``
as a ``TransferOutcomeEvent``.

Identity and limits. Every decision is keyed by the journal's ``owner`` (the venue user id; a
``simulator = true`` table's own key, ``VenueConfig.owner``) and account ids, never by a name:
blocking on unresolved transfers, reconciliation, ``min_interval`` (the newest transfer on the
unordered pair) and the rolling 24 h total. A bot's ``max_daily`` counts every possibly-applied
transfer (pending, sent, unknown, done) of the last 24 h between any pair its ``allowed_pairs``
governs, whichever bot wrote it: renaming the bot, the venue or an alias resets nothing, and two
bots sharing a treasury with their own desks (``treasury <-> desk-a`` and ``treasury <->
desk-b``) do not eat each other's budget.

Reconciliation (why balance deltas). QFEX's ``POST /user/transfer`` carries no client id and
there is no transfer history endpoint, so the only evidence of whether a transfer landed is the
balances. Just before the send we read both accounts (``BalanceReading``: available balance and
``deposit``) and store them with the intent (``src_before``/``dst_before``,
``src_deposit_before``/``dst_deposit_before``). ``reconcile()`` reads both again and decides
(``qfexbot.money.evidence.classify_evidence``, with a small ``tolerance``; "moved by ±amount"
means src -amount and dst +amount):

1. both deposits moved by ±amount -> applied -> ``done`` (unless the available balances are
   exactly unchanged, which contradicts it -> unclear);
2. both deposits unchanged and this venue is *verified* to reflect transfers in ``deposit`` ->
   not applied -> ``failed`` (unless either available balance moved by exactly its part of
   ±amount -> unclear);
   deposits moved some other way on a verified venue (a foreign deposit or transfer) -> unclear;
3. otherwise the available balances decide (the only rule before deposits were used):
   moved by ±amount -> applied; both unchanged -> not applied;
4. anything else, no recorded "before" balances, or a balance that cannot be read -> stays
   ``unknown`` with a note, the accounts stay blocked, and an operator resolves it with
   ``qfexbot journal resolve ID --applied|--not-applied``.

Reconciling on accounts that trade. Trading moves the available balance (realised PnL, fees,
funding, order and position margin), so on a desk that trades rule 3 is almost never clean.
``deposit`` is different: trading never moves it, transfers do (protocol §6 #15/#16). A clean
±amount on *both* deposits is strong evidence on its own — trading cannot produce it, a
coincidence on two accounts at once is implausible, and no other transfer of this process can
touch either account while this one is unresolved (steps 1-2 above) — so rule 1 needs no
verification. "Not applied" from unchanged deposits is only sound if the venue really does
reflect transfers in ``deposit`` (a venue that leaves it at zero or updates it later would make
every lost transfer look not applied, and a retry would move the money twice). So rule 2 is
only used once the venue has been *verified*: the journal's ``meta`` table holds, per owner (the
venue user id, or a simulator table's own key: ``VenueConfig.owner``), never per venue name, the
key ``deposit_reflects_transfers:<owner>``. Renaming a table, or switching it from the
simulator to a real venue, therefore starts unverified (the simulator's verdict says nothing
about the real venue):

* unset (unverified): after a transfer the venue confirmed (``done``: a 2xx answer), the service
  reads both balances once more while still holding the account locks and compares the deposits
  with those recorded at intent. Exactly ±amount -> ``true``. Both unchanged -> ``false`` (logged
  as an error). Anything else -> inconclusive, left unset; the next confirmed transfer tries
  again. So the extra REST reads are two per confirmed transfer, only until the venue is
  verified either way, and never on a failed or unknown transfer.
* ``true``: rule 2 applies. ``false``: never set back automatically; deposit evidence is still
  used for "applied" (rule 1) but never for "not applied". An operator who knows the venue
  changed can delete the row (``DELETE FROM meta WHERE key = ...``) to verify again.

"Not applied" is the dangerous verdict (it re-enables a transfer that might double a late
landing request), so it is only given once the entry has been quiet for ``settle_seconds``
(set it to at least the REST request timeout), whichever rule gave it; "applied" is safe at
any time. Quiet time is counted on trio's clock from when this process first saw the entry in
doubt: a wall-clock step is no evidence, and a restart starts the quiet period again.

Money edges (docs/reliability.md). Deposits that move by anything but 0 or exactly ±amount
while an entry is in doubt cannot be explained by this journal (another mover on the
accounts): the entry stays unknown and both accounts get a durable *hold* (journal ``holds``
table). A transfer reconciled "not applied" is *watched* for ``late_watch`` (24 h): if its exact
±amount later appears on both deposits, beyond what this journal's later transfers explain, it
is re-marked ``done`` (a late landing), logged at ERROR, counted in ``late_landings`` and both
accounts are held (re-mark, holds and closing the watch are one journal transaction, as are a
"not applied" verdict and its watch). Deposits of a watched pair that move in any other
unexplained way hold both accounts too (the landing may hide in that movement), and so does an
unexplained-deposits hold on a neighbour (the watched transfer's landing may be what moved it).
An operator's ``journal resolve --not-applied`` is watched too, from the deposits recorded at
intent; a pass that finds "applied" evidence for an entry an operator just resolved "not
applied" logs at ERROR and leaves it to that watch (holds both accounts when there is none). A
held account refuses every transfer (code ``account_held``) and gets no automatic verdict until
an operator runs ``qfexbot journal release ACCOUNT``; an entry that ever got a hold never gets
an automatic verdict again, even after the release. Rows reconciled "not applied" count against
``max_daily`` while watched.

A ``pending`` or ``sent`` row found by ``reconcile()`` (it holds the account locks, so no
transfer of this process is working on it) is left over from a crash or a cancellation: it is
first marked ``unknown`` — we cannot know whether the request went out — and then reconciled
like any other. Call ``reconcile()`` at start-up before any bot acts; while running,
``run_reconciler()`` runs a pass every ``interval`` seconds and also right after any transfer
ends ``unknown``. That early pass may only declare "applied" (so a lost response on a desk is
settled within seconds); "not applied" waits for a periodic pass, because a venue can apply a
request after the client timed out (the simulator's delayed-REST fault does), and
``settle_seconds`` alone (= the request timeout in the runtime) does not cover that.
A journal file belongs to one running process.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import trio

from qfexbot.core.accounts import AccountBook
from qfexbot.core.alerts import make_alert
from qfexbot.core.logs import get_logger, log_context, log_event
from qfexbot.errors import VenueError
from qfexbot.events import AlertEvent, AlertKind, AlertSeverity, TransferOutcomeEvent
from qfexbot.money.evidence import (
    TOLERANCE,
    classify_evidence,
    classify_reconciliation,
    deposit_quad,
    explained_moves,
    watch_verdict,
)
from qfexbot.money.journal import (
    BudgetExceeded,
    DailyBudget,
    Entry,
    EntryState,
    GuardLost,
    Hold,
    InvalidTransition,
    Journal,
    Watch,
)
from qfexbot.money.killswitch import kill_switch_reason
from qfexbot.money.policy import (
    DAY,
    PolicyDecision,
    check_remaining,
    check_transfer,
    daily_spent,
    dry_run_decision,
    limit_value,
    paused_decision,
    resolve_pairs,
)

__all__ = [
    "BalanceReading",
    "FindSent",
    "ReadBalance",
    "ReconcileResult",
    "SendTransfer",
    "TransferAmbiguous",
    "TransferNotSent",
    "TransferRejected",
    "TransferResult",
    "TransferService",
    "deposit_meta_key",
]

log = get_logger(__name__)

SendTransfer = Callable[[str, str, Decimal], Awaitable[Any]]
"""``await send(src, dst, amount)``: returns on success, raises one of the three errors below.
With ``find_sent`` (venue-state evidence) it is called ``send(src, dst, amount, entry_id)``."""
FindSent = Callable[[str], Awaitable[bool | None]]
"""``await find_sent(entry_id)``: what the venue's own state says of the request sent for that
journal entry (the venue tagged it with the id): True applied, False the venue has no such
request, None it cannot tell now. Errors count as "cannot tell"."""


@dataclass(frozen=True, slots=True)
class BalanceReading:
    """One fresh read of an account: available balance and ``deposit`` (None: not reported)."""

    available: Decimal
    deposit: Decimal | None = None


ReadBalance = Callable[[str], Awaitable["BalanceReading | Decimal"]]
"""``await read_balance(account_id)``: a fresh ``BalanceReading``; a bare Decimal is read as the
available balance with no deposit (then only available-balance evidence is used)."""

OutcomeCallback = Callable[[TransferOutcomeEvent], Awaitable[None] | None]


class TransferRejected(VenueError):
    """The venue definitely rejected the transfer (e.g. problem+json 4xx): nothing was applied."""


class TransferNotSent(VenueError):
    """The request definitely never left (connect refused, auth not built): nothing was applied."""


class TransferAmbiguous(VenueError):
    """The request may have been applied (timeout, reset, 5xx after sending): outcome unknown."""


@dataclass(frozen=True, slots=True)
class TransferResult:
    """What happened to one ``transfer()`` call.

    ``state`` is ``done``, ``failed``, ``unknown``, ``refused`` or ``dry_run``; ``code`` is the
    policy code for refusals and dry runs (see ``PolicyDecision``), else empty. ``entry_id`` is
    the journal row.
    """

    entry_id: str
    state: str
    detail: str
    code: str = ""

    @property
    def ok(self) -> bool:
        """True when the venue confirmed the transfer."""
        return self.state == EntryState.DONE


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    """The state of one unresolved entry after a reconciliation pass."""

    entry_id: str
    state: str
    detail: str


def deposit_meta_key(owner: str) -> str:
    """The journal meta key of an owner's deposit verification state (``"true"``/``"false"``):
    keyed by the journal owner (user id, or a simulator table's own key), never a venue name."""
    return f"deposit_reflects_transfers:{owner}"


def _refused(reason: str, code: str) -> tuple[PolicyDecision, None, None]:
    """A refusal from ``TransferService._check``: no balances were read for it."""
    return PolicyDecision(False, reason, code), None, None


def _reading(value: BalanceReading | Decimal) -> BalanceReading:
    if isinstance(value, BalanceReading):
        return value
    return BalanceReading(Decimal(value))


class TransferService:
    """Every transfer of one venue goes through ``transfer()``; ``reconcile()`` settles doubts.

    Args:
      journal: the journal (shared by all venues; entries carry the venue).
      send: the venue transfer call; must raise ``TransferRejected``, ``TransferNotSent`` or
        ``TransferAmbiguous`` as documented (anything else counts as ambiguous).
      read_balance: fresh ``BalanceReading`` (or bare available Decimal) of an account id.
      venue: venue name written into every entry (display only; nothing is keyed by it).
      limits: bot name -> limits object (see ``qfexbot.money.policy``); a bot without one is
        refused.
      accounts: alias -> account id of this venue (resolves ``allowed_pairs``; makes reasons
        readable; an id under two aliases is named by the first, see ``AccountBook``).
      kill_switch: path of the kill switch file, or None.
      dry_run: global dry run (a bot may also ask per call).
      on_outcome: called with a ``TransferOutcomeEvent`` for every outcome (sync or async);
        its errors are logged, never raised.
      on_alert: called (sync, must not wait) with an ``AlertEvent`` when accounts are held for
        a late landing or for deposits that moved unexplained.
      clock: wall clock (``time.time``), used for policy windows.
      tolerance: balance difference still counted as equal by reconciliation.
      settle_seconds: minimum quiet time before reconciliation may declare "not applied",
        measured on trio's clock from when this process first saw the outcome in doubt.
      late_watch: how long a transfer reconciled "not applied" is watched for a late landing.
      user_id: the journal owner of the accounts: entries, blocking, reconciliation, limits and
        deposit verification are keyed by it (default: ``venue``, for callers without one). The
        runtime passes ``VenueConfig.owner``: the venue user id, or for a simulator table a key
        of its own, so simulated and real money never share an identity.
      find_sent: venue-state evidence (:data:`FindSent`) for a venue whose requests carry the
        journal entry id (a Finery settlement's comment) and that reports no balances: ``send``
        gets the entry id, no balances are read (a configured ``min_remaining`` refuses:
        it cannot be checked), and reconciliation asks ``find_sent`` instead of comparing
        balances; "not applied" still waits ``settle_seconds``.
      locks: account id -> lock, shared by every service of one process that may name the same
        accounts (the runtime passes one mapping for all real tables, since account ids are
        unique across users, and one per simulator table), so two venue tables naming one
        account still never touch it at once; default: this service's own.

    Deposit verification (module doc) is read from and written to ``journal``'s meta table.
    """

    def __init__(
        self,
        journal: Journal,
        send: SendTransfer,
        read_balance: ReadBalance,
        *,
        venue: str,
        limits: Mapping[str, Any],
        accounts: Mapping[str, str] | None = None,
        kill_switch: str | Path | None = None,
        dry_run: bool = False,
        on_outcome: OutcomeCallback | None = None,
        on_alert: Callable[[AlertEvent], None] | None = None,
        clock: Callable[[], float] = time.time,
        tolerance: Decimal = TOLERANCE,
        settle_seconds: float = 0.0,
        late_watch: float = DAY,
        user_id: str | None = None,
        locks: MutableMapping[str, trio.Lock] | None = None,
        find_sent: FindSent | None = None,
    ) -> None:
        self.journal = journal
        self._find_sent = find_sent
        self.venue = venue
        self.owner = user_id or venue
        self._send = send
        self._read = read_balance
        self._limits = dict(limits)
        self._accounts = AccountBook(accounts or {}, name=venue)
        self._names = {i: self._accounts.alias_of(i) for i in self._accounts.ids()}
        """id -> alias, for the policy's readable reasons."""
        self._kill_switch = kill_switch
        self._dry_run = dry_run
        self._on_outcome = on_outcome
        self._on_alert = on_alert
        self._clock = clock
        self._tolerance = tolerance
        self._settle = settle_seconds
        self._locks: MutableMapping[str, trio.Lock] = {} if locks is None else locks
        self._wake = trio.Event()  # set when a transfer ends unknown: reconcile soon
        self._verified: bool | None = None
        self._verified_loaded = False
        self._late_watch = late_watch
        # trio time at which this process saw each entry in doubt / began watching it: quiet
        # time never comes from the wall clock, and restarts (a fresh process) start it again.
        self._doubt_since: dict[str, float] = {}
        self._watch_since: dict[str, float] = {}
        self.late_landings = 0
        """Transfers reconciled "not applied" that were later seen to land (re-marked done)."""

    def _name(self, account_id: str | None) -> str:
        return self._accounts.alias_of(account_id) if account_id else "?"

    async def _read_both(
        self, src: str, dst: str, reader: ReadBalance | None = None
    ) -> tuple[BalanceReading, BalanceReading]:
        read = reader or self._read
        return _reading(await read(src)), _reading(await read(dst))

    # -- deposit verification ----------------------------------------------------------------

    async def deposit_verified(self) -> bool | None:
        """Whether this owner's venue reflects transfers in ``deposit``: True, False, or None
        (unknown)."""
        if not self._verified_loaded:
            value = await self.journal.get_meta(deposit_meta_key(self.owner))
            self._verified = None if value is None else value == "true"
            self._verified_loaded = True
        return self._verified

    async def _set_verified(self, value: bool, detail: str) -> None:
        await self.journal.set_meta(
            deposit_meta_key(self.owner), "true" if value else "false", detail
        )
        self._verified, self._verified_loaded = value, True
        if value:
            log_event(log, logging.INFO, "venue verified: transfers move deposit; deposit "
                      "evidence may now settle transfers in doubt", detail=detail)  # fmt: skip
        else:
            log_event(log, logging.ERROR, "venue does NOT reflect transfers in deposit: deposit "
                      "evidence will never declare a transfer not applied on this venue",
                      detail=detail)  # fmt: skip

    async def _observe_deposits(self, entry: Entry) -> None:
        """After a venue-confirmed transfer on an unverified venue: did both deposits move?

        Called with the account locks held, so nothing else of ours moved these accounts.
        Read failures and inconclusive deltas leave the venue unverified (next time).
        """
        if entry.src_deposit_before is None or entry.dst_deposit_before is None:
            return
        if await self.deposit_verified() is not None:
            return
        src, dst, amount = entry.src or "", entry.dst or "", entry.amount or Decimal(0)
        try:
            src_now, dst_now = await self._read_both(src, dst)
        except Exception as exc:
            log_event(log, logging.INFO, "deposit check after transfer skipped: read failed",
                      entry=entry.id, error=f"{type(exc).__name__}: {exc}")  # fmt: skip
            return
        if src_now.deposit is None or dst_now.deposit is None:
            return
        numbers = (
            f"transfer {entry.id} of {amount} confirmed by the venue; deposits "
            f"{self._name(src)} {entry.src_deposit_before} -> {src_now.deposit}, "
            f"{self._name(dst)} {entry.dst_deposit_before} -> {dst_now.deposit}"
        )
        verdict = classify_reconciliation(
            amount, entry.src_deposit_before, entry.dst_deposit_before, src_now.deposit,
            dst_now.deposit, self._tolerance,
        )  # fmt: skip
        if verdict == "applied":
            await self._set_verified(True, numbers)
        elif verdict == "not_applied":
            await self._set_verified(False, numbers)
        else:
            log_event(log, logging.WARNING, "deposit check after transfer inconclusive; "
                      "will check the next confirmed transfer", detail=numbers)  # fmt: skip

    @contextlib.asynccontextmanager
    async def _hold(self, *accounts: str) -> AsyncIterator[None]:
        """Hold the locks of these accounts, taken in sorted order so two callers never deadlock."""
        async with contextlib.AsyncExitStack() as stack:
            for account in sorted(set(accounts)):
                await stack.enter_async_context(self._locks.setdefault(account, trio.Lock()))
            yield

    # -- the transfer path -------------------------------------------------------------------

    async def transfer(
        self,
        bot: str,
        plugin: str,
        src: str,
        dst: str,
        amount: Decimal,
        reason: str,
        *,
        dry_run: bool = False,
    ) -> TransferResult:
        """Move ``amount`` of available balance from account ``src`` to ``dst`` (ids), at most once.

        Returns:
          A ``TransferResult``; refusals, dry runs and failures are results, not exceptions.

        Raises:
          TypeError: ``amount`` is a float (money is Decimal).
          trio.Cancelled: if cancelled; a transfer cancelled around its send is left ``unknown``.
          Journal errors (e.g. sqlite3.Error) propagate: without a journal nothing is sent.
        """
        if isinstance(amount, float):
            raise TypeError("transfer amount must be a Decimal, not a float")
        amount = Decimal(amount)
        with log_context(bot=bot, plugin=plugin, venue=self.venue):
            async with self._hold(src, dst):
                decision, src_before, dst_before = await self._check(bot, src, dst, amount)
                args = (bot, plugin, src, dst, amount, reason)
                if decision.allowed and (dry_run or self._dry_run):
                    return await self._record_dry_run(*args)
                if not decision.allowed:
                    return await self._refuse(*args, decision)
                return await self._send_once(*args, src_before, dst_before)

    async def _check(
        self, bot: str, src: str, dst: str, amount: Decimal
    ) -> tuple[PolicyDecision, BalanceReading | None, BalanceReading | None]:
        blocking = await self.journal.unresolved_for_accounts(
            self.venue, (src, dst), owner=self.owner
        )
        if blocking:
            e = blocking[0]
            return _refused(
                f"transfer {e.id} ({self._name(e.src)} -> {self._name(e.dst)}, {e.amount}) is "
                f"{e.state}: no transfer touching {self._name(e.src)} or {self._name(e.dst)} "
                f"until it is reconciled or an operator runs "
                f"`qfexbot journal resolve {e.id} --applied|--not-applied`",
                "unresolved",
            )
        held = await self._held_decision(src, dst)
        if held is not None:
            return held, None, None
        limits = self._limits.get(bot)
        if limits is None:
            return _refused(f"no transfer limits configured for bot {bot}", "no_limits")
        paused = await self._paused()
        now = self._clock()
        window = await self.journal.window_transfers(self.owner, self._pairs(limits), now - DAY)
        spent = daily_spent(e.amount for e in window if e.amount)
        decision = check_transfer(
            limits,
            src=src,
            dst=dst,
            amount=amount,
            spent_24h=spent,
            last_transfer_at=await self.journal.last_transfer_at(
                self.venue, src, dst, owner=self.owner
            ),
            now=now,
            paused_reason=paused,
            accounts=self._accounts,
            names=self._names,
        )
        if not decision.allowed:
            return decision, None, None
        if self._find_sent is not None:  # no balances: venue-state evidence decides doubts
            if limit_value(limits, "min_remaining"):
                return _refused(
                    f"min_remaining is set but {self.venue} reports no balance of "
                    f"{self._name(src)} to check it against; remove it for this venue",
                    "balance_unknown",
                )
            return decision, None, None
        try:
            src_before, dst_before = await self._read_both(src, dst)
        except Exception as exc:
            log_event(log, logging.WARNING, "balance read failed before transfer", error=repr(exc))
            return _refused(
                f"could not read the available balances of {self._name(src)} and "
                f"{self._name(dst)} ({type(exc).__name__}: {exc}); not moving money blind",
                "balance_unknown",
            )
        decision = check_remaining(
            limits, src=src, amount=amount, src_available=src_before.available, names=self._names
        )
        return decision, src_before, dst_before

    async def _paused(self) -> str | None:
        """The kill switch text if money movement is paused now, else None."""
        if self._kill_switch is None:
            return None
        return await trio.to_thread.run_sync(kill_switch_reason, self._kill_switch)

    async def _unresolved_here(self) -> list[Entry]:
        """The unresolved transfers this service reconciles: its user id's rows between two
        accounts it names (another venue table of the same user reconciles its own), and rows
        an older version wrote under this venue's name."""
        named = set(self._accounts.ids())
        return [
            e for e in await self.journal.unresolved(self.venue, owner=self.owner)
            if e.owner is None or not named or (e.src in named and e.dst in named)
        ]  # fmt: skip

    def _pairs(self, limits: Any) -> frozenset[frozenset[str]] | None:
        """The unordered account-id pairs whose transfers count against ``limits.max_daily``."""
        return resolve_pairs(getattr(limits, "allowed_pairs", None), self._accounts)

    def _budget(self, bot: str) -> DailyBudget | None:
        """The rolling 24 h budget the intent must fit in (checked in the journal, atomically)."""
        limits = self._limits.get(bot)
        max_daily = None if limits is None else getattr(limits, "max_daily", None)
        if max_daily is None:
            return None
        return DailyBudget(Decimal(str(max_daily)), self._clock() - DAY, self._pairs(limits))

    async def _refuse(
        self,
        bot: str,
        plugin: str,
        src: str,
        dst: str,
        amount: Decimal,
        reason: str,
        decision: PolicyDecision,
    ) -> TransferResult:
        entry = await self.journal.record_refusal(
            bot=bot, plugin=plugin, venue=self.venue, action="transfer", code=decision.code,
            detail=decision.reason, reason=reason, src=src, dst=dst, amount=amount,
        )  # fmt: skip
        log_event(log, logging.WARNING, "transfer refused", entry=entry.id, code=decision.code,
                  detail=decision.reason)  # fmt: skip
        await self._emit(entry)
        return TransferResult(entry.id, entry.state, decision.reason, decision.code)

    async def _record_dry_run(
        self, bot: str, plugin: str, src: str, dst: str, amount: Decimal, reason: str
    ) -> TransferResult:
        decision = dry_run_decision(src, dst, amount, self._names)
        entry = await self.journal.record_dry_run(
            bot=bot, plugin=plugin, venue=self.venue, detail=decision.reason, reason=reason,
            src=src, dst=dst, amount=amount,
        )  # fmt: skip
        log_event(log, logging.INFO, "dry-run transfer", entry=entry.id, detail=decision.reason)
        await self._emit(entry)
        return TransferResult(entry.id, entry.state, decision.reason, decision.code)

    async def _send_once(
        self,
        bot: str,
        plugin: str,
        src: str,
        dst: str,
        amount: Decimal,
        reason: str,
        src_before: BalanceReading | None,
        dst_before: BalanceReading | None,
    ) -> TransferResult:
        args = (bot, plugin, src, dst, amount, reason)
        # The balance read before this can take seconds: a pause meanwhile must still stop it.
        paused = await self._paused()
        if paused is not None:
            return await self._refuse(*args, paused_decision(paused))
        try:
            entry = await self.journal.record_intent(
                bot=bot, plugin=plugin, venue=self.venue, src=src, dst=dst, amount=amount,
                reason=reason,
                src_before=src_before.available if src_before else None,
                dst_before=dst_before.available if dst_before else None,
                src_deposit_before=src_before.deposit if src_before else None,
                dst_deposit_before=dst_before.deposit if dst_before else None,
                owner=self.owner, budget=self._budget(bot),
            )  # fmt: skip
        except BudgetExceeded as exc:
            # Another transfer of this budget was journaled since the policy check read it.
            return await self._refuse(*args, PolicyDecision(False, str(exc), "max_daily"))
        entry_id = entry.id
        try:
            paused = await self._paused()
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.journal.mark_failed(entry_id, "not sent: cancelled before sending")
            raise
        if paused is not None:
            entry = await self.journal.mark_failed(
                entry_id, f"not sent: money movement was paused (kill switch) after the intent "
                f"was journaled and before the request: {paused}",
            )  # fmt: skip
            log_event(log, logging.WARNING, "transfer not sent: paused", entry=entry_id,
                      src=self._name(src), dst=self._name(dst), amount=str(amount),
                      detail=entry.detail)  # fmt: skip
            await self._emit(entry)
            return TransferResult(entry_id, entry.state, entry.detail)
        try:
            await self.journal.mark_sent(entry_id)
            if self._find_sent is not None:
                await self._send(src, dst, amount, entry_id)
            else:
                await self._send(src, dst, amount)
        except GuardLost as exc:  # raised by mark_sent, before the request: provably not sent
            entry = await self.journal.mark_failed(entry_id, str(exc))
            log_event(log, logging.CRITICAL, "journal guard lost: no transfer will be sent",
                      entry=entry_id)  # fmt: skip
        except TransferRejected as exc:
            entry = await self.journal.mark_failed(entry_id, f"rejected by the venue: {exc}")
        except TransferNotSent as exc:
            entry = await self.journal.mark_failed(entry_id, f"not sent: {exc}")
        except TransferAmbiguous as exc:
            entry = await self.journal.mark_unknown(entry_id, f"outcome unknown: {exc}")
        except Exception as exc:
            log.exception("unexpected error from the transfer call; treating it as ambiguous")
            entry = await self.journal.mark_unknown(
                entry_id, f"outcome unknown: unexpected {type(exc).__name__}: {exc}"
            )
        except BaseException:  # cancellation (or a group of it): we cannot know whether it went out
            with trio.CancelScope(shield=True):
                await self.journal.mark_unknown(
                    entry_id,
                    "outcome unknown: cancelled while sending; reconcile before moving again",
                )
            self._doubt_since[entry_id] = trio.current_time()
            self._wake.set()
            raise
        else:
            entry = await self.journal.mark_done(entry_id, "venue confirmed")
        level = logging.INFO if entry.state == EntryState.DONE else logging.WARNING
        log_event(log, level, "transfer " + entry.state, entry=entry_id, src=self._name(src),
                  dst=self._name(dst), amount=str(amount), detail=entry.detail)  # fmt: skip
        if entry.state == EntryState.DONE and self._find_sent is None:
            await self._observe_deposits(entry)
        elif entry.state == EntryState.UNKNOWN:
            self._doubt_since[entry_id] = trio.current_time()
            self._wake.set()
        await self._emit(entry)
        return TransferResult(entry_id, entry.state, entry.detail)

    async def _emit(self, entry: Entry) -> None:
        if self._on_outcome is None:
            return
        event = TransferOutcomeEvent(
            venue=self.venue,
            account_id=entry.src or "",
            received_at=self._clock(),
            entry_id=entry.id,
            src=entry.src or "",
            dst=entry.dst or "",
            amount=entry.amount if entry.amount is not None else Decimal(0),
            state=entry.state,
            detail=entry.detail,
        )
        try:
            result = self._on_outcome(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("transfer outcome callback failed")

    # -- reconciliation ----------------------------------------------------------------------

    async def run_reconciler(
        self,
        *,
        interval: float,
        report: Callable[[list[ReconcileResult]], None] | None = None,
    ) -> None:
        """Reconcile every ``interval`` seconds and soon after any transfer ends ``unknown``.

        A transfer ending unknown wakes it for a pass at once that may only declare "applied"
        (safe at any time); "not applied" is left to the periodic passes, so a request the venue
        applies late (after the client gave up) has at least ``interval`` to show up, on top of
        ``settle_seconds``. ``report`` gets each pass's results. A failed pass (e.g. a journal
        error) is logged and retried at the next wake-up. Runs until cancelled.
        """
        while True:
            with trio.move_on_after(interval):
                await self._wake.wait()
            woken = self._wake.is_set()
            self._wake = trio.Event()
            try:
                results = await self.reconcile(allow_not_applied=not woken)
            except Exception as exc:
                log_event(log, logging.WARNING, "reconciliation pass failed; will retry",
                          venue=self.venue, error=f"{type(exc).__name__}: {exc}")  # fmt: skip
                continue
            if report is not None:
                report(results)

    async def reconcile(
        self, read_balance: ReadBalance | None = None, *, allow_not_applied: bool = True
    ) -> list[ReconcileResult]:
        """Resolve every unresolved transfer of this venue from balance deltas (see module doc),
        or from the venue's own state with ``find_sent``.

        Args:
          read_balance: balance reader to use (default: the service's).
          allow_not_applied: False: only "applied" verdicts are acted on; an entry that looks
            not applied is left as it is (no annotation), for a later full pass.

        Returns:
          One ``ReconcileResult`` per entry examined; ``unknown`` ones need another pass or an
          operator.
        """
        reader = read_balance or self._read
        results = []
        for entry in await self._unresolved_here():
            async with self._hold(entry.src or "", entry.dst or ""):
                current = await self.journal.get(entry.id)
                if current is None or not current.unresolved:
                    continue
                if current.state != EntryState.UNKNOWN:
                    current = await self.journal.mark_unknown(
                        current.id,
                        f"found {current.state} with no transfer in progress (crash or "
                        f"cancellation around the send): it may or may not have been sent",
                    )
                with log_context(bot=current.bot, plugin=current.plugin, venue=self.venue):
                    try:
                        results.append(
                            await self._reconcile_one(current, reader, allow_not_applied)
                        )
                    except InvalidTransition:
                        # An operator resolved it meanwhile (journal resolve): theirs stands.
                        log_event(
                            log,
                            logging.INFO,
                            "journal entry resolved elsewhere meanwhile",
                            entry=current.id,
                        )
        results.extend(await self._check_watches(reader))
        return results

    async def _reconcile_one(
        self, entry: Entry, reader: ReadBalance, allow_not_applied: bool = True
    ) -> ReconcileResult:
        if self._find_sent is not None:
            return await self._reconcile_by_venue(entry)
        src, dst, amount = entry.src or "", entry.dst or "", entry.amount or Decimal(0)
        blocked = await self._not_reconcilable(entry)
        if blocked is not None:
            return await self._still_unknown(entry, blocked)
        try:
            src_now, dst_now = await self._read_both(src, dst, reader)
        except Exception as exc:
            return await self._still_unknown(
                entry, f"cannot reconcile yet: balance read failed ({type(exc).__name__}: {exc})"
            )
        numbers = (
            f"available {self._name(src)} {entry.src_before} -> {src_now.available}, "
            f"{self._name(dst)} {entry.dst_before} -> {dst_now.available}"
        )
        deposit = deposit_quad(
            entry.src_deposit_before, entry.dst_deposit_before, src_now.deposit, dst_now.deposit
        )
        if deposit is not None:
            numbers += (
                f"; deposit {self._name(src)} {entry.src_deposit_before} -> {src_now.deposit}, "
                f"{self._name(dst)} {entry.dst_deposit_before} -> {dst_now.deposit}"
            )
        verified = await self.deposit_verified()
        numbers += f"; amount {amount}"
        if (
            deposit is not None
            and classify_reconciliation(amount, *deposit, self._tolerance) == "unclear"
        ):
            return await self._unexplained(entry, numbers)
        verdict, basis = classify_evidence(
            amount,
            (entry.src_before, entry.dst_before, src_now.available, dst_now.available),  # type: ignore[arg-type]
            deposit,
            deposit_verified=verified,
            tolerance=self._tolerance,
        )
        if verdict == "applied":
            outcome = await self._conclude(
                entry, verdict, f"reconciled as applied (by {basis}): {numbers}", numbers
            )
        elif verdict == "not_applied":
            if not allow_not_applied:
                return ReconcileResult(entry.id, entry.state, entry.detail)
            outcome = await self._conclude_not_applied(entry, basis, numbers, src_now, dst_now)
        else:
            return await self._still_unknown(entry, f"cannot reconcile: {basis} ({numbers})")
        if isinstance(outcome, ReconcileResult):
            return outcome
        self._doubt_since.pop(entry.id, None)
        log_event(log, logging.INFO, "transfer reconciled", entry=entry.id, state=outcome.state,
                  detail=outcome.detail)  # fmt: skip
        await self._emit(outcome)
        return ReconcileResult(outcome.id, outcome.state, outcome.detail)

    async def _reconcile_by_venue(self, entry: Entry) -> ReconcileResult:
        """Resolve ``entry`` from the venue's own state of the request tagged with its id
        (``find_sent``): found -> applied; absent or unreadable -> still unknown (an operator
        decides: absence now does not prove the request will never be applied)."""
        assert self._find_sent is not None
        accounts = (entry.src or "", entry.dst or "")
        held = [
            h for h in await self.journal.active_holds(owner=self.owner) if h.account in accounts
        ]
        if held:  # an operator is looking at these accounts: theirs to decide
            return await self._still_unknown(
                entry, f"not reconciling automatically: {self._name(held[0].account)} is held "
                f"({held[0].reason})",
            )  # fmt: skip
        try:
            found = await self._find_sent(entry.id)
        except Exception as exc:
            found, why = None, f"the venue's state could not be read ({type(exc).__name__}: {exc})"
        else:
            why = "the venue's state does not tell yet"
        if found is None:
            return await self._still_unknown(entry, f"cannot reconcile yet: {why}")
        if not found:
            # Absent is evidence of now, not of never: a request the venue holds past our
            # timeout may still be applied, and no balance would show it (a balance venue's
            # "not applied" verdict keeps a 24 h balance watch for that; here there is nothing
            # to watch). So it stays unknown, its pair refused, until the venue shows it or an
            # operator who checked the venue resolves it.
            return await self._still_unknown(
                entry, "the venue has no such request (yet); absence is not proof that it will "
                "never be applied, so qfexbot will not declare it not applied: check the venue",
            )  # fmt: skip
        outcome = await self._conclude(
            entry, "applied", "reconciled as applied: the venue has the request", "found"
        )
        if isinstance(outcome, ReconcileResult):
            return outcome
        log_event(log, logging.INFO, "transfer reconciled", entry=entry.id, state=outcome.state,
                  detail=outcome.detail)  # fmt: skip
        await self._emit(outcome)
        return ReconcileResult(outcome.id, outcome.state, outcome.detail)

    async def _not_reconcilable(self, entry: Entry) -> str | None:
        """Why ``entry`` gets no automatic verdict now, or None when balances may settle it.

        Starts its quiet time (``settle_seconds``) once its "before" balances are known.
        """
        if entry.src_before is None or entry.dst_before is None:
            return "cannot reconcile: balances before the transfer were not recorded"
        self._doubt_since.setdefault(entry.id, trio.current_time())
        accounts = (entry.src or "", entry.dst or "")
        held = [
            h for h in await self.journal.active_holds(owner=self.owner) if h.account in accounts
        ]
        if held:
            return (
                f"not reconciling automatically: {self._name(held[0].account)} is held "
                f"({held[0].reason})"
            )
        marked = await self.journal.entry_holds(entry.id)
        if marked:
            # Released or not: once its accounts moved unexplained, no balance reading can
            # tell whether this transfer landed (a later "clean" one may be two moves netting).
            return (
                f"not reconciling automatically: {self._name(marked[0].account)} was held "
                f"because of this transfer ({marked[0].code}: {marked[0].reason}); balances "
                f"can no longer settle it"
            )
        return None

    async def _conclude(
        self,
        entry: Entry,
        verdict: str,
        detail: str,
        numbers: str,
        watch_from: tuple[Decimal, Decimal] | None = None,
    ) -> Entry | ReconcileResult:
        """Resolve ``entry`` as the evidence says (the resolved entry), unless an operator
        resolved it meanwhile (then the result of ``_resolved_meanwhile``)."""
        try:
            if verdict == "applied":
                return await self.journal.resolve(entry.id, True, "reconcile", detail)
            return await self.journal.resolve(
                entry.id, False, "reconcile", detail, watch_from=watch_from
            )
        except InvalidTransition:
            return await self._resolved_meanwhile(entry, verdict, numbers)

    async def _conclude_not_applied(
        self,
        entry: Entry,
        basis: str,
        numbers: str,
        src_now: BalanceReading,
        dst_now: BalanceReading,
    ) -> Entry | ReconcileResult:
        """ "Not applied", once the entry has been quiet for ``settle_seconds``; the verdict and
        its late-landing watch (from the deposits read now) are one journal transaction."""
        quiet = trio.current_time() - self._doubt_since[entry.id]
        if quiet < self._settle:
            return await self._still_unknown(
                entry, f"balances unchanged, but in doubt for less than {self._settle:g} s "
                f"(transfer_settle, counted by this process); not declaring it not applied "
                f"yet: {numbers}",
            )  # fmt: skip
        watch_from = None
        if src_now.deposit is not None and dst_now.deposit is not None:
            watch_from = (src_now.deposit, dst_now.deposit)
        resolved = await self._conclude(
            entry, "not_applied", f"reconciled as not applied (by {basis}): {numbers}", numbers,
            watch_from,
        )  # fmt: skip
        if isinstance(resolved, ReconcileResult):
            return resolved
        if watch_from is None and None in (entry.src_deposit_before, entry.dst_deposit_before):
            log_event(log, logging.WARNING, "no deposits reported: a late landing of this "
                      "transfer could not be detected", entry=entry.id)  # fmt: skip
        else:
            self._watch_since[entry.id] = trio.current_time()
        return resolved

    async def _resolved_meanwhile(
        self, entry: Entry, verdict: str, numbers: str
    ) -> ReconcileResult:
        """An operator resolved ``entry`` while this pass read its balances: theirs stands, but
        evidence that contradicts a "not applied" is never dropped (a retry would double it)."""
        self._doubt_since.pop(entry.id, None)
        current = await self.journal.get(entry.id)
        if current is None:
            raise InvalidTransition(f"transfer {entry.id} vanished from the journal")
        if verdict == "applied" and current.state == EntryState.FAILED:
            watches = await self.journal.watches(self.venue, owner=self.owner)
            watched = any(w.entry_id == current.id for w in watches)
            log_event(log, logging.ERROR, "an operator resolved a transfer NOT applied while "
                      "reconciliation found it APPLIED", entry=current.id,
                      src=self._name(current.src), dst=self._name(current.dst),
                      amount=str(current.amount), detail=numbers,
                      operator="check the venue's balances and history now; do not move this "
                      "money again by hand; "
                      + ("its late-landing watch re-checks it and re-marks it done if the "
                         "deposits show it" if watched else
                         "no watch can check it (no deposits recorded), so both accounts are "
                         "held until you release them"))  # fmt: skip
            if not watched:
                await self._place_holds(
                    current, "contradicted_resolution",
                    f"resolved not applied by an operator, but reconciliation found it applied: "
                    f"{numbers}",
                )  # fmt: skip
        else:
            agrees = (verdict == "applied") == (current.state == EntryState.DONE)
            log_event(log, logging.INFO if agrees else logging.WARNING,
                      "journal entry resolved elsewhere meanwhile; that verdict stands",
                      entry=current.id, state=current.state,
                      evidence=f"{verdict}: {numbers}")  # fmt: skip
        return ReconcileResult(current.id, current.state, current.detail)

    async def _still_unknown(self, entry: Entry, why: str) -> ReconcileResult:
        detail = f"{why}; operator: `qfexbot journal resolve {entry.id} --applied|--not-applied`"
        if entry.detail != detail:
            entry = await self.journal.annotate(entry.id, detail)
            log_event(log, logging.WARNING, "transfer still unknown", entry=entry.id, detail=detail)
        return ReconcileResult(entry.id, entry.state, entry.detail)

    # -- account holds: durable pauses only an operator lifts --------------------------------

    async def _held_decision(self, src: str, dst: str) -> PolicyDecision | None:
        """A refusal if an account hold (late landing, unexplained deposits) covers src or dst."""
        for hold in await self.journal.active_holds(owner=self.owner):
            if hold.account in (src, dst):
                return PolicyDecision(
                    False,
                    f"{self._name(hold.account)} is held since {hold.code}: {hold.reason}; no "
                    f"money moves on it until an operator checks the venue and runs "
                    f"`qfexbot journal release {self._name(hold.account)}`",
                    "account_held",
                )
        return None

    async def _place_holds(self, entry: Entry, code: str, reason: str) -> None:
        """Hold both accounts of ``entry`` (once per entry and code), logged at ERROR."""
        active = await self.journal.active_holds(owner=self.owner)
        have = {(h.account, h.entry_id, h.code) for h in active}
        placed: list[Hold] = []
        for account in (entry.src or "", entry.dst or ""):
            if (account, entry.id, code) not in have:
                placed.append(await self.journal.place_hold(
                    self.venue, account, code, reason, entry.id, owner=self.owner
                ))  # fmt: skip
                self._log_hold(placed[-1])
        self._alert_holds(entry.id, placed)

    def _alert_holds(self, entry_id: str, holds: Sequence[Hold]) -> None:
        """One alert for the accounts just held because of ``entry_id`` (none if none)."""
        if not holds or self._on_alert is None:
            return
        code = holds[0].code
        kind = AlertKind.LATE_LANDING if code == "late_landing" else AlertKind.UNEXPLAINED_BALANCE
        names = ", ".join(self._name(h.account) for h in holds)
        try:
            self._on_alert(
                make_alert(
                    kind,
                    AlertSeverity.CRITICAL,
                    f"accounts {names} held ({code}) by transfer {entry_id}: {holds[0].reason}; "
                    f"check the venue, then `qfexbot journal release`",
                    venue=self.venue,
                    account=self._name(holds[0].account),
                    subject=entry_id,
                    entry=entry_id,
                    code=code,
                    accounts=names,
                )
            )
        except Exception:
            log.exception("transfer alert callback failed")

    def _log_hold(self, hold: Hold) -> None:
        """The ERROR an operator sees for every hold placed, with what to do."""
        log_event(log, logging.ERROR, "account held: money movement on it is paused",
                  account=self._name(hold.account), entry=hold.entry_id, code=hold.code,
                  detail=hold.reason, operator="check the venue's balances and history; "
                  f"resolve the entry if it is in doubt (`qfexbot journal resolve {hold.entry_id} "
                  "--applied|--not-applied`), then `qfexbot journal release "
                  f"{self._name(hold.account)}`")  # fmt: skip

    async def _unexplained(self, entry: Entry, numbers: str) -> ReconcileResult:
        """Deposits moved by something this journal cannot explain while ``entry`` is in doubt.

        Another mover (a second process, a human in the web app) may have moved these accounts:
        then no balance reading can tell whether ``entry`` landed, so no verdict is ever drawn
        from them: it stays unknown and both accounts are held until an operator looks.
        """
        why = (
            f"deposits moved by something other than this transfer while it was in doubt "
            f"(another mover on these accounts?): {numbers}"
        )
        await self._place_holds(entry, "unexplained_deposits", why)
        await self._hold_watched_near(entry, why)
        return await self._still_unknown(entry, f"cannot conclude: {why}")

    async def _hold_watched_near(self, entry: Entry, why: str) -> None:
        """A watched "not applied" transfer on one of ``entry``'s accounts may be what moved
        them (landing late); its watch now waits on a held account, so hold its accounts too."""
        touched = {entry.src, entry.dst}
        for watch in await self._watches_here():
            if watch.entry_id == entry.id or not {watch.src, watch.dst} & touched:
                continue
            await self._hold_watched(
                watch,
                (
                    f"transfer {watch.entry_id} ({self._name(watch.src)} -> "
                    f"{self._name(watch.dst)}, {watch.amount}) was reconciled not applied and is "
                    f"watched for a late landing; deposits it touches moved unexplained while "
                    f"{entry.id} was in doubt, so it may have landed: {why}"
                ),
            )

    async def _watches_here(self) -> list[Watch]:
        """The active watches this service checks: its owner's, between accounts it names
        (another venue table of the same user checks its own)."""
        named = set(self._accounts.ids())
        return [
            w for w in await self.journal.watches(self.venue, owner=self.owner)
            if not named or (w.src in named and w.dst in named)
        ]  # fmt: skip

    async def _hold_watched(self, watch: Watch, reason: str) -> None:
        """Hold both accounts of a watched transfer whose landing can no longer be told apart."""
        watched = await self.journal.get(watch.entry_id)
        if watched is not None:
            await self._place_holds(watched, "unexplained_deposits", reason)

    # -- the late-landing watch ----------------------------------------------------------------

    async def _check_watches(self, reader: ReadBalance) -> list[ReconcileResult]:
        """One pass over the watched "not applied" transfers: expire old ones, catch landings.

        A watch ends after ``late_watch`` both on the wall clock (since it began) and on trio's
        clock (since this process began watching it), so a clock step never ends one early.
        Watches on held accounts wait: an operator is already looking at those. A watch whose
        entry is no longer ``failed`` is closed (``_close_settled_watch``), never skipped forever.
        """
        results = []
        now = trio.current_time()
        held = {h.account for h in await self.journal.active_holds(owner=self.owner)}
        for watch in await self._watches_here():
            since = self._watch_since.setdefault(watch.entry_id, now)
            wall_age = self._clock() - watch.started_at
            if now - since >= self._late_watch and wall_age >= self._late_watch:
                await self.journal.update_watch(watch.entry_id, "expired", watch.last_src,
                                                watch.last_dst)  # fmt: skip
                self._watch_since.pop(watch.entry_id, None)
                continue
            if watch.src in held or watch.dst in held:
                continue
            async with self._hold(watch.src, watch.dst):
                entry = await self.journal.get(watch.entry_id)
                if entry is None or entry.state != EntryState.FAILED:
                    result = await self._close_settled_watch(watch, entry)
                else:
                    try:
                        result = await self._check_watch(watch, reader)
                    except InvalidTransition:
                        continue  # settled meanwhile: the next pass closes the watch
            if result is not None:
                held.update((watch.src, watch.dst))
                results.append(result)
        return results

    async def _check_watch(self, watch: Watch, reader: ReadBalance) -> ReconcileResult | None:
        """Did the watched transfer land late? Deposits since the watch began, less what this
        journal's later transfers on those accounts explain, equal to exactly ±amount."""
        explained = explained_moves(
            await self.journal.transfers_after(
                watch.entry_id, self.venue, (watch.src, watch.dst), owner=self.owner
            ),
            watch.src,
            watch.dst,
        )
        if explained is None:
            return None  # a later transfer is unresolved: its own reconciliation goes first
        try:
            src_now, dst_now = await self._read_both(watch.src, watch.dst, reader)
        except Exception:
            return None
        if src_now.deposit is None or dst_now.deposit is None:
            return None
        u_src = src_now.deposit - watch.src_deposit - explained[watch.src]
        u_dst = dst_now.deposit - watch.dst_deposit - explained[watch.dst]
        amount = watch.amount
        verdict = watch_verdict(
            amount, (u_src, u_dst), (watch.last_src, watch.last_dst), self._tolerance
        )
        if verdict == "moved":
            # The landing may hide inside that movement: no reading can tell any more.
            await self.journal.update_watch(watch.entry_id, "watching", u_src, u_dst)
            await self._hold_watched(
                watch,
                (
                    f"deposits moved in a way this journal does not explain (another mover on "
                    f"these accounts?) while transfer {watch.entry_id}, reconciled not applied, "
                    f"is watched for a late landing: unexplained since then "
                    f"{self._name(watch.src)} {u_src}, {self._name(watch.dst)} {u_dst}; "
                    f"amount {amount}; it may have landed within that movement"
                ),
            )
        if verdict != "landed":
            return None
        detail = (
            f"late landing: reconciled not applied, then deposits moved by exactly the amount "
            f"with no transfer of ours to explain it (unexplained since then: "
            f"{self._name(watch.src)} {u_src}, {self._name(watch.dst)} {u_dst}; amount {amount}); "
            f"a later transfer on these accounts may have moved the money a second time"
        )
        # Re-marked done, both accounts held and the watch closed: one journal transaction,
        # so a crash cannot leave a recorded late landing without its holds.
        entry, placed = await self.journal.record_late_landing(
            watch.entry_id, "reconcile", detail, self.venue, self.owner, u_src, u_dst
        )
        self._watch_since.pop(watch.entry_id, None)
        self.late_landings += 1
        log_event(log, logging.ERROR, "LATE LANDING: a transfer reconciled not applied was "
                  "applied by the venue after all", entry=entry.id, src=self._name(watch.src),
                  dst=self._name(watch.dst), amount=str(amount), detail=detail)  # fmt: skip
        for hold in placed:
            self._log_hold(hold)
        self._alert_holds(entry.id, placed)
        await self._emit(entry)
        return ReconcileResult(entry.id, entry.state, entry.detail)

    async def _close_settled_watch(
        self, watch: Watch, entry: Entry | None
    ) -> ReconcileResult | None:
        """A watch whose entry is no longer ``failed``: close it. If a late landing was
        recorded on it (``failed -> done`` by reconcile) make sure both accounts are held: a
        journal written by an older version may hold the landing without its holds."""
        self._watch_since.pop(watch.entry_id, None)
        trail = [] if entry is None else await self.journal.events(entry.id)
        landed = (
            entry is not None
            and entry.state == EntryState.DONE
            and any(
                (e["from_state"], e["to_state"], e["by"]) == ("failed", "done", "reconcile")
                for e in trail
            )
        )
        if entry is None or not landed:
            await self.journal.update_watch(watch.entry_id, "closed", watch.last_src,
                                            watch.last_dst)  # fmt: skip
            log_event(log, logging.WARNING, "late-landing watch closed: its transfer was "
                      "settled some other way", entry=watch.entry_id,
                      state=entry.state if entry else "missing")  # fmt: skip
            return None
        self.late_landings += 1
        log_event(log, logging.ERROR, "LATE LANDING recorded earlier without its account holds "
                  "(interrupted pass): holding the accounts now", entry=entry.id,
                  src=self._name(watch.src), dst=self._name(watch.dst),
                  amount=str(watch.amount), detail=entry.detail)  # fmt: skip
        await self._place_holds(entry, "late_landing", entry.detail)
        await self.journal.update_watch(watch.entry_id, "landed", watch.last_src, watch.last_dst)
        return ReconcileResult(entry.id, entry.state, entry.detail)
