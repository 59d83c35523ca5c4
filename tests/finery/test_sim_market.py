"""The Finery simulator's books, orders, positions and limits through a raw client (in-process)."""

from __future__ import annotations

import pytest
import trio
from finery_wire import Wire, connect, feed

from qfexbot.sim.finery import FinerySimClient, FinerySimConfig, FinerySimulator, FineryUrls

TAKER, MAKER, MAKER2, MASTER, SUB = 1, 2, 3, 10, 11
CLIENTS = (
    FinerySimClient("t_key", "t_secret", TAKER, "taker"),
    FinerySimClient("m_key", "m_secret", MAKER, "maker"),
    FinerySimClient("m2_key", "m2_secret", MAKER2, "maker"),
    FinerySimClient("ms_key", "ms_secret", MASTER, "master", subaccounts=(SUB,)),
    FinerySimClient("s_key", "s_secret", SUB, "taker"),
)
KEYS = {c.client_id: (c.key, c.secret) for c in CLIENTS}
BTC = 100_000_000
PRICE = 6_000_000_000_000  # 60000 USD


@pytest.fixture
async def urls(nursery: trio.Nursery) -> FineryUrls:
    return await nursery.start(FinerySimulator(FinerySimConfig(clients=CLIENTS)).serve)


def conn(urls: FineryUrls, client: int) -> object:
    key, secret = KEYS[client]
    return connect(urls.ws_url, key, secret)


async def rest_limit(wire: Wire, side: str, price: int, size: int, **extra: object) -> int:
    answer = await wire.request(
        "add", instrument="BTC-USD", side=side, type="limit", price=price, size=size, **extra
    )
    assert "reply" in answer, answer
    return answer["reply"]["id"]


async def test_md_and_b_books_follow_the_makers(urls: FineryUrls) -> None:
    with trio.fail_after(10):
        async with conn(urls, MAKER) as m1, conn(urls, MAKER2) as m2, conn(urls, TAKER) as t:
            await rest_limit(m1, "bid", PRICE - 1_000_000, BTC)
            await rest_limit(m2, "ask", PRICE + 1_000_000, 2 * BTC)
            md = await t.bind("MD", {"instrument": "BTC-USD"})
            assert md[3] == [[[PRICE - 1_000_000, BTC]], [[PRICE + 1_000_000, 2 * BTC]]]
            only = await t.bind("MD", {"instrument": "BTC-USD", "makers": [MAKER]})
            assert only[1] == {"instrument": "BTC-USD", "makers": [MAKER]}  # echoed
            assert only[3] == [[[PRICE - 1_000_000, BTC]], []]
            assert (await t.bind("MD", "BTC-USD"))[2:] == ["Z", 103]
            assert (await t.bind("MD", {"instrument": "XRP-USD"}))[2:] == ["Z", 103]
            b = await t.bind("B", "BTC-USD")
            assert b[3] == md[3]
            await rest_limit(m2, "ask", PRICE + 2_000_000, BTC)
            # B and MD repeat whole snapshots (current doc); the makers filter still applies.
            whole = [
                [[PRICE - 1_000_000, BTC]],
                [[PRICE + 1_000_000, 2 * BTC], [PRICE + 2_000_000, BTC]],
            ]
            got = await t.wait(lambda f: f[:2] == ["MD", {"instrument": "BTC-USD"}])
            assert got[2:] == ["S", whole]
            got = await t.wait(lambda f: f[0] == "MD" and "makers" in f[1])
            assert got[2:] == ["S", [[[PRICE - 1_000_000, BTC]], []]]
            assert (await t.wait(feed("B", "S")))[3] == whole


