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
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from qfexbot.core.accounts import AccountBook
from qfexbot.core.venue import Order
from qfexbot.events import ResyncEvent

__all__ = ["ActionsBackend", "BotContext", "TransferResult"]


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

    def __repr__(self) -> str:
        # Names only: config values and the backend stay out of reprs and tracebacks.
        return f"BotContext(bot={self.bot!r}, plugin={self.plugin!r}, venue={self.venue!r})"

    def account_id(self, alias_or_id: str) -> str:
        """The account id for an alias of the venue (an account id is returned as is).

        Raises:
          UnknownAccountError: neither an alias nor an id of this venue.
        """
        return self.venue_accounts.id_of(alias_or_id)

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
    ) -> None:
        """Send an order for ``account``; its fate arrives as order/fill events."""
        order = Order(
            symbol=symbol, side=side, order_type=order_type, quantity=quantity, price=price,
            time_in_force=time_in_force, client_order_id=client_order_id,
            reduce_only=reduce_only,
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
