"""What an operator sees around start and stop, end to end: real ``aceorch serve``, real Docker engine.

A taken port does no harm; ENGINES_ON_EXIT keeps or removes the engines; ``aceorch engines prune`` removes managed
engines only; a missing TARGET_IMAGE is a warning at start and ``image_not_found`` on a start; the service log of
a VPN flap (debug mode off) tells the drop, the recovery and the restarts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from orchestrator_proc import Orchestrator, docker_ids, docker_rm_label
from test_control_docker import Gluetun

from support import wait_until

pytestmark = pytest.mark.docker


def running(cid: str) -> bool:
    out = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}} {{.State.StartedAt}}", cid],
                         capture_output=True, text=True, timeout=30)
    return out.returncode == 0 and out.stdout.startswith("true")


def started_at(cid: str) -> str:
    return subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}", cid], capture_output=True, text=True,
                          timeout=30, check=True).stdout.strip()


def session_files(directory: Path) -> set[str]:
    return {p.name for p in directory.rglob("*")} if directory.exists() else set()


def test_a_taken_port_exits_2_with_one_line_and_touches_nothing(orch: Any, tmp_path: Path) -> None:
    first = orch(DEBUG_MODE="true", DEBUG_LOG_DIR=str(tmp_path / "debug_logs"))
    engine = first.provision({}).json()
    before = started_at(engine["container_id"])
    files_before = session_files(tmp_path / "debug_logs")
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    env = {**first.env, "DEBUG_LOG_DIR": str(tmp_path / "debug_logs"), "DB_URL": f"sqlite:///{second_dir}/o.db"}
    proc = subprocess.run([sys.executable, "-m", "aceorch", "serve"], cwd=second_dir, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and f":{first.port}: the port is already in use" in err[0], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert session_files(tmp_path / "debug_logs") == files_before, "no new session file"
    assert not (second_dir / "o.db").exists()
    assert first.containers() == [engine["container_id"]]
    assert running(engine["container_id"]) and started_at(engine["container_id"]) == before, "engine untouched"
    assert [e["container_id"] for e in first.engines()] == [engine["container_id"]]


def test_engines_on_exit_stop_leaves_no_container(orch: Any) -> None:
    o = orch(ENGINES_ON_EXIT="stop")
    for _ in range(2):
        assert o.provision({}).status_code == 200
    assert len(o.containers(running_only=True)) == 2
    o.stop(timeout=30)
    assert o.containers() == [], "every engine container is removed"
    assert "ENGINES_ON_EXIT=stop: 2 engines removed" in o.logs()


def test_engines_on_exit_keep_leaves_them_running_and_says_so(orch: Any) -> None:
    o = orch()
    ids = sorted(o.provision({}).json()["container_id"] for _ in range(2))
    o.stop(timeout=30)
    assert o.containers(running_only=True) == ids
    lines = [line for line in o.logs().splitlines() if "left running" in line]
    assert len(lines) == 1
    assert lines[0].endswith("2 engines left running for the next start (ENGINES_ON_EXIT=stop removes them)")


def test_engines_prune_removes_managed_engines_only(orch: Any, tmp_path: Path) -> None:
    o = orch()
    engine = o.provision({}).json()["container_id"]
    generic = o.client.post("/provision", json={"image": "aceorch/engine-sim:latest"}, headers=o.auth)
    assert generic.status_code == 200, generic.text
    generic_id = generic.json()["container_id"]
    o.stop()
    stranger_label = f"aceorch.test=stranger-{uuid.uuid4().hex[:8]}"
    stranger_name = f"acestream-{uuid.uuid4().int % 10**6}"
    stranger = subprocess.run(["docker", "run", "-d", "--label", stranger_label, "--name", stranger_name,
                               "aceorch/engine-sim:latest"], capture_output=True, text=True, timeout=60,
                              check=True).stdout.strip()
    try:
        env = {**o.env}
        proc = subprocess.run([sys.executable, "-m", "aceorch", "engines", "prune"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out = proc.stdout.strip().splitlines()
        assert len(out) == 2 and out[0].startswith("removed acestream-") and engine[:12] in out[0]
        assert out[1] == f"removed 1 engine container labelled {o.label}"
        assert o.containers() == [generic_id], "the generic container stays"
        assert docker_ids(stranger_label) == [stranger], "an unlabelled (unmanaged) container stays"
    finally:
        docker_rm_label(stranger_label)


def test_a_missing_target_image_warns_at_start_and_a_start_is_image_not_found(orch: Any) -> None:
    image = "127.0.0.1:9/aceorch-missing:never"  # a registry that refuses at once: the pull fails fast
    o = orch(TARGET_IMAGE=image)
    warnings = [line for line in o.logs().splitlines() if "TARGET_IMAGE" in line and "WARNING" in line]
    assert len(warnings) == 1 and f"docker pull {image}" in warnings[0]
    r = o.provision({})
    assert r.status_code == 500 and r.json()["detail"]["code"] == "image_not_found", r.text
    assert o.containers() == []


@pytest.fixture
def vpn_orch(docker_engine: None, tmp_path: Path) -> Iterator[Any]:
    made: list[tuple[Orchestrator, Gluetun]] = []

    def factory(**env: str) -> tuple[Orchestrator, Gluetun]:
        pool = range(19700, 19705)
        o = Orchestrator(tmp_path, {"RUNTIME": "docker", **env})
        g = Gluetun(f"aceorch.test.vpn={o.label_value}", pool)
        o.env.update({
            "GLUETUN_CONTAINER_NAME": g.name, "GLUETUN_API_URL": f"http://127.0.0.1:{g.control_port}",
            "PORT_RANGE_HOST": f"{pool.start}-19799", "MAX_ACTIVE_REPLICAS": "5",
            "GLUETUN_HEALTH_CHECK_INTERVAL_S": "1", "GLUETUN_STARTUP_WAIT_S": "20",
        })
        made.append((o, g))
        o.start()
        return o, g

    yield factory
    for o, g in made:
        o.close()
        g.remove()
        docker_rm_label(o.label)


def test_the_service_log_tells_a_vpn_flap_with_debug_mode_off(vpn_orch: Any) -> None:
    o, g = vpn_orch(VPN_RECOVERY_STABILIZE_S="2", DEBUG_MODE="false")
    wait_until(lambda: o.client.get("/vpn/status", headers=o.auth).json()["connected"], timeout=20,
               what="VPN connected")
    names = sorted(o.provision({}).json()["container_name"] for _ in range(2))
    g.vpn("down")
    wait_until(lambda: "VPN down (healthy -> " in o.logs(), timeout=15, what="the drop in the log")
    g.vpn("up")

    def restarts() -> list[str] | None:
        found = [n for n in names if f"engine {n} restarted after the VPN recovery" in o.logs()]
        return found if len(found) == len(names) else None

    wait_until(restarts, timeout=40, what="both restarts in the log")
    log = o.logs().splitlines()
    drop = [i for i, line in enumerate(log) if "WARNING" in line and "VPN down (healthy -> " in line]
    back = [i for i, line in enumerate(log) if "INFO" in line and "VPN recovered" in line]
    again = [i for i, line in enumerate(log) if "restarted after the VPN recovery" in line]
    assert len(drop) == 1 and len(back) == 1 and len(again) == 2
    assert drop[0] < back[0] < min(again)
    started = [line for line in log if " started on port " in line and "engine acestream-" in line]
    assert len(started) == 2
    assert not list((o.cwd / "debug_logs").glob("*.jsonl")), "debug mode was off"


def test_sigint_with_stop_removes_engines_within_the_deadline(orch: Any) -> None:
    o = orch(ENGINES_ON_EXIT="stop")
    assert o.provision({}).status_code == 200
    assert o.proc is not None
    begin = time.monotonic()
    os.killpg(o.proc.pid, signal.SIGINT)
    o.proc.wait(timeout=30)
    o.proc = None
    assert time.monotonic() - begin < 15
    assert o.containers() == []
