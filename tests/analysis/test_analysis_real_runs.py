"""Golden tests of ``aceorch debug …`` on sessions recorded by REAL runs (issue 6).

Each scenario of :mod:`realruns` runs the real ``aceorch serve`` against the simulators with one injected
fault; the run is recorded once per module and shared by the tests. Every expected number is computed here,
from the JSONL files, without aceorch's analysis code (and, for the seed's average, by ``jq -s`` with the
seed's own pipeline), then compared with what the CLI prints with ``--json``.

Scenarios: a clean run; engines failing at start until the breaker opens; capacity exhausted; slow engine
startups under load; engines hanging after start (all on the process runtime); and a VPN flap followed by a
slow provision and hung engines (Docker + gluetun-sim).
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import statistics
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from realruns import REPORT_CATEGORIES, SCENARIOS, RealRun, hms, recorded, slow_threshold_ms, timings, ts

ALL_CATEGORIES = ("session", "provisioning", "health", "vpn", "circuit_breaker", "autoscaler", "streams",
                  "performance", "stress", "errors")
PROCESS_SCENARIOS = ["clean", "breaker", "capacity", "slow_under_load", "hanging"]
SCENARIO_PARAMS = [*PROCESS_SCENARIOS, pytest.param("vpn_flap", marks=pytest.mark.docker)]
JQ_AVERAGE = ('map(select(.operation == "start_acestream_success" and .duration_ms != null)) | '
              'map(.duration_ms) | add / length')


class Runs:
    """Each scenario is run once per pytest process, the first time a test asks for it."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory

    def get(self, name: str) -> RealRun:
        return recorded(name, self.factory)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    yield Runs(tmp_path_factory)
    print(f"\nreal runs recorded so far (s): {timings()}")


@pytest.fixture
def run(request: pytest.FixtureRequest, runs: Runs) -> RealRun:
    name: str = request.param
    if name == "vpn_flap":
        request.getfixturevalue("docker_engine")
    return runs.get(name)


def test_every_scenario_is_covered() -> None:
    assert set(SCENARIOS) == {*PROCESS_SCENARIOS, "vpn_flap"}


# -- independent computations ------------------------------------------------------------------------------


def number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def expected_operations(run: RealRun) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (category, operation): count, durations in file order, successes and failures."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for category in REPORT_CATEGORIES:
        for record in run.records(category):
            op = record.get("operation")
            if not isinstance(op, str):
                continue
            e = out.setdefault((category, op), {"count": 0, "durations": [], "ok": [], "succeeded": 0,
                                                "failed": 0})
            e["count"] += 1
            d = number(record.get("duration_ms"))
            if d is not None:
                e["durations"].append(d)
                if record.get("success"):
                    e["ok"].append(d)
            if record.get("success") is True:
                e["succeeded"] += 1
            elif record.get("success") is False:
                e["failed"] += 1
    return out


