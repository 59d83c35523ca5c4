"""The package root is the whole plugin API: pinned here, and all that docs and plugins import."""

from __future__ import annotations

import re
import types
from pathlib import Path

import qfexbot
from qfexbot.money import transfers

ROOT = Path(__file__).resolve().parents[2]

PUBLIC_API = [
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
"""Adding a name here is a promise to plugin authors: change it on purpose."""

PLUGIN_IMPORTS = {"qfexbot", "qfexbot.testing"}
"""What plugins and the examples in docs/ may import (docs/architecture.md, rule 7)."""

OTHER_APIS = {"simulator.md": {"qfexbot.sim"}}
"""Pages that document another public API than the plugin author's, and what they may import."""

_IMPORT = re.compile(r"^\s*(?:from\s+(qfexbot[\w.]*)\s+import|import\s+(qfexbot[\w.]*))", re.M)
_CODE_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def qfexbot_imports(source: str) -> list[str]:
    """Every ``qfexbot...`` module that ``source`` imports (``from X import`` or ``import X``)."""
    return [a or b for a, b in _IMPORT.findall(source)]


def test_all_is_pinned_and_sorted_like_ruff_sorts_it():
    assert qfexbot.__all__ == PUBLIC_API


def test_every_exported_name_resolves_and_is_exported_once():
    assert len(set(qfexbot.__all__)) == len(qfexbot.__all__)
    for name in qfexbot.__all__:
        assert getattr(qfexbot, name) is not None, name


def test_nothing_public_at_the_root_is_left_out_of_all():
    public = {
        name
        for name, value in vars(qfexbot).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public <= set(qfexbot.__all__)


def test_the_action_errors_are_one_family_under_the_root():
    for name in ("ActionRejected", "ActionUnavailable", "UnknownAccountError"):
        assert issubclass(getattr(qfexbot, name), qfexbot.ActionError)
    assert issubclass(qfexbot.ActionError, qfexbot.QfexbotError)


def test_what_the_money_layer_returns_is_the_public_transfer_result():
    result = transfers.TransferResult("e1", "done", "venue confirmed")
    assert isinstance(result, qfexbot.TransferResult) and result.ok


def test_the_import_scanner_sees_both_import_forms():
    source = "from qfexbot import Field\n    import qfexbot.core.bus\nfrom qfexbotx import y\n"
    assert qfexbot_imports(source) == ["qfexbot", "qfexbot.core.bus", "qfexbotx"]


def test_plugins_and_doc_examples_import_only_the_public_api():
    found: dict[str, list[str]] = {}
    sources = [(p, p.read_text()) for p in sorted((ROOT / "plugins").glob("*.py"))]
    sources += [(p, p.read_text()) for p in sorted((ROOT / "docs").rglob("*.py"))]
    for page in sorted((ROOT / "docs").rglob("*.md")):
        sources += [(page, block) for block in _CODE_BLOCK.findall(page.read_text())]
    for path, source in sources:
        allowed = PLUGIN_IMPORTS | OTHER_APIS.get(path.name, set())
        bad = [module for module in qfexbot_imports(source) if module not in allowed]
        if bad:
            found.setdefault(str(path.relative_to(ROOT)), []).extend(bad)
    assert len(sources) >= 15  # the scan found the plugins, the examples and the doc snippets
    assert found == {}
