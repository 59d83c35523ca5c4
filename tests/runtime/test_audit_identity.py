"""Audit findings 1, 2, 7, 8 and 10 (issue 11, money identity): the real runtime, its journal and
transfer services, against a simulator standing in for the real venue over loopback.

1. a ``simulator = true`` table with the real table's user id and accounts never touches the
   real table's transfers (its own journal owner);
2. deposit verification is remembered per owner: a demo table switched to a real venue starts
   unverified;
7. the machine-wide locks cover the accounts of entries in doubt, watches and holds too;
8. the locks are keyed by account id alone: a different ``user_id`` does not defeat them;
10. the temp-dir fallback of the lock directory is logged as a WARNING.
"""

from __future__ import annotations

import logging
import tempfile
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
import trio
from runtime_helpers import DESK_A, DESK_B, PRIMARY, RECORDER, recorder, write_config
from wait_helpers import wait_until

from qfexbot.config import ConfigError, load_config
from qfexbot.money import account_locks
from qfexbot.money.account_locks import acquire_account_locks
from qfexbot.money.journal import SqliteJournal
from qfexbot.runtime import Runtime
from qfexbot.sim import QfexSimulator, SimConfig, SimUser

DESK_C = "33333333-3333-4333-8333-333333333333"
DESK_D = "44444444-4444-4444-8444-444444444444"
DESK_E = "66666666-6666-4666-8666-666666666666"
OTHER_USER = "55555555-5555-4555-8555-555555555555"
KEY, SECRET = "qfex_pub_identity", "qfex_secret_identity_audit"
ENV = {"QFEX_IDENTITY_SECRET": SECRET}
DEPOSITS = {PRIMARY: Decimal(100000), DESK_A: Decimal(50), DESK_B: Decimal(5000)}


@pytest.fixture
async def real_venue(nursery):
    """A simulator process-alike playing the real venue: its URLs for a ``simulator = false``
    table."""
    sim = QfexSimulator(SimConfig(
        users=[SimUser(public_key=KEY, secret=SECRET, account_id=PRIMARY,
                       subaccounts=[DESK_A, DESK_B, DESK_C, DESK_D, DESK_E],
                       deposits=dict(DEPOSITS))],
        pulse_interval=0.2,
    ))  # fmt: skip
    urls = await nursery.start(sim.serve, "127.0.0.1")
    return sim, {"trade_url": urls.trade_url, "mds_url": urls.mds_url, "rest_url": urls.rest_url}


def real_table(
    name: str, urls: dict[str, str], *, user_id: str = PRIMARY, accounts: str = ""
) -> str:
    """A real (``simulator = false``) QFEX venue table reached at ``urls``."""
    accounts = accounts or f'treasury = "primary"\ndesk-a = "{DESK_A}"\ndesk-b = "{DESK_B}"\n'
    return (
        textwrap.dedent(f'''
        [venues.{name}]
        kind = "qfex"
        simulator = false
        trade_url = "{urls["trade_url"]}"
        mds_url = "{urls["mds_url"]}"
        rest_url = "{urls["rest_url"]}"
        user_id = "{user_id}"
        public_key = "{KEY}"
        secret = {{ env = "QFEX_IDENTITY_SECRET" }}

        [venues.{name}.session]
        backoff_initial = 0.05
        backoff_max = 0.2
        request_timeout = 1.0
        ''')
        + f"\n[venues.{name}.accounts]\n{accounts}"
    )


def bot_table(
    name: str, venue: str, pairs: str = '[["treasury", "desk-a"]]', account: str = "desk-a"
) -> str:
    return textwrap.dedent(f'''
        [bots.{name}]
        venue = "{venue}"
        accounts = ["{account}"]
        channels = ["balances"]

        [bots.{name}.limits]
        allowed_pairs = {pairs}
        min_interval = 0

        [bots.{name}.plugins.recorder]
        use = "recorder:Recorder"
        ''')


