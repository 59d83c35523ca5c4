"""BotContext: what a plugin gets as ``ctx`` in every hook (config, logger, accounts, actions).

One context exists per (bot, plugin instance). Actions are forwarded, with the bot and plugin
names, to an ``ActionsBackend`` supplied by the runtime (policy checks and the journal live
there, not here).

``TransferResult`` is the public type of what ``ctx.transfer`` returns. It is a protocol here
because the core sits below the money layer that makes the results (``money.transfers``); the
plugin API names this type, and the money layer's frozen result satisfies it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from qfexbot.core.accounts import AccountBook
from qfexbot.core.alerts import make_alert
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
from qfexbot.core.venue import (
    CancelAll,
    ClosePosition,
    HistoryQuery,
    Order,
    OrderAction,
    OrderChange,
    StopCancel,
    StopChange,
    StopOrder,
    TwapCancel,
    TwapOrder,
)
from qfexbot.events import AlertEvent, AlertKind, AlertSeverity, OrderUpdateEvent, ResyncEvent

__all__ = ["ActionsBackend", "BotContext", "Query", "TransferResult"]


@runtime_checkable
class TransferResult(Protocol):
    """What happened to one ``ctx.transfer`` call (a refusal is a result, not an exception).

    ``state`` is ``done``, ``failed``, ``unknown``, ``refused`` or ``dry_run``; ``code`` is the
    policy rule for refusals and dry runs, else empty; ``entry_id`` is the journal entry; ``ok``
    is true when the venue confirmed the transfer.
    """

    @property
    def entry_id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def code(self) -> str: ...
    @property
    def ok(self) -> bool: ...


class ActionsBackend(Protocol):
    """What the runtime implements so plugins can act. Every method gets the bot and plugin
    instance names first, so it can apply the bot's policy and journal who asked.

    Accounts are passed exactly as the plugin gave them (an alias or an account id)."""

    async def transfer(
        self, bot: str, plugin: str, src: str, dst: str, amount: Decimal, reason: str
    ) -> TransferResult: ...

    async def add_order(self, bot: str, plugin: str, account: str, order: Order) -> None: ...

    async def cancel_order(
        self, bot: str, plugin: str, account: str, *, symbol: str, order_id: str
    ) -> None: ...

    async def positions(self, bot: str, plugin: str, account: str) -> ResyncEvent: ...

    async def account_equity(
        self, bot: str, plugin: str, account: str, duration: str = "1w"
    ) -> list[tuple[str, Decimal]]: ...

    async def order_action(self, bot: str, plugin: str, account: str, action: OrderAction) -> None:
        """Map, journal and send one order action (modify, stops, TWAP, close, cancel all)."""

    async def set_leverage(
        self, bot: str, plugin: str, account: str, symbol: str, leverage: Decimal
    ) -> None: ...

    async def read(self, bot: str, plugin: str, account: str | None, query: Query) -> Any:
        """Answer one read (``account`` None for market history) from the venue."""


@dataclass(frozen=True, slots=True)
class Query:
    """One read a plugin asks for: ``name`` is the ``ctx`` method and the ``Venue`` method
    that answers it, ``args`` its keyword arguments there. ``scope`` says what else that
    method takes first: ``session`` (the account's live session), ``account`` (the account
    id) or ``market`` (nothing: public history)."""

    name: str
    scope: str
    args: Mapping[str, Any]


def _decimal(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, got {type(value).__name__}")


def _side(side: Any) -> None:
    if side not in ("BUY", "SELL"):
        raise ValueError(f"side must be 'BUY' or 'SELL', got {side!r}")


def _time(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be Unix seconds (int or float), got {type(value).__name__}")
    return float(value)


def _count(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


class BotContext:
    """The plugin's view of its bot.

    Attributes:
      bot, plugin, venue: names (plugin = the instance name from bots.toml).
      config: the plugin's validated options (read-only mapping).
      log: a logger for this plugin (``plugins.<bot>.<plugin>``); lines logged from hooks also
        carry bot and plugin in their context.
      accounts: alias -> account id of this bot's own accounts (the ones it has sessions and
        buses for), in bots.toml order.
      venue_accounts: alias -> account id of every account of the venue (e.g. a treasury that
        the bot moves money from without listening to it), an ``AccountBook``.
      state: a dict shared by all plugins of this bot (plugins of other bots never see it).
    """

    __slots__ = (
        "_actions",
        "_alerts",
        "accounts",
        "bot",
        "config",
        "log",
        "plugin",
        "state",
        "venue",
        "venue_accounts",
    )

    def __init__(
        self,
        *,
        bot: str,
        plugin: str,
        venue: str,
        config: Mapping[str, Any],
        accounts: Mapping[str, str],
        venue_accounts: Mapping[str, str],
        state: dict[str, Any],
        actions: ActionsBackend,
        log: logging.Logger | None = None,
        alerts: Callable[[AlertEvent], None] | None = None,
    ) -> None:
        self.bot = bot
        self.plugin = plugin
        self.venue = venue
        if not isinstance(config, MappingProxyType):
            config = MappingProxyType(dict(config))
        self.config = config
        self.accounts: Mapping[str, str] = MappingProxyType(dict(accounts))
        self.venue_accounts = AccountBook(venue_accounts, name=f"bot {bot!r}")
        self.state = state
        self.log = log or logging.getLogger(f"plugins.{bot}.{plugin}")
        self._actions = actions
        self._alerts = alerts

    def __repr__(self) -> str:
        # Names only: config values and the backend stay out of reprs and tracebacks.
        return f"BotContext(bot={self.bot!r}, plugin={self.plugin!r}, venue={self.venue!r})"

    def account_id(self, alias_or_id: str) -> str:
        """The account id for an alias of the venue (an account id is returned as is).

        Raises:
          UnknownAccountError: neither an alias nor an id of this venue.
        """
        return self.venue_accounts.id_of(alias_or_id)

    def alert(
        self,
        alert: AlertKind,
        severity: AlertSeverity,
        summary: str,
        *,
        account: str = "",
        subject: str = "",
        **details: object,
    ) -> None:
        """Raise an operator alert (e.g. a drawdown stop) on the runtime's alert stream, where
        the plugins subscribing to ``AlertEvent`` (the notifier) get it. Never waits; outside a
        runtime (no alert stream) it does nothing. Put no secret in it."""
        if self._alerts is not None:
            self._alerts(
                make_alert(
                    alert, severity, summary, venue=self.venue, bot=self.bot, account=account,
                    subject=subject or f"{self.bot}/{self.plugin}", plugin=self.plugin, **details,
                )
            )  # fmt: skip

    def alias_of(self, account_id: str) -> str:
        """The venue alias of ``account_id`` (the first one if several), or the id itself if
        it has none: for readable logs."""
        return self.venue_accounts.alias_of(account_id)

    async def transfer(self, src: str, dst: str, amount: Decimal, reason: str) -> TransferResult:
        """Move ``amount`` from ``src`` to ``dst`` (aliases or ids), exactly once, subject to
        the bot's limits; returns its journal entry and outcome."""
        if not isinstance(amount, Decimal):
            raise TypeError(f"amount must be a Decimal, got {type(amount).__name__}")
        return await self._actions.transfer(self.bot, self.plugin, src, dst, amount, reason)

    async def add_order(
        self,
        account: str,
        *,
        symbol: str,
        side: str,
        order_type: str,
        quantity: Decimal,
        price: Decimal | None = None,
        time_in_force: str = "GTC",
        client_order_id: str | None = None,
        reduce_only: bool = False,
        take_profit: Decimal | None = None,
        stop_loss: Decimal | None = None,
    ) -> None:
        """Send an order for ``account``; its fate arrives as order/fill events.

        ``take_profit`` / ``stop_loss`` are trigger prices of reduce-only stop orders the venue
        attaches once the order fills (None: none).
        """
        _decimal("take_profit", take_profit, optional=True)
        _decimal("stop_loss", stop_loss, optional=True)
        order = Order(
            symbol=symbol, side=side, order_type=order_type, quantity=quantity, price=price,
            time_in_force=time_in_force, client_order_id=client_order_id,
            reduce_only=reduce_only, take_profit=take_profit, stop_loss=stop_loss,
        )  # fmt: skip
        await self._actions.add_order(self.bot, self.plugin, account, order)

    async def cancel_order(self, account: str, *, symbol: str, order_id: str) -> None:
        """Ask the venue to cancel one order of ``account``."""
        await self._actions.cancel_order(
            self.bot, self.plugin, account, symbol=symbol, order_id=order_id
        )

    async def positions(self, account: str) -> ResyncEvent:
        """A fresh snapshot (balance and positions) of ``account`` read from the venue."""
        return await self._actions.positions(self.bot, self.plugin, account)

    async def account_equity(self, account: str, duration: str = "1w") -> list[tuple[str, Decimal]]:
        """Equity history of ``account`` over ``duration`` as ``[(window_start, equity), ...]``."""
        return await self._actions.account_equity(self.bot, self.plugin, account, duration)

    # -- more order actions (journaled and sent like add_order; results arrive as events) --

    async def _act(self, account: str, action: OrderAction) -> None:
        await self._actions.order_action(self.bot, self.plugin, account, action)

    async def modify_order(
        self,
        account: str,
        *,
        symbol: str,
        order_id: str,
        side: str,
        order_type: str,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
        take_profit: Decimal | None = None,
        stop_loss: Decimal | None = None,
    ) -> None:
        """Change a resting order's price, quantity, take-profit or stop-loss (None keeps
        it); ``side`` and ``order_type`` must be the order's own. The answer arrives as an
        ``OrderUpdateEvent`` (``MODIFIED`` or why not)."""
        _side(side)
        for name, value in (("price", price), ("quantity", quantity),
                            ("take_profit", take_profit), ("stop_loss", stop_loss)):  # fmt: skip
            _decimal(name, value, optional=True)
        if price is None and quantity is None and take_profit is None and stop_loss is None:
            raise ValueError("modify_order needs a new price, quantity, take_profit or stop_loss")
        change = OrderChange(symbol, order_id, side, order_type, price, quantity, take_profit,
                             stop_loss)  # fmt: skip
        await self._act(account, change)

    async def place_stop_order(
        self,
        account: str,
        *,
        symbol: str,
        side: str,
        stop_type: str,
        trigger_price: Decimal,
        quantity: Decimal,
        client_order_id: str | None = None,
    ) -> None:
        """Rest a stop order: once the mark price reaches ``trigger_price`` it becomes a
        market order of ``side``. ``stop_type``: ``TAKE_PROFIT`` / ``STOP_LOSS`` (reduce-only,
        at most the position) or ``STOP_MARKET``. Updates arrive as ``OrderUpdateEvent`` s
        (and ``StopOrderEvent`` s on the ``stop_orders`` channel)."""
        _side(side)
        _decimal("trigger_price", trigger_price)
        _decimal("quantity", quantity)
        if stop_type not in ("TAKE_PROFIT", "STOP_LOSS", "STOP_MARKET"):
            raise ValueError(
                f"stop_type must be TAKE_PROFIT, STOP_LOSS or STOP_MARKET, got {stop_type!r}"
            )
        stop = StopOrder(symbol, side, stop_type, trigger_price, quantity, client_order_id)
        await self._act(account, stop)

    async def modify_stop_order(
        self,
        account: str,
        *,
        stop_order_id: str,
        symbol: str,
        trigger_price: Decimal,
        quantity: Decimal,
    ) -> None:
        """Give a resting stop order a new trigger price and quantity."""
        _decimal("trigger_price", trigger_price)
        _decimal("quantity", quantity)
        await self._act(account, StopChange(stop_order_id, symbol, trigger_price, quantity))

    async def cancel_stop_order(self, account: str, *, stop_order_id: str) -> None:
        """Cancel one resting stop order."""
        await self._act(account, StopCancel(stop_order_id))

    async def start_twap(
        self,
        account: str,
        *,
        symbol: str,
        side: str,
        total_quantity: Decimal,
        num_orders: int,
        interval_seconds: int,
        reduce_only: bool = False,
        client_twap_id: str | None = None,
    ) -> None:
        """Buy or sell ``total_quantity`` in ``num_orders`` market orders, one every
        ``interval_seconds``; progress and the end arrive as ``TwapEvent`` s."""
        _side(side)
        _decimal("total_quantity", total_quantity)
        twap = TwapOrder(symbol, side, total_quantity, _count("num_orders", num_orders, 1),
                         _count("interval_seconds", interval_seconds, 1), bool(reduce_only),
                         client_twap_id)  # fmt: skip
        await self._act(account, twap)

    async def cancel_twap(
        self,
        account: str,
        *,
        symbol: str,
        twap_id: str | None = None,
        client_twap_id: str | None = None,
    ) -> None:
        """Stop a TWAP, by its venue id or by the ``client_twap_id`` it was started with."""
        if (twap_id is None) == (client_twap_id is None):
            raise ValueError("cancel_twap needs exactly one of twap_id and client_twap_id")
        await self._act(account, TwapCancel(symbol, twap_id, client_twap_id))

    async def close_position(
        self, account: str, *, symbol: str, client_order_id: str | None = None
    ) -> None:
        """Close the whole position in ``symbol`` with a market order (nothing if flat: the
        venue rejects it)."""
        await self._act(account, ClosePosition(symbol, client_order_id))

    async def cancel_all(self, account: str) -> None:
        """Cancel every open order of ``account``."""
        await self._act(account, CancelAll())

    async def set_leverage(self, account: str, *, symbol: str, leverage: Decimal) -> None:
        """Set ``account``'s leverage in ``symbol`` (one of :meth:`leverage_levels`); returns
        once the venue accepted it (``ActionRejected`` if not)."""
        _decimal("leverage", leverage)
        await self._actions.set_leverage(self.bot, self.plugin, account, symbol, leverage)

    # -- reads ---------------------------------------------------------------------------

    async def _read(self, account: str | None, name: str, scope: str, **args: Any) -> Any:
        query = Query(name, scope, args)
        return await self._actions.read(self.bot, self.plugin, account, query)

    async def open_orders(self, account: str, *, symbol: str | None = None) -> OpenOrders:
        """What rests for ``account`` now (orders, active TWAPs, stop orders), read from the
        venue."""
        return await self._read(account, "open_orders", "session", symbol=symbol)

    async def get_order(
        self, account: str, *, symbol: str, order_id: str
    ) -> OrderUpdateEvent | None:
        """One order's current state, open or finished; None if the venue has no such order."""
        return await self._read(account, "get_order", "session", symbol=symbol, order_id=order_id)

    async def leverage(self, account: str) -> list[LeverageLevel]:
        """``account``'s current leverage in each symbol."""
        return await self._read(account, "leverage", "session")

    async def leverage_levels(self, account: str) -> list[LeverageLevel]:
        """Every leverage the venue allows per symbol, with margins and notional cap."""
        return await self._read(account, "leverage_levels", "session")

    async def trades(
        self,
        account: str,
        *,
        symbol: str | None = None,
        order_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[UserTrade]:
        """``account``'s executions (times in Unix seconds), newest first, paged."""
        query = _history(symbol, start, end, limit, offset, order_id=order_id)
        return await self._read(account, "trades", "account", query=query)

    async def order_history(
        self,
        account: str,
        *,
        symbol: str | None = None,
        client_order_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[HistoricOrder]:
        """``account``'s finished orders, newest first, paged."""
        query = _history(symbol, start, end, limit, offset, client_order_id=client_order_id)
        return await self._read(account, "order_history", "account", query=query)

    async def twap_history(
        self, account: str, *, symbol: str | None = None, limit: int = 100
    ) -> list[TwapInfo]:
        """``account``'s finished TWAPs, newest first."""
        query = _history(symbol, None, None, limit, 0)
        return await self._read(account, "twap_history", "account", query=query)

    async def fees(self, account: str) -> dict[str, FeeRate]:
        """``account``'s maker and taker fee rates (fractions) per symbol."""
        return await self._read(account, "fees", "account")

    async def candles(
        self, symbol: str, *, resolution: str, start: float, end: float
    ) -> list[Candle]:
        """Candles of ``symbol`` (e.g. ``resolution="1MIN"``) between two Unix times."""
        return await self._read(None, "candles", "market", symbol=symbol, resolution=resolution,
                                **_window(start, end))  # fmt: skip

    async def funding_history(
        self, symbol: str, *, start: float, end: float, interval_minutes: int = 60
    ) -> list[FundingRatePoint]:
        """Funding rates of ``symbol`` per window of ``interval_minutes``, oldest first."""
        return await self._read(None, "funding_history", "market", symbol=symbol,
                                interval_minutes=_count("interval_minutes", interval_minutes, 1),
                                **_window(start, end))  # fmt: skip

    async def open_interest_history(
        self, symbol: str, *, start: float, end: float, interval_minutes: int = 60
    ) -> list[OpenInterestPoint]:
        """Open interest of ``symbol`` per window of ``interval_minutes``, oldest first."""
        return await self._read(None, "open_interest_history", "market", symbol=symbol,
                                interval_minutes=_count("interval_minutes", interval_minutes, 1),
                                **_window(start, end))  # fmt: skip


def _history(
    symbol: str | None,
    start: float | None,
    end: float | None,
    limit: int,
    offset: int,
    **ids: str | None,
) -> HistoryQuery:
    return HistoryQuery(symbol, _time("start", start), _time("end", end),
                        _count("limit", limit, 1), _count("offset", offset, 0), **ids)  # fmt: skip


def _window(start: float, end: float) -> dict[str, float]:
    begin, finish = _time("start", start), _time("end", end)
    if begin is None or finish is None:
        raise TypeError("start and end are required")
    if begin > finish:
        raise ValueError(f"start ({begin}) is after end ({finish})")
    return {"start": begin, "end": finish}
