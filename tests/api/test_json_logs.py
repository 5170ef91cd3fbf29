"""LOG_FORMAT=json: every line is one JSON object with request_id and trace_id, inside a request and outside."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from fastapi.testclient import TestClient

from aceorch.api import create_app
from aceorch.cli.serve import setup_logging
from aceorch.config import Settings
from aceorch.runtime.fake import InMemoryRuntime

TRACE = "0af7651916cd43dd8448eb211c80319c"


def test_json_lines_carry_the_request_and_trace_ids(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, db_url=f"sqlite:///{tmp_path}/o.db", debug_log_dir=str(tmp_path / "d"),
                        min_replicas=0, min_free_replicas=0, min_provision_interval_s=0, log_format="json",
                        provision_wait_for="running", runtime="docker", auto_delete=False)  # type: ignore[call-arg]
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    out = io.StringIO()
    try:
        setup_logging(settings)
        handler = root.handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(out)
        with TestClient(create_app(settings, runtime=InMemoryRuntime(images={"acestream/engine:latest"}))) as c:
            r = c.post("/provision/acestream", json={},
                       headers={"X-Request-ID": "req-json-1", "traceparent": f"00-{TRACE}-b7ad6b7169203331-01"})
            assert r.status_code == 200
        logging.getLogger("aceorch.test").warning("outside any request")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    assert lines, "no log line"
    assert all("request_id" in b and "trace_id" in b and "timestamp" in b for b in lines)
    inside = [b for b in lines if b["request_id"] == "req-json-1"]
    assert inside and all(b["trace_id"] == TRACE for b in inside), lines
    assert any(b.get("operation") == "start_acestream_success" for b in inside), "the story line of the start"
    assert lines[-1]["message"] == "outside any request" and lines[-1]["request_id"] is None
