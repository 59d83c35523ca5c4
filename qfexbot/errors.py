"""One root for every error qfexbot raises on purpose, and the family plugins catch.

``QfexbotError`` is the root: ``except QfexbotError`` catches anything qfexbot means to raise
and nothing it does not. Plugins catch ``ActionError`` (or one of its children) around
``ctx`` actions; a venue's own error never reaches a plugin unwrapped.

``retryable`` marks an error that may succeed if the same call is made again later (a session
reconnecting, a venue busy); ``fatal`` one that will not get better without an operator
(rejected credentials, a bad config).
"""

from __future__ import annotations

from collections.abc import Iterable
from os import PathLike
from typing import Any, ClassVar

__all__ = [
    "ActionError",
    "ActionRejected",
    "ActionUnavailable",
    "ConfigError",
    "JournalError",
    "QfexbotError",
    "SimulatorError",
    "UnknownAccountError",
    "VenueError",
    "format_errors",
]


class QfexbotError(Exception):
    """Root of every error qfexbot raises on purpose."""

    retryable: ClassVar[bool] = False
    fatal: ClassVar[bool] = False


class ConfigError(QfexbotError):
    """A configuration (bots.toml, a plugin's settings) is not valid.

    ``errors`` holds one line per problem, each naming its key path; ``path`` is the file.
    ``str()`` lists every problem, so printing the exception is enough for an operator.
    """

    fatal = True

    def __init__(
        self,
        errors: Iterable[str],
        path: str | PathLike[str] | None = None,
        *,
        partial: Any = None,
    ) -> None:
        self.errors: list[str] = list(errors)
        self.path = path
        self.partial = partial
        """The part of the configuration that is valid (an ``AppConfig`` of the bots with no
        problem), or None: what ``qfexbot check`` still loads plugins from, so one pass reports
        file and plugin problems together."""
        super().__init__(str(self))

    def __str__(self) -> str:
        return format_errors(self.errors, self.path)


def format_errors(errors: Iterable[str], path: str | PathLike[str] | None = None) -> str:
    """Render problems as a header line plus one indented line each (for ``qfexbot check``)."""
    errors = list(errors)
    where = f"{path}: " if path is not None else ""
    noun = "problem" if len(errors) == 1 else "problems"
    return "\n".join([f"{where}{len(errors)} configuration {noun}"] + [f"  {e}" for e in errors])


class JournalError(QfexbotError):
    """The money journal refused or could not do what was asked (closed, locked, rolled back)."""


class VenueError(QfexbotError):
    """A venue client error: the venue answered with an error, or could not be reached."""


class SimulatorError(QfexbotError):
    """A simulator refused a request or its own configuration."""


class ActionError(QfexbotError, RuntimeError):
    """An action a plugin asked for (``ctx.transfer``, ``ctx.add_order``, ...) did not happen."""


class ActionUnavailable(ActionError):
    """An order or cancel could not be sent now: the account's session is not live (e.g. it is
    reconnecting). Expected during reconnects; catch it and try again on a later event.

    ``maybe_sent`` is True when the socket closed while sending: the venue may still have the
    command, so look for its ``client_order_id`` in order events before sending it again.
    """

    retryable = True

    def __init__(self, message: str, *, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class UnknownAccountError(ActionError, LookupError):
    """An account alias or id that the bot's venue does not know."""


class ActionRejected(ActionError):
    """The venue refused an action (an order it would not accept); ``code`` is the venue's
    reason, when it gave one."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
