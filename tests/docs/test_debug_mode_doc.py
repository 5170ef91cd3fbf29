"""Every command of docs/debug-mode.md, run in order against a real aceorch (process runtime, port 8000)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from orchestrator_proc import Orchestrator  # noqa: E402

from aceorch.config import load_settings  # noqa: E402
from support import wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "debug-mode.md"


def doc_blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", DOC.read_text(), re.S | re.M)]


def objects(text: str) -> list[dict[str, Any]]:
    dec, pos, out = json.JSONDecoder(), 0, []
    text = text.strip()
    while pos < len(text):
        obj, pos = dec.raw_decode(text, pos)
        out.append(obj)
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def test_every_bash_block_of_the_guide_runs(tmp_path: Path) -> None:
    blocks = doc_blocks()
    dotenv = [code for lang, code in blocks if lang == "dotenv"]
    assert len(dotenv) == 1
    work = tmp_path / "work"
    work.mkdir()
    (work / ".env").write_text(dotenv[0])
    settings = load_settings(work / ".env")
    assert settings.debug.debug_mode and settings.debug.debug_log_dir == "./debug_logs"

    orch = Orchestrator(work, {"RUNTIME": "process"}, port=8000, api_key="your-api-key")
    for key in ("API_KEY",):
        orch.env.pop(key)  # from .env, as the guide says
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    outputs: dict[str, str] = {}
    try:
        orch.start()
        assert "Debug mode enabled. Logs will be written to: ./debug_logs" in orch.logs()
        bash = [code for lang, code in blocks if lang == "bash"]
        assert len(bash) >= 12
        for code in bash:
            proc = subprocess.run(["bash", "-o", "pipefail", "-c", code], cwd=work, env=env, capture_output=True,
                                  text=True, timeout=120)
            assert proc.returncode == 0, f"{code}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            outputs[code] = proc.stdout
            # A reader follows the guide slower than this loop: let the writer's next flush land first.
            mark = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            wait_until(lambda mark=mark: (lambda s: s["queue_depth"] == 0 and (s["last_flush_at"] or "") > mark)(
                orch.client.get("/debug/status").json()), timeout=5, what="a debug-log flush")
    finally:
        orch.close()

    def out(marker: str) -> str:
        hits = [v for k, v in outputs.items() if marker in k]
        assert len(hits) == 1, marker
        return hits[0]

    status = objects(out("/debug/status"))
    assert [s["enabled"] for s in status] == [True, False, True]
    assert status[2]["changed"] is True and status[2]["session_id"] != status[0]["session_id"]
    assert [json.loads(line)["container_name"].startswith("acestream-")
            for line in out("for i in {1..3}").splitlines()] == [True] * 3
    assert out("ls -lh debug_logs/").count(".jsonl") >= 20  # two sessions: at start, and after /debug/enable
    assert float(out("add / length").strip().splitlines()[-1]) > 0
    assert "acestream-" not in out("select(.duration_ms > 10000)")  # nothing that slow here
    assert "x-request-id: proxy-req-0001" in out("X-Request-ID: proxy-req-0001").lower()
    assert "start_acestream_success" in out('select(.request_id == "proxy-req-0001")')
    trace = out("aceorch debug trace proxy-req-0001")
    assert trace.index("start_acestream_begin") < trace.index("start_acestream_success"), trace
    assert "manifest.json" in out("tar -tzf bundle.tar.gz")
    diagnosis = out("aceorch debug html-report -o report.html")  # the block of section 6's commands
    assert "No problems found" in diagnosis or "→" in diagnosis
    # A viewer through the built-in proxy: its first byte beside its provision, its wait, its path.
    viewer = out("viewer-0001")
    assert viewer.startswith("200 first byte after "), viewer
    assert "viewer-0001" in viewer and "Viewer requests: time to first byte" in viewer
    assert "select_engine" in viewer and "first_byte_ready" in viewer and "viewer_request" in viewer
    assert '"request_ids":["viewer-0001"]' in viewer  # its wait (the engine's 9 s to play) is a finding
    assert (work / "report.html").stat().st_size > 1000
    assert (work / "investigation.tar.gz").stat().st_size > 0
    assert (work / "provisioning.csv").read_text().count("\n") >= 3


@pytest.mark.parametrize("marker", ["aceorch debug report", "aceorch debug correlate", "jq"])
def test_the_guide_mentions(marker: str) -> None:
    assert marker in DOC.read_text()
