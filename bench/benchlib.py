"""Shared parts of the benchmarks: QFEX frames, the frame-server process, the in-process stack.

The benchmarks compare the full qfexbot path (Supervisor -> parse -> event -> Bus -> Dispatcher
-> plugin) with a bare trio-websocket loop and the asyncio peers of bench/peers.py (websockets,
aiohttp, picows), side by side in one run. Servers and peers run in child processes so the
measured process has its core to itself (these machines have two).
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from qfexbot.config import parse_config
from qfexbot.events import ResyncEvent
from qfexbot.hookspecs import hookimpl

BENCH_DIR = Path(__file__).resolve().parent
SECRET_ENV = "QFEXBOT_BENCH_SECRET"
SECRET = "qfex_secret_bench"
PUBLIC_KEY = "qfex_pub_bench"
PRIMARY = "0020ce8e-eaee-480e-8d7f-b9241d756ee5"
TRIO_WS_QUEUE = 4096
"""``message_queue_size`` of the trio-websocket baseline loops: the size qfexbot's session used
while it read through trio-websocket, kept so the baseline stays the loop earlier figures ran."""

# ---------------------------------------------------------------- frames (canonical shapes)

ORDER_FRAME = (
    '{"order_response":{"order_id":"5b309929-206f-40ec-804d-cbe46e81afc1","symbol":"AAPL-USD",'
    '"status":"ACK","quantity":1.0,"price":200.0,"take_profit":0.0,"stop_loss":0.0,"side":"BUY",'
    '"type":"LIMIT","time_in_force":"GTC","user_id":"0020ce8e-eaee-480e-8d7f-b9241d756ee5",'
    '"client_order_id":"%s","quantity_remaining":1.0,"update_time":1758208770.5512846,'
    '"trade_id":null}}'
)
FILL_FRAME = (
    '{"fill_response":{"trade_id":"7d1c1d0e-1a4b-4c55-9a0e-3f6f4a1b2c3d","user_id":'
    '"0020ce8e-eaee-480e-8d7f-b9241d756ee5","symbol":"US100-USD","price":25242.0,'
    '"quantity":0.004,"side":"SELL","aggressor_side":"SELL","order_id":'
    '"0aeae7d0-4a6e-4672-ad69-82b8811d4e0b","fee":0.00045,"order_type":"MARKET","tif":"IOC",'
    '"order_price":25547.0,"client_order_id":"c-1","remaining_quantity":0.0,"take_profit":0.0,'
    '"stop_loss":0.0,"execution_type":"NEW","timestamp":1769439642.8484282,"realised_pnl":0.0}}'
)
BALANCE_FRAME = (
    '{"balance_response":{"id":"0020ce8e-eaee-480e-8d7f-b9241d756ee5","user_id":'
    '"0020ce8e-eaee-480e-8d7f-b9241d756ee5","deposit":9990000000.0,"realised_pnl":0.0,'
    '"order_margin":0.0,"position_margin":0.0,"unrealised_pnl":0.0,"net_funding":0.0,'
    '"available_balance":9990000000.0}}'
)
LEVEL2_FRAME = json.dumps(
    {
        "type": "level2",
        "symbol": "AAPL-USD",
        "bid": [[f"{200 - i * 0.01:.2f}", f"{0.45 + i / 10:.8f}"] for i in range(5)],
        "ask": [[f"{200.02 + i * 0.01:.2f}", f"{0.57 + i / 10:.8f}"] for i in range(5)],
        "sequence": 30272539,
        "time": "2025-09-04T09:26:39.545268322Z",
    },
    separators=(",", ":"),
)
PRIVATE_MIX = (ORDER_FRAME % "c-1", FILL_FRAME, ORDER_FRAME % "c-2", BALANCE_FRAME)
"""The trade socket's flood: orders, fills and balances (2:1:1)."""


