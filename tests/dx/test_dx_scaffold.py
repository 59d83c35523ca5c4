"""qfexbot new-plugin: what it writes, that it never overwrites, that a package's test passes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import tomli

from qfexbot.cli import main
from qfexbot.cli.scaffold import ScaffoldError, class_name, plan_module, plan_package
from qfexbot.core.plugins import resolve_plugin


def test_module_and_test_are_written_and_load_as_a_plugin(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["new-plugin", "low_balance", "--dir", "src/plugins", "--tests", "checks"]) == 0
    out = capsys.readouterr().out
    assert "created src/plugins/low_balance.py" in out and "[bots.BOT.plugins.low_balance]" in out
    test_text = (tmp_path / "checks" / "test_low_balance.py").read_text()
    assert 'PLUGINS = Path(__file__).resolve().parent / "../src/plugins"' in test_text
    compile(test_text, "test_low_balance.py", "exec")

    target, _ = resolve_plugin("low_balance", [tmp_path / "src" / "plugins"])
    assert target.__name__ == "LowBalance"
    assert set(target.config_schema) == {"min_balance", "report_every"}


def test_existing_files_are_never_overwritten_and_nothing_is_half_written(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_hello.py").write_text("# mine\n")
    assert main(["new-plugin", "hello"]) == 1
    err = capsys.readouterr().err
    assert "refusing to overwrite existing file(s): tests/test_hello.py" in err
    assert (tmp_path / "tests" / "test_hello.py").read_text() == "# mine\n"
    assert not (tmp_path / "plugins").exists()


@pytest.mark.parametrize(
    "name", ["Hello", "9lives", "my-plugin", "a__b", "trailing_", "json", "qfexbot", "", "x" * 65]
)
def test_bad_names_are_refused_with_the_rule(tmp_path, name):
    with pytest.raises(ScaffoldError, match="invalid plugin name"):
        plan_module(name, tmp_path / "plugins", tmp_path / "tests")


def test_class_name():
    assert class_name("low_balance") == "LowBalance"
    assert class_name("x2") == "X2"


def test_package_has_the_entry_point_and_its_test_passes_uninstalled(tmp_path):
    files = plan_package("low_balance", tmp_path)
    root = tmp_path / "qfexbot-low-balance"
    assert set(files) == {
        root / "pyproject.toml",
        root / "README.md",
        root / "src" / "qfexbot_low_balance" / "__init__.py",
        root / "tests" / "test_low_balance.py",
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    project = tomli.loads(files[root / "pyproject.toml"])
    assert project["project"]["name"] == "qfexbot-low-balance"
    assert project["project"]["entry-points"]["qfexbot.core.plugins"] == {
        "low_balance": "qfexbot_low_balance:LowBalance"
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-W", "error", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
