"""Fault injection: the knobs tests (and /_sim/faults/*) turn to make the venue misbehave."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from qfexbot.sim.qfex.auth import Authenticator
from qfexbot.sim.qfex.engine import Engine
from qfexbot.sim.qfex.mds_ws import MdsGateway
from qfexbot.sim.qfex.model import TransferError
from qfexbot.sim.qfex.trade_ws import TradeGateway

__all__ = ["MALFORMED_FRAME", "Faults", "RestFailure"]

MALFORMED_FRAME = '{"balance_response": {"id": '
DROP_MODES = ("timeout", "reset")


@dataclass(frozen=True)
class RestFailure:
    """Fail one REST call with ``status`` (``path`` None = any path)."""

    status: int
    path: str | None


class Faults:
    """Every method is synchronous and takes effect at once (WebSocket closes are queued).

    Args:
        engine: for transfers made by another client.
        auth: whose next authentications are refused.
        trade, mds: the gateways whose connections are dropped or sent garbage.
    """

    def __init__(
        self, engine: Engine, auth: Authenticator, trade: TradeGateway, mds: MdsGateway
    ) -> None:
        self._engine = engine
        self._auth = auth
        self._trade = trade
        self._mds = mds
        self._rest_failures: deque[RestFailure] = deque()
        self._rest_delays: deque[float] = deque()
        self._transfer_drops: deque[str] = deque()
        self._transfer_holds: deque[float] = deque()
        self.pulses_stopped = False

    def drop_connections(self, account_id: str | None = None) -> int:
        """Close the trade connections of ``account_id`` (None: every trade and market-data
        connection); returns how many were closed."""
        dropped = self._trade.drop(account_id)
        if account_id is None:
            dropped += self._mds.drop()
        return dropped

    def reject_next_auths(self, n: int = 1) -> None:
        """Refuse the next ``n`` authentications (WS auth and REST), whatever the credentials."""
        self._auth.reject_next = _count(n)

    def fail_next_rest(self, n: int = 1, status: int = 500, path: str | None = None) -> None:
        """Answer the next ``n`` REST calls (to ``path``) with ``status``, applying nothing."""
        if not 400 <= int(status) <= 599:
            raise ValueError(f"status must be an HTTP error status, got {status!r}")
        self._rest_failures.extend(RestFailure(int(status), path) for _ in range(_count(n)))

    def delay_rest(self, seconds: float, n: int = 1) -> None:
        """Hold the next ``n`` REST calls ``seconds`` before handling them."""
        if float(seconds) < 0:
            raise ValueError("seconds must be >= 0")
        self._rest_delays.extend(float(seconds) for _ in range(_count(n)))

    def drop_transfer_response(self, n: int = 1, mode: str = "timeout") -> None:
        """Apply the next ``n`` successful transfers but lose the response.

        ``timeout``: no response is ever sent (the client times out); ``reset``: the TCP
        connection is torn down before any response byte.
        """
        if mode not in DROP_MODES:
            raise ValueError(f"mode must be one of {DROP_MODES}, got {mode!r}")
        self._transfer_drops.extend(mode for _ in range(_count(n)))

    def hold_transfers(self, seconds: float, n: int = 1) -> None:
        """Hold the next ``n`` POST /user/transfer ``seconds`` (trio time), then APPLY them.

        The client has normally timed out by then: a late landing. The validation (ownership,
        amount, balance) runs when the hold ends, as the venue would apply it then; a response
        is still attempted afterwards and is lost if the client has gone.
        """
        if float(seconds) < 0:
            raise ValueError("seconds must be >= 0")
        self._transfer_holds.extend(float(seconds) for _ in range(_count(n)))

    def outside_transfer(self, src: str, dst: str, amount: Any) -> dict[str, Any]:
        """Move ``amount`` between two accounts of one user as another client would (the web
        app, a second qfexbot): balances and deposits change and the ledger row is marked
        ``outside``. Returns that ledger row; raises ValueError if the venue would refuse it."""
        engine = self._engine
        owner = next((u for u, ids in engine.user_accounts.items() if src in ids), None)
        if owner is None:
            raise ValueError(f"no user owns account {src!r}")
        try:
            entry = engine.transfer(owner, src, dst, Decimal(str(amount)), outside=True)
        except TransferError as exc:
            raise ValueError(f"outside transfer refused: {exc.detail}") from None
        return {
            "id": entry.id,
            "src": entry.src,
            "dst": entry.dst,
            "amount": str(entry.amount),
            "outside": True,
        }

    def send_malformed_frame(self, account_id: str | None = None) -> int:
        """Send a truncated JSON frame on every trade connection (of one account)."""
        return self._trade.send_raw(MALFORMED_FRAME, account_id)

    def stop_pulses(self) -> None:
        """Stop balance/position pulses (the feed looks stale; pings continue)."""
        self.pulses_stopped = True

    def resume_pulses(self) -> None:
        self.pulses_stopped = False

    # ------------------------------------------------------------ consumed by the REST server

    def take_rest_failure(self, path: str) -> int | None:
        for failure in self._rest_failures:
            if failure.path in (None, path):
                self._rest_failures.remove(failure)
                return failure.status
        return None

    def take_rest_delay(self) -> float:
        return self._rest_delays.popleft() if self._rest_delays else 0.0

    def take_transfer_hold(self) -> float | None:
        return self._transfer_holds.popleft() if self._transfer_holds else None

    def take_transfer_drop(self) -> str | None:
        return self._transfer_drops.popleft() if self._transfer_drops else None

    def snapshot(self) -> dict[str, Any]:
        """Pending faults, for GET /_sim/state."""
        return {
            "reject_next_auths": self._auth.reject_next,
            "rest_failures": [asdict(f) for f in self._rest_failures],
            "rest_delays": list(self._rest_delays),
            "transfer_drops": list(self._transfer_drops),
            "transfer_holds": list(self._transfer_holds),
            "pulses_stopped": self.pulses_stopped,
        }


def _count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    return n
