"""Chaos soak: the whole runtime against the simulator while a fault schedule hits it; then checks.

Run ``python bench/soak.py --minutes N [--runs K]`` for long soaks (K seeds in a row; the CI
test, tests/reliability/test_soak.py, runs a ~20 s one with a fresh seed). One in-process
:class:`~qfexbot.runtime.Runtime` runs three bots over many subaccounts against a simulator the
soak starts itself, behind a :class:`~qfexbot.sim.common.netproxy.FaultProxy` (trade and market-data
WebSockets go through it; REST goes straight to the simulator):

* ``trader``: ``plugins/demo_trader.py`` sends market orders on the trading desks (order and
  fill events flow), plus the shared market-data feed (mark prices);
* ``mover``: a transferring plugin moves money round a ring of vault accounts every 50 ms
  (vaults do not trade, so a transfer in doubt is always reconcilable from balance deltas);
  with ``trading_transfers`` (``--trading-transfers``) the ring also runs through the trading
  desks, whose transfers in doubt can only be reconciled from their ``deposit`` balances
  (see ``qfexbot/money/transfers.py``);
* ``audit``: records every private event of every desk and vault, for the gap check.

Faults, one every ~0.6 s at random: connection drops (one account or all), rejected auths,
failed (5xx/429) and delayed REST calls, lost transfer responses (timeout and reset), stalled
pulses (stale streams), malformed frames, the network's own (``net_*``: a stall with no
FIN, a half-open link, a reset mid-frame, slow reads, a partial frame then silence; on one
account's trade link, on all of them, or on the market-data link), and two money edges:
``late_landing`` (the next transfer POST is held ``LATE_HOLD`` s, past the request timeout,
``transfer_settle`` and a periodic reconciliation pass, then applied) and ``outside_mover``
(another client moves a few cents between two ring accounts, half the time those of a
transfer in doubt). Then the faults stop and the checks run:

1. no unhandled exception, no ERROR log line, no plugin disabled;
2. every session (and the market-data feed) LIVE again;
3. no gap: every private event the sim numbered while a session was observed LIVE on one and
   the same connection (and before any fault cut it) reached the audit plugin;
4. after reconciliation (``check_money``), per account pair, the journal's ``done`` transfers
   equal the sim's ledger of qfexbot's own moves exactly (same count and amounts; no
   duplicate), or both accounts are held (journal ``holds``) and the difference is reported as
   an *explained* line; every hold has a reason, an ERROR alert and a cause the soak injected;
   nothing is left pending/sent, and an ``unknown`` only on a held account.

The checks are checked: ``run_soak(..., drop_event=True)`` removes one delivered private event
before the gap check, ``duplicate_transfer=True`` sends one journaled transfer a second time
straight to the simulator and ``unmarked_outside=True`` makes an outside move labelled as
qfexbot's own; each must make the report name a problem. The report also carries
the process RSS at the start and end of each run (``--runs``: of the whole run too).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import resource
import sqlite3
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import trio

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchlib import until

import qfexbot.runtime as runtime_module
from qfexbot.config import AppConfig, load_config
from qfexbot.core.session import SessionNotLive
from qfexbot.events import ConnectionState
from qfexbot.money.account_locks import ENV as LOCK_DIR_ENV
from qfexbot.runtime import Runtime
from qfexbot.sim import QfexSimulator, SimConfig, SimUser
from qfexbot.sim.common import netproxy
from qfexbot.sim.common.connection import WsPeer, dumps
from qfexbot.sim.common.netproxy import FaultProxy
from qfexbot.sim.qfex.trade_ws import TradeConnection

__all__ = [
    "FAULT_KINDS",
    "MONEY_FAULTS",
    "NET_FAULTS",
    "SoakReport",
    "check_delivery",
    "check_delivery_order",
    "check_money",
    "rss_kib",
    "run_soak",
    "total_line",
]

PRIMARY = "0020ce8e-eaee-480e-8d7f-b9241d756ee5"
PUBLIC_KEY = "qfex_pub_soak"
SECRET = "qfex_secret_soak_5e1f"
SECRET_ENV = "QFEXBOT_SOAK_SECRET"  # a real (not embedded) venue reads its secret by reference
REQUEST_TIMEOUT = 1.0
NET_FAULTS = {f"net_{kind}": kind for kind in netproxy.FAULT_KINDS}
"""Soak fault kind -> :data:`qfexbot.sim.common.netproxy.FAULT_KINDS` kind (the proxy injects)."""
MONEY_FAULTS = ["late_landing", "outside_mover"]
"""Money-edge faults (docs/reliability.md "Money edges" 1 and 3c): they may hold accounts."""
DOUBT_FAULTS = ["fail_rest", "delay_rest", "lose_transfer_response"]
"""Faults that can leave a transfer in doubt, which refuses every transfer on its accounts until
reconciled (possibly for the rest of a run): in the first round they come after the first
late_landing, so the mover is free to make the POST that fault holds."""
FAULT_KINDS = [
    "drop_one",
    "drop_all",
    "reject_auth",
    "fail_rest",
    "delay_rest",
    "lose_transfer_response",
    "stall_pulses",
    "malformed",
    *NET_FAULTS,
    *MONEY_FAULTS,
]
TRANSFER_SETTLE = REQUEST_TIMEOUT * 3
"""The soak's ``transfer_settle``: far below the 600 s default, so that "not applied" can be
concluded within a run (delay_rest holds requests up to 2 x request_timeout, less than this)."""
RECONCILE_EVERY = 2.0
"""The runtime's periodic (full) reconciliation pass in the soak (15 s in production)."""
LATE_HOLD = (
    TRANSFER_SETTLE + 2 * RECONCILE_EVERY + 1.0,
    TRANSFER_SETTLE + 2 * RECONCILE_EVERY + 3.0,
)
"""late_landing holds one transfer POST this long (s): past the request timeout, the settle time
and a periodic pass, so reconciliation may conclude "not applied" before it lands."""
HOLD_CODES = ("late_landing", "unexplained_deposits")
REOPEN_SLACK = 0.5
"""After a network fault that left the connection up, its window reopens this long (s) after
the fault's end, on the first LIVE observation of that same connection."""
LATE_TAKEN_WITHIN = 25.0
"""The first late_landing waits at most this long (s) for the mover's next POST to take the hold.
On a loaded machine (the suite runs a worker per core) a POST can outlast the 1 s request
timeout: its doubt refuses the mover on those accounts until reconciled (settle + a periodic
pass, ~5 s), so the wait may span a few such cycles (seen: 10 s was not enough, 1 run in 4)."""
MALFORMED_COUNTED_WITHIN = 10.0
"""The first malformed frame is repeated at most this long (s) until a client counted it."""
"""The first late_landing waits at most this long (s) for a transfer POST to hold."""
DESK_DEPOSIT, VAULT_DEPOSIT, TREASURY_DEPOSIT = 1000000, 5000, 1000000

