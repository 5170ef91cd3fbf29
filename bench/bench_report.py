"""Benchmark: ``aceorch debug report`` and ``debug sql`` against the guide's ``jq -s`` average.

    .venv/bin/python bench/bench_report.py            # 75 MB and 300 MB, side by side
    .venv/bin/python bench/bench_report.py --mb 20    # a quick run

Generates ``<session>_provisioning.jsonl`` of the requested size in a temporary folder (records shaped like
aceorch's: begin with labels, success with container fields, some failures and stops), then runs

* ``aceorch debug report --json`` (as ``python -c 'from aceorch.cli.debug import app; app()'``), and
* the guide's ``jq -s 'map(select(.operation == "start_acestream_success" and .duration_ms != null)) |
  map(.duration_ms) | add / length'`` on the same file, and
* ``aceorch debug sql`` with the same question in SQL,

each as a child process whose wall time (start-up included) and peak RSS (``wait4``) are measured. Prints them
side by side with the ratios, checks that the averages agree to 1e-9, and writes the numbers to
``bench/results/``. Goals: at least 5x jq at 75 MB; at least 15x and at most 200 MB peak RSS at 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

JQ_FILTER = (
    'map(select(.operation == "start_acestream_success" and .duration_ms != null)) | map(.duration_ms) | add / length'
)
RESULTS = Path(__file__).resolve().parent / "results"


def generate(path: Path, target_bytes: int, seed: int = 42) -> int:
    rng = random.Random(seed)
    start = datetime(2025, 10, 18, 14, 44, 30, tzinfo=UTC)
    sid = start.strftime("%Y%m%d_%H%M%S")
    seq = 0
    written = 0
    n = 0
    with path.open("w", encoding="utf-8") as out:
        while written < target_bytes:
            n += 1
            t0 = n * 0.05
            seq += 1
            rid = f"{rng.getrandbits(64):016x}"

            def stamp(offset: float) -> tuple[str, float]:
                moment = start + timedelta(seconds=offset)
                return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), round(offset, 3)

            ts, el = stamp(t0)
            lines = [
                f'{{"session_id":"{sid}","timestamp":"{ts}","elapsed_seconds":{el},"seq":{seq},'
                f'"request_id":"{rid}","operation":"start_acestream_begin",'
                f'"labels":{{"test":"stress","acestream.managed":"true"}},'
                f'"image":"acestream/engine:latest","custom_env":false}}'
            ]
            duration = round(rng.lognormvariate(8.3, 0.5), 2)
            seq += 1
            ts, el = stamp(t0 + duration / 1000.0)
            cid = f"{rng.getrandbits(256):064x}"
            if rng.random() < 0.92:
                lines.append(
                    f'{{"session_id":"{sid}","timestamp":"{ts}","elapsed_seconds":{el},"seq":{seq},'
                    f'"request_id":"{rid}","operation":"start_acestream_success","container_id":"{cid}",'
                    f'"container_name":"acestream-{n}","host_http_port":{19000 + n % 1000},'
                    f'"duration_ms":{duration},"success":true,"error":null}}'
                )
            else:
                lines.append(
                    f'{{"session_id":"{sid}","timestamp":"{ts}","elapsed_seconds":{el},"seq":{seq},'
                    f'"request_id":"{rid}","operation":"start_acestream_failed","container_id":null,'
                    f'"error":"Engine did not answer within 25 s","reason":"startup_timeout",'
                    f'"duration_ms":{duration},"success":false}}'
                )
            if n % 5 == 0:
                seq += 1
                ts, el = stamp(t0 + 30.0)
                lines.append(
                    f'{{"session_id":"{sid}","timestamp":"{ts}","elapsed_seconds":{el},"seq":{seq},'
                    f'"operation":"stop_engine_success","container_id":"{cid}","container_name":"acestream-{n}",'
                    f'"reason":"idle","duration_ms":{round(rng.uniform(100, 900), 2)},"success":true,"error":null}}'
                )
            chunk = "\n".join(lines) + "\n"
            out.write(chunk)
            written += len(chunk)
    return written


def measure(argv: list[str], stdin_path: Path | None = None) -> dict[str, object]:
    stdin = stdin_path.open("rb") if stdin_path else subprocess.DEVNULL
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    stdout = proc.stdout.read()
    stderr = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if stdin_path:
        stdin.close()  # type: ignore[union-attr]
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {stderr.decode()[-2000:]}")
    return {"seconds": round(elapsed, 3), "peak_rss_mb": round(usage.ru_maxrss / 1024.0, 1), "stdout": stdout}


SQL_AVERAGE = (
    "SELECT avg(duration_ms) AS avg FROM provisioning "
    "WHERE operation = 'start_acestream_success' AND duration_ms IS NOT NULL"
)
#: Goals per size (MB): (least speed-up over jq, most peak RSS of the report in MB or None).
GOALS = {75.0: (5.0, None), 300.0: (15.0, 200.0)}


def run_size(mb: float, jq: str) -> dict[str, object]:
    """Generate ``mb`` MB, then time ``debug report``, ``jq -s`` and ``debug sql`` on the average, side by side."""
    with tempfile.TemporaryDirectory(prefix="aceorch-bench-") as tmp:
        log_dir = Path(tmp) / "debug_logs"
        log_dir.mkdir()
        path = log_dir / "20251018_144430_provisioning.jsonl"
        t = time.perf_counter()
        size = generate(path, int(mb * 1024 * 1024))
        print(f"generated {size / 1048576:.1f} MB in {time.perf_counter() - t:.1f}s: {path.name}")
        cli = [sys.executable, "-c", "from aceorch.cli.debug import app; app()"]
        ours = measure([*cli, "report", "--dir", str(log_dir), "--json"])
        our_avg = json.loads(ours.pop("stdout"))["average_provisioning_ms"]  # type: ignore[arg-type]
        theirs = measure([jq, "-s", JQ_FILTER], stdin_path=path)
        jq_avg = float(theirs.pop("stdout"))  # type: ignore[arg-type]
        sql = measure([*cli, "sql", SQL_AVERAGE, "--dir", str(log_dir), "--json"])
        sql_avg = json.loads(sql.pop("stdout"))[0]["avg"]  # type: ignore[arg-type]
    ratio = theirs["seconds"] / ours["seconds"]  # type: ignore[operator]
    sql_ratio = theirs["seconds"] / sql["seconds"]  # type: ignore[operator]
    agree = abs(our_avg - jq_avg) <= 1e-9 * abs(jq_avg) and abs(sql_avg - jq_avg) <= 1e-9 * abs(jq_avg)
    least, most_rss = GOALS.get(round(mb, 1), (5.0, None))
    met = ratio >= least and agree and (most_rss is None or ours["peak_rss_mb"] <= most_rss)  # type: ignore[operator]
    print(f"{'':22}{'aceorch debug report':>22}{'jq -s (the guide)':>22}{'aceorch debug sql':>22}")
    print(f"{'wall time (s)':22}{ours['seconds']:>22}{theirs['seconds']:>22}{sql['seconds']:>22}")
    print(f"{'peak RSS (MB)':22}{ours['peak_rss_mb']:>22}{theirs['peak_rss_mb']:>22}{sql['peak_rss_mb']:>22}")
    print(f"{'average (ms)':22}{our_avg!r:>22}{jq_avg!r:>22}{sql_avg!r:>22}")
    rss_goal = f", report ≤ {most_rss:.0f} MB" if most_rss else ""
    print(f"speed-up: report {ratio:.1f}x, sql {sql_ratio:.1f}x (goal ≥ {least:.0f}x{rss_goal}); "
          f"averages agree to 1e-9: {agree}\n")
    return {
        "input_mb": round(size / 1048576, 1),
        "aceorch_report": ours,
        "jq_slurp": theirs,
        "aceorch_sql": sql,
        "speedup": round(ratio, 2),
        "sql_speedup": round(sql_ratio, 2),
        "average_ms": {"aceorch": our_avg, "jq": jq_avg, "sql": sql_avg, "agree_1e-9": agree},
        "goal": {"speedup": least, "peak_rss_mb": most_rss},
        "goals_met": bool(met),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", default="75,300", help="sizes of the generated provisioning log (MB, comma-separated)")
    parser.add_argument("--jq", default="/usr/bin/jq")
    args = parser.parse_args()
    runs = [run_size(float(mb), args.jq) for mb in str(args.mb).split(",") if mb.strip()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    largest = runs[-1]
    result = {
        "when": stamp,
        "runs": runs,
        # The summary of ``make bench`` names the largest size.
        "input_mb": largest["input_mb"],
        "speedup": " / ".join(f"{r['speedup']}x at {r['input_mb']} MB" for r in runs),
        "goals_met": all(r["goals_met"] for r in runs),
    }
    out = RESULTS / f"bench_report_{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
