"""Security: sentinel secrets never leak; secrets files are guarded; TLS for real venues; signing.

A full in-process session (embedded simulator, transfers, orders, faults, a failing plugin)
runs with a unique sentinel secret. The sentinel must appear nowhere: not in raw log records
(message, fields, tracebacks) at DEBUG, not in text or JSON formatted output, not in exception
messages or reprs of what the runtime holds, not in the journal file, metrics or status.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import ssl
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio
from tls_helpers import self_signed
from wait_helpers import wait_until

from qfexbot.config import ConfigError, SessionSettings, load_config, parse_config
from qfexbot.core import session as session_module
from qfexbot.core.logs import JsonFormatter, TextFormatter
from qfexbot.core.secrets import Secret
from qfexbot.events import ConnectionState
from qfexbot.ops.status import status_snapshot
from qfexbot.runtime import Runtime
from qfexbot.venues.qfex.adapter import QfexVenue
from qfexbot.venues.qfex.auth import sign
from qfexbot.venues.qfex.rest import QfexRest

REPO = Path(__file__).parents[2]
SENTINEL = "qfex_secret_SENTINEL_c0ffee_4b1d_9e77"
PRIMARY = "0020ce8e-eaee-480e-8d7f-b9241d756ee5"
DESK_A = "11111111-1111-4111-8111-111111111111"

LEAKY = '''
"""Test plugin: does everything that could leak a secret into a log, an error or a row."""
from decimal import Decimal

from qfexbot import ConnectionState, ConnectionStateEvent, hookimpl


class Leaky:
    def __init__(self, config):
        self.done = 0
        self.errors = []

    @hookimpl
    async def qfexbot_event(self, ctx, event):
        if not (isinstance(event, ConnectionStateEvent) and event.state is ConnectionState.LIVE
                and event.account_id == ctx.account_id("desk-a")):
            return
        ctx.log.debug("ctx=%r config=%r event=%r", ctx, ctx.config, event)
        result = await ctx.transfer("treasury", "desk-a", Decimal("1.5"), "leak test")
        ctx.log.info("transfer result %r", result)
        await ctx.add_order("desk-a", symbol="AAPL-USD", side="BUY", order_type="MARKET",
                            quantity=Decimal(1), time_in_force="IOC")
        self.done += 1
        raise RuntimeError(f"plugin failure on purpose: {ctx!r}")
'''


class RawRecords(logging.Handler):
    """Every record as raw text (message, fields, context, traceback) — before any scrubbing."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        parts = [
            record.getMessage(),
            repr(getattr(record, "fields", None)),
            repr(getattr(record, "context", None)),
        ]
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            parts += [str(exc), repr(exc), logging.Formatter().formatException(record.exc_info)]
        self.texts.append(" ".join(parts))


def reprs(root: Any, depth: int = 4) -> list[str]:
    """repr/str of ``root`` and of the objects reachable through its attributes and containers."""
    out: list[str] = []
    seen: set[int] = set()

    def walk(obj: Any, level: int) -> None:
        if id(obj) in seen or level > depth or isinstance(obj, Secret):
            return
        seen.add(id(obj))
        try:
            out.append(repr(obj))
            out.append(str(obj))
        except Exception as exc:
            out.append(f"<repr failed: {exc!r}>")
        if isinstance(obj, (str, bytes, int, float, Decimal)):
            return
        if isinstance(obj, dict):
            for key, value in list(obj.items()):
                walk(key, level + 1)
                walk(value, level + 1)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            for item in list(obj):
                walk(item, level + 1)
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith(("qfexbot", "plugins")):
            for name, value in vars(obj).items():
                if name != "_environ":  # the test's own stand-in for os.environ
                    walk(value, level + 1)

    walk(root, 0)
    return out


def write_config(tmp_path: Path) -> Path:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "leaky.py").write_text(LEAKY)
    (tmp_path / "var").mkdir()
    path = tmp_path / "bots.toml"
    path.write_text(
        textwrap.dedent(f"""\
        [runtime]
        journal = "var/journal.sqlite"
        plugin_dirs = ["plugins"]
        log_level = "debug"

        [venues.demo]
        kind = "qfex"
        simulator = true
        user_id = "{PRIMARY}"
        public_key = "qfex_pub_leaktest"
        secret = {{ env = "QFEX_SENTINEL_SECRET" }}

        [venues.demo.accounts]
        treasury = "primary"
        desk-a = "{DESK_A}"

        [venues.demo.session]
        backoff_initial = 0.05
        backoff_max = 0.2
        request_timeout = 1.0

        [venues.demo.sim]
        pulse_interval = 0.1
        deposits = {{ treasury = 1000, desk-a = 10 }}

        [bots.leak]
        venue = "demo"
        accounts = ["treasury", "desk-a"]

        [bots.leak.limits]
        min_interval = 0

        [bots.leak.plugins.leaky]
        use = "leaky:Leaky"
        failure_limit = 100
        """)
    )
    return path


