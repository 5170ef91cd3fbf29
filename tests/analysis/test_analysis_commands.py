"""``sessions``, ``slow``, ``stress``, ``timeline``, ``export-csv``, ``correlate``, ``html-report``, ``archive``,
``prune``: each checked against numbers computed independently (often by the seed's own jq recipe)."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import tarfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sessiongen as gen

JQ = "/usr/bin/jq"


def jq(args: list[str], files: list[Path]) -> str:
    data = b"".join(p.read_bytes() for p in files)
    return subprocess.run([JQ, *args], input=data, capture_output=True, check=True).stdout.decode()


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    log_dir = tmp_path / "debug_logs"
    gen.healthy(log_dir, gen.START - timedelta(days=1))
    gen.vpn_incident(log_dir)
    return log_dir


def session_files(log_dir: Path, sid: str) -> list[Path]:
    return sorted(log_dir.glob(f"{sid}_*.jsonl"))


def test_sessions_lists_counts_times_and_sizes(logs: Path, run_cli: Callable[..., Any]) -> None:
    rows = run_cli("sessions", "--dir", str(logs), "--json")
    assert [r["session_id"] for r in rows] == ["20251017_144430", "20251018_144430"]
    for row in rows:
        files = session_files(logs, row["session_id"])
        assert len(files) == 13  # every category file exists (the embedded proxy's three too), some empty
        expected = {p.name[16:-6]: len(p.read_text().splitlines()) for p in files}
        assert row["records"] == expected
        assert row["size_bytes"] == sum(p.stat().st_size for p in files)
        assert row["ended_cleanly"] is True
    incident = rows[1]
    assert incident["start"] == "2025-10-18T14:44:30.000000Z"
    assert incident["end"] == "2025-10-18T14:46:30.000000Z"
    assert incident["duration_s"] == 120.0


def test_latest_session_is_the_default_and_unknown_session_fails(
    logs: Path, run_cli: Callable[..., Any]
) -> None:
    report = run_cli("report", "--dir", str(logs), "--session", "20251017", "--json")
    assert report["sessions"] == ["20251017_144430"]
    result = run_cli("report", "--dir", str(logs), "--session", "19990101_000000", expect_exit=1)
    assert "no such session" in result.stderr
    result = run_cli("report", "--dir", str(logs / "missing"), expect_exit=1)
    assert "not found" in result.stderr


def test_slow_equals_the_seed_select_across_categories(logs: Path, run_cli: Callable[..., Any]) -> None:
    sid = "20251018_144430"
    items = run_cli("slow", "--over", "10000", "--dir", str(logs), "--json")
    expected = jq(["-c", "select(.duration_ms > 10000) | [.timestamp, .duration_ms]"], session_files(logs, sid))
    pairs = sorted(tuple(json.loads(line)) for line in expected.splitlines())
    assert sorted((i["timestamp"], i["duration_ms"]) for i in items) == pairs
    assert len(items) == 5
    assert [i["timestamp"] for i in items] == sorted(i["timestamp"] for i in items)
    text = run_cli("slow", "--over", "20000", "--dir", str(logs)).stdout
    assert "3 record(s) with duration_ms > 20000" in text


def test_stress_groups_and_filters(logs: Path, run_cli: Callable[..., Any]) -> None:
    summary = run_cli("stress", "--dir", str(logs), "--json")
    groups = {g["event_type"]: g for g in summary["groups"]}
    assert groups["slow_provisioning"]["count"] == 2
    unhealthy = groups["high_unhealthy_engines"]
    assert (unhealthy["count"], unhealthy["resolved"], unhealthy["resolved_duration_ms"]) == (1, 1, 27700.0)
    assert summary["total"] == 5
    only = run_cli("stress", "--type", "vpn_disconnection", "--dir", str(logs), "--json")
    assert [e["event_type"] for e in only["events"]] == ["vpn_disconnection"]
    assert only["events"][0]["description"] == "Gluetun VPN became unhealthy"
    quiet = run_cli("stress", "--dir", str(logs), "--session", "20251017_144430")
    assert "No stress events" in quiet.stdout


def test_timeline_is_the_seed_sorted_view(logs: Path, run_cli: Callable[..., Any]) -> None:
    sid = "20251018_144430"
    items = run_cli("timeline", "--dir", str(logs), "--json")
    seed = jq(
        [
            "-c",
            "-s",
            "sort_by(.timestamp) | .[] | select(.event_type or .operation) | "
            "{time: .timestamp, type: (.event_type // .operation), desc: .description}",
        ],
        session_files(logs, sid),
    )
    expected = [json.loads(line) for line in seed.splitlines()]
    got = [{"time": i["time"], "type": i["type"], "desc": i["desc"]} for i in items]
    # Same events; ties on the timestamp are ordered by seq (a total order) rather than by file name.
    key = lambda e: (e["time"], e["type"], e["desc"] or "")  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)
    assert [(i["time"], i["seq"]) for i in items] == sorted((i["time"], i["seq"]) for i in items)


def test_timeline_filters_by_type_and_time(logs: Path, run_cli: Callable[..., Any]) -> None:
    items = run_cli(
        "timeline", "--dir", str(logs), "--type", "vpn_*", "--type", "transition", "--since", "14:45:00", "--json"
    )
    assert [i["type"] for i in items] == ["transition", "vpn_disconnection", "transition", "vpn_recovered"]
    items = run_cli(
        "timeline",
        "--dir",
        str(logs),
        "--type",
        "health_check",
        "--since",
        "2025-10-18T14:45:00Z",
        "--until",
        "2025-10-18T14:45:30Z",
        "--json",
    )
    # Checks at +0.2, +5.2, …: those between 14:45:00 and 14:45:30 are at +30.2 … +55.2.
    assert [i["time"][11:23] for i in items] == [f"14:45:{s:02d}.200" for s in range(0, 30, 5)]
    bad = run_cli("timeline", "--dir", str(logs), "--since", "yesterday", expect_exit=1)
    assert "cannot read time" in bad.stderr


def test_export_csv_starts_with_the_seed_columns(logs: Path, run_cli: Callable[..., Any], tmp_path: Path) -> None:
    sid = "20251018_144430"
    out = tmp_path / "provisioning.csv"
    run_cli("export-csv", "--dir", str(logs), "-o", str(out))
    with out.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:4] == ["timestamp", "operation", "duration_ms", "success"]
    seed = jq(["-r", "[.timestamp, .operation, .duration_ms, .success] | @csv"], [logs / f"{sid}_provisioning.jsonl"])
    seed_rows = list(csv.reader(io.StringIO(seed)))
    assert len(rows) - 1 == len(seed_rows) == 24
    for mine, theirs in zip(rows[1:], seed_rows, strict=True):
        assert mine[:2] == theirs[:2]
        assert (float(mine[2]) if mine[2] else None) == (float(theirs[2]) if theirs[2] else None)
        assert mine[3] == theirs[3]
        assert mine[5] == "provisioning"
    stdout = run_cli("export-csv", "--dir", str(logs), "--category", "stress", "--no-header").stdout
    assert len(stdout.splitlines()) == 6
    run_cli("export-csv", "--dir", str(logs), "--category", "bogus", expect_exit=1)


def write_proxy(proxy_dir: Path, records: list[dict[str, Any]]) -> None:
    proxy_dir.mkdir(parents=True)
    lines = [json.dumps({"session_id": "20251018_144400", "seq": i, **r}) for i, r in enumerate(records, 1)]
    (proxy_dir / "20251018_144400_provisioning.jsonl").write_text("".join(line + "\n" for line in lines))


def test_correlate_joins_by_request_id_then_by_the_seed_window(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    log_dir = tmp_path / "orch"
    b = gen.SessionBuilder(log_dir, gen.START)
    b.session_start()
    b.provision(10.30, 4.5, request_id="rid-a")  # proxy asked at 10.0 (id known on both sides)
    b.provision(20.25, 6.0)  # proxy asked at 20.0 without an id: 1 s window
    b.provision(30.40, 2.0, success=False, reason="docker_error")  # proxy asked at 30.0, failed
    b.provision(50.00, 3.0)  # no proxy request at all
    b.write()
    proxy = tmp_path / "proxy"
    write_proxy(
        proxy,
        [
            {"timestamp": gen.ts(b.at(10.0)), "operation": "provision_request", "request_id": "rid-a"},
            {"timestamp": gen.ts(b.at(20.0)), "operation": "provision_request"},
            {"timestamp": gen.ts(b.at(30.0)), "operation": "provision_request"},
            {"timestamp": gen.ts(b.at(40.0)), "operation": "provision_request"},  # never reached aceorch
            {"timestamp": gen.ts(b.at(41.0)), "operation": "stream_request"},
        ],
    )
    result = run_cli("correlate", "--proxy-dir", str(proxy), "--dir", str(log_dir), "--json")
    rows = result["requests"]
    assert [r["method"] for r in rows] == ["request_id", "time_window", "time_window", "unmatched"]
    assert rows[0]["proxy_to_orchestrator_ms"] == pytest.approx(300.0)
    assert rows[0]["begin_to_ready_ms"] == pytest.approx(4500.0)
    assert rows[0]["proxy_to_ready_ms"] == pytest.approx(4800.0)
    assert rows[0]["outcome"] == "ready"
    assert rows[1]["proxy_to_orchestrator_ms"] == pytest.approx(250.0)
    assert rows[1]["proxy_to_ready_ms"] == pytest.approx(6250.0)
    assert rows[2]["outcome"] == "failed" and rows[2]["proxy_to_ready_ms"] is None
    assert rows[3]["outcome"] is None
    assert result["matched"] == {"request_id": 1, "time_window": 2, "unmatched": 1}
    assert result["orchestrator_starts_without_proxy_request"] == 1
    assert result["latency"]["proxy_to_orchestrator"]["max_ms"] == pytest.approx(400.0)
    text = run_cli("correlate", "--proxy-dir", str(proxy), "--dir", str(log_dir)).stdout
    assert "1 by request_id" in text and "2 by the 1 s window" in text


def test_correlate_window_never_steals_a_start_claimed_by_request_id(
    tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    log_dir = tmp_path / "orch"
    b = gen.SessionBuilder(log_dir, gen.START)
    b.session_start()
    b.provision(10.5, 2.0, request_id="rid-late")  # belongs to the request logged at 10.4
    b.write()
    proxy = tmp_path / "proxy"
    write_proxy(
        proxy,
        [
            {"timestamp": gen.ts(b.at(10.0)), "operation": "provision_request"},  # no id, window would fit
            {"timestamp": gen.ts(b.at(10.4)), "operation": "provision_request", "request_id": "rid-late"},
        ],
    )
    rows = run_cli("correlate", "--proxy-dir", str(proxy), "--dir", str(log_dir), "--json")["requests"]
    assert [r["method"] for r in rows] == ["unmatched", "request_id"]
    assert rows[1]["proxy_to_orchestrator_ms"] == pytest.approx(100.0)


def test_html_report_is_self_contained_with_threshold_markers_and_bands(
    tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    log_dir = tmp_path / "logs"
    b = gen.SessionBuilder(log_dir, gen.START)
    b.session_start(STARTUP_TIMEOUT_S=20, DEBUG_SLOW_PROVISIONING_RATIO=0.5)  # threshold 10 s
    for i in range(6):
        b.provision(i * 3.0, 4.0 + i * 2.0)  # 4 … 14 s: two over 10 s
    b.provision(20.0, 1.0, success=False, reason="docker_error")
    b.vpn_down(5.0)
    b.vpn_up(12.0, 7.0)
    for t in range(0, 30, 5):
        b.health_cycle(float(t), 5 - (t == 10), int(t == 10))
    b.write()
    out = tmp_path / "report.html"
    meta = run_cli("html-report", "-o", str(out), "--dir", str(log_dir), "--json")
    page = out.read_text()
    assert meta["bytes"] == len(page.encode())
    assert page.startswith("<!DOCTYPE html>")
    # The findings come first, before any chart.
    assert page.index("<h2>Findings</h2>") < page.index('id="chart-provisioning"')
    assert "VPN drop" in page
    # The charts are drawn in the page from the embedded data, by the shared chart module.
    data = json.loads(re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', page, re.S)[1])
    assert data["threshold_ms"] == 10000.0
    assert len(data["starts"]) == 7 and sum(not s["ok"] for s in data["starts"]) == 1
    failed = next(s for s in data["starts"] if not s["ok"])
    assert failed["reason"] == "docker_error"
    assert all(s["container"] for s in data["starts"] if s["ok"])
    assert len(data["outages"]) == 1
    assert len(data["stress"]) == 4  # 2 slow_provisioning + disconnection + recovery
    assert [c["unhealthy"] for c in data["health"]] == [0, 0, 1, 0, 0, 0]
    assert "window.AceCharts" in page and "<svg" not in page.split("<script")[0]
    assert "start_acestream_success" in page  # the latency table
    # Nothing is fetched: no external scripts, links or sources.
    assert not re.search(r"""(src|href)\s*=""", page)
    assert set(re.findall(r"https?://[^\s\"'`]+", page)) == {"http://www.w3.org/2000/svg"}


def reopen(log_dir: Path, sid: str) -> None:
    """Make a session look like one a running orchestrator is still writing (no session_end yet)."""
    path = log_dir / f"{sid}_session.jsonl"
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                            if "session_end" not in line))


def test_archive_excludes_the_current_open_session_unless_asked(
    logs: Path, tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    reopen(logs, "20251018_144430")
    out = tmp_path / "investigation.tar.gz"
    result = run_cli("archive", "--dir", str(logs), "-o", str(out), "--json")
    assert result["sessions"] == ["20251017_144430"]
    assert [s["session_id"] for s in result["skipped"]] == ["20251018_144430"]
    assert "still open" in result["skipped"][0]["reason"]
    with tarfile.open(out) as tar:
        names = sorted(tar.getnames())
    assert names == sorted(f"debug_logs/{p.name}" for p in logs.glob("20251017_144430_*.jsonl"))
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    again = run_cli("archive", "--dir", str(logs), "-o", str(out), expect_exit=1)
    assert "exists" in again.stderr
    result = run_cli("archive", "--dir", str(logs), "-o", str(out), "--include-current", "--force", "--json")
    assert result["sessions"] == ["20251017_144430", "20251018_144430"]
    with tarfile.open(out) as tar:
        member = tar.extractfile("debug_logs/20251018_144430_stress.jsonl")
        assert member is not None
        assert member.read() == (logs / "20251018_144430_stress.jsonl").read_bytes()
    assert not list(tmp_path.glob(".archive-*"))  # no temporary file left behind
    text = run_cli("archive", "--dir", str(logs), "-o", str(out), "--force").stdout
    assert "took    20251017_144430" in text and "skipped 20251018_144430: still open" in text


def test_archive_takes_the_current_session_when_it_is_the_one_under_investigation(
    logs: Path, tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    reopen(logs, "20251018_144430")
    chosen = run_cli("archive", "--dir", str(logs), "--session", "20251018", "-o", str(tmp_path / "a.tar.gz"),
                     "--json")
    assert chosen["sessions"] == ["20251018_144430"]
    assert chosen["skipped"] == [{"session_id": "20251017_144430", "reason": "not chosen (--session)"}]
    only = tmp_path / "only"
    only.mkdir()
    for path in logs.glob("20251018_144430_*.jsonl"):
        (only / path.name).write_bytes(path.read_bytes())
    alone = run_cli("archive", "--dir", str(only), "-o", str(tmp_path / "b.tar.gz"), "--json")
    assert alone["sessions"] == ["20251018_144430"] and alone["skipped"] == []
    # A newest session that was closed cleanly is not being written: it is taken too.
    closed = run_cli("archive", "--dir", str(logs), "--all", "-o", str(tmp_path / "c.tar.gz"), "--json")
    assert closed["sessions"] == ["20251017_144430", "20251018_144430"]


def test_an_empty_newest_session_is_never_the_latest(logs: Path, run_cli: Callable[..., Any]) -> None:
    b = gen.SessionBuilder(logs, gen.START + timedelta(hours=2))
    b.session_start()
    b.session_end(0.0)  # started and stopped at once: nothing recorded
    b.write()
    assert run_cli("report", "--dir", str(logs), "--json")["sessions"] == ["20251018_144430"]
    assert run_cli("diagnose", "--dir", str(logs), "--json")["sessions"] == ["20251018_144430"]


def test_prune_deletes_old_sessions_by_id_but_never_the_newest(
    tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    log_dir = tmp_path / "debug_logs"
    for days in (30, 10, 9, 8):  # the newest (8 days) is older than 7 days too, but stays
        gen.healthy(log_dir, gen.START - timedelta(days=days))
    (log_dir / "notes.txt").write_text("keep me")
    newest = max(p.name[:15] for p in log_dir.glob("*.jsonl"))
    now = "2025-10-18T15:00:00Z"
    dry = run_cli("prune", "--dir", str(log_dir), "--older-than", "9.5d", "--now", now, "--dry-run", "--json")
    assert [s["session_id"] for s in dry["sessions"]] == ["20250918_144430", "20251008_144430"]
    assert len(list(log_dir.glob("*.jsonl"))) == 4 * 13  # nothing deleted (13 category files a session)
    done = run_cli("prune", "--dir", str(log_dir), "--older-than", "7d", "--now", now, "--json")
    assert [s["session_id"] for s in done["sessions"]] == ["20250918_144430", "20251008_144430", "20251009_144430"]
    remaining = {p.name[:15] for p in log_dir.glob("*.jsonl")}
    assert remaining == {newest}
    assert (log_dir / "notes.txt").read_text() == "keep me"
    run_cli("prune", "--dir", str(log_dir), "--older-than", "7d", "--now", now, "--include-current")
    assert not list(log_dir.glob("*.jsonl"))
    bad = run_cli("prune", "--dir", str(log_dir), "--older-than", "soon", expect_exit=1)
    assert "cannot read age" in bad.stderr