def p(values: list[float], q: int) -> float:
    """numpy's default (linear) percentile, via the standard library."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def jq(filter_: str, *files: Path, slurp: bool = True) -> str:
    args = ["/usr/bin/jq", *(["-s"] if slurp else []), filter_, *map(str, files)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    return proc.stdout.strip()


def order_key(record: dict[str, Any]) -> tuple[str, int]:
    return (record["timestamp"], record["seq"])


def all_records(run: RealRun) -> list[tuple[str, dict[str, Any]]]:
    return [(c, r) for c in ALL_CATEGORIES for r in run.records(c)]


# -- report ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("run", SCENARIO_PARAMS, indirect=True)
def test_report_matches_the_files_and_jq(run: RealRun, run_cli: Callable[..., Any]) -> None:
    report = run_cli("report", "--dir", str(run.log_dir), "--json")
    assert report["sessions"] == [run.session]
    assert report["bad_lines"] == 0

    successes = [r["duration_ms"] for r in run.records("provisioning")
                 if r.get("operation") == "start_acestream_success" and r.get("duration_ms") is not None]
    assert successes, "every scenario has at least one successful start"
    mean = sum(successes) / len(successes)
    assert report["average_provisioning_ms"] == pytest.approx(mean, rel=1e-12)
    jq_mean = float(jq(JQ_AVERAGE, *sorted(run.log_dir.glob("*_provisioning.jsonl"))))
    assert report["average_provisioning_ms"] == pytest.approx(jq_mean, rel=1e-12)

    expected = expected_operations(run)
    got = {(o["category"], o["operation"]): o for o in report["operations"]}
    assert set(got) == set(expected)
    for key, e in expected.items():
        o = got[key]
        values = sorted(e["durations"])
        assert o["count"] == e["count"], key
        assert o["with_duration"] == len(values), key
        assert (o["succeeded"], o["failed"]) == (e["succeeded"], e["failed"]), key
        decided = e["succeeded"] + e["failed"]
        assert o["success_rate"] == (pytest.approx(e["succeeded"] / decided) if decided else None), key
        if values:
            assert o["avg_ms"] == pytest.approx(sum(e["durations"]) / len(values), rel=1e-12), key
            assert (o["min_ms"], o["max_ms"]) == (values[0], values[-1]), key
            assert o["p50_ms"] == pytest.approx(statistics.median(values)), key
            assert o["p95_ms"] == pytest.approx(p(values, 95)), key
        else:
            assert o["avg_ms"] is None and o["p95_ms"] is None, key
        ok = e["ok"]
        assert o["successful"]["count"] == len(ok), key
        if ok:
            assert o["successful"]["avg_ms"] == pytest.approx(sum(ok) / len(ok), rel=1e-12), key

    stress = Counter(r["event_type"] for r in run.records("stress"))
    assert report["stress"] == dict(stress)

    cycles = [r for r in run.records("health") if r.get("operation") == "health_monitor_cycle"]
    assert report["health"]["cycles"] == len(cycles)
    total = sum(c["total"] for c in cycles)
    healthy = sum(c["healthy"] for c in cycles)
    assert report["health"]["healthy_ratio"] == (pytest.approx(healthy / total) if total else None)


def test_report_rates_on_the_breaker_run(runs: Runs, run_cli: Callable[..., Any]) -> None:
    """The breaker run's start_acestream_success/failed rows, with numbers known from what the test did."""
    run = runs.get("breaker")
    report = run_cli("report", "--dir", str(run.log_dir), "--json")
    got = {o["operation"]: o for o in report["operations"] if o["category"] == "provisioning"}
    assert got["start_acestream_begin"]["count"] == 4
    assert got["start_acestream_success"]["count"] == 1 and got["start_acestream_success"]["success_rate"] == 1.0
    failed = got["start_acestream_failed"]
    assert failed["count"] == 3 and failed["success_rate"] == 0.0  # 2 engines exited + 1 breaker refusal
    assert report["stress"]["circuit_breaker_opened"] == 1


@pytest.mark.parametrize("run", SCENARIO_PARAMS, indirect=True)
def test_sessions_counts_every_line(run: RealRun, run_cli: Callable[..., Any]) -> None:
    [row] = run_cli("sessions", "--dir", str(run.log_dir), "--json")
    assert row["session_id"] == run.session
    assert row["ended_cleanly"] is True
    lines = {c: len(run.records(c)) for c in ALL_CATEGORIES}
    assert {c: row["records"].get(c, 0) for c in ALL_CATEGORIES} == lines
    assert row["total_records"] == sum(lines.values())


# -- diagnose ----------------------------------------------------------------------------------------------


def diagnosis(run: RealRun, run_cli: Callable[..., Any]) -> dict[str, Any]:
    result: dict[str, Any] = run_cli("diagnose", "--dir", str(run.log_dir), "--json")
    assert result["sessions"] == [run.session]
    prov = run.records("provisioning")
    ends = [r for r in prov if r["operation"] in ("start_acestream_success", "start_acestream_failed")]
    assert result["provisions"]["total"] == len(ends)
    assert result["provisions"]["succeeded"] == sum(r["success"] for r in ends)
    return result


def kinds(result: dict[str, Any]) -> list[str]:
    return [f["kind"] for f in result["findings"]]


def test_diagnose_clean_run_finds_no_problems(runs: Runs, run_cli: Callable[..., Any]) -> None:
    run = runs.get("clean")
    result = diagnosis(run, run_cli)
    assert result["findings"] == [] and result["verdict"] == "No problems found"
    assert result["provisions"] == {"total": 3, "succeeded": 3, "slow": 0}
    text = run_cli("diagnose", "--dir", str(run.log_dir)).stdout
    assert "No problems found" in text


