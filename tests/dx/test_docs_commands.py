"""Every qfexbot command the docs show is one the command line accepts, and every complete
bots.toml they show passes ``qfexbot check`` (issue 15: docs that are true)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from qfexbot.cli import build_parser, parse_args

REPO = Path(__file__).resolve().parents[2]
PAGES = [
    REPO / "README.md",
    *sorted((REPO / "docs").rglob("*.md")),
    REPO / "deploy" / "qfexbot.service",
]
EXAMPLES = sorted((REPO / "docs" / "examples").glob("*.toml"))
COMMANDS = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def _synopsis(text: str) -> list[str]:
    """A command as a page writes it (`[OPTIONAL]`, `A|B`, `...`, a shell pipe) as one
    concrete argv: optional parts dropped, the first alternative taken."""
    text = text.replace("\\|", "|").split(" | ")[0]
    while re.search(r"\[[^\[\]]*\]", text):
        text = re.sub(r"\[[^\[\]]*\]", "", text)
    words: list[str] = []
    for word in shlex.split(text):
        if word == "...":  # "more of them", or a value left to the reader after an option
            if words and words[-1].startswith("--"):
                words.append("x")
            continue
        words.append(word.split("|")[0])
    return words


def _commands() -> list[tuple[str, str, bool]]:
    """(where, command text, whole) of each `qfexbot ...` the pages show: lines of code blocks
    and comments are whole commands; inline code may name a command without its arguments."""
    found = []
    for page in [*PAGES, *EXAMPLES]:
        text = page.read_text()
        candidates = [(c, False) for c in re.findall(r"`(qfexbot [^`]+)`", text)]
        for raw in text.splitlines():
            line = raw.strip().lstrip("#$ ").strip()
            for chunk in line.split("&&"):
                command = chunk.strip().split("  #")[0].split(" # ")[0]
                if command.startswith("qfexbot ") or re.match(r"\S*/qfexbot ", command):
                    candidates.append((command, True))
        for command, whole in candidates:
            words = command.split()
            if Path(words[0]).name != "qfexbot" or len(words) < 2:
                continue
            if words[1] not in COMMANDS and not words[1].startswith("-"):
                continue  # prose or output ("qfexbot is NOT running ...")
            found.append((page.relative_to(REPO).as_posix(), command, whole))
    return found


def test_the_pages_show_commands_at_all() -> None:
    shown = {text.split()[1] for _, text, _ in _commands()}
    assert {"run", "check", "journal", "status", "init", "sim", "pause"} <= shown, shown


@pytest.mark.parametrize(("where", "command", "whole"), _commands())
def test_every_command_the_docs_show_parses(where: str, command: str, whole: bool) -> None:
    argv = _synopsis(command)[1:]
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            parse_args(argv)
    except SystemExit as exc:
        if exc.code == 0:  # --help, --version
            return
        message = errors.getvalue()
        named_only = not whole and "the following arguments are required" in message
        placeholder = re.search(r"invalid choice: '([A-Z_]+)'", message)
        if not (named_only or placeholder):
            raise AssertionError(f"{where}: `{command}` is refused: {message.strip()}") from None


def _complete_configs() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for lang, body in re.findall(r"```(\w*)\n(.*?)```", page.read_text(), re.DOTALL):
            if lang == "toml" and "[venues." in body and "[bots." in body:
                found.append((page.relative_to(REPO).as_posix(), body))
    found += [(p.relative_to(REPO).as_posix(), p.read_text()) for p in EXAMPLES]
    return found


@pytest.mark.parametrize(("where", "toml"), _complete_configs())
def test_every_complete_config_the_docs_show_passes_check(tmp_path, where: str, toml: str) -> None:
    (tmp_path / "bots.toml").write_text(toml)
    # A page that scaffolds a plugin (`qfexbot new-plugin NAME`) configures it next: do it.
    for name in re.findall(r"qfexbot new-plugin (\w+)\n", (REPO / where).read_text()):
        scaffold = [sys.executable, "-m", "qfexbot.cli", "new-plugin", name]
        subprocess.run(scaffold, cwd=tmp_path, check=True, capture_output=True, timeout=60)
    env = {**os.environ, "QFEX_PUBLIC_KEY": "qfex_pub_doc", "QFEX_SECRET": "qfex_secret_doc"}
    check = subprocess.run(
        [sys.executable, "-m", "qfexbot.cli", "check", "bots.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert check.returncode == 0, f"{where}:\n{check.stdout}{check.stderr}"
