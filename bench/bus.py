"""Events per second through Bus + Dispatcher to 1 and 10 no-op plugins, vs trio memory channels.

No sockets. A producer task publishes pre-built private events (order updates, never dropped)
as fast as it can; the run ends when every plugin has handled every event. Baselines in the same
run: one producer sending into a trio memory channel (size 1000, as the default plugin inbox)
read by one consumer task calling a function, and the same fanned out to 10 channels.
Rounds alternate; the best round of each is compared. Usage: ``python bench/bus.py [--events N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import trio
from benchlib import account_ids, app_config, fmt_rate, until

from qfexbot.core.bus import Bus
from qfexbot.core.dispatch import Dispatcher
from qfexbot.events import OrderUpdateEvent
from qfexbot.runtime.plugins import build_plugin_host

DEADLINE = 120.0


def _events(n: int, account: str) -> list[OrderUpdateEvent]:
    one = OrderUpdateEvent(
        venue="bench",
        account_id=account,
        received_at=time.time(),
        order_id="o-1",
        client_order_id="c-1",
        symbol="AAPL-USD",
        status="ACK",
        side="BUY",
        order_type="LIMIT",
        time_in_force="GTC",
        price=Decimal(200),
        quantity=Decimal(1),
        remaining=Decimal(1),
    )
    return [one] * n


async def run_bus(n: int, plugins: int, base_dir: Path) -> float:
    """Seconds to publish ``n`` events and have every plugin handle them."""
    account = account_ids(1)[0]
    app = app_config(
        [account],
        plugins={f"p{i}": "benchlib:CountingPlugin" for i in range(plugins)},
        trade_url="ws://127.0.0.1:9/",
        mds_url="ws://127.0.0.1:9/",
        rest_url="http://127.0.0.1:9",
        base_dir=base_dir,
    )
    host = build_plugin_host(app.bots["bench"], app.venues["bench"], plugin_dirs=[], actions=None)  # type: ignore[arg-type]  # no action is taken
    bus = Bus(account, venue="bench")
    host.subscribe(bus)
    dispatcher = Dispatcher(host)
    events = _events(n, account)
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            await nursery.start(dispatcher.run)
            t0 = time.perf_counter()
            publish = bus.publish
            for event in events:
                await publish(event)
            await until(lambda: all(slot.events_handled >= n for slot in host.slots), every=0.001)
            elapsed = time.perf_counter() - t0
            dispatcher.stop()
    return elapsed


async def run_channels(n: int, fan_out: int) -> float:
    """Seconds for ``n`` sends into ``fan_out`` memory channels, each read by a consumer task."""
    events = _events(n, "x")
    seen = [0] * fan_out

    async def consume(i: int, receive: trio.MemoryReceiveChannel) -> None:
        async with receive:
            async for _event in receive:
                seen[i] += 1

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            sends = []
            for i in range(fan_out):
                send, receive = trio.open_memory_channel(1000)
                sends.append(send)
                nursery.start_soon(consume, i, receive)
            t0 = time.perf_counter()
            for event in events:
                for send in sends:
                    await send.send(event)
            for send in sends:
                await send.aclose()
        elapsed = time.perf_counter() - t0
    assert seen == [n] * fan_out
    return elapsed


async def main(n: int, rounds: int) -> None:
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(1, rounds + 1):
            rates = {
                "channel_1": n / await run_channels(n, 1),
                "bus_1": n / await run_bus(n, 1, Path(tmp)),
                "channel_10": n / await run_channels(n, 10),
                "bus_10": n / await run_bus(n, 10, Path(tmp)),
            }
            for key, value in rates.items():
                best[key] = max(best.get(key, 0.0), value)
            print(
                f"round {r}: " + ", ".join(f"{k} {fmt_rate(v)} ev/s" for k, v in rates.items()),
                flush=True,
            )
    print(
        f"{n} events per run, best of {rounds} rounds; bus_10 counts events published "
        f"(each delivered to 10 plugins); channel_10 sends each event into 10 channels"
    )
    print(
        f"RESULT bus_1_eps={best['bus_1']:.0f} bus_10_eps={best['bus_10']:.0f} "
        f"channel_eps={best['channel_1']:.0f} channel_10_eps={best['channel_10']:.0f} "
        f"ratio_1={best['bus_1'] / best['channel_1']:.3f} "
        f"ratio_10={best['bus_10'] / best['channel_10']:.3f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trio.run(main, args.events, args.rounds)
