"""QFEX REST client: typed calls, problem+json errors, retries for idempotent GETs only.

One method per path of the OpenAPI (plus ``/symbols/metrics``, which the vendor CLI calls).
Bodies ``ctx`` uses become neutral records (:mod:`qfexbot.core.records`); the rest become a
:class:`~qfexbot.venues.qfex.records.Series`; the CSV exports are returned as text. Time
parameters take a ``datetime`` (naive = UTC), Unix seconds, or an RFC 3339 string.

Error handling:
  * ``application/problem+json`` (and any other error status) → :class:`QfexApiError`.
  * GET: 429 (honouring ``Retry-After``), 5xx and transport errors are retried with capped
    exponential backoff and full jitter, a bounded number of times.
  * POST is never retried. Connection never established (nothing sent) →
    :class:`QfexNotSentError`; sent but the outcome is unknown (timeout or reset after sending,
    a 5xx, or any 3xx: redirects are not followed, and a 303 is the usual answer after a POST
    was processed) → :class:`QfexAmbiguousError`, so the journal can record ``unknown``.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http import HTTPStatus
from typing import Any, Self, TypeVar

import httpx
import trio

from qfexbot.core.backoff import backoff_delay
from qfexbot.core.logs import get_logger, log_event
from qfexbot.core.records import (
    Candle,
    FeeRate,
    FundingRatePoint,
    HistoricOrder,
    OpenInterestPoint,
    TwapInfo,
    UserTrade,
)
from qfexbot.core.venue import ParseError
from qfexbot.errors import VenueError
from qfexbot.events import ResyncEvent
from qfexbot.venues.qfex import records
from qfexbot.venues.qfex.auth import REQUESTED_ACCOUNT_HEADER
from qfexbot.venues.qfex.parse import _dec, encode_json, parse_positions_snapshot
from qfexbot.venues.qfex.records import Series

__all__ = [
    "QfexAmbiguousError",
    "QfexApiError",
    "QfexError",
    "QfexNotSentError",
    "QfexResponseError",
    "QfexRest",
    "QfexUnavailableError",
    "SymbolInfo",
    "TimeLike",
    "iso_time",
]

TimeLike = datetime | float | int | str
"""A time parameter: ``datetime`` (naive = UTC), Unix seconds, or an RFC 3339 string."""

_T = TypeVar("_T")

log = get_logger(__name__)

_BODY_PREVIEW = 200
_USER_AGENT = "qfexbot/0.1 (+https://github.com/qfexbot)"


GETS_IN_FLIGHT = 32
"""REST GETs one client sends at once (measured in docs/performance.md)."""


class QfexError(VenueError):
    """Base of every error from the QFEX REST client (messages never contain secrets)."""


class QfexApiError(QfexError):
    """The venue answered with an error status (problem+json, or a non-JSON error page)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        *,
        method: str = "",
        path: str = "",
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = list(errors or [])
        self.method = method
        self.path = path
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"{self.method} {self.path} -> {self.status} {self.title}".strip()
        if self.detail:
            text += f": {self.detail}"
        for err in self.errors:
            if isinstance(err, dict):
                where = err.get("location") or ""
                text += (
                    f" [{where}: {err.get('message', '')}]"
                    if where
                    else f" [{err.get('message', err)}]"
                )
        return text


class QfexNotSentError(QfexError):
    """The request never reached the venue (connection failed): safe to try again later."""


class QfexAmbiguousError(QfexError):
    """A POST may or may not have been applied: reconcile from venue state before retrying.

    ``status`` is set when the venue answered with a 5xx or a 3xx (``api_error`` then has the
    body).
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status: int | None = None,
        api_error: QfexApiError | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.api_error = api_error
        super().__init__(message)


class QfexUnavailableError(QfexError):
    """A GET failed at the transport level on every attempt."""


class QfexResponseError(QfexError):
    """A success status with a body that is not what the endpoint documents."""


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """One ``/refdata`` symbol with the fields order sizing needs; ``raw`` has the rest."""

    symbol: str
    status: str
    tick_size: Decimal
    lot_size: Decimal
    min_quantity: Decimal
    max_quantity: Decimal
    min_price: Decimal
    max_price: Decimal
    raw: dict[str, Any] = field(repr=False, compare=False)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _preview_body(response: httpx.Response) -> str:
    text = response.text.strip()
    if not text:
        return "empty body"
    kind = response.headers.get("content-type", "unknown content type").split(";")[0]
    snippet = " ".join(text[:_BODY_PREVIEW].split())
    return f"non-JSON body ({kind}): {snippet}{'...' if len(text) > _BODY_PREVIEW else ''}"


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "HTTP error"


def _body_status(value: Any, status: int) -> int:
    """A problem+json ``status`` if it is a plausible HTTP status, else the response's."""
    return value if type(value) is int and 100 <= value <= 599 else status