def test_diagnose_breaker_names_the_first_failure(runs: Runs, run_cli: Callable[..., Any]) -> None:
    run = runs.get("breaker")
    result = diagnosis(run, run_cli)
    assert kinds(result)[0] == "circuit_breaker"
    assert "vpn_chain" not in kinds(result) and "capacity_exhausted" not in kinds(result)
    finding = result["findings"][0]
    assert finding["severity"] == "critical"
    opened = [r for r in run.records("stress") if r["event_type"] == "circuit_breaker_opened"]
    assert len(opened) == 1
    failures = [r for r in run.records("provisioning")
                if r["operation"] == "start_acestream_failed" and r["reason"] == "engine_exited"]
    assert len(failures) == 2
    message = run.facts["failures"][0]["detail"]["message"]
    chain = finding["chain"]
    assert chain[0] == f"first failure at {hms(failures[0]['timestamp'])}: {message} (reason engine_exited)"
    assert f"circuit breaker 'general' opened at {hms(opened[0]['timestamp'])} after 2 failures" in chain
    assert "1 provision(s) refused while it was open" in chain
    assert {s["name"] for s in finding["settings"]} == {"CIRCUIT_BREAKER_FAILURE_THRESHOLD",
                                                      "CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S"}
    # The breaker opened after two consecutive failed starts, as its own record says.
    assert opened[0]["failure_count"] == 2
    assert "2 consecutive failed start(s)" in chain, chain


def test_diagnose_breaker_run_does_not_call_fast_crashes_slow(runs: Runs, run_cli: Callable[..., Any]) -> None:
    """Engines that exit half a second after start are not "slow to pull their image or to answer"."""
    run = runs.get("breaker")
    result = diagnosis(run, run_cli)
    durations = [r["duration_ms"] for r in run.records("provisioning") if r["operation"].startswith("start_")
                 and r["operation"] != "start_acestream_begin"]
    threshold = result["threshold_ms"]
    assert all(d < threshold for d in durations), (durations, threshold)
    claims_slow = [f for f in result["findings"] if "slow" in (f["title"] + " ".join(f["chain"])).lower()]
    assert claims_slow == [], claims_slow


def test_diagnose_capacity(runs: Runs, run_cli: Callable[..., Any]) -> None:
    run = runs.get("capacity")
    result = diagnosis(run, run_cli)
    assert kinds(result) == ["capacity_exhausted"]
    [refused] = [r for r in run.records("provisioning") if r["operation"] == "start_acestream_failed"]
    assert refused["reason"] == "max_capacity"
    [event] = [r for r in run.records("stress") if r["event_type"] == "capacity_exhausted"]
    assert (event["limit"], event["running"]) == (1, 1)
    finding = result["findings"][0]
    assert finding["chain"] == [
        f"provisioning refused for capacity from {hms(min(refused['timestamp'], event['timestamp']))}",
        "1 start(s) refused (max_capacity / port_pool_exhausted)",
        "1 capacity_exhausted event(s): 1 running of a limit of 1",
    ]
    assert "MAX_REPLICAS" in {s["name"] for s in finding["settings"]}


def test_diagnose_slow_startup_under_load(runs: Runs, run_cli: Callable[..., Any]) -> None:
    run = runs.get("slow_under_load")
    result = diagnosis(run, run_cli)
    threshold = slow_threshold_ms(run.log_dir)
    assert threshold == pytest.approx(4200.0)
    assert result["threshold_ms"] == pytest.approx(threshold)
    durations = sorted(r["duration_ms"] for r in run.records("provisioning")
                       if r["operation"] == "start_acestream_success")
    assert len(durations) == 4 and all(d > result["threshold_ms"] for d in durations), durations
    assert result["provisions"] == {"total": 4, "succeeded": 4, "slow": 4}
    assert kinds(result) == ["resource_contention"], kinds(result)
    chain = result["findings"][0]["chain"]
    assert chain[0] == (f"4 of 4 provisions (100%) took longer than 4.20s (median {durations[2] / 1000:.2f}s, "
                        f"worst {durations[-1] / 1000:.2f}s)")
    slow_events = [r for r in run.records("stress") if r["event_type"] == "slow_provisioning"]
    assert len(slow_events) == 4


def test_diagnose_engines_hanging(runs: Runs, run_cli: Callable[..., Any]) -> None:
    run = runs.get("hanging")
    result = diagnosis(run, run_cli)
    assert kinds(result) == ["engines_hanging"]
    hung = run.facts["hung"]
    ready = next(r for r in run.records("provisioning")
                 if r["operation"] == "start_acestream_success" and r["container_id"] == hung)
    trouble = next(r for r in run.records("health") if r.get("container_id") == hung
                   and r["operation"] in ("probe_failed", "status_transition") and
                   (r["operation"] == "probe_failed" or r.get("to") == "unhealthy"))
    chain = result["findings"][0]["chain"]
    assert chain[0] == "1 engine(s) started fine and then failed their health probes"
    assert chain[1].startswith(f"first: {run.facts['hung_name']} ready at {hms(ready['timestamp'])} "
                               f"(took {ready['duration_ms'] / 1000:.2f}s)")
    assert result["findings"][0]["first_seen"] == trouble["timestamp"]
    # The other engine kept answering: it is never named.
    other = next(c for c in run.facts["containers"] if c != hung)
    assert other not in json.dumps(result)


