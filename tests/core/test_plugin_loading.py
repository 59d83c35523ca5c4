"""Plugin loading: plugin_dirs, module:attr, entry points (isolated), hooks and config checked."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar

import pytest
from core_helpers import DESK_A, build_host

from qfexbot.config import Field
from qfexbot.core.plugins import ENTRY_POINT_GROUP, LOCAL_PACKAGE, PluginLoadError, discover_plugins
from qfexbot.hookspecs import hookimpl

MODULE_PLUGIN = '''
"""Counts balances."""
from qfexbot.hookspecs import hookimpl

@hookimpl
def qfexbot_event(ctx, event):
    pass
'''

CLASS_PLUGIN = '''
"""A class plugin in a local module."""
from qfexbot.config import Field
from qfexbot.hookspecs import hookimpl

class Banded:
    """Keeps a band."""
    config_schema = {
        "target": Field("positive_number"),
        "account": Field("account", default="desk-a"),
    }

    def __init__(self, config):
        self.config = config

    @hookimpl
    def qfexbot_event(self, ctx, event):
        pass
'''


def write(directory: Path, name: str, source: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


def load_errors(plugins, **kwargs) -> list[str]:
    with pytest.raises(PluginLoadError) as info:
        build_host(plugins, **kwargs)
    assert "Traceback" not in str(info.value)
    return info.value.errors


def make_entry_points(site: Path) -> None:
    """A real installed distribution (dist-info on sys.path) with a good and a broken plugin."""
    dist = site / "qfexbot_ep_demo-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: qfexbot-ep-demo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nep_good = qfexbot_ep_good:Plugin\nep_broken = qfexbot_ep_broken\n"
    )
    write(
        site,
        "qfexbot_ep_good.py",
        '''
        from qfexbot.hookspecs import hookimpl

        class Plugin:
            """Installed with pip."""
            @hookimpl
            def qfexbot_startup(self, ctx):
                pass
    ''',
    )
    write(site, "qfexbot_ep_broken.py", "import qfexbot_no_such_dependency\n")


def test_module_plugin_from_plugin_dirs(tmp_path):
    dirs = [tmp_path / "empty", tmp_path / "plugins"]
    path = write(dirs[1], "counter.py", MODULE_PLUGIN)
    host = build_host({"c": {"use": "counter"}}, plugin_dirs=dirs)
    (slot,) = host.slots
    assert slot.plugin.__name__ == f"{LOCAL_PACKAGE}.counter"
    assert slot.source == str(path.resolve())
    assert host.pm.get_plugin("c") is slot.plugin
    assert slot.ctx.accounts == {"desk-a": DESK_A, "desk-b": "22222222-2222-4222-8222-222222222222"}


def test_class_in_local_module_gets_validated_config(tmp_path):
    write(tmp_path, "banded.py", CLASS_PLUGIN)
    host = build_host({"banded": {"target": 1000}}, plugin_dirs=[tmp_path])  # use = table name
    (slot,) = host.slots
    assert type(slot.plugin).__name__ == "Banded"
    assert isinstance(slot.plugin.config, MappingProxyType)
    assert slot.plugin.config == {"target": Decimal(1000), "account": "desk-a"}
    assert slot.ctx.config is slot.plugin.config


def test_local_package_and_qfexbot_plugin_attribute(tmp_path):
    write(
        tmp_path / "pkg",
        "__init__.py",
        """
        from qfexbot.hookspecs import hookimpl
        from .impl import Impl, Other
        qfexbot_plugin = Impl
    """,
    )
    write(
        tmp_path / "pkg",
        "impl.py",
        """
        from qfexbot.hookspecs import hookimpl

        class Impl:
            def __init__(self):
                self.made = True

            @hookimpl
            def qfexbot_event(self, event):
                pass

        class Other(Impl):
            pass
    """,
    )
    host = build_host({"p": {"use": "pkg"}}, plugin_dirs=[tmp_path])
    assert type(host.slots[0].plugin).__name__ == "Impl" and host.slots[0].plugin.made


def test_module_attr_plugin_and_local_module_attr(tmp_path, plugin_module):
    class NoArgs:
        config_schema: ClassVar = {"n": Field("positive_int", default=3)}

        @hookimpl
        def qfexbot_event(self, ctx, event):
            pass

    write(
        tmp_path,
        "two.py",
        """
        from qfexbot.hookspecs import hookimpl

        class A:
            @hookimpl
            def qfexbot_event(self, event):
                pass

        class B(A):
            pass
    """,
    )
    host = build_host(
        {
            "x": {"use": plugin_module.add("NoArgs", NoArgs)},
            "y": {"use": "two:B"},
        },
        plugin_dirs=[tmp_path],
    )
    x, y = host.slots
    assert isinstance(x.plugin, NoArgs) and x.ctx.config == {"n": 3}
    assert type(y.plugin).__name__ == "B"


def test_entry_point_plugin_and_broken_entry_point_isolated(tmp_path, monkeypatch):
    make_entry_points(tmp_path / "site")
    monkeypatch.syspath_prepend(tmp_path / "site")
    host = build_host({"good": {"use": "ep_good"}})
    assert type(host.slots[0].plugin).__name__ == "Plugin"
    assert "qfexbot-ep-demo 1.0" in host.slots[0].source

    (error,) = load_errors({"bad": {"use": "ep_broken"}})
    assert error.startswith(
        "bots.b.plugins.bad: cannot load entry point ep_broken = qfexbot_ep_broken"
    )
    assert "ModuleNotFoundError: No module named 'qfexbot_no_such_dependency'" in error

    found = {info.name: info for info in discover_plugins()}
    assert found["ep_good"].hooks == ("qfexbot_startup",) and found["ep_good"].error is None
    assert found["ep_good"].doc == "Installed with pip."
    assert "qfexbot_no_such_dependency" in found["ep_broken"].error


def test_discover_lists_local_modules_with_hooks_and_shadowing(tmp_path, monkeypatch):
    make_entry_points(tmp_path / "site")
    monkeypatch.syspath_prepend(tmp_path / "site")
    write(tmp_path / "plugins", "counter.py", MODULE_PLUGIN)
    write(tmp_path / "plugins", "banded.py", CLASS_PLUGIN)
    write(tmp_path / "plugins", "ep_good.py", MODULE_PLUGIN)
    write(tmp_path / "plugins", "_private.py", "raise SystemExit\n")
    write(
        tmp_path / "plugins",
        "typo.py",
        """
        from qfexbot.hookspecs import hookimpl

        @hookimpl
        def qfexbot_evnt(ctx, event):
            pass
    """,
    )
    infos = discover_plugins([tmp_path / "plugins"])
    local = [i for i in infos if i.source.startswith(str(tmp_path / "plugins"))]
    assert [i.name for i in local] == ["banded", "counter", "ep_good", "typo"]
    by_name = {i.name: i for i in local}
    assert (
        by_name["counter"].hooks == ("qfexbot_event",)
        and by_name["counter"].doc == "Counts balances."
    )
    assert by_name["banded"].config_keys == ("target", "account")
    assert "did you mean 'qfexbot_event'" in by_name["typo"].error
    shadowed = [i for i in infos if i.name == "ep_good" and i.shadowed_by]
    assert len(shadowed) == 1 and shadowed[0].shadowed_by == by_name["ep_good"].source


def test_misspelled_hook_fails_with_clear_error(tmp_path):
    write(
        tmp_path,
        "typo.py",
        """
        from qfexbot.hookspecs import hookimpl

        @hookimpl
        def qfexbot_evnt(ctx, event):
            pass
    """,
    )
    (error,) = load_errors({"t": {"use": "typo"}}, plugin_dirs=[tmp_path])
    assert error.startswith(
        "bots.b.plugins.t: unknown hook 'qfexbot_evnt' (did you mean 'qfexbot_event'?)"
    )


def test_unmarked_hook_wrapper_and_bad_argument_are_errors(plugin_module):
    class Unmarked:
        def qfexbot_event(self, ctx, event):
            pass

    class Wrapper:
        @hookimpl(wrapper=True)
        def qfexbot_event(self, ctx, event):
            yield

    class BadArg:
        @hookimpl
        def qfexbot_event(self, ctx, evnt):
            pass

    class Nothing:
        pass

    errors = load_errors(
        {
            "u": {"use": plugin_module.add("Unmarked", Unmarked)},
            "w": {"use": plugin_module.add("Wrapper", Wrapper)},
            "a": {"use": plugin_module.add("BadArg", BadArg)},
            "n": {"use": plugin_module.add("Nothing", Nothing)},
        }
    )
    assert len(errors) == 4
    assert errors[0] == (
        "bots.b.plugins.u: 'qfexbot_event' looks like a hook but is not decorated with @hookimpl"
    )
    assert errors[1].startswith("bots.b.plugins.w: hook 'qfexbot_event' is a wrapper")
    assert (
        errors[2].startswith("bots.b.plugins.a: ") and "evnt" in errors[2] and "\n" not in errors[2]
    )
    assert errors[3].startswith("bots.b.plugins.n: implements no qfexbot hook")


def test_config_schema_errors_are_reported_per_plugin(tmp_path):
    write(tmp_path, "banded.py", CLASS_PLUGIN)
    errors = load_errors(
        {
            "one": {"use": "banded", "target": "lots", "account": "nowhere"},
            "two": {"use": "banded", "extra": 1},
            "three": {"use": "banded", "target": 5},
        },
        plugin_dirs=[tmp_path],
    )
    assert 'bots.b.plugins.one.target: expected a positive number, got "lots"' in errors
    assert any(e.startswith("bots.b.plugins.one.account:") and "nowhere" in e for e in errors)
    assert any(e.startswith("bots.b.plugins.two.target:") for e in errors)
    assert any(e.startswith("bots.b.plugins.two") and "extra" in e for e in errors)
    assert not any(e.startswith("bots.b.plugins.three") for e in errors)


def test_not_found_import_error_and_instantiation_error(tmp_path, plugin_module):
    write(tmp_path, "crashes.py", "x = 1\nraise RuntimeError('bad import')\n")

    class Explodes:
        def __init__(self, config):
            raise KeyError("treasury")

        @hookimpl
        def qfexbot_event(self, event):
            pass

    errors = load_errors(
        {
            "missing": {},
            "crash": {"use": "crashes"},
            "boom": {"use": plugin_module.add("Explodes", Explodes)},
            "nomod": {"use": "qfexbot_no_such_module:X"},
            "noattr": {"use": f"{plugin_module.module.__name__}:Nope"},
        },
        plugin_dirs=[tmp_path],
    )
    assert errors[0].startswith("bots.b.plugins.missing: plugin 'missing' not found: no missing.py")
    assert f"crashes.py: RuntimeError: bad import ({tmp_path / 'crashes.py'}:2)" in errors[1]
    assert errors[2].endswith(
        "Explodes() failed: KeyError: 'treasury' ("
        + __file__
        + ":"
        + str(Explodes.__init__.__code__.co_firstlineno + 1)
        + ")"
    )
    assert errors[3] == (
        "bots.b.plugins.nomod: cannot import module 'qfexbot_no_such_module': "
        "ModuleNotFoundError: No module named 'qfexbot_no_such_module'"
    )
    assert errors[4] == (
        f"bots.b.plugins.noattr: module '{plugin_module.module.__name__}' has no attribute 'Nope'"
    )


def test_module_plugin_cannot_be_used_twice_but_class_can(tmp_path):
    write(tmp_path, "counter.py", MODULE_PLUGIN)
    write(tmp_path, "banded.py", CLASS_PLUGIN)
    host = build_host(
        {"a": {"use": "banded", "target": 1}, "b": {"use": "banded", "target": 2}},
        plugin_dirs=[tmp_path],
    )
    assert [s.plugin.config["target"] for s in host.slots] == [1, 2]
    (error,) = load_errors(
        {"a": {"use": "counter"}, "b": {"use": "counter"}}, plugin_dirs=[tmp_path]
    )
    assert error.startswith("bots.b.plugins.b: 'counter' is a module or object, already used")


def test_disabled_plugin_is_not_loaded_and_bad_subscribes_rejected(plugin_module):
    class BadSubscribes:
        subscribes = ("balance",)

        @hookimpl
        def qfexbot_event(self, event):
            pass

    host = build_host({"off": {"use": "qfexbot_no_such_module:X", "enabled": False}})
    assert host.slots == ()
    (error,) = load_errors({"s": {"use": plugin_module.add("BadSubscribes", BadSubscribes)}})
    assert (
        error == "bots.b.plugins.s: subscribes must be a tuple of event classes, got ('balance',)"
    )