def config_with(tmp_path: Path, extra: str):
    """``write_config``'s simulator table ``demo`` (same user id and accounts as the real
    venue, and its bot ``watch``) plus ``extra``."""
    return write_config(tmp_path, extra=extra)


def real_config(directory: Path, tables: str):
    """A bots.toml in ``directory`` with only ``tables`` (real venues and their bots)."""
    (directory / "plugins").mkdir(parents=True)
    (directory / "plugins" / "recorder.py").write_text(RECORDER)
    (directory / "var").mkdir()
    path = directory / "bots.toml"
    path.write_text(
        '[runtime]\njournal = "var/journal.sqlite"\nplugin_dirs = ["plugins"]\n' + tables
    )
    return load_config(path)


async def entry_in_doubt(
    journal_path: Path, *, venue: str, src: str, dst: str, owner: str = PRIMARY, before: bool = True
) -> str:
    """An unknown transfer of 100 written by venue table ``venue`` of ``owner``; with
    ``before``, its "before" balances equal the simulator's deposits (so simulated balances
    would look like "not applied")."""
    journal_path.parent.mkdir(parents=True, exist_ok=True)
    async with await SqliteJournal.open(journal_path) as journal:
        values = {}
        if before:
            values = {
                "src_before": DEPOSITS[src],
                "dst_before": DEPOSITS[dst],
                "src_deposit_before": DEPOSITS[src],
                "dst_deposit_before": DEPOSITS[dst],
            }
        entry = await journal.record_intent(
            bot="keeper", plugin="p", venue=venue, src=src, dst=dst, amount=Decimal(100),
            reason="top-up", owner=owner, **values,
        )  # fmt: skip
        await journal.mark_sent(entry.id)
        await journal.mark_unknown(entry.id, "outcome unknown: response lost")
    return entry.id


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


async def start_up_problems(app) -> list[str]:
    """Start the runtime and stop it at once: its start-up refusal lines, or [] if it started."""
    runtime = Runtime(app, environ=ENV)
    problems: list[str] = []
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(runtime.run)
                runtime.stop()
    except* ConfigError as group:
        problems = [line for exc in _leaves(group) for line in exc.errors]
    return problems


async def state_of(journal_path: Path, entry_id: str) -> str:
    async with await SqliteJournal.open(journal_path) as journal:
        entry = await journal.get(entry_id)
        assert entry is not None
        return entry.state


# -- 1. a simulator table never shares identity with a real one ---------------------------------


async def test_simulator_twin_never_reconciles_the_real_tables_transfer(
    tmp_path, nursery, real_venue
):
    # The audit's twin: [venues.prod] real and [venues.demo] simulated, same user id and
    # accounts, both in use. The real REST is down (closed port): the real transfer in doubt
    # must stay unknown, and the simulator table must not even look at it.
    down = {
        "trade_url": "ws://127.0.0.1:9/trade",
        "mds_url": "ws://127.0.0.1:9/mds",
        "rest_url": "http://127.0.0.1:9",
    }
    app = config_with(tmp_path, real_table("prod", down) + bot_table("keeper", "prod"))
    entry = await entry_in_doubt(app.runtime.journal, venue="prod", src=PRIMARY, dst=DESK_A)
    runtime = Runtime(app, environ=ENV)
    with trio.fail_after(30):
        await nursery.start(runtime.run)
        demo = runtime.venues["demo"].transfers
        prod = runtime.venues["prod"].transfers
        assert demo is not None and prod is not None
        assert await demo.reconcile() == []
        [still] = await prod.reconcile()
        assert (still.entry_id, still.state) == (entry, "unknown")
        assert (await runtime.journal.get(entry)).state == "unknown"
        assert await runtime.journal.active_holds(owner=PRIMARY) == []
        assert demo.owner == f"simulator:demo:{PRIMARY}" and prod.owner == PRIMARY
        runtime.stop()


