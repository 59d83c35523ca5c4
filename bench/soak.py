"""Chaos soak: the whole runtime against the simulator while a fault schedule hits it; then checks.

Run ``python bench/soak.py --minutes N`` for a long soak (tests/reliability/test_soak.py runs a
~30 s one in CI). One in-process :class:`~qfexbot.runtime.Runtime` with an embedded simulator
runs three bots over many subaccounts:

* ``trader``: ``plugins/demo_trader.py`` sends market orders on the trading desks (order and
  fill events flow), plus the shared market-data feed (mark prices);
* ``mover``: a transferring plugin moves money round a ring of vault accounts every 50 ms
  (vaults do not trade, so a transfer in doubt is always reconcilable from balance deltas);
  with ``trading_transfers`` (``--trading-transfers``) the ring also runs through the trading
  desks, whose transfers in doubt can only be reconciled from their ``deposit`` balances
  (see ``qfexbot/transfers.py``);
* ``audit``: records every private event of every desk and vault, for the gap check.

Faults, one every ~0.6 s at random: connection drops (one account or all), rejected auths,
failed (5xx/429) and delayed REST calls, lost transfer responses (timeout and reset), stalled
pulses (stale streams) and malformed frames. Then the faults stop and the checks run:

1. no unhandled exception, no ERROR log line, no plugin disabled;
2. every session (and the market-data feed) LIVE again;
3. no gap: every private event the sim numbered while a session was observed LIVE on one and
   the same connection (and before any fault cut it) reached the audit plugin;
4. after reconciliation the journal's ``done`` transfers equal the sim's ledger exactly (same
   count, pairs and amounts; no duplicate) and no transfer is left pending/sent/unknown.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import sqlite3
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import trio

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from qfexbot.config import load_config
from qfexbot.events import ConnectionState
from qfexbot.runtime import Runtime
from qfexbot.session import SessionNotLive
from qfexbot.sim.connection import WsPeer, dumps
from qfexbot.sim.trade_ws import TradeConnection

__all__ = ["SoakReport", "check_delivery", "run_soak"]

PRIMARY = "0020ce8e-eaee-480e-8d7f-b9241d756ee5"
REQUEST_TIMEOUT = 1.0
FAULT_KINDS = ["drop_one", "drop_all", "reject_auth", "fail_rest", "delay_rest",
               "lose_transfer_response", "stall_pulses", "malformed"]

AUDIT = '''
"""Soak plugin: keeps the raw text of every order/fill event, per account."""
from collections import Counter, defaultdict

from qfexbot import FillEvent, OrderUpdateEvent, hookimpl


class Audit:
    def __init__(self, config):
        self.frames = defaultdict(Counter)
        self.events = 0

    @hookimpl
    def qfexbot_event(self, ctx, event):
        self.events += 1
        if isinstance(event, (OrderUpdateEvent, FillEvent)):
            self.frames[event.account_id][event.raw] += 1
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

    seconds: float = 0.0
    accounts: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    parse_errors: int = 0
    private_events_emitted: int = 0
    private_events_checked: int = 0
    private_events_delivered: int = 0
    events_seen_by_audit: int = 0
    transfers_landed: int = 0
    journal_states: Counter[str] = field(default_factory=Counter)
    reconciled_at_end: int = 0
    orders: int = 0
    orders_refused_not_live: int = 0
    sim_closes: Counter[str] = field(default_factory=Counter)
    mover_outcomes: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        data = asdict(self)
        data["faults"] = dict(self.faults)
        data["journal_states"] = dict(self.journal_states)
        data["sim_closes"] = dict(self.sim_closes)
        return json.dumps(data, indent=2, default=str)


def write_config(directory: Path, *, desks: int, vaults: int, seed: int,
                 trading_transfers: bool = False) -> Path:
    """bots.toml + soak plugins in ``directory``."""
    plugins = directory / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "soak_audit.py").write_text(AUDIT)
    (plugins / "soak_mover.py").write_text(MOVER)
    (directory / "var").mkdir(exist_ok=True)
    desk_names = [f"desk-{i}" for i in range(1, desks + 1)]
    vault_names = [f"vault-{i}" for i in range(1, vaults + 1)]
    accounts = "\n".join(f'{name} = "{_uuid(i + 1)}"'
                         for i, name in enumerate(desk_names + vault_names))
    deposits = ", ".join([f"{n} = 1000000" for n in desk_names] + [f"{n} = 5000" for n in vault_names])
    ring = json.dumps(["treasury", *vault_names, *(desk_names if trading_transfers else ())])
    text = textwrap.dedent(f"""\
        [runtime]
        journal = "var/journal.sqlite"
        plugin_dirs = ["plugins", "{REPO / 'plugins'}"]
        kill_switch_file = "var/PAUSED"
        log_level = "info"

        [venues.demo]
        kind = "qfex"
        simulator = true
        user_id = "{PRIMARY}"
        public_key = "qfex_pub_soak"
        secret = "qfex_secret_soak_5e1f"

        [venues.demo.accounts]
        treasury = "primary"
        """) + accounts + textwrap.dedent(f"""

        [venues.demo.session]
        connect_timeout = 2.0
        auth_timeout = 2.0
        stale_after = 1.5
        backoff_initial = 0.05
        backoff_max = 0.5
        healthy_after = 5.0
        request_timeout = {REQUEST_TIMEOUT}
        # delay_rest holds requests up to 2 x request_timeout; "not applied" waits longer.
        transfer_settle = {REQUEST_TIMEOUT * 3}

        [venues.demo.sim]
        pulse_interval = 0.2
        seed = {seed}
        deposits = {{ treasury = 1000000, {deposits} }}

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
    path = directory / "bots.toml"
    path.write_text(text)
    return path


