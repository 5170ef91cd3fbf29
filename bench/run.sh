#!/usr/bin/env bash
# `make bench`: every benchmark (bench/*.py, including bench_report.py at 300 MB), then a summary table.
#   BENCH_QUICK=1 make bench      a tiny size of each (bench_report.py at 30 MB), for a quick look
#   BENCH_REPORT_MB=100 make bench   another size for bench_report.py
#   bench/run.sh p1 p3            only some (p1 p2 p3 p4 p5 p7 p8 swarm report)
# The Docker benchmarks (p1, p2) start a Docker engine and build the simulator image if needed.
# Results: bench/results/*.json; docs/performance.md records a full run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
exec "$PY" -m bench "$@"
