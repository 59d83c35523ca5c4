"""The Finery venue as the runtime sees it: :data:`ADAPTER` opens a :class:`FineryVenue` per table.

:class:`FineryVenue` is a ``qfexbot.core.venue.Venue``: per-account sessions, a shared book feed,
REST snapshots, orders as ``add``/``del``/``mod``/``delAll`` requests
(``qfexbot.venues.finery.orders``) whose refusals reach plugins as ``ActionRejected``.
``ctx.transfer`` is a settlement (Finery's only way value moves): an outgoing settlement
transaction commented with the journal entry id, reconciled from the venue's settlement state.
One API key serves every connection of the venue (one shared nonce source). Account ids are
Finery client ids as text; the key's own client (``user_id``) gets the account feeds, and a
master's sub-accounts get sessions that act for them with ``clientId`` (see docs/venues/finery.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import trio

from qfexbot.core.logs import get_logger, log_event
from qfexbot.core.records import (
    Candle,
    FeeRate,
    FundingRatePoint,
    HistoricOrder,
    LeverageLevel,
    OpenInterestPoint,
    OpenOrders,
    TwapInfo,
    UserTrade,
)
from qfexbot.core.secrets import Secret
from qfexbot.core.session import SessionStats
from qfexbot.core.venue import (
    CancelAll,
    ClosePosition,
    CredentialsLike,
    HistoryQuery,
    Order,
    OrderChange,
    OrderRequest,
    Publish,
    SessionSettingsLike,
    StopCancel,
    StopChange,
    StopOrder,
    TransferOutcome,
    TwapCancel,
    TwapOrder,
    VenueSettings,
)
from qfexbot.errors import ActionError, ActionRejected, ActionUnavailable, VenueError
from qfexbot.events import (
    BalanceEvent,
    BookEvent,
    ConnectionState,
    ConnectionStateEvent,
    Event,
    OrderUpdateEvent,
    ResyncEvent,
)
from qfexbot.venues.finery.auth import NonceSource
from qfexbot.venues.finery.config import BOOK_FEEDS
from qfexbot.venues.finery.driver import FineryDriver, FineryWsClient
from qfexbot.venues.finery.orders import (
    finery_cancel,
    finery_cancel_all,
    finery_modify,
    finery_order,
)
from qfexbot.venues.finery.parse import FineryError, error_message
from qfexbot.venues.finery.replay import FineryReplayDriver
from qfexbot.venues.finery.rest import FineryHttpError, FineryRest

__all__ = [
    "ADAPTER",
    "CHANNEL_FEEDS",
    "SETTLEMENT_CURRENCY",
    "SETTLEMENT_MARKER",
    "FineryAdapter",
    "FineryMarketData",
    "FinerySession",
    "FineryVenue",
    "SettlementRefused",
]

log = get_logger(__name__)

SETTLEMENT_CURRENCY = "USD"
"""The currency ``ctx.transfer`` settles in on Finery (its amounts are USD, as on QFEX)."""
SETTLEMENT_MARKER = "qfexbot:"
"""Prefix of the comment a settlement is sent with; the journal entry id follows, so a
settlement whose answer was lost is found again in the venue's state (``find_sent``)."""
_HISTORY_PAGES = 20
"""Pages of ``settlementTransactionHistory`` searched before "cannot tell"."""
_PAGE = 250
"""Rows asked for per history page (the venue's cap; asked explicitly, so a short page means
the end of the history whatever the server's default)."""
_MAYBE_APPLIED_CODES = frozenset({2, 10, 104})
"""Venue error codes that do not show the request was not stored: backend down, internal
error, database out of sync (protocol reference, error table)."""

CHANNEL_FEEDS: Mapping[str, tuple[tuple[str, Any], ...]] = {
    "order_responses": (("O", None),),
    "fills": (("O", None),),
    "positions": (("K", None),),
    "balances": (("L", None), ("S", None), ("R", None), ("N", None)),
}
"""bots.toml private channels -> the Finery feeds (and feedIds) that carry them. Balances on
Finery are counterparty limits (``L``) and move only by settlement: ``S`` settlement orders,
``R`` requests and ``N`` transactions come with them as ``SettlementEvent`` s."""

