#!/usr/bin/env bash
# Runs every benchmark with small defaults (about 2-4 minutes on 2 cores); prints the RESULT lines.
# e2e and latency run the asyncio peers too (pip install -e '.[bench]'); a peer not installed: na.
# Usage: bench/run_all.sh [python]   (default: the python on PATH; e.g. /work/venv/bin/python)
set -euo pipefail
PY="${1:-python}"
cd "$(dirname "$0")/.."
run() { echo "== $*"; timeout 240 "$PY" "$@"; }
run bench/e2e.py --frames 40000 --rounds 3
run bench/bus.py --events 50000 --rounds 2
run bench/latency.py --rate 2000 --accounts 50 --seconds 3 --rounds 3
run bench/sessions.py --sessions 200 --idle 5
run bench/reconnect.py --sessions 5 --rounds 2 --backoff-max 2
