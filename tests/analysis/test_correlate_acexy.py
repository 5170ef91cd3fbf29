"""``debug correlate --proxy-dir`` with acexy's own files: outcomes only, no request id, RFC 3339 timestamps of
any width; paired by the 1 s window and said so."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from aceorch.cli.debug import app as debug_app


def write(path: Path, records: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_acexy_outcomes_are_paired_by_the_window(tmp_path: Path) -> None:
    sid = "20251018_144430"
    orch = tmp_path / "debug_logs"
    common = {"session_id": sid, "elapsed_seconds": 1.0}
    write(orch / f"{sid}_session.jsonl", [{**common, "seq": 1, "timestamp": "2025-10-18T14:44:30.000000Z",
                                           "operation": "session_start"}])
    write(orch / f"{sid}_provisioning.jsonl", [
        {**common, "seq": 2, "timestamp": "2025-10-18T14:44:31.100000Z", "operation": "start_acestream_begin"},
        {**common, "seq": 3, "timestamp": "2025-10-18T14:44:33.100000Z", "operation": "start_acestream_success",
         "container_name": "acestream-1", "duration_ms": 2000.0, "success": True},
        {**common, "seq": 4, "timestamp": "2025-10-18T14:44:50.000000Z", "operation": "start_acestream_begin"},
    ])
    proxy = tmp_path / "acexy"
    write(proxy / f"{sid}_provisioning.jsonl", [
        # Go's RFC 3339 with a zone offset and 9 fractional digits; 2.1 s after the request.
        {"timestamp": "2025-10-18T16:44:33.200000001+02:00", "operation": "provision_success", "duration_ms": 2100},
        {"timestamp": "2025-10-18T14:45:10.5Z", "operation": "provision_attempt_failed"},
    ])
    res = CliRunner().invoke(debug_app, ["correlate", "--dir", str(orch), "--proxy-dir", str(proxy), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["proxy_shape"] == "acexy" and out["pairing"] == "time_window"
    assert out["matched"] == {"request_id": 0, "time_window": 1, "unmatched": 1}
    row = next(r for r in out["requests"] if r["method"] == "time_window")
    assert row["orchestrator_begin"] == "2025-10-18T14:44:31.100000Z" and row["outcome"] == "ready"
    assert 0 <= row["proxy_to_orchestrator_ms"] <= 1000
    assert out["orchestrator_starts_without_proxy_request"] == 1
    text = CliRunner().invoke(debug_app, ["correlate", "--dir", str(orch), "--proxy-dir", str(proxy)]).output
    assert "paired by the 1 s window only" in text
