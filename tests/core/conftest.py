"""Fixtures of the core tests (bus, plugins, dispatch): in-memory plugin modules, clean imports."""

from __future__ import annotations

import sys

import pytest
from core_helpers import TEST_MODULE, PluginModule

from qfexbot.core.plugins import LOCAL_PACKAGE


@pytest.fixture
def plugin_module(monkeypatch: pytest.MonkeyPatch) -> PluginModule:
    """Define plugin classes in the test and name them ``qfexbot_core_test_plugins:Name``."""
    module = PluginModule()
    monkeypatch.setitem(sys.modules, TEST_MODULE, module.module)
    return module


@pytest.fixture(autouse=True)
def _forget_local_plugins():
    """Plugin modules loaded by a test (local, or test entry points) do not leak into the next."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith((LOCAL_PACKAGE, "qfexbot_ep_")):
            del sys.modules[name]
