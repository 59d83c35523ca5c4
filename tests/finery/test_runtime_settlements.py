"""``ctx.transfer`` on Finery is a settlement transaction under the transfer discipline, end to
end against the standalone simulator: journaled before sending, the venue's answer lost after
it applied the request -> ``unknown`` -> reconciled from the venue's settlement state, once;
the settlement feeds deliver it as ``SettlementEvent`` s."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio
from runtime_files import demo_toml, runtime_on_simulator
from wait_helpers import wait_until

from qfexbot.config import SessionSettings
from qfexbot.core.secrets import Secret
from qfexbot.events import SettlementEvent
from qfexbot.money.journal import SqliteJournal
from qfexbot.money.transfers import BalanceReading, TransferAmbiguous, TransferService
from qfexbot.sim.finery import FinerySimulator
from qfexbot.sim.finery.config import demo_finery_config
from qfexbot.sim.finery.server import FineryUrls
from qfexbot.venues.finery.adapter import FineryVenue
from qfexbot.venues.finery.parse import FineryError

PAYER = '''
"""Test plugin: once LIVE, settles 12.5 USD to the counterparty; then, when that transfer is
reconciled, asks for a second one (which must be allowed and sent once)."""
from decimal import Decimal
from qfexbot import ConnectionState, ConnectionStateEvent, TransferOutcomeEvent, hookimpl


class Payer:
    def __init__(self, config):
        self.events = []
        self.results = []

    @hookimpl
    async def qfexbot_event(self, ctx, event):
        self.events.append(event)
        if (not self.results and isinstance(event, ConnectionStateEvent)
                and event.state is ConnectionState.LIVE and event.account_id == "1"):
            self.results.append(await ctx.transfer("desk", "maker", Decimal("12.5"), "settle"))
        elif (len(self.results) == 1 and isinstance(event, TransferOutcomeEvent)
                and event.state == "done" and event.account_id == "1"):
            self.results.append(await ctx.transfer("desk", "maker", Decimal("1"), "again"))
'''


BOTS = """
[bots.payer]
venue = "fm"
accounts = ["desk"]
channels = ["balances"]

[bots.payer.limits]
allowed_pairs = [["desk", "maker"]]
max_transfer = "100"
min_interval = 0