class _Windows:
    """Per account: seq ranges in which one connection was observed LIVE and not cut by a fault.

    Every private event the sim numbered inside a range must have been delivered. The range
    opens at the first observation of LIVE (events after it were sent on a subscribed socket)
    and closes at the last observation on the same connection, or at a fault that cut it.
    """

    def __init__(self, runtime: Runtime, sim: Any) -> None:
        run = runtime.venues["demo"]
        self.sessions = run.sessions
        self.sim = sim
        self.open: dict[str, tuple[int, int, int]] = {}  # account -> (reconnects, start, last)
        self.cut: dict[str, int] = {}  # account -> reconnects count of the cut connection
        self.closed: dict[str, list[tuple[int, int]]] = {a: [] for a in self.sessions}
        self.history: dict[str, dict[int, str]] = {a: {} for a in self.sessions}
        self.trace: dict[str, list[tuple[float, str, int, int]]] = {a: [] for a in self.sessions}

    def _close(self, account: str, end: int | None = None) -> None:
        if account in self.open:
            _, start, last = self.open.pop(account)
            last = last if end is None else min(last, end)
            if last > start:
                self.closed[account].append((start, last))

    def cut_now(self, accounts: list[str] | None = None) -> None:
        """A fault is about to end the current connection of these accounts (None: all)."""
        for account in accounts if accounts is not None else list(self.sessions):
            self._close(account, self.sim.event_seq(account))
            self.cut[account] = self.sessions[account].stats.reconnects
            self.trace[account].append((round(trio.current_time(), 3), "CUT",
                                        self.cut[account], self.sim.event_seq(account)))

    def lose_now(self, account: str) -> None:
        """The sim dropped this account's queued frames (slow consumer): forget the window."""
        self.open.pop(account, None)
        self.cut[account] = self.sessions[account].stats.reconnects
        self.trace[account].append((round(trio.current_time(), 3), "LOST",
                                    self.cut[account], self.sim.event_seq(account)))

    def sample(self) -> None:
        engine = self.sim.engine
        for account, session in self.sessions.items():
            seen = self.history[account]
            for event in engine.accounts[account].events:
                seen.setdefault(event.seq, dumps(event.frame))
            rc, seq = session.stats.reconnects, self.sim.event_seq(account)
            live = session.state is ConnectionState.LIVE
            trace = self.trace[account]
            if not trace or trace[-1][1:3] != (session.state.value, rc):
                trace.append((round(trio.current_time(), 3), session.state.value, rc, seq))
            if self.cut.get(account) == rc:
                continue  # still the connection a fault cut
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
        if (not before and self.server_closed and isinstance(self, TradeConnection)
                and account in windows.sessions):
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


