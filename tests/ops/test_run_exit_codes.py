"""``qfexbot run``'s exit codes as an operator's script sees them (docs/operations.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import trio
from wait_helpers import wait_until

from qfexbot.cli.run import EXIT_SESSIONS_FAILED, EXIT_START_FAILED
from qfexbot.cli.scaffold import init_command
from qfexbot.ops.state import state_path

PRIMARY = "0020ce8e-eaee-480e-8d7f-b9241d756ee5"
DESK = "11111111-1111-4111-8111-111111111111"
SIM_TOML = f"""
[[users]]
public_key = "qfex_pub_exit"
secret = "qfex_secret_exit"
account_id = "{PRIMARY}"
subaccounts = ["{DESK}"]
"""


def bots_toml(urls: dict[str, str], tmp_path: Path) -> str:
    return f"""
[runtime]
journal = "{tmp_path / "journal.sqlite"}"

[venues.real]
kind = "qfex"
user_id = "{PRIMARY}"
public_key = "qfex_pub_exit"  # not a secret in the venue's eyes; the secret is by reference
secret = {{ env = "EXIT_TEST_SECRET" }}
trade_url = "{urls["trade_url"]}"
mds_url = "{urls["mds_url"]}"
rest_url = "{urls["rest_url"]}"

[venues.real.accounts]
treasury = "primary"
desk = "{DESK}"

[venues.real.session]
max_auth_failures = 1

[bots.watch]
venue = "real"
accounts = ["treasury", "desk"]
channels = ["balances"]

[bots.watch.plugins.balance_logger]
"""


async def _read_ready(stream: trio.abc.ReceiveStream) -> dict[str, str]:
    buffer = b""
    while b"\n" not in buffer:
        chunk = await stream.receive_some()
        assert chunk, f"the simulator exited before READY: {buffer!r}"
        buffer += chunk
    line = buffer.partition(b"\n")[0].decode()
    assert line.startswith("READY "), line
    return json.loads(line[len("READY ") :])


async def test_every_session_failed_exits_3_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "SIM.toml").write_text(SIM_TOML)
    sim = await trio.lowlevel.open_process(
        [sys.executable, "-m", "qfexbot.cli", "sim", "--config", str(tmp_path / "SIM.toml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert sim.stdout is not None
        with trio.fail_after(30):
            urls = await _read_ready(sim.stdout)
        (tmp_path / "bots.toml").write_text(bots_toml(urls, tmp_path))
        env = {**os.environ, "EXIT_TEST_SECRET": "not the secret"}
        with trio.fail_after(90):
            run = await trio.run_process(
                [sys.executable, "-m", "qfexbot.cli", "run", "bots.toml", "--duration", "60"],
                cwd=tmp_path,
                env=env,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    finally:
        sim.kill()
        await sim.wait()
    stderr = run.stderr.decode()
    assert run.returncode == EXIT_SESSIONS_FAILED, stderr[-3000:]
    assert "every account session FAILED" in stderr
    assert "not the secret" not in stderr + run.stdout.decode()


async def test_a_start_up_failure_exits_1(tmp_path: Path) -> None:
    urls = {k: "ws://127.0.0.1:9/" for k in ("trade_url", "mds_url")} | {
        "rest_url": "http://127.0.0.1:9"
    }
    (tmp_path / "bots.toml").write_text(bots_toml(urls, tmp_path))
    env = {k: v for k, v in os.environ.items() if k != "EXIT_TEST_SECRET"}  # unresolvable secret
    with trio.fail_after(60):
        run = await trio.run_process(
            [sys.executable, "-m", "qfexbot.cli", "run", "bots.toml", "--duration", "30"],
            cwd=tmp_path,
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert run.returncode == EXIT_START_FAILED, run.stderr.decode()[-3000:]
    assert "EXIT_TEST_SECRET" in run.stderr.decode()


async def test_a_port_in_use_names_the_address_and_the_setting(tmp_path: Path) -> None:
    assert init_command(tmp_path) == 0
    with trio.socket.socket() as taken:
        await taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _set_ops_listen(tmp_path, port)
        with trio.fail_after(60):
            run = await _run(tmp_path, "run", "bots.toml", "--duration", "20")
    stderr = run.stderr.decode()
    assert run.returncode == EXIT_START_FAILED, stderr[-3000:]
    assert f"runtime.ops_listen: cannot listen on 127.0.0.1:{port}: " in stderr
    assert "Errno" not in stderr


async def test_a_second_process_on_the_same_config_is_told_of_the_journal_lock(
    tmp_path: Path,
) -> None:
    """The journal lock is taken before any port or simulator: the second process is told
    another one runs this config (not that a port is taken) and leaves the first one's state
    file alone."""
    assert init_command(tmp_path) == 0
    with trio.socket.socket() as probe:  # a free port for both processes to want
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _set_ops_listen(tmp_path, port)
    first = await trio.lowlevel.open_process(
        [sys.executable, "-m", "qfexbot.cli", "run", "bots.toml", "--duration", "60"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = state_path(tmp_path / "var" / "journal.sqlite")
    try:
        await wait_until(state.exists, within=30, what="the first process's state file")
        with trio.fail_after(60):
            second = await _run(tmp_path, "run", "bots.toml", "--duration", "20")
        stderr = second.stderr.decode()
        assert second.returncode == EXIT_START_FAILED, stderr[-3000:]
        assert "runtime.journal: cannot open" in stderr and "in use by another qfexbot" in stderr
        assert "ops_listen" not in stderr and "Errno" not in stderr
        assert json.loads(state.read_text())["pid"] == first.pid
    finally:
        first.terminate()
        with trio.fail_after(30):
            await first.wait()
    assert first.returncode == 0


def _set_ops_listen(directory: Path, port: int) -> None:
    path = directory / "bots.toml"
    text = path.read_text().replace("[runtime]\n", f'[runtime]\nops_listen = "127.0.0.1:{port}"\n')
    path.write_text(text)


async def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, "-m", "qfexbot.cli", *args],
        cwd=cwd,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
