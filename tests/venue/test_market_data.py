"""The shared market-data session: fan-out by (channel, symbol), resubscription, unsubscribe."""

from __future__ import annotations

import trio
from venue_helpers import WAIT, Recorder, SimEnv

from qfexbot.events import BookEvent, ConnectionState, MarkPriceEvent
from qfexbot.venues.qfex.adapter import QfexVenue

S = ConnectionState


async def test_fan_out_by_channel_and_symbol(venue: QfexVenue, nursery) -> None:
    mds = venue.market_data()
    assert venue.market_data() is mds  # one shared session per venue
    a, b = Recorder(), Recorder()
    await mds.subscribe(["level2"], ["AAPL-USD"], a)
    await mds.subscribe(["mark_price"], ["*"], b)
    await mds.subscribe(["level2"], ["EUR-USD"], b)
    await nursery.start(mds.run)
    await a.wait(lambda e: isinstance(e, BookEvent) and e.symbol == "AAPL-USD")
    await b.wait(lambda e: isinstance(e, BookEvent) and e.symbol == "EUR-USD")
    with trio.fail_after(WAIT):
        while len({e.symbol for e in b.of(MarkPriceEvent)}) < 2:
            await b.wait(lambda e: isinstance(e, MarkPriceEvent), after=len(b.events))
    assert {(e.channel, e.symbol) for e in a.of(BookEvent)} == {("level2", "AAPL-USD")}
    assert not a.of(MarkPriceEvent)
    assert {(e.channel, e.symbol) for e in b.of(BookEvent)} == {("level2", "EUR-USD")}
    assert S.LIVE in a.states() and S.LIVE in b.states()  # state events reach everyone
    assert a.of(BookEvent)[0].bids and a.of(BookEvent)[0].venue == "simq"


async def test_resubscribes_after_reconnect(simenv: SimEnv, venue: QfexVenue, nursery) -> None:
    mds = venue.market_data()
    rec = Recorder()
    await mds.subscribe(["level2", "mark_price"], ["AAPL-USD"], rec)
    await nursery.start(mds.run)
    await rec.wait(lambda e: isinstance(e, BookEvent))
    simenv.sim.faults.drop_connections()
    mark = len(rec.events)
    await rec.wait_state(S.BACKOFF, after=mark)
    live = await rec.wait_state(S.LIVE, after=mark)
    after = rec.events.index(live)
    await rec.wait(lambda e: isinstance(e, BookEvent), after=after)
    await rec.wait(lambda e: isinstance(e, MarkPriceEvent), after=after)
    assert mds.stats.reconnects == 1


async def test_subscribe_while_live_and_unsubscribe(venue: QfexVenue, nursery) -> None:
    mds = venue.market_data()
    first, late = Recorder(), Recorder()
    await mds.subscribe(["level2"], ["AAPL-USD"], first)
    await nursery.start(mds.run)
    await first.wait(lambda e: isinstance(e, BookEvent))
    await mds.subscribe(["bbo"], ["US500-USD"], late)  # sent on the live socket
    book = await late.wait(lambda e: isinstance(e, BookEvent))
    assert (book.channel, book.symbol) == ("bbo", "US500-USD")
    await mds.unsubscribe(first)
    assert mds.pairs() == [("bbo", "US500-USD")]
    await trio.sleep(0.25)  # let frames already in flight land
    count = len(first.events)
    await late.wait(lambda e: isinstance(e, BookEvent), after=len(late.events))
    await late.wait(lambda e: isinstance(e, BookEvent), after=len(late.events))
    assert len(first.events) == count