async def _faults(sim: Any, windows: _Windows, accounts: list[str], seconds: float,
                  rng: random.Random, report: SoakReport, nursery: trio.Nursery) -> None:
    """Inject one random fault every ~0.6 s for ``seconds``."""
    faults = sim.faults
    end = trio.current_time() + seconds
    first = rng.sample(FAULT_KINDS, len(FAULT_KINDS))  # every kind at least once, early
    while trio.current_time() < end:
        await trio.sleep(rng.uniform(0.3, 0.9))
        kind = first.pop() if first else rng.choice(FAULT_KINDS)
        report.faults[kind] += 1
        if kind == "drop_one":
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
            faults.fail_next_rest(rng.randint(1, 3), status=rng.choice([429, 500, 502, 503]),
                                  path=rng.choice([None, "/user/positions", "/user/transfer"]))
        elif kind == "delay_rest":
            faults.delay_rest(rng.uniform(0.2, REQUEST_TIMEOUT * 2), n=rng.randint(1, 3))
        elif kind == "lose_transfer_response":
            faults.drop_transfer_response(1, mode=rng.choice(["timeout", "reset"]))
        elif kind == "stall_pulses" and not faults.pulses_stopped:
            # Quiet accounts go stale: the client closes after stale_after s without a frame,
            # so nothing is in flight then; the sampler closes their windows.
            faults.stop_pulses()
            nursery.start_soon(_resume_pulses, sim, rng.uniform(1.0, 2.5))
        else:
            faults.send_malformed_frame(rng.choice([None, *accounts]))


async def _resume_pulses(sim: Any, after: float) -> None:
    await trio.sleep(after)
    sim.faults.resume_pulses()


