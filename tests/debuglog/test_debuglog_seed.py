"""The seed's jq commands and scripts run verbatim on our files; bundles hold a session and a true manifest."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from debuglog_helpers import FakeClock

from aceorch import aiokits
from aceorch.debuglog.records import CATEGORIES
from aceorch.debuglog.stress import StressMonitor
from aceorch.debuglog.writer import DebugLog

JQ = "/usr/bin/jq"

PERFORMANCE_REPORT = """
import json
from pathlib import Path
from collections import defaultdict

stats = defaultdict(list)

# Collect all operation timings
for log_file in Path("debug_logs").glob("*_provisioning.jsonl"):
    with open(log_file) as f:
        for line in f:
            entry = json.loads(line)
            if "duration_ms" in entry and entry.get("success"):
                stats[entry["operation"]].append(entry["duration_ms"])

# Generate report
print("Performance Report")
print("=" * 50)
for operation, durations in stats.items():
    if durations:
        avg = sum(durations) / len(durations)
        max_d = max(durations)
        min_d = min(durations)
        print(f"\\n{operation}:")
        print(f"  Count:   {len(durations)}")
        print(f"  Average: {avg:.2f}ms")
        print(f"  Min:     {min_d:.2f}ms")
        print(f"  Max:     {max_d:.2f}ms")
"""


def sh(command: str, cwd: Path) -> str:
    done = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (command, done.stderr)
    return done.stdout


@pytest.fixture
def workdir(make_settings: Any, tmp_path: Path, clock: FakeClock) -> Path:
    """A folder with ``debug_logs/`` holding one session that saw the seed's scenario."""
    settings = make_settings(debug_log_dir=str(tmp_path / "debug_logs"))
    log = DebugLog(settings, version="0.1.0", runtime_name="docker", clock=clock)
    monitor = StressMonitor(log, settings, clock=clock, monotonic=clock.monotonic)
    log.enable(by="env")
    durations = [2100.25, 3050.5, 18450.5]
    for i, duration in enumerate(durations):
        token = aiokits.request_id_var.set(f"req-{i}")
        try:
            log.log(
                "provisioning",
                operation="start_acestream_begin",
                labels={"test": "stress"},
                image="acestream/engine:latest",
                custom_env=False,
            )
            clock.advance(duration / 1000)
            cid = f"{i:064x}"
            log.log(
                "provisioning",
                operation="start_acestream_success",
                container_id=cid,
                container_name=f"acestream-{i}",
                host_http_port=19000 + i,
                duration_ms=duration,
                success=True,
                error=None,
            )
            monitor.provision_finished(
                operation="start_acestream", success=True, duration_ms=duration, container_id=cid
            )
        finally:
            aiokits.request_id_var.reset(token)
        clock.advance(2)
    log.log("provisioning", operation="start_acestream_begin", labels={}, image="x", custom_env=True)
    log.log(
        "provisioning",
        operation="start_acestream_failed",
        error="VPN connection is required but currently disconnected",
        reason="vpn_disconnected",
        duration_ms=0.4,
        success=False,
    )
    monitor.vpn_state(connected=True)
    monitor.vpn_state(connected=False, signal="vpn_status")
    clock.advance(8)
    monitor.engines_health(unhealthy=4, total=10)
    monitor.breaker_transition(operation_type="general", old="closed", new="open", failure_count=5, threshold=5)
    log.log("performance", operation="GET /engines", method="GET", route="/engines", status=200, duration_ms=1.25)
    log.close()
    return tmp_path


def test_quiet_session_files_print_nothing(make_settings: Any, tmp_path: Path) -> None:
    log = DebugLog(make_settings(debug_log_dir=str(tmp_path / "debug_logs")), version="1")
    log.enable()
    log.flush()
    try:
        assert sh("cat debug_logs/*_stress.jsonl | jq '.'", tmp_path) == ""
        assert sh("cat debug_logs/*_stress.jsonl | jq 'select(.event_type == \"vpn_disconnection\")'", tmp_path) == ""
    finally:
        log.close()


def test_seed_provisioning_queries(workdir: Path) -> None:
    everything = sh(f"cat debug_logs/*_provisioning.jsonl | {JQ} '.'", workdir)
    assert everything.count('"operation"') == 8
    slow = sh(f"cat debug_logs/*_provisioning.jsonl | {JQ} 'select(.duration_ms > 10000)'", workdir)
    slow_recs = [json.loads(chunk) for chunk in _split_json(slow)]
    assert [(r["operation"], r["duration_ms"]) for r in slow_recs] == [("start_acestream_success", 18450.5)]
    average = sh(
        "cat debug_logs/*_provisioning.jsonl | \\\n"
        f'  {JQ} -s \'map(select(.operation == "start_acestream_success" and .duration_ms != null)) | \n'
        "         map(.duration_ms) | \n"
        "         add / length'",
        workdir,
    )
    assert float(average) == pytest.approx((2100.25 + 3050.5 + 18450.5) / 3)
    grep = sh('grep "start_acestream_begin" debug_logs/*_provisioning.jsonl', workdir)
    assert grep.count("start_acestream_begin") == 4


