"""The ops endpoint of a running Runtime scraped over loopback: /healthz, /metrics, /status."""

from __future__ import annotations

from decimal import Decimal

import httpx
import trio
from ops_helpers import DESK_A, PRIMARY, write_config
from prometheus_client.parser import text_string_to_metric_families
from wait_helpers import wait_until

from qfexbot.cli.status import render_status, status_command
from qfexbot.money.journal import SqliteStore
from qfexbot.runtime import Runtime


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse an exposition into {(sample name, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def get(client: httpx.AsyncClient, url: str) -> httpx.Response:
    with trio.fail_after(10):
        return await client.get(url)


async def test_healthz_metrics_and_status_over_loopback(tmp_path, nursery, capsys):
    app = write_config(tmp_path, runtime_extra='ops_listen = "127.0.0.1:0"')
    runtime = Runtime(app)
    await nursery.start(runtime.run)
    assert runtime.ops_url is not None and runtime.ops_url.startswith("http://127.0.0.1:")
    plugin = runtime.hosts["watch"].slots[0].plugin
    async with httpx.AsyncClient() as client:
        # /healthz turns 200 once both sessions are LIVE
        health = await get(client, runtime.ops_url + "/healthz")
        while health.status_code != 200:
            assert health.status_code == 503 and health.json()["status"] == "degraded"
            await trio.sleep(0.05)
            health = await get(client, runtime.ops_url + "/healthz")
        assert health.json() == {"status": "ok"}

        await wait_until(lambda: plugin.decided >= 5, what="the decider's transfers", within=15)
        await wait_until(
            lambda: runtime.metrics.transfer_outcomes.labels("demo", "done")._value.get() >= 2,
            what="two transfer outcomes",
            within=15,
        )
        response = await get(client, runtime.ops_url + "/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        m = samples(response.text)
        desk_a = (("account", DESK_A), ("alias", "desk-a"), ("venue", "demo"))
        assert m[("qfexbot_session_live", desk_a)] == 1.0
        assert m[("qfexbot_session_state", tuple(sorted((*desk_a, ("state", "live")))))] == 1.0
        assert m[("qfexbot_session_state", tuple(sorted((*desk_a, ("state", "backoff")))))] == 0.0
        assert m[("qfexbot_session_frames_total", desk_a)] > 3
        assert m[("qfexbot_session_reconnects_total", desk_a)] == 0
        plugin_labels = (("bot", "watch"), ("plugin", "decider"))
        assert m[("qfexbot_plugin_events_in_total", plugin_labels)] >= 10
        assert m[("qfexbot_plugin_events_handled_total", plugin_labels)] >= 10
        assert m[("qfexbot_plugin_failures_total", plugin_labels)] == 0
        assert ("qfexbot_plugin_inbox_depth", plugin_labels) in m
        assert m[("qfexbot_transfer_outcomes_total", (("state", "done"), ("venue", "demo")))] == 2
        latency = ("qfexbot_transfer_request_seconds_count", (("result", "ok"), ("venue", "demo")))
        assert m[latency] == 2
        assert (
            m[("qfexbot_journal_unresolved_transfers", (("state", "unknown"), ("venue", "demo")))]
            == 0
        )
        assert m[("qfexbot_kill_switch_engaged", ())] == 0
        assert m[("qfexbot_account_available", desk_a)] >= 50

        status = (await get(client, runtime.ops_url + "/status")).json()
        assert status["running"] and status["healthy"]
        assert {s["alias"]: s["state"] for s in status["sessions"]} == {
            "desk-a": "live",
            "desk-b": "live",
        }
        balances = {b["alias"]: Decimal(b["available"]) for b in status["balances"]}
        assert Decimal(4900) < balances["desk-b"] <= Decimal(5000)  # an order holds margin
        assert balances["desk-a"] > Decimal(0)
        assert status["bots"][0]["plugins"][0]["name"] == "decider"

        assert (await get(client, runtime.ops_url + "/nope")).status_code == 404
        assert (await client.post(runtime.ops_url + "/status")).status_code == 405

    # `qfexbot status` renders the running process's document (blocking client: in a thread)
    code = await trio.to_thread.run_sync(
        lambda: status_command(app, url=runtime.ops_url + "/status", use_rich=False)
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "qfexbot running: pid" in out and "healthy" in out
    lines = out.splitlines()
    desk_a_row = next(
        line for line in lines if line.startswith("demo") and " desk-a " in line and "live" in line
    )
    assert desk_a_row.split()[:3] == ["demo", "desk-a", "live"]
    assert any(line.split()[:2] == ["watch", "decider"] for line in lines)
    assert "Pending/unknown transfers: none" in out
    runtime.stop()


async def test_status_when_not_running_shows_the_journal(tmp_path, capsys):
    app = write_config(tmp_path, runtime_extra='ops_listen = "127.0.0.1:9"')  # nothing there
    store = SqliteStore(app.runtime.journal)
    entry = store.record_intent(
        bot="watch",
        plugin="decider",
        venue="demo",
        src=PRIMARY,
        dst=DESK_A,
        amount=Decimal("12.5"),
        reason="test",
    )
    store.mark_sent(entry.id)
    store.mark_unknown(entry.id, "outcome unknown: timeout")
    store.close()
    code = await trio.to_thread.run_sync(lambda: status_command(app, use_rich=False))
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith("qfexbot is NOT running (no answer at http://127.0.0.1:9/status")
    row = next(line for line in out.splitlines() if line.startswith(entry.id))
    assert row.split()[:2] == [entry.id, "unknown"] and "12.5" in row


def test_rich_rendering_has_the_same_content():
    document = {
        "running": True,
        "pid": 7,
        "started_at": 100.0,
        "now": 160.0,
        "healthy": False,
        "problems": ["session demo/desk-b is backoff"],
        "kill_switch": True,
        "sessions": [
            {
                "venue": "demo",
                "alias": "desk-b",
                "state": "backoff",
                "reconnects": 3,
                "last_event_age": 12.0,
                "last_frame_age": 11.0,
                "last_error": "refused",
            }
        ],
        "bots": [],
        "balances": [],
        "transfers": [],
    }
    plain = render_status(document)
    rich = render_status(document, use_rich=True)
    for text in (plain, rich):
        assert "DEGRADED: session demo/desk-b is backoff" in text
        assert "KILL SWITCH ENGAGED" in text
        assert "refused" in text and "up 1m00s" in text
    assert "\x1b[" in rich and "\x1b[" not in plain