async def test_mod_and_del_all_move_orders_and_the_firm_book(urls: FineryUrls) -> None:
    with trio.fail_after(10):
        async with conn(urls, MAKER) as m, conn(urls, TAKER) as t:
            await m.bind("O")
            first = await rest_limit(m, "ask", PRICE, BTC, clientOrderId=7)
            await rest_limit(m, "ask", PRICE + 1_000_000, BTC)
            assert (await t.bind("F", "BTC-USD"))[3] == [
                [],
                [[PRICE, BTC], [PRICE + 1_000_000, BTC]],
            ]
            # A partial fill, then mod: new initial = size - filled.
            take = await t.request(
                "add", instrument="BTC-USD", side="bid", type="marketIOC", size=BTC // 4
            )
            assert take["reply"]["remainingSize"] == 0
            mod = await m.request("mod", orderId=first, price=PRICE - 1_000_000, size=BTC)
            assert (
                mod["reply"]["origId"] == first
                and mod["reply"]["origRemainingSize"] == 3 * BTC // 4
            )
            assert mod["reply"]["initialSize"] == 3 * BTC // 4
            new_id = mod["reply"]["id"]
            removed = await m.wait(lambda f: f[:3] == ["O", 0, "-"] and f[3][4] == first)
            assert removed[3][3] == 1  # cancel reason: by client
            added = await m.wait(lambda f: f[:3] == ["O", 0, "+"] and f[3][4] == new_id)
            assert added[3][5] == 7 and added[3][6] == PRICE - 1_000_000
            update = await t.wait(
                lambda f: (
                    f[0] == "F"
                    and f[2] == "M"
                    and ["+", PRICE - 1_000_000, 3 * BTC // 4] in f[3][1]
                )
            )
            assert update[3][0] == []
            assert (await m.request("mod", orderId=first, price=PRICE, size=BTC))["error"] == 80
            gone = await m.request("delAll", instrument="BTC-USD")
            assert gone["reply"] == {"removed": 2}
            reasons = [f[3][3] for f in m.frames if f[:3] == ["O", 0, "-"]]
            assert reasons == [1, 1]
            await t.wait(lambda f: f[0] == "F" and f[2] == "M" and f[3][1] == [["~", 0, 0]])
            assert (await m.request("delAll"))["reply"] == {"removed": 0}


async def test_cancel_on_disconnect_cancels_only_that_connections_cod_orders(
    urls: FineryUrls,
) -> None:
    with trio.fail_after(10):
        async with conn(urls, MAKER) as watcher:
            await watcher.bind("O")
            async with conn(urls, MAKER) as lost:
                cod = await rest_limit(lost, "bid", PRICE - 1_000_000, BTC, cod=True)
                kept = await rest_limit(lost, "bid", PRICE - 2_000_000, BTC)
            removed = await watcher.wait(feed("O", "-"))
            assert removed[3][4] == cod and removed[3][3] == 4  # cancel-on-disconnect
            snapshot = await watcher.bind("O", "BTC-USD")
            assert [o[4] for o in snapshot[3]] == [kept]


async def test_positions_and_limits_follow_fills(urls: FineryUrls) -> None:
    with trio.fail_after(10):
        async with conn(urls, MAKER) as m, conn(urls, TAKER) as t:
            await rest_limit(m, "ask", PRICE, BTC)
            assert (await t.bind("K"))[3] == []
            await m.bind("K")
            await t.bind("L")
            take = await t.request(
                "add", instrument="BTC-USD", side="bid", type="marketIOC", size=BTC // 10
            )
            assert take["reply"]["deals"][0]["volume"] == PRICE // 10
            mine = {}
            while len(mine) < 2:
                frame = await t.wait(feed("K", "+"))
                mine[frame[3][0]] = frame[3]
            assert mine["BTC"] == ["BTC", BTC // 10, MAKER, BTC // 10, 0]
            assert mine["USD"] == ["USD", -PRICE // 10, MAKER, 0, -PRICE // 10]
            theirs = {}
            while len(theirs) < 2:
                frame = await m.wait(feed("K", "+"))
                theirs[frame[3][0]] = frame[3][1]
            assert theirs == {"BTC": -BTC // 10, "USD": PRICE // 10}  # bilateral mirror
            limit = await t.wait(
                lambda f: f[:3] == ["L", 0, "M"] and f[3]["counterpartyId"] == MAKER
            )
            # 0.1 BTC long (6000 USD) and 6000 USD short: gross 12000 USD, equity 0.
            assert limit[3]["ownLimit"]["limitUtilization"] == 2 * PRICE // 10
            assert limit[3]["ownLimit"]["equity"] == 0
            climits = await t.request("climits")
            assert limit[3] in climits["reply"]
            positions = await t.request("positions")
            assert positions["reply"][1] == [mine["BTC"], mine["USD"]]


async def test_master_sees_a_sub_accounts_orders_and_positions(urls: FineryUrls) -> None:
    with trio.fail_after(10):
        async with conn(urls, MAKER) as m, conn(urls, MASTER) as master:
            await rest_limit(m, "ask", PRICE, BTC)
            assert (await master.bind("O", {"clientId": SUB}))[2:] == ["S", []]
            assert (await master.bind("K", {"clientId": SUB, "currency": "BTC"}))[2:] == ["S", []]
            assert (await master.bind("O", {"clientId": 12}))[2:] == ["Z", 3]  # not its sub
            await master.bind("O")  # the master's own orders: none of the sub's
            reply = await master.request(
                "add",
                instrument="BTC-USD",
                side="bid",
                type="marketIOC",
                size=BTC // 2,
                clientId=SUB,
            )
            order_id = reply["reply"]["id"]
            sub_o = {"clientId": SUB}
            actions = []
            while len(actions) < 3:
                frame = await master.wait(lambda f: f[:2] == ["O", sub_o])
                assert frame[3][4] == order_id
                actions.append(frame[2])
            assert actions == ["+", "D", "-"]
            position = await master.wait(lambda f: f[0] == "K")
            assert position == [
                "K",
                {"clientId": SUB, "currency": "BTC"},
                "+",
                ["BTC", BTC // 2, MAKER, BTC // 2, 0],
            ]
            assert not [f for f in master.frames if f[:2] == ["O", 0]]
