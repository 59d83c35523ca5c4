"""The console's control API over loopback: token, Origin and body rules, pause/resume and
resolve against a running process, no secret in any page or answer, and `check` refusing an
exposed endpoint without token and TLS."""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
import trustme
from ops_helpers import DESK_A, FLAKY, PRIMARY, write_config
from wait_helpers import wait_until

from qfexbot.cli.run import check_file
from qfexbot.config import load_config
from qfexbot.money.killswitch import kill_switch_reason
from qfexbot.ops.endpoint import OpsApp
from qfexbot.runtime import Runtime

REPO = Path(__file__).resolve().parents[2]
TOKEN = "ops-token-for-the-console-test-7f3a"
VENUE_SECRET = "qfex_secret_ops_test"  # the venue secret write_config puts in bots.toml
CONTROLS = ("/api/pause", "/api/resume", "/api/resolve", "/api/plugins/enable")
READS = (
    "/",
    "/console/console.js",
    "/console/console.css",
    "/api/status",
    "/api/journal",
    "/api/orders",
    "/api/equity?venue=demo&account=desk-a",
)


async def post(client: httpx.AsyncClient, url: str, body: object, **headers: str) -> httpx.Response:
    with trio.fail_after(10):
        return await client.post(url, json=body, headers=headers)


async def get(client: httpx.AsyncClient, url: str) -> httpx.Response:
    with trio.fail_after(10):
        return await client.get(url)


async def first_event(base: str) -> bytes:
    """The head and first server-sent event of ``/api/events`` (a raw socket: the stream never
    ends, and a client that stops reading it must close it)."""
    url = urlsplit(base)
    assert url.hostname is not None and url.port is not None
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(url.hostname, url.port)
        async with stream:
            await stream.send_all(
                f"GET /api/events HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode()
            )
            data = b""
            while b"\n\n" not in data.partition(b"\r\n\r\n")[2]:
                chunk = await stream.receive_some()
                assert chunk, "the event stream closed"
                data += chunk
    assert b"content-type: text/event-stream" in data.lower()
    return data


async def check_refusals(client: httpx.AsyncClient, base: str, auth: dict[str, str]) -> None:
    """Every control call without the token, with a wrong one, from a foreign Origin or with a
    form body is refused; a GET or PUT on a control path is no control call."""
    for path in CONTROLS:
        no_token = await post(client, base + path, {"reason": "x"})
        assert no_token.status_code == 401, path
        assert "token" in no_token.json()["error"]
        wrong = await post(client, base + path, {}, authorization="Bearer not-it")
        assert wrong.status_code == 401, path
        foreign = await post(client, base + path, {}, origin="http://evil.example", **auth)
        assert foreign.status_code == 403, path
        assert "foreign Origin" in foreign.json()["error"]
        with trio.fail_after(10):
            form = await client.post(base + path, data={"reason": "x"}, headers=auth)
        assert form.status_code == 415, path
    with trio.fail_after(10):
        assert (await client.get(base + "/api/pause")).status_code == 404
        assert (await client.put(base + "/api/pause", headers=auth)).status_code == 405


async def check_equity(client: httpx.AsyncClient, base: str, runtime: Runtime) -> None:
    """The run's kept equity/available points (on request only); the venue's equity history
    of an account, by alias or id; the venue's refusal of a duration it does not know comes
    back as a 502 naming the venue."""
    await wait_until(lambda: runtime.accounts_view.history, what="a balance", within=15)
    kept = (await get(client, base + "/api/status?history=1")).json()["balances"]
    assert kept and all(b["history"] for b in kept)
    for point_at, equity, available in kept[0]["history"]:
        assert point_at <= time.time() and Decimal(equity) > 0 and Decimal(available) >= 0
    equity = (await get(client, base + "/api/equity?venue=demo&account=desk-a")).json()
    assert equity["account"] == DESK_A and equity["points"]
    assert all(Decimal(value) >= 0 for _, value in equity["points"])
    by_id = await get(client, base + f"/api/equity?venue=demo&account={DESK_A}&duration=1w")
    assert by_id.status_code == 200 and by_id.json()["points"]
    bad = await get(client, base + f"/api/equity?venue=demo&account={DESK_A}&duration=1h")
    assert bad.status_code == 502 and bad.json()["error"].startswith("demo: ")
    for query in ("venue=demo&account=nobody", "venue=nowhere&account=desk-a"):
        assert (await get(client, base + "/api/equity?" + query)).status_code == 404


