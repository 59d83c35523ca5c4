"""Validators for QFEX frames and bodies against the vendored spec schemas (tests/spec/schemas).

The schemas are committed data copied once from the vendor's specs (tests/spec/PROVENANCE.md);
nothing here reads ``../shared``. Draft 2020-12, with our own format checks for ``date-time``
(RFC 3339), ``uuid`` and ``uri``: jsonschema's defaults need optional packages for some of them
and accept anything when those are missing.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

__all__ = [
    "FORMATS",
    "SCHEMA_DIR",
    "ValidationError",
    "document",
    "mds_validator",
    "rest_validator",
    "trade_validator",
    "validate_mds_frame",
    "validate_problem",
    "validate_rest",
    "validate_trade_frame",
]

SCHEMA_DIR = Path(__file__).parent / "schemas"
DOCUMENTS = ("qfex_trade", "qfex_mds", "qfex_rest")

FORMATS = FormatChecker(formats=())
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        raise ValueError(f"not RFC 3339: {value!r}")
    # fromisoformat (3.11) takes 'Z' and any fraction length; it checks the calendar fields
    datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    return True


@FORMATS.checks("uuid", raises=ValueError)
def _uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if len(value) != 36:
        raise ValueError(f"not a hyphenated UUID: {value!r}")
    uuid.UUID(value)
    return True


@FORMATS.checks("uri", raises=ValueError)
def _uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", parts.scheme) or " " in value:
        raise ValueError(f"not an absolute URI: {value!r}")
    return True


@cache
def document(name: str) -> dict[str, Any]:
    """One vendored schema document (``qfex_trade``, ``qfex_mds`` or ``qfex_rest``)."""
    return json.loads((SCHEMA_DIR / f"{name}.json").read_text())


def _validator(name: str, pointer: str) -> Draft202012Validator:
    root = dict(document(name))
    root.pop("$schema", None)
    root["$ref"] = pointer
    return Draft202012Validator(root, format_checker=FORMATS)


@cache
def trade_validator(message: str) -> Draft202012Validator:
    """The validator of one trade-socket reply message, by its top-level key."""
    if message not in document("qfex_trade")["messages"]:
        raise KeyError(f"no vendored trade message {message!r}")
    return _validator("qfex_trade", f"#/messages/{message}")


@cache
def mds_validator(channel: str) -> Draft202012Validator:
    """The validator of one market-data channel's (flat) frame payload."""
    payload = document("qfex_mds")["channels"][channel]
    return _validator("qfex_mds", f"#/$defs/{payload}")


@cache
def rest_validator(component: str) -> Draft202012Validator:
    """The validator of one OpenAPI component schema."""
    if component not in document("qfex_rest")["$defs"]:
        raise KeyError(f"no vendored REST component {component!r}")
    return _validator("qfex_rest", f"#/$defs/{component}")


def validate_trade_frame(frame: Any) -> str:
    """Validate a trade-socket frame: one top-level key naming the message. Returns the key.

    Raises:
        ValidationError: the frame breaks its message's schema (or is not one object of one key).
    """
    if not isinstance(frame, dict) or len(frame) != 1:
        raise ValidationError(f"a trade reply is an object with one key, got {frame!r}")
    (key,) = frame
    try:
        validator = trade_validator(key)
    except KeyError:
        raise ValidationError(f"unknown trade message {key!r}") from None
    validator.validate(frame)
    return key


def validate_mds_frame(frame: Any) -> str:
    """Validate a flat market-data frame: its ``type`` names the channel. Returns the channel.

    The AsyncAPI wraps payloads in a ``MessageEnvelope``, but its own examples (and the venue)
    send flat objects; plan §1.2: validate the payload schema plus ``type == channel``.
    """
    if not isinstance(frame, dict):
        raise ValidationError(f"a market-data frame is an object, got {frame!r}")
    channel = frame.get("type")
    if channel not in document("qfex_mds")["channels"]:
        raise ValidationError(f"unknown market-data channel {channel!r}")
    mds_validator(channel).validate(frame)
    return channel


def validate_rest(component: str, body: Any) -> None:
    """Validate a REST response body against an OpenAPI component schema."""
    rest_validator(component).validate(body)


def validate_problem(body: Any) -> None:
    """Validate a problem+json body against ``ErrorModel``."""
    rest_validator("ErrorModel").validate(body)