AUDIT = '''
"""Soak plugin: keeps the raw text of every order/fill event, per account."""
from collections import Counter, defaultdict

from qfexbot import ConnectionStateEvent, FillEvent, OrderUpdateEvent, hookimpl


class Audit:
    def __init__(self, config):
        self.frames = defaultdict(Counter)
        # Per account, in delivery order: ("event", raw frame) and ("state", state value).
        self.log = defaultdict(list)
        self.events = 0

    @hookimpl
    def qfexbot_event(self, ctx, event):
        self.events += 1
        if isinstance(event, (OrderUpdateEvent, FillEvent)):
            self.frames[event.account_id][event.raw] += 1
            self.log[event.account_id].append(("event", event.raw))
        elif isinstance(event, ConnectionStateEvent):
            self.log[event.account_id].append(("state", event.state.value))
'''

MOVER = '''
"""Soak plugin: moves ``amount`` round the ``ring`` of accounts, one hop per tick."""
from decimal import Decimal

from qfexbot import Field, TimerEvent, hookimpl


class Mover:
    config_schema = {
        "ring": Field("accounts"),
        "interval": Field("duration", default=0.05),
    }

    def __init__(self, config):
        self.ring = list(config["ring"])
        self.interval = float(config["interval"])
        self.turn = 0
        self.outcomes = {}
        self.paused = False  # set by the soak before its final reconciliation
        self.busy = False

    @hookimpl
    def qfexbot_schedules(self, ctx):
        return [("hop", self.interval)]

    @hookimpl
    async def qfexbot_event(self, ctx, event):
        if not isinstance(event, TimerEvent) or self.paused:
            return
        self.busy = True
        i = self.turn % len(self.ring)
        self.turn += 1
        amount = Decimal(1) + Decimal(self.turn % 97) / 100
        result = await ctx.transfer(self.ring[i], self.ring[(i + 1) % len(self.ring)], amount,
                                    "soak")
        key = f"{result.state}:{result.code}" if result.code else result.state
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
        self.busy = False
'''


def _uuid(n: int) -> str:
    return f"{n:08d}-0000-4000-8000-{n:012d}"


