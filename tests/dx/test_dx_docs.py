"""docs/events.md and docs/cookbook.md stay in sync with the code they describe."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import qfexbot
from qfexbot import BotContext
from qfexbot.events import Event

DOCS = Path(__file__).resolve().parents[2] / "docs"
BASE_FIELDS = {f.name for f in dataclasses.fields(Event)}


def exported_event_types() -> list[type[Event]]:
    return [
        obj
        for name in qfexbot.__all__
        if isinstance(obj := getattr(qfexbot, name), type) and issubclass(obj, Event)
    ]


def sections(text: str) -> dict[str, str]:
    """``### `Name` `` heading -> its text up to the next heading."""
    parts = re.split(r"^(#{2,3} .*)$", text, flags=re.MULTILINE)
    return {heading: body for heading, body in zip(parts[1::2], parts[2::2], strict=True)}


def undocumented_events(text: str) -> list[str]:
    """``Type`` or ``Type.field`` for everything exported that the page does not document."""
    by_heading = sections(text)
    missing = []
    for event_type in exported_event_types():
        body = by_heading.get(f"### `{event_type.__name__}`")
        if body is None:
            missing.append(event_type.__name__)
            continue
        if f'`kind = "{event_type.kind}"`' not in body:
            missing.append(f"{event_type.__name__}.kind")
        for field in dataclasses.fields(event_type):
            if field.name not in BASE_FIELDS and f"`{field.name}`" not in body:
                missing.append(f"{event_type.__name__}.{field.name}")
    common = by_heading.get("## Common to every event", "")
    missing += [f"Event.{name}" for name in sorted(BASE_FIELDS) if f"`{name}`" not in common]
    return missing


def test_every_exported_event_type_and_field_is_in_events_md():
    assert exported_event_types(), "qfexbot exports event types"
    assert undocumented_events((DOCS / "events.md").read_text()) == []


def test_the_check_notices_a_missing_event_and_a_missing_field():
    text = (DOCS / "events.md").read_text()
    without_fill = text.replace("### `FillEvent`", "### Fills")
    assert undocumented_events(without_fill) == ["FillEvent"]
    without_field = text.replace("| `is_taker` |", "| taker |")
    assert undocumented_events(without_field) == ["FillEvent.is_taker"]


def test_every_public_ctx_attribute_and_method_is_in_events_md():
    text = (DOCS / "events.md").read_text()
    public = {name for name in BotContext.__slots__ if not name.startswith("_")}
    public |= {
        name
        for name, _ in inspect.getmembers(BotContext, inspect.isfunction)
        if not name.startswith("_")
    }
    missing = sorted(name for name in public if f"ctx.{name}" not in text)
    assert missing == []


def test_cookbook_shows_each_example_file_exactly_and_each_is_tested():
    page = (DOCS / "cookbook.md").read_text()
    shown = dict(re.findall(r"```python\n# (docs/examples/\S+\.py)\n(.*?)```", page, re.DOTALL))
    examples = sorted((DOCS / "examples").glob("*.py"))
    assert sorted(shown) == [f"docs/examples/{p.name}" for p in examples]
    for path in examples:
        assert shown[f"docs/examples/{path.name}"] == path.read_text(), f"{path.name} differs"
    tests = (Path(__file__).parent / "test_dx_cookbook.py").read_text()
    untested = [p.stem for p in examples if f'"{p.stem}' not in tests]
    assert untested == []


def test_doc_links_resolve():
    for page in ("quickstart.md", "events.md", "cookbook.md"):
        for target in re.findall(r"\]\(([^)#:]+\.md)\)", (DOCS / page).read_text()):
            assert (DOCS / target).is_file(), f"{page} links to missing {target}"
