"""No dataclass of the package shows a credential in its repr: a field named like a secret is
either a redacting ``Secret`` or declared ``repr=False`` (a traceback or a test failure prints
reprs, and the log scrubber never sees those)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

import qfexbot
from qfexbot.core.secrets import Secret

SECRET_NAMES = ("secret", "jwt", "password", "token", "private_key", "api_key")


def _dataclasses() -> list[type]:
    found = []
    for info in pkgutil.walk_packages(qfexbot.__path__, "qfexbot."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        found += [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj)
            and dataclasses.is_dataclass(obj)
            and obj.__module__ == module.__name__
        ]
    return found


def _shown_secret_fields(cls: type) -> list[str]:
    return [
        f"{cls.__module__}.{cls.__qualname__}.{f.name}"
        for f in dataclasses.fields(cls)
        if f.repr
        and any(word in f.name.lower() for word in SECRET_NAMES)
        and not (f.type is Secret or "Secret" in str(f.type))
    ]


def test_the_check_sees_a_plain_secret_field() -> None:
    @dataclasses.dataclass
    class Leaky:
        secret: str

    @dataclasses.dataclass
    class Safe:
        secret: str = dataclasses.field(repr=False)

    assert _shown_secret_fields(Leaky) == [f"{__name__}.{Leaky.__qualname__}.secret"]
    assert _shown_secret_fields(Safe) == []


def test_no_dataclass_shows_a_secret_field_in_its_repr() -> None:
    classes = _dataclasses()
    assert len(classes) > 40  # the walk found the package's dataclasses
    assert [name for cls in classes for name in _shown_secret_fields(cls)] == []
