"""Microseconds per frame to parse the benchmark frames into typed events, vs decoding alone.

For each frame kind (order_response, fill_response, balance_response, level2 with 5 levels a
side; bench/benchlib.py) it times qfexbot's parser (``parse_trade_frame`` / ``parse_mds_frame``:
decode, dispatch, build the event), ``json.loads`` alone and msgspec's untyped decode alone, with
``timeit``: best of ``--repeat`` runs of ``--number`` calls. No sockets, one process.
Usage: ``python bench/parse.py [--number N] [--repeat R] [--bytes]``.
"""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable
from typing import Any

import msgspec
from benchlib import BALANCE_FRAME, FILL_FRAME, LEVEL2_FRAME, ORDER_FRAME

from qfexbot.venues.qfex.parse import parse_mds_frame, parse_trade_frame

ACCOUNT = "0020ce8e-eaee-480e-8d7f-b9241d756ee5"
NOW = 1758208770.0
FRAMES = {
    "order": ORDER_FRAME % "c-1",
    "fill": FILL_FRAME,
    "balance": BALANCE_FRAME,
    "level2": LEVEL2_FRAME,
}


def _parser(kind: str) -> Callable[[Any], Any]:
    if kind == "level2":
        return lambda data: parse_mds_frame(data, "qfex", NOW)
    return lambda data: parse_trade_frame(data, "qfex", ACCOUNT, NOW)


def best_us(call: Callable[[Any], Any], data: Any, number: int, repeat: int) -> float:
    """The best of ``repeat`` timings of ``number`` calls of ``call(data)``, in µs per call."""
    timer = timeit.Timer(lambda: call(data))
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def main() -> None:
    """Time every frame kind three ways and print one line per kind and the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="calls per timing run")
    parser.add_argument("--repeat", type=int, default=7, help="timing runs; the best is kept")
    parser.add_argument("--bytes", action="store_true", help="frames as UTF-8 bytes instead of str")
    args = parser.parse_args()
    decode = msgspec.json.Decoder().decode
    results: dict[str, float] = {}
    for kind, text in FRAMES.items():
        data: Any = text.encode() if args.bytes else text
        parse = _parser(kind)
        parse(data)  # warm the caches, as a running session has them
        results[f"parse_{kind}_us"] = best_us(parse, data, args.number, args.repeat)
        results[f"json_loads_{kind}_us"] = best_us(json.loads, data, args.number, args.repeat)
        results[f"msgspec_{kind}_us"] = best_us(decode, data, args.number, args.repeat)
        print(
            f"{kind:8} parse {results[f'parse_{kind}_us']:6.2f} µs  "
            f"json.loads {results[f'json_loads_{kind}_us']:6.2f} µs  "
            f"msgspec {results[f'msgspec_{kind}_us']:6.2f} µs"
        )
    keys = [f"{way}_{kind}_us" for way in ("parse", "json_loads", "msgspec") for kind in FRAMES]
    print("RESULT " + " ".join(f"{key}={results[key]:.2f}" for key in keys))


if __name__ == "__main__":
    main()
