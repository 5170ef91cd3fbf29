"""Health, breakers, autoscaling and the Gluetun VPN, end to end: real aceorch process, real Docker engine."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from orchestrator_proc import Orchestrator, docker_rm_label, free_port

from support import wait_until

pytestmark = pytest.mark.docker


def records(tmp_path: Path, category: str) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted((tmp_path / "debug_logs").glob(f"*_{category}.jsonl"))
            for line in f.read_text().splitlines()]


def test_hung_engine_is_replaced_and_removed(orch: Any) -> None:
    o = orch(MIN_REPLICAS="1", HEALTH_CHECK_INTERVAL_S="1", HEALTH_FAILURE_THRESHOLD="2",
             HEALTH_UNHEALTHY_GRACE_PERIOD_S="1", HEALTH_REPLACEMENT_COOLDOWN_S="0", AUTOSCALE_INTERVAL_S="1")
    wait_until(lambda: len(o.engines()) == 1, timeout=30, what="the minimum pool")
    for e in o.engines():
        o.client.delete(f"/containers/{e['container_id']}", headers=o.auth)
    hung = o.provision({"env": {"SIM_HANG_AFTER_S": "1"}}).json()["container_id"]
    wait_until(lambda: hung not in o.containers(), timeout=60, what="the hung engine to be removed")
    engines = wait_until(lambda: [e for e in o.engines() if e["health_status"] == "healthy"] or None, timeout=30,
                         what="a healthy engine at the floor")
    assert hung not in [e["container_id"] for e in engines]
    assert len(o.engines()) >= 1


def test_five_failed_starts_open_the_breaker_and_a_half_open_trial_closes_it(orch: Any) -> None:
    o = orch(CIRCUIT_BREAKER_FAILURE_THRESHOLD="5", CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S="3", STARTUP_TIMEOUT_S="5")
    for _ in range(5):
        assert o.provision({"env": {"SIM_FAIL_START": "1"}}).status_code == 500
    blocked = o.provision({})
    assert blocked.status_code == 503 and blocked.json()["detail"]["code"] == "circuit_breaker"
    status = o.client.get("/orchestrator/status").json()
    assert status["provisioning"]["blocked_reason"] == "Circuit breaker is open"
    wait_until(lambda: o.client.get("/health/status").json()["circuit_breakers"]["general"]["state"] == "half_open",
               timeout=10, what="half_open")
    assert o.provision({}).status_code == 200
    assert o.client.get("/health/status").json()["circuit_breakers"]["general"]["state"] == "closed"
    assert o.containers(running_only=True) == o.containers(), "failed starts left no container"


def test_autoscaler_keeps_free_engines_within_max(orch: Any) -> None:
    o = orch(MIN_REPLICAS="1", MIN_FREE_REPLICAS="2", MAX_REPLICAS="4", AUTOSCALE_INTERVAL_S="1")
    wait_until(lambda: len(o.engines()) == 2, timeout=30, what="two free engines")
    for n, engine in enumerate(o.engines() * 2):
        event = {"engine": {"host": "localhost", "port": engine["port"]},
                 "stream": {"key_type": "content_id", "key": f"k{n}"},
                 "session": {"playback_session_id": f"p{n}", "stat_url": f"http://localhost:{engine['port']}/x",
                             "command_url": "", "is_live": 1}}
        assert o.client.post("/events/stream_started", json=event, headers=o.auth).status_code == 200
    wait_until(lambda: len(o.engines()) == 4, timeout=30, what="the pool to grow to MAX_REPLICAS")
    # the cap holds over further autoscaler passes:
    for _ in range(3):
        decision = wait_until(lambda: o.client.get("/orchestrator/status").json(), timeout=5)
        assert decision["engines"]["total"] <= 4
    assert len(o.containers(running_only=True)) == 4


def test_sigterm_stops_every_loop_promptly(orch: Any) -> None:
    o = orch(MIN_REPLICAS="1")
    wait_until(lambda: len(o.engines()) == 1, timeout=30, what="one engine")
    assert o.proc is not None
    begin = time.monotonic()
    o.proc.send_signal(signal.SIGTERM)
    code = o.proc.wait(timeout=15)
    elapsed = time.monotonic() - begin
    o.proc = None
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why it stopped.
    assert code in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in o.logs()
    assert elapsed < 4.0, f"shutdown took {elapsed:.2f}s"
    assert len(o.containers(running_only=True)) == 1, "engines outlive the orchestrator (adopted at next start)"


# -- Gluetun ---------------------------------------------------------------------------------------------------


class Gluetun:
    def __init__(self, label: str, pool: range) -> None:
        self.name = f"gluetun-{uuid.uuid4().hex[:8]}"
        self.control_port = free_port()
        self.label = label
        ports = ["-p", f"127.0.0.1:{self.control_port}:8000"]
        ports += ["-p", f"{pool.start}-{pool.stop - 1}:{pool.start}-{pool.stop - 1}"]
        subprocess.run(["docker", "run", "-d", "--name", self.name, "--label", label, "--label", "aceorch.test=1",
                        *ports, "aceorch/gluetun-sim:latest"], check=True, capture_output=True, timeout=60)
        wait_until(lambda: self.health() == "healthy", timeout=30, what="gluetun-sim healthy")

    def health(self) -> str:
        out = subprocess.run(["docker", "inspect", "-f", "{{.State.Health.Status}}", self.name],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip()

    def vpn(self, state: str) -> None:
        r = httpx.post(f"http://127.0.0.1:{self.control_port}/__sim/state", json={"vpn": state}, timeout=5)
        r.raise_for_status()

    def remove(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, timeout=60)


@pytest.fixture
def vpn_setup(docker_engine: None, tmp_path: Path) -> Iterator[Any]:
    made: list[tuple[Orchestrator, Gluetun]] = []

    def factory(**env: str) -> tuple[Orchestrator, Gluetun]:
        pool = range(19600, 19605)
        o = Orchestrator(tmp_path, {"RUNTIME": "docker", **env})
        g = Gluetun(f"aceorch.test.vpn={o.label_value}", pool)
        o.env.update({
            "GLUETUN_CONTAINER_NAME": g.name, "GLUETUN_API_URL": f"http://127.0.0.1:{g.control_port}",
            "PORT_RANGE_HOST": f"{pool.start}-19699", "MAX_ACTIVE_REPLICAS": "5",
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


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/webui/api/service?method=get_version", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def started_at(cid: str) -> str:
    out = subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}", cid], capture_output=True, text=True,
                         timeout=30, check=True)
    return out.stdout.strip()


def test_vpn_engines_share_the_namespace_and_a_flap_blocks_then_restarts(vpn_setup: Any, tmp_path: Path) -> None:
    o, g = vpn_setup(VPN_RECOVERY_STABILIZE_S="2", DEBUG_MODE="true")
    wait_until(lambda: o.client.get("/vpn/status").json()["connected"], timeout=20, what="VPN connected")
    vpn = o.client.get("/vpn/status").json()
    assert vpn["health"] == "healthy" and vpn["control_server"] == "ok" and vpn["forwarded_port"] == 5914
    replies = [o.provision({}).json() for _ in range(2)]
    for reply in replies:
        assert reply["host_http_port"] == reply["container_http_port"]
        mode = subprocess.run(["docker", "inspect", "-f", "{{.HostConfig.NetworkMode}}", reply["container_id"]],
                              capture_output=True, text=True, check=True).stdout.strip()
        assert mode == f"container:{g.name}" or mode.startswith("container:")
        httpx.get(f"http://127.0.0.1:{reply['host_http_port']}/webui/api/service?method=get_version",
                  timeout=5).raise_for_status()
    p2p = [subprocess.run(["docker", "inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", r["container_id"]],
                          capture_output=True, text=True, check=True).stdout for r in replies]
    assert sum("P2P_PORT=5914" in env for env in p2p) == 1, "one engine per VPN gets the forwarded port"
    before = {r["container_id"]: started_at(r["container_id"]) for r in replies}

    g.vpn("down")
    wait_until(lambda: not o.client.get("/vpn/status").json()["connected"], timeout=10, what="VPN down")
    r = o.provision({})
    assert r.status_code == 503 and r.json()["detail"]["code"] == "vpn_disconnected"
    assert r.headers["retry-after"] == "60"
    status = o.client.get("/orchestrator/status").json()
    assert status["provisioning"]["blocked_reason"] == "VPN not connected"
    g.vpn("up")
    wait_until(lambda: o.client.get("/vpn/status").json()["connected"], timeout=15, what="VPN back")
    assert o.provision({}).status_code == 200, "provisioning resumes at once"
    wait_until(lambda: all(started_at(c) != t for c, t in before.items()), timeout=30,
               what="engines restarted after the stabilisation window")
    for reply in replies:
        port = reply["host_http_port"]
        wait_until(lambda port=port: answers(port), timeout=20, what="engine answers again")
    stress = records(tmp_path, "stress")
    assert [s["event_type"] for s in stress if s["event_type"] == "vpn_disconnection"] == ["vpn_disconnection"]
    assert any(s["event_type"] == "vpn_recovered" for s in stress)
    restarts = wait_until(
        lambda: [r for r in records(tmp_path, "vpn") if r.get("operation") == "engine_restart"] if len(
            [r for r in records(tmp_path, "vpn") if r.get("operation") == "engine_restart"]) >= 2 else None,
        timeout=10, what="both restart records")
    assert sorted(r["container_id"] for r in restarts) == sorted(before)
    assert all(r["success"] for r in restarts)


def test_a_short_flap_restarts_engines_once(vpn_setup: Any, tmp_path: Path) -> None:
    o, g = vpn_setup(VPN_RECOVERY_STABILIZE_S="4", DEBUG_MODE="true")
    wait_until(lambda: o.client.get("/vpn/status").json()["connected"], timeout=20, what="VPN connected")
    cid = o.provision({}).json()["container_id"]
    for _ in range(2):
        g.vpn("down")
        wait_until(lambda: not o.client.get("/vpn/status").json()["connected"], timeout=10, what="down")
        g.vpn("up")
        wait_until(lambda: o.client.get("/vpn/status").json()["connected"], timeout=10, what="up")
    wait_until(lambda: [r for r in records(tmp_path, "vpn") if r.get("operation") == "engine_restart"], timeout=30,
               what="the restart after the window")
    restarts = [r for r in records(tmp_path, "vpn") if r.get("operation") == "engine_restart"]
    assert [r["container_id"] for r in restarts] == [cid]


def test_killed_gluetun_blocks_provisioning_until_it_is_back(vpn_setup: Any) -> None:
    o, g = vpn_setup(VPN_RECOVERY_STABILIZE_S="1")
    wait_until(lambda: o.client.get("/vpn/status").json()["connected"], timeout=20, what="VPN connected")
    cid = o.provision({}).json()["container_id"]
    port = o.engines()[0]["port"]
    subprocess.run(["docker", "kill", g.name], check=True, capture_output=True, timeout=30)
    wait_until(lambda: o.client.get("/vpn/status").json()["status"] in ("exited", "not_found"), timeout=10,
               what="gluetun seen as stopped")
    assert o.provision({}).json()["detail"]["code"] == "vpn_disconnected"
    subprocess.run(["docker", "start", g.name], check=True, capture_output=True, timeout=30)
    wait_until(lambda: o.client.get("/vpn/status").json()["connected"], timeout=30, what="VPN back")
    wait_until(lambda: answers(port), timeout=40, what="the engine to answer in the new namespace")
    assert cid in o.containers(running_only=True)