@pytest.mark.docker
def test_diagnose_vpn_flap_chain(runs: Runs, run_cli: Callable[..., Any], docker_engine: None) -> None:
    run = runs.get("vpn_flap")
    result = diagnosis(run, run_cli)
    assert kinds(result)[0] == "vpn_chain"
    finding = result["findings"][0]
    assert finding["severity"] == "critical"
    assert finding["title"] == "VPN drop → slow provisioning → unhealthy engines"
    transitions = [r for r in run.records("vpn") if r.get("operation") == "transition"]
    # The outage starts at the first down signal (the VPN may pass through "starting" before "unhealthy").
    down = next(r for r in run.records("stress") if r["event_type"] == "vpn_disconnection")
    up = next(r for r in transitions if r["to"] == "healthy" and r["timestamp"] > down["timestamp"])
    chain = finding["chain"]
    assert chain[0] == f"VPN disconnected at {hms(down['timestamp'])} ({down['signal']})"
    assert "1 provision(s) refused with vpn_disconnected" in chain
    [slow] = [r for r in run.records("provisioning") if r["operation"] == "start_acestream_success"
              and r["duration_ms"] > result["threshold_ms"]]
    assert slow["container_id"] == run.facts["slow"]
    assert any(s.startswith("provisioning slowed") and f"worst {slow['duration_ms'] / 1000:.2f}s" in s
               for s in chain), chain
    cycles = [r for r in run.records("health") if r.get("operation") == "health_monitor_cycle" and r["total"]]
    worst = max(cycles, key=lambda c: c["unhealthy"] / c["total"])
    assert worst["unhealthy"] >= 2
    assert (f"{100 * worst['unhealthy'] / worst['total']:.0f}% of engines turned unhealthy at "
            f"{hms(worst['timestamp'])} ({worst['unhealthy']}/{worst['total']})") in chain
    seconds = (ts_ms(up["timestamp"]) - ts_ms(down["timestamp"])) / 1000
    assert f"VPN recovered at {hms(up['timestamp'])} after {seconds:.2f}s" in chain
    assert "circuit_breaker" not in kinds(result)


def ts_ms(text: str) -> float:
    return ts(text).timestamp() * 1000


# -- stress, slow, timeline, export-csv ------------------------------------------------------------------


@pytest.mark.parametrize("run", SCENARIO_PARAMS, indirect=True)
def test_stress_lists_every_event(run: RealRun, run_cli: Callable[..., Any]) -> None:
    result = run_cli("stress", "--dir", str(run.log_dir), "--json")
    records = run.records("stress")
    assert [(e["timestamp"], e["event_type"], e["seq"]) for e in result["events"]] == [
        (r["timestamp"], r["event_type"], r["seq"]) for r in sorted(records, key=order_key)]
    raised = Counter(r["event_type"] for r in records if not r["event_type"].endswith("_resolved"))
    assert {g["event_type"]: g["count"] for g in result["groups"] if g["count"]} == dict(raised)
    assert result["total"] == sum(raised.values())
    resolved = Counter(r["event_type"].removesuffix("_resolved") for r in records
                       if r["event_type"].endswith("_resolved"))
    assert {g["event_type"]: g["resolved"] for g in result["groups"] if g["resolved"]} == dict(resolved)
    expected_kinds = {
        "clean": set(), "breaker": {"circuit_breaker_opened"}, "capacity": {"capacity_exhausted"},
        "slow_under_load": {"slow_provisioning"}, "hanging": {"high_unhealthy_engines"},
        "vpn_flap": {"vpn_disconnection", "vpn_recovered", "slow_provisioning", "high_unhealthy_engines"},
    }[run.name]
    assert expected_kinds <= set(raised), raised
    if run.name == "vpn_flap":
        one = run_cli("stress", "--type", "vpn_disconnection", "--dir", str(run.log_dir), "--json")
        assert [e["event_type"] for e in one["events"]] == [
            r["event_type"] for r in sorted(records, key=order_key)
            if r["event_type"] in ("vpn_disconnection", "vpn_disconnection_resolved")]


@pytest.mark.parametrize("run", ["slow_under_load", "breaker",
                                 pytest.param("vpn_flap", marks=pytest.mark.docker)], indirect=True)
