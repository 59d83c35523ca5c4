"""The toy venue as the runtime sees it: :data:`ADAPTER` opens a :class:`ToyVenue` per table.

A minimal but real venue, written only against ``qfexbot.core.venue`` (and the supervisor of
``qfexbot.core.session``), to show what a venue package provides. Its protocol is its own:

Transport: JSON objects in WebSocket text frames, each with an ``"op"``. Money and quantities
are decimal strings. ``trade_url`` serves private sessions and one-shot requests, ``mds_url``
the public feed (``rest_url`` is not used: the toy has no REST).

Private session (one connection per account), in the supervisor's order:

1. server: ``{"op": "hello", "nonce": N}`` (a fresh random string per connection);
   client: ``{"op": "auth", "key": PUBLIC_KEY, "signature": HEX}`` with HEX the lower-case hex
   HMAC-SHA256 of N keyed by the key's secret (both UTF-8);
   server: ``{"op": "auth", "ok": true}``, or ``{"op": "auth", "ok": false, "error": TEXT}``
   and it closes the connection.
2. client: ``{"op": "subscribe", "account": ID, "channels": [...]}`` (``fills``,
   ``balances``); server: ``{"op": "subscribed", "account": ID, "channels": [...]}``.
   The key must own the account, else ``{"op": "error", "error": TEXT}``.
3. resync: client ``{"op": "snapshot", "id": K}``; server ``{"op": "snapshot", "id": K,
   "account": ID, "available": D, "deposit": D}`` (the subscribed account).
4. live, server pushes (for the subscribed account only):
   ``{"op": "balance", "account": ID, "available": D, "deposit": D}`` and
   ``{"op": "fill", "account": ID, "trade_id": T, "order_id": O, "client_order_id": C,
   "symbol": S, "side": "buy"|"sell", "price": D, "quantity": D, "fee": D}``.
5. commands (each with a client-chosen integer ``id``, answered once with that ``id``):
   ``{"op": "order", "id": K, "symbol": S, "side": "buy"|"sell", "type": "limit"|"market",
   "quantity": D, "price": D|null, "tif": "gtc"|"ioc", "client_order_id": C|null}`` ->
   ``{"op": "ack", "id": K, "order_id": O}``;
   ``{"op": "cancel", "id": K, "order_id": O}`` -> ``{"op": "ack", "id": K, "order_id": O}``;
   any refusal: ``{"op": "error", "id": K, "error": TEXT, "code": CODE}``.

One-shot request (transfers and balance reads; no subscription): steps 1 (hello, auth), then one
of ``{"op": "transfer", "id": K, "from": ID, "to": ID, "amount": D}`` -> ``{"op": "transferred",
"id": K}`` or ``{"op": "snapshot", "id": K, "account": ID}`` -> the snapshot frame of step 3;
refusals as in step 5. A transfer moves ``available`` and ``deposit`` of both accounts.

Public feed (``mds_url``, no auth, no hello): client ``{"op": "subscribe_bbo", "symbols":
[...]}``; server ``{"op": "bbo", "symbol": S, "bid": D, "bid_size": D, "ask": D, "ask_size": D}``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import ssl
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from qfexbot.core.secrets import Secret
from qfexbot.core.session import MarketDataSession, Supervisor
from qfexbot.core.venue import (
    AuthRejected,
    CredentialsLike,
    FrameConnection,
    Order,
    OrderRequest,
    ParseError,
    Publish,
    SessionSettingsLike,
    TransferOutcome,
    VenueSettings,
)
from qfexbot.errors import ActionError, ActionRejected, ActionUnavailable, VenueError
from qfexbot.events import BalanceEvent, Event, ResyncEvent

from . import KIND
from .parse import (
    BBO,
    Reply,
    balance_event,
    load,
    parse_private,
    parse_public,
    resync_events,
    route,
)

__all__ = [
    "ADAPTER",
    "ToyAdapter",
    "ToyDriver",
    "ToyMarketDataDriver",
    "ToyReplayDriver",
    "ToyVenue",
]


class ToyError(VenueError):
    """A toy request that failed; the subclass says how far it got."""


class ToyRejected(ToyError):
    """The venue answered with an error: nothing was applied."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class ToyNotSent(ToyError):
    """The request never left (connect or auth failed)."""


class ToyAmbiguous(ToyError):
    """The request was written but no answer came: it may have been applied."""


def encode(message: Mapping[str, Any]) -> str:
    """A message as its text frame (decimals as strings)."""
    return json.dumps(message, default=str, separators=(",", ":"))


