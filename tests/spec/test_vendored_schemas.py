"""The vendored spec schemas themselves: well-formed, every $ref resolves, the component list is
the one PROVENANCE.md records, and each validator rejects a hand-made bad frame."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from validate import (
    DOCUMENTS,
    ValidationError,
    document,
    validate_mds_frame,
    validate_problem,
    validate_rest,
    validate_trade_frame,
)

PROVENANCE = Path(__file__).parent / "PROVENANCE.md"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _provenance_list(name: str, kind: str) -> list[str]:
    """The names PROVENANCE.md lists on the line ``- <kind> (<name>): a, b, c``."""
    text = PROVENANCE.read_text()
    match = re.search(rf"^- {kind} \({name}\): (.+)$", text, re.MULTILINE)
    assert match, f"PROVENANCE.md has no '{kind} ({name})' line"
    return [n.strip().strip("`") for n in match.group(1).split(",")]


@pytest.mark.parametrize("name", DOCUMENTS)
def test_schema_documents_are_valid_2020_12(name: str) -> None:
    doc = document(name)
    Draft202012Validator.check_schema(doc)
    for schema in doc["$defs"].values():
        Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_ref_resolves_inside_the_document(name: str) -> None:
    doc = document(name)
    refs = _refs(doc)
    if name != "qfex_mds":  # the market-data payloads vendored so far reference nothing
        assert refs, "a vendored document without references is suspicious"
    for ref in refs:
        assert ref.startswith("#/$defs/"), ref
        assert ref.removeprefix("#/$defs/") in doc["$defs"], ref


@pytest.mark.parametrize("name", DOCUMENTS)
def test_component_list_matches_provenance(name: str) -> None:
    assert sorted(document(name)["$defs"]) == sorted(_provenance_list(name, "components"))
    assert "nullable" not in str(document(name)), "nullable must be translated to type [T, null]"


def test_message_and_channel_lists_match_provenance() -> None:
    assert sorted(document("qfex_trade")["messages"]) == sorted(
        _provenance_list("qfex_trade", "messages")
    )
    assert sorted(document("qfex_mds")["channels"]) == sorted(
        _provenance_list("qfex_mds", "channels")
    )


GOOD_ORDER = {
    "order_id": "5b309929-206f-40ec-804d-cbe46e81afc1",
    "symbol": "AAPL-USD",
    "status": "NO_SUCH_ORDER",
    "quantity": 0.0,
    "price": 0.0,
    "take_profit": 0.0,
    "stop_loss": 0.0,
    "side": "BUY",
    "type": "LIMIT",
    "time_in_force": "GTC",
    "user_id": "aaaaaaaa-0000-4000-8000-000000000001",
    "client_order_id": "",
    "quantity_remaining": 0.0,
    "update_time": 1760545414.5,
    "trade_id": None,
}


def test_trade_validator_accepts_good_and_rejects_bad_frames() -> None:
    assert validate_trade_frame({"order_response": GOOD_ORDER}) == "order_response"
    for field, bad in (
        ("side", ""),  # the D1 regression
        ("type", ""),
        ("time_in_force", ""),
        ("status", "REJECTED_WOULD_BREACH_MAX_POSITION"),  # the D2 regression
        ("update_time", "now"),
        ("trade_id", 7),
    ):
        with pytest.raises(ValidationError):
            validate_trade_frame({"order_response": {**GOOD_ORDER, field: bad}})
    for frame in (
        {"err": {"message": "no code"}},
        {"err": {"error_code": "Oops"}},
        {"subscribed": "trades"},
        {"authenticated": "yes"},
        {"user_leverage_response": [{"leverage": 10}]},
        {"all_orders_response": {"orders": [{**GOOD_ORDER, "side": ""}], "twaps": []}},
        {"nonsense": {}},
        {"ack": {}, "err": {}},
    ):
        with pytest.raises(ValidationError):
            validate_trade_frame(frame)


def test_mds_validator_accepts_good_and_rejects_bad_frames() -> None:
    good = {
        "type": "level2",
        "symbol": "AAPL-USD",
        "time": "2025-08-20T09:26:36.861195808Z",
        "bid": [["564.1", "0.1"]],
        "ask": [["566.2", "2.118"]],
        "sequence": 3,
    }
    assert validate_mds_frame(good) == "level2"
    for bad in (
        {**good, "bid": [["564.1"]]},
        {**good, "ask": [[566.2, 2.1]]},
        {**good, "time": "2025-08-20 09:26"},
        {**good, "sig_figs": "2"},
        {**good, "type": "candles"},
        {"type": "mark_price", "symbol": "AAPL-USD", "price": 437.45},
    ):
        with pytest.raises(ValidationError):
            validate_mds_frame(bad)


def test_rest_validators_reject_extra_and_missing_fields() -> None:
    body = {
        "$schema": "https://api.qfex.com/schemas/AccountEquityResponseBody.json",
        "count": 0,
        "data": [],
        "duration": "1w",
        "end": "2025-08-20T09:26:36.861195808Z",
        "interval_minutes": 1,
    }
    validate_rest("AccountEquityResponseBody", body)
    with pytest.raises(ValidationError):
        validate_rest("AccountEquityResponseBody", {**body, "interval_minutes": 0.0008})  # D3
    with pytest.raises(ValidationError):
        validate_rest("AccountEquityResponseBody", {**body, "extra": 1})
    with pytest.raises(ValidationError):
        validate_rest("CreateSubaccountResponseBody", {"account_id": "not-a-uuid"})
    validate_problem({"title": "Not Found", "status": 404, "detail": "x", "type": "about:blank"})
    with pytest.raises(ValidationError):
        validate_problem({"title": "Not Found", "status": "404"})
    with pytest.raises(ValidationError):
        validate_problem({"title": "x", "errors": [{"location": "q", "hint": "no such key"}]})
    with pytest.raises(ValidationError):
        validate_problem({"title": "x", "instance": "not a uri"})
