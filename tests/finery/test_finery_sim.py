"""Finery adapter against the Finery simulator over real loopback sockets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url, wrap_client_stream

from qfexbot.core.secrets import Secret
from qfexbot.events import (
    BalanceEvent,
    BookEvent,
    ConnectionState,
    ConnectionStateEvent,
    Event,
    FillEvent,
    OrderUpdateEvent,
    PositionEvent,
    ResyncEvent,
)
from qfexbot.sim.finery import (
    FinerySimClient,
    FinerySimConfig,
    FinerySimulator,
    parse_finery_sim_config,
)
from qfexbot.sim.finery.signature import expected_signature, signature_matches
from qfexbot.venues.finery.auth import NonceSource, sign, ws_auth_headers
from qfexbot.venues.finery.driver import FineryWsClient, rejection_reason
from qfexbot.venues.finery.parse import FineryError
from qfexbot.venues.finery.rest import FineryHttpError, FineryRest

TAKER, MAKER, MASTER, SUB = 1, 2, 10, 11
CLIENTS = (
    FinerySimClient("taker_key", "taker_secret", TAKER, "taker"),
    FinerySimClient(
        "maker_key", "maker_secret", MAKER, "maker", positions=(("USD", TAKER, Decimal("250.5")),)
    ),
    FinerySimClient("master_key", "master_secret", MASTER, "master", subaccounts=(SUB,)),
    FinerySimClient("sub_key", "sub_secret", SUB, "taker"),
)
KEYS = {c.client_id: (c.key, c.secret) for c in CLIENTS}


@dataclass
class Settings:
    connect_timeout: float = 5.0
    auth_timeout: float = 5.0
    stale_after: float = 15.0
    backoff_initial: float = 0.05
    backoff_max: float = 0.2
    healthy_after: float = 30.0
    max_auth_failures: int = 3
    request_timeout: float = 5.0


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` until it holds (bound it with the caller's ``trio.fail_after``)."""
    while True:
        if predicate():
            return
        await trio.sleep(0.01)