SUB_ACCOUNT_FEEDS = frozenset({"O", "K"})
"""The feeds a master binds for one of its sub-accounts (``{"clientId": sub}`` feed ids)."""


class FinerySession:
    """One account's supervised Finery connection, shaped like ``qfexbot.core.session.Supervisor``.

    ``acting_for`` is the sub-account client id a master key acts for (``clientId`` on
    requests), or None for the key's own client. With ``cancel_on_disconnect`` every order is
    sent with ``cod``: the venue cancels it if this connection drops (cancel reason 4).
    """

    def __init__(
        self,
        client: FineryWsClient,
        *,
        account_id: str,
        acting_for: int | None = None,
        cancel_on_disconnect: bool = False,
    ) -> None:
        self.client = client
        self.venue = client.supervisor.venue
        self.account_id = account_id
        self.acting_for = acting_for
        self.cancel_on_disconnect = cancel_on_disconnect

    def __repr__(self) -> str:
        return (
            f"FinerySession(venue={self.venue!r}, account_id={self.account_id!r}, "
            f"state={self.state.value})"
        )

    @property
    def state(self) -> ConnectionState:
        return self.client.state

    @property
    def stats(self) -> SessionStats:
        return self.client.supervisor.stats

    @property
    def driver(self) -> Any:
        """The supervisor's driver (the recorder wraps it to record frames)."""
        return self.client.supervisor.driver

    @driver.setter
    def driver(self, value: Any) -> None:
        self.client.supervisor.driver = value

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run the supervised connection and its keepalive until cancelled (or FAILED)."""
        await self.client.run(task_status=task_status)

    async def send(self, command: Mapping[str, Any]) -> None:
        """Send a raw message on the live socket (``SessionNotLive`` otherwise)."""
        await self.client.supervisor.send(command)

    async def add_order(
        self,
        *,
        instrument: str,
        side: str,
        order_type: str,
        size: Decimal,
        price: Decimal | None = None,
        client_order_id: int | None = None,
    ) -> Any:
        """``add`` over the socket for this account; the venue's reply.

        Raises:
          FineryError: the venue refused the order.
        """
        return await self.client.add_order(
            instrument=instrument,
            side=side,
            order_type=order_type,
            size=size,
            price=price,
            client_order_id=client_order_id,
            cod=self.cancel_on_disconnect,
            client_id=self.acting_for,
        )

    async def cancel_order(self, *, order_id: int) -> Any:
        """``del`` by venue order id over the socket."""
        return await self.client.cancel_order(order_id=order_id)

    async def modify_order(self, *, order_id: int, price: Decimal, size: Decimal) -> Any:
        """``mod`` of a resting order over the socket; the reply names the new order id."""
        return await self.client.modify_order(order_id=order_id, price=price, size=size)

    async def cancel_all(self) -> Any:
        """``delAll`` over the socket: every resting order of the key's client."""
        return await self.client.cancel_all()


def _book_feed_id(feed: str, symbol: str) -> Any:
    """The feedId a book feed is bound with: ``MD`` takes an object (a plain name is refused)."""
    return {"instrument": symbol} if feed == "MD" else symbol


