"""A start that fails because the engine exited records its exit code and last output lines (read from the
runtime before the container is removed), and ``diagnose`` shows them."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aceorch.api import create_app  # noqa: E402
from aceorch.config import Settings  # noqa: E402
from aceorch.runtime.base import ContainerInfo, ContainerSpec  # noqa: E402
from aceorch.runtime.fake import InMemoryRuntime  # noqa: E402
from support import wait_until  # noqa: E402

KEY = "test-key-123"
OUTPUT = [f"engine output line {i}" for i in range(30)] + ["fatal: cannot bind the P2P port"]


class ExitsAtStart(InMemoryRuntime):
    """Every engine prints 31 lines and exits with status 3 right after it is created."""

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        info = await super().create(spec)
        self.containers[info.id].logs.extend(OUTPUT)
        self.set_exited(info.id, exit_code=3)
        return info


def failed_starts(log_dir: Path) -> list[dict[str, Any]]:
    out = []
    for path in log_dir.glob("*_provisioning.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("operation") == "start_acestream_failed":
                out.append(record)
    return out


def test_a_failed_start_records_exit_code_and_last_output_and_diagnose_shows_them(
    make_settings: Callable[..., Settings], tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    runtime = ExitsAtStart()
    settings = make_settings(api_key=KEY, runtime="docker", provision_wait_for="running", debug_mode=True)
    log_dir = Path(settings.debug.debug_log_dir)
    with TestClient(create_app(settings, runtime=runtime), headers={"Authorization": f"Bearer {KEY}"}) as client:
        r = client.post("/provision/acestream", json={})
        assert r.status_code == 500
        assert "exit code 3" in r.json()["detail"]["message"]
        [record] = wait_until(lambda: failed_starts(log_dir), what="the failed start's record")
    assert not runtime.containers  # removed after its output was read
    assert record["reason"] == "engine_exited"
    assert record["exit_code"] == 3
    assert record["output_tail"] == OUTPUT[-20:]
    assert record["container_name"].startswith("acestream-")

    result = run_cli("diagnose", "--dir", str(log_dir), "--json")
    [finding] = [f for f in result["findings"] if f["kind"] == "engine_exits"]
    text = "\n".join(finding["chain"])
    assert "exit code 3" in text
    assert "fatal: cannot bind the P2P port" in text
    assert finding["output_tail"] == OUTPUT[-20:]
    assert "docker logs" not in json.dumps(finding["settings"])
    human = run_cli("diagnose", "--dir", str(log_dir)).stdout
    assert "fatal: cannot bind the P2P port" in human and "exit code 3" in human
