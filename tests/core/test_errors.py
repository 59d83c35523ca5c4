"""One error root: every exception class qfexbot defines descends from ``QfexbotError``, so
``except QfexbotError`` catches what qfexbot raises on purpose and nothing else."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import qfexbot
from qfexbot.errors import ActionError, QfexbotError


def _exception_classes() -> list[type[BaseException]]:
    found = []
    for info in pkgutil.walk_packages(qfexbot.__path__, "qfexbot."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        found += [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj)
            and issubclass(obj, BaseException)
            and obj.__module__ == module.__name__
        ]
    return found


def test_every_exception_class_has_the_one_root() -> None:
    classes = _exception_classes()
    assert len(classes) >= 30  # the walk found the package's errors, not an empty list
    assert [
        f"{c.__module__}.{c.__qualname__}" for c in classes if not issubclass(c, QfexbotError)
    ] == []


def test_what_a_plugin_catches_is_exported_and_is_an_action_error() -> None:
    family = {name for name in qfexbot.__all__ if inspect.isclass(getattr(qfexbot, name))}
    actions = {n for n in family if issubclass(getattr(qfexbot, n), BaseException)}
    assert {"ActionError", "ActionUnavailable", "ActionRejected", "UnknownAccountError"} <= actions
    for name in actions - {"QfexbotError", "ActionError"}:
        assert issubclass(getattr(qfexbot, name), ActionError), name