class _ErrorLog(logging.Handler):
    """Collects ERROR records and any record carrying a traceback.

    ``SessionNotLive`` raised into ``demo_trader`` (an order sent while its session
    reconnects) is counted apart: a known issue of that plugin, reported, not a runtime fault.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []
        self.not_live_orders = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            if record.exc_info and isinstance(record.exc_info[1], SessionNotLive):
                self.not_live_orders += 1
                return
            exc = record.exc_info[1] if record.exc_info else None
            detail = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
            self.records.append(f"{record.name}: {record.getMessage()}{detail}")


async def run_soak(directory: Path, seconds: float, *, seed: int = 1, desks: int = 4,
                   vaults: int = 3, trading_transfers: bool = False) -> SoakReport:
    """Run the soak in ``directory`` for ``seconds`` of faults; returns the report."""
    report = SoakReport(accounts=1 + desks + vaults)
    rng = random.Random(seed)
    app = load_config(write_config(directory, desks=desks, vaults=vaults, seed=seed,
                                   trading_transfers=trading_transfers))
    runtime = Runtime(app)
    errors = _ErrorLog()
    for name in ("qfexbot", "plugins"):
        logging.getLogger(name).addHandler(errors)
    started = time.monotonic()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            sim = runtime.simulators["demo"]
            run = runtime.venues["demo"]
            accounts = list(run.sessions)
            windows = _Windows(runtime, sim)
            with _watch_sim_closes(windows, report):
                async with trio.open_nursery() as helpers:
                    helpers.start_soon(_sample_forever, windows)
                    with trio.fail_after(30):
                        for session in run.sessions.values():
                            await session.wait_for(ConnectionState.LIVE)
                    await _faults(sim, windows, accounts, seconds, rng, report, helpers)
                    sim.faults.resume_pulses()
                    await _recover(runtime, report)
                    await trio.sleep(1.0)  # quiet traffic on healthy connections, still sampled
                    helpers.cancel_scope.cancel()
            windows.finish()
            # The windows end at the sim's current event number; the last of those frames may
            # still be in the socket. Let them arrive before intake stops (events emitted after
            # this point are outside every window and not expected).
            await trio.sleep(1.0)
            _collect(runtime, sim, windows, report)
            runtime.stop()
    finally:
        for name in ("qfexbot", "plugins"):
            logging.getLogger(name).removeHandler(errors)
    report.seconds = round(time.monotonic() - started, 1)
    check_delivery(runtime.hosts["audit"].slots[0].plugin.frames, windows.closed,
                   windows.history, report)
    report.events_seen_by_audit = runtime.hosts["audit"].slots[0].plugin.events
    for account, trace in windows.trace.items():
        if any(p.startswith(account) for p in report.problems):
            report.problems.append(f"{account}: trace (time, state, reconnects, seq): {trace}")
    _check_money(app.runtime.journal, sim, report)
    report.problems.extend(f"error log: {line}" for line in errors.records)
    report.orders_refused_not_live = errors.not_live_orders
    report.mover_outcomes = dict(runtime.hosts["mover"].slots[0].plugin.outcomes)
    for name, host in runtime.hosts.items():
        for slot in host.slots:
            if slot.disabled:
                report.problems.append(f"plugin {name}/{slot.name} was disabled")
    return report


async def _recover(runtime: Runtime, report: SoakReport) -> None:
    """Wait for every session LIVE, then reconcile until nothing is left in doubt."""
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
    with trio.move_on_after(15):
        while mover.busy:
            await trio.sleep(0.05)
    assert runtime.journal is not None
    with trio.move_on_after(30):
        while True:
            await trio.sleep(REQUEST_TIMEOUT + 0.2)  # settle: "not applied" needs quiet time
            results = await run.transfers.reconcile()
            report.reconciled_at_end += sum(1 for r in results if r.state != "unknown")
            if not await runtime.journal.unresolved():
                return
    report.problems.append("transfers still unresolved 30 s after the faults stopped")


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


def check_delivery(frames: dict[str, Counter[str]], windows: dict[str, list[tuple[int, int]]],
                   history: dict[str, dict[int, str]], report: SoakReport) -> None:
    """Every event numbered inside a window (seq start+1..end) must be among the delivered
    ``frames`` of its account; a missing one is a problem in ``report``."""
    for account, ranges in windows.items():
        delivered = Counter(frames.get(account, {}))
        report.private_events_delivered += sum(delivered.values())
        expected: Counter[str] = Counter()
        for start, end in ranges:
            for seq in range(start + 1, end + 1):
                frame = history[account].get(seq)
                if frame is None:
                    report.problems.append(f"{account}: sim event {seq} fell out of its history")
                    continue
                expected[frame] += 1
        report.private_events_checked += sum(expected.values())
        missing = expected - delivered
        if missing:
            seqs = [seq for start, end in ranges for seq in range(start + 1, end + 1)
                    if history[account].get(seq) in missing]
            report.problems.append(
                f"{account}: {sum(missing.values())} private events emitted on a live "
                f"connection never delivered (seqs {seqs[:20]}, windows {ranges[-20:]}), "
                f"e.g. {next(iter(missing))[:200]}")
    report.orders = sum(len(history[a]) for a in history)


def _check_money(journal: Path, sim: Any, report: SoakReport) -> None:
    with sqlite3.connect(journal) as db:
        rows = db.execute("select src, dst, amount, state from entries where kind = 'transfer'"
                          ).fetchall()
    report.journal_states = Counter(state for *_, state in rows)
    done = Counter((s, d, Decimal(a)) for s, d, a, state in rows if state == "done")
    landed = Counter((e.src, e.dst, e.amount) for e in sim.ledger)
    report.transfers_landed = sum(landed.values())
    if done != landed:
        report.problems.append(f"journal done != ledger: only in journal {dict(done - landed)}, "
                               f"only in ledger {dict(landed - done)}")
    left = {s: n for s, n in report.journal_states.items() if s in ("pending", "sent", "unknown")}
    if left:
        report.problems.append(f"journal entries left unresolved: {left}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="minutes of faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--desks", type=int, default=6, help="trading subaccounts")
    parser.add_argument("--vaults", type=int, default=4, help="transferring subaccounts")
    parser.add_argument("--trading-transfers", action="store_true",
                        help="move money between trading desks too (deposit reconciliation)")
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="qfexbot-soak-") as tmp:
        directory = Path(args.dir) if args.dir else Path(tmp)
        report = trio.run(partial(run_soak, directory, args.minutes * 60, seed=args.seed,
                                  desks=args.desks, vaults=args.vaults,
                                  trading_transfers=args.trading_transfers))
    print(report.summary())
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
