"""Finery simulator settlements (feeds S, R, N and §4.6 methods) through a raw client."""

from __future__ import annotations

import time

import httpx
import pytest
import trio
from finery_wire import Wire, connect, feed, rest
from trio_websocket import ConnectionClosed

from qfexbot.sim.finery import FinerySimClient, FinerySimConfig, FinerySimulator

TAKER, MAKER = 1, 2
CLIENTS = (
    FinerySimClient("t_key", "t_secret", TAKER, "taker"),
    FinerySimClient("m_key", "m_secret", MAKER, "maker"),
)
KEYS = {c.client_id: (c.key, c.secret) for c in CLIENTS}
BTC = 100_000_000
PRICE = 6_000_000_000_000  # 60000 USD
OWED = PRICE // 10  # 6000 USD: what the taker owes after buying 0.1 BTC


@pytest.fixture
async def sim(nursery: trio.Nursery) -> FinerySimulator:
    simulator = FinerySimulator(FinerySimConfig(clients=CLIENTS))
    simulator.urls = await nursery.start(simulator.serve)  # type: ignore[attr-defined]
    return simulator


def conn(sim: FinerySimulator, client: int) -> object:
    key, secret = KEYS[client]
    return connect(sim.urls.ws_url, key, secret)  # type: ignore[attr-defined]


async def trade(maker: Wire, taker: Wire) -> None:
    """The taker buys 0.1 BTC from the maker: it owes 6000 USD, the maker 0.1 BTC."""
    rested = await maker.request(
        "add", instrument="BTC-USD", side="ask", type="limit", price=PRICE, size=BTC
    )
    assert "reply" in rested, rested
    taken = await taker.request(
        "add", instrument="BTC-USD", side="bid", type="marketIOC", size=BTC // 10
    )
    assert taken["reply"]["remainingSize"] == 0


def usd(position_frames: list[list[object]]) -> list[object]:
    return next(p for p in position_frames if p[0] == "USD")


async def test_request_transaction_send_commit_moves_positions(sim: FinerySimulator) -> None:
    with trio.fail_after(10):
        async with conn(sim, MAKER) as m, conn(sim, TAKER) as t:
            await trade(m, t)
            for wire in (m, t):
                assert (await wire.bind("R"))[3] == [[], []]
                assert (await wire.bind("N"))[3] == [0, [], []]
                assert (await wire.bind("S", "USD"))[3] == []
                await wire.bind("K", "USD")
            # The maker (owed USD) asks the taker to pay.
            asked = await m.request(
                "addIncomingSettlementRequest",
                counterpartyId=TAKER,
                currency="USD",
                amount=OWED,
                comment="invoice 1",
                cancelTimestamp=0,
            )
            request_id = asked["reply"]["requestId"]
            incoming = await m.wait(feed("R", "+"))
            assert incoming[3] == [
                [[TAKER, "USD", 0, OWED, "invoice 1", 0, "", request_id, incoming[3][0][0][8]]],
                [],
            ]
            outgoing = await t.wait(feed("R", "+"))
            assert outgoing[3][0] == [] and outgoing[3][1][0][0] == MAKER
            again = await m.request(
                "addIncomingSettlementRequest", counterpartyId=TAKER, currency="USD"
            )
            assert again["error"] == 130
            # The taker declares, sends, and the maker commits.
            added = await t.request(
                "addOutgoingSettlementTransaction",
                counterpartyId=MAKER,
                currency="USD",
                amount=OWED,
                comment="intent-42",
                network="SWIFT",
            )
            txn = added["reply"]["settlementTransactionId"]
            created = await m.wait(feed("N", "+"))
            assert created[3][0][0][:5] == [TAKER, "USD", OWED, 0, "intent-42"]
            assert (await m.request("commitIncomingSettlementTransaction", transactionId=txn))[
                "error"
            ] == 142
            sent = await t.request(
                "sendOutgoingSettlementTransaction", transactionId=txn, txId="bank-ref-1"
            )
            assert sent["reply"] == {}
            modified = await t.wait(feed("N", "M"))
            assert modified[3][1][0][6] == "bank-ref-1" and modified[3][1][0][7] > 0
            order = (await t.wait(feed("S", "+")))[3][0]
            assert order["flags"] == 1 and order["size1"] == OWED and order["size2"] == 0
            theirs = (await m.wait(feed("S", "+")))[3][0]
            assert theirs["counterpartyId"] == TAKER and theirs["size2"] == OWED
            assert (
                await t.request("sendOutgoingSettlementTransaction", transactionId=txn, txId="x")
            )["error"] == 142
            assert (await t.request("commitIncomingSettlementTransaction", transactionId=txn))[
                "error"
            ] == 144
            positions = await t.request("positions")
            assert positions["reply"][3] == [
                [
                    order["settlementOrderId"],
                    "USD",
                    "USD",
                    OWED,
                    0,
                    order["createdAt"],
                    MAKER,
                    "SWIFT",
                    "SWIFT",
                ]
            ]
            committed = await m.request("commitIncomingSettlementTransaction", transactionId=txn)
            assert committed["reply"] == {}
            deal = (await t.wait(feed("S", "D")))[3][0]
            assert (
                deal["settlementOrderId"] == order["settlementOrderId"] and deal["settlementId"] > 0
            )
            done = await t.wait(feed("N", "D"))
            assert done[3][1][0][3] == order["settlementOrderId"] and done[3][1][0][9] > 0
            mine = (await t.wait(lambda f: f[0] == "K" and f[2] == "M" and f[3][1] == 0))[3]
            assert mine == ["USD", 0, MAKER, 0, 0]
            await m.wait(lambda f: f[0] == "K" and f[2] == "M" and f[3][1] == 0)
            assert (await m.wait(feed("R", "-")))[3][0][0][7] == request_id  # request fulfilled
            # Queries agree with the feeds.
            assert (await t.request("settlementTransactions"))["reply"] == [[], []]
            assert (await t.request("settlementRequests"))["reply"] == [[], []]
            assert (await t.request("settlementOrders"))["reply"] == []
            history = (await t.request("settlementHistory"))["reply"]
            assert [row[10] for row in history] == [deal["settlementId"]]
            assert history[0][3:5] == [OWED, 0] and history[0][7] == "intent-42"
            txns = (await m.request("settlementTransactionHistory", limit=1))["reply"]
            assert [row[10] for row in txns] == [txn]
            assert (await m.request("settlementTransactionHistory", till=txn))["reply"] == []
            assert (await t.request("delOutgoingSettlementTransaction", transactionId=txn))[
                "error"
            ] == 144