@dataclass
class SoakReport:
    """Figures of one soak run and the problems found (empty when it passed)."""

    seed: int = 0
    seconds: float = 0.0
    accounts: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    net_links_faulted: int = 0
    reconnects: int = 0
    parse_errors: int = 0
    private_events_emitted: int = 0
    private_events_checked: int = 0
    private_events_missing: int = 0
    private_events_delivered: int = 0
    private_events_not_written: int = 0
    private_events_written: int = 0
    private_events_in_order: int = 0
    private_events_lost_in_gaps: int = 0
    events_seen_by_audit: int = 0
    transfers_landed: int = 0
    held_posts_landed: int = 0
    outside_moves: int = 0
    outside_moves_in_doubt: int = 0
    late_landings: int = 0
    holds: Counter[str] = field(default_factory=Counter)
    unknown_at_end: int = 0
    explained: list[str] = field(default_factory=list)
    journal_states: Counter[str] = field(default_factory=Counter)
    reconciled_at_end: int = 0
    orders: int = 0
    orders_refused_not_live: int = 0
    sim_closes: Counter[str] = field(default_factory=Counter)
    mover_outcomes: dict[str, int] = field(default_factory=dict)
    rss_start_kib: int = 0
    rss_end_kib: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One line per seed: the figures docs/reliability.md records, and the verdict."""
        verdict = "ok" if not self.problems else f"{len(self.problems)} PROBLEMS"
        return (
            f"seed={self.seed} {verdict} {self.seconds:g}s faults={sum(self.faults.values())} "
            f"reconnects={self.reconnects} private events emitted="
            f"{self.private_events_emitted} checked={self.private_events_checked} "
            f"missing={self.private_events_missing} transfers={self.transfers_landed} "
            f"outside={self.outside_moves} late_landings={self.late_landings} "
            f"holds={sum(self.holds.values())} unknown={self.unknown_at_end} "
            f"explained={len(self.explained)} "
            f"rss={self.rss_start_kib}->{self.rss_end_kib} KiB"
        )

    def summary(self) -> str:
        data = asdict(self)
        data["faults"] = dict(self.faults)
        data["journal_states"] = dict(self.journal_states)
        data["holds"] = dict(self.holds)
        data["sim_closes"] = dict(self.sim_closes)
        return json.dumps(data, indent=2, default=str)


def _names(desks: int, vaults: int) -> tuple[list[str], list[str]]:
    return [f"desk-{i}" for i in range(1, desks + 1)], [f"vault-{i}" for i in range(1, vaults + 1)]


def sim_config(*, desks: int, vaults: int, seed: int) -> SimConfig:
    """The simulator of the soak: the venue's user, its desks and vaults, their deposits.

    Pings every 2 s (pong within 2 s) so that slow client reads can end in a pong timeout."""
    desk_names, vault_names = _names(desks, vaults)
    ids = [_uuid(i + 1) for i in range(len(desk_names) + len(vault_names))]
    deposits = {PRIMARY: Decimal(TREASURY_DEPOSIT)}
    deposits.update({account: Decimal(DESK_DEPOSIT) for account in ids[:desks]})
    deposits.update({account: Decimal(VAULT_DEPOSIT) for account in ids[desks:]})
    user = SimUser(
        public_key=PUBLIC_KEY, secret=SECRET, account_id=PRIMARY, subaccounts=ids, deposits=deposits
    )
    return SimConfig(
        users=[user], seed=seed, pulse_interval=0.2, ping_interval=2.0, pong_timeout=2.0
    )


def _ring(desks: int, vaults: int, trading_transfers: bool) -> list[str]:
    """The aliases the mover moves money round, in order."""
    desk_names, vault_names = _names(desks, vaults)
    return ["treasury", *vault_names, *(desk_names if trading_transfers else ())]


def write_config(
    directory: Path,
    *,
    desks: int,
    vaults: int,
    seed: int,
    urls: dict[str, str],
    trading_transfers: bool = False,
) -> Path:
    """bots.toml + soak plugins in ``directory``; the venue is at ``urls`` (trade_url, mds_url,
    rest_url: the proxy's and the simulator's), its secret in ``$QFEXBOT_SOAK_SECRET``."""
    plugins = directory / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "soak_audit.py").write_text(AUDIT)
    (plugins / "soak_mover.py").write_text(MOVER)
    (directory / "var").mkdir(exist_ok=True)
    desk_names, vault_names = _names(desks, vaults)
    accounts = "\n".join(
        f'{name} = "{_uuid(i + 1)}"' for i, name in enumerate(desk_names + vault_names)
    )
    ring = json.dumps(_ring(desks, vaults, trading_transfers))
    text = (
        textwrap.dedent(f"""\
        [runtime]
        journal = "var/journal.sqlite"
        state_dir = "var/state"
        plugin_dirs = ["plugins", "{REPO / "plugins"}"]
        kill_switch_file = "var/PAUSED"
        log_level = "info"

        [venues.demo]
        kind = "qfex"
        trade_url = "{urls["trade_url"]}"
        mds_url = "{urls["mds_url"]}"
        rest_url = "{urls["rest_url"]}"
        user_id = "{PRIMARY}"
        public_key = "{PUBLIC_KEY}"
        secret = {{ env = "{SECRET_ENV}" }}

        [venues.demo.accounts]
        treasury = "primary"
        """)
        + accounts
        + textwrap.dedent(f"""

        [venues.demo.session]
        connect_timeout = 2.0
        auth_timeout = 2.0
        stale_after = 1.5
        backoff_initial = 0.05
        backoff_max = 0.5
        healthy_after = 5.0
        request_timeout = {REQUEST_TIMEOUT}
        # delay_rest holds requests up to 2 x request_timeout; "not applied" waits longer,
        # but less than a late_landing hold (LATE_HOLD), so a late landing can really happen.
        transfer_settle = {TRANSFER_SETTLE}

        [bots.trader]
        venue = "demo"
        accounts = {json.dumps(desk_names)}
        channels = ["order_responses", "fills", "balances", "positions"]
        market_data = {{ channels = ["mark_price"], symbols = ["AAPL-USD"] }}

        [bots.trader.plugins.demo_trader]
        use = "demo_trader:DemoTrader"
        failure_limit = 1000000  # it does not catch SessionNotLive while reconnecting
        quantity = 1
        interval = 0.05
        seed = {seed}

        [bots.mover]
        venue = "demo"
        accounts = {ring}
        channels = ["balances"]

        [bots.mover.limits]
        max_transfer = 10
        max_daily = 10000000
        min_interval = 0

        [bots.mover.plugins.mover]
        use = "soak_mover:Mover"
        ring = {ring}

        [bots.audit]
        venue = "demo"
        accounts = {json.dumps(desk_names + vault_names)}
        channels = ["order_responses", "fills"]

        [bots.audit.plugins.audit]
        use = "soak_audit:Audit"
        """)
    )
    path = directory / "bots.toml"
    path.write_text(text)
    return path


class _Windows:
    """Per account: seq ranges in which one connection was observed LIVE and not cut by a fault.

    Every private event the sim numbered inside a range and wrote to a socket must have been
    delivered (QFEX does not replay private events: the contract covers what the venue sent
    before its close; an event numbered but still queued behind the close, or when the client
    went away, never left the sim, and is counted as ``private_events_not_written``). The range
    opens at the first observation of LIVE (events after it were sent on a subscribed socket)
    and closes at the last observation on the same connection, or at a fault that cut it.
    A network fault does not always end the connection (a stall or slow reads shorter than the
    watchdogs, a partial frame whose rest follows): the proxy then loses no byte, so once the
    fault is over a LIVE observation on that same connection opens a new range (``reopen``).
    Without that, the rest of such a connection's life went unchecked (seed 844139717: about
    half of all events, and "private events checked" fell below half of those emitted).
    """

    def __init__(self, runtime: Runtime, sim: Any) -> None:
        run = runtime.venues["demo"]
        self.sessions = run.sessions
        self.sim = sim
        self.delivered: dict[str, Counter[str]] = runtime.hosts["audit"].slots[0].plugin.frames
        self.open: dict[str, tuple[int, int, int]] = {}  # account -> (reconnects, start, last)
        # account -> (reconnects count of the cut connection, trio time after which a LIVE
        # observation on it opens a new range; None: never, the fault ends that connection)
        self.cut: dict[str, tuple[int, float | None]] = {}
        self.closed: dict[str, list[tuple[int, int]]] = {a: [] for a in self.sessions}
        self.history: dict[str, dict[int, str]] = {a: {} for a in self.sessions}
        # Seqs the sim wrote to a socket; its record keeps the last events only, so sampled.
        self.written: dict[str, set[int]] = {a: set() for a in self.sessions}
        self.trace: dict[str, list[tuple[float, str, int, int]]] = {a: [] for a in self.sessions}

    def _close(self, account: str, end: int | None = None) -> None:
        if account in self.open:
            _, start, last = self.open.pop(account)
            last = last if end is None else min(last, end)
            if last > start:
                self.closed[account].append((start, last))

    def cut_now(
        self,
        accounts: list[str] | None = None,
        *,
        in_flight_lost: bool = False,
        reopen_after: float | None = None,
    ) -> None:
        """A fault is about to end the current connection of these accounts (None: all).

        A sim close is queued behind the frames already queued, so the window ends at the sim's
        latest event. A network fault can eat the frames in flight (``in_flight_lost``): the
        window then ends at the latest event already delivered (frames on one connection
        arrive in order, so every earlier one was delivered too, or is missing).

        ``reopen_after`` (s; network faults that lose no byte of a connection they leave up):
        once it has passed, the same connection observed LIVE opens a new window. A cut with
        None (the fault ends the connection) is never reopened, not by a later fault either."""
        now = trio.current_time()
        for account in accounts if accounts is not None else list(self.sessions):
            end = self.delivered_seq(account) if in_flight_lost else self.sim.event_seq(account)
            self._close(account, end)
            rc = self.sessions[account].stats.reconnects
            reopen = None if reopen_after is None else now + reopen_after
            previous = self.cut.get(account)
            if previous is not None and previous[0] == rc and reopen is not None:
                reopen = None if previous[1] is None else max(previous[1], reopen)
            self.cut[account] = (rc, reopen)
            self.trace[account].append((round(now, 3), "CUT", rc, self.sim.event_seq(account)))

    def delivered_seq(self, account: str) -> int:
        """Number of the account's latest private event the audit plugin has received."""
        delivered = self.delivered.get(account, {})
        for event in reversed(self.sim.engine.accounts[account].events):
            if dumps(event.frame) in delivered:
                return event.seq
        return 0

    def lose_now(self, account: str) -> None:
        """The sim dropped this account's queued frames (slow consumer): forget the window."""
        self.open.pop(account, None)
        rc = self.sessions[account].stats.reconnects
        self.cut[account] = (rc, None)
        self.trace[account].append(
            (round(trio.current_time(), 3), "LOST", rc, self.sim.event_seq(account))
        )

    def sample(self) -> None:
        engine = self.sim.engine
        for account, session in self.sessions.items():
            seen = self.history[account]
            for event in engine.accounts[account].events:
                seen.setdefault(event.seq, dumps(event.frame))
            self.written[account].update(self.sim.trade.written_seqs(account))
            rc, seq = session.stats.reconnects, self.sim.event_seq(account)
            live = session.state is ConnectionState.LIVE
            trace = self.trace[account]
            if not trace or trace[-1][1:3] != (session.state.value, rc):
                trace.append((round(trio.current_time(), 3), session.state.value, rc, seq))
            cut = self.cut.get(account)
            if cut is not None and cut[0] == rc:
                if cut[1] is None or trio.current_time() < cut[1]:
                    continue  # still the connection a fault cut
                del self.cut[account]  # it outlived a fault that lost nothing: check it again
                trace.append((round(trio.current_time(), 3), "REOPEN", rc, seq))
            current = self.open.get(account)
            if current is not None and (not live or current[0] != rc):
                self._close(account)
                current = None
            if live:
                self.open[account] = (rc, current[1] if current else seq, seq)

    def finish(self) -> None:
        for account in list(self.open):
            self._close(account)