async def test_control_api_over_loopback(tmp_path, nursery, monkeypatch):
    monkeypatch.setenv("QFEXBOT_CONSOLE_TEST_TOKEN", TOKEN)
    app = write_config(
        tmp_path,
        runtime_extra='ops_listen = "127.0.0.1:0"\n'
        'ops_token = {env = "QFEXBOT_CONSOLE_TEST_TOKEN"}',
    )
    runtime = Runtime(app)
    lines: list[str] = []
    runtime.announce = lines.append
    await nursery.start(runtime.run)
    base = runtime.ops_url
    assert base is not None
    # a configured token is never printed: the line says where it comes from
    assert lines == [f"dashboard: {base}/  (control calls take the token of [runtime] ops_token)"]
    auth = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient() as client:
        await check_refusals(client, base, auth)
        assert kill_switch_reason(app.runtime.kill_switch_file) is None  # nothing got through
        # pause: same origin (the page's own) and the token; the reason is on every status
        own = {"origin": base, **auth}
        paused = await post(client, base + "/api/pause", {"reason": "checking desk-a"}, **own)
        assert paused.status_code == 200 and paused.json()["paused"] is True
        reason = kill_switch_reason(app.runtime.kill_switch_file)
        assert reason is not None and reason.startswith("checking desk-a (from the dashboard)")
        status = (await get(client, base + "/api/status")).json()
        assert status["kill_switch"] is True and status["kill_switch_reason"] == reason
        assert all("history" not in b for b in status["balances"])  # not in every event
        assert (await post(client, base + "/api/pause", {"reason": " "}, **auth)).status_code == 400
        resumed = await post(client, base + "/api/resume", {}, **auth)
        assert resumed.json() == {"paused": False, "was_paused": True}
        assert not app.runtime.kill_switch_file.exists()

        # resolve: only a transfer in state unknown; the verdict is journaled as the operator's
        journal = runtime.journal
        assert journal is not None
        entry = await journal.record_intent(
            bot="watch",
            plugin="decider",
            venue="demo",
            src=PRIMARY,
            dst=DESK_A,
            amount=Decimal("7.25"),
            reason="console test",
        )
        too_early = await post(
            client, base + "/api/resolve", {"id": entry.id, "applied": False}, **auth
        )
        assert too_early.status_code == 409 and "pending" in too_early.json()["error"]
        await journal.mark_sent(entry.id)
        await journal.mark_unknown(entry.id, "timed out (console test)")
        doubt = (await get(client, base + "/api/journal?state=unknown")).json()["entries"]
        assert [(e["id"], e["in_doubt"]) for e in doubt] == [(entry.id, True)]
        by_alias = (await get(client, base + "/api/journal?account=desk-a&bot=watch")).json()
        assert entry.id in [e["id"] for e in by_alias["entries"]]
        other_bot = (await get(client, base + "/api/journal?bot=nobody")).json()
        assert other_bot["entries"] == []
        assert (
            await post(client, base + "/api/resolve", {"id": entry.id, "applied": "yes"}, **auth)
        ).status_code == 400
        assert (
            await post(client, base + "/api/resolve", {"id": "no-such", "applied": True}, **auth)
        ).status_code == 404
        done = await post(client, base + "/api/resolve", {"id": entry.id, "applied": True}, **auth)
        assert done.status_code == 200
        assert done.json()["entry"]["state"] == "done"
        assert done.json()["entry"]["resolved_by"] == "operator"
        assert done.json()["entry"]["detail"] == "resolved by operator (dashboard): applied"
        again = await post(client, base + "/api/resolve", {"id": entry.id, "applied": True}, **auth)
        assert again.status_code == 409
        stored = await journal.get(entry.id)
        assert stored is not None and stored.state == "done"

        await check_equity(client, base, runtime)

        # no secret in any page, read view or event stream
        seen = b""
        for path in READS:
            response = await get(client, base + path)
            assert response.status_code == 200, path
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            seen += response.content
        seen += await first_event(base)
        assert b'"sessions"' in seen and b"<title>qfexbot dashboard</title>" in seen
        for secret in (TOKEN, VENUE_SECRET):
            assert secret.encode() not in seen
    runtime.stop()


async def test_without_a_token_every_control_call_is_refused(tmp_path):
    app = write_config(tmp_path)
    transport = httpx.ASGITransport(app=OpsApp(Runtime(app), token=None))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for path in CONTROLS:
            response = await post(client, path, {"reason": "x"}, authorization="Bearer anything")
            assert response.status_code == 401
            assert "no ops token" in response.json()["error"]
    assert not app.runtime.kill_switch_file.exists()


