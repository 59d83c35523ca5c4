"""Adding a venue, followed step by step with a toy venue that lives in the test suite.

1. A package with ``config.py``: ``RULES``, a ``qfexbot.config.validate.VenueRules`` (kind, default
   URLs, account id form, credentials, channels, sim keys). config reads the venue's
   ``[venues.X]`` table with it and names no kind (``tests/toyvenue/config.py``).
2. ``adapter.py`` in that package: ``ADAPTER``, a ``qfexbot.core.venue.VenueAdapter`` (``kind``,
   ``transfer_refusal``, ``simulator``, ``open``, ``replay_driver``). ``open`` returns a ``Venue``,
   a ``TransferVenue`` if it moves money: its private sessions are
   ``qfexbot.core.session.Supervisor`` s running its ``SessionDriver`` (URL, auth, subscribe,
   resync, parse, encode) and its public feed a ``MarketDataSession`` over its
   ``MarketDataDriver``; it maps ``Order`` to its ``OrderRequest`` and sends it, reads balances,
   sends transfers and classifies their failures as ``TransferOutcome``, and raises only the
   ``ActionError`` family to plugins. Its ``ReplayDriver`` parses its recordings again
   (``tests/toyvenue/adapter.py``, frames in ``tests/toyvenue/parse.py``).
3. Register the kind: ``qfexbot.venues.registry.register(kind, package)`` (as here), an entry
   point in the group ``qfexbot.venues`` from another distribution (name = kind, value = the
   package), or a line in ``registry.BUILTIN`` for a venue shipped with qfexbot.
4. A simulator under ``qfexbot/sim/<kind>/`` for ``simulator = true`` (optional): a module with
   ``start_embedded`` that ``ADAPTER.simulator`` names by import path. The toy has none
   (``simulator = None``, so the runtime refuses ``simulator = true``); this test serves the
   toy's protocol itself, written from the adapter's docstring, not from its code.

Then the runtime, config, journal, ops views, replay and plugins run it as they run the
built-in venues, and no file under ``qfexbot/`` changes (the last test checks that ``qfexbot/``
never mentions it). What the test runs: two toy accounts LIVE through auth, subscribe and
resync; the toy's balance and fill frames reaching a plugin on the right account; ``add_order``
and ``cancel_order`` arriving as the documented commands; ``ctx.transfer`` moving money exactly
once through the journal; ``ctx.positions``; the public feed; ``/status``; the run's recording
replayed; every failure of a transfer classified; refused credentials ending FAILED; and
``simulator = true`` refused.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import toyvenue
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from qfexbot.config import AppConfig, ConfigError, load_config
from qfexbot.core.venue import TransferOutcome
from qfexbot.events import (
    BalanceEvent,
    BookEvent,
    ConnectionState,
    ConnectionStateEvent,
    FillEvent,
    ResyncEvent,
    TransferOutcomeEvent,
)
from qfexbot.ops.replay import replay_recording
from qfexbot.runtime import Runtime
from qfexbot.venues import registry

REPO = Path(__file__).resolve().parents[2]
KEY, SECRET = "toy_pub_probe", "toy_secret_probe"
TREASURY, DESK = "T-1", "T-2"


@pytest.fixture
def toy_kind() -> Iterator[str]:
    """``kind = "toy"`` available for one test, and forgotten after it."""
    with toyvenue.registered() as kind:
        yield kind


# ---------------------------------------------------------------- the toy server


def _text(value: Decimal) -> str:
    return format(value, "f")


@dataclass
class ToyServer:
    """The toy venue's side of its protocol (see ``tests/toyvenue/adapter.py``'s docstring).

    Records every command it receives (``commands``) and every transfer it applies.
    """

    key: str
    secret: str
    balances: dict[str, dict[str, Decimal]]
    commands: list[dict[str, Any]] = field(default_factory=list)
    transfers: list[tuple[str, str, Decimal]] = field(default_factory=list)
    subscribers: dict[str, list[WebSocketConnection]] = field(default_factory=dict)
    orders: int = 0
    silent_transfers: bool = False
    """Apply transfers but never answer them (a reply lost on the way)."""

    async def handle(self, request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            if request.path == "/mds":
                await self._public(ws)
            elif await self._authenticated(ws):
                await self._private(ws)
        except ConnectionClosed:
            pass
        finally:
            for sockets in self.subscribers.values():
                if ws in sockets:
                    sockets.remove(ws)

    async def _send(self, ws: WebSocketConnection, **message: Any) -> None:
        await ws.send_message(json.dumps(message))

    async def _authenticated(self, ws: WebSocketConnection) -> bool:
        nonce = secrets.token_hex(16)
        await self._send(ws, op="hello", nonce=nonce)
        auth = json.loads(await ws.get_message())
        expected = hmac.new(self.secret.encode(), nonce.encode(), hashlib.sha256).hexdigest()
        if (
            auth.get("op") != "auth"
            or auth.get("key") != self.key
            or not hmac.compare_digest(str(auth.get("signature")), expected)
        ):
            await self._send(ws, op="auth", ok=False, error="bad key or signature")
            await ws.aclose()
            return False
        await self._send(ws, op="auth", ok=True)
        return True

    async def _private(self, ws: WebSocketConnection) -> None:
        account: str | None = None
        while True:
            message = json.loads(await ws.get_message())
            op = message.get("op")
            if op == "subscribe":
                account = message["account"]
                if account not in self.balances:
                    await self._send(ws, op="error", error=f"no account {account}")
                    continue
                self.subscribers.setdefault(account, []).append(ws)
                await self._send(ws, op="subscribed", account=account, channels=message["channels"])
            elif op == "snapshot":
                target = message.get("account", account)
                if target not in self.balances:
                    await self._send(ws, op="error", id=message["id"], error="no such account")
                    continue
                await self._send(ws, op="snapshot", id=message["id"], **self._balance(target))
            elif op == "transfer":
                await self._transfer(ws, message)
            elif op in ("order", "cancel"):
                self.commands.append({"account": account, **message})
                await self._order(ws, account, message)
            else:
                await self._send(ws, op="error", id=message.get("id"), error="unknown op")

    def _balance(self, account: str) -> dict[str, str]:
        held = self.balances[account]
        return {
            "account": account,
            "available": _text(held["available"]),
            "deposit": _text(held["deposit"]),
        }

    async def _push_balance(self, account: str) -> None:
        for ws in list(self.subscribers.get(account, ())):
            await self._send(ws, op="balance", **self._balance(account))

    async def _transfer(self, ws: WebSocketConnection, message: dict[str, Any]) -> None:
        src, dst, amount = message["from"], message["to"], Decimal(message["amount"])
        if src not in self.balances or dst not in self.balances:
            await self._send(ws, op="error", id=message["id"], error="unknown account", code="404")
            return
        if self.balances[src]["available"] < amount:
            await self._send(ws, op="error", id=message["id"], error="insufficient", code="402")
            return
        for account, sign in ((src, -1), (dst, 1)):
            for part in ("available", "deposit"):
                self.balances[account][part] += sign * amount
        self.transfers.append((src, dst, amount))
        if self.silent_transfers:
            return
        await self._send(ws, op="transferred", id=message["id"])
        await self._push_balance(src)
        await self._push_balance(dst)

    async def _order(self, ws: WebSocketConnection, account: Any, message: dict[str, Any]) -> None:
        if message["op"] == "cancel":
            await self._send(ws, op="ack", id=message["id"], order_id=message["order_id"])
            return
        self.orders += 1
        order_id = f"toy-{self.orders}"
        await self._send(ws, op="ack", id=message["id"], order_id=order_id)
        price = Decimal(message["price"] or "10.5")  # a market order fills at the ask
        quantity = Decimal(message["quantity"])
        fee = price * quantity / 1000
        self.balances[account]["available"] -= fee
        await self._send(
            ws,
            op="fill",
            account=account,
            trade_id=f"trade-{self.orders}",
            order_id=order_id,
            client_order_id=message["client_order_id"],
            symbol=message["symbol"],
            side=message["side"],
            price=_text(price),
            quantity=_text(quantity),
            fee=_text(fee),
        )
        await self._push_balance(account)

    async def _public(self, ws: WebSocketConnection) -> None:
        while True:
            message = json.loads(await ws.get_message())
            for symbol in message.get("symbols", ()):
                await self._send(
                    ws, op="bbo", symbol=symbol, bid="9.5", bid_size="3", ask="10.5", ask_size="4"
                )


@contextlib.asynccontextmanager
async def serving(server: ToyServer) -> AsyncIterator[int]:
    """Serve ``server`` on a free loopback port (yielded) until the block ends."""
    async with trio.open_nursery() as nursery:
        listener = await nursery.start(
            functools.partial(serve_websocket, server.handle, "127.0.0.1", 0, ssl_context=None)
        )
        yield listener.port
        nursery.cancel_scope.cancel()


def new_server() -> ToyServer:
    return ToyServer(
        KEY,
        SECRET,
        {
            TREASURY: {"available": Decimal(1000), "deposit": Decimal(1000)},
            DESK: {"available": Decimal(500), "deposit": Decimal(500)},
        },
    )


# ---------------------------------------------------------------- the bot

PROBE = '''
"""Test plugin: records events. Once the treasury is live it orders, and cancels what fills;
once the desk is live it moves money to it and reads the desk's balance."""
from decimal import Decimal