def sign(secret: Secret, nonce: str) -> str:
    """The auth signature: hex HMAC-SHA256 of the server's nonce, keyed by the secret."""
    return hmac.new(secret.reveal().encode(), nonce.encode(), hashlib.sha256).hexdigest()


@dataclass
class ToyDriver:
    """The steps of one account's private session (a ``qfexbot.core.venue.SessionDriver``)."""

    url: str
    venue: str
    account_id: str
    channels: Sequence[str]
    public_key: str
    secret: Secret = field(repr=False)
    request_timeout: float = 10.0
    authenticates: bool = True
    resyncs: bool = True
    watch_stale: bool = False
    """The toy sends nothing while idle, so silence says nothing about the stream."""
    _ids: Iterator[int] = field(init=False, repr=False, default_factory=itertools.count)
    _waiting: dict[int, trio.MemorySendChannel[Reply]] = field(
        init=False, repr=False, default_factory=dict
    )

    def next_id(self) -> int:
        """A fresh command id for this session."""
        return next(self._ids)

    def handshake_headers(self) -> list[tuple[bytes, bytes]]:
        return []

    async def authenticate(self, conn: FrameConnection) -> None:
        """Answer the server's nonce with its HMAC; :class:`AuthRejected` if refused."""
        hello = await _expect(conn, "hello")
        await conn.send(
            {"op": "auth", "key": self.public_key, "signature": sign(self.secret, hello["nonce"])}
        )
        answer = await _expect(conn, "auth")
        if answer.get("ok") is not True:
            raise AuthRejected(str(answer.get("error", "refused")))

    async def subscribe(self, conn: FrameConnection) -> None:
        await conn.send(
            {"op": "subscribe", "account": self.account_id, "channels": list(self.channels)}
        )
        await _expect(conn, "subscribed")

    async def resync(self, conn: FrameConnection) -> Sequence[Event]:
        """The account's balance, read on the socket (the toy's snapshot)."""
        await conn.send({"op": "snapshot", "id": self.next_id()})
        body = await _expect(conn, "snapshot")
        return resync_events(body, self.venue, self.account_id, time.time())

    def parse(self, frame: str | bytes, now: float) -> list[Any]:
        """Balance and fill frames as events; control messages as :class:`Reply`."""
        return parse_private(frame, self.venue, self.account_id, now)

    async def on_control(self, item: Any) -> None:
        """A command's reply: handed to the :meth:`command` waiting for its id."""
        if isinstance(item, Reply):
            waiter = self._waiting.pop(item.body.get("id"), None)
            if waiter is not None:
                waiter.send_nowait(item)

    def encode(self, message: Mapping[str, Any]) -> str:
        return encode(message)

    def command_name(self, message: Mapping[str, Any]) -> str | None:
        """A toy command is named by its ``op``."""
        return message.get("op")

    async def command(self, session: Supervisor, message: Mapping[str, Any]) -> Reply:
        """Send one command on the live ``session`` and wait for its reply.

        Raises:
          ActionUnavailable: not live (from the supervisor), or no reply in time (it may
            have been applied: ``maybe_sent``).
        """
        command_id = self.next_id()
        send, receive = trio.open_memory_channel[Reply](1)
        self._waiting[command_id] = send
        try:
            await session.send({**message, "id": command_id})
            with trio.move_on_after(self.request_timeout):
                return await receive.receive()
        finally:
            self._waiting.pop(command_id, None)
        raise ActionUnavailable(
            f"toy {message['op']}: no reply in time; it may have been applied", maybe_sent=True
        )


async def _expect(conn: FrameConnection, op: str) -> Mapping[str, Any]:
    """Read control messages until one with ``op`` (an ``error`` one raises)."""
    while True:
        for item in await conn.receive():
            if item.op == "error":
                raise ToyError(f"toy venue refused {op}: {item.body.get('error')}")
            if item.op == op:
                return item.body


@dataclass
class ToyMarketDataDriver:
    """The public ``bbo`` feed (a ``qfexbot.core.venue.MarketDataDriver``)."""

    url: str
    venue: str
    pulsed_channels: frozenset[str] = frozenset()

    def handshake_headers(self) -> list[tuple[bytes, bytes]]:
        return []

    def subscribe_messages(self, pairs: Iterable[tuple[str, str]]) -> list[Mapping[str, Any]]:
        symbols = sorted({symbol for channel, symbol in pairs if channel == BBO})
        return [{"op": "subscribe_bbo", "symbols": symbols}] if symbols else []

    def unsubscribe_messages(self, pairs: Iterable[tuple[str, str]]) -> list[Mapping[str, Any]]:
        return []  # the toy has no unsubscribe: unwanted books are dropped by the fan-out

    def parse(self, frame: str | bytes, now: float) -> list[Event]:
        return parse_public(frame, self.venue, now)

    def route(self, event: Event) -> tuple[str, str]:
        return route(event)

    def encode(self, message: Mapping[str, Any]) -> str:
        return encode(message)


