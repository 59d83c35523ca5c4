"""Finery settlement feeds ``S``, ``R``, ``N`` as ``SettlementEvent`` s, from frames written as
protocol/finery.md §3.5, §3.9 and §3.10 show them (current and legacy shapes)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from qfexbot.core.venue import ParseError
from qfexbot.events import SettlementEvent
from qfexbot.venues.finery.methods import FineryMethods
from qfexbot.venues.finery.parse import Bound, FineryParser


def parse(frame: list) -> list:
    return FineryParser("fm", "1", clock=lambda: 42.0).parse(json.dumps(frame))


def settlements(frame: list) -> list[SettlementEvent]:
    return [e for e in parse(frame) if isinstance(e, SettlementEvent)]


def test_settlement_order_objects_each_update_an_array() -> None:
    order = {"settlementOrderId": 77, "clientId": 1, "counterpartyId": 2, "createdAt": 1,
             "comment": "eod", "flags": 0, "currency1": "USD", "size1": 25050000000,
             "currency2": "BTC", "size2": 1000000}  # fmt: skip
    items = parse(["S", 0, "S", [order]])
    assert any(isinstance(i, Bound) and i.feed == "S" for i in items)
    (event,) = [i for i in items if isinstance(i, SettlementEvent)]
    assert (event.record, event.action, event.settlement_id, event.counterparty) == (
        "order", "snapshot", "77", "2",
    )  # fmt: skip
    assert (event.direction, event.currency, event.amount) == ("outgoing", "USD", Decimal("250.5"))
    assert (event.counter_currency, event.counter_amount) == ("BTC", Decimal("0.01"))
    assert event.comment == "eod" and not event.committed and event.received_at == 42.0
    deal = {**order, "size1": 0, "currency2": "USD", "size2": 100000000, "settlementId": 9,
            "commitedAt": 5}  # fmt: skip
    (done,) = settlements(["S", 0, "D", [deal]])
    assert (done.action, done.committed, done.direction, done.amount) == (
        "committed", True, "incoming", Decimal(1),
    )  # fmt: skip


def test_legacy_settlement_order_array() -> None:
    (event,) = settlements(["S", 0, "+", [1229, "BTC", "USD", 10000000, 0, 1, 2, "BTC", ""]])
    assert (event.settlement_id, event.currency, event.amount, event.counterparty) == (
        "1229", "BTC", Decimal("0.1"), "2",
    )  # fmt: skip
    assert event.action == "added"


def test_settlement_requests_incoming_and_outgoing() -> None:
    incoming = [4, "USD", 1, 10000000000, "please", 0, "SWIFT", 123456, 1000]
    outgoing = [5, "BTC", 0, 0, "", 0]  # an older 6-field row: no request id
    events = settlements(["R", 0, "S", [[incoming], [outgoing]]])
    assert [(e.record, e.direction, e.counterparty, e.currency, e.amount, e.settlement_id)
            for e in events] == [
        ("request", "incoming", "4", "USD", Decimal(100), "123456"),
        ("request", "outgoing", "5", "BTC", Decimal(0), ""),
    ]  # fmt: skip
    (removed,) = settlements(["R", 0, "-", [[incoming], []]])
    assert removed.action == "removed"


def test_settlement_transactions_snapshot_and_commit() -> None:
    tx = [2, "USD", 5000000000, 0, "wire", 1, "ref-1", 2, 0, 3, 8801, 0, "SWIFT"]
    (snap,) = settlements(["N", 0, "S", [0, [], [tx]]])
    assert (snap.record, snap.direction, snap.settlement_id, snap.amount, snap.comment) == (
        "transaction", "outgoing", "8801", Decimal(50), "wire",
    )  # fmt: skip
    (done,) = settlements(["N", 0, "D", [[], [tx]]])
    assert done.committed and done.action == "committed"


@pytest.mark.parametrize(
    "frame",
    [
        ["S", 0, "+", [{"counterpartyId": 2}]],  # no settlementOrderId
        ["R", 0, "+", [[[4, "USD"]], []]],  # row too short
        ["N", 0, "D", [[]]],  # not [[incoming], [outgoing]]
        ["N", 0, "+", [[], [[2, "USD", 1.5, 0, ""]]]],  # a float amount
    ],
)
def test_malformed_settlement_frames_are_parse_errors(frame: list) -> None:
    with pytest.raises(ParseError):
        parse(frame)


def test_settlement_transactions_reply_finds_a_transaction_by_its_comment() -> None:
    # settlementTransactions -> [[incoming...], [outgoing...]] in the N row layout (§4.6, §3.10)
    mine = [2, "USD", 12345000000, 0, "qfexbot:e-17", 1, "", 0, 0, 0, 901, 0, ""]
    other = [3, "USD", 100000000, 0, "manual", 1, "", 0, 0, 0, 902, 0, ""]
    parser = FineryParser("fm", "1", clock=lambda: 42.0)
    events = parser.settlement_reply("settlementTransactions", [[other], [mine]])
    found = [e for e in events if e.comment == "qfexbot:e-17"]
    assert [(e.settlement_id, e.direction, e.amount, e.counterparty) for e in found] == [
        ("901", "outgoing", Decimal("123.45"), "2")
    ]
    with pytest.raises(ValueError):
        parser.settlement_reply("settlementRequests", [[[4, "USD"]]])


class _Calls(FineryMethods):
    """The methods' transport seam (``call``), answering what the reference documents."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict | None]] = []

    async def call(self, method: str, content: dict | None = None) -> object:
        self.sent.append((method, content))
        return {"settlementTransactionId": 901}


async def test_settlement_methods_send_the_documented_parameters() -> None:
    calls = _Calls()
    reply = await calls.add_outgoing_settlement_transaction(
        counterparty_id=2, currency="USD", amount=Decimal("123.45"), comment="qfexbot:e-17"
    )
    await calls.settlement_transactions()
    assert reply == {"settlementTransactionId": 901}
    assert calls.sent == [
        ("addOutgoingSettlementTransaction",
         {"counterpartyId": 2, "currency": "USD", "amount": 12345000000,
          "comment": "qfexbot:e-17"}),
        ("settlementTransactions", None),
    ]  # fmt: skip
