"""Record a live run against the embedded simulator, replay it, and get the same decisions."""

from __future__ import annotations

import json
import os
import stat

import pytest
import trio
from ops_helpers import DESK_A, DESK_B, write_config
from wait_helpers import wait_until

from qfexbot.ops.recorder import Recorder, with_recording
from qfexbot.ops.replay import (
    Decision,
    RecordingError,
    compare_decisions,
    read_recording,
    recording_files,
    replay,
)
from qfexbot.runtime import Runtime


def record_live(app, expected_decisions: int = 5) -> list[int]:
    """Run the runtime (recording) until the decider took its decisions; return [decided]."""
    decided = []

    async def main() -> None:
        runtime = Runtime(app)
        with trio.fail_after(30):
            await run(runtime)

    async def run(runtime: Runtime) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            plugin = runtime.hosts["watch"].slots[0].plugin
            await wait_until(
                lambda: plugin.decided >= expected_decisions, what="live decisions", within=15
            )
            # let the transfers' outcomes and a few more pulses through
            await trio.sleep(0.3)
            runtime.stop()
        decided.append(plugin.decided)

    trio.run(main)
    return decided


def test_replay_reproduces_the_decisions_of_the_recorded_live_run(tmp_path):
    rec_dir = tmp_path / "rec"
    app = with_recording(write_config(tmp_path), rec_dir)
    [decided] = record_live(app)

    files = recording_files(rec_dir)
    records = [r for r, _ in read_recording(files)]
    kinds = {r["type"] for r in records}
    assert {"header", "start", "frame", "state", "snapshot", "decision"} <= kinds
    recorded = [r for r in records if r["type"] == "decision"]
    assert len(recorded) == decided >= 5
    # control frames (auth reply, subscription acks) are recorded, not only event frames
    frames = [r for r in records if r["type"] == "frame" and r["account"] == DESK_A]
    assert any("authenticated" in r["data"] for r in frames)
    assert {r["account"] for r in records if r["type"] == "state"} == {DESK_A, DESK_B}

    result = replay(app, rec_dir, speed="max")
    assert result.recorded_decisions, "the recording carries the live decisions"
    assert result.mismatches() == []
    live = [(d.action, dict(d.args)) for d in result.recorded_decisions]
    replayed = [(d.action, dict(d.args)) for d in result.decisions[: len(live)]]
    assert replayed == live
    actions = [a for a, _ in live]
    assert actions.count("transfer") == 2 and actions.count("add_order") == 2
    assert actions[0] == "cancel_order"  # decided on desk-a going LIVE
    first_transfer = next(args for a, args in live if a == "transfer")
    assert first_transfer["amount"] == "3.0" and first_transfer["reason"].startswith(
        "balance #2 was 50"
    )

    again = replay(app, rec_dir, speed="max")
    assert again.decisions == result.decisions, "the same recording gives the same decisions"


def test_the_order_actions_beyond_add_and_cancel_are_recorded_and_replayed(tmp_path):
    """modify_order, cancel_all, set_leverage: recorded live under their ctx names, decided
    the same way in replay (no mismatch)."""
    rec_dir = tmp_path / "rec"
    app = with_recording(write_config(tmp_path, plugin="actor"), rec_dir)
    [decided] = record_live(app, expected_decisions=3)
    recorded = [r for r, _ in read_recording(recording_files(rec_dir)) if r["type"] == "decision"]
    assert [r["action"] for r in recorded] == ["set_leverage", "modify_order", "cancel_all"]
    assert decided == 3
    assert recorded[0]["args"] == {"account": "desk-b", "leverage": "5", "symbol": "AAPL-USD"}
    assert recorded[1]["args"]["price"] == "151" and recorded[1]["args"]["order_id"].startswith(
        "o-"
    )
    result = replay(app, rec_dir, speed="max")
    assert result.mismatches() == []
    assert [d.action for d in result.decisions] == [r["action"] for r in recorded]