import trio

from qfexbot import ActionError, ConnectionState, ConnectionStateEvent, FillEvent, hookimpl


class Probe:
    def __init__(self, config):
        self.events = []
        self.ordered = False
        self.cancelled = False
        self.transfer = None
        self.snapshot = None
        self.refused = []
        self._changed = trio.Event()

    async def until(self, predicate):
        while not predicate():
            await self._changed.wait()

    @hookimpl
    async def qfexbot_event(self, ctx, event):
        self.events.append(event)
        try:
            await self._act(ctx, event)
        finally:
            self._changed.set()
            self._changed = trio.Event()

    async def _act(self, ctx, event):
        if isinstance(event, FillEvent) and not self.cancelled:
            self.cancelled = True
            await ctx.cancel_order("treasury", symbol=event.symbol, order_id=event.order_id)
        if not (isinstance(event, ConnectionStateEvent) and event.state is ConnectionState.LIVE):
            return
        if event.account_id == ctx.account_id("treasury") and not self.ordered:
            self.ordered = True
            await ctx.add_order(
                "treasury", symbol="TOY-USD", side="BUY", order_type="LIMIT",
                quantity=Decimal("2"), price=Decimal("10.5"), client_order_id="probe-1",
            )
        elif event.account_id == ctx.account_id("desk") and self.transfer is None:
            self.transfer = await ctx.transfer("treasury", "desk", Decimal(25), "toy")
            self.snapshot = await ctx.positions("desk")
            # The toy has none of the later Venue methods: an ActionError each, nothing sent.
            for act in (
                ctx.modify_order("desk", symbol="TOY-USD", order_id="x", side="BUY",
                                 order_type="LIMIT", price=Decimal(11)),
                ctx.set_leverage("desk", symbol="TOY-USD", leverage=Decimal(2)),
            ):
                try:
                    await act
                except ActionError as exc:
                    self.refused.append(str(exc))
