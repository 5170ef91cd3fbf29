"""R2: the Docker daemon restarts while aceorch (RUNTIME=docker) serves.

During the outage aceorch answers from memory and reports the runtime as unavailable; once the daemon is back
it recovers by itself, and the engine that Docker restarts (restart policy ``unless-stopped``) is seen again.
The daemon is stopped by its pid (``/var/run/docker.pid``) and started again by ``scripts/ensure-docker.sh``,
exactly as ``make docker`` starts it; the fixture runs that script again at the end, whatever happened.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from chaos_helpers import run_of
from orchestrator_proc import Orchestrator

from support import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.docker]

ROOT = Path(__file__).resolve().parents[2]
RECOVERY_S = 10.0


def dockerd_pid() -> int:
    try:
        pid = int(Path("/var/run/docker.pid").read_text().strip())
        if Path(f"/proc/{pid}").exists():
            return pid
    except (OSError, ValueError):
        pass
    out = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True, check=False)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 1, f"expected one dockerd, found {pids}"
    return pids[0]


def ensure_docker() -> None:
    done = subprocess.run([str(ROOT / "scripts" / "ensure-docker.sh")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, f"ensure-docker.sh failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture
def dockerd(docker_engine: None) -> Iterator[Callable[[], float]]:
    """``stop()`` stops the daemon and returns when its process is gone; the daemon runs again afterwards."""
    assert not os.environ.get("DOCKER_HOST"), "R2 restarts the local daemon; DOCKER_HOST points elsewhere"

    def stop() -> float:
        pid = dockerd_pid()
        began = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=60, interval=0.2, what="dockerd to exit")
        return time.monotonic() - began

    try:
        yield stop
    finally:
        ensure_docker()


def test_dockerd_restart_is_survived(orch_factory: Callable[..., Orchestrator], dockerd: Callable[[], float]) -> None:
    o = orch_factory("docker", DEBUG_MODE="true", MONITOR_INTERVAL_S="2")
    first = o.provision({})
    assert first.status_code == 200, first.text
    engine_id = first.json()["container_id"]
    assert [e["container_id"] for e in o.engines()] == [engine_id]

    stop_s = dockerd()
    down_at = time.monotonic()

    # /readyz turns 503 with the runtime unreachable (noticed within MONITOR_INTERVAL_S).
    def not_ready() -> bool:
        r = o.client.get("/readyz", timeout=3)
        return r.status_code == 503 and r.json()["checks"]["runtime"] == "unreachable"

    wait_until(not_ready, timeout=15, what="/readyz 503 runtime unreachable")
    ready = o.client.get("/readyz", timeout=3)
    assert ready.json()["status"] == "not_ready" and ready.headers["retry-after"] == "5"
    noticed_s = time.monotonic() - down_at

    # Provisioning is refused as a temporary condition, promptly.
    began = time.monotonic()
    r = o.provision({}, timeout=10)
    provision_s = time.monotonic() - began
    assert r.status_code == 503, r.text
    detail = r.json()["detail"]
    assert detail["error"] == "provisioning_blocked" and detail["code"] == "runtime_unavailable", detail
    assert detail["recovery_eta_seconds"] == 10 and detail["can_retry"] is True and detail["should_wait"] is True
    assert r.headers["retry-after"] == "10"
    assert provision_s < 3, f"the blocked provision took {provision_s:.2f}s"

    # Status and engines answer from memory, fast.
    for _ in range(20):
        began = time.monotonic()
        s = o.client.get("/orchestrator/status", timeout=3)
        assert s.status_code == 200 and time.monotonic() - began < 0.5
        began = time.monotonic()
        e = o.client.get("/engines", timeout=3)
        assert e.status_code == 200 and time.monotonic() - began < 0.5
    prov = s.json()["provisioning"]
    assert prov["blocked_reason"] == "Runtime unavailable" and prov["can_provision"] is False, prov
    assert prov["blocked_reason_details"]["code"] == "runtime_unavailable"
    # The daemon stopped the engine's container on its way down, so aceorch may drop it from /engines (an
    # engine listed there must answer); it must not invent anything.
    assert isinstance(e.json(), list) and {x["container_id"] for x in e.json()} <= {engine_id}, e.json()

    # An errors record says so.
    wait_until(lambda: [x for x in run_of(o).records("errors", complete_only=True)
                        if x.get("component") == "runtime"],
               timeout=5, what="an errors record for the runtime")

    # The daemon comes back; aceorch recovers by itself within RECOVERY_S.
    ensure_docker()
    up_at = time.monotonic()

    def ready_again() -> bool:
        return o.client.get("/readyz", timeout=3).status_code == 200

    wait_until(ready_again, timeout=RECOVERY_S + 20, what="/readyz 200 after the daemon came back")
    ready_s = time.monotonic() - up_at

    def provisioned() -> str | None:
        reply = o.provision({}, timeout=30)
        return reply.json()["container_id"] if reply.status_code == 200 else None

    second = wait_until(provisioned, timeout=RECOVERY_S + 20, interval=0.5, what="a provision to succeed again")
    provision_ok_s = time.monotonic() - up_at
    print(f"\nR2: dockerd stop took {stop_s:.1f}s; outage noticed after {noticed_s:.1f}s; blocked provision "
          f"answered in {provision_s * 1000:.0f} ms; after the daemon answered again: /readyz 200 in {ready_s:.1f}s, "
          f"first successful provision at {provision_ok_s:.1f}s")
    assert ready_s <= RECOVERY_S and provision_ok_s <= RECOVERY_S, (ready_s, provision_ok_s)

    # Docker restarts the first engine (unless-stopped); aceorch lists exactly what runs.
    def consistent() -> bool:
        running = o.containers(running_only=True)
        listed = sorted(x["container_id"] for x in o.engines())
        return engine_id in running and listed == running

    try:
        wait_until(consistent, timeout=30, interval=0.5, what="/engines to equal the running containers")
    except AssertionError as exc:
        removed = run_of(o).log_lines("removed exited container")
        raise AssertionError(
            f"{exc}\nthe first engine {engine_id[:12]} should have been restarted by Docker (unless-stopped); "
            f"docker ps -a for the label: {o.containers()}; running: {o.containers(running_only=True)}; "
            f"/engines: {[x['container_id'][:12] for x in o.engines()]}; aceorch log: {removed}"
        ) from None
    assert sorted(x["container_id"] for x in o.engines()) == sorted([engine_id, second])
    status = o.client.get("/orchestrator/status").json()
    assert status["provisioning"]["blocked_reason"] is None and status["engines"]["running"] == 2, status
