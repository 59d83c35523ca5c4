"""Every market-data channel's frames validated against the vendored MDS AsyncAPI payloads
(tests/spec/schemas/qfex_mds.json), and both candle subscribe forms.

The payload schemas name no required fields, so each frame is also checked to carry every
property its payload schema lists (``sig_figs`` only where it was asked for).
"""

from __future__ import annotations

import json
from typing import Any

import trio
from sim_client import PRIMARY, Client, Sim, connect, market_order, start_sim
from validate import ValidationError, document, validate_mds_frame

from qfexbot.sim.qfex.market_history import MDS_INTERVALS

WAIT = 5.0
CHANNELS = tuple(document("qfex_mds")["channels"])


class Collected:
    """Frames by channel; every one validated, the violations kept."""

    def __init__(self, ws: Client) -> None:
        self.ws = ws
        self.frames: dict[str, list[dict[str, Any]]] = {}
        self.violations: list[str] = []

    async def until(self, done: Any) -> None:
        with trio.fail_after(WAIT):
            while not done(self.frames):
                frame = await self.ws.recv()
                try:
                    channel = validate_mds_frame(frame)
                except ValidationError as exc:
                    self.violations.append(f"{exc.message} in {json.dumps(frame)[:300]}")
                    continue
                missing = _missing(channel, frame)
                if missing:
                    self.violations.append(f"{channel} lacks {missing}: {json.dumps(frame)[:300]}")
                self.frames.setdefault(channel, []).append(frame)

    def assert_clean(self) -> None:
        assert not self.violations, "\n".join(self.violations)


def _missing(channel: str, frame: dict[str, Any]) -> list[str]:
    payload = document("qfex_mds")["channels"][channel]
    properties = set(document("qfex_mds")["$defs"][payload]["properties"])
    if channel == "level2" and "sig_figs" not in frame:
        properties.discard("sig_figs")  # echoed only when the subscription asked for it
    return sorted(properties - set(frame))


async def test_every_channel_validates(nursery: trio.Nursery) -> None:
    running: Sim = await start_sim(nursery)
    sim = running.sim
    sim.deliver(sim.engine.add_order(PRIMARY, market_order("BUY", 2)))
    async with connect(running.urls.mds_url) as ws:
        await ws.send(
            {
                "type": "subscribe",
                "channels": [c for c in CHANNELS if c != "candle"],
                "symbols": ["*"],
            }
        )
        await ws.send(
            {"type": "subscribe", "channels": ["level2"], "symbols": ["*"], "sig_figs": [1, 2]}
        )
        await ws.send(
            {
                "type": "subscribe",
                "channels": ["candle"],
                "symbols": ["*"],
                "intervals": list(MDS_INTERVALS),
            }
        )
        checked = Collected(ws)
        await checked.until(lambda seen: all(c in seen for c in CHANNELS if c != "trade"))
        sim.deliver(sim.engine.add_order(PRIMARY, market_order("SELL", 1)))
        await checked.until(
            lambda seen: (
                "trade" in seen
                and any(f["symbol"] == "AAPL-USD" and f["trades"] >= 2 for f in seen["candle"])
            )
        )
    checked.assert_clean()
    frames = checked.frames
    assert {f["resolution"] for f in frames["candle"]} >= {"1MIN", "5MINS", "1DAY"}
    assert {f.get("sig_figs") for f in frames["level2"]} >= {None, 1, 2}
    assert {f["symbol"] for f in frames["market_stats"]} == {"*"}
    assert {f["symbol"] for f in frames["open_interest"]} == set(sim.engine.markets)


async def test_candle_subscribe_forms_validate(nursery: trio.Nursery) -> None:
    running = await start_sim(nursery)
    async with connect(running.urls.mds_url) as pair, connect(running.urls.mds_url) as listed:
        await pair.send(
            {"type": "subscribe", "channels": ["candle"], "symbols": ["EUR-USD/15MINS"]}
        )
        await listed.send(
            {
                "type": "subscribe",
                "channels": ["candle"],
                "symbols": ["EUR-USD"],
                "intervals": ["4HOURS"],
            }
        )
        by_pair, by_list = Collected(pair), Collected(listed)
        await by_pair.until(lambda seen: "candle" in seen)
        await by_list.until(lambda seen: "candle" in seen)
    by_pair.assert_clean()
    by_list.assert_clean()
    assert {(f["symbol"], f["resolution"]) for f in by_pair.frames["candle"]} == {
        ("EUR-USD", "15MINS")
    }
    assert {f["resolution"] for f in by_list.frames["candle"]} == {"4HOURS"}
