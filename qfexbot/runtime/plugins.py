"""A bot's plugins from its bots.toml tables: ``config`` objects in, a ``PluginHost`` out.

The loader (``qfexbot.core.plugins``) knows no config model and takes the option validator as an
argument; this binds it to the config layer's ``validate_plugin_config`` for the runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from qfexbot.config import BotConfig, VenueConfig, validate_plugin_config
from qfexbot.core.context import ActionsBackend
from qfexbot.core.plugins import PluginHost, load_plugin_host
from qfexbot.events import AlertEvent

__all__ = ["build_plugin_host"]


def build_plugin_host(
    bot: BotConfig,
    venue: VenueConfig,
    *,
    plugin_dirs: Sequence[Path],
    actions: ActionsBackend,
    state: dict[str, Any] | None = None,
    alerts: Callable[[AlertEvent], None] | None = None,
) -> PluginHost:
    """Load, validate, instantiate and register every enabled plugin of ``bot``.

    Args:
      bot: the bot's config; disabled plugin instances (``enabled = false``) are skipped.
      venue: the bot's venue config (its account aliases feed ``ctx.accounts``).
      plugin_dirs: directories of local plugin modules (``RuntimeConfig.plugin_dirs``).
      actions: the backend that ``ctx.transfer`` etc. forward to.
      state: the dict shared by this bot's plugins as ``ctx.state`` (default: a new one).
      alerts: where ``ctx.alert`` sends (the runtime's ``AlertHub.emit``).

    Raises:
      PluginLoadError: with one message per problem, across all the bot's plugins.
    """
    return load_plugin_host(
        bot,
        venue,
        plugin_dirs=plugin_dirs,
        actions=actions,
        validate=validate_plugin_config,
        state=state,
        alerts=alerts,
    )