async def test_cancelled_transaction_and_rejected_requests_move_nothing(
    sim: FinerySimulator,
) -> None:
    with trio.fail_after(10):
        async with conn(sim, MAKER) as m, conn(sim, TAKER) as t:
            await trade(m, t)
            await t.bind("S")
            await m.bind("N")
            bad = [
                ({"counterpartyId": TAKER, "currency": "USD", "amount": OWED}, 143),
                ({"counterpartyId": 99, "currency": "USD", "amount": OWED}, 133),
                ({"counterpartyId": MAKER, "currency": "USD", "amount": 0}, 141),
                ({"counterpartyId": MAKER, "currency": "XXX", "amount": OWED}, 26),
            ]
            for content, code in bad:
                assert (await t.request("addOutgoingSettlementTransaction", **content))[
                    "error"
                ] == code
            txn = (
                await t.request(
                    "addOutgoingSettlementTransaction",
                    counterpartyId=MAKER,
                    currency="USD",
                    amount=OWED,
                )
            )["reply"]["settlementTransactionId"]
            await t.request("sendOutgoingSettlementTransaction", transactionId=txn, txId="ref")
            await t.wait(feed("S", "+"))
            assert (await t.request("delOutgoingSettlementTransaction", transactionId=txn))[
                "reply"
            ] == {}
            assert (await t.wait(feed("S", "-")))[3][0]["size1"] == OWED
            removed = await m.wait(feed("N", "-"))
            assert removed[3][0][0][8] == 2  # cancelled by sender
            assert usd((await t.request("positions"))["reply"][1]) == [
                "USD",
                -OWED,
                MAKER,
                0,
                -OWED,
            ]
            # A request the payer rejects, and one the receiver withdraws.
            await m.request("addIncomingSettlementRequest", counterpartyId=TAKER, currency="USD")
            assert (
                await t.request(
                    "delIncomingSettlementCPRequest", counterpartyId=MAKER, currency="USD"
                )
            )["reply"] == {}
            assert (await m.request("settlementRequests"))["reply"] == [[], []]
            assert (
                await m.request(
                    "delIncomingSettlementRequest", counterpartyId=TAKER, currency="USD"
                )
            )["error"] == 131
            late = await m.request(
                "addIncomingSettlementRequest",
                counterpartyId=TAKER,
                currency="USD",
                cancelTimestamp=1,
            )
            assert late == {
                "event": "request",
                "reqId": late["reqId"],
                "error": 9,
                "param": "cancelTimestamp",
            }


