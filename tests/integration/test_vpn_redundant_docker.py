"""Two Gluetun VPNs end to end: real aceorch process, real Docker, two gluetun-sim containers, engines in their
namespaces. Spread 3 + 3, failover, both down, recovery, the forced Gluetun restart and its breaker, and the
second opinion from an engine when the control server cannot be reached."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from orchestrator_proc import Orchestrator, docker_rm_label, free_port
from test_control_docker import Gluetun, answers, started_at

from support import wait_until

pytestmark = pytest.mark.docker

POOL_A = range(19610, 19615)
POOL_B = range(19615, 19620)
INTERVAL_S = 1


def records(tmp_path: Path, category: str) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted((tmp_path / "debug_logs").glob(f"*_{category}.jsonl"))
            for line in f.read_text().splitlines()]


def set_forwarded(g: Gluetun, port: int) -> None:
    r = httpx.post(f"http://127.0.0.1:{g.control_port}/__sim/state", json={"forwarded_port": port}, timeout=5)
    r.raise_for_status()


@pytest.fixture
def two_vpns(docker_engine: None, tmp_path: Path) -> Iterator[Any]:
    made: list[tuple[Orchestrator, Gluetun, Gluetun]] = []

    def factory(*, unreachable_a: bool = False, **env: str) -> tuple[Orchestrator, Gluetun, Gluetun]:
        o = Orchestrator(tmp_path, {"RUNTIME": "docker", "DEBUG_MODE": "true", **env})
        a = Gluetun(f"aceorch.test.vpn={o.label_value}", POOL_A)
        b = Gluetun(f"aceorch.test.vpn={o.label_value}", POOL_B)
        made.append((o, a, b))
        set_forwarded(b, 6001)
        url_a = f"http://127.0.0.1:{free_port() if unreachable_a else a.control_port}"
        o.env.update({
            "GLUETUN_CONTAINER_NAMES": f"{a.name},{b.name}",
            "GLUETUN_API_URLS": f"{url_a},http://127.0.0.1:{b.control_port}",
            "PORT_RANGE_HOST": f"{POOL_A.start}-{POOL_B.stop - 1}", "MAX_ACTIVE_REPLICAS": "10",
            "GLUETUN_HEALTH_CHECK_INTERVAL_S": str(INTERVAL_S), "GLUETUN_STARTUP_WAIT_S": "20",
            **env,
        })
        o.start()
        return o, a, b

    yield factory
    for o, a, b in made:
        o.close()
        a.remove()
        b.remove()
        docker_rm_label(o.label)


def vpn_entries(o: Orchestrator) -> list[dict[str, Any]]:
    body = o.client.get("/vpn/status").json()
    entries: list[dict[str, Any]] = body["vpns"]
    return entries


def spread(o: Orchestrator) -> list[int]:
    return [v["engines"] for v in vpn_entries(o)]


def by_vpn(o: Orchestrator, name: str) -> list[dict[str, Any]]:
    return [e for e in o.engines() if e["labels"].get("aceorch.vpn") == name]


def env_of(cid: str) -> str:
    return subprocess.run(["docker", "inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", cid],
                          capture_output=True, text=True, check=True, timeout=30).stdout


def test_six_engines_spread_fail_over_and_come_back(two_vpns: Any, tmp_path: Path) -> None:
    o, a, b = two_vpns(MIN_REPLICAS="6", VPN_RECOVERY_STABILIZE_S="2")
    wait_until(lambda: spread(o) == [3, 3] and all(e["health_status"] == "healthy" for e in o.engines()),
               timeout=90, what="six healthy engines, 3 + 3")
    status = o.client.get("/orchestrator/status").json()["vpn"]
    assert status["connected"] and [v["name"] for v in status["vpns"]] == [a.name, b.name]
    for e in o.engines():
        assert answers(e["port"])
    on_a = {e["container_id"] for e in by_vpn(o, a.name)}
    on_b = {e["container_id"] for e in by_vpn(o, b.name)}
    assert len(on_a) == len(on_b) == 3
    assert sum("P2P_PORT=5914" in env_of(c) for c in on_a) == 1, "one engine on A holds A's forwarded port"
    assert sum("P2P_PORT=6001" in env_of(c) for c in on_b) == 1, "one engine on B holds B's forwarded port"
    before = {c: started_at(c) for c in on_a | on_b}

    a.vpn("down")
    wait_until(lambda: all(e["health_status"] == "unhealthy" for e in o.engines() if e["container_id"] in on_a),
               timeout=INTERVAL_S + 2.5, what="A's engines unhealthy within one VPN check")
    assert all(e["health_status"] == "healthy" for e in o.engines() if e["container_id"] in on_b)
    status = o.client.get("/orchestrator/status").json()
    assert status["provisioning"]["can_provision"] and status["vpn"]["connected"]
    r = o.provision({})
    assert r.status_code == 200, r.text
    extra = r.json()["container_id"]
    assert extra in {e["container_id"] for e in by_vpn(o, b.name)}, "the new engine goes behind B"
    assert o.client.delete(f"/containers/{extra}").status_code == 200

    b.vpn("down")
    wait_until(lambda: not o.client.get("/vpn/status").json()["connected"], timeout=10, what="both down")
    r = o.provision({})
    assert r.status_code == 503 and r.json()["detail"]["code"] == "vpn_disconnected"
    assert r.headers["retry-after"] == "60"

    a.vpn("up")
    b.vpn("up")
    wait_until(lambda: all(started_at(c) != t for c, t in before.items()), timeout=60,
               what="the engines restarted after the stabilisation window")
    wait_until(lambda: spread(o) == [3, 3] and all(e["health_status"] == "healthy" for e in o.engines()),
               timeout=60, what="back to 3 + 3, healthy")
    stress = records(tmp_path, "stress")
    failovers = [s for s in stress if s["event_type"] == "vpn_failover"]
    assert failovers and failovers[0]["vpn"] == a.name and sorted(failovers[0]["engines"]) == sorted(
        e["container_name"] for e in o.engines() if e["container_id"] in on_a)
    assert {s["vpn"] for s in stress if s["event_type"] == "vpn_disconnection"} == {a.name, b.name}
    assert all(r.get("vpn") in (a.name, b.name) for r in records(tmp_path, "vpn"))


def test_a_gluetun_stuck_unhealthy_is_restarted_once_then_left(two_vpns: Any, tmp_path: Path) -> None:
    o, a, b = two_vpns(MIN_REPLICAS="2", VPN_RECOVERY_STABILIZE_S="1", VPN_UNHEALTHY_RESTART_TIMEOUT_S="3",
                       VPN_RESTART_WINDOW_S="600")
    wait_until(lambda: spread(o) == [1, 1], timeout=60, what="one engine on each VPN")
    first = started_at(a.name)
    a.vpn("down")
    wait_until(lambda: started_at(a.name) != first, timeout=20, what="gluetun A restarted")
    wait_until(lambda: vpn_entries(o)[0]["connected"], timeout=30, what="A healthy after its restart")
    second = started_at(a.name)
    engine = by_vpn(o, a.name)[0]
    wait_until(lambda: answers(engine["port"]), timeout=40, what="A's engine answers in the new namespace")
    a.vpn("down")
    wait_until(lambda: [r for r in records(tmp_path, "vpn")
                        if r.get("operation") == "gluetun_restart" and not r["restarted"]],
               timeout=20, what="the refused restart recorded")
    assert started_at(a.name) == second, "not restarted a second time within the window"
    restarts = [r for r in records(tmp_path, "vpn") if r.get("operation") == "gluetun_restart"]
    assert [(r["vpn"], r["restarted"]) for r in restarts] == [(a.name, True), (a.name, False)]
    metrics = o.client.get("/metrics").text
    assert f'orch_vpn_gluetun_restarts_total{{outcome="restarted",vpn="{a.name}"}} 1.0' in metrics
    assert f'orch_vpn_connected{{vpn="{b.name}"}} 1.0' in metrics


def test_an_engine_vouches_for_a_vpn_whose_control_server_cannot_be_reached(two_vpns: Any) -> None:
    o, a, b = two_vpns(MIN_REPLICAS="2", unreachable_a=True)
    wait_until(lambda: spread(o) == [1, 1], timeout=60, what="one engine on each VPN")
    entry = wait_until(lambda: vpn_entries(o)[0] if vpn_entries(o)[0]["signal"] == "engine" else None,
                       timeout=15, what="A decided by its engine")
    assert entry["health"] == "healthy" and entry["connected"] and entry["control_server"] == "unreachable"
    assert vpn_entries(o)[1]["signal"] == "control_server"
