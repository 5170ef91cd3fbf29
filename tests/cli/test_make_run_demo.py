"""`make run` in demo mode (no TARGET_IMAGE) removes its engines when it stops; `make clean` prunes engines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from orchestrator_proc import docker_ids, docker_rm_label, free_port  # noqa: E402

from support import wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.docker


def make_env(tmp_path: Path, label: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("APP_", "RUNTIME", "TARGET_IMAGE", "DB_URL", "ENGINES_ON_EXIT", "API_KEY"))}
    env.update({"APP_HOST": "127.0.0.1", "DB_URL": f"sqlite:///{tmp_path}/orch.db", "MIN_REPLICAS": "0",
                "MIN_FREE_REPLICAS": "0", "DEBUG_LOG_DIR": str(tmp_path / "dl"), "CONTAINER_LABEL": label,
                "RUNTIME": "docker", **extra})
    return env


def test_make_run_demo_removes_its_engines_on_exit(docker_engine: None, tmp_path: Path) -> None:
    label = f"aceorch.test=demo-{uuid.uuid4().hex[:8]}"
    port = free_port()
    log = tmp_path / "make-run.log"
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT,
                                    env=make_env(tmp_path, label, APP_PORT=str(port)), stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        try:
            def ready() -> bool:
                assert proc.poll() is None, log.read_text()
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(ready, timeout=120, what="make run to be ready")
            r = httpx.post(f"http://127.0.0.1:{port}/provision/acestream", json={}, timeout=60)
            assert r.status_code == 200, r.text
            assert docker_ids(label) == [r.json()["container_id"]]
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=30)
        assert docker_ids(label) == [], "the demo's engines are removed when it stops"
        assert "ENGINES_ON_EXIT=stop: 1 engine removed" in log.read_text()
    finally:
        docker_rm_label(label)


def test_make_clean_prunes_managed_engines(docker_engine: None, tmp_path: Path) -> None:
    label = f"aceorch.test=clean-{uuid.uuid4().hex[:8]}"
    key, value = label.split("=", 1)
    try:
        subprocess.run(["docker", "run", "-d", "--label", label, "--label", "aceorch.kind=engine", "--name",
                        f"acestream-clean-{value}", "aceorch/engine-sim:latest"], check=True, capture_output=True,
                       timeout=60)
        proc = subprocess.run(["make", "--no-print-directory", "clean"], cwd=ROOT, env=make_env(tmp_path, label),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"removed 1 engine container labelled {label}" in proc.stdout
        assert docker_ids(label) == []
    finally:
        docker_rm_label(label)