@contextlib.contextmanager
def _watch_sim_closes(windows: _Windows, report: SoakReport) -> Iterator[None]:
    """Cut an account's window whenever the sim ends one of its trade connections itself.

    Besides the injected drops, the sim closes on a missed pong and disconnects a slow
    consumer (its queued frames are then discarded). QFEX does not replay private events, so
    events after such a close are lost by the venue, not by qfexbot; they are counted in
    ``sim_closes``.
    """
    original_close, original_queue = WsPeer.close, WsPeer._queue

    def close(self: WsPeer, code: int, reason: str) -> None:
        account = getattr(self, "account_id", None)
        if isinstance(self, TradeConnection) and account in windows.sessions:
            report.sim_closes[f"{code} {reason}"] += 1
            windows.cut_now([account])
        original_close(self, code, reason)

    def queue(self: WsPeer, item: Any) -> None:
        before = self.server_closed
        original_queue(self, item)
        account = getattr(self, "account_id", None)
        if (
            not before
            and self.server_closed
            and isinstance(self, TradeConnection)
            and account in windows.sessions
        ):
            report.sim_closes["slow consumer"] += 1
            windows.lose_now(account)

    WsPeer.close, WsPeer._queue = close, queue  # type: ignore[method-assign]
    try:
        yield
    finally:
        WsPeer.close, WsPeer._queue = original_close, original_queue  # type: ignore[method-assign]


async def _sample_forever(windows: _Windows) -> None:
    while True:
        windows.sample()
        await trio.sleep(0.01)


@dataclass
class _Money:
    """What the money-edge faults need and leave behind: the accounts the mover moves (ids),
    the journal (to find a transfer in doubt) and, per held transfer POST, when it lands."""

    ring: list[str]
    journal: Any
    landings: list[float] = field(default_factory=list)


@contextlib.contextmanager
def _watch_transfer_holds(sim: Any, money: _Money) -> Iterator[None]:
    """Record when each held transfer POST (late_landing) will be applied, in trio time: the
    recovery waits for every one of them before the money check, so the ledger is final."""
    faults = sim.faults
    original = faults.take_transfer_hold

    def take() -> float | None:
        held = original()
        if held is not None:
            money.landings.append(trio.current_time() + held)
        return held

    faults.take_transfer_hold = take
    try:
        yield
    finally:
        del faults.take_transfer_hold  # the class's method again


async def _outside_move(sim: Any, money: _Money, rng: random.Random, report: SoakReport) -> None:
    """Move 0.01-0.09 between two accounts the mover moves, as another client would: half the
    time there is a transfer of ours in doubt, between its two accounts; else two neighbours in
    the ring. The amount is below any the mover sends (1.00-1.96), so the move never imitates
    one of ours (no balance could tell such a move apart: docs/reliability.md 3c, "Limit")."""
    ring = set(money.ring)
    doubt = [e for e in await money.journal.unresolved() if e.src in ring and e.dst in ring]
    in_doubt = bool(doubt) and rng.random() < 0.5
    if in_doubt:
        entry = rng.choice(doubt)
        src, dst = rng.sample([entry.src, entry.dst], 2)
    else:
        i = rng.randrange(len(money.ring))
        src, dst = money.ring[i], money.ring[(i + 1) % len(money.ring)]
    try:
        sim.faults.outside_transfer(src, dst, Decimal(rng.randint(1, 9)) / 100)
    except ValueError:
        return  # the venue refused it (balance): nothing moved
    report.outside_moves += 1
    report.outside_moves_in_doubt += in_doubt


async def _faults(
    sim: Any,
    proxy: FaultProxy,
    windows: _Windows,
    accounts: list[str],
    seconds: float,
    rng: random.Random,
    report: SoakReport,
    nursery: trio.Nursery,
    kinds: Sequence[str],
    money: _Money,
) -> None:
    """Inject one random fault of ``kinds`` every ~0.6 s for ``seconds``.

    Every kind comes at least once, early; the money edges last in that first round (the
    accounts they hold stop the mover, so money flows first), and the faults that leave a
    transfer in doubt between the late landing and the outside mover; after its first time
    ``late_landing`` never comes in the last ``LATE_HOLD`` s (the recovery waits for every held
    POST to land)."""
    faults = sim.faults
    end = trio.current_time() + seconds
    first = rng.sample(list(kinds), len(kinds))  # every kind at least once, early
    # Popped from the end, so the list is sorted by the reverse of the order they come in: the
    # late landing before anything that can leave a transfer in doubt (an entry in doubt refuses
    # the mover, and a held POST needs a transfer to hold), the outside mover last (its holds
    # can stop the mover for good).
    rank = {"late_landing": 1, **dict.fromkeys(DOUBT_FAULTS, 2), "outside_mover": 3}
    first.sort(key=lambda k: -rank.get(k, 0))
    others = [k for k in kinds if k != "late_landing"]
    while trio.current_time() < end:
        await trio.sleep(rng.uniform(0.3, 0.9))
        if not kinds:
            continue
        kind = first.pop() if first else rng.choice(kinds)
        if (
            kind == "late_landing"
            and report.faults[kind]
            and others
            and end - trio.current_time() < LATE_HOLD[1]
        ):
            kind = rng.choice(others)
        report.faults[kind] += 1
        if kind in NET_FAULTS:
            report.net_links_faulted += _network_fault(
                sim, proxy, windows, NET_FAULTS[kind], accounts, rng
            )
        elif kind == "drop_one":
            account = rng.choice(accounts)
            windows.cut_now([account])
            faults.drop_connections(account)
        elif kind == "drop_all":
            windows.cut_now()
            faults.drop_connections()
        elif kind == "reject_auth":
            account = rng.choice(accounts)
            faults.reject_next_auths(1)
            windows.cut_now([account])
            faults.drop_connections(account)
        elif kind == "fail_rest":
            faults.fail_next_rest(
                rng.randint(1, 3),
                status=rng.choice([429, 500, 502, 503]),
                path=rng.choice([None, "/user/positions", "/user/transfer"]),
            )
        elif kind == "delay_rest":
            faults.delay_rest(rng.uniform(0.2, REQUEST_TIMEOUT * 2), n=rng.randint(1, 3))
        elif kind == "lose_transfer_response":
            faults.drop_transfer_response(1, mode=rng.choice(["timeout", "reset"]))
        elif kind == "late_landing":
            # The next transfer POST times out (unknown) and is applied LATE_HOLD s later. The
            # first one waits (bounded) until the mover's next POST took it, so every run has
            # one, whatever holds come later.
            faults.hold_transfers(rng.uniform(*LATE_HOLD), 1)
            if report.faults[kind] == 1:
                await until(
                    lambda: not faults.snapshot()["transfer_holds"],
                    within=LATE_TAKEN_WITHIN,
                    every=0.05,
                )
        elif kind == "outside_mover":
            await _outside_move(sim, money, rng, report)
        elif kind == "stall_pulses" and not faults.pulses_stopped:
            # Quiet accounts go stale: the client closes after stale_after s without a frame,
            # so nothing is in flight then; the sampler closes their windows.
            faults.stop_pulses()
            nursery.start_soon(_resume_pulses, sim, rng.uniform(1.0, 2.5))
        else:
            target = rng.choice([None, *accounts])
            await _malformed(faults, windows, target, first=report.faults[kind] == 1)


