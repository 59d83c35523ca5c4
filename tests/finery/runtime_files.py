"""A runtime in its own directory for the Finery runtime tests: bots.toml, test plugins, var/."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from qfexbot.config import load_config
from qfexbot.runtime import Runtime


def runtime_in(work: Path, bots_toml: str, plugins: Mapping[str, str]) -> Runtime:
    """A (not yet running) runtime of ``bots_toml`` written in ``work``, with ``plugins`` (module
    name -> source) in ``work/plugins`` and an empty ``work/var`` for its journal."""
    (work / "var").mkdir(parents=True)
    (work / "plugins").mkdir()
    for name, source in plugins.items():
        (work / "plugins" / f"{name}.py").write_text(source)
    (work / "bots.toml").write_text(bots_toml)
    return Runtime(load_config(work / "bots.toml"))
