"""``qfexbot sim`` as a subprocess: READY line, a working server, exit 0 on SIGINT/SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import pytest
import trio
from sim_client import PRIMARY, SUB1, USER, connect

SIM_TOML = f'''
[[users]]
public_key = "{USER.public_key}"
secret = "{USER.secret}"
account_id = "{PRIMARY}"
subaccounts = ["{SUB1}"]
[users.deposits]
"{PRIMARY}" = 500

[sim]
pulse_interval = 0.1

[finery]
ignored = true
'''


async def read_line(stream: trio.abc.ReceiveStream, buffer: bytearray) -> bytes:
    while b"\n" not in buffer:
        chunk = await stream.receive_some()
        if not chunk:
            raise AssertionError(f"stdout closed before a full line: {bytes(buffer)!r}")
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
async def test_qfexbot_sim_subprocess_ready_and_stops_on_signal(tmp_path, stop: int) -> None:
    config = tmp_path / "SIM.toml"
    config.write_text(SIM_TOML)
    command = [
        sys.executable,
        "-m",
        "qfexbot.cli",
        "sim",
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
    ]
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert process.stdout is not None
        with trio.fail_after(20):
            line = (await read_line(process.stdout, bytearray())).decode()
        assert line.startswith("READY ")
        urls = json.loads(line[len("READY ") :])
        assert set(urls) == {"trade_url", "mds_url", "rest_url"}
        async with connect(urls["trade_url"]) as ws:
            await ws.auth(USER, SUB1)
            await ws.subscribe("balances")
            balance = await ws.recv_until(lambda f: "balance_response" in f)
            assert balance["balance_response"]["id"] == SUB1
        async with httpx.AsyncClient(base_url=urls["rest_url"]) as client:
            assert (await client.get("/refdata")).status_code == 200
        process.send_signal(stop)
        with trio.fail_after(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()


async def test_bad_config_exits_2_naming_the_key(tmp_path) -> None:
    config = tmp_path / "SIM.toml"
    config.write_text('[[users]]\npublic_key = "k"\nsecret = "s"\naccount_id = "x"\n')
    with trio.fail_after(20):
        result = await trio.run_process(
            [sys.executable, "-m", "qfexbot.cli", "sim", "--config", str(config)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 2
    assert b"users[0].account_id" in result.stderr and b"READY" not in result.stdout
