"""``aceorch debug report``: numbers checked against independent computations and the seed's jq recipe."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sessiongen as gen

from aceorch.analysis import fields
from aceorch.analysis import report as report_mod
from aceorch.analysis.reader import Reader
from aceorch.analysis.sessions import discover_sessions

JQ = "/usr/bin/jq"
SEED_AVG = (
    'map(select(.operation == "start_acestream_success" and .duration_ms != null)) | map(.duration_ms) | add / length'
)


def busy_session(
    log_dir: Path, start: Any, seed: int, n: int = 300, *, decoy: bool = True
) -> gen.SessionBuilder:
    """Many provisions with awkward durations (order-sensitive float sums), failures and stops."""
    rng = random.Random(seed)
    b = gen.SessionBuilder(log_dir, start, decoy_labels=decoy)
    b.session_start()
    for i in range(n):
        t = i * 0.7
        roll = rng.random()
        if roll < 0.1:
            b.provision(t, rng.uniform(0.1, 3.0), success=False, reason="docker_error", error="boom")
        else:
            name = b.provision(t, rng.uniform(0.5, 30.0) + rng.random() / 7.0, request_id=f"r{i}")
            if roll > 0.8:
                b.stop(t + 40.0, name, reason="idle", duration_s=rng.uniform(0.1, 2.0))
    for t in range(0, n, 10):
        b.health_cycle(float(t), 8 + (t % 3), t % 3)
    b.write()
    return b


def jq_average(files: list[Path]) -> float:
    data = b"".join(p.read_bytes() for p in files)
    out = subprocess.run([JQ, "-s", SEED_AVG], input=data, capture_output=True, check=True)
    return float(out.stdout)


def quantile(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@pytest.fixture
def two_sessions(tmp_path: Path) -> Path:
    log_dir = tmp_path / "debug_logs"
    busy_session(log_dir, gen.START - timedelta(hours=3), seed=1)
    busy_session(log_dir, gen.START, seed=2)
    return log_dir


def test_report_average_is_the_guide_jq_average_for_the_latest_session(
    two_sessions: Path, run_cli: Callable[..., Any]
) -> None:
    report = run_cli("report", "--dir", str(two_sessions), "--json")
    latest = sorted(two_sessions.glob("*_provisioning.jsonl"))[-1]
    assert report["sessions"] == [latest.name[:15]]
    assert report["average_provisioning_ms"] == pytest.approx(jq_average([latest]), rel=1e-9)
    op = next(o for o in report["operations"] if o["operation"] == "start_acestream_success")
    assert op["avg_ms"] == pytest.approx(jq_average([latest]), rel=1e-9)


def test_report_all_sessions_average_is_the_guide_jq_average_over_the_glob(
    two_sessions: Path, run_cli: Callable[..., Any]
) -> None:
    report = run_cli("report", "--dir", str(two_sessions), "--all", "--json")
    files = sorted(two_sessions.glob("*_provisioning.jsonl"))  # the shell's glob order
    assert len(report["sessions"]) == 2
    assert report["average_provisioning_ms"] == pytest.approx(jq_average(files), rel=1e-9)


def test_report_per_operation_stats_match_an_independent_computation(
    two_sessions: Path, run_cli: Callable[..., Any]
) -> None:
    report = run_cli("report", "--dir", str(two_sessions), "--json")
    latest = sorted(two_sessions.glob("*_provisioning.jsonl"))[-1]
    durations: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    outcomes: dict[str, list[bool]] = defaultdict(list)
    seed_stats: dict[str, list[float]] = defaultdict(list)
    for line in latest.read_text().splitlines():
        entry = json.loads(line)
        op = entry["operation"]
        counts[op] += 1
        if entry.get("duration_ms") is not None:
            durations[op].append(entry["duration_ms"])
        if "success" in entry:
            outcomes[op].append(entry["success"])
        # The seed's "Performance Report" script, verbatim condition.
        if "duration_ms" in entry and entry.get("success"):
            seed_stats[op].append(entry["duration_ms"])
    ops = {o["operation"]: o for o in report["operations"] if o["category"] == "provisioning"}
    assert set(ops) == set(counts)
    for op, row in ops.items():
        assert row["count"] == counts[op]
        values = durations[op]
        assert row["with_duration"] == len(values)
        if values:
            assert row["avg_ms"] == pytest.approx(statistics.fmean(values))
            assert row["min_ms"] == min(values)
            assert row["max_ms"] == max(values)
            assert row["p50_ms"] == pytest.approx(quantile(values, 50))
            assert row["p95_ms"] == pytest.approx(quantile(values, 95))
        if outcomes[op]:
            assert row["success_rate"] == pytest.approx(sum(outcomes[op]) / len(outcomes[op]))
        else:
            assert row["success_rate"] is None
        ok = seed_stats[op]
        assert row["successful"]["count"] == len(ok)
        if ok:
            assert row["successful"]["avg_ms"] == pytest.approx(sum(ok) / len(ok))
            assert row["successful"]["min_ms"] == min(ok)
            assert row["successful"]["max_ms"] == max(ok)
    # Failures are part of the data set: the success rate of starts is neither 0 nor 1.
    failed = ops.get("start_acestream_failed")
    assert failed is not None and failed["success_rate"] == 0.0


def test_report_stress_vpn_and_health_sections(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    log_dir = tmp_path / "logs"
    b = gen.vpn_incident(log_dir)
    report = run_cli("report", "--dir", str(log_dir), "--json")
    stress_lines = (log_dir / f"{b.session_id}_stress.jsonl").read_text().splitlines()
    expected: dict[str, int] = defaultdict(int)
    for line in stress_lines:
        expected[json.loads(line)["event_type"]] += 1
    assert report["stress"] == dict(expected)
    assert report["stress"]["slow_provisioning"] == 2
    [outage] = report["vpn_outages"]
    assert outage["start"] == gen.ts(b.at(45.1))
    assert outage["end"] == gen.ts(b.at(75.2))
    assert outage["duration_ms"] == pytest.approx(30100.0)
    assert outage["outage_ms"] == pytest.approx(30100.0)
    health = report["health"]
    assert health["cycles"] == 6
    # Sweeps at +2.3 … +102.3; two of them (62.3, 82.3) have 4 of 10 unhealthy.
    assert health["healthy_ratio"] == pytest.approx((4 * 10 + 2 * 6) / 60)
    assert health["min_healthy_ratio"] == pytest.approx(0.6)
    assert sum(bucket["cycles"] for bucket in health["over_time"]) == 6


def test_report_human_output_names_the_seed_average(two_sessions: Path, run_cli: Callable[..., Any]) -> None:
    result = run_cli("report", "--dir", str(two_sessions))
    latest = sorted(two_sessions.glob("*_provisioning.jsonl"))[-1]
    assert f"{jq_average([latest]):,.2f}" in result.stdout
    assert "Performance Report" in result.stdout
    assert "start_acestream_success" in result.stdout


TRICKY_LINES = [
    # plain, compact
    b'{"seq":1,"operation":"start_acestream_success","duration_ms":18450.5,"success":true}',
    # spaces after colons, integer duration, null success
    b'{"seq": 2, "operation": "x", "duration_ms": 12, "success": null}',
    # nested labels that contain an "operation" key before the top-level one
    b'{"seq":3,"labels":{"operation":"decoy"},"operation":"real","duration_ms":1.5,"success":false}',
    # the only "operation" is nested: the record has none at the top level
    b'{"seq":4,"labels":{"operation":"decoy","duration_ms":5},"success":true}',
    # quoted text that looks like keys, escaped inside a string
    b'{"seq":5,"error":"bad \\"operation\\": \\"x\\", \\"duration_ms\\": 99","operation":"y","duration_ms":null}',
    # escaped operation name
    b'{"seq":6,"operation":"we\\"ird","duration_ms":3e2,"success":true}',
    # a duration given as a string is not a number
    b'{"seq":7,"operation":"z","duration_ms":"12","success":true}',
    # no operation, no duration
    b'{"seq":8,"event_type":"vpn_disconnection"}',
]


def reference(line: bytes) -> tuple[str | None, float | None, bool | None]:
    entry = json.loads(line)
    op = entry.get("operation")
    dur = entry.get("duration_ms")
    suc = entry.get("success")
    return (
        op if isinstance(op, str) else None,
        float(dur) if isinstance(dur, int | float) and not isinstance(dur, bool) else None,
        suc if isinstance(suc, bool) else None,
    )


def test_report_on_tricky_lines_equals_a_pure_json_computation(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / "20251018_144430_provisioning.jsonl").write_bytes(b"\n".join(TRICKY_LINES) + b"\nnot json\n")
    reader = Reader()
    sessions = discover_sessions(log_dir)
    report = report_mod.build_report(reader, sessions)
    expected: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for line in TRICKY_LINES:
        op, dur, _suc = reference(line)
        if op is not None:
            counts[op] += 1
            if dur is not None:
                expected[op].append(dur)
    got = {o["operation"]: o for o in report["operations"]}
    assert {k: v["count"] for k, v in got.items()} == dict(counts)
    for op, values in expected.items():
        assert got[op]["with_duration"] == len(values)
        assert got[op]["avg_ms"] == pytest.approx(sum(values) / len(values))
    assert report["bad_lines"] == 1


def test_percentile_interpolates_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert fields.percentile(values, 50) == 2.5
    assert fields.percentile(values, 95) == pytest.approx(3.85)
    assert fields.percentile([7.0], 95) == 7.0
    assert fields.percentile([], 50) is None


def test_reader_reports_progress_summing_to_the_file_size(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    busy_session(log_dir, gen.START, seed=3, n=4000)
    path = next(log_dir.glob("*_provisioning.jsonl"))
    seen: list[int] = []
    reader = Reader(progress=seen.append)
    records = sum(1 for _ in reader.records(path))
    assert records == len(path.read_bytes().splitlines())
    assert sum(seen) == path.stat().st_size
    seen.clear()
    report_mod.build_report(reader, discover_sessions(log_dir))
    read = sum(seen)
    assert path.stat().st_size <= read <= sum(p.stat().st_size for p in log_dir.iterdir())


def test_report_on_a_large_plain_log_matches_jq(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    log_dir = tmp_path / "logs"
    busy_session(log_dir, gen.START, seed=5, n=20000, decoy=False)
    path = next(log_dir.glob("*_provisioning.jsonl"))
    report = run_cli("report", "--dir", str(log_dir), "--json")
    assert report["average_provisioning_ms"] == pytest.approx(jq_average([path]), rel=1e-9)
    # The same numbers with decoy labels (nested objects holding the same keys) in an identical session.
    decoy_dir = tmp_path / "decoy"
    busy_session(decoy_dir, gen.START, seed=5, n=20000, decoy=True)
    decoy = run_cli("report", "--dir", str(decoy_dir), "--json")
    assert decoy["operations"] == report["operations"]


def test_a_file_being_written_has_its_incomplete_last_line_skipped_and_counted(
    tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    log_dir = tmp_path / "logs"
    busy_session(log_dir, gen.START, seed=6, n=200, decoy=False)
    path = next(log_dir.glob("*_provisioning.jsonl"))
    whole = run_cli("report", "--dir", str(log_dir), "--json")
    with path.open("ab") as handle:  # a writer caught half-way through a line
        handle.write(b'{"session_id":"x","timestamp":"2025-10-18T15:00:00.000000Z","seq":99999,"operation":"start_a')
    cut = run_cli("report", "--dir", str(log_dir), "--json")
    assert cut["operations"] == whole["operations"]
    assert (cut["bad_lines"], cut["incomplete_lines"]) == (1, 1)
    assert whole["incomplete_lines"] == 0
    events = run_cli("timeline", "--dir", str(log_dir), "--json")
    assert len(events) > 0 and all(e["seq"] != 99999 for e in events)


def test_report_separates_engine_readiness_polling_from_real_failures(
    tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    log_dir = tmp_path / "logs"
    b = gen.SessionBuilder(log_dir, gen.START)
    b.session_start()
    b.provision(10.0, 3.0)  # acestream-1 on port 19001, starting from 10 s to 13 s

    def call(t: float, ok: bool) -> None:
        b.emit("performance", t, operation="http.server", kind="http", method="GET", target="127.0.0.1:19001",
               path="/server/api", status=200 if ok else None, duration_ms=2.0, success=ok,
               error=None if ok else "ConnectError: connection refused")

    for t in (10.5, 11.0, 11.5, 12.0):  # polling while it starts: refused, then it answers
        call(t, ok=t >= 12.0)
    for t in (20.0, 30.0, 40.0):  # later probes of the running engine: one is a real failure
        call(t, ok=t != 30.0)
    b.session_end(50.0)
    b.write()
    report = run_cli("report", "--dir", str(log_dir), "--json")
    assert report["engine_api"] == {
        "readiness_polls": 4, "readiness_polls_unanswered": 3, "other_calls": 3, "other_calls_failed": 1,
    }
    text = run_cli("report", "--dir", str(log_dir)).stdout
    assert "readiness polls while an engine starts" in text and "real: a running engine did not answer" in text
