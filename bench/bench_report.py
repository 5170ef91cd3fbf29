"""Benchmark: ``aceorch debug report`` against the seed's ``jq -s`` average on a large provisioning log.

    .venv/bin/python bench/bench_report.py            # ~300 MB (the speed goal of debug-log.md)
    .venv/bin/python bench/bench_report.py --mb 20    # a quick run

Generates ``<session>_provisioning.jsonl`` of the requested size in a temporary folder (records shaped like
aceorch's: begin with labels, success with container fields, some failures and stops), then runs

* ``aceorch debug report --json`` (as ``python -c 'from aceorch.cli.debug import app; app()'``), and
* the seed's ``jq -s 'map(select(.operation == "start_acestream_success" and .duration_ms != null)) |
  map(.duration_ms) | add / length'`` on the same file,

each as a child process whose wall time and peak RSS (``wait4``) are measured. Prints both side by side with
the ratio, checks that both averages are equal, and writes the numbers to ``bench/results/``.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=300.0, help="size of the generated provisioning log (MB)")
    parser.add_argument("--jq", default="/usr/bin/jq")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="aceorch-bench-") as tmp:
        log_dir = Path(tmp) / "debug_logs"
        log_dir.mkdir()
        path = log_dir / "20251018_144430_provisioning.jsonl"
        t = time.perf_counter()
        size = generate(path, int(args.mb * 1024 * 1024))
        print(f"generated {size / 1048576:.1f} MB in {time.perf_counter() - t:.1f}s: {path.name}")

        cli = [sys.executable, "-c", "from aceorch.cli.debug import app; app()"]
        ours = measure([*cli, "report", "--dir", str(log_dir), "--json"])
        our_avg = json.loads(ours.pop("stdout"))["average_provisioning_ms"]  # type: ignore[arg-type]
        theirs = measure([args.jq, "-s", JQ_FILTER], stdin_path=path)
        jq_avg = float(theirs.pop("stdout"))  # type: ignore[arg-type]

    ratio = theirs["seconds"] / ours["seconds"]  # type: ignore[operator]
    print(f"{'':22}{'aceorch debug report':>22}{'jq -s (seed)':>24}")
    print(f"{'wall time (s)':22}{ours['seconds']:>22}{theirs['seconds']:>24}")
    print(f"{'peak RSS (MB)':22}{ours['peak_rss_mb']:>22}{theirs['peak_rss_mb']:>24}")
    print(f"{'average (ms)':22}{our_avg!r:>22}{jq_avg!r:>24}")
    print(f"speed-up: {ratio:.1f}x (goal ≥ 5x); report RSS goal < 200 MB; averages equal: {our_avg == jq_avg}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    result = {
        "when": stamp,
        "input_mb": round(size / 1048576, 1),
        "aceorch_report": ours,
        "jq_slurp": theirs,
        "speedup": round(ratio, 2),
        "average_ms": {"aceorch": our_avg, "jq": jq_avg, "equal": our_avg == jq_avg},
        "goals_met": bool(ratio >= 5 and ours["peak_rss_mb"] < 200 and our_avg == jq_avg),  # type: ignore[operator]
    }
    out = RESULTS / f"bench_report_{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
