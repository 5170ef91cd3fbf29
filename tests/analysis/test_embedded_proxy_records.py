"""The embedded proxy's records share ``provisioning``, ``streams`` and ``stress`` with the orchestrator's: the
report keeps them apart (``<operation> (proxy)``), and the orchestrator's own figures do not count them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from aceorch.cli.debug import app as debug_app

SID = "20251018_144430"


def test_report_lists_the_proxys_operations_apart(tmp_path: Path) -> None:
    logs = tmp_path / "debug_logs"
    logs.mkdir()
    c = {"session_id": SID, "elapsed_seconds": 1.0}

    def write(category: str, *records: dict[str, object]) -> None:
        (logs / f"{SID}_{category}.jsonl").write_text("".join(json.dumps({**c, **r}) + "\n" for r in records))

    write("session", {"seq": 1, "timestamp": "2025-10-18T14:44:30.000000Z", "operation": "session_start"})
    write("streams",
          {"seq": 2, "timestamp": "2025-10-18T14:44:31.000000Z", "operation": "stream_started", "stream_id": "s1"},
          {"seq": 3, "timestamp": "2025-10-18T14:44:31.000100Z", "operation": "stream_started", "component": "proxy",
           "stream_key": "k"})
    write("provisioning",
          {"seq": 4, "timestamp": "2025-10-18T14:44:32.000000Z", "operation": "start_acestream_success",
           "duration_ms": 800.0, "success": True},
          {"seq": 5, "timestamp": "2025-10-18T14:44:32.000100Z", "operation": "provision_response",
           "component": "proxy", "duration_ms": 900.0, "success": True})
    res = CliRunner().invoke(debug_app, ["report", "--dir", str(logs), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    ops = {(o["category"], o["operation"]): o["count"] for o in report["operations"]}
    assert ops[("streams", "stream_started")] == 1 and ops[("streams", "stream_started (proxy)")] == 1
    assert ops[("provisioning", "provision_response (proxy)")] == 1
    assert report["average_provisioning_ms"] == 800.0