async def test_settling_a_currency_without_a_position_opens_one(sim: FinerySimulator) -> None:
    with trio.fail_after(10):
        async with conn(sim, MAKER) as m, conn(sim, TAKER) as t:
            await t.bind("K", "ETH")
            added = await t.request(
                "addOutgoingSettlementTransaction", counterpartyId=MAKER, currency="ETH", amount=5
            )
            txn = added["reply"]["settlementTransactionId"]
            await t.request("sendOutgoingSettlementTransaction", transactionId=txn, txId="0xabc")
            opened = await t.wait(feed("K", "+"))
            assert opened[3] == ["ETH", 0, MAKER, 5, 0]  # reachable once the order commits
            await m.request("commitIncomingSettlementTransaction", transactionId=txn)
            assert (await t.wait(feed("K", "M")))[3] == ["ETH", 5, MAKER, 5, 0]
            theirs = (await m.request("positions"))["reply"][1]
            assert theirs == [["ETH", -5, TAKER, 0, -5]]


async def test_a_settlement_request_expires_at_its_cancel_timestamp(nursery: trio.Nursery) -> None:
    offset = [0.0]
    simulator = FinerySimulator(
        FinerySimConfig(clients=CLIENTS), clock=lambda: time.time() + offset[0]
    )
    simulator.urls = await nursery.start(simulator.serve)  # type: ignore[attr-defined]
    maker = CLIENTS[1]
    with trio.fail_after(10):
        async with conn(simulator, TAKER) as t:
            await t.bind("R")
            soon = int(time.time() * 1000) + 60_000
            simulator.act(
                maker,
                "addIncomingSettlementRequest",
                {"counterpartyId": TAKER, "currency": "BTC", "cancelTimestamp": soon},
            )
            simulator.act(
                maker,
                "addIncomingSettlementRequest",
                {"counterpartyId": TAKER, "currency": "USD", "cancelTimestamp": 0},
            )
            offset[0] = 61.0
            assert simulator.act(maker, "settlementRequests", {})[0][0][1] == "USD"  # BTC gone
            gone = await t.wait(feed("R", "-"))
            assert gone[3][1][0][1] == "BTC" and gone[3][1][0][5] == soon


async def test_ill_typed_parameters_are_refused_and_the_venue_keeps_serving(
    sim: FinerySimulator,
) -> None:
    with trio.fail_after(10):
        async with conn(sim, TAKER) as t:
            refused = [
                (
                    "commitIncomingSettlementTransaction",
                    {"transactionId": [1]},
                    144,
                    "transactionId",
                ),
                ("settlementHistory", {"till": "10"}, 9, "till"),
                ("settlementTransactionHistory", {"limit": 251}, 9, "limit"),
                ("dealHistory", {"from": 1.5}, 9, "from"),
                (
                    "addIncomingSettlementRequest",
                    {"counterpartyId": MAKER, "currency": "USD", "flags": 4},
                    132,
                    "flags",
                ),
                (
                    "addIncomingSettlementRequest",
                    {"counterpartyId": MAKER, "currency": "USD", "amount": -1},
                    135,
                    "amount",
                ),
            ]
            for method, content, code, param in refused:
                answer = await t.request(method, **content)
                assert (answer.get("error"), answer.get("param")) == (code, param), method
            assert (await t.request("settlementHistory"))["reply"] == []


async def test_a_lost_answer_is_applied_once_and_visible_in_the_venue_state(
    sim: FinerySimulator,
) -> None:
    key, secret = KEYS[TAKER]
    url = sim.urls.rest_url  # type: ignore[attr-defined]
    with trio.fail_after(10):
        sim.faults.lose_next_answers(method="addOutgoingSettlementTransaction", hold=2.0)
        with pytest.raises(httpx.TimeoutException):
            await rest(
                url,
                key,
                secret,
                "addOutgoingSettlementTransaction",
                timeout=0.3,
                counterpartyId=MAKER,
                currency="USD",
                amount=OWED,
                comment="intent-7",
            )
        status, answer = await rest(url, key, secret, "settlementTransactions")
        assert status == 200
        assert [row[4] for row in answer[1]] == ["intent-7"]  # applied, exactly once
        async with conn(sim, TAKER) as t:
            sim.faults.lose_next_answers(method="sendOutgoingSettlementTransaction")
            txn = answer[1][0][10]
            await t.ws.send_message(
                '{"event":"request","reqId":5,"method":"sendOutgoingSettlementTransaction",'
                f'"content":{{"transactionId":{txn},"txId":"ref-7"}}}}'
            )
            with trio.move_on_after(0.3) as quiet:
                await t.wait(lambda f: isinstance(f, dict) and f.get("reqId") == 5)
            assert quiet.cancelled_caught  # no reply ever comes
            sent = await t.request("settlementTransactions")
            assert sent["reply"][1][0][6] == "ref-7"
            sim.faults.lose_next_answers(close=True)
            await t.ws.send_message('{"event":"request","reqId":6,"method":"settlementOrders"}')
            with pytest.raises(ConnectionClosed):
                await t.wait(lambda f: False)
        assert sim.faults.lost_answers == []