def ws_frame(text: str) -> bytes:
    """One unmasked server-to-client WebSocket text frame (RFC 6455 §5.2)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 65536:
        header = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return header + payload


# ---------------------------------------------------------------- child processes


@dataclass
class Child:
    """A child process that printed ``READY <json>``; ``info`` is that JSON."""

    proc: subprocess.Popen
    info: dict[str, Any]

    def stop(self) -> None:
        """Terminate (SIGTERM, then SIGKILL after 5 s) and reap."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def kill(self) -> None:
        """SIGKILL and reap: the abrupt end a crashed server has."""
        self.proc.kill()
        self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the child so far (from /proc)."""
        return proc_cpu_seconds(self.proc.pid)


def start_child(argv: Sequence[str], timeout: float = 30.0) -> Child:
    """Start ``argv`` and wait (bounded) for its ``READY {...}`` line on stdout."""
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("READY "):
            return Child(proc, json.loads(line[6:]))
    proc.kill()
    proc.wait(5)
    raise RuntimeError(f"{argv[:3]} did not print READY within {timeout} s")


def start_frame_server() -> Child:
    """The bench frame server (bench/frameserver.py) on a free loopback port."""
    return start_child([sys.executable, str(BENCH_DIR / "frameserver.py")])


async def trio_ws_handshake(ws: Any, handshake: Sequence[tuple[str, int]]) -> None:
    """The trio-websocket baseline's handshake: send each message, read its replies."""
    for message, replies in handshake:
        await ws.send_message(message)
        for _ in range(replies):
            await ws.get_message()


async def run_peer(peer: str, mode: str, args: Sequence[str], limit_s: float) -> dict[str, Any]:
    """One bench/peers.py run in a child process (its own core); the JSON line it printed.

    ``{"skipped": reason}`` when the peer is not installed; a failed peer raises. The child
    gives up after ``limit_s``; this waits 30 s more for it (start-up, close).
    """
    argv = [sys.executable, str(BENCH_DIR / "peers.py"), "--peer", peer, "--mode", mode]
    argv += [*args, "--timeout", str(limit_s)]
    with trio.fail_after(limit_s + 30):
        done = await trio.run_process(argv, capture_stdout=True)
    return json.loads(done.stdout.decode().splitlines()[-1])


def sim_argv(config_path: Path) -> list[str]:
    """``qfexbot sim --config SIM.toml`` with this interpreter."""
    code = "import sys; from qfexbot.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, "sim", "--config", str(config_path)]


def account_ids(n: int) -> list[str]:
    """``n`` distinct, stable subaccount UUIDs."""
    return [str(uuid.UUID(int=(0x5EED << 96) + i + 1, version=4)) for i in range(n)]


def write_sim_toml(
    path: Path, accounts: Sequence[str], *, pulse_interval: float = 1.0, ports: Sequence[int] = ()
) -> None:
    """A SIM.toml with one user owning ``accounts`` as subaccounts; generous rate limits."""
    lines = [
        "[[users]]",
        f'public_key = "{PUBLIC_KEY}"',
        f'secret = "{SECRET}"',
        f'account_id = "{PRIMARY}"',
        "subaccounts = [" + ", ".join(f'"{a}"' for a in accounts) + "]",
        "",
        "[sim]",
        f"pulse_interval = {pulse_interval}",
        "rate_limit_budget = 100000000",
    ]
    if ports:
        trade, mds, rest = ports
        lines += [f"trade_port = {trade}", f"mds_port = {mds}", f"rest_port = {rest}"]
    path.write_text("\n".join(lines) + "\n")


def free_ports(n: int) -> list[int]:
    """``n`` loopback ports that were free a moment ago."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------- measurements


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc, stdlib only)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` in seconds (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def until(
    predicate: Callable[[], object], *, within: float = math.inf, every: float = 0.01
) -> bool:
    """Wait up to ``within`` s for ``predicate()``, polling every ``every`` s; whether it held.

    For state that announces nothing (session counters, a plugin's samples, the sim's holds);
    a bench that measures how long the wait took picks ``every`` below its resolution.
    """
    with trio.move_on_after(within):
        # Polled: the condition has no event to wait on.
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(every)
        return True
    return False


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of an ascending list, nearest-rank."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def median(values: Sequence[float]) -> float:
    """The median of the rounds (NaN when the runner never ran, i.e. was skipped)."""
    return statistics.median(values) if values else float("nan")


def result_value(value: float, digits: int = 0) -> str:
    """A RESULT field: the number, or ``na`` for a runner that did not run."""
    return "na" if math.isnan(value) else f"{value:.{digits}f}"


def spread(values: Sequence[float], unit: str) -> str:
    """``median X (min A, max B, R rounds)`` for a runner's per-round figures."""
    if not values:
        return "skipped"
    low, high = min(values), max(values)
    rounds = len(values)
    return f"median {median(values):,.0f}{unit} (min {low:,.0f}, max {high:,.0f}, {rounds} rounds)"


