"""`make run` starts aceorch in the foreground; RUNTIME=auto picks Docker when it answers, else processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from orchestrator_proc import free_port  # noqa: E402

from support import wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def run_make(tmp_path: Path, extra: dict[str, str]) -> tuple[str, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "RUNTIME", "TARGET_IMAGE", "DB_URL"))}
    env.update({"APP_PORT": str(port), "APP_HOST": "127.0.0.1", "DB_URL": f"sqlite:///{tmp_path}/orch.db",
                "MIN_REPLICAS": "0", "MIN_FREE_REPLICAS": "0", "DEBUG_LOG_DIR": str(tmp_path / "dl"), **extra})
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def healthy() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json() == {"status": "ok"}
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=120, what="make run to serve /healthz")
        status = httpx.get(f"http://127.0.0.1:{port}/orchestrator/status", timeout=5).json()
        return status["config"]["runtime"], log.read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_make_run_without_docker_uses_the_process_runtime(tmp_path: Path) -> None:
    runtime, log = run_make(tmp_path, {"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert runtime == "process"
    lines = [line for line in log.splitlines() if "aceorch.runtime.factory" in line]
    assert len(lines) == 1 and "runtime: process" in lines[0]
    assert "demo: TARGET_IMAGE is not set" in log


@pytest.mark.docker
def test_make_run_with_docker_uses_the_docker_runtime(docker_engine: None, tmp_path: Path) -> None:
    runtime, log = run_make(tmp_path, {})
    assert runtime == "docker"
    assert "runtime: docker" in log