def test_slow_over_threshold(run: RealRun, run_cli: Callable[..., Any]) -> None:
    over = slow_threshold_ms(run.log_dir)
    items = run_cli("slow", "--over", f"{over:g}", "--dir", str(run.log_dir), "--json")
    expected = sorted(((c, r) for c, r in all_records(run)
                       if number(r.get("duration_ms")) is not None and r["duration_ms"] > over),
                      key=lambda cr: order_key(cr[1]))
    assert [(i["category"], i["seq"], i["duration_ms"]) for i in items] == [
        (c, r["seq"], r["duration_ms"]) for c, r in expected]
    starts = [i for i in items if i["type"] == "start_acestream_success"]
    want = {"slow_under_load": 4, "breaker": 0, "vpn_flap": 1}[run.name]
    assert len(starts) == want
    # And the seed's own jq for the same question agrees on the provisioning file.
    prov = sorted(run.log_dir.glob("*_provisioning.jsonl"))
    jq_seqs = jq(f"select(.duration_ms > {over:g}) | .seq", *prov, slurp=False).split()
    assert [int(s) for s in jq_seqs] == [i["seq"] for i in items if i["category"] == "provisioning"]


@pytest.mark.parametrize("run", ["breaker", "hanging", pytest.param("vpn_flap", marks=pytest.mark.docker)],
                         indirect=True)
def test_timeline_is_the_merged_sorted_view(run: RealRun, run_cli: Callable[..., Any]) -> None:
    items = run_cli("timeline", "--dir", str(run.log_dir), "--json")
    expected = sorted((r for _c, r in all_records(run)
                       if isinstance(r.get("event_type") or r.get("operation"), str)), key=order_key)
    assert [(i["time"], i["seq"], i["type"]) for i in items] == [
        (r["timestamp"], r["seq"], r.get("event_type") or r.get("operation")) for r in expected]
    # The seed's recipe: every line sorted by timestamp; the same records in the same order.
    files = sorted(run.log_dir.glob("*.jsonl"))
    seeded = json.loads(jq("sort_by(.timestamp) | map(select(.event_type != null or .operation != null)) | "
                           "map(.seq)", *files))
    assert seeded == [i["seq"] for i in items]
    # Filtered by type and by time.
    critical = {"breaker": "circuit_breaker_*", "hanging": "status_transition", "vpn_flap": "vpn_*"}[run.name]
    some = run_cli("timeline", "--type", critical, "--dir", str(run.log_dir), "--json")
    assert [i["seq"] for i in some] == [r["seq"] for r in expected
                                        if fnmatch.fnmatchcase(r.get("event_type") or r["operation"], critical)]
    assert some, critical
    middle = expected[len(expected) // 2]["timestamp"]
    later = run_cli("timeline", "--since", middle, "--dir", str(run.log_dir), "--json")
    assert [i["seq"] for i in later] == [r["seq"] for r in expected if r["timestamp"] >= middle]


@pytest.mark.parametrize("run", ["breaker", "capacity", pytest.param("vpn_flap", marks=pytest.mark.docker)],
                         indirect=True)
def test_export_csv_matches_the_seeds_jq_export(run: RealRun, run_cli: Callable[..., Any], tmp_path: Path) -> None:
    out = tmp_path / "provisioning.csv"
    run_cli("export-csv", "--dir", str(run.log_dir), "-o", str(out))
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
    header, body = rows[0], rows[1:]
    assert header[:4] == ["timestamp", "operation", "duration_ms", "success"]
    records = run.records("provisioning")
    assert len(body) == len(records)
    prov = sorted(run.log_dir.glob("*_provisioning.jsonl"))
    # The seed's export, verbatim filter: jq -r '[.timestamp, .operation, .duration_ms, .success] | @csv'.
    seed_csv = subprocess.run(["/usr/bin/jq", "-r", "[.timestamp, .operation, .duration_ms, .success] | @csv",
                               *map(str, prov)], capture_output=True, text=True, check=True, timeout=60).stdout
    seed_rows = list(csv.reader(io.StringIO(seed_csv)))
    assert len(seed_rows) == len(body)
    for row, jq_row, record in zip(body, seed_rows, records, strict=True):
        assert row[0] == record["timestamp"] == jq_row[0]
        assert row[1] == record["operation"] == jq_row[1]
        assert (float(row[2]) if row[2] else None) == number(record.get("duration_ms")) == (
            float(jq_row[2]) if jq_row[2] != "" else None)
        success = record.get("success")
        assert row[3] == ("" if success is None else str(success).lower()) == jq_row[3]
        assert row[header.index("seq")] == str(record["seq"])
        assert row[header.index("reason")] == (record.get("reason") or "")
    reasons = Counter(r for r in (row[header.index("reason")] for row in body) if r)
    assert reasons == Counter(r["reason"] for r in records if r.get("reason"))