class Recorder:
    """The publish sink: keeps every event; ``wait`` waits (bounded) for a matching one."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = trio.Event()

    async def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = trio.Event()

    def of(self, kind: type, pred: Callable[[Any], bool] = lambda e: True) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind) and pred(e)]

    async def wait(self, kind: type, pred: Callable[[Any], bool] = lambda e: True) -> Any:
        with trio.fail_after(5.0):
            while True:
                found = self.of(kind, pred)
                if found:
                    return found[-1]
                await trio.sleep(0.01)

    def live_count(self) -> int:
        return len(self.of(ConnectionStateEvent, lambda e: e.state is ConnectionState.LIVE))


@pytest.fixture
async def sim(nursery: trio.Nursery) -> FinerySimulator:
    simulator = FinerySimulator(FinerySimConfig(clients=CLIENTS))
    simulator.urls = await nursery.start(simulator.serve, "127.0.0.1")  # type: ignore[attr-defined]
    return simulator


_NONCES: dict[str, NonceSource] = {}


def shared_nonces(key: str) -> NonceSource:
    """One nonce source per key, as the adapter keeps: two sources for one key can give the
    same nonce in the same millisecond, and the venue refuses the second (error 6)."""
    return _NONCES.setdefault(key, NonceSource())


async def start_client(
    nursery: trio.Nursery,
    sim: FinerySimulator,
    client_id: int,
    feeds: tuple[tuple[str, Any], ...] = (("O", None), ("K", None), ("L", None)),
    **kwargs: Any,
) -> tuple[FineryWsClient, Recorder]:
    key, secret = KEYS[client_id]
    kwargs.setdefault("nonces", shared_nonces(key))
    recorder = Recorder()
    client = FineryWsClient(
        sim.urls.ws_url,
        key,
        Secret(secret),  # type: ignore[attr-defined]
        venue="fm",
        account_id=str(client_id),
        publish=recorder,
        settings=kwargs.pop("settings", Settings()),
        feeds=feeds,
        keepalive_interval=kwargs.pop("keepalive_interval", 0.3),
        **kwargs,
    )
    await nursery.start(client.run)
    with trio.fail_after(5):
        await client.supervisor.wait_for(ConnectionState.LIVE)
    return client, recorder


def rest_for(sim: FinerySimulator, client_id: int, **kwargs: Any) -> FineryRest:
    key, secret = KEYS[client_id]
    kwargs.setdefault("nonces", shared_nonces(key))
    return FineryRest(sim.urls.rest_url, key, Secret(secret), timeout=5, **kwargs)  # type: ignore[attr-defined]


# ------------------------------------------------------------------------ handshake


async def handshake(url: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[str, Any]]:
    """Expect a refused upgrade. Our own stream: trio-websocket leaks it on a rejection."""
    port = int(url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        rejected: Any = None
        try:
            async with trio.open_nursery() as nursery:
                await wrap_client_stream(nursery, stream, "127.0.0.1", "/ws", extra_headers=headers)
        except* ConnectionRejected as group:
            rejected = group.exceptions[0]
            while isinstance(rejected, BaseExceptionGroup):
                rejected = rejected.exceptions[0]
        finally:
            await stream.aclose()
    assert isinstance(rejected, ConnectionRejected)
    return rejected.status_code, json.loads(rejected.body)


def content_headers(key: str, secret: str, nonce: int, ts: int) -> list[tuple[bytes, bytes]]:
    content = json.dumps({"nonce": nonce, "timestamp": ts})
    return [
        (b"EFX-Key", key.encode()),
        (b"EFX-Content", content.encode()),
        (b"EFX-Sign", sign(secret, content).encode()),
    ]


# protocol/finery.md §1.1: the official signature vectors (secret used as a plain string).
VECTOR_SECRET = "cZpZ1vwzOaXuiONfIQVg8h6za97FoHhrwwgoSCNwDAR"
VECTORS = (
    (
        b'add{"nonce": 49856723467362345, "timestamp": 1628489110490, "instrument": "BTC-USD", '
        b'"clientOrderId": 1, "size": 1, "side": "ask", "type": "MarketIOC"}',
        "xvWE5m9bLUOx6TubJsXbnHPfdmYGvlbma2kuRPma0smOq47yRsG4LCak/hozAiQq",
    ),
    (
        b'{"nonce": 49856723467362345, "timestamp": 1628489110490}',
        "KCn9rlqILiifROYfgpGmRtvgBzSCJa/2KJ31oPKbcyE6D+BaTVfFMXo8kDwQtBC/",
    ),
)


@pytest.mark.parametrize(("message", "expected"), VECTORS)
def test_simulator_and_client_signatures_match_the_protocol_vectors(
    message: bytes, expected: str
) -> None:
    assert expected_signature(VECTOR_SECRET, message) == expected
    assert sign(VECTOR_SECRET, message) == expected
    assert signature_matches(VECTOR_SECRET, message, expected)
    assert not signature_matches(VECTOR_SECRET, message + b" ", expected)


async def test_handshake_rejects_bad_signature_nonce_and_timestamp(sim: FinerySimulator) -> None:
    url = sim.urls.ws_url  # type: ignore[attr-defined]
    now_ms = int(time.time() * 1000)
    wrong = content_headers("taker_key", "not_the_secret", now_ms * 1000, now_ms)
    assert await handshake(url, wrong) == (401, {"error": 14})
    stale = content_headers("taker_key", "taker_secret", now_ms * 1000 + 1, now_ms - 600_000)
    assert await handshake(url, stale) == (401, {"error": 7})
    good = content_headers("taker_key", "taker_secret", now_ms * 1000 + 2, now_ms)
    with trio.fail_after(5):
        async with open_websocket_url(url, extra_headers=good) as ws:
            assert json.loads(await ws.get_message()) == ["X", 0, "Z", 0]
    status, body = await handshake(url, good)  # the same nonce again: replay
    assert (status, body) == (401, {"error": 6})
    assert "invalid nonce (error 6)" in rejection_reason(status, json.dumps(body).encode())
    unknown = content_headers("nobody", "x", now_ms * 1000 + 3, now_ms)
    assert await handshake(url, unknown) == (401, {"error": 3})
    sim.faults.reject_next_auths(1)
    fresh = ws_auth_headers("taker_key", "taker_secret", NonceSource())
    assert await handshake(url, fresh) == (401, {"error": 14})


async def test_rest_signing_errors_and_faults(sim: FinerySimulator) -> None:
    async with rest_for(sim, TAKER) as rest:
        reply = await rest.instruments()
        assert [i[0] for i in reply[1]] == ["BTC-USD", "ETH-USD", "BTC-USDT"]
        sim.faults.fail_next_rest(1, status=503)
        with pytest.raises(FineryHttpError) as http:
            await rest.positions()
        assert http.value.status == 503
        # Same nonce twice: error 6; clock far off: error 7.
        stuck = rest_for(sim, TAKER, nonces=NonceSource(clock=lambda: 1e9))
        async with stuck:
            with pytest.raises(FineryError) as err:
                await stuck.positions()
            assert err.value.code == 7
    wrong = FineryRest(sim.urls.rest_url, "taker_key", Secret("bad"), timeout=5)  # type: ignore[attr-defined]
    async with wrong:
        with pytest.raises(FineryError) as err:
            await wrong.positions()
        assert err.value.code == 14 and "invalid signature" in str(err.value)
    frozen = time.time()
    nonces = NonceSource(clock=lambda: frozen)
    async with rest_for(sim, TAKER, nonces=nonces) as rest:
        await rest.positions()
        nonces._last -= 1  # force the next nonce to repeat the previous one
        with pytest.raises(FineryError) as err:
            await rest.positions()
        assert err.value.code == 6


# ------------------------------------------------------------------------ trading


async def test_taker_order_against_resting_maker_order(
    nursery: trio.Nursery, sim: FinerySimulator
) -> None:
    maker, maker_events = await start_client(nursery, sim, MAKER)
    taker, taker_events = await start_client(
        nursery,
        sim,
        TAKER,
        feeds=(
            ("O", None),
            ("K", None),
            ("L", None),
            ("F", "BTC-USD"),
            ("B", 4955410050),
            ("I", None),
        ),
    )
    resync = await taker_events.wait(ResyncEvent)
    assert {(p.symbol, p.size) for p in resync.positions} == {("USD", Decimal("-250.5"))}
    snapshot = await taker_events.wait(BookEvent, lambda e: e.channel == "level2")
    assert snapshot.bids == () and snapshot.asks == ()
    # Maker quotes two ask levels and a bid over the WebSocket.
    for price, size in (("60000", "0.5"), ("60001", "1"), ("59990", "2")):
        side = "ask" if Decimal(price) > 59995 else "bid"
        reply = await maker.add_order(
            instrument="BTC-USD",
            side=side,
            order_type="limit",
            price=Decimal(price),
            size=Decimal(size),
        )
        assert reply["remainingSize"] == int(Decimal(size) * 10**8)
    book = await taker_events.wait(
        BookEvent, lambda e: e.channel == "level2" and len(e.asks) == 2 and len(e.bids) == 1
    )
    assert book.asks[0] == (Decimal(60000), Decimal("0.5"))
    global_book = await taker_events.wait(
        BookEvent, lambda e: e.channel == "global_book" and len(e.asks) == 2
    )
    assert global_book.symbol == "BTC-USD"  # numeric feed id resolved through the I feed
    # Taker sweeps the first level and part of the second (marketIOC over REST).
    async with rest_for(sim, TAKER) as rest:
        reply = await rest.add_order(
            instrument="BTC-USD",
            side="bid",
            order_type="marketIOC",
            size=Decimal("0.7"),
            client_order_id=5,
        )
    assert [d["size"] for d in reply["deals"]] == [50_000_000, 20_000_000]
    assert reply["deals"][0]["volume"] == 3_000_000_000_000  # 30000 USD
    assert reply["remainingSize"] == 0
    tilde = await taker_events.wait(
        BookEvent,
        lambda e: e.channel == "level2" and e.asks[:1] == ((Decimal(60001), Decimal("0.8")),),
    )
    assert tilde.raw[3][1][0][0] == "~"  # the top level vanished: a '~' update
    fills = await taker_events.wait(FillEvent, lambda e: e.quantity == Decimal("0.2"))
    assert fills.is_taker and fills.side == "BUY" and fills.client_order_id == "5"
    assert fills.price == Decimal(60001) and fills.remaining == 0
    await taker_events.wait(OrderUpdateEvent, lambda e: e.terminal and e.status == "FILLED")
    btc = await taker_events.wait(
        PositionEvent, lambda e: e.symbol == "BTC" and e.size == Decimal("0.7")
    )
    assert btc.account_id == str(TAKER)
    usd = await taker_events.wait(
        PositionEvent, lambda e: e.symbol == "USD" and e.size == Decimal("-42250.7")
    )
    assert usd.raw[0] == "K"
    await taker_events.wait(BalanceEvent, lambda e: e.available < Decimal(1000000))
    # Maker side: fills, a FILLED order and short BTC.
    maker_fill = await maker_events.wait(FillEvent, lambda e: e.quantity == Decimal("0.5"))
    assert not maker_fill.is_taker and maker_fill.side == "SELL"
    await maker_events.wait(
        PositionEvent, lambda e: e.symbol == "BTC" and e.size == Decimal("-0.7")
    )
    # Requests over WS: positions, dealHistory, book, mod, del, delAll.
    positions = await taker.positions()
    assert ["BTC", 70_000_000, MAKER, 70_000_000, 0] in positions[1]
    history = await taker.deal_history("BTC-USD")
    assert [d[11] for d in history] == [2, 1] and len(history[0]) == 24
    assert [d[11] for d in await taker.deal_history("BTC-USD", till=2)] == [1]
    assert await maker.book("BTC-USD") == [
        [[5_999_000_000_000, 200_000_000]],
        [[6_000_100_000_000, 80_000_000]],
    ]
    resting = [o for o in (await maker.positions())[2]]
    ask = next(o for o in resting if o[2] == 1)
    modified = await maker.modify_order(order_id=ask[4], price=Decimal(60005), size=Decimal(1))
    assert modified["remainingSize"] == 80_000_000 and modified["origId"] == ask[4]
    with pytest.raises(FineryError) as err:
        await maker.cancel_order(order_id=ask[4])
    assert err.value.code == 80
    assert (await maker.cancel_order(order_id=modified["id"]))["remainingSize"] == 80_000_000
    assert await maker.cancel_all("BTC-USD") == {"removed": 1}
    cancelled = await maker_events.wait(OrderUpdateEvent, lambda e: e.status == "CANCELLED")
    assert cancelled.terminal
    with pytest.raises(FineryError) as err:
        await taker.add_order(
            instrument="BTC-USD",
            side="bid",
            order_type="limitFOK",
            price=Decimal(1),
            size=Decimal(1),
        )
    assert err.value.code == 77
    with pytest.raises(FineryError) as err:
        await taker.add_order(
            instrument="BTC-USD", side="bid", order_type="limit", price=Decimal(1), size=Decimal(1)
        )
    assert err.value.code == 73 and err.value.param == "type"


async def test_big_integers_survive_the_wire(nursery: trio.Nursery, sim: FinerySimulator) -> None:
    maker, _ = await start_client(nursery, sim, MAKER)
    taker, events = await start_client(nursery, sim, TAKER, feeds=(("F", "BTC-USD"),))
    size = Decimal("90000000000.12345678")  # 9e18 units: far above 2**53
    await maker.add_order(
        instrument="BTC-USD", side="ask", order_type="postOnly", price=Decimal(1), size=size
    )
    book = await events.wait(BookEvent, lambda e: len(e.asks) == 1)
    assert book.asks[0][1] == size
    reply = await taker.add_order(
        instrument="BTC-USD",
        side="bid",
        order_type="limitIOC",
        price=Decimal(1),
        size=size - Decimal("0.00000001"),
    )
    assert reply["deals"][0]["size"] == 9_000_000_000_012_345_677


async def test_cancel_on_disconnect_only_for_the_lost_connection(
    nursery: trio.Nursery, sim: FinerySimulator
) -> None:
    first, first_events = await start_client(nursery, sim, MAKER)
    second, second_events = await start_client(nursery, sim, MAKER)
    async with rest_for(sim, MAKER) as rest:
        await rest.add_order(
            instrument="ETH-USD",
            side="bid",
            order_type="limit",
            price=Decimal(2000),
            size=Decimal(1),
            cod=True,
        )  # ignored on REST
        await second.add_order(
            instrument="ETH-USD",
            side="bid",
            order_type="limit",
            price=Decimal(1998),
            size=Decimal(1),
            cod=True,
        )
        await first.add_order(
            instrument="ETH-USD",
            side="bid",
            order_type="limit",
            price=Decimal(1999),
            size=Decimal(1),
            cod=True,
        )
        assert len((await rest.positions())[2]) == 3
        first_conn = sim.connections(MAKER)[0]  # the first client's socket only
        first_conn.scope.cancel()
        cancelled = await second_events.wait(OrderUpdateEvent, lambda e: e.status == "CANCELLED")
        assert cancelled.raw[3][3] == 4 and cancelled.price == Decimal(1999)
        assert sorted(o[6] for o in (await rest.positions())[2]) == [
            199_800_000_000,
            200_000_000_000,
        ]
    with trio.fail_after(5):
        await wait_until(lambda: first_events.live_count() >= 2)
    resync = first_events.of(ResyncEvent)[-1]
    assert sorted(o.price for o in resync.open_orders) == [Decimal(1998), Decimal(2000)]


# ------------------------------------------------------------------------ lifecycle


async def test_reconnect_rebinds_and_resyncs(nursery: trio.Nursery, sim: FinerySimulator) -> None:
    taker, events = await start_client(nursery, sim, TAKER, feeds=(("K", None), ("F", "BTC-USD")))
    assert sim.faults.drop_connections(TAKER) == 1
    with trio.fail_after(5):
        await wait_until(lambda: events.live_count() >= 2)
    assert len(events.of(ResyncEvent)) == 2
    assert len(events.of(BookEvent)) == 2  # the book was re-bound: a second snapshot
    assert taker.supervisor.stats.reconnects == 1


async def test_status_loss_rebinds_after_zero_status(
    nursery: trio.Nursery, sim: FinerySimulator
) -> None:
    taker, events = await start_client(nursery, sim, TAKER, feeds=(("F", "BTC-USD"),))
    assert len(events.of(BookEvent)) == 1
    sim.faults.backend_status(2)
    with trio.fail_after(5):
        await wait_until(lambda: bool(taker.driver.bindings_lost))
    assert sim.connections(TAKER)[0].bindings == {}
    with pytest.raises(FineryError) as err:
        await taker.positions()
    assert err.value.code == 2
    sim.faults.backend_status(0)
    with trio.fail_after(5):
        await wait_until(lambda: len(events.of(BookEvent)) >= 2)
    assert not taker.driver.bindings_lost
    assert taker.supervisor.stats.reconnects == 0  # same socket, bindings restored


async def test_keepalive_malformed_frames_and_bind_errors(
    nursery: trio.Nursery, sim: FinerySimulator
) -> None:
    sim.config = sim.config.replace(idle_timeout=1.0)  # read by every idle wait
    taker, _events = await start_client(nursery, sim, TAKER, feeds=(("K", None), ("F", "NOPE-USD")))
    assert taker.driver.bindings == [("K", None)]  # 103: dropped, not retried forever
    sim.faults.send_malformed_frame(TAKER)
    await trio.sleep(1.6)  # longer than the sim's 1 s idle timeout: keepalive holds it open
    assert taker.supervisor.stats.parse_errors == 1
    assert taker.supervisor.stats.reconnects == 0
    assert taker.state is ConnectionState.LIVE
    await taker.bind("O", "BTC-USD")
    await taker.unbind("K")
    with trio.fail_after(5):
        await wait_until(lambda: len(sim.connections(TAKER)[0].bindings) == 1)
    assert list(sim.connections(TAKER)[0].bindings) == [("O", '"BTC-USD"')]


async def test_master_acts_for_a_sub_account(nursery: trio.Nursery, sim: FinerySimulator) -> None:
    maker, _ = await start_client(nursery, sim, MAKER)
    await maker.add_order(
        instrument="BTC-USD", side="ask", order_type="limit", price=Decimal(100), size=Decimal(1)
    )
    master, events = await start_client(
        nursery, sim, MASTER, feeds=(("F", {"instrument": "BTC-USD", "clientId": SUB}),)
    )
    book = await events.wait(BookEvent)
    assert book.account_id == str(SUB) and book.asks == ((Decimal(100), Decimal(1)),)
    reply = await master.add_order(
        instrument="BTC-USD",
        side="bid",
        order_type="marketIOC",
        size=Decimal("0.25"),
        client_id=SUB,
    )
    assert reply["deals"][0]["counterpartyId"] == MAKER
    async with rest_for(sim, SUB) as rest:
        assert ["BTC", 25_000_000, MAKER, 25_000_000, 0] in (await rest.positions())[1]
        with pytest.raises(FineryError) as err:
            await rest.add_order(
                instrument="BTC-USD",
                side="bid",
                order_type="marketIOC",
                size=Decimal("0.25"),
                client_id=MASTER,
            )
        assert err.value.code == 3


def test_sim_config_validation() -> None:
    config = parse_finery_sim_config(
        {
            "nonce_window": 5,
            "clients": [
                {
                    "key": "k",
                    "secret": "s",
                    "client_id": 1,
                    "role": "taker",
                    "positions": [{"currency": "USD", "counterparty": 2, "amount": "1.5"}],
                },
                {"key": "m", "secret": "t", "client_id": 2, "role": "maker"},
            ],
        }
    )
    assert config.nonce_window == 5 and config.clients[0].positions == (("USD", 2, Decimal("1.5")),)
    with pytest.raises(ValueError) as info:
        parse_finery_sim_config(
            {
                "bogus": 1,
                "clients": [
                    {"key": "k", "secret": "s", "client_id": 1, "role": "boss", "subaccounts": [3]}
                ],
            }
        )
    text = str(info.value)
    assert "finery.bogus: unknown key" in text and "finery.clients[0].role" in text


# ------------------------------------------------------------------------ the sim command


async def test_sim_command_prints_ready_and_exits_on_sigint(tmp_path: Any) -> None:
    sim_toml = tmp_path / "SIM.toml"
    sim_toml.write_text(
        '[[users]]\npublic_key = "p"\nsecret = "s"\n'
        'account_id = "00000000-0000-4000-8000-000000000001"\n\n'
        '[[finery.clients]]\nkey = "cmd_key"\nsecret = "cmd_secret"\n'
        'client_id = 7\nrole = "taker"\n'
    )
    code = (
        "import sys; from qfexbot.cli.sim import run_sim_command; "
        "sys.exit(run_sim_command(sys.argv[1], '127.0.0.1', 'finery'))"
    )
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", code, str(sim_toml)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=os.getcwd(),
    )
    try:
        with trio.fail_after(20):
            buffer = b""
            while b"\n" not in buffer:
                chunk = await proc.stdout.receive_some()
                assert chunk, "the sim exited before READY"
                buffer += chunk
            line = buffer.split(b"\n")[0].decode()
            assert line.startswith("READY ")
            urls = json.loads(line[len("READY ") :])
            assert set(urls) == {"ws_url", "rest_url"}
            headers = ws_auth_headers("cmd_key", "cmd_secret", NonceSource())
            async with open_websocket_url(urls["ws_url"], extra_headers=headers) as ws:
                assert json.loads(await ws.get_message()) == ["X", 0, "Z", 0]
            proc.send_signal(signal.SIGINT)
            assert await proc.wait() == 0
            rest = (await proc.stdout.receive_some()) or b""
            assert b"READY" not in rest  # exactly one READY line
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stdout.aclose()
        await proc.stderr.aclose()