def test_timer_decisions_follow_recorded_time_and_are_deterministic(tmp_path):
    rec_dir = tmp_path / "rec"
    [_] = record_live(with_recording(write_config(tmp_path), rec_dir))
    ticker = write_config(tmp_path, plugin="ticker", name="ticker.toml")
    first = replay(ticker, rec_dir, speed="max")
    second = replay(ticker, rec_dir, speed="max")
    assert first.decisions == second.decisions
    ticks = [d.args["order_id"] for d in first.decisions]
    # ticks every 0.15 s of *recorded* time, however fast the replay runs
    assert len(ticks) >= int(first.recorded_seconds / 0.15) - 1 >= 3
    seen = [int(t.rsplit("-", 1)[1]) for t in ticks]
    assert seen == sorted(seen) and seen[-1] > seen[0], "balance events interleave with ticks"


def test_recorder_rotates_by_size_and_replay_reads_all_segments(tmp_path):
    recorder = Recorder(tmp_path / "rec", max_bytes=4096, clock=lambda: 1000.0)
    recorder.open()
    frame = json.dumps({"type": "balance_response", "available_balance": 7.5})
    for i in range(200):
        recorder.frame("demo", DESK_A, "trade", frame, 1000.0 + i)
    recorder.frame("demo", DESK_A, "trade", b"\x00binary", 2000.0)
    recorder.close()
    files = recording_files(tmp_path / "rec")
    assert len(files) == len(recorder.files) > 3
    assert all(f.stat().st_size < 4096 + 300 for f in files)
    records = [r for r, _ in read_recording(files)]
    assert [r["segment"] for r in records if r["type"] == "header"] == list(
        range(1, len(files) + 1)
    )
    frames = [r for r in records if r["type"] == "frame"]
    assert [r["t"] for r in frames] == [1000.0 + i for i in range(200)] + [2000.0]
    assert frames[-1]["data_b64"] == "AGJpbmFyeQ=="


def test_bad_recordings_are_refused_with_a_reason(tmp_path):
    with pytest.raises(RecordingError, match="no such file"):
        recording_files(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "frame", "t": 1}\n')
    with pytest.raises(RecordingError, match="no header"):
        list(read_recording([bad]))
    bad.write_text('{"type": "header", "version": 99}\n')
    with pytest.raises(RecordingError, match="newer"):
        list(read_recording([bad]))


def test_compare_decisions_reports_the_first_difference_per_plugin():
    a = [Decision("b", "p", "transfer", {"amount": "1"}), Decision("b", "q", "add_order", {})]
    same_other_interleaving = [a[1], a[0]]
    assert compare_decisions(a, same_other_interleaving) == []
    changed = [Decision("b", "p", "transfer", {"amount": "2"}), a[1]]
    assert compare_decisions(a, changed) == [
        'b/p decision #1: recorded transfer {"amount": "1"}, replayed transfer {"amount": "2"}'
    ]
    assert compare_decisions(a, a[:1]) == ["b/q: recorded 1 decisions, replayed 0"]


def test_recorded_frames_never_hold_an_echoed_auth_request(tmp_path):
    # A venue error frame echoes the request it answers; for auth that is our signature.
    recorder = Recorder(tmp_path / "rec", max_bytes=1 << 20)
    recorder.open()
    echo = (
        '{"err":{"error_code":"ServerError","message":null,"incoming_message":{"type":"auth",'
        '"params":{"hmac":{"public_key":"qfex_pub_x","nonce":"ab","unix_ts":1,'
        '"signature":"SIGNATURE_SENTINEL_7d1"}}}}}'
    )
    recorder.frame("demo", "acct", "trade", echo, 1.0)
    recorder.close()
    [path] = recorder.files
    text = path.read_text()
    assert "SIGNATURE_SENTINEL_7d1" not in text and "<redacted>" in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
