"""The notifier plugin against a local HTTP receiver (hypercorn on 127.0.0.1), in a real runtime.

Alerts come from real flows where they can: the kill switch file, a plugin disabled by its
circuit breaker, a transfer left unknown by the simulator's fault injection.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from qfexbot_plugins.notifier import Notifier

from qfexbot import AlertEvent, AlertKind, AlertSeverity, BalanceEvent, hookimpl
from qfexbot.config import validate_plugin_config
from qfexbot.core.alerts import make_alert
from qfexbot.core.asgi import answer_lifespan, read_body
from qfexbot.core.logs import TextFormatter
from qfexbot.money.killswitch import pause, resume
from qfexbot.testing import run_bot

HOOK_SECRET = "T000/B000/hook-secret-4f9a"
BOT_TOKEN = "123456:telegram-secret-token-77"
FAST = {"tick": 0.05, "retry_initial": 0.02, "retry_max": 0.1, "timeout": 2.0}


@dataclass
class Receiver:
    """Records every request; answers ``status``, or never answers while ``hang`` is set."""

    url: str = ""
    status: int = 200
    hang: bool = False
    requests: list[tuple[str, Any, float]] = field(default_factory=list)

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        body = await read_body(receive)
        self.requests.append((scope["path"], json.loads(body or b"null"), trio.current_time()))
        if self.hang:
            await trio.sleep_forever()
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    def bodies(self) -> list[Any]:
        return [body for _, body, _ in self.requests]

    async def wait(self, n: int, timeout: float = 5.0) -> list[Any]:
        with trio.fail_after(timeout):
            while len(self.requests) < n:  # noqa: ASYNC110 - polls a list the app appends to
                await trio.sleep(0.01)
        return self.bodies()


def notifier(sink: str, receiver: Receiver, **options: Any) -> tuple[str, dict[str, Any]]:
    """An extra plugin instance of the notifier pointed at ``receiver``."""
    if sink == "telegram":
        base = {"token": {"env": "TEST_TG_TOKEN"}, "chat_id": "-10042", "base_url": receiver.url}
    else:
        base = {"url": {"env": "TEST_HOOK_URL"}}
    return "notifier", {"sink": sink, **base, **FAST, **options}


@pytest.fixture
async def receiver(nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch) -> Receiver:
    """A receiver on 127.0.0.1, and the secret references that point the notifier at it."""
    rec = Receiver()
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.1
    binds = await nursery.start(partial(hypercorn_serve, rec.app, config))
    rec.url = binds[0]
    monkeypatch.setenv("TEST_HOOK_URL", f"{rec.url}/hooks/{HOOK_SECRET}")
    monkeypatch.setenv("TEST_TG_TOKEN", BOT_TOKEN)
    return rec


class Quiet:
    """A bot plugin that does nothing (the bot under the notifier)."""

    @hookimpl
    def qfexbot_event(self, event: object) -> None:
        pass


class Explodes:
    """Raises on every balance event, so its circuit breaker disables it."""

    @hookimpl
    def qfexbot_event(self, event: object) -> None:
        if isinstance(event, BalanceEvent):
            raise RuntimeError("boom")


def no_secret(text: str) -> None:
    assert HOOK_SECRET not in text
    assert BOT_TOKEN not in text
    assert "hook-secret" not in text


async def test_kill_switch_alerts_once_each_as_json_webhook(tmp_path, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    async with run_bot(
        Quiet, tmp_path=tmp_path, extra_plugins={"notify": notifier("webhook", receiver)}
    ) as bot:
        switch = bot.runtime.app.runtime.kill_switch_file
        pause(switch, "operator: venue incident")
        [engaged] = await receiver.wait(1)
        resume(switch)
        _, released = await receiver.wait(2)
        await trio.sleep(0.2)  # a watcher that alerted twice would have done so by now
        assert len(receiver.requests) == 2
    path = receiver.requests[0][0]
    assert path == f"/hooks/{HOOK_SECRET}"  # the receiver needs the secret path; nobody else
    assert engaged["alert"] == "kill_switch_engaged"
    assert engaged["severity"] == "critical"
    assert "operator: venue incident" in engaged["summary"]
    assert engaged["subject"] == str(switch)
    assert engaged["count"] == 1
    assert set(engaged) == {
        "alert", "severity", "summary", "bot", "venue", "account", "subject", "details",
        "count", "at",
    }  # fmt: skip
    assert released["alert"] == "kill_switch_released"
    assert released["severity"] == "warning"
    no_secret(json.dumps(receiver.bodies()))  # the secret is in the path only
    assert receiver.url.split("//")[1].split(":")[0] in caplog.text  # the host is named
    no_secret(caplog.text)


async def test_disabled_plugin_alerts_slack(tmp_path, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    async with run_bot(
        Explodes,
        name="boomer",
        options={"failure_limit": 2},
        tmp_path=tmp_path,
        extra_plugins={"notify": notifier("slack", receiver)},
    ) as bot:
        [body] = await receiver.wait(1)
        assert bot.slot("boomer").disabled
        await trio.sleep(0.2)
        assert len(receiver.requests) == 1
    assert set(body) == {"text"}
    assert body["text"].startswith("[CRITICAL] plugin_disabled: plugin bot/boomer disabled: ")
    assert "RuntimeError: boom" in body["text"]
    no_secret(caplog.text)


async def test_unknown_transfer_alerts_discord(tmp_path, receiver):
    async with run_bot(
        Quiet,
        tmp_path=tmp_path,
        accounts={"desk-a": 1000},
        extra_plugins={
            "notify": notifier("discord", receiver, kinds=["transfer_unknown"]),
        },
    ) as bot:
        bot.sim.faults.drop_transfer_response(mode="reset")
        result = await bot.ctx.transfer("treasury", "desk-a", Decimal(5), reason="test")
        assert result.state == "unknown"
        [body] = await receiver.wait(1)
        await trio.sleep(0.2)
        assert len(receiver.requests) == 1  # kinds keeps the reconciled outcome out
    assert set(body) == {"content", "allowed_mentions"}
    assert body["allowed_mentions"] == {"parse": []}
    assert body["content"].startswith("[CRITICAL] transfer_unknown: transfer ")
    assert result.entry_id in body["content"]
    assert "entry: " + result.entry_id in body["content"]


async def test_failed_transfer_alerts_once(tmp_path, receiver):
    # The venue refuses the request (a 4xx: nothing applied): journaled failed, alerted once.
    async with run_bot(
        Quiet,
        tmp_path=tmp_path,
        extra_plugins={"notify": notifier("webhook", receiver, kinds=["transfer_failed"])},
    ) as bot:
        bot.sim.faults.fail_next_rest(1, status=400, path="/user/transfer")
        result = await bot.ctx.transfer("treasury", "desk-a", Decimal(5), reason="refused")
        assert result.state == "failed"
        [body] = await receiver.wait(1)
        await trio.sleep(0.2)
        assert len(receiver.requests) == 1
    assert body["alert"] == "transfer_failed"
    assert body["subject"] == result.entry_id
    assert body["account"] in ("treasury", "desk-a")


async def test_telegram_payload_and_token_stays_out_of_logs(tmp_path, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    async with run_bot(
        Quiet, tmp_path=tmp_path, extra_plugins={"notify": notifier("telegram", receiver)}
    ) as bot:
        pause(bot.runtime.app.runtime.kill_switch_file, "drawdown")
        [body] = await receiver.wait(1)
    assert receiver.requests[0][0] == f"/bot{BOT_TOKEN}/sendMessage"
    assert body["chat_id"] == "-10042"
    assert body["disable_web_page_preview"] is True
    assert body["text"].startswith("[CRITICAL] kill_switch_engaged: kill switch engaged: drawdown")
    no_secret(caplog.text)
    no_secret(json.dumps(receiver.bodies()))  # the token is in the path only
    no_secret(repr(bot.slot("notify").ctx.config))


async def test_receiver_500_is_retried_then_given_up(tmp_path, receiver, caplog):
    receiver.status = 500
    async with run_bot(
        Quiet,
        tmp_path=tmp_path,
        extra_plugins={"notify": notifier("webhook", receiver, max_tries=3)},
    ) as bot:
        pause(bot.runtime.app.runtime.kill_switch_file, "x")
        await receiver.wait(3)
        plugin = bot.slot("notify").plugin
        await bot.wait_for(lambda: plugin.counters.given_up == 1, timeout=5)
        await trio.sleep(0.3)
        assert len(receiver.requests) == 3
        assert plugin.counters.retries == 2
        assert plugin.counters.sent == 0
        assert not plugin.queue
    assert "gave up on a message after 3 tries" in caplog.text
    assert "HTTP 500" in caplog.text
    no_secret(caplog.text)


async def test_hanging_receiver_is_timed_out_and_never_slows_the_bot(tmp_path, receiver, caplog):
    receiver.hang = True
    options = {"timeout": 0.2, "max_tries": 2, "queue_size": 3}
    async with run_bot(
        Quiet, tmp_path=tmp_path, extra_plugins={"notify": notifier("webhook", receiver, **options)}
    ) as bot:
        runtime = bot.runtime
        pause(runtime.app.runtime.kill_switch_file, "x")
        await receiver.wait(1)  # the notifier now waits on a receiver that never answers
        start = time.perf_counter()
        for n in range(500):
            runtime.alerts.emit(
                make_alert(AlertKind.TRANSFER_FAILED, AlertSeverity.WARNING, "f", subject=str(n))
            )
        emitting = time.perf_counter() - start
        resume(runtime.app.runtime.kill_switch_file)
        start = time.perf_counter()
        result = await bot.ctx.transfer("treasury", "desk-a", Decimal(1), reason="still works")
        transferring = time.perf_counter() - start
        assert result.state == "done"
        plugin = bot.slot("notify").plugin
        await bot.wait_for(lambda: plugin.counters.given_up >= 1, timeout=5)
    assert emitting < 0.5  # 500 alerts, none waited for the stuck notifier
    assert transferring < 2.0  # the bot's own flow is not held up by it
    assert plugin.counters.dropped > 0  # its own queue kept the newest, counted the rest
    assert len(plugin.queue) <= 3
    assert "no answer within 0.2 s" in caplog.text


async def test_repeats_are_one_message_with_a_count(tmp_path, receiver):
    async with run_bot(
        Quiet,
        tmp_path=tmp_path,
        extra_plugins={"notify": notifier("webhook", receiver, dedup_window=0.3)},
    ) as bot:
        for _ in range(5):
            bot.runtime.alerts.emit(
                make_alert(AlertKind.SESSION_FAILED, AlertSeverity.CRITICAL, "s", subject="a")
            )
        first, second = await receiver.wait(2)
        await trio.sleep(0.5)
        assert len(receiver.requests) == 2
    # The first goes out at once; the four repeats within the window become one follow-up.
    assert (first["count"], first["summary"]) == (1, "s")
    assert (second["count"], second["summary"]) == (4, "s (repeated 4 more time(s) in 0.3 s)")


async def test_rate_limit_spreads_messages_and_min_severity_filters(tmp_path, receiver):
    options = {"rate_limit": 2, "rate_window": 0.5, "min_severity": "warning"}
    async with run_bot(
        Quiet, tmp_path=tmp_path, extra_plugins={"notify": notifier("webhook", receiver, **options)}
    ) as bot:
        bot.runtime.alerts.emit(make_alert(AlertKind.DAILY_SUMMARY, AlertSeverity.INFO, "info"))
        for n in range(3):
            bot.runtime.alerts.emit(
                make_alert(AlertKind.TRANSFER_FAILED, AlertSeverity.WARNING, "w", subject=str(n))
            )
        await receiver.wait(3)
        await trio.sleep(0.2)
        assert len(receiver.requests) == 3
    times = [at for _, _, at in receiver.requests]
    assert times[2] - times[0] >= 0.45  # the third waited for the window
    assert [b["subject"] for b in receiver.bodies()] == ["0", "1", "2"]


async def test_summary_counts_what_was_seen(tmp_path, receiver):
    options = {"summary_every": 0.4, "kinds": ["daily_summary"]}
    async with run_bot(
        Quiet, tmp_path=tmp_path, extra_plugins={"notify": notifier("webhook", receiver, **options)}
    ) as bot:
        for n in range(2):
            bot.runtime.alerts.emit(
                make_alert(AlertKind.TRANSFER_REFUSED, AlertSeverity.WARNING, "r", subject=str(n))
            )
        [body] = await receiver.wait(1)
    assert body["alert"] == "daily_summary"
    assert body["summary"] == "alerts in the last 0.4 s: 2 transfer_refused"
    assert dict(body["details"]) == {"sent": "0", "deduplicated": "0", "dropped": "0",
                                     "given_up": "0"}  # fmt: skip


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"sink": "telegram", "chat_id": "1"}, "sink 'telegram' needs token"),
        ({"sink": "slack"}, "sink 'slack' needs url"),
        ({"sink": "slack", "url": {"env": "X"}, "kinds": ["nope"]}, "unknown alert kinds"),
    ],
)
def test_bad_config_is_a_clear_error(options, problem):
    values, errors = validate_plugin_config(Notifier.config_schema, options, "bots.b.plugins.n")
    assert errors == []
    with pytest.raises(ValueError, match=problem):
        Notifier(values)


def test_inline_secret_is_refused():
    _, errors = validate_plugin_config(
        Notifier.config_schema, {"sink": "slack", "url": "https://x/y"}, "bots.b.plugins.n"
    )
    assert errors == [
        "bots.b.plugins.n.url: inline secrets are not allowed for plugin secrets; use"
        ' {env = "NAME"} or {file = "path"}'
    ]


def test_alert_event_is_exported_and_private():
    alert = make_alert(AlertKind.PLUGIN_DISABLED, AlertSeverity.CRITICAL, "x", subject="b/p")
    assert isinstance(alert, AlertEvent)
    assert alert.is_private
    assert alert.kind == "alert"
    assert AlertSeverity.CRITICAL > AlertSeverity.WARNING > AlertSeverity.INFO


async def test_deposits_moved_unexplained_alert_once(tmp_path, receiver):
    async with run_bot(
        Quiet,
        tmp_path=tmp_path,
        extra_plugins={"notify": notifier("webhook", receiver, kinds=["unexplained_balance"])},
    ) as bot:
        bot.sim.faults.fail_next_rest(1, status=503, path="/user/transfer")
        doubt = await bot.ctx.transfer("treasury", "desk-a", Decimal(5), reason="in doubt")
        assert doubt.state == "unknown"
        desk, treasury = bot.account_id("desk-a"), bot.account_id("treasury")
        bot.sim.faults.outside_transfer(desk, treasury, Decimal("0.05"))  # the web app, say
        transfers = bot.runtime.venues[bot.venue].transfers
        with trio.fail_after(10):
            while not receiver.requests:
                await transfers.reconcile()
                await trio.sleep(0.05)
        await transfers.reconcile()  # a later pass over the same holds alerts no more
        await trio.sleep(0.2)
        assert len(receiver.requests) == 1
    [body] = receiver.bodies()
    assert body["alert"] == "unexplained_balance"
    assert body["subject"] == doubt.entry_id
    assert body["details"]["code"] == "unexplained_deposits"
    assert body["details"]["accounts"] == "treasury, desk-a"
    assert "qfexbot journal release" in body["summary"]


async def test_rebalancer_drawdown_stop_alerts_once(tmp_path, receiver):
    rebalancer = {"min": 500, "target": 1000, "max": 2000, "interval": "10s",
                  "drawdown_pct": 20, "drawdown_check": 0.1}  # fmt: skip
    async with run_bot(
        "rebalancer",
        options=rebalancer,
        tmp_path=tmp_path,
        extra_plugins={"notify": notifier("slack", receiver, kinds=["drawdown_stop"])},
    ) as bot:
        engine = bot.sim.engine
        desk = bot.account_id("desk-a")
        now = engine.clock()
        engine.accounts[desk].equity_history[:] = [(now - 60, Decimal(5000)), (now, Decimal(900))]
        [body] = await receiver.wait(1)
        await trio.sleep(0.3)  # two more checks in drawdown: no second message
        assert len(receiver.requests) == 1
    assert body["text"] == (
        "[WARNING] drawdown_stop: desk-a equity 900.0 is 82.0% below its 1d peak 5000.0: no more "
        "top-ups for it until it recovers\nbot=bot venue=sim account=desk-a\nplugin: rebalancer"
        "\ndrop_pct: 82.0\npeak: 5000.0\nequity: 900.0"
    )


async def test_failed_session_alerts_once(tmp_path, receiver):
    async with run_bot(
        Quiet,
        tmp_path=tmp_path,
        accounts={"desk-a": 1000, "desk-b": 1000},
        extra_plugins={"notify": notifier("webhook", receiver, kinds=["session_failed"])},
    ) as bot:
        bot.sim.faults.reject_next_auths(1000)
        bot.sim.faults.drop_connections(bot.account_id("desk-a"))
        [body] = await receiver.wait(1, timeout=20)
        await trio.sleep(0.2)
        assert len(receiver.requests) == 1
        bot.sim.faults.reject_next_auths(0)
    assert body["alert"] == "session_failed"
    assert body["severity"] == "critical"
    assert body["account"] == "desk-a"
    assert body["subject"] == "sim/desk-a"
    assert body["details"]["last_error"] == (
        "authentication rejected: venue replied authenticated=false"
    )
    assert body["summary"].startswith("session sim/desk-a FAILED and will not retry: ")


async def test_refusals_of_one_pair_fold_into_one_message(tmp_path, receiver):
    async with run_bot(
        Quiet,
        tmp_path=tmp_path,
        extra_plugins={
            "notify": notifier("webhook", receiver, kinds=["transfer_refused"], dedup_window=0.3)
        },
    ) as bot:
        pause(bot.runtime.app.runtime.kill_switch_file, "maintenance")
        refused = [
            await bot.ctx.transfer("treasury", "desk-a", Decimal(1), reason="try") for _ in range(3)
        ]
        assert [r.state for r in refused] == ["refused"] * 3
        await receiver.wait(1)
        await trio.sleep(0.5)  # past the de-duplication window: the repeats are reported
    counts = [body["count"] for body in receiver.bodies()]
    assert sum(counts) == 3  # every refusal counted ...
    assert len(counts) < 3  # ... in fewer messages than refusals
    first = receiver.bodies()[0]
    assert first["alert"] == "transfer_refused"
    assert first["subject"] == "refused treasury -> desk-a"
    assert "of 1 treasury -> desk-a was refused: money movement is paused" in first["summary"]
    assert first["details"]["entry"] == refused[0].entry_id


async def test_a_url_httpx_normalises_stays_out_of_logs(tmp_path, receiver, caplog, monkeypatch):
    # httpx logs the URL it normalised (here the scheme lower-cased), not the configured string.
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TEST_HOOK_URL", f"HTTP://{receiver.url.split('//')[1]}/hooks/{HOOK_SECRET}")
    async with run_bot(
        Quiet, tmp_path=tmp_path, extra_plugins={"notify": notifier("webhook", receiver)}
    ) as bot:
        pause(bot.runtime.app.runtime.kill_switch_file, "operator")
        await receiver.wait(1)
    assert receiver.requests[0][0] == f"/hooks/{HOOK_SECRET}"
    assert "HTTP Request" in caplog.text  # httpx did log the request, with the URL hidden
    no_secret(caplog.text)


def test_a_plugin_secret_once_read_is_scrubbed_from_qfexbot_log_lines(monkeypatch):
    secret = "plugin-secret-value-31337"
    monkeypatch.setenv("TEST_PLUGIN_SECRET", secret)
    options = {"sink": "webhook", "url": {"env": "TEST_PLUGIN_SECRET"}}
    values, errors = validate_plugin_config(Notifier.config_schema, options, "bots.b.plugins.n")
    assert errors == []
    line = logging.LogRecord("plugins.n", logging.ERROR, __file__, 1, "failed: %s", (secret,), None)
    assert secret in TextFormatter().format(line)  # not read yet: nothing to scrub
    values["url"].resolve()
    assert secret not in TextFormatter().format(line)
