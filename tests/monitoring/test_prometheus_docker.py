"""A real Prometheus scrapes a real ``aceorch serve`` behind gluetun-sim: the series arrive, a VPN drop fires
``VpnDisconnected`` through Prometheus's own rule evaluation, and every Grafana panel's query runs."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from orchestrator_proc import Orchestrator, docker_rm_label, free_port
from prometheus_proc import Prometheus, fast_rules, grafana_expr, panel_queries

from support import wait_until

pytestmark = pytest.mark.docker

#: Host ports published by gluetun-sim for the engines that share its network namespace.
POOL = range(19620, 19625)


class GluetunSim:
    """A gluetun-sim container whose VPN the test can drop and bring back."""

    def __init__(self, label: str) -> None:
        self.name = f"gluetun-{uuid.uuid4().hex[:8]}"
        self.control_port = free_port()
        ports = ["-p", f"127.0.0.1:{self.control_port}:8000", "-p",
                 f"{POOL.start}-{POOL.stop - 1}:{POOL.start}-{POOL.stop - 1}"]
        subprocess.run(["docker", "run", "-d", "--name", self.name, "--label", label, "--label", "aceorch.test=1",
                        *ports, "aceorch/gluetun-sim:latest"], check=True, capture_output=True, timeout=60)

    def vpn(self, state: str) -> None:
        r = httpx.post(f"http://127.0.0.1:{self.control_port}/__sim/state", json={"vpn": state}, timeout=5)
        r.raise_for_status()

    def remove(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, timeout=60)


@pytest.fixture
def monitored(docker_engine: None, tmp_path: Path) -> Iterator[tuple[Orchestrator, GluetunSim, Prometheus]]:
    """aceorch (RUNTIME=docker, behind gluetun-sim) and a Prometheus scraping it with the bearer key."""
    o = Orchestrator(tmp_path, {"RUNTIME": "docker"})
    g = GluetunSim(f"aceorch.test.vpn={o.label_value}")
    prom: Prometheus | None = None
    try:
        o.env.update({
            "GLUETUN_CONTAINER_NAME": g.name, "GLUETUN_API_URL": f"http://127.0.0.1:{g.control_port}",
            "PORT_RANGE_HOST": f"{POOL.start}-{POOL.start + 99}", "MAX_ACTIVE_REPLICAS": str(len(POOL)),
            "GLUETUN_HEALTH_CHECK_INTERVAL_S": "1", "GLUETUN_STARTUP_WAIT_S": "30",
        })
        o.start()
        prom = Prometheus(tmp_path / "prometheus", target=f"127.0.0.1:{o.port}", bearer=o.api_key,
                          rules=fast_rules(tmp_path / "alerts-fast.yml"))
        prom.start()
        yield o, g, prom
    finally:
        if prom is not None:
            prom.stop()
        o.close()
        g.remove()
        docker_rm_label(o.label)


def test_prometheus_scrapes_aceorch_fires_vpn_disconnected_and_runs_every_panel(
    monitored: tuple[Orchestrator, GluetunSim, Prometheus],
) -> None:
    o, g, prom = monitored
    wait_until(lambda: o.client.get("/vpn/status").json()["connected"], timeout=30, what="VPN connected")
    assert o.provision({}).status_code == 200, "one start, so the duration histogram has a sample"

    # the series arrive, scraped with the bearer key
    up = wait_until(lambda: prom.query('up{job="aceorch"} == 1'), timeout=30, what="aceorch scraped")
    assert up[0]["metric"]["instance"] == f"127.0.0.1:{o.port}", prom.logs()
    wait_until(lambda: prom.query("orch_vpn_connected == 1"), timeout=20, what="VPN connected in Prometheus")
    assert prom.query("orch_vpn_enabled")[0]["value"][1] == "1"
    assert prom.query("orch_engines_max")[0]["value"][1] == "20"
    assert prom.query('orch_provision_duration_seconds_count{kind="acestream"}')[0]["value"][1] == "1"
    assert {r["metric"]["health"] for r in prom.query("orch_engines")} >= {"healthy", "unhealthy", "unknown"}
    assert prom.firing("VpnDisconnected") == []

    # every panel's query runs (as Grafana would send it, over the last minutes) and returns without error
    queries = panel_queries()
    assert len(queries) >= 10
    now = time.time()
    answered = {}
    for title, expr in queries:
        data = prom.api("query_range", query=grafana_expr(expr), start=now - 120, end=now, step=1)
        assert data["resultType"] == "matrix", (title, expr)
        answered[expr] = data["result"]
    for title, expr in queries:
        if "orch_engines" in expr or "orch_vpn" in expr or "orch_streams_active" in expr:
            assert answered[expr], f"{title}: {expr} returned no series"
    assert prom.api("label/instance/values", **{"match[]": "orch_engines"}) == [f"127.0.0.1:{o.port}"]

    # an injected VPN drop fires VpnDisconnected through Prometheus's own rule evaluation (for: 1s in the test copy)
    g.vpn("down")
    alerts = wait_until(lambda: prom.firing("VpnDisconnected"), timeout=30, what="VpnDisconnected firing")
    assert alerts[0]["labels"]["severity"] == "critical"
    assert alerts[0]["labels"]["instance"] == f"127.0.0.1:{o.port}"
    assert "Gluetun" in alerts[0]["annotations"]["description"]
    g.vpn("up")
    wait_until(lambda: not prom.firing("VpnDisconnected"), timeout=30, what="VpnDisconnected resolved")