[bots.payer.plugins.payer]
use = "payer:Payer"
"""


def bots_toml(urls: FineryUrls) -> str:
    return demo_toml(
        BOTS, urls, "taker", {"desk": "primary", "maker": 2},
        request_timeout=0.5,
    )  # fmt: skip


async def test_lost_settlement_answer_is_reconciled_from_venue_state_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FM_TEST_TAKER_SECRET", "fm_taker_secret_demo")
    monkeypatch.chdir(tmp_path)
    sim = FinerySimulator(demo_finery_config())
    # applied by the venue, answer held past the client's timeout (then a bare 504)
    sim.faults.lose_next_answers(1, method="addOutgoingSettlementTransaction", hold=1.0)
    with trio.fail_after(20):
        async with runtime_on_simulator(tmp_path, bots_toml, {"payer": PAYER}, sim) as (
            _,
            runtime,
        ):
            plugin = runtime.hosts["payer"].slots[0].plugin
            await wait_until(
                lambda: (
                    len(plugin.results) == 2
                    and sum(isinstance(e, SettlementEvent) for e in plugin.events) >= 2
                ),
                what="the lost settlement reconciled, a second one sent, both on the N feed",
                within=12,
            )
            assert runtime.journal is not None
            entries = {e.id: e for e in await runtime.journal.list() if e.kind == "transfer"}
            history = await runtime.venues["fm"].venue.rest.settlement_transactions()
    first, second = plugin.results
    assert first.state == "unknown"  # the answer was lost: never guessed
    assert entries[first.entry_id].state == "done"  # reconciled from settlementTransactions
    assert "the venue has the request" in entries[first.entry_id].detail
    assert second.state == "done" and entries[second.entry_id].state == "done"
    # exactly one transaction per journal entry on the venue: the lost one was not sent again
    outgoing = history[1]
    comments = sorted(row[4] for row in outgoing)
    assert comments == sorted(f"qfexbot:{r.entry_id}" for r in (first, second))
    amounts = {row[4]: row[2] for row in outgoing}
    assert amounts[f"qfexbot:{first.entry_id}"] == 1250000000  # 12.5 USD in 1e-8 units
    seen = [e for e in plugin.events if isinstance(e, SettlementEvent) and e.action == "added"]
    assert {(e.record, e.direction, e.counterparty, e.currency) for e in seen} == {
        ("transaction", "outgoing", "2", "USD")
    }
    assert {e.comment for e in seen} == set(comments)


# -- the transfer service with venue-state evidence (find_sent), on a real journal -----------


class SettlementBook:
    """A venue's settlement state as ``find_sent`` reads it: requests tagged with an entry id.

    ``answer`` is what ``send`` does: "ok", or "lost" (the venue applies it and the answer is
    lost), or "dropped" (the request never reached the venue, and no answer came either).
    """

    def __init__(self) -> None:
        self.applied: list[tuple[str, str, Decimal, str]] = []
        self.answer = "ok"
        self.readable = True

    async def send(self, src: str, dst: str, amount: Decimal, entry_id: str) -> None:
        if self.answer != "dropped":
            self.applied.append((src, dst, amount, entry_id))
        if self.answer != "ok":
            raise TransferAmbiguous("no answer in time")

    async def find_sent(self, entry_id: str) -> bool | None:
        if not self.readable:
            raise OSError("connection refused")
        return any(tag == entry_id for *_, tag in self.applied)

    async def no_balances(self, account_id: str) -> BalanceReading:
        raise AssertionError("a find_sent service reads no balances")


def limits(**overrides: object) -> SimpleNamespace:
    values: dict[str, object] = {
        "max_transfer": Decimal(100), "max_daily": Decimal(1000),
        "allowed_pairs": (("desk", "maker"),), "min_interval": 0.0, "min_remaining": None,
    }  # fmt: skip
    values.update(overrides)
    return SimpleNamespace(**values)


async def service(tmp_path: Path, book: SettlementBook, settle: float, **limit: object):
    journal = await SqliteJournal.open(tmp_path / "journal.sqlite")
    svc = TransferService(
        journal, book.send, book.no_balances, venue="fm", accounts={"desk": "1", "maker": "2"},
        limits={"bot": limits(**limit)}, settle_seconds=settle, user_id="1",
        find_sent=book.find_sent,
    )  # fmt: skip
    return journal, svc


async def test_absent_or_unreadable_stays_unknown_until_the_operator_resolves(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # Absence now is not proof of never (a request the venue held may still land, and Finery has
    # no balance to watch for it): however long it is quiet, qfexbot does not declare it.
    book = SettlementBook()
    journal, svc = await service(tmp_path, book, settle=60.0)
    try:
        book.answer = "dropped"
        lost = await svc.transfer("bot", "p", "1", "2", Decimal(5), "owed")
        assert lost.state == "unknown" and book.applied == []
        blocked = await svc.transfer("bot", "p", "1", "2", Decimal(5), "owed")
        assert (blocked.state, blocked.code) == ("refused", "unresolved")
        book.readable = False
        (result,) = await svc.reconcile()
        assert result.state == "unknown" and "could not be read" in result.detail
        book.readable = True
        for _ in range(3):
            await trio.sleep(3600)  # far past transfer_settle
            (result,) = await svc.reconcile()
            assert result.state == "unknown" and "no such request (yet)" in result.detail
        assert "qfexbot journal resolve" in result.detail
        blocked = await svc.transfer("bot", "p", "1", "2", Decimal(5), "owed")
        assert (blocked.state, blocked.code) == ("refused", "unresolved")
        await journal.resolve(lost.entry_id, False, "operator", "checked the venue: not there")
        book.answer = "ok"
        again = await svc.transfer("bot", "p", "1", "2", Decimal(5), "owed")
        assert again.state == "done" and [a[3] for a in book.applied] == [again.entry_id]
    finally:
        await journal.close()


async def test_found_is_applied_at_once_and_min_remaining_is_refused(tmp_path: Path) -> None:
    book = SettlementBook()
    journal, svc = await service(tmp_path, book, settle=600.0)
    try:
        book.answer = "lost"
        lost = await svc.transfer("bot", "p", "1", "2", Decimal(7), "owed")
        assert lost.state == "unknown"
        await journal.place_hold("fm", "2", "operator", "looking into it", owner="1")
        (result,) = await svc.reconcile()
        assert result.state == "unknown" and "is held (looking into it)" in result.detail
        await journal.release_holds("fm", "2", by="operator")
        (result,) = await svc.reconcile(allow_not_applied=False)  # the wake-up pass
        assert result.state == "done"
        assert len(book.applied) == 1
    finally:
        await journal.close()
    book = SettlementBook()
    journal, svc = await service(tmp_path / "x", book, settle=0.0, min_remaining=Decimal(1))
    try:
        refused = await svc.transfer("bot", "p", "1", "2", Decimal(7), "owed")
        assert (refused.state, refused.code) == ("refused", "balance_unknown")
        assert "reports no balance" in refused.detail and book.applied == []
    finally:
        await journal.close()


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (9, "rejected"),
        (111, "rejected"),
        (2, "ambiguous"),
        (10, "ambiguous"),
        (104, "ambiguous"),
        (777, "ambiguous"),
    ],
)
def test_only_a_refusing_error_code_means_nothing_was_applied(code: int, outcome: str) -> None:
    # An internal error or a database fault after the venue stored the settlement is not a
    # refusal: journaled failed, the settler would settle again. Undocumented codes likewise.
    venue = FineryVenue(
        "fm", ws_url="ws://127.0.0.1:9/ws", rest_url="http://127.0.0.1:9", user_id="1",
        settings=SessionSettings(), key="k", secret=Secret("s"),
    )  # fmt: skip
    assert venue.transfer_outcome(FineryError(code)).value == outcome