@dataclass(frozen=True)
class ToyReplayDriver:
    """Parses a recorded toy connection again (a ``qfexbot.core.venue.ReplayDriver``)."""

    venue: str
    account_id: str
    public: bool

    def parse(self, frame: str | bytes, now: float) -> list[Any]:
        if self.public:
            return parse_public(frame, self.venue, now)
        return parse_private(frame, self.venue, self.account_id, now)

    def route(self, event: Event) -> tuple[str, str]:
        return route(event)

    async def resync(self, body: Any, now: float) -> Sequence[Event]:
        """The ``ResyncEvent`` a live session published for the recorded snapshot reply."""
        return resync_events(body, self.venue, self.account_id, now)


_ORDER_TYPES = {"LIMIT": "limit", "MARKET": "market"}
_TIME_IN_FORCE = {"GTC": "gtc", "IOC": "ioc"}


class ToyVenue:
    """One configured toy venue: a session per account, the public feed, one-shot requests."""

    def __init__(
        self,
        name: str,
        *,
        trade_url: str,
        mds_url: str,
        settings: SessionSettingsLike,
        public_key: str,
        secret: Secret,
    ) -> None:
        self.name = name
        self.trade_url = trade_url
        self.mds_url = mds_url
        self.settings = settings
        self._public_key = public_key
        self._secret = secret
        self._ids = itertools.count(1)
        self._market_data: MarketDataSession | None = None

    def __repr__(self) -> str:
        return f"ToyVenue(name={self.name!r})"

    def private_session(
        self, account_id: str, *, channels: Sequence[str], publish: Publish
    ) -> Supervisor:
        """A new supervised session for ``account_id`` (qfexbot's own supervisor)."""
        driver = ToyDriver(
            url=self.trade_url,
            venue=self.name,
            account_id=account_id,
            channels=channels,
            public_key=self._public_key,
            secret=self._secret,
            request_timeout=self.settings.request_timeout,
        )
        return Supervisor(
            driver, venue=self.name, account_id=account_id, settings=self.settings, publish=publish
        )

    def market_data(self) -> MarketDataSession:
        if self._market_data is None:
            self._market_data = MarketDataSession(
                ToyMarketDataDriver(self.mds_url, self.name),
                venue=self.name,
                settings=self.settings,
            )
        return self._market_data

    async def _request(self, message: Mapping[str, Any]) -> Mapping[str, Any]:
        """One authenticated one-shot request and its reply.

        Raises:
          ToyRejected: the venue refused it. ToyNotSent: it never left. ToyAmbiguous: it was
            written but no reply came.
        """
        written = False
        try:
            with trio.fail_after(self.settings.request_timeout):
                tls = ssl.create_default_context() if self.trade_url.startswith("wss:") else None
                async with open_websocket_url(self.trade_url, ssl_context=tls) as ws:
                    hello = load(await ws.get_message())
                    signature = sign(self._secret, str(hello.get("nonce", "")))
                    await ws.send_message(
                        encode({"op": "auth", "key": self._public_key, "signature": signature})
                    )
                    answer = load(await ws.get_message())
                    if answer.get("ok") is not True:
                        raise ToyNotSent(f"toy venue refused the key: {answer.get('error')}")
                    written = True
                    await ws.send_message(encode({**message, "id": next(self._ids)}))
                    reply = load(await ws.get_message())
        except (OSError, HandshakeError, ConnectionClosed, trio.TooSlowError, ParseError) as exc:
            error = ToyAmbiguous if written else ToyNotSent
            raise error(f"toy {message['op']}: {type(exc).__name__}: {exc}") from exc
        if reply["op"] == "error":
            raise ToyRejected(f"toy {message['op']}: {reply.get('error')}", str(reply.get("code")))
        return reply

    async def _read(self, account_id: str) -> BalanceEvent:
        """A snapshot request, in the ``ActionError`` family plugins see."""
        try:
            body = await self._request({"op": "snapshot", "account": account_id})
        except ToyRejected as exc:
            raise ActionRejected(str(exc), code=exc.code) from exc
        except ToyError as exc:
            raise ActionUnavailable(str(exc)) from exc
        try:
            return balance_event(body, self.name, time.time())
        except ParseError as exc:
            raise ActionError(str(exc)) from exc

    async def snapshot(self, account_id: str) -> ResyncEvent:
        balance = await self._read(account_id)
        return ResyncEvent(
            venue=self.name,
            account_id=account_id,
            received_at=balance.received_at,
            raw=balance.raw,
            balance=balance,
        )

    async def account_equity(self, account_id: str, duration: str) -> list[tuple[Any, Decimal]]:
        raise ActionError("the toy venue keeps no equity history")

    def order(self, order: Order) -> OrderRequest:
        """An ``order`` command; ``ActionError`` for what the toy does not have."""
        order_type = _ORDER_TYPES.get(order.order_type)
        tif = _TIME_IN_FORCE.get(order.time_in_force)
        if order.take_profit is not None or order.stop_loss is not None:
            raise ActionError("the toy venue has no attached take-profit or stop-loss")
        if order_type is None or tif is None or order.reduce_only:
            raise ActionError(
                f"the toy venue has no {order.order_type}+{order.time_in_force}"
                + (" reduce-only" if order.reduce_only else "")
                + " orders"
            )
        return OrderRequest(
            "order",
            {
                "symbol": order.symbol,
                "side": order.side.lower(),
                "type": order_type,
                "quantity": order.quantity,
                "price": order.price,
                "tif": tif,
                "client_order_id": order.client_order_id,
            },
        )

    def cancel(self, *, symbol: str, order_id: str) -> OrderRequest:
        return OrderRequest("cancel", {"order_id": order_id})

    async def send(self, session: Supervisor, request: OrderRequest) -> None:
        """Send the command on the account's session and wait for its reply.

        Raises:
          ActionRejected: the venue refused it (``code`` = the toy's error code).
          ActionUnavailable: not live, or no reply in time.
        """
        driver: ToyDriver = session.driver
        reply = await driver.command(session, {"op": request.command, **request.params})
        if reply.op == "error":
            raise ActionRejected(
                f"toy {request.command}: {reply.body.get('error')}",
                code=str(reply.body.get("code")),
            )

    async def transfer(self, src: str, dst: str, amount: Decimal) -> None:
        """One ``transfer`` request; its failure is classified by :meth:`transfer_outcome`."""
        await self._request({"op": "transfer", "from": src, "to": dst, "amount": amount})

    def transfer_outcome(self, exc: BaseException) -> TransferOutcome | None:
        if isinstance(exc, ToyRejected):
            return TransferOutcome.REJECTED
        if isinstance(exc, ToyNotSent):
            return TransferOutcome.NOT_SENT
        if isinstance(exc, ToyAmbiguous):
            return TransferOutcome.AMBIGUOUS
        return None

    async def balance(self, account_id: str) -> BalanceEvent:
        return await self._read(account_id)

    # The toy has only orders and cancels, and none of the Venue methods added after them
    # (modify, stops, TWAPs, leverage, the reads): it stands for a third-party venue written
    # before they existed, which the runtime answers with ActionError (test_toy_venue.py).

    async def aclose(self) -> None:
        """Nothing to release: every request has its own connection."""


class ToyAdapter:
    """The toy kind: opens :class:`ToyVenue` s (which move money), replays toy recordings."""

    kind = KIND
    transfer_refusal = None
    simulator = None
    """No embedded simulator: the runtime refuses ``simulator = true`` for this kind."""

    def open(
        self, config: VenueSettings, credentials: CredentialsLike, endpoints: Any = None
    ) -> ToyVenue:
        """A :class:`ToyVenue` on the table's URLs (``endpoints`` is always None: the toy has no
        embedded simulator)."""
        # The toy's config rules require both (``credentials = ("public_key", "secret")``).
        assert credentials.public_key is not None and credentials.secret is not None
        return ToyVenue(
            config.name,
            trade_url=config.trade_url,
            mds_url=config.mds_url,
            settings=config.session,
            public_key=credentials.public_key,
            secret=credentials.secret,
        )

    def replay_driver(
        self, config: VenueSettings, account_id: str, channel: str
    ) -> ToyReplayDriver:
        return ToyReplayDriver(config.name, account_id, public=channel == "mds")


ADAPTER = ToyAdapter()
"""The toy adapter (``qfexbot.venues.registry.adapter("toy")`` once registered)."""