async def test_a_real_entry_named_only_by_a_simulator_table_refuses_start_up(tmp_path, real_venue):
    # Only the simulator table is in use: the real row in doubt is "unnamed" (nothing here can
    # read the real balances), so start-up refuses and says why, and the row is untouched.
    _, urls = real_venue
    app = config_with(tmp_path, real_table("prod", urls))
    entry = await entry_in_doubt(app.runtime.journal, venue="prod", src=PRIMARY, dst=DESK_A)
    [problem] = await start_up_problems(app)
    assert f"journal entry {entry}" in problem and "no venue of this config names" in problem
    assert "venues.demo names both accounts, but it is an embedded simulator" in problem
    assert await state_of(app.runtime.journal, entry) == "unknown"


# -- 2. deposit verification per owner, not per venue name --------------------------------------


async def test_demo_table_switched_to_the_real_venue_starts_unverified(
    tmp_path, nursery, real_venue
):
    # The shipped demo verifies [venues.demo] on the simulator; the operator then sets
    # simulator = false and real credentials, keeping the name. The simulator's verdict says
    # nothing about the real venue: it must start unverified (deposits never say "not applied").
    app = write_config(tmp_path, recorder_options="transfer_amount = 10")
    runtime = Runtime(app)
    with trio.fail_after(30):
        async with trio.open_nursery() as demo_run:  # ends when the demo has stopped
            await demo_run.start(runtime.run)
            plugin = recorder(runtime)
            await wait_until(lambda: plugin.results, what="the demo's first transfer", within=10)
            assert plugin.results[0].state == "done"  # verified before the transfer returned:
            assert await runtime.venues["demo"].transfers.deposit_verified() is True
            runtime.stop()
    _, urls = real_venue
    text = app.path.read_text()
    head, _, rest = text.partition("[venues.demo]")
    bots = rest[rest.index("[bots.watch]") :].replace("transfer_amount = 10", "")
    (tmp_path / "bots.toml").write_text(head + real_table("demo", urls) + "\n" + bots)
    real = Runtime(load_config(tmp_path / "bots.toml"), environ=ENV)
    with trio.fail_after(30):
        await nursery.start(real.run)
        service = real.venues["demo"].transfers
        assert service is not None and not real.simulators
        assert await service.deposit_verified() is None
        real.stop()


# -- 7. the locks cover every account this process reconciles or watches ------------------------


async def test_locks_cover_accounts_in_doubt_watched_and_held_outside_allowed_pairs(
    tmp_path, nursery, real_venue
):
    # The bot may only move treasury <-> desk-a now, but the journal still has a transfer in
    # doubt on treasury -> desk-b, a late-landing watch on desk-a -> desk-c and a hold on
    # desk-d: this process judges those from their balances, so no other process may move them.
    _, urls = real_venue
    accounts = (
        f'treasury = "primary"\ndesk-a = "{DESK_A}"\ndesk-b = "{DESK_B}"\n'
        f'desk-c = "{DESK_C}"\ndesk-d = "{DESK_D}"\n'
    )
    app = real_config(
        tmp_path, real_table("live", urls, accounts=accounts) + bot_table("keeper", "live")
    )
    journal_path = app.runtime.journal
    await entry_in_doubt(journal_path, venue="live", src=PRIMARY, dst=DESK_B, before=False)
    async with await SqliteJournal.open(journal_path) as journal:
        old = await journal.record_intent(
            bot="keeper",
            plugin="p",
            venue="live",
            src=DESK_A,
            dst=DESK_C,
            amount=Decimal(5),
            reason="x",
            owner=PRIMARY,
        )
        await journal.resolve(
            old.id,
            False,
            "reconcile",
            "reconciled not applied",
            watch_from=(Decimal(50), Decimal(0)),
        )
        await journal.place_hold("live", DESK_D, "unexplained_deposits", "test", owner=PRIMARY)
    runtime = Runtime(app, environ=ENV)
    second = f'desk-b = "{DESK_B}"\ndesk-c = "{DESK_C}"\ndesk-d = "{DESK_D}"\ndesk-e = "{DESK_E}"\n'
    with trio.fail_after(60):
        await nursery.start(runtime.run)
        for alias, account in (("desk-b", DESK_B), ("desk-c", DESK_C), ("desk-d", DESK_D)):
            # A second process whose bot moves that account (with desk-e, unknown to the first).
            pair = f'[["{alias}", "desk-e"]]'
            other = real_config(
                tmp_path / f"second-{alias}",
                real_table("other", urls, accounts=second)
                + bot_table("mover", "other", pair, "desk-e"),
            )
            [problem] = await start_up_problems(other)
            assert (
                f"venue other account {alias} (account {account}) is being moved by another"
            ) in problem
            assert str(app.path) in problem
        runtime.stop()