async def _malformed(faults: Any, windows: _Windows, target: str | None, *, first: bool) -> None:
    """Send a malformed frame to ``target``'s connections (None: all). The first one must
    reach a client (the account's links may be down or held by a network fault right now):
    it is sent again to every connection, once a second, until a session counted a parse
    error (bounded)."""
    faults.send_malformed_frame(target)
    if not first:
        return
    sessions = windows.sessions.values()
    for _ in range(int(MALFORMED_COUNTED_WITHIN)):
        if await until(lambda: any(s.stats.parse_errors for s in sessions), within=1.0):
            return
        faults.send_malformed_frame(None)


def _network_fault(
    sim: Any,
    proxy: FaultProxy,
    windows: _Windows,
    kind: str,
    accounts: list[str],
    rng: random.Random,
) -> int:
    """Apply network fault ``kind`` for 0.5-4 s to one account's trade link (3 in 5), to all
    trade links, or to the market-data link; returns how many links it hit.

    Any of them may end the connection (even slow reads: a pong timeout, or a stale reader
    whose pong is stuck behind full buffers), so the chosen accounts' windows are cut first."""
    duration = rng.uniform(0.5, 4.0)
    where = rng.choice(["one", "one", "one", "all", "mds"])
    if where == "mds":
        return proxy.inject(kind, duration=duration, target="mds")
    chosen = [rng.choice(accounts)] if where == "one" else list(accounts)
    # The sim sees each link from the proxy's upstream address: that finds the account's link.
    ports = {_peer_port(conn) for conn in list(sim.trade.connections) if conn.account_id in chosen}
    links = [link for link in proxy.links_of("trade") if link.upstream_local[1] in ports]
    # stall, slow_reads and partial_then_silence hold bytes and lose none; half_open and
    # reset_mid_frame reset the link (a new connection follows).
    keeps = kind in ("stall", "slow_reads", "partial_then_silence")
    windows.cut_now(
        chosen, in_flight_lost=True, reopen_after=duration + REOPEN_SLACK if keeps else None
    )
    return proxy.inject(kind, duration=duration, links=links)


def _peer_port(conn: TradeConnection) -> int | None:
    """The port the sim sees a trade connection come from (None once its socket is closed)."""
    try:
        return conn.ws.remote.port  # type: ignore[union-attr]
    except OSError:
        return None


async def _resume_pulses(sim: Any, after: float) -> None:
    await trio.sleep(after)
    sim.faults.resume_pulses()


MONEY_ALERTS = ("LATE LANDING", "account held")
"""How qfexbot's ERROR lines about a late landing and an account hold begin."""


class _ErrorLog(logging.Handler):
    """Collects ERROR records and any record carrying a traceback.

    ``SessionNotLive`` raised into ``demo_trader`` (an order sent while its session
    reconnects) is counted apart: a known issue of that plugin, reported, not a runtime fault.
    The money alerts (``LATE LANDING``, ``account held``) are kept apart in ``alerts`` (their
    fields): the money check matches each against the journal's holds.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []
        self.alerts: list[dict[str, Any]] = []
        self.not_live_orders = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR and message.startswith(MONEY_ALERTS):
            self.alerts.append({**getattr(record, "fields", {}), "message": message})
            return
        if record.levelno >= logging.ERROR or record.exc_info:
            if record.exc_info and isinstance(record.exc_info[1], SessionNotLive):
                self.not_live_orders += 1
                return
            exc = record.exc_info[1] if record.exc_info else None
            detail = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
            self.records.append(f"{record.name}: {message}{detail}")


async def run_soak(
    directory: Path,
    seconds: float,
    *,
    seed: int = 1,
    desks: int = 4,
    vaults: int = 3,
    trading_transfers: bool = False,
    fault_kinds: Sequence[str] = FAULT_KINDS,
    drop_event: bool = False,
    duplicate_transfer: bool = False,
    unmarked_outside: bool = False,
) -> SoakReport:
    """Run the soak in ``directory`` for ``seconds`` of faults; returns the report.

    Args:
      seed: drives the fault schedule, the trader and the simulator (the report carries it).
      fault_kinds: the kinds drawn from (default: all of ``FAULT_KINDS``; ``[]``: none).
      drop_event, duplicate_transfer, unmarked_outside: test-only hooks that break what the
        checks guard (one delivered private event forgotten; one journaled transfer sent again
        straight to the simulator; one outside move while nothing is in doubt, labelled in the
        ledger as qfexbot's own), to show the checks report it.
    """
    report = SoakReport(seed=seed, accounts=1 + desks + vaults, rss_start_kib=rss_kib())
    rng = random.Random(seed)
    sim = QfexSimulator(sim_config(desks=desks, vaults=vaults, seed=seed))
    proxy = FaultProxy()
    errors = _ErrorLog()
    for name in ("qfexbot", "plugins"):
        logging.getLogger(name).addHandler(errors)
    started = time.monotonic()
    reconcile_every = mock.patch.object(runtime_module, "RECONCILE_EVERY", RECONCILE_EVERY)
    reconcile_every.start()
    # The soak's accounts exist only in its own simulator: their machine-wide account locks
    # live in the run's directory, so soaks (and a real qfexbot) on one machine never collide.
    lock_dir = mock.patch.dict("os.environ", {LOCK_DIR_ENV: str(directory / "var" / "locks")})
    lock_dir.start()
    try:
        async with trio.open_nursery() as venue_side:
            sim_urls = await venue_side.start(sim.serve, "127.0.0.1")
            urls = {
                "trade_url": await venue_side.start(proxy.front, "trade", sim_urls.trade_url),
                "mds_url": await venue_side.start(proxy.front, "mds", sim_urls.mds_url),
                "rest_url": sim_urls.rest_url,
            }
            app = load_config(
                write_config(
                    directory,
                    desks=desks,
                    vaults=vaults,
                    seed=seed,
                    urls=urls,
                    trading_transfers=trading_transfers,
                )
            )
            runtime = Runtime(app, environ={SECRET_ENV: SECRET})
            ids = app.venues["demo"].accounts
            money = _Money([ids[a] for a in _ring(desks, vaults, trading_transfers)], None)
            async with trio.open_nursery() as nursery:
                await nursery.start(runtime.run)
                run = runtime.venues["demo"]
                money.journal = runtime.journal
                accounts = list(run.sessions)
                windows = _Windows(runtime, sim)
                with _watch_sim_closes(windows, report), _watch_transfer_holds(sim, money):
                    async with trio.open_nursery() as helpers:
                        helpers.start_soon(_sample_forever, windows)
                        with trio.fail_after(30):
                            for session in run.sessions.values():
                                await session.wait_for(ConnectionState.LIVE)
                        await _faults(
                            sim,
                            proxy,
                            windows,
                            accounts,
                            seconds,
                            rng,
                            report,
                            helpers,
                            fault_kinds,
                            money,
                        )
                        sim.faults.resume_pulses()
                        proxy.heal()
                        await _recover(runtime, report, money)
                        if duplicate_transfer:
                            await _send_one_again(app.runtime.journal, run.venue)
                        if unmarked_outside:
                            _outside_as_own(sim, money.ring)
                        await trio.sleep(1.0)  # quiet traffic on healthy connections, sampled
                        helpers.cancel_scope.cancel()
                windows.finish()
                # The windows end at the sim's current event number; the last of those frames
                # may still be in the socket. Let them arrive before intake stops (events
                # emitted after this point are outside every window and not expected).
                await trio.sleep(1.0)
                _collect(runtime, sim, windows, report)
                runtime.stop()
            venue_side.cancel_scope.cancel()
    finally:
        lock_dir.stop()
        reconcile_every.stop()
        for name in ("qfexbot", "plugins"):
            logging.getLogger(name).removeHandler(errors)
    report.seconds = round(time.monotonic() - started, 1)
    _check_run(runtime, app, sim, windows, errors, report, drop_event=drop_event)
    report.rss_end_kib = rss_kib()
    return report


def _check_run(
    runtime: Runtime,
    app: AppConfig,
    sim: QfexSimulator,
    windows: _Windows,
    errors: _ErrorLog,
    report: SoakReport,
    *,
    drop_event: bool,
) -> None:
    """After a run: delivery, money, error log and plugin checks, into ``report``."""
    ids = app.venues["demo"].accounts
    audit = runtime.hosts["audit"].slots[0].plugin
    if drop_event:
        _forget_one_delivered(audit.frames, windows.closed, windows.history, audit.log)
    check_delivery(audit.frames, windows.closed, windows.history, report, windows.written)
    check_delivery_order(audit.log, windows.history, windows.written, report)
    report.events_seen_by_audit = audit.events
    for account, trace in windows.trace.items():
        if any(p.startswith(account) for p in report.problems):
            report.problems.append(f"{account}: trace (time, state, reconnects, seq): {trace}")
    check_money(
        app.runtime.journal,
        sim.ledger,
        report,
        alerts=errors.alerts,
        names={i: a for a, i in ids.items()},
    )
    transfers = runtime.venues["demo"].transfers
    if report.late_landings != transfers.late_landings:
        report.problems.append(
            f"the journal has {report.late_landings} late landings (failed -> done by reconcile), "
            f"the transfer service counted {transfers.late_landings}"
        )
    report.problems.extend(f"error log: {line}" for line in errors.records)
    report.orders_refused_not_live = errors.not_live_orders
    report.mover_outcomes = dict(runtime.hosts["mover"].slots[0].plugin.outcomes)
    for name, host in runtime.hosts.items():
        for slot in host.slots:
            if slot.disabled:
                report.problems.append(f"plugin {name}/{slot.name} was disabled")


def rss_kib() -> int:
    """The process's resident set size now, in KiB (peak RSS where /proc is missing)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _forget_one_delivered(
    frames: dict[str, Counter[str]],
    windows: dict[str, list[tuple[int, int]]],
    history: dict[str, dict[int, str]],
    logs: dict[str, list[tuple[str, str]]] | None = None,
) -> None:
    """Test hook: forget one delivered event that the gap check expects (as a lost one), from
    the audit's counts and from its delivery log (``logs``) alike."""
    for account, ranges in windows.items():
        for start, end in ranges:
            for seq in range(start + 1, end + 1):
                frame = history[account].get(seq)
                if frame is not None and frames.get(account, Counter())[frame] > 0:
                    frames[account][frame] -= 1
                    if logs is not None:
                        logs[account].remove(("event", frame))
                    return
    raise AssertionError("drop_event: no delivered event inside a checked window to drop")


