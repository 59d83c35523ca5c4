"""qfexbot: event-driven bots for QFEX and Finery Markets subaccounts.

This module is the plugin author's API and nothing else: ``hookimpl``, the event types,
``BotContext``, ``ActionUnavailable`` and ``Field`` (plugin config schemas). Everything else is internal.
"""

from qfexbot.config import Field as Field
from qfexbot.core.context import ActionUnavailable as ActionUnavailable
from qfexbot.core.context import BotContext as BotContext
from qfexbot.events import BalanceEvent as BalanceEvent
from qfexbot.events import BookEvent as BookEvent
from qfexbot.events import ConnectionState as ConnectionState
from qfexbot.events import ConnectionStateEvent as ConnectionStateEvent
from qfexbot.events import Event as Event
from qfexbot.events import FillEvent as FillEvent
from qfexbot.events import MarkPriceEvent as MarkPriceEvent
from qfexbot.events import OrderUpdateEvent as OrderUpdateEvent
from qfexbot.events import PositionEvent as PositionEvent
from qfexbot.events import ResyncEvent as ResyncEvent
from qfexbot.events import TimerEvent as TimerEvent
from qfexbot.events import TradeEvent as TradeEvent
from qfexbot.events import TransferOutcomeEvent as TransferOutcomeEvent
from qfexbot.hookspecs import hookimpl as hookimpl

__version__ = "0.1.0"

__all__ = [
    "ActionUnavailable",
    "BalanceEvent",
    "BookEvent",
    "BotContext",
    "ConnectionState",
    "ConnectionStateEvent",
    "Event",
    "Field",
    "FillEvent",
    "MarkPriceEvent",
    "OrderUpdateEvent",
    "PositionEvent",
    "ResyncEvent",
    "TimerEvent",
    "TradeEvent",
    "TransferOutcomeEvent",
    "__version__",
    "hookimpl",
]
