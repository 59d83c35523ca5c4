"""The core knows no venue: outside ``qfexbot/venues/`` (and the simulators, which are organised
by the venue they simulate) no module names a venue kind, as a string or in an identifier.

The import rules themselves are import-linter contracts (pyproject.toml, run by .ci/run); this
test catches what an import graph cannot see: a kind written as a literal (``kind == "finery"``)
or a venue's class name used without importing it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from qfexbot.venues import registry

PACKAGE = Path(__file__).resolve().parents[2] / "qfexbot"
VENUE_AWARE = ("venues", "sim")
"""Top-level folders that are organised by venue and may name kinds."""


def _names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.alias):
        return [node.name, *([node.asname] if node.asname else [])]
    return []


def venue_mentions(source: str, kinds: tuple[str, ...]) -> list[str]:
    """Where ``source`` names one of ``kinds``: ``line: what`` for each string constant equal to
    a kind and each identifier containing one (docstrings and comments are prose, not code).

    Names imported from ``qfexbot.sim`` are the simulators' own (``QfexSimulator``): the
    simulators are organised by venue, and importing them is the layers' business."""
    tree = ast.parse(source)
    simulators = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("qfexbot.sim")
        for alias in node.names
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.lower() in kinds:
                found.append(f"{node.lineno}: {node.value!r}")
            continue
        for name in _names(node):
            bare = name.lower().replace("qfexbot", "")  # the package's own name is no venue
            if name not in simulators and any(kind in bare for kind in kinds):
                found.append(f"{getattr(node, 'lineno', '?')}: {name}")
    return found


def test_the_scanner_finds_a_kind_literal_and_a_venue_name() -> None:
    source = 'from x import FineryVenue as V\nif config.kind == "finery":\n    QfexRest()\n'
    assert sorted(venue_mentions(source, ("qfex", "finery"))) == [
        "1: FineryVenue",
        "2: 'finery'",
        "3: QfexRest",
    ]
    assert venue_mentions('import qfexbot\n"""QFEX and finery, in prose."""\n', ("qfex",)) == []
    simulator = "from qfexbot.sim import QfexSimulator\nsim: QfexSimulator\n"
    assert venue_mentions(simulator, ("qfex",)) == []


def test_no_module_outside_the_venue_packages_names_a_venue() -> None:
    kinds = tuple(kind.lower() for kind in registry.kinds())
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in VENUE_AWARE:
            continue
        offenders += [
            f"qfexbot/{relative}:{where}" for where in venue_mentions(path.read_text(), kinds)
        ]
    assert offenders == []