async def test_sentinel_secret_appears_nowhere(tmp_path: Path) -> None:
    app = load_config(write_config(tmp_path))
    raw = RawRecords()
    text_out, json_out = io.StringIO(), io.StringIO()
    text_handler, json_handler = logging.StreamHandler(text_out), logging.StreamHandler(json_out)
    text_handler.setFormatter(TextFormatter())
    json_handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(name) for name in ("qfexbot", "plugins")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        for handler in (raw, text_handler, json_handler):
            logger.addHandler(handler)
    runtime = Runtime(app, environ={"QFEX_SENTINEL_SECRET": SENTINEL})
    texts: list[str] = []
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            sim = runtime.simulators["demo"]
            leaky = runtime.hosts["leak"].slots[0].plugin
            session = runtime.venues["demo"].sessions[DESK_A]
            with trio.fail_after(20):
                await wait_until(lambda: leaky.done >= 1, within=20)
                # Faults that produce error paths: rejected auth, REST 401, lost response.
                sim.faults.reject_next_auths(1)
                sim.faults.drop_connections(DESK_A)
                await trio.sleep(0.2)
                await session.wait_for(ConnectionState.LIVE)
                await wait_until(lambda: leaky.done >= 2, within=20)
                sim.faults.drop_transfer_response(1, mode="reset")
                sim.faults.drop_connections(DESK_A)
                await wait_until(lambda: leaky.done >= 3, within=20)
            rest = runtime.venues["demo"].venue.rest
            for call in (
                rest.subaccounts(),
                rest.positions("99999999-9999-4999-8999-999999999999"),
            ):
                try:
                    await call
                except Exception as exc:
                    texts += [str(exc), repr(exc)]
            if getattr(runtime, "metrics", None) is not None:
                texts.append(runtime.metrics.exposition().decode())

            texts.append(repr(await status_snapshot(runtime)))
            texts += reprs(runtime)
            runtime.stop()
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
            for handler in (raw, text_handler, json_handler):
                logger.removeHandler(handler)
    assert any("plugin failure on purpose" in t for t in raw.texts)  # the paths really ran
    assert any("authentication rejected" in t for t in raw.texts)
    journal_bytes = b"".join(p.read_bytes() for p in (tmp_path / "var").glob("journal.sqlite*"))
    assert b"leak test" in journal_bytes
    assert SENTINEL.encode() not in journal_bytes
    assert SENTINEL not in text_out.getvalue() and SENTINEL not in json_out.getvalue()
    leaks = [t for t in raw.texts + texts if SENTINEL in t]
    assert leaks == [], leaks[:3]
    # Nothing relied on the log scrubber either: no line needed redacting.
    assert "<redacted>" not in text_out.getvalue() + json_out.getvalue()


# --------------------------------------------------------------------------- secrets files


