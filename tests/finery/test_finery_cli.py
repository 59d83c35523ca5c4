"""``qfexbot sim --venue finery --config SIM.toml`` through the real command line (a subprocess)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import trio
from trio_websocket import open_websocket_url

from qfexbot.venues.finery.auth import NonceSource, ws_auth_headers

SIM_TOML = """
[[users]]
public_key = "p"
secret = "s"
account_id = "00000000-0000-4000-8000-000000000001"

[[finery.clients]]
key = "cli_key"
secret = "cli_secret"
client_id = 7
role = "taker"
"""
READY = re.compile(
    r'READY \{"ws_url": "ws://127\.0\.0\.1:\d+/ws", '
    r'"rest_url": "http://127\.0\.0\.1:\d+"\}'
)


async def test_qfexbot_sim_venue_finery_prints_ready_and_exits_0_on_sigint(tmp_path) -> None:
    sim_toml = tmp_path / "SIM.toml"
    sim_toml.write_text(SIM_TOML)
    code = "import sys; from qfexbot.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", code, "sim", "--venue", "finery", "--config", str(sim_toml)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    try:
        with trio.fail_after(20):
            buffer = b""
            while b"\n" not in buffer:
                chunk = await proc.stdout.receive_some()
                assert chunk, "the command exited before READY"
                buffer += chunk
            line = buffer.split(b"\n")[0].decode()
            assert READY.fullmatch(line), line
            urls = json.loads(line[len("READY ") :])
            # The SIM.toml client (not the demo set) is what the simulator accepts.
            headers = ws_auth_headers("cli_key", "cli_secret", NonceSource())
            async with open_websocket_url(urls["ws_url"], extra_headers=headers) as ws:
                assert json.loads(await ws.get_message()) == ["X", 0, "Z", 0]
            proc.send_signal(signal.SIGINT)
            assert await proc.wait() == 0
            rest = b""
            while chunk := await proc.stdout.receive_some():
                rest += chunk
            assert b"READY" not in rest, "exactly one READY line"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stdout.aclose()
        await proc.stderr.aclose()