def iso_time(value: TimeLike) -> str:
    """A time parameter as the RFC 3339 UTC string the API expects (strings pass unchanged)."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, UTC)
    else:
        raise TypeError(f"expected a datetime, Unix seconds or a string, got {value!r}")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _query(**params: Any) -> dict[str, str]:
    """Query parameters without those left ``None``, as text."""
    return {name: str(value) for name, value in params.items() if value is not None}


def _times(**params: TimeLike | None) -> dict[str, str]:
    """Time query parameters (``None`` omitted) as RFC 3339 strings."""
    return {name: iso_time(value) for name, value in params.items() if value is not None}


def api_error_from(response: httpx.Response) -> QfexApiError:
    """The :class:`QfexApiError` for an error response, whatever its body."""
    request = response.request
    method, path = request.method, request.url.path
    status = response.status_code
    title = response.reason_phrase or _status_phrase(status)
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        errors = body.get("errors")
        return QfexApiError(
            _body_status(body.get("status"), status),
            str(body.get("title") or title),
            str(body.get("detail") or body.get("message") or ""),
            errors if isinstance(errors, list) else [],
            method=method,
            path=path,
        )
    if 300 <= status < 400:
        where = response.headers.get("location", "?")
        detail = (
            f"unexpected redirect to {where!r} (not followed; a POST may have been processed "
            f"before it); check rest_url"
        )
        return QfexApiError(status, title, detail, [], method=method, path=path)
    return QfexApiError(status, title, _preview_body(response), [], method=method, path=path)


class QfexRest:
    """Async client for the QFEX REST API (one per venue and ``trio.run``).

    Args:
      base_url: e.g. ``https://api.qfex.com`` or the simulator's ``rest_url``.
      auth: a :class:`~qfexbot.venues.qfex.auth.QfexAuth` (or ``None`` for public calls only).
      timeout: per-request timeout in seconds.
      client: an existing ``httpx.AsyncClient`` to use (not closed by :meth:`aclose`);
        ``auth`` is then passed per request.
      max_retries: extra attempts for GETs; retry_after_max caps a venue's ``Retry-After``.
      user_id: the primary account id (= user id); calls for it omit the requested-account
        header, as the vendor CLI does.

    Account-scoped calls take ``account_id``: it is sent as ``x-qfex-requested-account-id``
    (``None`` or ``user_id`` = the primary account). Transfers and subaccount management act
    at user level and never send it.
    """

    def __init__(
        self,
        base_url: str,
        auth: httpx.Auth | None,
        *,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
        max_retries: int = 3,
        backoff_initial: float = 0.25,
        backoff_max: float = 5.0,
        retry_after_max: float = 30.0,
        venue: str = "qfex",
        user_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.venue = venue
        self.user_id = user_id
        self._base_url = base_url.rstrip("/")
        self._auth = auth
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=timeout,
            headers={"Accept": "application/json", "User-Agent": _USER_AGENT},
        )
        self.max_retries = max_retries
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        # httpcore rescans its whole queue on every pool event, which is quadratic when ~1,000
        # sessions resync at once: keep GETs in flight bounded; POSTs (transfers) bypass this.
        self._get_slots = trio.Semaphore(GETS_IN_FLIGHT)
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        return f"QfexRest(base_url={self._base_url!r}, venue={self.venue!r})"

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------ typed calls

    async def subaccounts(self) -> list[str]:
        """Ids of the user's subaccounts (the primary account is not listed)."""
        body = await self._get_json("/user/subaccounts")
        ids = body.get("account_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            raise QfexResponseError(f"GET /user/subaccounts: unexpected body {body!r:.200}")
        return [str(i) for i in ids]

    async def create_subaccount(self) -> str:
        """Create a subaccount and return its id.

        Never retried (see :class:`QfexAmbiguousError`).
        """
        response = await self._post("/user/subaccounts", "{}")
        try:
            return str(response.json()["account_id"])
        except (ValueError, KeyError, TypeError):
            raise QfexResponseError(
                f"POST /user/subaccounts: unexpected body: {_preview_body(response)}"
            ) from None

    async def transfer(self, src: str, dst: str, amount: Decimal) -> None:
        """Move ``amount`` USD of available balance from ``src`` to ``dst`` (account ids).

        Sent exactly once, never retried. The amount goes out as an exact JSON number.

        Raises:
          QfexApiError: the venue refused it (e.g. 422 insufficient balance, 403 not owned).
          QfexNotSentError: the request never left (connection failed): nothing happened.
          QfexAmbiguousError: it may have been applied (timeout/reset after sending, or 5xx).
        """
        if not isinstance(amount, (Decimal, int)) or isinstance(amount, bool):
            raise TypeError(f"amount must be a Decimal, got {type(amount).__name__}")
        body = encode_json({"amount": Decimal(amount)})
        await self._post(
            "/user/transfer", body, params={"src_account_id": src, "dst_account_id": dst}
        )

    async def positions(self, account_id: str | None = None) -> ResyncEvent:
        """Balance and positions of one account as a :class:`ResyncEvent` snapshot.

        The events are stamped with ``account_id`` (``None`` → ``user_id``).
        """
        body = await self._get_json("/user/positions", account_id=account_id)
        try:
            return parse_positions_snapshot(
                body, self.venue, account_id or self.user_id or "", time.time()
            )
        except ParseError as exc:
            raise QfexResponseError(f"GET /user/positions: {exc.reason}") from None

    async def account_equity(
        self, account_id: str | None = None, duration: str = "1w"
    ) -> list[tuple[str, Decimal]]:
        """Equity history as ``(window_start, value)`` pairs, oldest first."""
        body = await self._get_json(
            "/user/account-equity", account_id=account_id, params={"duration": duration}
        )
        try:
            return [(str(p["window_start"]), _dec(p["value"])) for p in body.get("data") or ()]
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError):
            raise QfexResponseError(
                f"GET /user/account-equity: unexpected body {body!r:.200}"
            ) from None

    async def refdata(self, ticker: str | None = None) -> list[SymbolInfo]:
        """Reference data of every symbol, or of ``ticker`` only (public)."""
        body = await self._get_json("/refdata", public=True, params=_query(ticker=ticker))
        try:
            return [
                SymbolInfo(
                    symbol=s["symbol"],
                    status=str(s.get("status") or ""),
                    tick_size=_dec(s.get("tick_size")),
                    lot_size=_dec(s.get("lot_size")),
                    min_quantity=_dec(s.get("min_quantity")),
                    max_quantity=_dec(s.get("max_quantity")),
                    min_price=_dec(s.get("min_price")),
                    max_price=_dec(s.get("max_price")),
                    raw=s,
                )
                for s in body.get("data") or ()
            ]
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError):
            raise QfexResponseError(f"GET /refdata: unexpected body {body!r:.200}") from None

    # ------------------------------------------------------------ public market history

    async def candles(
        self, symbol: str, resolution: str, start: TimeLike, end: TimeLike
    ) -> list[Candle]:
        """Candles of ``symbol`` at ``resolution`` (e.g. ``1MIN``, ``1HOUR``) between two times."""
        path = f"/candles/{symbol}"
        params = {"resolution": resolution, **_times(fromISO=start, toISO=end)}
        body = await self._get_json(path, params=params, public=True)
        return _parsed(path, records.parse_candles, body)

    async def funding_history(
        self, symbol: str, interval_minutes: int, start: TimeLike, end: TimeLike
    ) -> list[FundingRatePoint]:
        """Funding rate per window of ``interval_minutes`` (forward-filled; ``None`` before the
        first observation)."""
        return await self._windows(
            "/funding", symbol, interval_minutes, start, end, records.parse_funding_history
        )

    async def open_interest_history(
        self, symbol: str, interval_minutes: int, start: TimeLike, end: TimeLike
    ) -> list[OpenInterestPoint]:
        """Open interest per window of ``interval_minutes`` (forward-filled)."""
        return await self._windows(
            "/open-interest",
            symbol,
            interval_minutes,
            start,
            end,
            records.parse_open_interest_history,
        )

    async def taker_volume(
        self, symbol: str, interval_minutes: int, start: TimeLike, end: TimeLike
    ) -> Series:
        """Taker buy/sell quantity and notional per window."""
        return await self._windows(
            "/taker-volume",
            symbol,
            interval_minutes,
            start,
            end,
            _series("TakerVolumeHistoricResponseBody"),
        )

    async def long_short(
        self, symbol: str, interval: str, start: TimeLike, end: TimeLike
    ) -> Series:
        """Accounts long and short per window (``interval`` e.g. ``1h``)."""
        path = f"/symbol-long-short/{symbol}"
        params = {"interval": interval, **_times(fromISO=start, toISO=end)}
        body = await self._get_json(path, params=params, public=True)
        return _parsed(path, _series("SymbolLongShortHistoricResponseBody"), body)

    async def underlier_history(
        self, symbol: str, interval: str, start: TimeLike, end: TimeLike
    ) -> Series:
        """Underlier open/high/low/close per window (``interval`` e.g. ``1h``)."""
        path = f"/underlier/{symbol}"
        params = {"interval": interval, **_times(fromISO=start, toISO=end)}
        body = await self._get_json(path, params=params, public=True)
        return _parsed(path, _series("UnderlierHistoricResponseBody"), body)

    async def settlement_calendar(self, symbol: str, at: TimeLike | None = None) -> dict[str, Any]:
        """The futures contract ``symbol`` references at ``at`` (default: now)."""
        params = {"symbol": symbol, **_times(time=at)}
        body = await self._get_json("/settlement-calendar", params=params, public=True)
        return _parsed("/settlement-calendar", records.parse_settlement_calendar, body)

    async def settlement_prices(
        self,
        symbol: str | None = None,
        *,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        limit: int | None = None,
    ) -> Series:
        """Daily settlement prices (future, spot and their ratio)."""
        params = {**_query(symbol=symbol, limit=limit), **_times(start=start, end=end)}
        body = await self._get_json("/settlement-prices", params=params, public=True)
        return _parsed("/settlement-prices", _series("SettlementPricesResponseBody"), body)

    async def symbol_metrics(self) -> Series:
        """Mark price, 24 h volume and change, open interest and funding of every symbol."""
        body = await self._get_json("/symbols/metrics", public=True)
        return _parsed("/symbols/metrics", _series("SymbolMetricsResponseBody"), body)

    # ------------------------------------------------------------ private history

    async def trades(
        self,
        account_id: str | None = None,
        *,
        symbol: str | None = None,
        order_id: str | None = None,
        order_type: str | None = None,
        side: str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[UserTrade]:
        """The account's executions, newest first, one page (``limit`` 1..1000)."""
        params = {
            **_query(
                exchange_order_id=order_id,
                symbol=symbol,
                ordertype=order_type,
                orderdirection=side,
                limit=limit,
                offset=offset,
            ),
            **_times(start=start, end=end),
        }
        body = await self._get_json("/user/trade", account_id=account_id, params=params)
        return _parsed("/user/trade", records.parse_trades, body)

    async def historic_orders(
        self,
        account_id: str | None = None,
        *,
        symbol: str | None = None,
        client_order_id: str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[HistoricOrder]:
        """The account's terminal orders (filled or closed), one page."""
        params = {
            **_query(symbol=symbol, client_order_id=client_order_id, limit=limit, offset=offset),
            **_times(start=start, end=end),
        }
        body = await self._get_json("/user/historic-orders", account_id=account_id, params=params)
        return _parsed("/user/historic-orders", records.parse_historic_orders, body)

    async def historic_twaps(
        self, account_id: str | None = None, *, symbol: str | None = None, limit: int | None = None
    ) -> list[TwapInfo]:
        """The account's finished TWAPs (the endpoint has no offset)."""
        params = _query(symbol=symbol, limit=limit)
        body = await self._get_json("/user/historic-twaps", account_id=account_id, params=params)
        return _parsed("/user/historic-twaps", records.parse_historic_twaps, body)

    async def historic_pnl(
        self,
        account_id: str | None = None,
        *,
        duration: str = "1w",
        unit: str = "number",
        symbols: Iterable[str] | None = None,
    ) -> Series:
        """PnL change per window over ``duration`` (``unit`` ``number`` or ``percent``)."""
        params = _query(
            duration=duration, unit=unit, symbol=None if symbols is None else ",".join(symbols)
        )
        body = await self._get_json("/user/historic-pnl", account_id=account_id, params=params)
        return _parsed("/user/historic-pnl", _series("HistoricUserPnlResponseBody"), body)

    async def hourly_pnl(
        self,
        account_id: str | None = None,
        *,
        symbol: str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        limit_hours: int | None = None,
    ) -> Series:
        """Hourly realised/unrealised PnL, funding and fees per symbol (``GET /pnl``)."""
        params = {**_query(symbol=symbol, limit_hours=limit_hours), **_times(start=start, end=end)}
        body = await self._get_json("/pnl", account_id=account_id, params=params)
        return _parsed("/pnl", _series("HourlyPnlResponseBody"), body)

    async def volume(
        self, account_id: str | None = None, *, period: str = "1w", symbol: str | None = None
    ) -> Series:
        """Maker and taker volume per day over ``period`` (the API's ``range``)."""
        params = _query(range=period, symbol=symbol)
        body = await self._get_json("/user/volume", account_id=account_id, params=params)
        return _parsed("/user/volume", _series("UserVolumeResponseBody"), body)

    async def fees(self, account_id: str | None = None) -> dict[str, FeeRate]:
        """The account's maker and taker fee rates (fractions of notional) by symbol."""
        body = await self._get_json("/user/fees", account_id=account_id)
        return _parsed("/user/fees", records.parse_fees, body)

    async def referral_rewards(self, account_id: str | None = None, duration: str = "1w") -> Series:
        """Referral rewards per day over ``duration``."""
        body = await self._get_json(
            "/user/referral-rewards", account_id=account_id, params={"duration": duration}
        )
        return _parsed("/user/referral-rewards", _series("ReferralRewardsResponseBody"), body)

    async def set_leverage(
        self, symbol: str, leverage: Decimal | int, account_id: str | None = None
    ) -> Decimal:
        """Set the account's leverage on ``symbol``; returns the leverage now set.

        A POST: sent once, never retried (errors as :meth:`transfer`).
        """
        if isinstance(leverage, bool) or not isinstance(leverage, (Decimal, int)):
            raise TypeError(f"leverage must be a Decimal or int, got {type(leverage).__name__}")
        body = encode_json({"symbol": symbol, "leverage": Decimal(leverage)})
        response = await self._post("/user/leverage", body, account_id=account_id)
        try:
            payload = response.json()
        except (ValueError, UnicodeDecodeError):
            raise QfexResponseError(
                f"POST /user/leverage: unexpected body: {_preview_body(response)}"
            ) from None
        return _parsed("/user/leverage", records.parse_leverage, payload, "POST")

    async def trades_csv(self, account_id: str | None = None) -> str:
        """Every execution of the account as CSV text."""
        return await self._get_text("/trades-csv", account_id=account_id)

    async def historic_orders_csv(self, account_id: str | None = None) -> str:
        """Every terminal order of the account as CSV text."""
        return await self._get_text("/historic-orders-csv", account_id=account_id)

    async def historic_twaps_csv(
        self, account_id: str | None = None, *, symbol: str | None = None
    ) -> str:
        """Every finished TWAP of the account (optionally of one symbol) as CSV text."""
        return await self._get_text(
            "/historic-twaps-csv", account_id=account_id, params=_query(symbol=symbol)
        )

    async def _windows(
        self,
        prefix: str,
        symbol: str,
        interval_minutes: int,
        start: TimeLike,
        end: TimeLike,
        parse: Callable[[Any], _T],
    ) -> _T:
        """A public per-window history (``intervalMinutes``, ``fromISO``, ``toISO``)."""
        path = f"{prefix}/{symbol}"
        params = {"intervalMinutes": str(int(interval_minutes)), **_times(fromISO=start, toISO=end)}
        body = await self._get_json(path, params=params, public=True)
        return _parsed(path, parse, body)

    # ------------------------------------------------------------ transport

    def _auth_for(self, public: bool) -> Any:
        if public:
            return None  # no signing: public endpoints need no nonce
        return self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT

    def _account_headers(self, account_id: str | None) -> dict[str, str] | None:
        if not account_id or account_id == self.user_id:
            return None
        return {REQUESTED_ACCOUNT_HEADER: account_id}

    async def _get_json(
        self,
        path: str,
        *,
        account_id: str | None = None,
        params: Mapping[str, str] | None = None,
        public: bool = False,
    ) -> Any:
        """GET (retried, see :meth:`_get`) and return the JSON body."""
        response = await self._get(path, account_id=account_id, params=params, public=public)
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError):
            raise QfexResponseError(f"GET {path}: {_preview_body(response)}") from None

    async def _get_text(
        self, path: str, *, account_id: str | None = None, params: Mapping[str, str] | None = None
    ) -> str:
        """GET (retried, see :meth:`_get`) and return the body as text (the CSV exports)."""
        response = await self._get(path, account_id=account_id, params=params)
        try:
            return response.content.decode(response.encoding or "utf-8")
        except (LookupError, UnicodeDecodeError):
            raise QfexResponseError(f"GET {path}: body is not text") from None

    async def _get(
        self,
        path: str,
        *,
        account_id: str | None = None,
        params: Mapping[str, str] | None = None,
        public: bool = False,
    ) -> httpx.Response:
        """GET with bounded retries on 429 / 5xx / transport errors; returns a 2xx response."""
        headers = self._account_headers(account_id)
        attempt = 0
        while True:
            delay: float | None = None
            try:
                async with self._get_slots:
                    response = await self._client.get(
                        self._base_url + path,
                        params=params,
                        headers=headers,
                        auth=self._auth_for(public),
                    )
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise QfexUnavailableError(
                        f"GET {path}: {type(exc).__name__} after {attempt + 1} attempts"
                    ) from exc
                reason = type(exc).__name__
            else:
                status = response.status_code
                if status < 400:
                    return response
                if (status != 429 and status < 500) or attempt >= self.max_retries:
                    raise api_error_from(response)
                reason = f"HTTP {status}"
                if status == 429:
                    hinted = _retry_after(response)
                    if hinted is not None:
                        delay = min(hinted, self.retry_after_max)
            if delay is None:
                delay = backoff_delay(attempt, self.backoff_initial, self.backoff_max, self._rng)
            attempt += 1
            log_event(
                log,
                logging.INFO,
                "retrying GET",
                path=path,
                reason=reason,
                attempt=attempt,
                delay=round(delay, 3),
            )
            await trio.sleep(delay)

    async def _post(
        self,
        path: str,
        body: str,
        *,
        params: Mapping[str, str] | None = None,
        account_id: str | None = None,
    ) -> httpx.Response:
        """One POST, never retried; failures classified as not-sent / ambiguous / refused."""
        headers = {"Content-Type": "application/json", **(self._account_headers(account_id) or {})}
        try:
            response = await self._client.post(
                self._base_url + path,
                content=body.encode(),
                params=params,
                headers=headers,
                auth=self._auth_for(False),
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise QfexNotSentError(f"POST {path}: not sent ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise QfexAmbiguousError(
                f"POST {path}: outcome unknown ({type(exc).__name__} after the request may "
                f"have been sent)",
                method="POST",
                path=path,
            ) from exc
        if response.status_code >= 500:
            error = api_error_from(response)
            raise QfexAmbiguousError(
                f"POST {path}: outcome unknown (server error {error})",
                method="POST",
                path=path,
                status=response.status_code,
                api_error=error,
            )
        if 300 <= response.status_code < 400:
            # httpx follows no redirect, but a 3xx says nothing about whether the POST was
            # processed (303 See Other is the standard answer AFTER processing it): ambiguous.
            error = api_error_from(response)
            raise QfexAmbiguousError(
                f"POST {path}: outcome unknown (redirect {error})",
                method="POST",
                path=path,
                status=response.status_code,
                api_error=error,
            )
        if not 200 <= response.status_code < 300:
            raise api_error_from(response)
        return response


def _parsed(path: str, parse: Callable[[Any], _T], body: Any, method: str = "GET") -> _T:
    """``parse(body)``, a :class:`ParseError` becoming :class:`QfexResponseError`."""
    try:
        return parse(body)
    except ParseError as exc:
        raise QfexResponseError(f"{method} {path}: {exc.reason}") from None


def _series(component: str) -> Callable[[Any], Series]:
    """The parser of one :class:`Series` body."""

    def parse(body: Any) -> Series:
        return records.parse_series(body, component)

    return parse