class FineryMarketData:
    """The venue's shared book feed: one connection binding a book feed per (channel, symbol),
    fanned out by (channel, symbol).

    Same surface as ``qfexbot.core.session.MarketDataSession`` (``subscribe``, ``unsubscribe``,
    ``run``, ``supervisor``). The channels are the book feeds of
    ``qfexbot.venues.finery.config.BOOK_FEEDS``: ``level2`` (``F``, the key owner's tradable
    book), ``global_book`` (``B``) and ``md_book`` (``MD``); connection states reach every
    subscriber. Like QFEX market data, its events and states carry ``account_id=""``.
    """

    def __init__(self, client_factory: Any) -> None:
        self._routes: dict[tuple[str, str], list[Publish]] = {}
        self._subscribers: list[Publish] = []
        self.client: FineryWsClient = client_factory(self._fan_out)
        self.client.driver.resyncs = False  # no account state on this connection
        self.supervisor = self.client.supervisor

    @property
    def state(self) -> ConnectionState:
        return self.client.state

    @property
    def stats(self) -> SessionStats:
        return self.supervisor.stats

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await self.client.run(task_status=task_status)

    async def subscribe(
        self, channels: Iterable[str], symbols: Iterable[str], publish: Publish
    ) -> None:
        """Deliver the books of ``channels`` for ``symbols`` to ``publish``.

        Raises:
          ValueError: a channel that is not one of the venue's book feeds (nothing bound).
        """
        channels, symbols = list(channels), list(symbols)
        unknown = sorted(set(channels) - set(BOOK_FEEDS))
        if unknown:
            raise ValueError(
                f"Finery market data has no channels {unknown}; it has {sorted(BOOK_FEEDS)}"
            )
        for channel in channels:
            feed = BOOK_FEEDS[channel]
            for symbol in symbols:
                targets = self._routes.get((channel, symbol), [])
                if publish not in targets:
                    self._routes[(channel, symbol)] = [*targets, publish]
                await self.client.bind(feed, _book_feed_id(feed, symbol))
        if publish not in self._subscribers:
            self._subscribers = [*self._subscribers, publish]

    async def unsubscribe(self, publish: Publish) -> None:
        """Stop delivering to ``publish``; books nobody needs any more are unbound."""
        for (channel, symbol), targets in list(self._routes.items()):
            remaining = [t for t in targets if t is not publish]
            if remaining:
                self._routes[(channel, symbol)] = remaining
            else:
                del self._routes[(channel, symbol)]
                feed = BOOK_FEEDS[channel]
                await self.client.unbind(feed, _book_feed_id(feed, symbol))
        self._subscribers = [p for p in self._subscribers if p is not publish]

    async def _fan_out(self, event: Event) -> None:
        if isinstance(event, ConnectionStateEvent):
            for publish in self._subscribers:
                await publish(event)
        elif isinstance(event, BookEvent):
            for publish in self._routes.get((event.channel, event.symbol), ()):
                await publish(event)


class FineryVenue:
    """One configured Finery venue: REST client, per-account sessions, the shared book feed.

    Args:
      name: the venue name from bots.toml (stamped on every event).
      ws_url, rest_url: endpoints (the simulator's when ``simulator = true``).
      user_id: the client id of the API key, as text.
      settings: session tunables (``VenueConfig.session``).
      key, secret: the EFX API key pair.
      keepalive_interval: seconds between keepalive pings (inside the venue's 80 s idle limit).
      cancel_on_disconnect: send every account order with ``cod`` (cancelled by the venue when
        the connection it was placed on drops).

    Resource handling: call :meth:`aclose` to close the REST client.
    """

    def __init__(
        self,
        name: str,
        *,
        ws_url: str,
        rest_url: str,
        user_id: str,
        settings: SessionSettingsLike,
        key: str,
        secret: Secret,
        keepalive_interval: float = 30.0,
        cancel_on_disconnect: bool = False,
    ) -> None:
        self.name = name
        self.cancel_on_disconnect = cancel_on_disconnect
        self.ws_url = ws_url
        self.user_id = user_id
        self.settings = settings
        self._key = key
        self._secret = secret
        self._keepalive = keepalive_interval
        self.nonces = NonceSource()  # one per key: every connection and REST call share it
        self.rest = FineryRest(
            rest_url, key, secret, timeout=settings.request_timeout, nonces=self.nonces
        )
        self._snapshots = FineryDriver(
            ws_url, key, secret, venue=name, account_id=user_id, feeds=(), nonces=self.nonces
        )
        self._market_data: FineryMarketData | None = None

    def __repr__(self) -> str:
        return f"FineryVenue(name={self.name!r}, user_id={self.user_id!r})"

    def _client(
        self, account_id: str, publish: Publish, feeds: Iterable[tuple[str, Any]]
    ) -> FineryWsClient:
        return FineryWsClient(
            self.ws_url,
            self._key,
            self._secret,
            venue=self.name,
            account_id=account_id,
            publish=publish,
            settings=self.settings,
            feeds=feeds,
            nonces=self.nonces,
            keepalive_interval=self._keepalive,
        )

    def private_session(
        self, account_id: str, *, channels: Sequence[str], publish: Publish
    ) -> FinerySession:
        """A new supervised session for ``account_id``; run it with ``nursery.start``.

        The key's own client binds the feeds of ``channels``. A master's sub-account binds the
        order and position feeds (``O``, ``K``) with feed id ``{"clientId": sub}``, like the
        ``F`` feed ids the venue documents for masters (for ``O``/``K`` the form is inferred:
        a venue that refuses it answers 103 and the feed is dropped with an error log), and
        sends its orders with ``clientId``. Limits and settlements are the master's own.
        """
        unknown = sorted(set(channels) - set(CHANNEL_FEEDS))
        if unknown:
            raise ValueError(
                f"Finery has no private channels {unknown}; known: {sorted(CHANNEL_FEEDS)}"
            )
        if account_id == self.user_id:
            feeds = list(dict.fromkeys(f for c in channels for f in CHANNEL_FEEDS[c]))
            return FinerySession(
                self._client(account_id, publish, feeds),
                account_id=account_id,
                cancel_on_disconnect=self.cancel_on_disconnect,
            )
        sub = int(account_id)
        names = dict.fromkeys(f for c in channels for f, _ in CHANNEL_FEEDS[c])
        feeds = [(f, {"clientId": sub}) for f in names if f in SUB_ACCOUNT_FEEDS]
        client = self._client(account_id, publish, feeds)
        client.driver.resyncs = False  # `positions` would be the master's, not this account's
        return FinerySession(
            client,
            account_id=account_id,
            acting_for=sub,
            cancel_on_disconnect=self.cancel_on_disconnect,
        )

    def market_data(self) -> FineryMarketData:
        """The venue's one shared book feed (created on first use; run it once)."""
        if self._market_data is None:
            self._market_data = FineryMarketData(
                lambda publish: self._client("", publish, ())
            )  # "" = public, as on QFEX
        return self._market_data

    async def snapshot(self, account_id: str) -> ResyncEvent:
        """Net positions and open orders of the key's own client, read from REST now.

        Raises:
          ActionError: ``account_id`` is not the key's own client (a master cannot read a
            sub-account's positions).
          ActionRejected: the venue answered with an error code.
          ActionUnavailable: the venue could not be read (HTTP or transport failure).
        """
        if account_id != self.user_id:
            raise ActionError(
                f"Finery positions are only readable for client {self.user_id}, not {account_id}"
            )
        try:
            return self._snapshots.resync_event(await self.rest.positions())
        except FineryError as exc:
            raise ActionRejected(str(exc), code=str(exc.code)) from exc
        except FineryHttpError as exc:
            raise ActionUnavailable(str(exc)) from exc

    # -- money: ctx.transfer is a settlement transaction (protocol/finery.md §4.6)

    async def transfer(self, src: str, dst: str, amount: Decimal, entry_id: str) -> None:
        """Declare an outgoing settlement of ``amount`` USD from the key's client ``src`` to
        counterparty ``dst`` (``addOutgoingSettlementTransaction``), commented with the journal
        entry id. Failures are classified by :meth:`transfer_outcome`.

        Raises:
          SettlementRefused: ``src`` is not the key's own client (nothing sent).
          FineryError: the venue refused it; FineryHttpError: no clear answer.
        """
        if src != self.user_id:
            raise SettlementRefused(
                f"finery settles only from the key's own client {self.user_id}, not {src}"
            )
        await self.rest.add_outgoing_settlement_transaction(
            counterparty_id=int(dst),
            currency=SETTLEMENT_CURRENCY,
            amount=amount,
            comment=SETTLEMENT_MARKER + entry_id,
        )

    def transfer_outcome(self, exc: BaseException) -> TransferOutcome | None:
        """Our own refusal or a venue error code that refuses the request: nothing applied. An
        HTTP failure (5xx, timeout, reset, not JSON), an internal error, a backend or database
        fault (codes 2, 10, 104) or an undocumented code may have been applied: reconciled from
        the venue's settlement state."""
        if isinstance(exc, SettlementRefused):
            return TransferOutcome.REJECTED
        if isinstance(exc, FineryError):
            if exc.code in _MAYBE_APPLIED_CODES or error_message(exc.code) == f"error {exc.code}":
                return TransferOutcome.AMBIGUOUS
            return TransferOutcome.REJECTED
        if isinstance(exc, FineryHttpError):
            return TransferOutcome.AMBIGUOUS
        return None

    async def find_sent(self, entry_id: str) -> bool | None:
        """Whether the venue has the settlement sent for journal entry ``entry_id``: its open
        transactions, then its finished ones page by page. None if it cannot tell (a read
        failed, or the history is longer than searched)."""
        marker = SETTLEMENT_MARKER + entry_id
        parser = self._snapshots.parser
        try:
            open_now = parser.settlement_reply(
                "settlementTransactions", await self.rest.settlement_transactions()
            )
            if any(e.comment == marker for e in open_now):
                return True
            till = None
            for _ in range(_HISTORY_PAGES):
                rows = await self.rest.settlement_transaction_history(till=till, limit=_PAGE)
                if not isinstance(rows, list):
                    raise ValueError(f"settlementTransactionHistory: not an array: {rows!r}")
                if any(isinstance(r, list) and len(r) > 10 and r[4] == marker for r in rows):
                    return True
                if len(rows) < _PAGE:
                    return False
                till = min(r[10] for r in rows)
        except (FineryError, FineryHttpError, ValueError, TypeError) as exc:
            log_event(log, logging.WARNING, "finery settlement state not readable",
                      entry=entry_id, error=str(exc))  # fmt: skip
        return None

    async def balance(self, account_id: str) -> BalanceEvent:
        """Finery reports no balance of an account (value is held off-venue): ``ActionError``.
        Its transfers are reconciled from settlement state (:meth:`find_sent`)."""
        raise ActionError("finery reports no account balances (value moves by settlement)")

    async def account_equity(self, account_id: str, duration: str) -> list[tuple[Any, Decimal]]:
        """Finery keeps no equity history: always ``ActionError``."""
        raise ActionError("finery has no account equity history")

    def order(self, order: Order) -> OrderRequest:
        """An ``add`` request (see :func:`qfexbot.venues.finery.orders.finery_order`)."""
        if order.take_profit is not None or order.stop_loss is not None:
            raise ActionError("finery has no attached take-profit or stop-loss")
        return finery_order(order)

    def cancel(self, *, symbol: str, order_id: str) -> OrderRequest:
        """A ``del`` request by venue order id."""
        return finery_cancel(symbol=symbol, order_id=order_id)

    async def send(self, session: FinerySession, request: OrderRequest) -> None:
        """Send an ``add``/``del``/``mod``/``delAll`` on the account's session; wait for the reply.

        Finery emits no feed message for a rejected order, so its refusal (e.g. error 76, no
        liquidity for an IOC) is the reply.

        Raises:
          ActionRejected: the venue refused it (``code`` = the Finery error code).
          ActionUnavailable: the session is not live, or no reply came in time (the request
            may have been applied: ``maybe_sent``).
        """
        if request.command == "delAll" and session.acting_for is not None:
            # delAll has no clientId: on a master's key it would cancel the master's own orders.
            raise ActionRejected(
                f"finery delAll cannot act for sub-account {session.acting_for}; cancel its "
                "orders one by one",
                code="not_supported",
            )
        try:
            if request.command == "add":
                await session.add_order(**request.params)
            elif request.command == "mod":
                await session.modify_order(**request.params)
            elif request.command == "delAll":
                await session.cancel_all()
            else:
                await session.cancel_order(**request.params)
        except FineryError as exc:
            raise ActionRejected(str(exc), code=str(exc.code)) from exc
        except trio.TooSlowError:
            raise ActionUnavailable(
                f"finery {request.command}: no reply in time; it may have been applied",
                maybe_sent=True,
            ) from None

    def modify(self, change: OrderChange) -> OrderRequest:
        """A ``mod`` request (see :func:`qfexbot.venues.finery.orders.finery_modify`)."""
        return finery_modify(change)

    def cancel_all(self, cancel: CancelAll) -> OrderRequest:
        """A ``delAll`` request (every resting order of the account's client)."""
        return finery_cancel_all(cancel)

    # Finery has none of the actions and reads below: each refuses with ActionError.

    def stop_order(self, stop: StopOrder) -> OrderRequest:
        raise ActionError("finery has no stop orders")

    def modify_stop(self, change: StopChange) -> OrderRequest:
        raise ActionError("finery has no stop orders")

    def cancel_stop(self, cancel: StopCancel) -> OrderRequest:
        raise ActionError("finery has no stop orders")

    def twap(self, twap: TwapOrder) -> OrderRequest:
        raise ActionError("finery has no TWAP orders")

    def cancel_twap(self, cancel: TwapCancel) -> OrderRequest:
        raise ActionError("finery has no TWAP orders")

    def close_position(self, close: ClosePosition) -> OrderRequest:
        raise ActionError("finery has no close-position order (it is a spot venue)")

    async def open_orders(self, session: Any, symbol: str | None = None) -> OpenOrders:
        raise ActionError("finery has no open-orders query through qfexbot")

    async def get_order(
        self, session: Any, *, symbol: str, order_id: str
    ) -> OrderUpdateEvent | None:
        raise ActionError("finery has no order query through qfexbot")

    async def leverage(self, session: Any) -> list[LeverageLevel]:
        raise ActionError("finery has no leverage (it is a spot venue)")

    async def leverage_levels(self, session: Any) -> list[LeverageLevel]:
        raise ActionError("finery has no leverage (it is a spot venue)")

    async def set_leverage(self, session: Any, *, symbol: str, leverage: Decimal) -> None:
        raise ActionError("finery has no leverage (it is a spot venue)")

    async def find_order(self, account_id: str, client_order_id: str) -> OrderUpdateEvent | None:
        raise ActionError("finery has no order lookup by client_order_id through qfexbot")

    async def trades(self, account_id: str, query: HistoryQuery) -> list[UserTrade]:
        raise ActionError("finery has no trade history through qfexbot")

    async def order_history(self, account_id: str, query: HistoryQuery) -> list[HistoricOrder]:
        raise ActionError("finery has no order history through qfexbot")

    async def twap_history(self, account_id: str, query: HistoryQuery) -> list[TwapInfo]:
        raise ActionError("finery has no TWAP orders")

    async def fees(self, account_id: str) -> dict[str, FeeRate]:
        raise ActionError("finery has no fee table through qfexbot")

    async def candles(
        self, symbol: str, *, resolution: str, start: float, end: float
    ) -> list[Candle]:
        raise ActionError("finery has no candle history")

    async def funding_history(
        self, symbol: str, *, interval_minutes: int, start: float, end: float
    ) -> list[FundingRatePoint]:
        raise ActionError("finery has no funding (it is a spot venue)")

    async def open_interest_history(
        self, symbol: str, *, interval_minutes: int, start: float, end: float
    ) -> list[OpenInterestPoint]:
        raise ActionError("finery has no open interest (it is a spot venue)")

    async def aclose(self) -> None:
        await self.rest.aclose()


class SettlementRefused(VenueError):
    """A settlement qfexbot does not send (e.g. from a client that is not the key's own)."""


class FineryAdapter:
    """The Finery kind: opens :class:`FineryVenue` s and replays their recordings; its
    transfers are settlements (:meth:`FineryVenue.transfer`)."""

    kind = "finery"
    transfer_refusal = None
    simulator = "qfexbot.sim.finery.embedded"

    def open(
        self, config: VenueSettings, credentials: CredentialsLike, endpoints: Any = None
    ) -> FineryVenue:
        """A :class:`FineryVenue` on the table's URLs, or the embedded simulator's ``endpoints``
        (``ws_url``, ``rest_url``), with the table's ``cancel_on_disconnect``."""
        ws_url, rest_url = config.trade_url, config.rest_url
        if endpoints is not None:
            ws_url, rest_url = endpoints.ws_url, endpoints.rest_url
        # the config requires both for Finery
        assert credentials.public_key is not None and credentials.secret is not None
        return FineryVenue(
            config.name,
            ws_url=ws_url,
            rest_url=rest_url,
            user_id=config.user_id,
            settings=config.session,
            key=credentials.public_key,
            secret=credentials.secret,
            cancel_on_disconnect=config.flags["cancel_on_disconnect"],
        )

    def replay_driver(
        self, config: VenueSettings, account_id: str, channel: str
    ) -> FineryReplayDriver:
        """The driver that parses a recorded connection again (an account's socket, or the
        shared book feed: ``channel`` ``"mds"``, ``account_id`` "")."""
        return FineryReplayDriver(config.name, "" if channel == "mds" else account_id)


ADAPTER = FineryAdapter()
"""The Finery adapter (``qfexbot.venues.registry.adapter("finery")``)."""
