"""qfexbot: event-driven bots for QFEX and Finery Markets subaccounts.

This module is the whole plugin author's API, and nothing else: ``hookimpl``, the event types,
``BotContext`` and ``TransferResult``, the records ``ctx`` queries return (trades, order and
TWAP history, open orders, leverage, fees, candles, funding and open-interest points), the
``ActionError`` family a plugin catches around ``ctx`` actions, the runtime-wide ``AlertEvent``
(with ``AlertKind``/``AlertSeverity``), ``backoff_delay`` for a plugin's own retries, and
``Field``/``REQUIRED`` for plugin config schemas. The public test harness is ``qfexbot.testing``.
Every other module is internal and may change without notice.
"""

from qfexbot.config import REQUIRED as REQUIRED
from qfexbot.config import Field as Field
from qfexbot.core.backoff import backoff_delay as backoff_delay
from qfexbot.core.context import BotContext as BotContext
from qfexbot.core.context import TransferResult as TransferResult
from qfexbot.core.records import Candle as Candle
from qfexbot.core.records import FeeRate as FeeRate
from qfexbot.core.records import FundingRatePoint as FundingRatePoint
from qfexbot.core.records import HistoricOrder as HistoricOrder
from qfexbot.core.records import LeverageLevel as LeverageLevel
from qfexbot.core.records import OpenInterestPoint as OpenInterestPoint
from qfexbot.core.records import OpenOrders as OpenOrders
from qfexbot.core.records import TwapInfo as TwapInfo
from qfexbot.core.records import UserTrade as UserTrade
from qfexbot.errors import ActionError as ActionError
from qfexbot.errors import ActionRejected as ActionRejected
from qfexbot.errors import ActionUnavailable as ActionUnavailable
from qfexbot.errors import QfexbotError as QfexbotError
from qfexbot.errors import UnknownAccountError as UnknownAccountError
from qfexbot.events import AlertEvent as AlertEvent
from qfexbot.events import AlertKind as AlertKind
from qfexbot.events import AlertSeverity as AlertSeverity
from qfexbot.events import BalanceEvent as BalanceEvent
from qfexbot.events import BookEvent as BookEvent
from qfexbot.events import CandleEvent as CandleEvent
from qfexbot.events import ConnectionState as ConnectionState
from qfexbot.events import ConnectionStateEvent as ConnectionStateEvent
from qfexbot.events import Event as Event
from qfexbot.events import FillEvent as FillEvent
from qfexbot.events import FundingPaymentEvent as FundingPaymentEvent
from qfexbot.events import FundingRateEvent as FundingRateEvent
from qfexbot.events import MarketStatsEvent as MarketStatsEvent
from qfexbot.events import MarkPriceEvent as MarkPriceEvent
from qfexbot.events import OpenInterestEvent as OpenInterestEvent
from qfexbot.events import OrderUpdateEvent as OrderUpdateEvent
from qfexbot.events import PositionEvent as PositionEvent
from qfexbot.events import PriceBandEvent as PriceBandEvent
from qfexbot.events import ResyncEvent as ResyncEvent
from qfexbot.events import SettlementEvent as SettlementEvent
from qfexbot.events import StopOrderEvent as StopOrderEvent
from qfexbot.events import TimerEvent as TimerEvent
from qfexbot.events import TradeEvent as TradeEvent
from qfexbot.events import TransferOutcomeEvent as TransferOutcomeEvent
from qfexbot.events import TwapEvent as TwapEvent
from qfexbot.events import UnderlierEvent as UnderlierEvent
from qfexbot.hookspecs import hookimpl as hookimpl

__version__ = "0.1.0"

__all__ = [
    "REQUIRED",
    "ActionError",
    "ActionRejected",
    "ActionUnavailable",
    "AlertEvent",
    "AlertKind",
    "AlertSeverity",
    "BalanceEvent",
    "BookEvent",
    "BotContext",
    "Candle",
    "CandleEvent",
    "ConnectionState",
    "ConnectionStateEvent",
    "Event",
    "FeeRate",
    "Field",
    "FillEvent",
    "FundingPaymentEvent",
    "FundingRateEvent",
    "FundingRatePoint",
    "HistoricOrder",
    "LeverageLevel",
    "MarkPriceEvent",
    "MarketStatsEvent",
    "OpenInterestEvent",
    "OpenInterestPoint",
    "OpenOrders",
    "OrderUpdateEvent",
    "PositionEvent",
    "PriceBandEvent",
    "QfexbotError",
    "ResyncEvent",
    "SettlementEvent",
    "StopOrderEvent",
    "TimerEvent",
    "TradeEvent",
    "TransferOutcomeEvent",
    "TransferResult",
    "TwapEvent",
    "TwapInfo",
    "UnderlierEvent",
    "UnknownAccountError",
    "UserTrade",
    "__version__",
    "backoff_delay",
    "hookimpl",
]
