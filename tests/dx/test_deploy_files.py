"""The shipped systemd unit and Dockerfile: what they run is a command that works, and their
restart and stop policy matches qfexbot's exit codes and signals (docs/operations.md)."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from qfexbot.cli import build_parser
from qfexbot.cli.run import EXIT_SESSIONS_FAILED, EXIT_START_FAILED
from qfexbot.cli.scaffold import init_command

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "qfexbot.service"
DOCKERFILE = REPO / "Dockerfile"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are cased
    parser.read_string(UNIT.read_text())
    return parser


def _environment(service: configparser.SectionProxy) -> dict[str, str]:
    lines = [ln for ln in UNIT.read_text().splitlines() if ln.startswith("Environment=")]
    return dict(ln.removeprefix("Environment=").split("=", 1) for ln in lines)


def test_the_unit_restarts_on_failure_but_not_when_restarting_cannot_help() -> None:
    service = _unit()["Service"]
    assert service["Restart"] == "on-failure"
    prevented = {int(code) for code in service["RestartPreventExitStatus"].split()}
    assert prevented == {EXIT_START_FAILED, EXIT_SESSIONS_FAILED}
    assert service["KillSignal"] == "SIGTERM"
    assert "qfexbot" in service["StateDirectory"].split()
    env = _environment(service)
    # The rollback mark lives outside the journal's directory (/var/lib/qfexbot).
    assert not env["QFEXBOT_STATE_DIR"].startswith("/var/lib/qfexbot/")


def test_the_docker_image_stops_gracefully_and_keeps_the_mark_apart() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.MULTILINE)
    assert re.search(r"^RUN pip install --no-cache-dir /src", text, re.MULTILINE)
    volumes = json.loads(re.search(r"^VOLUME (\[.*\])$", text, re.MULTILINE).group(1))
    state = re.search(r"QFEXBOT_STATE_DIR=(\S+)", text).group(1)
    assert state in volumes and not state.startswith("/var/lib/qfexbot/")
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var"} <= set(ignored)


def _commands() -> dict[str, list[str]]:
    """The qfexbot argv each file runs (without the program)."""
    exec_start = shlex.split(_unit()["Service"]["ExecStart"])
    text = DOCKERFILE.read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.MULTILINE).group(1))
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.MULTILINE).group(1))
    assert Path(exec_start[0]).name == "qfexbot" and entry == ["qfexbot"]
    return {"systemd": exec_start[1:], "docker": cmd}


def test_what_they_run_is_a_valid_command_that_runs_and_stops_on_sigterm(tmp_path) -> None:
    for where, argv in _commands().items():
        args = build_parser().parse_args(argv)
        assert (args.command, args.log_format) == ("run", "json"), where
        config = Path(args.config)
        assert config.is_absolute() and config.name == "bots.toml", where
    # The same command on the demo (its config path swapped for a temporary one): it runs
    # and a SIGTERM, what systemd and docker send, stops it with exit 0.
    assert init_command(tmp_path) == 0
    argv = [str(tmp_path / "bots.toml") if a.endswith("bots.toml") else a for a in argv]
    argv += ["--duration", "60"]  # bounds the test: the process ends by itself if never LIVE
    env = {**os.environ, "QFEXBOT_STATE_DIR": str(tmp_path / "state"), "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [sys.executable, "-m", "qfexbot.cli", *argv],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None
        for line in process.stderr:  # JSON lines, as the unit and the image ask for
            if json.loads(line).get("msg") == "all sessions live":
                break
        process.send_signal(signal.SIGTERM)
        rest = process.stderr.read()
        assert process.wait(timeout=60) == 0, rest[-3000:]
    assert '"run summary"' in rest
