"""The ``demo`` venue that the runtime, ops and process tests write into their bots.toml.

One user (``PRIMARY``) with a treasury and two desks. ``qfexbot.testing.write_bots_toml`` writes
the plugin harness's own file (venue ``sim``, bot ``bot``, generated account ids); these tests
pin the names and ids they assert on, a secret, session timings and extra runtime keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

PRIMARY = "0020ce8e-eaee-480e-8d7f-b9241d756ee5"
DESK_A = "11111111-1111-4111-8111-111111111111"
DESK_B = "22222222-2222-4222-8222-222222222222"
# The embedded simulator's table: desk-a starts below a top-up band, desk-b well inside it.
SIM = "pulse_interval = 0.1\ndeposits = { treasury = 100000, desk-a = 50, desk-b = 5000 }"


def runtime_table(*, log_level: str, more: str = "") -> str:
    """``[runtime]``: journal and kill switch under ``var/``, plugins from ``plugins/``.

    Args:
      log_level: the ``log_level`` key.
      more: further TOML lines of the table, as they are.
    """
    lines = [
        "[runtime]",
        'journal = "var/journal.sqlite"',
        'plugin_dirs = ["plugins"]',
        'kill_switch_file = "var/PAUSED"',
        f'log_level = "{log_level}"',
    ]
    return "\n".join([*lines, more] if more else lines) + "\n\n"


def demo_venue(
    *,
    public_key: str,
    secret: str,
    session: Mapping[str, float],
    sim: str | None = None,
    connection: str = "simulator = true",
) -> str:
    """``[venues.demo]`` with its accounts and session tables.

    Args:
      public_key: the key.
      secret: the ``secret`` value as TOML (a quoted string or an inline table).
      session: the ``[venues.demo.session]`` keys.
      sim: the ``[venues.demo.sim]`` body (TOML lines), for an embedded simulator.
      connection: TOML lines saying where the venue is (the embedded simulator, or its URLs).
    """
    text = (
        "[venues.demo]\n"
        'kind = "qfex"\n'
        f"{connection}\n"
        f'user_id = "{PRIMARY}"\n'
        f'public_key = "{public_key}"\n'
        f"secret = {secret}\n"
        "\n"
        "[venues.demo.accounts]\n"
        'treasury = "primary"\n'
        f'desk-a = "{DESK_A}"\n'
        f'desk-b = "{DESK_B}"\n'
        "\n"
        "[venues.demo.session]\n"
        + "".join(f"{key} = {value}\n" for key, value in session.items())
        + "\n"
    )
    return text + (f"[venues.demo.sim]\n{sim}\n\n" if sim is not None else "")


def watch_bot(*, channels: list[str], instance: str, use: str, options: str = "") -> str:
    """Bot ``watch`` on both desks (treasury -> desk-a allowed) with one plugin instance.

    Args:
      options: further TOML lines of the plugin's table, as they are.
    """
    return (
        "[bots.watch]\n"
        'venue = "demo"\n'
        'accounts = ["desk-a", "desk-b"]\n'
        f"channels = {json.dumps(channels)}\n"
        "\n"
        "[bots.watch.limits]\n"
        'allowed_pairs = [["treasury", "desk-a"]]\n'
        "min_interval = 0\n"
        "\n"
        f"[bots.watch.plugins.{instance}]\n"
        f'use = "{use}"\n'
        f"{options}\n"
    )