async def _send_one_again(journal: Path, venue: Any) -> None:
    """Test hook: send one transfer the journal says is done once more, behind its back."""
    with sqlite3.connect(journal) as db:
        row = db.execute(
            "select src, dst, amount from entries where kind = 'transfer' and "
            "state = 'done' order by rowid limit 1"
        ).fetchone()
    if row is None:
        raise AssertionError("duplicate_transfer: no done transfer to send twice")
    src, dst, amount = row
    await venue.rest.transfer(src, dst, Decimal(amount))


def _outside_as_own(sim: Any, ring: list[str]) -> None:
    """Test hook: an outside move while nothing is in doubt, labelled as qfexbot's own in the
    ledger: a silent difference (no hold can explain it), which the money check must report."""
    row = sim.faults.outside_transfer(ring[0], ring[1], Decimal("0.05"))
    next(e for e in sim.ledger if e.id == row["id"]).outside = False


async def _recover(runtime: Runtime, report: SoakReport, money: _Money) -> None:
    """Wait for every session LIVE, stop the mover, wait until every held transfer POST has
    landed, then reconcile until nothing is left in doubt but on held accounts.

    Holds are never released here: only an operator lifts one (``qfexbot journal release``),
    and the money check accepts a ledger/journal difference only on held accounts. So a
    transfer in doubt on a held account stays ``unknown`` (reconciliation draws no automatic
    verdict there) and is counted, not resolved."""
    run = runtime.venues["demo"]
    with trio.move_on_after(30) as scope:
        for session in run.sessions.values():
            await session.wait_for(ConnectionState.LIVE)
        for md in runtime.market_data.values():
            await md.supervisor.wait_for(ConnectionState.LIVE)
    if scope.cancelled_caught:
        report.problems.append("not every session was LIVE 30 s after the faults stopped")
    # Stop moving money (faults still queued in the sim must not leave a new doubt behind).
    mover = runtime.hosts["mover"].slots[0].plugin
    mover.paused = True
    await until(lambda: not mover.busy, within=15, every=0.05)
    journal = runtime.journal
    assert journal is not None
    # A held POST lands by itself (the runtime's reconciler may meanwhile declare it "not
    # applied": a late landing); the ledger is final only once every one of them is applied.
    await until(
        lambda: trio.current_time() >= max(money.landings, default=0) + 0.5,
        within=max(LATE_HOLD) + 5,
        every=0.1,
    )
    with trio.move_on_after(30):
        while True:
            await trio.sleep(REQUEST_TIMEOUT + 0.2)  # settle: "not applied" needs quiet time
            results = await run.transfers.reconcile()  # also checks the late-landing watches
            report.reconciled_at_end += sum(1 for r in results if r.state != "unknown")
            held = {h.account for h in await journal.active_holds()}
            if not [e for e in await journal.unresolved() if not {e.src, e.dst} & held]:
                return
    report.problems.append(
        "transfers still unresolved 30 s after the faults stopped (on accounts that are not held)"
    )


def _collect(runtime: Runtime, sim: Any, windows: _Windows, report: SoakReport) -> None:
    run = runtime.venues["demo"]
    for session in run.sessions.values():
        report.reconnects += session.stats.reconnects
        report.parse_errors += session.stats.parse_errors
        if session.state is not ConnectionState.LIVE:
            report.problems.append(f"session {session.account_id} ended {session.state.value}")
    for md in runtime.market_data.values():
        report.reconnects += md.stats.reconnects
        if md.state is not ConnectionState.LIVE:
            report.problems.append(f"market data ended {md.state.value}")
    for account in run.sessions:
        windows.sample()
        report.private_events_emitted += sim.event_seq(account)


