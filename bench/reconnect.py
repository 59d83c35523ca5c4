"""Time from a simulator restart to every session LIVE again and resynced.

Runs ``qfexbot sim`` as a child process on fixed loopback ports, and the real Runtime in this
process with ``--sessions`` accounts. Each round SIGKILLs the simulator (a crash: no close
frames), starts a new one on the same ports, and measures from the restart (process spawned)
to the last session's LIVE state event; a session publishes its REST resync snapshot before
LIVE, so LIVE means resynced. The simulator's own start-up time (spawn to READY) is printed
too. Session backoff is the configured default unless ``--backoff-initial/--backoff-max``.

Usage: ``python bench/reconnect.py [--sessions 10] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import trio
from benchlib import (
    account_ids,
    app_config,
    free_ports,
    sim_argv,
    start_child,
    until,
    write_sim_toml,
)

from qfexbot.events import ConnectionState
from qfexbot.runtime import Runtime


async def main(n: int, rounds: int, backoff_initial: float, backoff_max: float) -> None:
    ids = account_ids(n)
    totals: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        config = base / "SIM.toml"
        write_sim_toml(config, ids, pulse_interval=1.0, ports=free_ports(3))
        sim = start_child(sim_argv(config))
        urls = sim.info
        session = {"backoff_initial": backoff_initial, "backoff_max": backoff_max}
        app = app_config(
            ids,
            plugins={"recorder": "benchlib:StateRecorder"},
            trade_url=urls["trade_url"],
            mds_url=urls["mds_url"],
            rest_url=urls["rest_url"],
            base_dir=base,
            session=session,
        )
        runtime = Runtime(app)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(runtime.run)
                sessions = list(runtime.venues["bench"].sessions.values())
                recorder = runtime.hosts["bench"].slots[0].plugin
                with trio.fail_after(60):
                    await until(lambda: all(s.state is ConnectionState.LIVE for s in sessions))
                for r in range(1, rounds + 1):
                    sim.kill()
                    await trio.sleep(0.5)  # the sessions notice and back off
                    restart = time.perf_counter()
                    sim = await trio.to_thread.run_sync(start_child, sim_argv(config))
                    ready = time.perf_counter() - restart
                    with trio.fail_after(120):
                        while True:
                            live_at = {
                                acct: at
                                for at, acct, state in recorder.states
                                if state == "live" and at > restart
                            }
                            if len(live_at) == n:
                                break
                            await trio.sleep(0.005)
                    total = max(live_at.values()) - restart
                    totals.append(total)
                    print(
                        f"round {r}: simulator READY after {ready:.2f} s, all {n} sessions "
                        f"LIVE and resynced {total:.2f} s after the restart "
                        f"(first {min(live_at.values()) - restart:.2f} s)",
                        flush=True,
                    )
                    await trio.sleep(1.0)
                runtime.stop()
        finally:
            sim.stop()
    print(
        f"backoff_initial={backoff_initial} s, backoff_max={backoff_max} s "
        f"(full jitter); sim killed with SIGKILL and restarted on the same ports"
    )
    print(
        f"RESULT sessions={n} reconnect_median_s={statistics.median(totals):.2f} "
        f"reconnect_max_s={max(totals):.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backoff-initial", type=float, default=0.5)
    parser.add_argument("--backoff-max", type=float, default=30.0)
    args = parser.parse_args()
    trio.run(main, args.sessions, args.rounds, args.backoff_initial, args.backoff_max)
