"""Pure simulator state: accounts, ledger, orders, price-time matching and the price process.

No sockets and no trio here: every operation takes its inputs, mutates the state and returns the
events the servers must deliver (``PrivateEvent`` to an account's subscribed connections,
``PublicTrade`` to market-data subscribers). Money is ``Decimal`` throughout; floats appear only
when ``payloads`` renders a frame for the wire.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from qfexbot.sim.qfex import payloads
from qfexbot.sim.qfex.account_history import AccountHistory
from qfexbot.sim.qfex.config import SimConfig, SimSymbol
from qfexbot.sim.qfex.economics import Economics, round_step
from qfexbot.sim.qfex.market_history import MarketHistory
from qfexbot.sim.qfex.model import (
    ALLOWED_TIF,
    ORDER_TYPES,
    SIDES,
    STOP_TYPES,
    TIFS,
    ZERO,
    Account,
    BalanceFigures,
    CommandError,
    Event,
    LedgerEntry,
    LeverageFigures,
    Market,
    Order,
    Position,
    PositionFigures,
    PrivateEvent,
    PublicTrade,
    TradeRecord,
    TransferError,
)
from qfexbot.sim.qfex.twap import TwapBook

__all__ = [
    "BOOK_DEPTH",
    "CLOSE_SLIPPAGE",
    "LEVERAGE_LEVELS",
    "ORDER_LOG_MAX",
    "TRADE_LOG_MAX",
    "Engine",
]

BOOK_DEPTH = 20
ORDER_LOG_MAX = 100_000
"""Orders (open and finished, all accounts) ``get_order`` can still find; the oldest go first."""
TRADE_LOG_MAX = 100_000
"""Trades kept per account for ``get_user_trades`` and the REST history; the oldest go first."""
LEVERAGE_LEVELS = (1, 2, 3, 5, 10, 20, 25, 30, 50)
"""Leverage levels a symbol offers up to its maximum (which is always offered) [I]."""
CLOSE_SLIPPAGE = Decimal("0.001")
"""``close_position`` prices its IOC 10 bps through the mark (qfex.md §6 #24)."""


class Engine:
    """The whole exchange state; servers call it and deliver the events it returns."""

    def __init__(self, config: SimConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.rng = random.Random(config.seed)
        self.user_accounts: dict[str, list[str]] = {}
        self.accounts: dict[str, Account] = {}
        for user in config.users:
            self.user_accounts[user.account_id] = list(user.accounts)
            for account_id in user.accounts:
                deposit = user.deposits.get(account_id, ZERO)
                self.accounts[account_id] = Account(account_id, user.account_id, deposit=deposit)
        self.markets: dict[str, Market] = {
            name: Market(spec, spec.price) for name, spec in config.symbols.items()
        }
        self.orders: dict[str, Order] = {}
        """Resting orders by id (in a book, holding order margin)."""
        self.stops: dict[str, Order] = {}
        """Stop orders waiting for their trigger, by id: off the book, no order margin [I]."""
        self.order_log: OrderedDict[str, Order] = OrderedDict()
        """Every order placed (also rejected and finished ones), oldest first, at most
        ``ORDER_LOG_MAX``: the history ``get_order`` answers from (qfex.md §6 #7)."""
        self.trade_log: dict[str, deque[TradeRecord]] = {}
        """Account id -> its trades (both sides of every execution), oldest first."""
        self.ledger: list[LedgerEntry] = []
        self.economics = Economics(self)
        self.account_history = AccountHistory(self)
        self.twaps = TwapBook(
            self,
            min_interval=config.twap_min_interval,
            tick=config.twap_tick,
            max_active=config.max_open_orders,
        )
        self.market_history = MarketHistory(self)
        self._arrival = 0
        for market in self.markets.values():
            self._regenerate(market)

    # ----------------------------------------------------------------- accounts and money

    def owns(self, user_id: str, account_id: str) -> bool:
        """Whether the account is the user's primary or one of its subaccounts."""
        return account_id in self.user_accounts.get(user_id, ())

    def create_subaccount(self, user_id: str) -> str:
        """A new empty subaccount with default leverage (§6 #17)."""
        account_id = str(uuid.uuid4())
        self.user_accounts[user_id].append(account_id)
        self.accounts[account_id] = Account(account_id, user_id)
        return account_id

    def transfer(
        self,
        user_id: str,
        src: str,
        dst: str,
        amount: Decimal,
        *,
        outside: bool = False,
        held_for: float = 0.0,
    ) -> LedgerEntry:
        """Move available balance between two accounts of one user, instantly (§6 #16).

        ``outside`` marks a move made by another client (the web app, a second bot) and
        ``held_for`` a request the venue held before applying; both only label the ledger.

        Raises:
            TransferError: 403 not owned, 400 src == dst, 422 amount <= 0 or > available.
        """
        for name, account_id in (("src_account_id", src), ("dst_account_id", dst)):
            if not self.owns(user_id, account_id):
                raise TransferError(
                    403,
                    "Forbidden",
                    f"account {account_id} is not owned by this user",
                    f"query.{name}",
                )
        if src == dst:
            raise TransferError(400, "Bad Request", "source and destination are the same account")
        if not amount.is_finite() or amount <= 0:
            raise TransferError(
                422, "Unprocessable Entity", "amount must be greater than 0", "body.amount"
            )
        available = self.available_balance(src)
        if amount > available:
            raise TransferError(
                422,
                "Unprocessable Entity",
                f"amount {amount} exceeds available balance {available}",
                "body.amount",
            )
        self.accounts[src].deposit -= amount
        self.accounts[dst].deposit += amount
        entry = LedgerEntry(
            str(uuid.uuid4()), src, dst, amount, self.clock(), outside=outside, held_for=held_for
        )
        self.ledger.append(entry)
        return entry

    def im_fraction(self, account: Account, symbol: str) -> Decimal:
        """Initial margin fraction = 1 / leverage."""
        leverage = account.leverage.get(symbol, self.markets[symbol].spec.leverage)
        return Decimal(1) / Decimal(leverage)

    def order_margin(self, account_id: str) -> Decimal:
        account = self.accounts[account_id]
        return sum(
            (
                o.remaining * o.price * self.im_fraction(account, o.symbol)
                for o in self.orders.values()
                if o.account_id == account_id
            ),
            ZERO,
        )

    def position_margin(self, account_id: str, symbol: str | None = None) -> Decimal:
        account = self.accounts[account_id]
        return sum(
            (
                abs(p.size) * self.mark_price(p.symbol) * self.im_fraction(account, p.symbol)
                for p in account.positions.values()
                if symbol is None or p.symbol == symbol
            ),
            ZERO,
        )

    def unrealised_pnl(self, account_id: str, symbol: str | None = None) -> Decimal:
        account = self.accounts[account_id]
        return sum(
            (
                p.size * (self.mark_price(p.symbol) - p.average_price)
                for p in account.positions.values()
                if p.size and (symbol is None or p.symbol == symbol)
            ),
            ZERO,
        )

    def available_balance(self, account_id: str) -> Decimal:
        """deposit + realised + funding - fees - order and position margin + losses (§6 #15)."""
        account = self.accounts[account_id]
        unrealised = self.unrealised_pnl(account_id)
        return (
            account.deposit
            + account.realised_pnl
            + account.net_funding
            - account.fees
            - self.order_margin(account_id)
            - self.position_margin(account_id)
            + min(unrealised, ZERO)
        )

    def equity(self, account_id: str) -> Decimal:
        """deposit + realised + funding - fees + unrealised."""
        account = self.accounts[account_id]
        return (
            account.deposit
            + account.realised_pnl
            + account.net_funding
            - account.fees
            + self.unrealised_pnl(account_id)
        )

    def balance(self, account_id: str) -> BalanceFigures:
        """The account's cash and margin figures now."""
        account = self.accounts[account_id]
        return BalanceFigures(
            account_id=account_id,
            deposit=account.deposit,
            realised_pnl=account.realised_pnl,
            order_margin=self.order_margin(account_id),
            position_margin=self.position_margin(account_id),
            unrealised_pnl=self.unrealised_pnl(account_id),
            net_funding=account.net_funding,
            available_balance=self.available_balance(account_id),
            fees=account.fees,
        )

    def positions(self, account_id: str) -> list[PositionFigures]:
        """Every symbol the account ever traded, flat positions included."""
        account = self.accounts[account_id]
        figures = []
        for symbol, position in account.positions.items():
            im = self.im_fraction(account, symbol)
            resting = [
                o for o in self.orders.values() if o.account_id == account_id and o.symbol == symbol
            ]
            figures.append(
                PositionFigures(
                    position=position,
                    margin_alloc=self.position_margin(account_id, symbol),
                    unrealised_pnl=self.unrealised_pnl(account_id, symbol),
                    open_orders=len(resting),
                    open_quantity=sum((o.remaining for o in resting), ZERO),
                    leverage=account.leverage.get(symbol, self.markets[symbol].spec.leverage),
                    initial_margin=im,
                    maintenance_margin=im * 2 / 3,
                )
            )
        return figures

    def leverages(self, account_id: str) -> list[LeverageFigures]:
        """The account's leverage on every symbol."""
        account = self.accounts[account_id]
        rows = []
        for symbol, market in self.markets.items():
            im = self.im_fraction(account, symbol)
            rows.append(
                LeverageFigures(
                    id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{account_id}/{symbol}")),
                    symbol=symbol,
                    initial_margin=im,
                    maintenance_margin=im * 2 / 3,
                    max_notional=self.max_notional(account_id, symbol),
                    leverage=account.leverage.get(symbol, market.spec.leverage),
                )
            )
        return rows

    def leverage_levels(self, symbol: str) -> tuple[int, ...]:
        """The leverages ``set_user_leverage`` accepts on a symbol, lowest first."""
        cap = self.markets[symbol].spec.leverage
        return tuple(sorted({level for level in LEVERAGE_LEVELS if level <= cap} | {cap}))

    def tier_notional(self, symbol: str, leverage: int) -> Decimal:
        """Max position notional at a leverage: the symbol's ``max_position_notional`` in the
        upper half of its levels, twice that at half its maximum leverage or less [I]."""
        spec = self.markets[symbol].spec
        base = spec.max_position_notional
        return base * 2 if leverage * 2 <= spec.leverage else base

    def max_notional(self, account_id: str, symbol: str) -> Decimal:
        """The position notional the account may hold on a symbol at its current leverage."""
        account = self.accounts[account_id]
        spec = self.markets[symbol].spec
        return self.tier_notional(symbol, account.leverage.get(symbol, spec.leverage))

    def available_leverage_levels(self) -> list[LeverageFigures]:
        """One row per symbol and level (``get_available_leverage_levels``), symbols in config
        order; ``id`` is stable per (symbol, level)."""
        rows = []
        for symbol in self.markets:
            for level in self.leverage_levels(symbol):
                im = Decimal(1) / Decimal(level)
                rows.append(
                    LeverageFigures(
                        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"leverage-level/{symbol}/{level}")),
                        symbol=symbol,
                        initial_margin=im,
                        maintenance_margin=im * 2 / 3,
                        max_notional=self.tier_notional(symbol, level),
                        leverage=level,
                    )
                )
        return rows

    def sample_equity(self) -> None:
        """Record every account's equity now (the GET /user/account-equity history)."""
        now = self.clock()
        for account_id, account in self.accounts.items():
            account.equity_history.append((now, self.equity(account_id)))

    def set_leverage(self, account_id: str, symbol: str, leverage: Any) -> None:
        """Change an account's leverage on a symbol (only while flat and without orders).

        Raises:
            CommandError: unknown symbol, bad value, or open orders / position present.
        """
        market = self.markets.get(symbol) if isinstance(symbol, str) else None
        if market is None:
            raise CommandError("InvalidParameter", f"unknown symbol {symbol!r}")
        if isinstance(leverage, bool) or not isinstance(leverage, (int, Decimal)):
            raise CommandError("InvalidJSONFormat", "leverage must be a number")
        levels = self.leverage_levels(symbol)
        if leverage != int(leverage) or int(leverage) not in levels:
            raise CommandError(
                "InvalidParameter", f"leverage must be one of the available levels {levels}"
            )
        account = self.accounts[account_id]
        position = account.positions.get(symbol)
        has_orders = any(
            o.account_id == account_id and o.symbol == symbol
            for o in (*self.orders.values(), *self.stops.values())
        )
        if has_orders or (position is not None and position.size):
            raise CommandError(
                "InvalidParameter", "leverage cannot change with open orders or a position"
            )
        account.leverage[symbol] = int(leverage)

    # ----------------------------------------------------------------- market data

    def best_bid(self, symbol: str) -> Decimal | None:
        market = self.markets[symbol]
        prices = [o.price for o in market.bids[:1]] + [
            p for p, q in market.synthetic["BUY"].items() if q > 0
        ]
        return max(prices) if prices else None

    def best_ask(self, symbol: str) -> Decimal | None:
        market = self.markets[symbol]
        prices = [o.price for o in market.asks[:1]] + [
            p for p, q in market.synthetic["SELL"].items() if q > 0
        ]
        return min(prices) if prices else None

    def mark_price(self, symbol: str) -> Decimal:
        """median(best bid, best ask, last trade), the rulebook's mark; mid stands in for gaps."""
        market = self.markets[symbol]
        bid = self.best_bid(symbol) or market.mid
        ask = self.best_ask(symbol) or market.mid
        last = market.last_trade if market.last_trade is not None else market.mid
        return sorted((bid, ask, last))[1]

    def book(
        self, symbol: str, depth: int = BOOK_DEPTH
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """Aggregated top-``depth`` levels (bids best first, asks best first)."""
        market = self.markets[symbol]
        sides = []
        for side, resting in (("BUY", market.bids), ("SELL", market.asks)):
            levels: dict[Decimal, Decimal] = {}
            for price, qty in market.synthetic[side].items():
                if qty > 0:
                    levels[price] = levels.get(price, ZERO) + qty
            for order in resting:
                levels[order.price] = levels.get(order.price, ZERO) + order.remaining
            ordered = sorted(levels.items(), reverse=side == "BUY")
            sides.append(ordered[:depth])
        return sides[0], sides[1]

    def next_book_sequence(self, symbol: str) -> int:
        market = self.markets[symbol]
        market.sequence += 1
        return market.sequence

    # ----------------------------------------------------------------- price process

    def step_prices(self) -> list[Event]:
        """One random-walk step of every mid; resting orders the new book crosses get filled."""
        events: list[Event] = []
        for symbol, market in self.markets.items():
            spec = market.spec
            shock = Decimal(repr(round(self.rng.gauss(0.0, 1.0), 6)))
            moved = market.mid * (1 + spec.volatility * shock)
            events.extend(self.set_price(symbol, moved))
        return events

    def set_price(self, symbol: str, price: Decimal) -> list[Event]:
        """Move a symbol's mid (rounded to tick, kept inside min/max) and refresh liquidity;
        resting orders the new book crosses fill, then stops the new mark reached fire.

        Raises:
            KeyError: unknown symbol.
        """
        market = self.markets[symbol]
        spec = market.spec
        margin = spec.tick_size * (spec.spread_ticks + BOOK_DEPTH)
        low, high = spec.min_price + margin, spec.max_price - margin
        market.mid = min(max(round_step(price, spec.tick_size, ROUND_FLOOR), low), high)
        self._regenerate(market)
        self.market_history.on_price(symbol)
        events = self._cross_resting(market)
        return events + self._trigger_stops(symbol)

    def _regenerate(self, market: Market) -> None:
        spec = market.spec
        half = spec.tick_size * spec.spread_ticks / 2
        best_bid = round_step(market.mid - half, spec.tick_size, ROUND_FLOOR)
        best_ask = best_bid + spec.tick_size * spec.spread_ticks
        for side, best, step in (
            ("BUY", best_bid, -spec.tick_size),
            ("SELL", best_ask, spec.tick_size),
        ):
            levels: dict[Decimal, Decimal] = {}
            for k in range(BOOK_DEPTH):
                price = best + step * k
                if not spec.min_price <= price <= spec.max_price:
                    continue
                scale = Decimal(repr(round(self.rng.uniform(0.5, 1.5), 3))) * (1 + Decimal(k) / 4)
                qty = max(round_step(spec.depth * scale, spec.lot_size, ROUND_FLOOR), spec.lot_size)
                levels[price] = qty
            market.synthetic[side] = levels

    def _cross_resting(self, market: Market) -> list[Event]:
        """Fill resting user orders (as makers, at their limit) that synthetic quotes now cross."""
        events: list[Event] = []
        for resting, opposite in ((market.bids, "SELL"), (market.asks, "BUY")):
            for order in list(resting):
                levels = market.synthetic[opposite]
                crossing = sorted(
                    (
                        p
                        for p, q in levels.items()
                        if q > 0 and (p <= order.price if order.side == "BUY" else p >= order.price)
                    ),
                    reverse=order.side == "SELL",
                )
                for price in crossing:
                    if order.remaining == 0:
                        break
                    qty = min(order.remaining, levels[price])
                    levels[price] -= qty
                    events.extend(
                        self._execute(
                            market,
                            taker=None,
                            maker=order,
                            price=order.price,
                            qty=qty,
                            aggressor=opposite,
                        )
                    )
        return events

    # ----------------------------------------------------------------- orders

    def add_order(self, account_id: str, params: Mapping[str, Any]) -> list[Event]:
        """Validate and execute an ``add_order``; rejects are one ``order_response`` (§2.5).

        Raises:
            CommandError: missing parameters (InvalidParameter) or wrong types/enums
                (InvalidJSONFormat) — answered with an ``err`` frame by the server.
        """
        order = self._new_order(account_id, params)
        if order.order_type in STOP_TYPES:
            return self._add_stop(order)
        reject = self._validate(order) or self._attached_reject(order)
        if reject is not None:
            order.remaining = ZERO
            return [self._order_event(order, reject)]
        market = self.markets[order.symbol]
        if order.order_type == "ALO" and self._best_opposite(market, order) is not None:
            order.remaining = ZERO
            return [self._order_event(order, "REJECTED")]
        self.accounts[account_id].positions.setdefault(order.symbol, Position(order.symbol))
        events: list[Event] = [self._order_event(order, "ACK")]
        if order.tif == "FOK" and self._fillable(market, order) < order.quantity:
            order.remaining = ZERO
            return [*events, self._order_event(order, "CANCELLED")]
        return [*events, *self._match(market, order), *self._trigger_stops(order.symbol)]

    def _new_order(self, account_id: str, params: Mapping[str, Any]) -> Order:
        """The order an ``add_order`` asks for (numbered in arrival order), its fields checked.

        Raises:
            CommandError: a parameter is missing or of the wrong type or value.
        """
        for name in ("symbol", "side", "order_type", "order_time_in_force", "quantity"):
            if params.get(name) is None:
                raise CommandError("InvalidParameter", f"missing parameter {name}")
        symbol = params["symbol"]
        side = params["side"]
        order_type = params["order_type"]
        tif = params["order_time_in_force"]
        if not isinstance(symbol, str):
            raise CommandError("InvalidJSONFormat", "symbol must be a string")
        if side not in SIDES:
            raise CommandError("InvalidJSONFormat", f"side must be one of {SIDES}")
        if order_type not in ORDER_TYPES:
            raise CommandError("InvalidJSONFormat", f"order_type must be one of {ORDER_TYPES}")
        if tif not in TIFS:
            raise CommandError("InvalidJSONFormat", f"order_time_in_force must be one of {TIFS}")
        quantity = _decimal(params["quantity"], "quantity")
        price = _decimal(params.get("price") or 0, "price")
        take_profit = _decimal(params.get("take_profit") or 0, "take_profit")
        stop_loss = _decimal(params.get("stop_loss") or 0, "stop_loss")
        client_order_id = _client_order_id(params.get("client_order_id") or "")
        reduce_only = _reduce_only(params.get("reduce_only", False))
        if order_type in STOP_TYPES:
            # the TIF is required but ignored (echoed IOC); TP/SL only ever reduce [D]
            tif = "IOC"
            reduce_only = reduce_only or order_type != "STOP_MARKET"
        return self._make_order(
            account_id,
            symbol=symbol,
            side=side,
            order_type=order_type,
            tif=tif,
            price=ZERO if order_type == "MARKET" else price,
            quantity=quantity,
            client_order_id=client_order_id,
            take_profit=take_profit,
            stop_loss=stop_loss,
            reduce_only=reduce_only,
        )

    def _make_order(self, account_id: str, *, quantity: Decimal, **fields: Any) -> Order:
        """A new order numbered in arrival order and kept in the order history."""
        self._arrival += 1
        order = Order(
            order_id=str(uuid.uuid4()),
            account_id=account_id,
            quantity=quantity,
            remaining=quantity,
            arrival=self._arrival,
            update_time=self.clock(),
            **fields,
        )
        self.order_log[order.order_id] = order
        if len(self.order_log) > ORDER_LOG_MAX:
            self.order_log.popitem(last=False)
        return order

    def _match(self, market: Market, order: Order) -> list[Event]:
        """Take liquidity at the best crossing levels, then rest or cancel what is left."""
        events: list[Event] = []
        stp = False
        while order.remaining > 0:
            best = self._best_opposite(market, order)
            if best is None:
                break
            level_price, maker = best
            if maker is not None and maker.account_id == order.account_id:
                stp = True
                break
            other = _other(order.side)
            available = maker.remaining if maker else market.synthetic[other][level_price]
            qty = min(order.remaining, available)
            if maker is None:
                market.synthetic[other][level_price] -= qty
            events.extend(
                self._execute(
                    market,
                    taker=order,
                    maker=maker,
                    price=level_price,
                    qty=qty,
                    aggressor=order.side,
                )
            )
        filled = order.remaining < order.quantity
        if order.remaining > 0:
            if stp:
                events.append(self._order_event(order, "CANCELLED_STP"))
            elif order.tif == "GTC":
                self._rest(market, order)
            elif not filled:
                events.append(self._order_event(order, "CANCELLED"))
        return events

    def _validate(self, order: Order) -> str | None:
        """The reject status of an order the venue refuses, None if it may trade."""
        market = self.markets.get(order.symbol)
        if market is None:
            return "BAD_SYMBOL"
        if not self.economics.is_open(order.symbol, self.clock()):
            return "REJECTED_MARKET_CLOSED"
        spec = market.spec
        reject = _type_reject(order)
        if reject is None and order.order_type != "MARKET":
            price_bounds = (spec.tick_size, spec.min_price, spec.max_price)
            reject = _grid_reject(order.price, *price_bounds, "PRICE")
        quantity_bounds = (spec.lot_size, spec.min_quantity, spec.max_quantity)
        return (
            reject
            or _grid_reject(order.quantity, *quantity_bounds, "QUANTITY")
            or self._risk_reject(order, spec)
        )

    def _risk_reject(self, order: Order, spec: SimSymbol) -> str | None:
        """Price band, reduce-only, position size and margin checks against the account."""
        mark = self.mark_price(order.symbol)
        if not order.market_like:
            low, high = self.economics.band(order.symbol)
            if order.side == "BUY" and order.price > high:
                return "PRICE_GREATER_THAN_MAX_PRICE"
            if order.side == "SELL" and order.price < low:
                return "PRICE_LESS_THAN_MIN_PRICE"
        account = self.accounts[order.account_id]
        position = account.positions.get(order.symbol)
        size = position.size if position else ZERO
        signed = order.quantity if order.side == "BUY" else -order.quantity
        if order.reduce_only and (size == 0 or size * signed > 0 or abs(signed) > abs(size)):
            return "REJECTED"
        limit = self.economics.limit_reject(order)
        if limit is not None:
            return limit
        reference = mark if order.market_like else order.price
        if abs(size + signed) * reference > self.max_notional(order.account_id, order.symbol):
            return "REJECTED_WOULD_BREACH_MAX_NOTIONAL"
        increase = max(abs(size + signed) - abs(size), ZERO)
        required = increase * reference * self.im_fraction(account, order.symbol)
        if required > 0 and required > self.available_balance(order.account_id):
            return "FAILED_MARGIN_CHECK"
        return None

    def _best_opposite(self, market: Market, order: Order) -> tuple[Decimal, Order | None] | None:
        """Best crossing level on the other side: a resting order first at an equal price."""
        other = _other(order.side)
        resting = market.asks if order.side == "BUY" else market.bids
        synthetic = [p for p, q in market.synthetic[other].items() if q > 0]
        candidates: list[tuple[Decimal, Order | None]] = []
        if resting:
            candidates.append((resting[0].price, resting[0]))
        if synthetic:
            candidates.append(((min if order.side == "BUY" else max)(synthetic), None))
        if not candidates:
            return None
        better = (lambda a, b: a < b) if order.side == "BUY" else (lambda a, b: a > b)
        best = candidates[0]
        for candidate in candidates[1:]:
            if better(candidate[0], best[0]):
                best = candidate
        if not order.market_like and not _crosses_price(order, best[0]):
            return None
        return best

    def _fillable(self, market: Market, order: Order) -> Decimal:
        """Quantity an order could take right now (FOK check), stopping at own orders."""
        other = _other(order.side)
        resting = market.asks if order.side == "BUY" else market.bids
        levels: list[tuple[Decimal, int, Decimal, bool]] = [
            (p, 1, q, False) for p, q in market.synthetic[other].items() if q > 0
        ]
        levels += [(o.price, 0, o.remaining, o.account_id == order.account_id) for o in resting]
        levels.sort(key=lambda x: (x[0] if order.side == "BUY" else -x[0], x[1]))
        total = ZERO
        for price, _, qty, own in levels:
            if not order.market_like and not _crosses_price(order, price):
                break
            if own:
                break
            total += qty
        return total

    def _rest(self, market: Market, order: Order) -> None:
        book = market.bids if order.side == "BUY" else market.asks
        book.append(order)
        if order.side == "BUY":
            book.sort(key=lambda o: (-o.price, o.arrival))
        else:
            book.sort(key=lambda o: (o.price, o.arrival))
        self.orders[order.order_id] = order

    def _unrest(self, order: Order) -> None:
        market = self.markets[order.symbol]
        book = market.bids if order.side == "BUY" else market.asks
        if order in book:
            book.remove(order)
        self.orders.pop(order.order_id, None)

    def _execute(
        self,
        market: Market,
        taker: Order | None,
        maker: Order | None,
        price: Decimal,
        qty: Decimal,
        aggressor: str,
    ) -> list[Event]:
        """One trade: update both sides' orders and accounts, emit fills and the public print."""
        trade_id = str(uuid.uuid4())
        now = self.clock()
        events: list[Event] = []
        for order in (taker, maker):
            if order is None:
                continue
            order.remaining -= qty
            order.update_time = now
            is_maker = order is maker
            fee_rate = self.economics.fee_rate(order.account_id, order.symbol, maker=is_maker)
            fee = qty * price * fee_rate
            realised = self._apply_fill(order.account_id, order.symbol, order.side, qty, price, fee)
            self._record_trade(order, trade_id, now, price, qty, fee, realised, aggressor, is_maker)
            events.append(self._order_event(order, "FILLED", trade_id=trade_id))
            fill = payloads.fill_response(
                order,
                trade_id=trade_id,
                price=price,
                qty=qty,
                aggressor=aggressor,
                fee=fee,
                realised=realised,
                now=now,
            )
            events.append(self.emit(order.account_id, "fills", {"fill_response": fill}))
            if order.order_type not in STOP_TYPES and (order.take_profit or order.stop_loss):
                events.extend(self._stage_attached(order, qty))
            if order is maker and order.remaining == 0:
                self._unrest(order)
        market.last_trade = price
        self.market_history.on_trade(market.spec.symbol, price, qty, aggressor)
        print_ = payloads.trade_print(market.spec.symbol, trade_id, now, qty, price, aggressor)
        events.append(PublicTrade(market.spec.symbol, print_))
        return events

    def _record_trade(
        self,
        order: Order,
        trade_id: str,
        now: float,
        price: Decimal,
        qty: Decimal,
        fee: Decimal,
        realised: Decimal,
        aggressor: str,
        maker: bool,
    ) -> None:
        """Keep one side of a trade in its account's history (``get_user_trades``, REST)."""
        account = self.accounts[order.account_id]
        margin = qty * price * self.im_fraction(account, order.symbol)
        log = self.trade_log.setdefault(order.account_id, deque(maxlen=TRADE_LOG_MAX))
        log.append(
            TradeRecord(
                trade_id=trade_id,
                order_id=order.order_id,
                client_order_id=order.client_order_id,
                account_id=order.account_id,
                symbol=order.symbol,
                side=order.side,
                order_type=order.order_type,
                tif=order.tif,
                price=price,
                quantity=qty,
                fee=fee,
                realised_pnl=realised,
                margin_used=margin,
                aggressor_side=aggressor,
                maker=maker,
                ts=now,
            )
        )

    def _apply_fill(
        self, account_id: str, symbol: str, side: str, qty: Decimal, price: Decimal, fee: Decimal
    ) -> Decimal:
        """Position, average price, realised pnl and fees after one fill; returns realised pnl."""
        account = self.accounts[account_id]
        position = account.positions.setdefault(symbol, Position(symbol))
        signed = qty if side == "BUY" else -qty
        old = position.size
        new = old + signed
        realised = ZERO
        if old == 0 or (old > 0) == (signed > 0):
            position.average_price = (abs(old) * position.average_price + qty * price) / abs(new)
        else:
            closing = min(qty, abs(old))
            direction = 1 if old > 0 else -1
            realised = closing * (price - position.average_price) * direction
            if new == 0:
                position.average_price = ZERO
            elif (new > 0) != (old > 0):
                position.average_price = price
        position.size = new
        position.realised_pnl += realised
        account.realised_pnl += realised
        account.fees += fee
        return realised

    def cancel_order(self, account_id: str, params: Mapping[str, Any]) -> list[Event]:
        """Cancel by ``order_id`` or ``client_order_id`` (either field carries the id).

        Raises:
            CommandError: no identifier given or an unknown ``cancel_order_id_type``.
        """
        id_type = params.get("cancel_order_id_type") or "order_id"
        if id_type not in ("order_id", "client_order_id", "twap_id", "client_twap_id"):
            raise CommandError("InvalidJSONFormat", f"unknown cancel_order_id_type {id_type!r}")
        symbol = params.get("symbol")
        if id_type == "client_order_id":
            ident = params.get("client_order_id") or params.get("order_id")
        else:
            ident = params.get("order_id")
        if not isinstance(ident, str) or not ident:
            raise CommandError("InvalidParameter", f"missing parameter {id_type}")
        if id_type == "order_id":
            order = self.orders.get(ident) or self.stops.get(ident)
            matches = (
                [order]
                if order and order.account_id == account_id and (symbol in (None, order.symbol))
                else []
            )
        elif id_type == "client_order_id":
            matches = [
                o
                for o in (*self.orders.values(), *self.stops.values())
                if o.account_id == account_id
                and o.client_order_id == ident
                and symbol in (None, o.symbol)
            ]
        else:
            matches = []
        if not matches:
            missing = payloads.missing_order_response(
                account_id,
                symbol if isinstance(symbol, str) else "",
                self.clock(),
                order_id=ident if id_type == "order_id" else "",
                client_order_id=ident if id_type == "client_order_id" else "",
            )
            return [self.emit(account_id, "order_responses", {"order_response": missing})]
        return [self._cancel(order) for order in sorted(matches, key=lambda o: o.arrival)]

    def cancel_all(self, account_id: str) -> list[Event]:
        """Cancel every open order of the account, stops included (cancel_all_orders,
        cancel-on-disconnect, liquidation)."""
        mine = sorted(
            (
                o
                for o in (*self.orders.values(), *self.stops.values())
                if o.account_id == account_id
            ),
            key=lambda o: o.arrival,
        )
        return [self._cancel(order) for order in mine]

    def _cancel(self, order: Order) -> PrivateEvent:
        self._unrest(order)
        self.stops.pop(order.order_id, None)
        order.update_time = self.clock()
        return self._order_event(order, "CANCELLED")

    def find_order(self, account_id: str, order_id: str, symbol: str | None = None) -> Order | None:
        """The account's order with this id, open, a waiting stop or finished (``get_order``), or
        None. A ``symbol`` other than the order's finds nothing, as for ``cancel_order``.
        """
        order = (
            self.orders.get(order_id) or self.stops.get(order_id) or self.order_log.get(order_id)
        )
        if order is None or order.account_id != account_id or symbol not in (None, order.symbol):
            return None
        return order

    def open_orders(self, account_id: str, symbol: str | None = None) -> list[Order]:
        """Open orders (incl. partially filled), oldest first."""
        return [
            o
            for o in sorted(self.orders.values(), key=lambda o: o.arrival)
            if o.account_id == account_id and symbol in (None, o.symbol)
        ]

    def open_stops(self, account_id: str, symbol: str | None = None) -> list[Order]:
        """Stop orders still waiting for their trigger, oldest first."""
        return [
            o
            for o in sorted(self.stops.values(), key=lambda o: o.arrival)
            if o.account_id == account_id and symbol in (None, o.symbol)
        ]

    def user_trades(
        self,
        account_id: str,
        *,
        order_id: str | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> list[TradeRecord]:
        """The account's trades, newest first (``get_user_trades``, qfex.md §6 #5): those of one
        order, and from second ``start`` to second ``end`` (Unix seconds, both inclusive)."""
        return [
            t
            for t in reversed(self.trade_log.get(account_id, ()))
            if order_id in (None, t.order_id)
            and (start is None or t.ts >= start)
            and (end is None or t.ts < end + 1)
        ]

    # ----------------------------------------------------------------- modify and close

    def modify_order(self, account_id: str, params: Mapping[str, Any]) -> list[Event]:
        """Change a resting order's price, quantity, take_profit or stop_loss (qfex.md §2.4).

        Side and type must match the order (else ``CANNOT_MODIFY_NO_SUCH_ORDER``, as for an
        unknown id); a partly filled order → ``CANNOT_MODIFY_PARTIAL_FILL``. New values are
        checked as ``add_order`` checks them: a reject answers that status and leaves the order
        as it was. ``MODIFIED`` otherwise; a new price or a larger quantity loses time priority,
        a price that now crosses trades as a taker, an ALO that would cross is ``REJECTED`` and
        removed [I].

        Raises:
            CommandError: a required parameter is missing or of the wrong type.
        """
        symbol, order_id, side, order_type = _modify_target(params)
        order = self.orders.get(order_id)
        if order is None or (order.account_id, order.symbol, order.side, order.order_type) != (
            account_id,
            symbol,
            side,
            order_type,
        ):
            missing = dict(order_id=order_id, side=side, order_type=order_type)
            return [self._missing(account_id, symbol, "CANNOT_MODIFY_NO_SUCH_ORDER", **missing)]
        if order.remaining < order.quantity:
            return [self._answer(order, "CANNOT_MODIFY_PARTIAL_FILL")]
        candidate = _modified(order, params, self.clock())
        market = self.markets[symbol]
        self._unrest(order)  # its own margin and place in the book do not count against it
        reject = self._validate(candidate) or self._attached_reject(candidate)
        if reject is not None:
            self._rest(market, order)
            return [self._answer(candidate, reject)]
        requeue = candidate.price != order.price or candidate.quantity > order.quantity
        for name in ("price", "quantity", "remaining", "take_profit", "stop_loss", "update_time"):
            setattr(order, name, getattr(candidate, name))
        if requeue:
            self._arrival += 1
            order.arrival = self._arrival
        if order.order_type == "ALO" and self._best_opposite(market, order) is not None:
            order.remaining = ZERO
            return [self._order_event(order, "REJECTED")]
        events: list[Event] = [self._order_event(order, "MODIFIED")]
        return [*events, *self._match(market, order), *self._trigger_stops(symbol)]

    def close_position(self, account_id: str, params: Mapping[str, Any]) -> list[Event]:
        """Close the account's whole position in a symbol (qfex.md §6 #24): a reduce-only LIMIT
        IOC on the other side priced ``CLOSE_SLIPPAGE`` through the mark, rounded to the tick
        away from it. ``ACK`` then fills; flat → one ``REJECTED`` of quantity 0. Resting orders
        stay [I].

        Raises:
            CommandError: ``symbol`` missing or not a string, a bad ``client_order_id``.
        """
        symbol = params.get("symbol")
        if symbol is None:
            raise CommandError("InvalidParameter", "missing parameter symbol")
        if not isinstance(symbol, str):
            raise CommandError("InvalidJSONFormat", "symbol must be a string")
        client_order_id = _client_order_id(params.get("client_order_id") or "")
        market = self.markets.get(symbol)
        size = self._position_size(account_id, symbol) if market else ZERO
        side = "SELL" if size > 0 else "BUY"
        price, quantity = ZERO, ZERO
        if market is not None and size:
            price = self._close_price(market, side)
            quantity = min(abs(size), market.spec.max_quantity)
        order = self._make_order(
            account_id,
            symbol=symbol,
            side=side,
            order_type="LIMIT",
            tif="IOC",
            price=price,
            quantity=quantity,
            client_order_id=client_order_id,
            take_profit=ZERO,
            stop_loss=ZERO,
            reduce_only=True,
        )
        if market is None:
            order.remaining = ZERO
            return [self._order_event(order, "BAD_SYMBOL")]
        reject = self._validate(order) if size else "REJECTED"
        if reject is not None:
            order.remaining = ZERO
            return [self._order_event(order, reject)]
        events: list[Event] = [self._order_event(order, "ACK")]
        return [*events, *self._match(market, order), *self._trigger_stops(symbol)]

    def _close_price(self, market: Market, side: str) -> Decimal:
        spec = market.spec
        mark = self.mark_price(spec.symbol)
        if side == "SELL":
            price = round_step(mark * (1 - CLOSE_SLIPPAGE), spec.tick_size, ROUND_FLOOR)
        else:
            price = round_step(mark * (1 + CLOSE_SLIPPAGE), spec.tick_size, ROUND_CEILING)
        return min(max(price, spec.min_price), spec.max_price)

    def _position_size(self, account_id: str, symbol: str) -> Decimal:
        position = self.accounts[account_id].positions.get(symbol)
        return position.size if position else ZERO

    # ----------------------------------------------------------------- stop orders

    def cancel_stop_order(self, account_id: str, params: Mapping[str, Any]) -> list[Event]:
        """Cancel a waiting stop: ``CANCELLED``, or ``NO_SUCH_ORDER`` (qfex.md §6 #6).

        Raises:
            CommandError: ``stop_order_id`` missing or not a string.
        """
        stop_id = params.get("stop_order_id")
        if stop_id is None or stop_id == "":
            raise CommandError("InvalidParameter", "missing parameter stop_order_id")
        if not isinstance(stop_id, str):
            raise CommandError("InvalidJSONFormat", "stop_order_id must be a string")
        stop = self.stops.get(stop_id)
        symbol = params.get("symbol")
        if stop is None or stop.account_id != account_id or symbol not in (None, stop.symbol):
            where = symbol if isinstance(symbol, str) else ""
            return [self._missing(account_id, where, "NO_SUCH_ORDER", order_id=stop_id)]
        return [self._cancel(stop)]

    def modify_stop_order(self, account_id: str, params: Mapping[str, Any]) -> list[Event]:
        """New trigger price and quantity for a waiting stop: ``MODIFIED`` (+ its
        ``stop_order_response``), unknown → ``CANNOT_MODIFY_NO_SUCH_ORDER``, a bad value → that
        reject status with the stop unchanged.

        Raises:
            CommandError: a required parameter is missing or of the wrong type.
        """
        for name in ("stop_order_id", "symbol", "price", "quantity"):
            if params.get(name) is None:
                raise CommandError("InvalidParameter", f"missing parameter {name}")
        stop_id, symbol = params["stop_order_id"], params["symbol"]
        if not isinstance(stop_id, str) or not isinstance(symbol, str):
            raise CommandError("InvalidJSONFormat", "stop_order_id and symbol must be strings")
        price = _decimal(params["price"], "price")
        quantity = _decimal(params["quantity"], "quantity")
        stop = self.stops.get(stop_id)
        if stop is None or stop.account_id != account_id or stop.symbol != symbol:
            return [
                self._missing(account_id, symbol, "CANNOT_MODIFY_NO_SUCH_ORDER", order_id=stop_id)
            ]
        candidate = replace(
            stop, price=price, quantity=quantity, remaining=quantity, update_time=self.clock()
        )
        reject = self._stop_reject(candidate)
        if reject is not None:
            return [self._answer(candidate, reject)]
        stop.price, stop.quantity, stop.remaining = price, quantity, quantity
        stop.update_time = candidate.update_time
        return [*self._stop_events(stop, "MODIFIED"), *self._trigger_stops(symbol)]

    def _add_stop(self, order: Order) -> list[Event]:
        """Accept a TAKE_PROFIT / STOP_LOSS / STOP_MARKET (``price`` = trigger): ``ACK``, then it
        waits off the book; or one reject ``order_response``."""
        reject = self._stop_reject(order)
        if reject is None and self.economics.open_orders(order.account_id) >= (
            self.config.max_open_orders
        ):
            reject = "REJECTED_TOO_MANY_OPEN_ORDERS"  # waiting stops count as open orders
        if reject is not None:
            order.remaining = ZERO
            return [self._order_event(order, reject)]
        self.stops[order.order_id] = order
        return [*self._stop_events(order, "ACK"), *self._trigger_stops(order.symbol)]

    def _stop_reject(self, order: Order) -> str | None:
        """A stop's trigger on the tick grid inside min/max price, its quantity on the lot grid
        (no min/max [D]); a TP/SL must close at most the current position [D]."""
        market = self.markets.get(order.symbol)
        if market is None:
            return "BAD_SYMBOL"
        spec = market.spec
        reject = _grid_reject(order.price, spec.tick_size, spec.min_price, spec.max_price, "PRICE")
        if reject is None and (order.quantity <= 0 or order.quantity % spec.lot_size):
            reject = "INVALID_TICK_SIZE_PRECISION_QUANTITY"
        if reject is None and order.order_type != "STOP_MARKET":
            size = self._position_size(order.account_id, order.symbol)
            closes = size < 0 if order.side == "BUY" else size > 0
            if not closes or order.quantity > abs(size):
                reject = "REJECTED"
        return reject

    def _stop_events(self, stop: Order, status: str) -> list[Event]:
        """A stop's ``order_response`` and, for TP/SL, its ``stop_order_response`` (the
        ``stop_orders`` channel's enum has no STOP_MARKET, Q29)."""
        events: list[Event] = [self._order_event(stop, status)]
        if stop.order_type != "STOP_MARKET":
            frame = {"stop_order_response": payloads.stop_order_response(stop)}
            events.append(self.emit(stop.account_id, "stop_orders", frame))
        return events

    def _trigger_stops(self, symbol: str) -> list[Event]:
        """Fire the symbol's stops the mark price has reached (qfex.md §6 #23), oldest first;
        their fills move the mark, so the check repeats until none is due."""
        events: list[Event] = []
        while self.stops:
            mark = self.mark_price(symbol)
            due = [s for s in self.stops.values() if s.symbol == symbol and _stop_due(s, mark)]
            if not due:
                break
            events.extend(self._fire_stop(min(due, key=lambda s: s.arrival)))
        return events

    def _fire_stop(self, stop: Order) -> list[Event]:
        """A due stop becomes a MARKET IOC with the same id and type. A reduce-only one is
        clipped to the position, and ``CANCELLED`` when nothing is left to close."""
        del self.stops[stop.order_id]
        stop.triggered = True
        stop.update_time = self.clock()
        market = self.markets[stop.symbol]
        if stop.reduce_only:
            size = self._position_size(stop.account_id, stop.symbol)
            closes = size < 0 if stop.side == "BUY" else size > 0
            if not closes:
                stop.remaining = ZERO
                return [self._order_event(stop, "CANCELLED")]
            stop.quantity = stop.remaining = min(stop.remaining, abs(size))
        reject = self._risk_reject(stop, market.spec)
        if reject is not None:
            stop.remaining = ZERO
            return [self._order_event(stop, reject)]
        return self._match(market, stop)

    def _attached_reject(self, order: Order) -> str | None:
        """``take_profit`` / ``stop_loss`` of an order must lie on the profit / loss side of its
        price (the mark for MARKET) and on the tick grid [I]; 0 = unused."""
        tp, sl = order.take_profit, order.stop_loss
        if not (tp or sl):
            return None
        tick = self.markets[order.symbol].spec.tick_size
        reference = self.mark_price(order.symbol) if order.market_like else order.price
        buy = order.side == "BUY"
        if tp and (tp < 0 or tp % tick or (tp <= reference if buy else tp >= reference)):
            return "INVALID_TAKEPROFIT_PRICE"
        if sl and (sl < 0 or sl % tick or (sl >= reference if buy else sl <= reference)):
            return "INVALID_STOPLOSS_PRICE"
        return None

    def _stage_attached(self, parent: Order, qty: Decimal) -> list[Event]:
        """After a fill of an order with ``take_profit`` / ``stop_loss``: its reduce-only stops,
        staged at the first fill and grown by each further one (``client_order_id`` = the
        parent's) [I]."""
        events: list[Event] = []
        for kind, trigger in (("TAKE_PROFIT", parent.take_profit), ("STOP_LOSS", parent.stop_loss)):
            if not trigger:
                continue
            child = next(
                (
                    s
                    for s in self.stops.values()
                    if s.parent_id == parent.order_id and s.order_type == kind
                ),
                None,
            )
            if child is not None:
                child.quantity += qty
                child.remaining += qty
                child.update_time = self.clock()
                events.extend(self._stop_events(child, "MODIFIED"))
                continue
            child = self._make_order(
                parent.account_id,
                symbol=parent.symbol,
                side=_other(parent.side),
                order_type=kind,
                tif="IOC",
                price=trigger,
                quantity=qty,
                client_order_id=parent.client_order_id,
                take_profit=ZERO,
                stop_loss=ZERO,
                reduce_only=True,
                parent_id=parent.order_id,
            )
            self.stops[child.order_id] = child
            events.extend(self._stop_events(child, "ACK"))
        return events

    def _answer(self, order: Order, status: str) -> PrivateEvent:
        """An ``order_response`` about ``order`` in ``status`` that leaves its state alone (a
        refused modify)."""
        frame = {"order_response": payloads.order_response(order, status)}
        return self.emit(order.account_id, "order_responses", frame)

    def _missing(self, account_id: str, symbol: str, status: str, **fields: Any) -> PrivateEvent:
        """The ``order_response`` about an order that is not there (``missing_order_response``)."""
        fields.setdefault("client_order_id", "")
        reply = payloads.missing_order_response(
            account_id, symbol, self.clock(), status=status, **fields
        )
        return self.emit(account_id, "order_responses", {"order_response": reply})

    def _order_event(self, order: Order, status: str, trade_id: str | None = None) -> PrivateEvent:
        order.status = status
        return self.emit(
            order.account_id,
            "order_responses",
            {"order_response": payloads.order_response(order, status, trade_id)},
        )

    def emit(self, account_id: str, channel: str, frame: dict[str, Any]) -> PrivateEvent:
        account = self.accounts[account_id]
        account.event_seq += 1
        event = PrivateEvent(account_id, channel, frame, account.event_seq)
        account.events.append(event)
        return event


def _other(side: str) -> str:
    return "SELL" if side == "BUY" else "BUY"


def _stop_due(stop: Order, mark: Decimal) -> bool:
    """Whether the mark reached a stop's trigger: a SELL take-profit, a BUY stop-loss and a BUY
    STOP_MARKET fire at mark >= trigger, their mirrors at mark <= trigger (§6 #23, Q2)."""
    rises = (stop.order_type == "TAKE_PROFIT") == (stop.side == "SELL")
    return mark >= stop.price if rises else mark <= stop.price


def _modify_target(params: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """``modify_order``'s symbol, order_id, side and order_type, checked.

    Raises:
        CommandError: one is missing, or of the wrong type or enum.
    """
    for name in ("symbol", "order_id", "side", "order_type"):
        if params.get(name) is None:
            raise CommandError("InvalidParameter", f"missing parameter {name}")
    symbol, order_id = params["symbol"], params["order_id"]
    if not isinstance(symbol, str) or not isinstance(order_id, str):
        raise CommandError("InvalidJSONFormat", "symbol and order_id must be strings")
    if params["side"] not in SIDES:
        raise CommandError("InvalidJSONFormat", f"side must be one of {SIDES}")
    if params["order_type"] not in ORDER_TYPES:
        raise CommandError("InvalidJSONFormat", f"order_type must be one of {ORDER_TYPES}")
    return symbol, order_id, params["side"], params["order_type"]


def _modified(order: Order, params: Mapping[str, Any], now: float) -> Order:
    """A copy of ``order`` with a ``modify_order``'s values: an absent (or 0) price or quantity
    keeps the old one; an absent take_profit / stop_loss keeps it, 0 clears it."""
    price = params.get("price")
    quantity = params.get("quantity")
    take_profit = params.get("take_profit")
    stop_loss = params.get("stop_loss")
    new_quantity = _decimal(quantity, "quantity") if quantity else order.quantity
    return replace(
        order,
        price=_decimal(price, "price") if price else order.price,
        quantity=new_quantity,
        remaining=new_quantity,
        take_profit=order.take_profit
        if take_profit is None
        else _decimal(take_profit, "take_profit"),
        stop_loss=order.stop_loss if stop_loss is None else _decimal(stop_loss, "stop_loss"),
        update_time=now,
    )


def _crosses_price(order: Order, price: Decimal) -> bool:
    return price <= order.price if order.side == "BUY" else price >= order.price


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise CommandError("InvalidJSONFormat", f"{name} must be a number")
    number = Decimal(value)
    if not number.is_finite():
        raise CommandError("InvalidJSONFormat", f"{name} must be a finite number")
    return number


def _client_order_id(value: Any) -> str:
    if not isinstance(value, str):
        raise CommandError("InvalidJSONFormat", "client_order_id must be a string")
    if len(value) > 64:
        raise CommandError("InvalidParameter", "client_order_id longer than 64 characters")
    return value


def _reduce_only(value: Any) -> bool:
    if value in (0, 1):
        value = bool(value)
    if not isinstance(value, bool):
        raise CommandError("InvalidJSONFormat", "reduce_only must be a boolean")
    return value


def _type_reject(order: Order) -> str | None:
    # every ORDER_TYPES value is a key (stops never get here: they are checked by _stop_reject)
    if order.tif not in ALLOWED_TIF[order.order_type]:
        return "INVALID_TIME_IN_FORCE"
    return None


def _grid_reject(
    value: Decimal, step: Decimal, low: Decimal, high: Decimal, name: str
) -> str | None:
    """A price or quantity off its grid or outside its bounds: ``name`` is PRICE or QUANTITY."""
    if value <= 0 or value % step:
        return f"INVALID_TICK_SIZE_PRECISION_{name}"
    if value < low:
        return f"{name}_LESS_THAN_MIN_{name}"
    if value > high:
        return f"{name}_GREATER_THAN_MAX_{name}"
    return None
