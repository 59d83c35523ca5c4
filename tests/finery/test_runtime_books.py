"""Finery's three books through bots.toml: ``level2`` (``F``), ``global_book`` (``B``) and
``md_book`` (``MD``) reach a plugin as ``BookEvent`` s from the embedded simulator, each bot only
the channels it asked for."""

from __future__ import annotations

from pathlib import Path

import trio
from runtime_files import finery_toml, running, runtime_in
from wait_helpers import wait_until

from qfexbot.events import BookEvent

BOTS = """
[bots.all]
venue = "fm"
accounts = ["desk"]
market_data = { channels = ["level2", "global_book", "md_book"], symbols = ["BTC-USD"] }
[bots.all.plugins.books]
use = "books:Books"

[bots.global]
venue = "fm"
accounts = ["desk"]
market_data = { channels = ["global_book"], symbols = ["BTC-USD", "ETH-USD"] }
[bots.global.plugins.books]
use = "books:Books"
"""
# pulse_interval 60: the house maker's quotes stay put, so the three books agree
BOTS_TOML = finery_toml(
    BOTS, user_id=1, key="fm_key_books", secret='"fm_secret_books"',
    accounts={"desk": "primary"}, pulse_interval=60, request_timeout=3.0,
)  # fmt: skip

BOOKS = '''
"""Test plugin: keeps the books it receives."""
from qfexbot import BookEvent, hookimpl


class Books:
    def __init__(self, config):
        self.books = []

    @hookimpl
    def qfexbot_event(self, ctx, event):
        if isinstance(event, BookEvent):
            self.books.append(event)
'''


async def test_each_book_channel_reaches_the_bots_that_asked_for_it(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runtime = runtime_in(tmp_path, BOTS_TOML, {"books": BOOKS})
    with trio.fail_after(20):
        async with running(runtime):
            every = runtime.hosts["all"].slots[0].plugin.books
            only_global = runtime.hosts["global"].slots[0].plugin.books
            await wait_until(
                lambda: (
                    {b.channel for b in every} == {"level2", "global_book", "md_book"}
                    and {b.symbol for b in only_global} == {"BTC-USD", "ETH-USD"}
                ),
                what="a book of each channel",
                within=10,
            )
    first = {}
    for book in every:
        first.setdefault(book.channel, book)
    for book in first.values():
        assert isinstance(book, BookEvent)
        assert (book.venue, book.account_id, book.symbol) == ("fm", "", "BTC-USD")
        assert book.bids and book.asks and book.bids[0][0] < book.asks[0][0]
    # Only the house maker quotes: the global, the view-only and the tradable book are its orders.
    assert first["global_book"].bids == first["md_book"].bids == first["level2"].bids
    assert first["global_book"].asks == first["md_book"].asks == first["level2"].asks
    # The same symbol on another bot's channels: still only the global book for this one.
    assert {b.channel for b in only_global} == {"global_book"}
