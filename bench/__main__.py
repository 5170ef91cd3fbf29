"""``python -m bench [names...] [--quick]``: run the benchmarks, each in its own process, then a table.

Names: p1 p2 p3 p4 p5 p7 p8 swarm report (default: all). ``--quick`` (or ``BENCH_QUICK=1``) runs a tiny size; the
debug-report benchmark (``bench/bench_report.py``) then uses 30 MB instead of ``BENCH_REPORT_MB``
(default ``75,300``: both sizes side by side).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence

from bench import common

BENCHMARKS: dict[str, str] = {
    "p1": "p1_overhead",
    "p2": "p2_concurrency",
    "p3": "p3_writer",
    "p4": "p4_debug_onoff",
    "p5": "p5_loop_lag",
    "p7": "p7_scale",
    "p8": "p8_proxy",
    "swarm": "p8_swarm",
    "report": "bench_report",
}
ORDER = ("p3", "p4", "p5", "p7", "p8", "p1", "p2", "swarm", "report")
#: bench_report.py (not ours) always writes here.
REPORT_RESULTS = common.ROOT / "bench" / "results"


def command(name: str, quick: bool) -> list[str]:
    if name == "report":
        mb = "30" if quick else os.environ.get("BENCH_REPORT_MB", "75,300")
        return [sys.executable, str(common.ROOT / "bench" / "bench_report.py"), "--mb", mb]
    return [sys.executable, "-m", f"bench.{BENCHMARKS[name]}", *(["--quick"] if quick else [])]


def latest_result(name: str) -> dict[str, object] | None:
    module = BENCHMARKS[name]
    if name == "report":
        files = sorted(REPORT_RESULTS.glob("bench_report_*.json"))
        path = files[-1] if files else None
    else:
        path = common.RESULTS / f"{module}.json"
    if path is None or not path.exists():
        return None
    data: dict[str, object] = json.loads(path.read_text())
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help="p1 p2 p3 p4 p5 p7 p8 swarm report (default: all)")
    parser.add_argument("--quick", action="store_true", default=common.quick_default())
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = [n for n in ORDER if n in args.names] if args.names else list(ORDER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(common.ROOT),
                                                                      os.environ.get("PYTHONPATH")]))}
    failed: list[str] = []
    rows: list[tuple[str, str, str, str]] = []
    total_begin = time.perf_counter()
    for name in names:
        print(f"\n=== {name} ({BENCHMARKS[name]}) ===", flush=True)
        begin = time.perf_counter()
        started = time.time()
        code = subprocess.run(command(name, args.quick), cwd=common.ROOT, env=env, check=False).returncode
        took = time.perf_counter() - begin
        result = latest_result(name)
        fresh = result is not None and (name != "report" or os.path.getmtime(
            sorted(REPORT_RESULTS.glob("bench_report_*.json"))[-1]) >= started)
        if code != 0 or not fresh or result is None:
            failed.append(name)
            rows.append((name, f"FAILED (exit {code})", "", f"{took:.0f}s"))
            continue
        if name == "report":
            verdict = "MET" if result.get("goals_met") else "MISSED"
            line = f"debug report {result['speedup']}x faster than jq -s on {result['input_mb']} MB"
        else:
            verdict = "MET" if result["met"] else "MISSED"
            line = str(result["summary"])
        rows.append((name, line, verdict, f"{took:.0f}s"))
    print(f"\n=== summary ({time.perf_counter() - total_begin:.0f} s{', quick' if args.quick else ''}) ===")
    for name, line, verdict, duration in rows:
        print(f"{name:7} {verdict:7} {duration:>5}  {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
