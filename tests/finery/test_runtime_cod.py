"""Cancel-on-disconnect for account orders: a ``FineryVenue`` with ``cancel_on_disconnect``
sends ``cod``, and the standalone simulator cancels those orders (only) when the connection
drops; the resync after the reconnect shows it. bots.toml turns it on per venue table
(``cancel_on_disconnect = true``) for the orders plugins place through the runtime."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import trio
from runtime_files import demo_toml, running, runtime_in
from wait_helpers import wait_until

from qfexbot.config.model import SessionSettings
from qfexbot.core.secrets import Secret
from qfexbot.core.venue import Order
from qfexbot.events import ConnectionState, Event, OrderUpdateEvent, ResyncEvent
from qfexbot.sim.finery import FinerySimulator
from qfexbot.sim.finery.config import demo_finery_config
from qfexbot.sim.finery.server import FineryUrls
from qfexbot.venues.finery.adapter import FineryVenue

SETTINGS = SessionSettings(backoff_initial=0.05, backoff_max=0.2, request_timeout=3.0)


async def open_orders_after_a_drop(sim: FinerySimulator, urls, *, cod: bool, coid: str) -> set:
    """Rest a bid, drop the maker's connections, and return the client order ids of the open
    orders the session's resync after reconnecting reports."""
    venue = FineryVenue(
        "fm", ws_url=urls.ws_url, rest_url=urls.rest_url, user_id="2", settings=SETTINGS,
        key="fm_maker_demo", secret=Secret("fm_maker_secret_demo"), cancel_on_disconnect=cod,
    )  # fmt: skip
    events: list[Event] = []

    async def publish(event: Event) -> None:
        events.append(event)

    def resyncs() -> list[ResyncEvent]:
        return [e for e in events if isinstance(e, ResyncEvent)]

    session = venue.private_session("2", channels=["order_responses"], publish=publish)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(session.run)
            await wait_until(lambda: session.state is ConnectionState.LIVE, what="live", within=5)
            order = Order("BTC-USD", "BUY", "LIMIT", Decimal("0.01"), Decimal(50000), "GTC",
                          coid, False)  # fmt: skip
            await venue.send(session, venue.order(order))
            assert sim.faults.drop_connections(client_id=2) >= 1
            await wait_until(lambda: len(resyncs()) >= 2, what="the resync after a drop", within=5)
            nursery.cancel_scope.cancel()
    finally:
        await venue.aclose()
    return {o.client_order_id for o in resyncs()[-1].open_orders}


async def test_cod_orders_are_cancelled_when_the_connection_drops_others_stay() -> None:
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            sim = FinerySimulator(demo_finery_config())
            urls = await nursery.start(sim.serve, "127.0.0.1")
            with_cod = await open_orders_after_a_drop(sim, urls, cod=True, coid="61")
            without = await open_orders_after_a_drop(sim, urls, cod=False, coid="62")
            nursery.cancel_scope.cancel()
    assert "61" not in with_cod
    assert "62" in without


async def test_a_feed_the_venue_does_not_have_is_dropped_and_the_session_goes_live(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            sim = FinerySimulator(demo_finery_config())
            urls = await nursery.start(sim.serve, "127.0.0.1")
            venue = FineryVenue(
                "fm", ws_url=urls.ws_url, rest_url=urls.rest_url, user_id="2",
                settings=SETTINGS, key="fm_maker_demo", secret=Secret("fm_maker_secret_demo"),
            )  # fmt: skip

            async def publish(event: Event) -> None:
                pass

            session = venue.private_session("2", channels=["positions"], publish=publish)
            driver = session.client.driver
            assert driver.add_binding("P")  # obsolete: the simulator answers 'Z' 1
            await nursery.start(session.run)
            await wait_until(lambda: session.state is ConnectionState.LIVE, what="live", within=5)
            await venue.aclose()
            nursery.cancel_scope.cancel()
    assert [feed for feed, _ in driver.bindings] == ["K"]
    (record,) = [r for r in caplog.records if "feed not available" in r.getMessage()]
    assert record.levelname == "WARNING"


MAKER = '''
"""Test plugin: once LIVE rests one bid (client order id 71); keeps every event."""
from decimal import Decimal
from qfexbot import ConnectionState, ConnectionStateEvent, hookimpl


class Maker:
    def __init__(self, config):
        self.events = []
        self.placed = False

    @hookimpl
    async def qfexbot_event(self, ctx, event):
        self.events.append(event)
        if (not self.placed and isinstance(event, ConnectionStateEvent)
                and event.state is ConnectionState.LIVE and event.account_id == "2"):
            self.placed = True
            await ctx.add_order("desk", symbol="BTC-USD", side="BUY", order_type="LIMIT",
                                quantity=Decimal("0.01"), price=Decimal("50000"),
                                client_order_id="71")
'''


MAKER_BOTS = """
[bots.maker]
venue = "fm"
accounts = ["desk"]
channels = ["order_responses"]
[bots.maker.plugins.maker]
use = "maker:Maker"
"""


def maker_toml(urls: FineryUrls, cod_line: str) -> str:
    return demo_toml(
        MAKER_BOTS, urls, "maker", {"desk": "primary"}, extra=cod_line, request_timeout=3.0
    )


async def runtime_orders_after_a_drop(tmp_path: Path, sim: FinerySimulator, urls, cod_line: str):
    """Run the runtime on ``sim`` with the venue table's ``cod_line``, let its plugin rest a
    bid, drop the connection, and return the client order ids the plugin's resync after the
    reconnect reports open."""
    work = tmp_path / (cod_line.replace(" ", "").replace("=", "-") or "default")
    runtime = runtime_in(work, maker_toml(urls, cod_line), {"maker": MAKER})
    async with running(runtime):
        plugin = runtime.hosts["maker"].slots[0].plugin

        def seen(kind: type) -> list:
            return [e for e in plugin.events if isinstance(e, kind)]

        await wait_until(
            lambda: any(e.client_order_id == "71" for e in seen(OrderUpdateEvent)),
            what="the bid acknowledged",
            within=5,
        )
        assert sim.faults.drop_connections(client_id=2) == 1
        await wait_until(lambda: len(seen(ResyncEvent)) >= 2, what="the resync", within=5)
    return {o.client_order_id for o in seen(ResyncEvent)[-1].open_orders}


async def test_cancel_on_disconnect_from_bots_toml_cancels_runtime_orders_on_a_drop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FM_TEST_MAKER_SECRET", "fm_maker_secret_demo")
    monkeypatch.chdir(tmp_path)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            sim = FinerySimulator(demo_finery_config())
            urls = await nursery.start(sim.serve, "127.0.0.1")
            with_cod = await runtime_orders_after_a_drop(
                tmp_path, sim, urls, "cancel_on_disconnect = true"
            )
            by_default = await runtime_orders_after_a_drop(tmp_path, sim, urls, "")
            nursery.cancel_scope.cancel()
    assert "71" not in with_cod
    assert "71" in by_default
