"""End to end through the console entry point: JSON logs, --record, replay, and the new config
keys."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from ops_helpers import DESK_A, write_config

from qfexbot.config import RECORD_MAX_BYTES, ConfigError, RecordSettings, parse_config


def qfexbot(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qfexbot.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_json_logs_record_flag_and_replay_command(tmp_path):
    app = write_config(tmp_path)
    rec = tmp_path / "rec"
    run = qfexbot(
        "run", str(app.path), "--duration", "2.5", "--log-format", "json", "--record", str(rec)
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [json.loads(line) for line in run.stderr.splitlines() if line.strip()]
    assert lines, "every stderr line is a JSON object"
    for line in lines:
        assert {"ts", "level", "logger", "msg"} <= set(line)
    live = [line for line in lines if line["msg"] == "session live"]
    assert {line["account_id"] for line in live} == {DESK_A, "22222222-2222-4222-8222-222222222222"}
    assert {line["account"] for line in live} == {"desk-a", "desk-b"}  # operators read aliases
    assert all(line["venue"] == "demo" and line["level"] == "info" for line in live)
    assert any(line["msg"] == "recording raw frames" for line in lines)
    assert any(line["msg"] == "all sessions live" for line in lines)
    assert any(line["msg"].endswith("sessions live") and "total" in line for line in lines)

    replay = qfexbot("replay", str(rec), str(app.path), "--log-level", "warning")
    assert replay.returncode == 0, replay.stderr[-2000:]
    decisions = [json.loads(line) for line in replay.stdout.splitlines()]
    assert len(decisions) >= 5
    assert {d["action"] for d in decisions} == {"cancel_order", "transfer", "add_order"}
    assert "same as the" in replay.stderr and "decisions of the live run" in replay.stderr

    # a recording that says the live run decided otherwise makes replay fail loudly
    segment = min(rec.glob("*.jsonl"))
    text = segment.read_text().replace('"reason":"balance #2', '"reason":"tampered #2')
    segment.write_text(text)
    tampered = qfexbot("replay", str(rec), str(app.path), "--log-level", "warning")
    assert tampered.returncode == 1
    assert "DIFFERENT from the" in tampered.stderr and "tampered #2" in tampered.stderr


BASE = {
    "venues": {
        "demo": {
            "simulator": True,
            "user_id": "0020ce8e-eaee-480e-8d7f-b9241d756ee5",
            "public_key": "p",
            "secret": "s",
            "accounts": {"treasury": "primary"},
        }
    },
    "bots": {"b": {"venue": "demo", "accounts": ["treasury"], "plugins": {"x": {}}}},
}


def with_runtime(**runtime) -> dict:
    data = copy.deepcopy(BASE)
    data["runtime"] = runtime
    return data


def test_record_and_ops_listen_defaults_and_values(tmp_path):
    assert parse_config(BASE, base_dir=tmp_path).runtime.record is None
    # On by default, loopback, port picked at start (issue 15: status must find the demo).
    assert parse_config(BASE, base_dir=tmp_path).runtime.ops_listen == ("127.0.0.1", 0)
    off = parse_config(with_runtime(ops_listen=False), base_dir=tmp_path).runtime
    assert off.ops_listen is None
    rt = parse_config(
        with_runtime(record={"dir": "var/rec"}, ops_listen="127.0.0.1:9187"), base_dir=tmp_path
    ).runtime
    assert rt.record == RecordSettings(tmp_path / "var" / "rec", RECORD_MAX_BYTES)
    assert rt.ops_listen == ("127.0.0.1", 9187)
    rt = parse_config(
        with_runtime(record={"dir": "/r", "max_bytes": 5000}, ops_listen="[::1]:0"),
        base_dir=tmp_path,
    ).runtime
    assert rt.record == RecordSettings(Path("/r"), 5000) and rt.ops_listen == ("::1", 0)


@pytest.mark.parametrize(
    "runtime, error",
    [
        ({"record": "var/rec"}, 'runtime.record: expected a table, got "var/rec"'),
        ({"record": {}}, "runtime.record.dir: missing required key (expected a directory path)"),
        (
            {"record": {"dir": "r", "max_bytes": 100}},
            "runtime.record.max_bytes: expected an integer of at least 4096, got 100",
        ),
        (
            {"record": {"dir": "r", "size": 1}},
            "runtime.record.size: unknown key (allowed: dir, max_bytes)",
        ),
        (
            {"ops_listen": "9187"},
            (
                'runtime.ops_listen: expected a "host:port" address such as "127.0.0.1:9187", '
                'or false, got "9187"'
            ),
        ),
        (
            {"ops_listen": "127.0.0.1:70000"},
            (
                'runtime.ops_listen: expected a "host:port" address such as "127.0.0.1:9187", or '
                'false, got "127.0.0.1:70000"'
            ),
        ),
        (
            {"ops_listen": "0.0.0.0:9187"},
            (
                'runtime.ops_listen: listening on "0.0.0.0" (not loopback) exposes the '
                "dashboard and control API: set ops_token and ops_tls_cert/ops_tls_key in "
                "[runtime], or set ops_remote_without_tls = true if a proxy in front "
                "authenticates and encrypts"
            ),
        ),
    ],
)
def test_bad_record_and_ops_listen_values_name_the_key(runtime, error, tmp_path):
    with pytest.raises(ConfigError) as info:
        parse_config(with_runtime(**runtime), base_dir=tmp_path)
    assert info.value.errors == [error]