async def test_per_run_token_is_in_the_printed_link_only(tmp_path, nursery):
    app = write_config(tmp_path, runtime_extra='ops_listen = "127.0.0.1:0"')
    runtime = Runtime(app)
    lines: list[str] = []
    runtime.announce = lines.append
    await nursery.start(runtime.run)
    assert runtime.ops_url is not None and runtime.dashboard_url is not None
    prefix = f"{runtime.ops_url}/#token="
    assert runtime.dashboard_url.startswith(prefix) and lines[0].startswith("dashboard: " + prefix)
    token = runtime.dashboard_url.removeprefix(prefix)
    assert len(token) >= 24
    async with httpx.AsyncClient() as client:
        ok = await post(
            client, runtime.ops_url + "/api/resume", {}, authorization=f"Bearer {token}"
        )
        assert ok.json() == {"paused": False, "was_paused": False}
        status = await get(client, runtime.ops_url + "/api/status")
        assert token.encode() not in status.content

        live: list[dict[str, Any]] = []

        async def all_live() -> bool:
            sessions = (await get(client, runtime.ops_url + "/api/status")).json()["sessions"]
            # (the LIVE event is published just after the session's state turns LIVE)
            done = all(s["state"] == "live" and s["state_since"] for s in sessions)
            live[:] = sessions if done else []
            return bool(live)

        await wait_until(all_live, what="every session live", within=15)
        for session in live:
            since = session["state_since"]
            assert runtime.started_at is not None
            assert runtime.started_at <= since <= time.time(), session
    runtime.stop()


async def test_ops_endpoint_over_tls(tmp_path, nursery, monkeypatch):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "ops.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "ops.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("QFEXBOT_CONSOLE_TEST_TOKEN", TOKEN)
    app = write_config(
        tmp_path,
        runtime_extra='ops_listen = "127.0.0.1:0"\n'
        'ops_token = {env = "QFEXBOT_CONSOLE_TEST_TOKEN"}\n'
        'ops_tls_cert = "ops.pem"\nops_tls_key = "ops.key"',
    )
    runtime = Runtime(app)
    await nursery.start(runtime.run)
    assert runtime.ops_url is not None and runtime.ops_url.startswith("https://127.0.0.1:")
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    async with httpx.AsyncClient(verify=trusted) as client:
        assert (await get(client, runtime.ops_url + "/api/status")).status_code == 200
        own = {"origin": runtime.ops_url, "authorization": f"Bearer {TOKEN}"}
        resumed = await post(client, runtime.ops_url + "/api/resume", {}, **own)
        assert resumed.status_code == 200  # the page's own https origin is not foreign
    runtime.stop()


async def test_a_rebound_dns_name_is_refused_on_every_route(tmp_path, nursery):
    # A web page that rebinds its own DNS name to 127.0.0.1 sends that name as Host: refused on
    # every route, reads included (they carry no token); loopback names pass.
    runtime = Runtime(write_config(tmp_path, runtime_extra='ops_listen = "127.0.0.1:0"'))
    runtime.announce = lambda line: None
    await nursery.start(runtime.run)
    base = runtime.ops_url
    assert base is not None
    port = base.rsplit(":", 1)[1]
    async with httpx.AsyncClient() as client:
        for path in ("/api/status", "/api/journal", "/status", "/metrics", "/", "/api/pause"):
            rebound = await client.get(base + path, headers={"host": f"evil.example:{port}"})
            assert rebound.status_code == 421, path
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
            answer = await client.get(base + "/api/status", headers={"host": host})
            assert answer.status_code == 200, host