def check_delivery(
    frames: dict[str, Counter[str]],
    windows: dict[str, list[tuple[int, int]]],
    history: dict[str, dict[int, str]],
    report: SoakReport,
    written: dict[str, set[int]] | None = None,
) -> None:
    """Every event numbered inside a window (seq start+1..end) that the sim wrote to a socket
    (``written``; None: every numbered event counts) must be among the delivered ``frames`` of
    its account; a missing one is a problem in ``report``."""
    for account, ranges in windows.items():
        delivered = Counter(frames.get(account, {}))
        report.private_events_delivered += sum(delivered.values())
        expected: Counter[str] = Counter()
        for start, end in ranges:
            for seq in range(start + 1, end + 1):
                if written is not None and seq not in written.get(account, ()):
                    report.private_events_not_written += 1
                    continue
                frame = history[account].get(seq)
                if frame is None:
                    report.problems.append(f"{account}: sim event {seq} fell out of its history")
                    continue
                expected[frame] += 1
        report.private_events_checked += sum(expected.values())
        missing = expected - delivered
        report.private_events_missing += sum(missing.values())
        if missing:
            seqs = [
                seq
                for start, end in ranges
                for seq in range(start + 1, end + 1)
                if history[account].get(seq) in missing
            ]
            report.problems.append(
                f"{account}: {sum(missing.values())} private events emitted on a live "
                f"connection never delivered (seqs {seqs[:20]}, windows {ranges[-20:]}), "
                f"e.g. {next(iter(missing))[:200]}"
            )
    report.orders = sum(len(history[a]) for a in history)


def check_delivery_order(
    logs: Mapping[str, Sequence[tuple[str, str]]],
    history: Mapping[str, Mapping[int, str]],
    written: Mapping[str, set[int]],
    report: SoakReport,
) -> None:
    """The delivery contract itself, over every private event the sim wrote to a socket (not
    only those inside the sampled windows of :func:`check_delivery`): per account, the audit
    plugin's log (``("event", raw)`` and ``("state", value)`` in delivery order) must carry
    each event at most once and in the sim's order, and an event written but never delivered
    is allowed only where the plugin was told of a gap: between the delivery before it and the
    one after it (or the end), the plugin saw its session leave LIVE (a ConnectionStateEvent
    other than LIVE after a LIVE one; the states of the first start tell of no gap). Anything
    else (a duplicate, an event out of order, a loss with no gap signal, a frame the sim never
    numbered) is a problem in ``report``."""
    for account, log in logs.items():
        numbered = history.get(account, {})
        seq_of: dict[str, int] = {}
        for seq in sorted(numbered):
            seq_of.setdefault(numbered[seq], seq)
        if len(seq_of) != len(numbered):
            report.problems.append(f"{account}: two sim events with the same frame text")
        sent = written.get(account, set())
        report.private_events_written += len(sent)
        delivered: set[int] = set()
        last, told, was_live, bad = 0, False, False, []
        for kind, value in log:
            if kind == "state":  # leaving LIVE tells of a gap; the first start does not
                was_live = was_live or value == ConnectionState.LIVE.value
                told = told or (was_live and value != ConnectionState.LIVE.value)
                continue
            seq = seq_of.get(value)
            if seq is None:
                bad.append(f"delivered a frame the sim never numbered: {value[:120]}")
                continue
            if seq in delivered:
                bad.append(f"seq {seq} delivered twice")
            elif seq < last:
                bad.append(f"seq {seq} delivered after seq {last}")
            else:
                lost = [k for k in range(last + 1, seq) if k in sent]
                if lost and not told:
                    bad.append(f"seqs {lost[:20]} lost between {last} and {seq} with no gap signal")
                report.private_events_lost_in_gaps += len(lost) if told else 0
                report.private_events_in_order += 1
                last = seq
            delivered.add(seq)
            told = False
        lost = [k for k in sent if k > last]
        if lost and not told:
            bad.append(
                f"seqs {sorted(lost)[:20]} after the last delivered ({last}) lost, no gap signal"
            )
        report.private_events_lost_in_gaps += len(lost) if told else 0
        report.problems.extend(f"{account}: {line}" for line in bad[:20])
    for account in written:
        if account not in logs and written[account]:
            report.problems.append(
                f"{account}: {len(written[account])} events written, none delivered"
            )


Transfer = tuple[str, str, Decimal]
"""(source account, destination account, amount): how the journal and the ledger are compared."""


def check_money(
    journal: Path,
    ledger: Sequence[Any],
    report: SoakReport,
    *,
    alerts: Sequence[Mapping[str, Any]],
    names: Mapping[str, str] | None = None,
    settle: float = TRANSFER_SETTLE,
    now: float | None = None,
) -> None:
    """Compare the sim's ``ledger`` with the ``journal`` file, per account pair; add the
    figures and every problem to ``report``.

    Per unordered pair, the ledger's own moves (not ``outside``) must equal the journal's
    ``done`` transfers exactly (count and amounts; a late landing re-marked done counts), or
    both accounts are paused and the difference is an *explained* line (which entries, accounts,
    amounts). Paused: held, or touched by an ``unknown`` entry next to a held account (no
    automatic verdict is drawn while the hold stands, and an entry in doubt refuses every
    transfer on both its accounts until an operator resolves it). Every active hold needs a
    reason, its ERROR alert (``alerts``: the fields of the ``LATE LANDING``/``account held`` log
    lines) and a cause the soak injected (a held POST with its amount for ``late_landing``; an
    outside move or a held POST on one of its accounts for ``unexplained_deposits``). An
    ``unknown`` left must touch a held account or be younger than ``settle`` s (``now``: the wall
    clock); nothing may be left pending or sent."""
    name = (names or {}).get
    with contextlib.closing(sqlite3.connect(journal)) as db:
        rows = db.execute(
            "select id, src, dst, amount, state from entries where kind = 'transfer' order by rowid"
        ).fetchall()
        holds = db.execute(
            "select account, code, reason, entry_id from holds where "
            "released_at is null order by seq"
        ).fetchall()
        report.late_landings = db.execute(
            "select count(*) from events where from_state = 'failed' and to_state = 'done' "
            "and by = 'reconcile'"
        ).fetchone()[0]
        unknown_since = dict(
            db.execute(
                "select entry_id, max(at) from events where to_state = 'unknown' group by entry_id"
            ).fetchall()
        )
    entries = {row[0]: row for row in rows}
    report.journal_states = Counter(state for *_, state in rows)
    held: dict[str, list[str]] = {}
    for account, code, _, _ in holds:
        held.setdefault(account, []).append(code)
        report.holds[code] += 1
    own: Counter[Transfer] = Counter((e.src, e.dst, e.amount) for e in ledger if not e.outside)
    done: Counter[Transfer] = Counter(
        (s, d, Decimal(a)) for _, s, d, a, state in rows if state == "done"
    )
    report.transfers_landed = sum(own.values())
    report.held_posts_landed = sum(1 for e in ledger if e.held_for)

    def show(moves: Counter[Transfer]) -> str:
        return (
            "["
            + ", ".join(
                f"{name(s, s)}->{name(d, d)} {a}" + (f" x{n}" if n > 1 else "")
                for (s, d, a), n in sorted(moves.items())
            )
            + "]"
        )

    # An unknown entry touching a held account is never settled automatically while the hold
    # stands, and it refuses every transfer on both its accounts: those are paused too.
    blocked = {
        account: f"blocked by unknown entry {i} next to a held account"
        for i, s, d, _, state in rows
        if state == "unknown" and (s in held or d in held)
        for account in (s, d)
        if account not in held
    }
    for pair in sorted({frozenset(key[:2]) for key in own | done}, key=sorted):
        mine, booked = (
            Counter({k: n for k, n in c.items() if frozenset(k[:2]) == pair}) for c in (own, done)
        )
        if mine == booked:
            continue
        differ = set(mine - booked) | set(booked - mine)
        named = [
            f"{i} {name(s, s)}->{name(d, d)} {a} {state}"
            for i, s, d, a, state in rows
            if (s, d, Decimal(a)) in differ and state not in ("refused", "dry_run")
        ]
        shown = sorted(name(a, a) for a in pair)
        text = (
            f"{' <-> '.join(shown)}: only in the ledger "
            f"{show(mine - booked)}, only in the journal {show(booked - mine)}; journal "
            f"entries {named[:10]}"
        )
        if all(account in held or account in blocked for account in pair):
            codes = sorted({code for account in pair for code in held.get(account, ())})
            also = sorted({blocked[a] for a in pair if a in blocked})
            report.explained.append(
                f"{text}; both accounts paused (held: {', '.join(codes)}"
                + (f"; {'; '.join(also)}" if also else "")
                + ")"
            )
        else:
            loose = sorted(name(a, a) for a in pair if a not in held and a not in blocked)
            report.problems.append(f"journal done != ledger on {text}; not paused: {loose}")

    _check_holds(holds, entries, ledger, report, alerts=alerts, name=name)
    _check_left(rows, held, unknown_since, report, settle=settle, now=now, name=name)


