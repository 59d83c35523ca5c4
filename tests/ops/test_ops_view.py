"""The runtime is what ops reads: a built and a running Runtime have every member of the view
protocols of ``qfexbot.ops.view``, down to its sessions, journal, recorder and metrics."""

from __future__ import annotations

from typing import Any

import trio
from ops_helpers import write_config
from wait_helpers import wait_until

from qfexbot.config import load_config
from qfexbot.ops import view
from qfexbot.ops.recorder import with_recording
from qfexbot.runtime import Runtime


def members(protocol: type) -> set[str]:
    """The names a protocol declares: its properties, methods and annotated attributes."""
    declared = {name for name in vars(protocol) if not name.startswith("_")}
    return declared | set(getattr(protocol, "__annotations__", {}))


def missing(obj: Any, protocol: type) -> list[str]:
    return sorted(name for name in members(protocol) if not hasattr(obj, name))


def test_every_protocol_declares_members():
    protocols = [view.RuntimeView, view.VenueRunView, view.SessionView, view.JournalView]
    assert all(members(protocol) for protocol in protocols)
    assert "accounts_view" in members(view.RuntimeView)
    assert {"unresolved", "active_holds"} <= members(view.JournalView)


def test_a_built_runtime_has_every_member_ops_reads(tmp_path):
    runtime = Runtime(write_config(tmp_path))
    assert missing(runtime, view.RuntimeView) == []
    assert missing(runtime.accounts_view, view.AccountsSeen) == []
    assert missing(runtime.metrics, view.MetricsView) == []


async def test_a_running_runtime_satisfies_every_view(tmp_path, nursery):
    write_config(tmp_path)
    path = tmp_path / "bots.toml"
    text = path.read_text().replace(
        'channels = ["balances", "positions", "order_responses"]\n',
        'channels = ["balances", "positions", "order_responses"]\n'
        'market_data = { channels = ["bbo"], symbols = ["AAPL-USD"] }\n',
    )
    path.write_text(text)
    app = with_recording(load_config(path), str(tmp_path / "rec"))
    runtime = Runtime(app)
    await nursery.start(runtime.run)
    await wait_until(lambda: runtime.accounts_view.balances, what="a balance event", within=15)

    assert missing(runtime, view.RuntimeView) == []
    assert runtime.venues and runtime.market_data and runtime.hosts
    for run in runtime.venues.values():
        assert missing(run, view.VenueRunView) == []
        assert run.sessions and run.transfers is not None
        assert missing(run.transfers, view.TransfersView) == []
        for session in run.sessions.values():
            assert missing(session, view.SessionView) == []
    for md in runtime.market_data.values():
        assert missing(md, view.MarketDataView) == []
        assert missing(md.supervisor, view.SessionView) == []
    for host in runtime.hosts.values():
        assert missing(host, view.PluginHostView) == []
    assert runtime.journal is not None and missing(runtime.journal, view.JournalView) == []
    assert runtime.recorder is not None and missing(runtime.recorder, view.RecorderView) == []
    assert missing(runtime.accounts_view, view.AccountsSeen) == []
    assert missing(runtime.metrics, view.MetricsView) == []
    with trio.fail_after(10):
        await runtime.journal.unresolved()
        await runtime.journal.active_holds()
        await runtime.metrics.refresh()
    runtime.stop()
