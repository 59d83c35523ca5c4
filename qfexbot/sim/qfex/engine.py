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
from decimal import ROUND_FLOOR, Decimal
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

__all__ = ["BOOK_DEPTH", "ORDER_LOG_MAX", "TRADE_LOG_MAX", "Engine"]

BOOK_DEPTH = 20
ORDER_LOG_MAX = 100_000
"""Orders (open and finished, all accounts) ``get_order`` can still find; the oldest go first."""
TRADE_LOG_MAX = 100_000
"""Trades kept per account for ``get_user_trades`` and the REST history; the oldest go first."""


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
        self.order_log: OrderedDict[str, Order] = OrderedDict()
        """Every order placed (also rejected and finished ones), oldest first, at most
        ``ORDER_LOG_MAX``: the history ``get_order`` answers from (qfex.md §6 #7)."""
        self.trade_log: dict[str, deque[TradeRecord]] = {}
        """Account id -> its trades (both sides of every execution), oldest first."""
        self.ledger: list[LedgerEntry] = []
        self.economics = Economics(self)
        self.account_history = AccountHistory(self)
        self.twaps = TwapBook(self)
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
                    max_notional=market.spec.max_position_notional,
                    leverage=account.leverage.get(symbol, market.spec.leverage),
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
        if leverage != int(leverage) or not 1 <= leverage <= market.spec.leverage:
            raise CommandError(
                "InvalidParameter", f"leverage must be an integer 1..{market.spec.leverage}"
            )
        account = self.accounts[account_id]
        position = account.positions.get(symbol)
        has_orders = any(
            o.account_id == account_id and o.symbol == symbol for o in self.orders.values()
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
        """Move a symbol's mid (rounded to tick, kept inside min/max) and refresh liquidity.

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
        return self._cross_resting(market)

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
        reject = self._validate(order)
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
        return events + self._match(market, order)

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
        self._arrival += 1
        order = Order(
            order_id=str(uuid.uuid4()),
            account_id=account_id,
            symbol=symbol,
            side=side,
            order_type=order_type,
            tif=tif,
            price=ZERO if order_type == "MARKET" else price,
            quantity=quantity,
            remaining=quantity,
            client_order_id=client_order_id,
            take_profit=take_profit,
            stop_loss=stop_loss,
            reduce_only=reduce_only,
            arrival=self._arrival,
            update_time=self.clock(),
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
        if order.order_type != "MARKET":
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
        reference = order.price or mark
        if abs(size + signed) * reference > spec.max_position_notional:
            return "REJECTED_WOULD_BREACH_MAX_NOTIONAL"
        increase = max(abs(size + signed) - abs(size), ZERO)
        required = increase * reference * self.im_fraction(account, order.symbol)
        if required > self.available_balance(order.account_id):
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
        if order.order_type != "MARKET" and not _crosses_price(order, best[0]):
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
            if order.order_type != "MARKET" and not _crosses_price(order, price):
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
            events.append(self._emit(order.account_id, "fills", {"fill_response": fill}))
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
            order = self.orders.get(ident)
            matches = (
                [order]
                if order and order.account_id == account_id and (symbol in (None, order.symbol))
                else []
            )
        elif id_type == "client_order_id":
            matches = [
                o
                for o in self.orders.values()
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
            return [self._emit(account_id, "order_responses", {"order_response": missing})]
        return [self._cancel(order) for order in sorted(matches, key=lambda o: o.arrival)]

    def cancel_all(self, account_id: str) -> list[Event]:
        """Cancel every open order of the account (cancel_all_orders / cancel-on-disconnect)."""
        mine = sorted(
            (o for o in self.orders.values() if o.account_id == account_id), key=lambda o: o.arrival
        )
        return [self._cancel(order) for order in mine]

    def _cancel(self, order: Order) -> PrivateEvent:
        self._unrest(order)
        order.update_time = self.clock()
        return self._order_event(order, "CANCELLED")

    def find_order(self, account_id: str, order_id: str, symbol: str | None = None) -> Order | None:
        """The account's order with this id, open or finished (``get_order``), or None.

        A ``symbol`` other than the order's finds nothing, as for ``cancel_order``.
        """
        order = self.orders.get(order_id) or self.order_log.get(order_id)
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

    def _order_event(self, order: Order, status: str, trade_id: str | None = None) -> PrivateEvent:
        order.status = status
        return self._emit(
            order.account_id,
            "order_responses",
            {"order_response": payloads.order_response(order, status, trade_id)},
        )

    def _emit(self, account_id: str, channel: str, frame: dict[str, Any]) -> PrivateEvent:
        account = self.accounts[account_id]
        account.event_seq += 1
        event = PrivateEvent(account_id, channel, frame, account.event_seq)
        account.events.append(event)
        return event


def _other(side: str) -> str:
    return "SELL" if side == "BUY" else "BUY"


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
    if order.order_type not in ALLOWED_TIF:
        return "INVALID_ORDER_TYPE"
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
