"""``debug correlate``: the viewer's time to first byte beside each provision's latencies, every viewer request
listed (served or refused), and a p50/p95/max summary; the proxy's folder found by the debug-mode guide's layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from aceorch.cli.debug import app as debug_app

SID = "20251018_144430"


def write(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def ts(second: float) -> str:
    return f"2025-10-18T14:44:{second:09.6f}Z"


def layout(root: Path) -> tuple[Path, Path]:
    """The guide's layout: ``work/debug_logs`` and ``proxy/debug_logs``; two provisions, four viewers."""
    orch = root / "work" / "debug_logs"
    proxy = root / "proxy" / "debug_logs"
    c = {"session_id": SID, "elapsed_seconds": 1.0}
    write(orch / f"{SID}_session.jsonl", [{**c, "seq": 1, "timestamp": ts(30), "operation": "session_start"}])
    write(orch / f"{SID}_provisioning.jsonl", [
        {**c, "seq": 2, "timestamp": ts(31.1), "operation": "start_acestream_begin", "request_id": "r1"},
        {**c, "seq": 3, "timestamp": ts(32.2), "operation": "start_acestream_success", "request_id": "r1",
         "container_name": "acestream-1", "duration_ms": 1100.0, "success": True},
        {**c, "seq": 4, "timestamp": ts(40.05), "operation": "start_acestream_begin", "request_id": "r2"},
        {**c, "seq": 5, "timestamp": ts(40.65), "operation": "start_acestream_success", "request_id": "r2",
         "container_name": "acestream-2", "duration_ms": 600.0, "success": True},
    ])
    p = {"session_id": SID, "elapsed_seconds": 1.0, "seq": 1}
    write(proxy / f"{SID}_provisioning.jsonl", [
        {**p, "timestamp": ts(31.0), "operation": "provision_request", "request_id": "r1", "stream_key": "aa"},
        {**p, "timestamp": ts(32.3), "operation": "provision_response", "request_id": "r1", "success": True,
         "duration_ms": 1300.0},
        {**p, "timestamp": ts(40.0), "operation": "provision_request", "request_id": "r2", "stream_key": "bb"},
        {**p, "timestamp": ts(40.7), "operation": "provision_response", "request_id": "r2", "success": True,
         "duration_ms": 700.0},
    ])
    write(proxy / f"{SID}_requests.jsonl", [
        {**p, "timestamp": ts(32.5), "operation": "first_byte_ready", "request_id": "r1", "stream_key": "aa",
         "duration_ms": 1500.0},
        {**p, "timestamp": ts(33.04), "operation": "first_byte_ready", "request_id": "r3", "stream_key": "aa",
         "duration_ms": 40.0},
        {**p, "timestamp": ts(40.8), "operation": "first_byte_ready", "request_id": "r2", "stream_key": "bb",
         "duration_ms": 800.0},
        {**p, "timestamp": ts(45.0), "operation": "viewer_request", "request_id": "r4", "path": "/ace/getstream",
         "method": "GET", "status": 503, "error_code": "vpn_disconnected", "duration_ms": 20.0, "stream_key": "cc"},
        {**p, "timestamp": ts(50.0), "operation": "viewer_request", "request_id": "r1", "path": "/ace/getstream",
         "method": "GET", "status": 200, "duration_ms": 19000.0, "stream_key": "aa", "bytes": 100},
        {**p, "timestamp": ts(50.1), "operation": "viewer_request", "request_id": "s1", "path": "/ace/status",
         "method": "GET", "status": 200, "duration_ms": 1.0},
    ])
    return orch, proxy


def test_viewer_ttfb_beside_each_provision_and_summarised(tmp_path: Path) -> None:
    orch, _proxy = layout(tmp_path)
    # No --proxy-dir: the guide's ../proxy/debug_logs beside the orchestrator's folder is found.
    res = CliRunner().invoke(debug_app, ["correlate", "--dir", str(orch), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["proxy_dir"].endswith("proxy/debug_logs")
    assert out["matched"] == {"request_id": 2, "time_window": 0, "unmatched": 0}
    rows = {r["request_id"]: r for r in out["requests"]}
    assert rows["r1"]["viewer_ttfb_ms"] == 1500.0 and rows["r1"]["proxy_to_orchestrator_ms"] == 100.0
    assert rows["r1"]["begin_to_ready_ms"] == 1100.0 and rows["r2"]["viewer_ttfb_ms"] == 800.0
    viewers = {v["request_id"]: v for v in out["viewer_requests"]}
    assert set(viewers) == {"r1", "r2", "r3", "r4"}  # /ace/status is no viewer
    assert viewers["r4"]["status"] == 503 and viewers["r4"]["error_code"] == "vpn_disconnected"
    assert viewers["r4"]["ttfb_ms"] is None and viewers["r3"]["provisioned"] is False
    assert viewers["r1"]["started"] == ts(31.0) and viewers["r1"]["provisioned"] is True
    assert out["viewers"] == {"total": 4, "served": 3, "refused": 1, "provisioned": 2}
    ttfb = out["latency"]["viewer_ttfb"]
    assert (ttfb["count"], ttfb["p50_ms"], ttfb["max_ms"]) == (3, 800.0, 1500.0)
    assert abs(ttfb["p95_ms"] - 1430.0) < 1e-6  # 800 + 0.9 * (1500 - 800)
    assert out["latency"]["viewer_ttfb_provisioned"]["p50_ms"] == 1150.0

    text = CliRunner().invoke(debug_app, ["correlate", "--dir", str(orch)]).output
    assert "viewer TTFB" in text and "Viewer requests: time to first byte" in text
    assert "503 vpn_disconnected" in text and "4 viewer request(s): 3 got a first byte, 1 refused" in text
    assert "viewer_ttfb: avg 780.0 ms, p50 800.0 ms, p95 1,430.0 ms, max 1,500.0 ms" in text


def test_without_a_proxy_folder_the_orchestrators_own_is_read(tmp_path: Path) -> None:
    orch, proxy = layout(tmp_path)
    for path in proxy.iterdir():  # the embedded proxy: its records in the orchestrator's session files
        lines = [json.dumps({**json.loads(raw), "component": "proxy"}) + "\n" for raw in path.read_text().splitlines()]
        target = orch / path.name
        target.write_text((target.read_text() if target.exists() else "") + "".join(lines))
        path.unlink()
    proxy.rmdir()
    res = CliRunner().invoke(debug_app, ["correlate", "--dir", str(orch), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["proxy_dir"] == str(orch)
    assert out["matched"]["request_id"] == 2 and out["viewers"]["served"] == 3
    res = CliRunner().invoke(debug_app, ["correlate", "--dir", str(orch), "--proxy-dir", str(tmp_path / "none")])
    assert res.exit_code == 1 and "proxy log folder not found" in res.output