def _check_holds(
    holds: Sequence[Any],
    entries: Mapping[str, Any],
    ledger: Sequence[Any],
    report: SoakReport,
    *,
    alerts: Sequence[Mapping[str, Any]],
    name: Any,
) -> None:
    """``check_money``'s hold rules: each active hold has a reason, its alert and a cause."""
    alerted = {
        (a.get("entry"), a.get("code"))
        for a in alerts
        if str(a.get("message", "")).startswith("account held")
    }
    caught = sum(1 for a in alerts if str(a.get("message", "")).startswith("LATE LANDING"))
    if caught != report.late_landings:
        report.problems.append(
            f"{report.late_landings} late landings in the journal, "
            f"{caught} LATE LANDING alerts logged"
        )
    outside_touched = {a for e in ledger if e.outside for a in (e.src, e.dst)}
    held_landed = {(e.src, e.dst, e.amount) for e in ledger if e.held_for}
    held_touched = {a for s, d, _ in held_landed for a in (s, d)}
    for account, code, reason, entry_id in holds:
        what = f"hold on {name(account, account)} ({code}, entry {entry_id})"
        entry = entries.get(entry_id)
        if not reason.strip() or entry is None:
            report.problems.append(f"{what} names no reason or no journal entry: {reason!r}")
        elif (entry_id, code) not in alerted:
            report.problems.append(f"{what} was placed with no ERROR alert")
        elif code == "late_landing" and (entry[1], entry[2], Decimal(entry[3])) not in held_landed:
            report.problems.append(f"{what}: no held transfer POST of that amount landed")
        elif code == "unexplained_deposits" and not (
            {entry[1], entry[2]} & (outside_touched | held_touched)
        ):
            report.problems.append(f"{what}: no outside move and no held POST touched them")
        elif code not in HOLD_CODES:
            report.problems.append(f"{what}: a hold code the soak does not cause")


def _check_left(
    rows: Sequence[Any],
    held: Mapping[str, Any],
    unknown_since: Mapping[str, float],
    report: SoakReport,
    *,
    settle: float,
    now: float | None,
    name: Any,
) -> None:
    """``check_money``'s end rules: nothing pending or sent, no old unknown off a held account."""
    now = time.time() if now is None else now
    for entry_id, src, dst, amount, state in rows:
        move = f"transfer {entry_id} ({name(src, src)} -> {name(dst, dst)}, {amount})"
        if state in ("pending", "sent"):
            report.problems.append(f"{move} left {state}")
        elif state == "unknown":
            report.unknown_at_end += 1
            age = now - unknown_since.get(entry_id, now)
            if src not in held and dst not in held and age >= settle:
                report.problems.append(
                    f"{move} unknown for {age:.1f} s on accounts that are not held"
                )


def total_line(reports: list[SoakReport], rss_start: int, rss_end: int) -> str:
    """The figures of several runs added up, with the process RSS before the first and after
    the last (it must not grow without bound from run to run)."""
    faults: Counter[str] = Counter()
    holds: Counter[str] = Counter()
    for report in reports:
        faults.update(report.faults)
        holds.update(report.holds)
    problems = sum(len(r.problems) for r in reports)
    seeds = ",".join(str(r.seed) for r in reports)
    return (
        f"TOTAL {len(reports)} runs (seeds {seeds}): "
        f"{'ok' if not problems else f'{problems} PROBLEMS'} "
        f"{sum(r.seconds for r in reports):g}s faults={sum(faults.values())} "
        f"{json.dumps(dict(sorted(faults.items())))} "
        f"reconnects={sum(r.reconnects for r in reports)} private events emitted="
        f"{sum(r.private_events_emitted for r in reports)} "
        f"checked={sum(r.private_events_checked for r in reports)} "
        f"missing={sum(r.private_events_missing for r in reports)} "
        f"transfers={sum(r.transfers_landed for r in reports)} "
        f"outside={sum(r.outside_moves for r in reports)} "
        f"late_landings={sum(r.late_landings for r in reports)} "
        f"holds={sum(holds.values())} {json.dumps(dict(sorted(holds.items())))} "
        f"unknown={sum(r.unknown_at_end for r in reports)} "
        f"explained={sum(len(r.explained) for r in reports)} "
        f"rss={rss_start}->{rss_end} KiB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="minutes of faults per run")
    parser.add_argument("--runs", type=int, default=1, help="runs in a row, seeds seed..seed+N-1")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the first run (default: a fresh one, printed)",
    )
    parser.add_argument("--desks", type=int, default=6, help="trading subaccounts")
    parser.add_argument("--vaults", type=int, default=4, help="transferring subaccounts")
    parser.add_argument(
        "--trading-transfers",
        action="store_true",
        help="move money between trading desks too (deposit reconciliation)",
    )
    parser.add_argument("--dir", help="work directory (default: a temporary one per run)")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print every run's full JSON report (always for a failed run)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs: expected a positive number of runs")
    first = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    reports = []
    rss_start = rss_kib()
    for seed in range(first, first + args.runs):
        print(
            f"seed={seed}: {args.minutes:g} min of faults "
            f"(reproduce: python bench/soak.py --seed {seed} --minutes {args.minutes:g})",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="qfexbot-soak-") as tmp:
            directory = Path(args.dir) / f"seed-{seed}" if args.dir else Path(tmp)
            directory.mkdir(parents=True, exist_ok=True)
            report = trio.run(
                partial(
                    run_soak,
                    directory,
                    args.minutes * 60,
                    seed=seed,
                    desks=args.desks,
                    vaults=args.vaults,
                    trading_transfers=args.trading_transfers,
                )
            )
        reports.append(report)
        if args.json or report.problems:
            print(report.summary())
        print(report.line(), flush=True)
    print(total_line(reports, rss_start, rss_kib()))
    return 1 if any(r.problems for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
