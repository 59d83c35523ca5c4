"""qfexbot: event-driven bots for QFEX and Finery Markets subaccounts.

This module is the whole plugin author's API, and nothing else: ``hookimpl``, the event types,
``BotContext`` and ``TransferResult``, the ``ActionError`` family a plugin catches around ``ctx``
actions, and ``Field``/``REQUIRED`` for plugin config schemas. The public test harness is
``qfexbot.testing``. Every other module is internal and may change without notice.
"""

from qfexbot.config import REQUIRED as REQUIRED
from qfexbot.config import Field as Field
from qfexbot.core.context import BotContext as BotContext
from qfexbot.core.context import TransferResult as TransferResult
from qfexbot.errors import ActionError as ActionError
from qfexbot.errors import ActionRejected as ActionRejected
from qfexbot.errors import ActionUnavailable as ActionUnavailable
from qfexbot.errors import QfexbotError as QfexbotError
from qfexbot.errors import UnknownAccountError as UnknownAccountError
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
    "REQUIRED",
    "ActionError",
    "ActionRejected",
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
    "QfexbotError",
    "ResyncEvent",
    "TimerEvent",
    "TradeEvent",
    "TransferOutcomeEvent",
    "TransferResult",
    "UnknownAccountError",
    "__version__",
    "hookimpl",
]