def test_seed_stress_queries(workdir: Path) -> None:
    stress = [json.loads(c) for c in _split_json(sh(f"cat debug_logs/*_stress.jsonl | {JQ} '.'", workdir))]
    assert {r["event_type"] for r in stress} >= {
        "slow_provisioning",
        "vpn_disconnection",
        "high_unhealthy_engines",
        "circuit_breaker_opened",
    }
    for event_type, description in [
        ("slow_provisioning", "Provisioning took 18.45s (>17.5s threshold)"),
        ("vpn_disconnection", "Gluetun VPN became unhealthy"),
        ("circuit_breaker_opened", "Circuit breaker opened after 5 failures"),
    ]:
        out = sh(f"cat debug_logs/*_stress.jsonl | {JQ} 'select(.event_type == \"{event_type}\")'", workdir)
        recs = [json.loads(c) for c in _split_json(out)]
        assert len(recs) == 1 and recs[0]["description"] == description


def test_seed_timeline(workdir: Path) -> None:
    sh(f"cat debug_logs/*.jsonl | {JQ} -s 'sort_by(.timestamp)' > timeline.json", workdir)
    timeline = json.loads((workdir / "timeline.json").read_text())
    seqs = [r["seq"] for r in timeline]
    assert seqs == sorted(seqs)  # fixed-width timestamps sort like seq
    out = sh(
        f"cat timeline.json | {JQ} '.[] | select(.event_type or .operation) | \n"
        "  {time: .timestamp, type: (.event_type // .operation), desc: .description}'",
        workdir,
    )
    rows = [json.loads(c) for c in _split_json(out)]
    types = [r["type"] for r in rows]
    assert types[0] == "session_start" and types[-1] == "session_end"
    assert types.index("vpn_disconnection") < types.index("high_unhealthy_engines")
    disconnection = rows[types.index("vpn_disconnection")]
    assert disconnection["desc"] == "Gluetun VPN became unhealthy"


def test_seed_csv_export(workdir: Path) -> None:
    sh(
        "cat debug_logs/*_provisioning.jsonl | \\\n"
        f"  {JQ} -r '[.timestamp, .operation, .duration_ms, .success] | @csv' > provisioning.csv",
        workdir,
    )
    rows = list(csv.reader(io.StringIO((workdir / "provisioning.csv").read_text())))
    assert len(rows) == 8
    success = [r for r in rows if r[1] == "start_acestream_success"]
    assert [r[2] for r in success] == ["2100.25", "3050.5", "18450.5"]
    assert all(r[3] == "true" for r in success)
    assert len(rows[0][0]) == len("2025-10-18T14:44:30.000000Z")


def test_seed_performance_report_script(workdir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PERFORMANCE_REPORT], cwd=workdir, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "start_acestream_success:" in done.stdout
    assert "Count:   3" in done.stdout
    assert "Max:     18450.50ms" in done.stdout


def test_seed_archive_command(workdir: Path) -> None:
    sh("tar -czf investigation_20251018.tar.gz debug_logs/20251018_*", workdir)
    with tarfile.open(workdir / "investigation_20251018.tar.gz") as tar:
        names = tar.getnames()
    assert len([n for n in names if n.endswith(".jsonl")]) == len(CATEGORIES)


def test_bundle_holds_the_session_and_a_true_manifest(make_settings: Any, clock: FakeClock) -> None:
    log = DebugLog(make_settings(api_key="the-api-key"), version="0.1.0", clock=clock)
    try:
        with pytest.raises(LookupError, match="no debug session"):
            log.bundle(None)
        log.enable()
        sid = log.session_id
        assert sid == "20251018_144430"
        log.log("provisioning", operation="start_acestream_begin")
        token = aiokits.request_id_var.set("bundle-req")
        try:
            path = log.bundle(None)  # flushes first
        finally:
            aiokits.request_id_var.reset(token)
        try:
            with tarfile.open(path, "r:gz") as tar:
                names = sorted(tar.getnames())
                assert names == sorted([f"{sid}/{sid}_{c}.jsonl" for c in CATEGORIES] + [f"{sid}/manifest.json"])
                manifest_file = tar.extractfile(f"{sid}/manifest.json")
                assert manifest_file is not None
                manifest = json.load(manifest_file)
                assert manifest["session_id"] == sid
                assert manifest["aceorch_version"] == "0.1.0"
                assert manifest["request_id"] == "bundle-req"
                assert manifest["created_at"] == "2025-10-18T14:44:30.000000Z"
                assert manifest["config"]["API_KEY"] == "***"
                assert "the-api-key" not in json.dumps(manifest)
                assert len(manifest["files"]) == len(CATEGORIES)
                for entry in manifest["files"]:
                    member = tar.extractfile(f"{sid}/{entry['name']}")
                    assert member is not None
                    data = member.read()
                    assert len(data) == entry["bytes"]
                    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
                prov = next(e for e in manifest["files"] if e["name"].endswith("_provisioning.jsonl"))
                assert prov["bytes"] > 0
        finally:
            path.unlink()
        with pytest.raises(LookupError, match="debug session '20000101_000000' not found"):
            log.bundle("20000101_000000")
        with pytest.raises(LookupError, match="not found"):
            log.bundle("../../etc")
        log.disable()
        again = log.bundle(None)  # the last session of this process
        again.unlink()
    finally:
        log.close()


def _split_json(text: str) -> list[str]:
    """Split jq's pretty-printed stream of objects into one string per object."""
    decoder = json.JSONDecoder()
    out: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        obj, end = decoder.raw_decode(text, pos)
        out.append(json.dumps(obj))
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out
