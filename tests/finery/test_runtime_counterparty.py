"""Finery positions and limits per counterparty: ``PositionEvent.by_counterparty`` beside the
net size, ``BalanceEvent.counterparty`` per limit (frames as protocol/finery.md §3.4, §3.7)."""

from __future__ import annotations

import json
from decimal import Decimal

from qfexbot.events import BalanceEvent, PositionEvent
from qfexbot.venues.finery.parse import FineryParser


def events(parser: FineryParser, frame: list, kind: type) -> list:
    return [e for e in parser.parse(json.dumps(frame)) if isinstance(e, kind)]


def test_positions_carry_each_counterparty_beside_the_net() -> None:
    parser = FineryParser("fm", "1", clock=lambda: 1.0)
    snapshot = ["K", 0, "S", [["BTC", -10000000, 2, 0, -10000000],
                              ["USD", 100000000000, 2, 100000000000, 0],
                              ["BTC", 30000000, 3, 30000000, 0]]]  # fmt: skip
    btc = next(e for e in events(parser, snapshot, PositionEvent) if e.symbol == "BTC")
    assert btc.size == Decimal("0.2")
    assert btc.by_counterparty == (("2", Decimal("-0.1")), ("3", Decimal("0.3")))
    (update,) = events(parser, ["K", 0, "-", ["BTC", 0, 3, 0, 0]], PositionEvent)
    assert update.size == Decimal("-0.1") and update.by_counterparty == (("2", Decimal("-0.1")),)


def test_limits_name_their_counterparty_in_every_shape() -> None:
    parser = FineryParser("fm", "1", clock=lambda: 1.0)
    own = {"grossLimit": 100000000000, "asset": "USD", "limitUtilization": 25000000000}
    current = {"counterpartyId": 12, "ownLimit": {**own, "equity": 0}}
    intermediate = [7, "USD", 500000000, None, None, 100000000, 0, 0, 0, 0, 0, 0]
    oldest = ["USD", 0, 300000000, 0, 100000000, 0, 9, 0]
    found = [
        (e.counterparty, e.available)
        for e in events(parser, ["L", 0, "S", [current, intermediate, oldest]], BalanceEvent)
    ]
    assert found == [("12", Decimal(750)), ("7", Decimal(4)), ("9", Decimal(2))]
