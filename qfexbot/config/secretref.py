"""Credential references (``{env = "NAME"}``, ``{file = "path"}``, inline) and reading them late.

A ``SecretRef`` is what a config object holds instead of a secret: the value is read only by
``resolve()`` at start-up, so a config can be checked without the secrets present and no secret is
ever part of a repr or an error message. A secrets file must not be open to group/others.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qfexbot.config.validate import (
    _INVALID,
    ConfigError,
    _Errors,
    _key,
    _resolve_path,
    _type_name,
)
from qfexbot.core.logs import register_secret
from qfexbot.core.secrets import Secret

__all__ = ["INSECURE_SECRET_FILES_ENV", "Credentials", "SecretRef", "secret_ref"]

INSECURE_SECRET_FILES_ENV = "QFEXBOT_ALLOW_INSECURE_SECRET_FILES"
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Credentials:
    """Resolved credentials of a venue: HMAC key pair or a JWT (never both)."""

    public_key: str | None
    secret: Secret | None
    jwt: Secret | None


@dataclass(frozen=True)
class SecretRef:
    """Where a credential comes from; read only by ``resolve()`` (late, at start-up).

    ``kind`` is ``"env"`` (``target`` = variable name), ``"file"`` (``target`` = absolute path)
    or ``"inline"`` (the value is held in a redacted ``Secret``). ``key_path`` names the
    bots.toml key, for error messages. ``scrub``: ``resolve()`` registers the value with the
    log scrubber, for secrets whose user (a plugin) may log or raise with them.
    """

    kind: Literal["env", "file", "inline"]
    target: str
    key_path: str
    inline: Secret | None = field(default=None, repr=False)
    scrub: bool = False

    def resolve(self, environ: Mapping[str, str] | None = None) -> Secret:
        """Read the value now.

        Raises:
            ConfigError: the variable is unset or empty, the file is missing, unreadable, empty,
                or readable by group/others (unless ``QFEXBOT_ALLOW_INSECURE_SECRET_FILES=1``).
        """
        secret = self._read(os.environ if environ is None else environ)
        if self.scrub:
            register_secret(secret.reveal())
        return secret

    def _read(self, env: Mapping[str, str]) -> Secret:
        if self.kind == "inline":
            assert self.inline is not None
            return self.inline
        if self.kind == "env":
            value = env.get(self.target)
            if value is None:
                raise ConfigError(
                    [f"{self.key_path}: environment variable {self.target} is not set"]
                )
            if not value.strip():
                raise ConfigError([f"{self.key_path}: environment variable {self.target} is empty"])
            return Secret(value.strip(), source=f"env:{self.target}")
        return Secret(self._read_file(env), source=f"file:{self.target}")

    def _read_file(self, env: Mapping[str, str]) -> str:
        where = f"{self.key_path}: secrets file {self.target}"
        try:
            mode = os.stat(self.target).st_mode
        except FileNotFoundError:
            raise ConfigError([f"{where} does not exist"]) from None
        except OSError as exc:
            raise ConfigError([f"{where} cannot be read ({exc.strerror})"]) from None
        if not stat.S_ISREG(mode):
            raise ConfigError([f"{where} is not a regular file"])
        if mode & 0o077 and env.get(INSECURE_SECRET_FILES_ENV) != "1":
            raise ConfigError(
                [
                    (
                        f"{where} is readable or writable by group/others"
                        f" (mode {stat.S_IMODE(mode):04o});"
                        f" run `chmod 600 {self.target}` or set {INSECURE_SECRET_FILES_ENV}=1"
                    )
                ]
            )
        try:
            with open(self.target, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise ConfigError([f"{where} cannot be read ({exc.strerror})"]) from None
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ConfigError([f"{where} is not UTF-8 text"]) from None
        if not text:
            raise ConfigError([f"{where} is empty"])
        return text


def secret_ref(
    base_dir: Path, *, allow_inline: bool, inline_hint: str = "", scrub: bool = False
) -> Callable[..., Any]:
    """Parse a credential value: a string, ``{env = "NAME"}`` or ``{file = "path"}``
    (``scrub``: see :class:`SecretRef`).

    The value itself is never shown in an error: it may be the secret.
    """

    def check(err: _Errors, value: Any, path: str) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return err.add(path, "expected a non-empty string, got an empty string")
            if not allow_inline:
                return err.add(
                    path,
                    f"inline secrets are not allowed{inline_hint}; use"
                    ' {env = "NAME"} or {file = "path"}',
                )
            inline = Secret(value.strip(), source=f"inline:{path}")
            return SecretRef("inline", "", path, inline, scrub)
        if isinstance(value, dict):
            return _reference(err, base_dir, value, path, scrub)
        return err.add(
            path, 'expected a string, {env = "NAME"} or {file = "path"}, got ' + _type_name(value)
        )

    return check


def _reference(
    err: _Errors, base_dir: Path, value: dict[str, Any], path: str, scrub: bool = False
) -> Any:
    """``{env = "NAME"}`` or ``{file = "path"}`` as a ``SecretRef``."""
    if len(value) == 1 and "env" in value:
        name = value["env"]
        if isinstance(name, str) and _ENV_NAME_RE.fullmatch(name):
            return SecretRef("env", name, path, scrub=scrub)
        return err.expected(_key(path, "env"), "an environment variable name", name)
    if len(value) == 1 and "file" in value:
        target = _resolve_path(base_dir, value["file"])
        if target is not None:
            return SecretRef("file", str(target), path, scrub=scrub)
        return err.expected(_key(path, "file"), "a path (string)", value["file"])
    if not value:
        return err.add(path, 'expected {env = "NAME"} or {file = "path"}, got an empty table')
    if "env" in value and "file" in value:
        return err.add(path, 'expected {env = "NAME"} or {file = "path"}, not both')
    err.unknown_keys(value, path, ("env", "file"))
    return _INVALID