async def test_plugin_reenable_over_loopback(tmp_path, nursery, monkeypatch):
    monkeypatch.setenv("QFEXBOT_CONSOLE_TEST_TOKEN", TOKEN)
    write_config(
        tmp_path,
        runtime_extra='ops_listen = "127.0.0.1:0"\n'
        'ops_token = {env = "QFEXBOT_CONSOLE_TEST_TOKEN"}',
    )
    (tmp_path / "plugins" / "flaky.py").write_text(FLAKY)
    path = tmp_path / "bots.toml"
    text = path.read_text().replace(
        'use = "decider:Decider"', 'use = "flaky:Flaky"\nfailure_limit = 2'
    )
    path.write_text(text)
    runtime = Runtime(load_config(path))
    runtime.announce = lambda line: None
    await nursery.start(runtime.run)
    base, url = runtime.ops_url, f"{runtime.ops_url}/api/plugins/enable"
    auth = {"authorization": f"Bearer {TOKEN}", "origin": str(base)}
    plugin = runtime.hosts["watch"].slots[0].plugin
    plugin.broken = True
    body = {"bot": "watch", "plugin": "decider", "reason": "fixed the tick"}

    async def flaky_status() -> dict[str, Any]:
        (bot,) = (await get(client, f"{base}/api/status")).json()["bots"]
        (row,) = bot["plugins"]
        return row

    async with httpx.AsyncClient() as client:
        await wait_until(
            lambda: runtime.hosts["watch"].slots[0].disabled, what="disabled", within=10
        )
        row = await flaky_status()
        assert row["disabled"] and row["failures"] == 2
        assert row["last_error"].endswith(" failed: the test broke it")
        assert row["last_error_at"] <= time.time()
        assert (await post(client, url, body)).status_code == 401  # no token
        for wrong, status in (
            ({**body, "bot": "nobody"}, 404),
            ({**body, "plugin": "nobody"}, 404),
            ({"bot": "watch"}, 400),
            ({**body, "reason": 5}, 400),
        ):
            answer = await post(client, url, wrong, **auth)
            assert answer.status_code == status, (wrong, answer.text)
        plugin.broken = False
        done = await post(client, url, body, **auth)
        assert done.status_code == 200, done.text
        assert done.json()["disabled"] is False and done.json()["reenabled"] == 1
        again = await post(client, url, body, **auth)
        assert again.status_code == 409 and "is not disabled" in again.json()["error"]
        await wait_until(lambda: plugin.ticks >= 2, what="ticks after re-enable", within=10)
        row = await flaky_status()
        assert not row["disabled"] and row["consecutive_failures"] == 0 and row["failures"] == 2

        async def healthy() -> bool:  # no plugin disabled any more (and every session live)
            return (await get(client, f"{base}/healthz")).status_code == 200

        await wait_until(healthy, what="healthy again", within=10)
    runtime.stop()


def test_qfexbot_run_of_the_shipped_demo_prints_the_dashboard_link_first(tmp_path):
    shutil.copy(REPO / "bots.toml", tmp_path / "bots.toml")
    shutil.copytree(
        REPO / "plugins", tmp_path / "plugins", ignore=shutil.ignore_patterns("__pycache__")
    )
    run = subprocess.run(
        [sys.executable, "-m", "qfexbot.cli", "run", "bots.toml", "--duration", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    first = run.stdout.splitlines()[0]
    assert re.fullmatch(
        r"dashboard: http://127\.0\.0\.1:\d+/#token=[\w-]{32}  \(this run's token is in the "
        r"link: keep it private\)",
        first,
    ), first
    token = first.split("#token=")[1].split()[0]
    assert token not in run.stderr  # printed once, never logged


@pytest.mark.parametrize(
    "extra, problem",
    [
        ('ops_listen = "0.0.0.0:9187"', "set ops_token and ops_tls_cert/ops_tls_key in [runtime]"),
        (
            'ops_listen = "192.0.2.1:9187"\nops_token = {env = "T"}',
            "set ops_tls_cert/ops_tls_key in [runtime]",
        ),
        ('ops_tls_cert = "cert.pem"', "ops_tls_cert and ops_tls_key go together"),
        ('ops_token = "inline-token"', "runtime.ops_token: inline secrets are not allowed"),
    ],
)
def test_check_refuses_an_exposed_endpoint(tmp_path, capsys, extra, problem):
    path = tmp_path / "bots.toml"
    write_config(tmp_path)  # the plugins and a valid file to start from
    text = path.read_text().replace("[runtime]\n", f"[runtime]\n{extra}\n", 1)
    path.write_text(text)
    assert check_file(path) == 1
    err = capsys.readouterr().err
    assert problem in err
    assert "inline-token" not in err


@pytest.mark.parametrize(
    "extra",
    [
        'ops_listen = "0.0.0.0:9187"\nops_remote_without_tls = true',
        'ops_listen = "0.0.0.0:9187"\nops_token = {env = "T"}\n'
        'ops_tls_cert = "c.pem"\nops_tls_key = "k.pem"',
    ],
)
def test_check_accepts_an_exposed_endpoint_with_token_and_tls_or_override(tmp_path, capsys, extra):
    path = tmp_path / "bots.toml"
    write_config(tmp_path)
    path.write_text(path.read_text().replace("[runtime]\n", f"[runtime]\n{extra}\n", 1))
    assert check_file(path) == 0, capsys.readouterr().err
