"""The QFEX venue as the runtime sees it: :data:`ADAPTER` opens a :class:`QfexVenue` per table.

:class:`QfexVenue` ties one configured venue together: REST client, private sessions (one trade
socket per account), the shared market-data session, orders as trade-socket commands, transfers
over REST (``qfexbot.venues.qfex.transfers`` classifies their failures).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Self

from qfexbot.core.secrets import Secret
from qfexbot.core.session import MarketDataSession, Supervisor
from qfexbot.core.venue import (
    CredentialsLike,
    Order,
    OrderRequest,
    Publish,
    SessionSettingsLike,
    TransferOutcome,
    VenueSettings,
)
from qfexbot.errors import ActionError, ActionRejected, ActionUnavailable, VenueError
from qfexbot.events import BalanceEvent, ResyncEvent
from qfexbot.venues.qfex.auth import QfexAuth
from qfexbot.venues.qfex.driver import (
    DEFAULT_CHANNELS,
    OnControl,
    QfexMarketDataDriver,
    QfexTradeDriver,
)
from qfexbot.venues.qfex.orders import cancel_command, order_command
from qfexbot.venues.qfex.replay import QfexReplayDriver
from qfexbot.venues.qfex.rest import QfexApiError, QfexRest, QfexUnavailableError
from qfexbot.venues.qfex.transfers import read_balance, transfer_outcome

__all__ = ["ADAPTER", "QfexAdapter", "QfexVenue"]


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
        return Supervisor(
            driver,
            venue=self.name,
            account_id=account_id,
            settings=settings or self.settings,
            publish=publish,
            rng=rng,
        )

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
        return order_command(order)

    def cancel(self, *, symbol: str, order_id: str) -> OrderRequest:
        """A ``cancel_order`` command by venue order id."""
        return cancel_command(symbol=symbol, order_id=order_id)

    async def send(self, session: Supervisor, request: OrderRequest) -> None:
        """Send the command on the account's trade socket (``ActionUnavailable`` if not live)."""
        await session.send({"type": request.command, "params": dict(request.params)})

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
