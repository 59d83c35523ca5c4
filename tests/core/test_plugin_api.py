"""The plugin API surface: every hook documented, BotContext behaviour and repr."""

from __future__ import annotations

import ast
import logging
import re
from decimal import Decimal
from pathlib import Path

import pytest
import trio
from core_helpers import DESK_A, PRIMARY, RecordingActions, balance, build_host

from qfexbot import hookspecs
from qfexbot.core.bus import Bus
from qfexbot.core.context import BotContext, UnknownAccountError
from qfexbot.core.dispatch import Dispatcher

ROOT = Path(__file__).resolve().parents[2]


def hooks_in_module() -> list[str]:
    """Hook names parsed from the source of hookspecs.py (functions decorated @hookspec)."""
    tree = ast.parse((ROOT / "qfexbot" / "hookspecs.py").read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(
            getattr(d, "id", None) == "hookspec"
            or getattr(getattr(d, "func", None), "id", None) == "hookspec"
            for d in node.decorator_list
        )
    ]


def test_every_hook_is_documented_as_a_heading():
    names = hooks_in_module()
    assert names == list(hookspecs.HOOK_NAMES) and len(names) >= 4
    headings = [
        line
        for line in (ROOT / "docs" / "plugins.md").read_text().splitlines()
        if line.startswith("#")
    ]
    for name in names:
        assert any(re.search(rf"\b{name}\b", h) for h in headings), f"{name} has no heading"


def test_every_hookspec_has_a_docstring_contract():
    for name in hookspecs.HOOK_NAMES:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert "Called" in doc and len(doc) > 100, name


def make_ctx(config=None) -> BotContext:
    return BotContext(
        bot="b",
        plugin="p",
        venue="v",
        config=config or {"token": "hunter2-secret"},
        accounts={"desk-a": DESK_A},
        venue_accounts={"treasury": PRIMARY, "desk-a": DESK_A},
        state={},
        actions=RecordingActions(),
    )


def test_accounts_resolution():
    ctx = make_ctx()
    assert ctx.account_id("treasury") == PRIMARY  # venue accounts, not only the bot's
    assert ctx.account_id(DESK_A) == DESK_A
    assert ctx.alias_of(PRIMARY) == "treasury" and ctx.alias_of("other") == "other"
    assert dict(ctx.accounts) == {"desk-a": DESK_A}
    with pytest.raises(UnknownAccountError, match=r"unknown account 'nope'.*desk-a, treasury"):
        ctx.account_id("nope")
    with pytest.raises(TypeError):
        ctx.accounts["x"] = "y"  # type: ignore[index]


def test_repr_leaks_no_config_and_logger_names_plugin():
    ctx = make_ctx()
    assert repr(ctx) == "BotContext(bot='b', plugin='p', venue='v')"
    assert "hunter2" not in repr(ctx)
    assert ctx.log.name == "plugins.b.p" and isinstance(ctx.log, logging.Logger)
    with pytest.raises(TypeError):
        ctx.config["token"] = "x"  # type: ignore[index]


async def test_transfer_requires_decimal():
    ctx = make_ctx()
    with pytest.raises(TypeError, match="Decimal"):
        await ctx.transfer("treasury", "desk-a", 5.0, "float")  # type: ignore[arg-type]
    assert await ctx.transfer("treasury", "desk-a", Decimal("5"), "ok") == "transfer-result"


async def test_documented_example_plugin_works(tmp_path, caplog, autojump_clock):
    text = (ROOT / "docs" / "plugins.md").read_text()
    source = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    (tmp_path / "low_balance.py").write_text(source)
    caplog.set_level(logging.INFO, logger="plugins")
    host = build_host({"low_balance": {"threshold": 250}}, plugin_dirs=[tmp_path])
    bus = Bus(DESK_A)
    host.subscribe(bus)
    dispatcher = Dispatcher(host)
    async with trio.open_nursery() as nursery:
        await nursery.start(dispatcher.run)
        for available in (300, 100, 90, 400):
            await bus.publish(balance(DESK_A, available))
        await trio.sleep(61)
        dispatcher.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "plugins.b.low_balance"]
    assert lines == ["low balance account=desk-a available=100", "accounts below threshold: 0"]