def _qfexbot(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qfexbot.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


@pytest.mark.parametrize("command", ["check", "run"])
def test_world_readable_secrets_file_is_refused_by_the_cli(tmp_path: Path, command: str) -> None:
    secret_file = tmp_path / "qfex.secret"
    secret_file.write_text(SENTINEL)
    secret_file.chmod(0o644)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "bots.toml").write_text(
        textwrap.dedent(f"""\
        [runtime]
        plugin_dirs = ["{REPO / "plugins"}"]
        [venues.live]
        kind = "qfex"
        user_id = "{PRIMARY}"
        public_key = "qfex_pub_x"
        secret = {{ file = "qfex.secret" }}
        [venues.live.accounts]
        treasury = "primary"
        [bots.b]
        venue = "live"
        accounts = ["treasury"]
        [bots.b.plugins.balance_logger]
        """)
    )
    result = _qfexbot(command, "bots.toml", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "venues.live.secret" in result.stderr and "mode 0644" in result.stderr
    assert "chmod 600" in result.stderr
    assert SENTINEL not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    if command == "check":
        secret_file.chmod(0o600)
        fixed = _qfexbot("check", "bots.toml", cwd=tmp_path)
        assert fixed.returncode == 0, fixed.stderr
        assert SENTINEL not in fixed.stdout + fixed.stderr


# --------------------------------------------------------------------------- TLS


def _venue(urls: dict[str, str]) -> dict[str, Any]:
    return {
        "runtime": {},
        "venues": {
            "live": {
                "kind": "qfex",
                "user_id": PRIMARY,
                "public_key": "qfex_pub_x",
                "secret": {"env": "QFEX_SECRET"},
                "accounts": {"t": "primary"},
                **urls,
            }
        },
        "bots": {"b": {"venue": "live", "accounts": ["t"], "plugins": {"p": {}}}},
    }


@pytest.mark.parametrize(
    "urls",
    [
        {"trade_url": "ws://trade.example.com/"},
        {"mds_url": "ws://10.0.0.5:8080/"},
        {"rest_url": "http://api.qfex.com"},
        {"rest_url": "http://127.0.0.1.evil.example"},
    ],
)
def test_real_venue_refuses_plain_urls_off_loopback(urls: dict[str, str]) -> None:

    with pytest.raises(ConfigError) as info:
        parse_config(_venue(urls), None, "/srv")
    (key,) = urls
    assert any(
        e.startswith(f"venues.live.{key}: expected a ") and "loopback" in e
        for e in info.value.errors
    ), info.value.errors


@pytest.mark.parametrize(
    "urls",
    [
        {},  # the wss/https defaults
        {
            "trade_url": "ws://127.0.0.1:9001/",
            "mds_url": "ws://[::1]:9002/",
            "rest_url": "http://localhost:9003",
        },
        {"rest_url": "http://127.0.0.2:80"},
    ],
)
def test_real_venue_accepts_tls_or_loopback(urls: dict[str, str]) -> None:

    app = parse_config(_venue(urls), None, "/srv")
    venue = app.venues["live"]
    if not urls:
        assert venue.trade_url.startswith("wss://") and venue.rest_url.startswith("https://")


async def test_tls_certificates_are_verified_for_rest_and_websockets(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    """An untrusted certificate is refused by the REST client and by the session's WebSocket."""
    _, context = self_signed(tmp_path)
    refusals: list[str] = []  # what the server saw: the client aborting on our certificate

    async def handler(stream: trio.SSLStream) -> None:
        try:
            await stream.do_handshake()
        except trio.BrokenResourceError as exc:
            refusals.append(repr(exc.__cause__))
        finally:
            await stream.aclose()

    listeners = await nursery.start(
        functools.partial(trio.serve_ssl_over_tcp, handler, 0, context, host="127.0.0.1")
    )
    port = listeners[0].transport_listener.socket.getsockname()[1]
    rest = QfexRest(f"https://127.0.0.1:{port}", None, timeout=2.0, max_retries=0)
    try:
        with pytest.raises(Exception) as info, trio.fail_after(10):
            await rest.refdata()
        chain = []
        exc: BaseException | None = info.value
        while exc is not None:
            chain.append(f"{type(exc).__name__}: {exc}")
            exc = exc.__cause__ or exc.__context__
        assert any("CERTIFICATE_VERIFY_FAILED" in c for c in chain), chain
    finally:
        await rest.aclose()
    venue = QfexVenue(
        "live",
        trade_url=f"wss://127.0.0.1:{port}/",
        mds_url="wss://127.0.0.1:1/",
        rest_url=f"https://127.0.0.1:{port}",
        user_id=PRIMARY,
        settings=SessionSettings(connect_timeout=2.0, backoff_initial=5.0),
        public_key="qfex_pub_x",
        secret=Secret("qfex_secret_x"),
    )
    events: list[Any] = []

    async def publish(event: Any) -> None:
        events.append(event)

    session = venue.private_session(DESK_A, publish=publish)
    try:
        async with trio.open_nursery() as inner:
            await inner.start(session.run)
            with trio.fail_after(10):
                await session.wait_for(ConnectionState.BACKOFF)
            inner.cancel_scope.cancel()
    finally:
        await venue.aclose()
    states = [getattr(e, "state", None) for e in events]
    assert ConnectionState.LIVE not in states and ConnectionState.AUTHENTICATING not in states
    assert refusals, "the clients never reached the TLS server"
    # The session's own TLS stream refuses the certificate (the supervisor reports that as a
    # failed connect whose reason names the TLS error).

    with pytest.raises(trio.BrokenResourceError) as broken, trio.fail_after(10):
        await session_module._open_stream(f"wss://127.0.0.1:{port}/")
    assert isinstance(broken.value.__cause__, ssl.SSLCertVerificationError)
    assert "CERTIFICATE_VERIFY_FAILED" in session.stats.last_error or any(
        "CERTIFICATE_VERIFY_FAILED" in getattr(e, "reason", "") for e in events
    ), "the operator is told the certificate was refused, not just that the connect failed"


# --------------------------------------------------------------------------- signing vectors


def test_qfex_signature_matches_the_published_vector() -> None:
    # protocol/qfex.md §1.2 (matches an independent implementation).
    assert sign("qfex_secret_test", "c0ffee", 1760545414) == (
        "9a892254ce0416371a78a4352130b7825a2f5fb442b12ddfa7c2f5202ef045dc"
    )