# -- 8. account locks keyed by account id alone -------------------------------------------------


async def test_two_processes_differing_only_in_user_id_cannot_both_lock_the_account(
    tmp_path, nursery, real_venue
):
    # A mistyped user_id in the second config: the transfer POST does not carry the user id, so
    # both would move desk-a. The account id alone decides the lock.
    _, urls = real_venue
    apps = [
        real_config(
            tmp_path / f"config-{index}",
            real_table("live", urls, user_id=user_id) + bot_table("keeper", "live"),
        )
        for index, user_id in enumerate((PRIMARY, OTHER_USER))
    ]
    first = Runtime(apps[0], environ=ENV)
    with trio.fail_after(30):
        await nursery.start(first.run)
        problems = await start_up_problems(apps[1])
        first.stop()
    [problem] = problems
    assert "cannot take the account locks" in problem
    assert f"venue live account desk-a (account {DESK_A}) is being moved by another" in problem
    assert str(apps[0].path) in problem


async def test_a_changed_user_id_leaves_old_entries_unnamed_with_a_clear_message(
    tmp_path, real_venue
):
    # The journal's owner stays the user id: after a user_id change the old entry in doubt
    # refuses start-up (the safe side), naming the table that has the accounts under another id.
    _, urls = real_venue
    accounts = f'main = "{PRIMARY}"\ndesk-a = "{DESK_A}"\n'
    app = real_config(
        tmp_path,
        real_table("live", urls, user_id=OTHER_USER, accounts=accounts)
        + bot_table("keeper", "live", '[["main", "desk-a"]]'),
    )
    entry = await entry_in_doubt(app.runtime.journal, venue="live", src=PRIMARY, dst=DESK_A)
    [problem] = await start_up_problems(app)
    assert f"journal entry {entry}" in problem and f"user id {PRIMARY}" in problem
    assert (
        f"venues.live names both accounts, but under user_id {OTHER_USER}: if a user_id "
        "was changed or mistyped, set it back"
    ) in problem


# -- 10. the lock directory's temp-dir fallback is not silent -----------------------------------


def test_lock_directory_fallback_to_the_temp_dir_is_logged(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(account_locks.ENV, raising=False)
    monkeypatch.setattr(account_locks, "RUN_LOCK", tmp_path / "no-run-lock")  # not a directory
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    caplog.set_level(logging.WARNING, logger="qfexbot.money.account_locks")
    locks = acquire_account_locks([(DESK_A, "venue live account desk-a")], holder="test")
    try:
        assert locks.directory == tmp_path / "tmp" / "qfexbot-locks"
        [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
        text = record.getMessage()
        assert "temp directory" in text and "PrivateTmp" in text and "QFEXBOT_LOCK_DIR" in text
        assert record.fields["directory"] == str(locks.directory)
    finally:
        locks.release()
    caplog.clear()
    (tmp_path / "run-lock").mkdir()
    monkeypatch.setattr(account_locks, "RUN_LOCK", tmp_path / "run-lock")
    locks = acquire_account_locks([(DESK_A, "venue live account desk-a")], holder="test")
    locks.release()
    assert locks.directory == tmp_path / "run-lock" / "qfexbot"
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == []
