"""The QFEX venue as the runtime sees it: :data:`ADAPTER` opens a :class:`QfexVenue` per table.

:class:`QfexVenue` ties one configured venue together: REST client, private sessions (one trade
socket per account), the shared market-data session, orders as trade-socket commands, transfers
over REST (``qfexbot.venues.qfex.transfers`` classifies their failures).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Self

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
from qfexbot.core.session import MarketDataSession, Supervisor
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
from qfexbot.events import BalanceEvent, ConnectionState, OrderUpdateEvent, ResyncEvent
from qfexbot.venues.qfex.auth import QfexAuth
from qfexbot.venues.qfex.driver import (
    DEFAULT_CHANNELS,
    OnControl,
    QfexMarketDataDriver,
    QfexTradeDriver,
    incoming_type,
)
from qfexbot.venues.qfex.orders import (
    add_twap_command,
    cancel_all_command,
    cancel_command,
    cancel_stop_command,
    cancel_twap_command,
    close_position_command,
    get_leverage_command,
    get_order_command,
    get_user_orders_command,
    leverage_levels_command,
    message,
    modify_command,
    modify_stop_command,
    order_command,
    set_leverage_command,
    stop_command,
)
from qfexbot.venues.qfex.parse import OrdersSnapshot
from qfexbot.venues.qfex.replay import QfexReplayDriver
from qfexbot.venues.qfex.rest import QfexApiError, QfexRest, QfexUnavailableError
from qfexbot.venues.qfex.transfers import read_balance, transfer_outcome

__all__ = ["ADAPTER", "QfexAdapter", "QfexVenue"]

OPEN_ORDERS_PAGE = 1000
"""The most orders one ``get_user_orders`` reply carries (its ``limit``'s maximum)."""
FIND_ORDER_PAGES = 20
"""Pages of open orders :meth:`QfexVenue.find_order` reads before it gives up (cannot tell)."""


@contextlib.contextmanager
def _as_action_errors() -> Iterator[None]:
    """A REST read's failure as the error family plugins catch: the venue unreachable is
    ``ActionUnavailable`` (try later), an error answer ``ActionRejected`` (code = HTTP status),
    a body that is not what the venue documents ``ActionError``; the QFEX error is the cause."""
    try:
        yield
    except QfexUnavailableError as exc:
        raise ActionUnavailable(str(exc)) from exc
    except QfexApiError as exc:
        raise ActionRejected(str(exc), code=str(exc.status)) from exc
    except VenueError as exc:
        raise ActionError(str(exc)) from exc


class QfexVenue:
    """One configured QFEX venue: REST client, per-account private sessions, shared feed.

    Args:
      name: the venue name from bots.toml (stamped on every event).
      trade_url, mds_url, rest_url: endpoints (the simulator's when ``simulator = true``).
      user_id: primary account id (= user id).
      settings: session tunables (``VenueConfig.session``).
      public_key, secret / jwt: resolved credentials.
      rest: an existing :class:`QfexRest` to share (default: one is created and owned).

    Resource handling: call :meth:`aclose` (or use ``async with``) to close the REST client.
    """

    def __init__(
        self,
        name: str,
        *,
        trade_url: str,
        mds_url: str,
        rest_url: str,
        user_id: str,
        settings: SessionSettingsLike,
        public_key: str | Secret | None = None,
        secret: Secret | None = None,
        jwt: Secret | None = None,
        rest: QfexRest | None = None,
    ) -> None:
        self.name = name
        self.trade_url = trade_url
        self.mds_url = mds_url
        self.user_id = user_id
        self.settings = settings
        self._public_key = public_key
        self._secret = secret
        self._jwt = jwt
        self._owns_rest = rest is None
        self.rest = rest or QfexRest(
            rest_url,
            QfexAuth(public_key, secret) if jwt is None else QfexAuth(jwt=jwt),
            timeout=settings.request_timeout,
            venue=name,
            user_id=user_id,
        )
        self._market_data: MarketDataSession | None = None
        self._sessions: dict[str, Supervisor] = {}
        """The latest private session per account (for :meth:`find_order`)."""

    def __repr__(self) -> str:
        return f"QfexVenue(name={self.name!r}, user_id={self.user_id!r})"

    def private_session(
        self,
        account_id: str,
        *,
        channels: Sequence[str] = DEFAULT_CHANNELS,
        publish: Publish,
        rearm: Sequence[Mapping[str, Any]] = (),
        on_control: OnControl | None = None,
        settings: SessionSettingsLike | None = None,
        rng: random.Random | None = None,
    ) -> Supervisor:
        """A new supervised trade session for ``account_id``; run it with ``nursery.start``."""
        driver = QfexTradeDriver(
            url=self.trade_url,
            venue=self.name,
            account_id=account_id,
            user_id=self.user_id,
            rest=self.rest,
            channels=channels,
            public_key=self._public_key,
            secret=self._secret,
            jwt=self._jwt,
            rearm=rearm,
            on_control=on_control,
        )
        session = Supervisor(
            driver,
            venue=self.name,
            account_id=account_id,
            settings=settings or self.settings,
            publish=publish,
            rng=rng,
        )
        self._sessions[account_id] = session
        return session

    def market_data(self) -> MarketDataSession:
        """The venue's one shared market-data session (created on first use; run it once)."""
        if self._market_data is None:
            self._market_data = MarketDataSession(
                QfexMarketDataDriver(url=self.mds_url, venue=self.name),
                venue=self.name,
                settings=self.settings,
            )
        return self._market_data

    async def snapshot(self, account_id: str) -> ResyncEvent:
        """Balance and positions of ``account_id`` read from REST now (errors: see
        :func:`_as_action_errors`)."""
        with _as_action_errors():
            return await self.rest.positions(account_id)

    async def account_equity(self, account_id: str, duration: str) -> list[tuple[Any, Decimal]]:
        """The venue's sampled equity history of ``account_id`` (errors: see
        :func:`_as_action_errors`)."""
        with _as_action_errors():
            return await self.rest.account_equity(account_id, duration)

    def order(self, order: Order) -> OrderRequest:
        """An ``add_order`` command (see :func:`qfexbot.venues.qfex.orders.order_command`)."""
        return order_command(order, take_profit=order.take_profit, stop_loss=order.stop_loss)

    def cancel(self, *, symbol: str, order_id: str) -> OrderRequest:
        """A ``cancel_order`` command by venue order id."""
        return cancel_command(symbol=symbol, order_id=order_id)

    async def send(self, session: Supervisor, request: OrderRequest) -> None:
        """Send the command on the account's trade socket (``ActionUnavailable`` if not live)."""
        await session.send(message(request))

    # -- more order actions: trade-socket commands, answered by order/TWAP events ----------
    def modify(self, change: OrderChange) -> OrderRequest:
        """A ``modify_order`` command."""
        return _mapped(modify_command, symbol=change.symbol, order_id=change.order_id,
                       side=change.side, order_type=change.order_type, price=change.price,
                       quantity=change.quantity, take_profit=change.take_profit,
                       stop_loss=change.stop_loss)  # fmt: skip

    def stop_order(self, stop: StopOrder) -> OrderRequest:
        """An ``add_order`` of a stop type (the trigger is sent as ``price``)."""
        return _mapped(stop_command, symbol=stop.symbol, side=stop.side,
                       stop_type=stop.stop_type, trigger_price=stop.trigger_price,
                       quantity=stop.quantity, client_order_id=stop.client_order_id)  # fmt: skip

    def modify_stop(self, change: StopChange) -> OrderRequest:
        """A ``modify_stop_order`` command."""
        return _mapped(modify_stop_command, stop_order_id=change.stop_order_id,
                       symbol=change.symbol, price=change.trigger_price,
                       quantity=change.quantity)  # fmt: skip

    def cancel_stop(self, cancel: StopCancel) -> OrderRequest:
        """A ``cancel_stop_order`` command."""
        return _mapped(cancel_stop_command, stop_order_id=cancel.stop_order_id)

    def twap(self, twap: TwapOrder) -> OrderRequest:
        """An ``add_twap`` command."""
        return _mapped(add_twap_command, symbol=twap.symbol, side=twap.side,
                       total_quantity=twap.total_quantity, num_orders=twap.num_orders,
                       order_interval_secs=twap.interval_seconds, reduce_only=twap.reduce_only,
                       client_twap_id=twap.client_twap_id)  # fmt: skip

    def cancel_twap(self, cancel: TwapCancel) -> OrderRequest:
        """A ``cancel_order`` by ``twap_id`` or ``client_twap_id``."""
        return _mapped(cancel_twap_command, symbol=cancel.symbol, twap_id=cancel.twap_id,
                       client_twap_id=cancel.client_twap_id)  # fmt: skip

    def close_position(self, close: ClosePosition) -> OrderRequest:
        """A ``close_position`` command (the venue sends a reduce-only IOC order)."""
        return _mapped(close_position_command, symbol=close.symbol,
                       client_order_id=close.client_order_id)  # fmt: skip

    def cancel_all(self, cancel: CancelAll) -> OrderRequest:
        """A ``cancel_all_orders`` command."""
        return cancel_all_command()

    # -- reads over the account's trade socket (one reply each, in order) -----------------
    async def _ask(
        self,
        session: Supervisor,
        request: OrderRequest,
        reply_key: str,
        match: Callable[[Any], bool] | None = None,
    ) -> Any:
        driver: QfexTradeDriver = session.driver
        return await driver.request(session, message(request), reply_key,
                                    timeout=self.settings.request_timeout, match=match)  # fmt: skip

    async def open_orders(self, session: Supervisor, symbol: str | None = None) -> OpenOrders:
        """``get_user_orders``: open orders, active TWAPs and stop orders of the account."""
        reply: OrdersSnapshot = await self._ask(
            session, get_user_orders_command(symbol=symbol), "all_orders_response"
        )
        return reply.open_orders()

    async def get_order(
        self, session: Supervisor, *, symbol: str, order_id: str
    ) -> OrderUpdateEvent | None:
        """``get_order``: the order's current ``order_response``; None for NO_SUCH_ORDER."""
        reply: OrderUpdateEvent = await self._ask(
            session,
            get_order_command(symbol=symbol, order_id=order_id),
            "order_response",
            match=lambda event: event.order_id == order_id,
        )
        return None if reply.status == "NO_SUCH_ORDER" else reply

    async def leverage(self, session: Supervisor) -> list[LeverageLevel]:
        """``get_user_leverage``: the account's leverage per symbol."""
        reply = await self._ask(session, get_leverage_command(), "user_leverage_response")
        return list(reply.levels)

    async def leverage_levels(self, session: Supervisor) -> list[LeverageLevel]:
        """``get_available_leverage_levels``: every allowed leverage per symbol."""
        reply = await self._ask(
            session, leverage_levels_command(), "available_leverage_levels_response"
        )
        return list(reply.levels)

    async def set_leverage(self, session: Supervisor, *, symbol: str, leverage: Decimal) -> None:
        """``set_user_leverage``; returns on the venue's ``ack`` (an ``err`` raises
        ``ActionRejected``)."""
        await self._ask(
            session,
            set_leverage_command(symbol=symbol, leverage=leverage),
            "ack",
            match=lambda ack: incoming_type(ack.incoming) in ("", "set_user_leverage"),
        )

    async def find_order(self, account_id: str, client_order_id: str) -> OrderUpdateEvent | None:
        """The order sent with ``client_order_id``: among the open ones (trade socket), else
        among the finished ones (``GET /user/historic-orders?client_order_id=``, the newest
        if several); None if the venue has neither.

        Raises:
          ActionUnavailable: the account's session is not live, or a read failed or was
            refused: cannot tell now.
        """
        session = self._sessions.get(account_id)
        if session is None or session.state is not ConnectionState.LIVE:
            raise ActionUnavailable(f"{self.name}: no live session for {account_id}")
        try:
            return await self._find_order(session, account_id, client_order_id)
        except ActionUnavailable:
            raise
        except ActionError as exc:
            raise ActionUnavailable(
                f"{self.name}: cannot look up {client_order_id}: {exc}"
            ) from exc

    async def _find_order(
        self, session: Supervisor, account_id: str, client_order_id: str
    ) -> OrderUpdateEvent | None:
        # Every page of the open orders (a page holds at most OPEN_ORDERS_PAGE, stops
        # included): an order beyond the first page is not "absent".
        for page in range(FIND_ORDER_PAGES):
            request = get_user_orders_command(
                limit=OPEN_ORDERS_PAGE, offset=page * OPEN_ORDERS_PAGE
            )
            reply: OrdersSnapshot = await self._ask(session, request, "all_orders_response")
            for order in reply.orders:
                if order.client_order_id == client_order_id:
                    return order
            if len(reply.orders) < OPEN_ORDERS_PAGE:
                break
        else:
            raise ActionUnavailable(
                f"{self.name}: more than {FIND_ORDER_PAGES * OPEN_ORDERS_PAGE} open orders; "
                f"cannot tell whether {client_order_id} is among them"
            )
        query = HistoryQuery(client_order_id=client_order_id)
        for row in await self.order_history(account_id, query):
            if row.client_order_id == client_order_id:
                return historic_as_update(row, venue=self.name, account_id=account_id)
        return None

    # -- history over REST (errors: see :func:`_as_action_errors`) ------------------------
    async def trades(self, account_id: str, query: HistoryQuery) -> list[UserTrade]:
        """``GET /user/trade``: the account's executions, newest first."""
        with _as_action_errors():
            return await self.rest.trades(account_id, order_id=query.order_id,
                                          offset=query.offset, **_filters(query))  # fmt: skip

    async def order_history(self, account_id: str, query: HistoryQuery) -> list[HistoricOrder]:
        """``GET /user/historic-orders``: the account's finished orders, newest first."""
        with _as_action_errors():
            return await self.rest.historic_orders(
                account_id, client_order_id=query.client_order_id, offset=query.offset,
                **_filters(query),
            )  # fmt: skip

    async def twap_history(self, account_id: str, query: HistoryQuery) -> list[TwapInfo]:
        """``GET /user/historic-twaps``: finished TWAPs (the path has no time filter or
        offset)."""
        with _as_action_errors():
            return await self.rest.historic_twaps(account_id, symbol=query.symbol,
                                                  limit=query.limit)  # fmt: skip

    async def fees(self, account_id: str) -> dict[str, FeeRate]:
        """``GET /user/fees``: maker and taker rates per symbol."""
        with _as_action_errors():
            return await self.rest.fees(account_id)

    async def candles(
        self, symbol: str, *, resolution: str, start: float, end: float
    ) -> list[Candle]:
        """``GET /candles/{symbol}``."""
        with _as_action_errors():
            return await self.rest.candles(symbol, resolution, start, end)

    async def funding_history(
        self, symbol: str, *, interval_minutes: int, start: float, end: float
    ) -> list[FundingRatePoint]:
        """``GET /funding/{symbol}``: forward-filled rates per window."""
        with _as_action_errors():
            return await self.rest.funding_history(symbol, interval_minutes, start, end)

    async def open_interest_history(
        self, symbol: str, *, interval_minutes: int, start: float, end: float
    ) -> list[OpenInterestPoint]:
        """``GET /open-interest/{symbol}``: forward-filled open interest per window."""
        with _as_action_errors():
            return await self.rest.open_interest_history(symbol, interval_minutes, start, end)

    async def transfer(self, src: str, dst: str, amount: Decimal) -> None:
        """One ``POST /user/transfer``; failures are classified by :meth:`transfer_outcome`."""
        await self.rest.transfer(src, dst, amount)

    def transfer_outcome(self, exc: BaseException) -> TransferOutcome | None:
        return transfer_outcome(exc)

    async def balance(self, account_id: str) -> BalanceEvent:
        """A fresh REST read of ``account_id``'s balance (``ActionError`` if none)."""
        return await read_balance(self.rest, account_id)

    async def aclose(self) -> None:
        if self._owns_rest:
            await self.rest.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _filters(query: HistoryQuery) -> dict[str, Any]:
    """The history filters every QFEX history path shares."""
    return {"symbol": query.symbol, "start": query.start, "end": query.end, "limit": query.limit}


def _mapped(build: Callable[..., OrderRequest], **args: Any) -> OrderRequest:
    """A command builder's request; what it cannot build is an ``ActionError``."""
    try:
        return build(**args)
    except ValueError as exc:
        raise ActionError(str(exc)) from exc


def historic_as_update(row: HistoricOrder, *, venue: str, account_id: str) -> OrderUpdateEvent:
    """A finished order from history as the terminal ``OrderUpdateEvent`` it ended with."""
    return OrderUpdateEvent(
        venue=venue,
        account_id=account_id,
        received_at=time.time(),
        order_id=row.order_id,
        client_order_id=row.client_order_id,
        symbol=row.symbol,
        status=row.status,
        side=row.side,
        order_type=row.order_type,
        time_in_force=row.time_in_force,
        price=row.price,
        quantity=row.quantity,
        remaining=max(row.quantity - row.filled_quantity, Decimal(0)),
        update_time=row.status_time,
        terminal=True,
        raw=row.raw,
    )


class QfexAdapter:
    """The QFEX kind: opens :class:`QfexVenue` s, replays recorded QFEX connections."""

    kind = "qfex"
    transfer_refusal = None
    simulator = "qfexbot.sim.qfex.embedded"

    def open(
        self, config: VenueSettings, credentials: CredentialsLike, endpoints: Any = None
    ) -> QfexVenue:
        """A :class:`QfexVenue` on the table's URLs, or the embedded simulator's ``endpoints``
        (``trade_url``, ``mds_url``, ``rest_url``)."""
        urls = endpoints if endpoints is not None else config
        return QfexVenue(
            config.name,
            trade_url=urls.trade_url,
            mds_url=urls.mds_url,
            rest_url=urls.rest_url,
            user_id=config.user_id,
            settings=config.session,
            public_key=credentials.public_key,
            secret=credentials.secret,
            jwt=credentials.jwt,
        )

    def replay_driver(
        self, config: VenueSettings, account_id: str, channel: str
    ) -> QfexReplayDriver:
        return QfexReplayDriver(config.name, account_id, config.user_id, public=channel == "mds")


ADAPTER = QfexAdapter()
"""The QFEX adapter (``qfexbot.venues.registry.adapter("qfex")``)."""
