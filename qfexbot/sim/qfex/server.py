"""QfexSimulator: the engine plus its three servers (trade WS, market-data WS, REST) and clocks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

import trio
from hypercorn.trio import serve as hypercorn_serve
from trio_websocket import serve_websocket

from qfexbot.core.asgi import hypercorn_config
from qfexbot.core.logs import get_logger, log_event
from qfexbot.sim.common.ratelimit import RateLimiter
from qfexbot.sim.qfex import payloads
from qfexbot.sim.qfex.auth import Authenticator
from qfexbot.sim.qfex.config import SimConfig
from qfexbot.sim.qfex.engine import Engine
from qfexbot.sim.qfex.faults import Faults
from qfexbot.sim.qfex.mds_ws import MdsGateway
from qfexbot.sim.qfex.model import Event, LedgerEntry, PrivateEvent, PublicTrade
from qfexbot.sim.qfex.rest import RestApp
from qfexbot.sim.qfex.trade_ws import TradeGateway

__all__ = ["QfexSimulator", "SimUrls"]

log = get_logger(__name__)

WS_MESSAGE_QUEUE = 64
WS_DISCONNECT_TIMEOUT = 2.0


@dataclass(frozen=True)
class SimUrls:
    """Where a running simulator listens."""

    trade_url: str
    mds_url: str
    rest_url: str

    def as_dict(self) -> dict[str, str]:
        return {"trade_url": self.trade_url, "mds_url": self.mds_url, "rest_url": self.rest_url}


class QfexSimulator:
    """A local QFEX: start with ``urls = await nursery.start(sim.serve, "127.0.0.1")``.

    Cancelling the nursery stops every server and background task.
    """

    def __init__(self, config: SimConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.engine = Engine(config, clock)
        self.auth = Authenticator(config.users, config.nonce_window, config.max_skew, clock)
        self.limiter = RateLimiter(config.rate_limit_budget, config.rate_limit_window, clock)
        self.trade = TradeGateway(
            self.engine,
            self.auth,
            self.limiter,
            self.deliver,
            auth_deadline=config.auth_deadline,
            ping_interval=config.ping_interval,
            pong_timeout=config.pong_timeout,
        )
        self.mds = MdsGateway(
            self.engine, ping_interval=config.ping_interval, pong_timeout=config.pong_timeout
        )
        self.faults = Faults(self.engine, self.auth, self.trade, self.mds)
        self.rest = RestApp(
            self.engine,
            self.auth,
            self.faults,
            equity_interval=config.equity_interval,
            state=self.state_snapshot,
            set_price=self.set_price,
        )
        self.urls: SimUrls | None = None

    # ------------------------------------------------------------ contract API

    @property
    def ledger(self) -> list[LedgerEntry]:
        """Every applied transfer, oldest first."""
        return list(self.engine.ledger)

    def available_balance(self, account_id: str) -> Decimal:
        return self.engine.available_balance(account_id)

    def issue_jwt(self, user_id: str) -> str:
        """An ES256 token (``sub`` = user id) this simulator accepts."""
        return self.auth.issue_jwt(user_id)

    def set_price(self, symbol: str, price: Decimal) -> None:
        """Move a symbol's mid now (tests use it to make resting orders cross)."""
        self.deliver(self.engine.set_price(symbol, price))

    def event_seq(self, account_id: str) -> int:
        """Number of the account's latest private event (order/fill responses)."""
        return self.engine.accounts[account_id].event_seq

    def connection_count(self, account_id: str | None = None) -> int:
        """Open trade connections (of one account)."""
        return sum(1 for c in self.trade.connections if account_id in (None, c.account_id))

    def deliver(self, events: Iterable[Event]) -> None:
        """Route engine events to the trade and market-data subscribers."""
        for event in events:
            if isinstance(event, PrivateEvent):
                self.trade.publish(event)
            elif isinstance(event, PublicTrade):
                self.mds.publish_trade(event)

    def state_snapshot(self) -> dict[str, Any]:
        """GET /_sim/state: accounts, balances, positions, open orders, connections, faults."""
        engine = self.engine
        accounts = {}
        for account_id, account in engine.accounts.items():
            accounts[account_id] = {
                "user_id": account.user_id,
                "balance": payloads.balance_response(engine.balance(account_id)),
                "equity": float(engine.equity(account_id)),
                "positions": [payloads.position_response(p) for p in engine.positions(account_id)],
                "open_orders": [
                    payloads.order_response(o, o.status) for o in engine.open_orders(account_id)
                ],
                "event_seq": account.event_seq,
                "connections": self.connection_count(account_id),
            }
        return {
            "accounts": accounts,
            "markets": {
                s: {"mid": str(m.mid), "mark": str(engine.mark_price(s))}
                for s, m in engine.markets.items()
            },
            "connections": {"trade": len(self.trade.connections), "mds": len(self.mds.connections)},
            "faults": self.faults.snapshot(),
            "ledger_size": len(engine.ledger),
        }

    # ------------------------------------------------------------ serving

    async def serve(
        self,
        host: str = "127.0.0.1",
        *,
        task_status: trio.TaskStatus[SimUrls] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run all servers until cancelled; ``task_status.started(SimUrls)`` once all listen."""
        config = self.config
        async with trio.open_nursery() as nursery:
            ws_options: dict[str, Any] = {
                "ssl_context": None,
                "message_queue_size": WS_MESSAGE_QUEUE,
                "disconnect_timeout": WS_DISCONNECT_TIMEOUT,
            }
            trade_server = await nursery.start(
                partial(serve_websocket, self.trade.handle, host, config.trade_port, **ws_options)
            )
            mds_server = await nursery.start(
                partial(serve_websocket, self.mds.handle, host, config.mds_port, **ws_options)
            )
            rest_binds = await nursery.start(
                partial(
                    hypercorn_serve,
                    self.rest,
                    hypercorn_config(host, config.rest_port, logger="qfexbot.sim.hypercorn"),
                )
            )
            nursery.start_soon(self._every, config.pulse_interval, self._pulse)
            nursery.start_soon(self._every, config.mds_interval, self.engine.market_history.sample)
            nursery.start_soon(self._every, config.mds_interval, self.mds.pulse)
            nursery.start_soon(self._every, config.pulse_interval, self.mds.pulse_stats)
            nursery.start_soon(self._every, config.price_interval, self._step_prices)
            nursery.start_soon(self._every, self.engine.twaps.tick, self._step_twaps)
            self.engine.sample_equity()
            nursery.start_soon(self._every, config.equity_interval, self.engine.sample_equity)
            history = self.engine.account_history
            history.sample()
            nursery.start_soon(self._every, config.equity_interval, history.sample)
            authority = _authority(host)
            self.urls = SimUrls(
                trade_url=f"ws://{authority}:{trade_server.port}/",
                mds_url=f"ws://{authority}:{mds_server.port}/",
                rest_url=rest_binds[0],
            )
            log_event(log, logging.INFO, "simulator listening", **self.urls.as_dict())
            task_status.started(self.urls)

    async def _every(self, interval: float, action: Callable[[], None]) -> None:
        while True:
            await trio.sleep(interval)
            action()

    def _pulse(self) -> None:
        if not self.faults.pulses_stopped:
            self.trade.pulse()

    def _step_prices(self) -> None:
        self.deliver(self.engine.step_prices())

    def _step_twaps(self) -> None:
        self.deliver(self.engine.twaps.step(self.engine.clock()))


def _authority(host: str) -> str:
    return f"[{host}]" if ":" in host else host