'''

BOTS_TOML = """
[runtime]
journal = "var/journal.sqlite"
kill_switch_file = "var/PAUSED"
state_dir = "var/state"
plugin_dirs = ["{plugins}"]
ops_listen = "127.0.0.1:0"
record = {{ dir = "var/recording" }}

[venues.t]
kind = "toy"
user_id = "t-1"
public_key = {{ env = "TOY_KEY" }}
secret = {{ env = "TOY_SECRET" }}
trade_url = "ws://127.0.0.1:{port}/trade"
mds_url = "ws://127.0.0.1:{port}/mds"
rest_url = "http://127.0.0.1:{port}"

[venues.t.accounts]
treasury = "primary"
desk = "T-2"

[venues.t.session]
backoff_initial = 0.05
backoff_max = 0.2
request_timeout = 3.0

[bots.toy]
venue = "t"
accounts = ["treasury", "desk"]
channels = ["fills", "balances"]
market_data = {{ channels = ["bbo"], symbols = ["TOY-USD"] }}

[bots.toy.limits]
allowed_pairs = [["treasury", "desk"]]
max_transfer = 100
min_interval = 0

[bots.toy.plugins.probe]
use = "toy_probe:Probe"
"""


ENVIRON = {"TOY_KEY": KEY, "TOY_SECRET": SECRET}


def write_config(tmp_path: Path, port: int, **replace: str) -> AppConfig:
    """The bots.toml of these tests, on the toy server at ``port``; ``replace`` edits its text."""
    (tmp_path / "var").mkdir(exist_ok=True)
    (tmp_path / "plugins").mkdir(exist_ok=True)
    (tmp_path / "plugins" / "toy_probe.py").write_text(PROBE)
    text = BOTS_TOML.format(plugins=tmp_path / "plugins", port=port)
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / "bots.toml"
    path.write_text(text)
    return load_config(path)


def _has(events: list[Any], kind: type, **fields: Any) -> bool:
    return any(
        isinstance(e, kind) and all(getattr(e, k) == v for k, v in fields.items()) for e in events
    )


async def test_a_toy_venue_runs_on_the_runtime(tmp_path: Path, toy_kind: str) -> None:
    server = new_server()
    with trio.fail_after(20):
        async with serving(server) as port:
            app = write_config(tmp_path, port)
            runtime = Runtime(app, environ=ENVIRON)
            async with trio.open_nursery() as nursery:
                await nursery.start(runtime.run)
                assert toy_kind in registry.kinds()
                plugin = runtime.hosts["toy"].slots[0].plugin
                await plugin.until(
                    lambda: (
                        _has(plugin.events, FillEvent, account_id=TREASURY)
                        and _has(plugin.events, BalanceEvent, account_id=DESK, available=525)
                        and _has(plugin.events, TransferOutcomeEvent, state="done")
                        and _has(plugin.events, BookEvent, symbol="TOY-USD")
                        and plugin.snapshot is not None
                        and len(server.commands) == 2
                    )
                )
                assert runtime.journal is not None
                entries = await runtime.journal.list()
                # The ops views read the toy's sessions like any venue's.
                assert runtime.ops_url is not None
                async with httpx.AsyncClient(base_url=runtime.ops_url) as client:
                    status = (await client.get("/status")).json()
                    health = await client.get("/healthz")
                runtime.stop()
        # The recording of this run, replayed (``qfexbot replay``) through the toy's driver.
        replayed = await replay_recording(app, tmp_path / "var" / "recording")
    events = plugin.events
    for account in (TREASURY, DESK):
        states = [
            e.state
            for e in events
            if isinstance(e, ConnectionStateEvent) and e.account_id == account
        ]
        assert states == [
            ConnectionState.CONNECTING,
            ConnectionState.AUTHENTICATING,
            ConnectionState.SUBSCRIBING,
            ConnectionState.RESYNCING,
            ConnectionState.LIVE,
            ConnectionState.STOPPED,
        ]
    resyncs = {e.account_id: e.balance for e in events if isinstance(e, ResyncEvent)}
    assert resyncs[TREASURY].available == 1000 and resyncs[DESK].deposit == 500
    # A venue written before modify and leverage existed: refused, nothing sent.
    assert plugin.refused == [
        "venue 't' has no modify",
        "venue 't' has no set_leverage",
    ]

    # ctx.add_order reached the toy server as the documented command, and its fill came back.
    command, cancel = server.commands
    assert command == {
        "account": TREASURY,
        "op": "order",
        "id": command["id"],
        "symbol": "TOY-USD",
        "side": "buy",
        "type": "limit",
        "quantity": "2",
        "price": "10.5",
        "tif": "gtc",
        "client_order_id": "probe-1",
    }
    assert cancel == {"account": TREASURY, "op": "cancel", "id": cancel["id"], "order_id": "toy-1"}
    assert isinstance(command["id"], int) and isinstance(cancel["id"], int)
    fill = next(e for e in events if isinstance(e, FillEvent))
    assert (fill.account_id, fill.order_id, fill.client_order_id, fill.side) == (
        TREASURY,
        "toy-1",
        "probe-1",
        "BUY",
    )
    assert (fill.symbol, fill.price, fill.quantity, fill.fee) == (
        "TOY-USD",
        Decimal("10.5"),
        Decimal(2),
        Decimal("0.021"),
    )
    journaled = {(e.kind, e.src, e.data["type"]) for e in entries if e.kind in ("order", "cancel")}
    assert journaled == {("order", TREASURY, "order"), ("cancel", TREASURY, "cancel")}

    # ctx.transfer moved the money exactly once, through the journal.
    assert plugin.transfer.state == "done"
    assert server.transfers == [(TREASURY, DESK, Decimal(25))]
    (transfer_entry,) = [e for e in entries if e.kind == "transfer"]
    assert (transfer_entry.src, transfer_entry.dst, transfer_entry.amount) == (
        TREASURY,
        DESK,
        Decimal(25),
    )
    assert transfer_entry.state == "done" and transfer_entry.id == plugin.transfer.entry_id
    assert plugin.snapshot.account_id == DESK and plugin.snapshot.balance.available == 525
    # The venue's balance frames reach the right accounts' buses.
    assert _has(events, BalanceEvent, account_id=TREASURY, available=Decimal("974.979"))
    assert _has(events, BalanceEvent, account_id=DESK, available=525, deposit=525)
    assert {e.account_id for e in events if isinstance(e, TransferOutcomeEvent)} == {
        TREASURY,
        DESK,
    }
    assert health.status_code == 200
    assert [(s["alias"], s["account"], s["state"]) for s in status["sessions"]] == [
        ("treasury", TREASURY, "live"),
        ("desk", DESK, "live"),
        ("market-data", "", "live"),
    ]

    # The replay fed the recording through the toy's replay driver: same decisions.
    assert replayed.accounts == {("t", TREASURY), ("t", DESK), ("t", "")}
    assert sorted(d.action for d in replayed.recorded_decisions) == [
        "add_order",
        "cancel_order",
        "modify_order",  # decided (and recorded) though the venue refused it
        "set_leverage",
        "transfer",
    ]
    assert replayed.parse_errors == 0 and replayed.mismatches() == []


async def _transfer_outcome(
    tmp_path: Path, server: ToyServer, amount: Decimal, *, port: int | None = None
) -> str:
    """A transfer sent by the toy venue (opened through the registry) and how it ended:
    ``"confirmed"``, or the ``TransferOutcome`` its failure is classified as."""
    async with serving(server) as live_port:
        app = write_config(
            tmp_path, port or live_port, **{"request_timeout = 3.0": "request_timeout = 0.5"}
        )
        config = app.venues["t"]
        venue = registry.adapter(config.kind).open(config, config.resolve_credentials(ENVIRON))
        with trio.fail_after(5):
            try:
                await venue.transfer(TREASURY, DESK, amount)
            except Exception as exc:
                outcome = venue.transfer_outcome(exc)
                assert outcome is not None, f"not a venue answer: {exc!r}"
                return outcome
    return "confirmed"


async def test_toy_transfers_end_as_the_transfer_service_needs_to_know(
    tmp_path: Path, toy_kind: str
) -> None:
    """Confirmed, refused, never sent (wrong key, nobody listening), or lost after sending."""
    done = new_server()
    assert await _transfer_outcome(tmp_path, done, Decimal(5)) == "confirmed"
    assert done.transfers == [(TREASURY, DESK, Decimal(5))]

    refused = new_server()
    assert await _transfer_outcome(tmp_path, refused, Decimal(5000)) is TransferOutcome.REJECTED
    assert refused.transfers == []

    wrong_key = new_server()
    wrong_key.secret = "another secret"
    assert await _transfer_outcome(tmp_path, wrong_key, Decimal(5)) is TransferOutcome.NOT_SENT

    async with serving(new_server()) as closed_port:
        pass  # nothing listens there any more
    unreachable = new_server()
    outcome = await _transfer_outcome(tmp_path, unreachable, Decimal(5), port=closed_port)
    assert outcome is TransferOutcome.NOT_SENT

    silent = new_server()
    silent.silent_transfers = True
    assert await _transfer_outcome(tmp_path, silent, Decimal(5)) is TransferOutcome.AMBIGUOUS
    assert silent.transfers == [(TREASURY, DESK, Decimal(5))]  # it landed: reconcile, never retry


async def test_refused_toy_credentials_stop_the_sessions_as_failed(
    tmp_path: Path, toy_kind: str
) -> None:
    """The toy's auth refusal (``AuthRejected``) counts towards ``max_auth_failures``."""
    async with serving(new_server()) as port:
        app = write_config(
            tmp_path,
            port,
            **{"request_timeout = 3.0": "request_timeout = 3.0\nmax_auth_failures = 2"},
        )
        runtime = Runtime(app, environ={**ENVIRON, "TOY_SECRET": "not the secret"})
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                await nursery.start(runtime.run)
                sessions = runtime.venues["t"].sessions
                for session in sessions.values():
                    await session.wait_for(ConnectionState.FAILED)
                runtime.stop()
    for session in sessions.values():
        assert session.stats.auth_failures == 2
        assert "bad key or signature" in session.stats.last_error
    # Nothing can work any more: the runtime stopped itself and says why (qfexbot run: exit 3).
    assert runtime.failure is not None and "every account session FAILED" in runtime.failure


async def test_simulator_true_is_refused_for_a_kind_without_one(
    tmp_path: Path, toy_kind: str
) -> None:
    """The adapter's ``simulator = None``: the runtime refuses the table before connecting."""
    app = write_config(tmp_path, 1, **{'kind = "toy"': 'kind = "toy"\nsimulator = true'})
    refused = pytest.RaisesGroup(
        pytest.RaisesExc(
            ConfigError,
            check=lambda exc: (
                exc.errors
                == ["venues.t: simulator = true, but kind 'toy' has no embedded simulator"]
            ),
        ),
        flatten_subgroups=True,
    )
    with trio.fail_after(10), refused:
        await Runtime(app, environ=ENVIRON).run()


def test_check_reports_simulator_true_for_a_kind_without_one(tmp_path: Path, toy_kind: str) -> None:
    """``qfexbot check`` says so too, before anything is started."""
    app = write_config(tmp_path, 1, **{'kind = "toy"': 'kind = "toy"\nsimulator = true'})
    assert Runtime(app, environ=ENVIRON).check() == [
        "venues.t: simulator = true, but kind 'toy' has no embedded simulator"
    ]


def test_the_toy_is_forgotten_after_its_test() -> None:
    assert toyvenue.KIND not in registry.kinds()


def test_no_core_file_mentions_the_toy_venue() -> None:
    """The venue was added without touching qfexbot/: no file there names it."""
    word = re.compile(r"\btoy", re.IGNORECASE)
    named = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / "qfexbot").rglob("*"))
        if path.is_file()
        and path.suffix != ".pyc"
        and word.search(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert named == []
