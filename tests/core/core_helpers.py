"""Helpers of the core tests: bots.toml fragments, events, a recording actions backend."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from qfexbot.config import AppConfig, parse_config
from qfexbot.core.plugins import PluginHost
from qfexbot.core.venue import Order
from qfexbot.events import BalanceEvent, BookEvent, FillEvent, MarkPriceEvent, OrderUpdateEvent
from qfexbot.runtime.plugins import build_plugin_host

PRIMARY = "0020ce8e-eaee-480e-8d7f-b9241d756ee5"
DESK_A = "11111111-1111-4111-8111-111111111111"
DESK_B = "22222222-2222-4222-8222-222222222222"
TEST_MODULE = "qfexbot_core_test_plugins"


def make_app(
    plugins: dict[str, dict[str, Any]],
    *,
    plugin_dirs: Sequence[Path] = (),
    bot_accounts: Sequence[str] = ("desk-a", "desk-b"),
    base_dir: Path = Path("/"),
) -> AppConfig:
    """A validated config with venue ``v`` (treasury, desk-a, desk-b) and bot ``b``."""
    data = {
        "runtime": {"plugin_dirs": [str(d) for d in plugin_dirs]},
        "venues": {
            "v": {
                "kind": "qfex",
                "simulator": True,
                "user_id": PRIMARY,
                "public_key": "qfex_pub_t",
                "secret": "qfex_secret_t",
                "accounts": {"treasury": "primary", "desk-a": DESK_A, "desk-b": DESK_B},
            }
        },
        "bots": {"b": {"venue": "v", "accounts": list(bot_accounts), "plugins": plugins}},
    }
    return parse_config(data, base_dir=base_dir)


class RecordingActions:
    """An ActionsBackend that records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.answers: dict[str, Any] = {}
        """What ``read`` returns per query name (default None)."""

    async def transfer(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append(("transfer", args, kwargs))
        return "transfer-result"

    async def add_order(self, bot: str, plugin: str, account: str, order: Order) -> None:
        self.calls.append(("add_order", (bot, plugin, account), dataclasses.asdict(order)))

    async def cancel_order(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("cancel_order", args, kwargs))

    async def positions(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append(("positions", args, kwargs))
        return "snapshot"

    async def account_equity(self, *args: Any, **kwargs: Any) -> list[tuple[Any, Decimal]]:
        self.calls.append(("account_equity", args, kwargs))
        return [(0, Decimal("1"))]

    async def order_action(self, bot: str, plugin: str, account: str, action: Any) -> None:
        self.calls.append(("order_action", (bot, plugin, account), {"action": action}))

    async def set_leverage(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("set_leverage", args, kwargs))

    async def read(self, bot: str, plugin: str, account: str | None, query: Any) -> Any:
        self.calls.append(("read", (bot, plugin, account), {"query": query}))
        return self.answers.get(query.name)


def build_host(
    plugins: dict[str, dict[str, Any]],
    *,
    plugin_dirs: Sequence[Path] = (),
    state: dict[str, Any] | None = None,
    actions: Any = None,
) -> PluginHost:
    app = make_app(plugins, plugin_dirs=plugin_dirs)
    bot = app.bots["b"]
    return build_plugin_host(
        bot,
        app.venues[bot.venue],
        plugin_dirs=app.runtime.plugin_dirs,
        actions=actions or RecordingActions(),
        state=state,
    )


class PluginModule:
    """An in-memory module registered in sys.modules so plugins can be named "module:attr"."""

    def __init__(self) -> None:
        self.module = types.ModuleType(TEST_MODULE)

    def add(self, name: str, obj: object) -> str:
        setattr(self.module, name, obj)
        return f"{TEST_MODULE}:{name}"


def balance(account: str, available: str | int, n: int = 0) -> BalanceEvent:
    return BalanceEvent(
        venue="v", account_id=account, received_at=float(n), available=Decimal(available)
    )


def fill(account: str, trade_id: str) -> FillEvent:
    return FillEvent(
        venue="v",
        account_id=account,
        received_at=0.0,
        trade_id=trade_id,
        order_id="o",
        client_order_id="c",
        symbol="AAPL-USD",
        side="BUY",
        price=Decimal("1"),
        quantity=Decimal("1"),
    )


def order(account: str, order_id: str) -> OrderUpdateEvent:
    return OrderUpdateEvent(
        venue="v",
        account_id=account,
        received_at=0.0,
        order_id=order_id,
        client_order_id="c",
        symbol="AAPL-USD",
        status="ACK",
        side="BUY",
        order_type="LIMIT",
        time_in_force="GTC",
        price=Decimal("1"),
        quantity=Decimal("1"),
        remaining=Decimal("1"),
    )


def book(account: str, symbol: str, seq: int) -> BookEvent:
    return BookEvent(
        venue="v",
        account_id=account,
        received_at=0.0,
        symbol=symbol,
        bids=((Decimal(seq), Decimal(1)),),
        asks=(),
        sequence=seq,
    )


def mark(account: str, symbol: str, price: str) -> MarkPriceEvent:
    return MarkPriceEvent(
        venue="v", account_id=account, received_at=0.0, symbol=symbol, price=Decimal(price)
    )


def label(event: Any) -> str:
    """A short readable tag of an event, for order assertions."""
    match event.kind:
        case "balance":
            return f"balance:{event.account_id[:1]}:{event.available}"
        case "fill":
            return f"fill:{event.trade_id}"
        case "order":
            return f"order:{event.order_id}"
        case "book":
            return f"book:{event.symbol}:{event.sequence}"
        case "mark_price":
            return f"mark:{event.symbol}:{event.price}"
        case "timer":
            return f"timer:{event.name}"
    return event.kind
