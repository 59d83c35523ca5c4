"""Helpers for tests that run ``qfexbot`` as a subprocess: configs, log waits, a sim process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
from demo_config import DESK_A, DESK_B, PRIMARY, demo_venue
from demo_config import runtime_table as demo_runtime_table

REPO = Path(__file__).parents[2]

SLOW_STOP = '''
"""Test plugin: marks start-up and shutdown in files; the shutdown hook takes ``delay`` s."""
from pathlib import Path

import trio

from qfexbot import Field, hookimpl


class SlowStop:
    config_schema = {"delay": Field("duration", default=0.0), "marker": Field("str")}

    def __init__(self, config):
        self.marker = Path(config["marker"])
        self.delay = float(config["delay"])

    @hookimpl
    async def qfexbot_startup(self, ctx):
        self.marker.with_suffix(".started").write_text("1")

    @hookimpl
    async def qfexbot_shutdown(self, ctx):
        self.marker.with_suffix(".stopping").write_text("1")
        await trio.sleep(self.delay)
        self.marker.with_suffix(".stopped").write_text("1")
'''

TRANSFERRER = '''
"""Test plugin: moves ``amount`` back and forth between treasury and desk-a every ``interval`` s."""
from decimal import Decimal

from qfexbot import Field, TimerEvent, hookimpl


class Transferrer:
    config_schema = {
        "amount": Field("positive_number", default=Decimal("1.25")),
        "interval": Field("duration", default=0.05),
        "pairs": Field("str_list", default=["treasury>desk-a", "desk-a>treasury"]),
    }

    def __init__(self, config):
        self.config = config
        self.turn = 0
        self.results = []

    @hookimpl
    def qfexbot_schedules(self, ctx):
        return [("move", float(self.config["interval"]))]

    @hookimpl
    async def qfexbot_event(self, ctx, event):
        if not isinstance(event, TimerEvent) or event.name != "move":
            return
        pairs = self.config["pairs"]
        src, dst = pairs[self.turn % len(pairs)].split(">")
        self.turn += 1
        self.results.append(await ctx.transfer(src, dst, self.config["amount"], "reliability"))
'''


def write_plugins(directory: Path) -> Path:
    """The test plugins in ``directory/plugins``; returns that directory."""
    plugins = directory / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "slowstop.py").write_text(SLOW_STOP)
    (plugins / "transferrer.py").write_text(TRANSFERRER)
    return plugins


def venue_table(
    *,
    simulator: bool,
    urls: dict[str, str] | None = None,
    secret: str = "qfex_secret_proc_test",
    public_key: str = "qfex_pub_proc",
) -> str:
    """A ``[venues.demo]`` table: embedded simulator, or an external one reached by URL."""
    session = {
        "stale_after": 3.0,
        "backoff_initial": 0.05,
        "backoff_max": 0.5,
        "request_timeout": 2.0,
        "transfer_settle": 2.0,  # no delayed-REST faults here, so one timeout is enough
    }
    if simulator:
        return demo_venue(
            public_key=public_key,
            secret=f'"{secret}"',
            session=session,
            sim=(
                "pulse_interval = 0.2\ndeposits = { treasury = 100000, desk-a = 500, desk-b = 500 }"
            ),
        )
    assert urls is not None
    return demo_venue(
        public_key=public_key,
        secret='{ env = "QFEX_TEST_SECRET" }',
        session=session,
        connection=(
            f'simulator = false\ntrade_url = "{urls["trade_url"]}"\n'
            f'mds_url = "{urls["mds_url"]}"\nrest_url = "{urls["rest_url"]}"'
        ),
    )


def runtime_table(log_level: str = "info") -> str:
    """``[runtime]`` for a ``qfexbot run`` subprocess: JSON log lines (read by ``log_lines``)."""
    return demo_runtime_table(log_level=log_level, more='log_format = "json"')


def start_run(config: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m qfexbot.cli run CONFIG`` with stderr (the log) going to ``log``."""
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("PYTHONPATH", str(REPO))
    with open(log, "ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "qfexbot.cli", "run", str(config)],
            cwd=config.parent,
            stdout=handle,
            stderr=handle,
            env=full_env,
            start_new_session=True,
        )


def log_lines(log: Path) -> list[dict[str, Any]]:
    """The JSON log lines written so far (other lines are kept as ``{"text": ...}``)."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            obj = {"text": line}
        out.append(obj if isinstance(obj, dict) else {"text": line})
    return out


def wait_for_log(
    log: Path, msg: str, proc: subprocess.Popen | None = None, timeout: float = 30.0
) -> dict[str, Any]:
    """Wait until a JSON log line with ``msg`` appears; fail if the process dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_lines(log):
            if line.get("msg") == msg:
                return line
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"process exited {proc.returncode} before {msg!r}:\n"
                + log.read_text(errors="replace")[-3000:]
            )
        time.sleep(0.05)
    raise AssertionError(
        f"no {msg!r} log line within {timeout}s:\n" + log.read_text(errors="replace")[-3000:]
    )


def wait_exit(proc: subprocess.Popen, timeout: float) -> int | None:
    """The exit code, or None if still running after ``timeout`` s."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process (and anything it started) if it still runs; reap it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


class SimProcess:
    """``qfexbot sim --config SIM.toml`` as a subprocess; ``urls`` from its READY line."""

    def __init__(self, directory: Path, secret: str, deposits: dict[str, str]) -> None:
        sim_toml = directory / "sim.toml"
        deposit_lines = ", ".join(f'"{k}" = "{v}"' for k, v in deposits.items())
        sim_toml.write_text(
            textwrap.dedent(f"""\
            [sim]
            pulse_interval = 0.2
            seed = 3

            [[users]]
            public_key = "qfex_pub_proc"
            secret = "{secret}"
            account_id = "{PRIMARY}"
            subaccounts = ["{DESK_A}", "{DESK_B}"]
            deposits = {{ {deposit_lines} }}
            """)
        )
        self.log = directory / "sim.log"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(self.log, "ab") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "qfexbot.cli", "sim", "--config", str(sim_toml)],
                stdout=subprocess.PIPE,
                stderr=handle,
                env=env,
                start_new_session=True,
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY "):
            kill_group(self.proc)
            raise AssertionError(f"sim did not start: {line!r}\n{self.log.read_text()[-2000:]}")
        self.urls: dict[str, str] = json.loads(line[len("READY ") :])

    def get(self, path: str) -> Any:

        response = httpx.get(self.urls["rest_url"] + path, timeout=10.0)
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            if wait_exit(self.proc, 10) is None:
                kill_group(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc.wait(10)