# ---------------------------------------------------------------- plugins and the stack


class CountingPlugin:
    """A no-op plugin: counts the events it is given (sync hook, the cheapest kind)."""

    def __init__(self) -> None:
        self.events = 0

    @hookimpl
    def qfexbot_event(self, ctx: Any, event: Any) -> None:
        self.events += 1


class LatencyPlugin:
    """Records (hook-entry ns, client_order_id) of every order update; nothing else."""

    def __init__(self) -> None:
        self.samples: list[tuple[int, str]] = []

    @hookimpl
    def qfexbot_event(self, ctx: Any, event: Any) -> None:
        if event.kind == "order":
            self.samples.append((time.perf_counter_ns(), event.client_order_id))


class StateRecorder:
    """Records (perf_counter, account, state) of every connection-state event."""

    def __init__(self) -> None:
        self.states: list[tuple[float, str, str]] = []
        self.events = 0

    @hookimpl
    def qfexbot_event(self, ctx: Any, event: Any) -> None:
        self.events += 1
        if event.kind == "connection":
            self.states.append((time.perf_counter(), event.account_id, event.state.value))


def app_config(
    accounts: Sequence[str],
    *,
    plugins: dict[str, str],
    trade_url: str,
    mds_url: str,
    rest_url: str,
    base_dir: Path,
    session: dict[str, Any] | None = None,
    market_data: dict[str, Any] | None = None,
) -> Any:
    """A validated AppConfig: venue ``bench`` (not simulated), bot ``bench`` on ``accounts``.

    ``plugins`` maps instance name -> ``use`` (e.g. ``"benchlib:CountingPlugin"``).
    """

    # Reconnect storms are expected here; only errors go to stderr (the lastResort handler).
    logging.getLogger("qfexbot").setLevel(logging.ERROR)
    os.environ.setdefault(SECRET_ENV, SECRET)
    aliases = {f"a{i}": account for i, account in enumerate(accounts)}
    venue: dict[str, Any] = {
        "kind": "qfex",
        "simulator": False,
        "trade_url": trade_url,
        "mds_url": mds_url,
        "rest_url": rest_url,
        "user_id": PRIMARY,
        "public_key": PUBLIC_KEY,
        "secret": {"env": SECRET_ENV},
        "accounts": aliases,
    }
    if session:
        venue["session"] = session
    bot: dict[str, Any] = {
        "venue": "bench",
        "accounts": list(aliases),
        "plugins": {name: {"use": use} for name, use in plugins.items()},
    }
    if market_data:
        bot["market_data"] = market_data
    data = {
        "runtime": {
            "journal": str(base_dir / "journal.sqlite"),
            "kill_switch_file": str(base_dir / "PAUSED"),
            "plugin_dirs": [],
            "log_level": "warning",
        },
        "venues": {"bench": venue},
        "bots": {"bench": bot},
    }
    return parse_config(data, base_dir=base_dir)


class StubRest:
    """Stands in for QfexRest in the socket benchmarks: the resync snapshot is an empty one.

    REST is not on the hot path; the frame server speaks only WebSocket.
    """

    def __init__(self, venue: str) -> None:
        self.venue = venue

    async def positions(self, account_id: str | None = None) -> Any:

        return ResyncEvent(
            venue=self.venue,
            account_id=account_id or PRIMARY,
            received_at=time.time(),
            balance=None,
        )

    async def aclose(self) -> None:
        return None
