"""The package list setuptools cannot say in pyproject.toml: qfexbot's packages, plus plugins/
installed as ``qfexbot_plugins`` (its source folder keeps its name; pyproject's ``packages.find``
cannot map a folder to another package name). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["qfexbot", "qfexbot.*"]), "qfexbot_plugins"],
    package_dir={"qfexbot_plugins": "plugins"},
    package_data={
        "qfexbot.cli": ["starter/*"],
        "qfexbot.ops.console": ["*.html", "*.js", "*.css"],  # the dashboard page
    },
)
