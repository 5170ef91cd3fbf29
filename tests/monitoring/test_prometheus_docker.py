"""A real Prometheus scrapes a real ``aceorch serve`` behind gluetun-sim: the series arrive, a VPN drop fires
``VpnDisconnected`` through Prometheus's own rule evaluation, and every Grafana panel's query runs, the proxy's
panels with data while a viewer watches a stream through the built-in proxy."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from orchestrator_proc import Orchestrator, docker_rm_label, free_port
from prometheus_proc import DASHBOARD, Prometheus, fast_rules, grafana_expr, panel_queries

from support import wait_until

pytestmark = pytest.mark.docker

#: Host ports published by gluetun-sim for the engines that share its network namespace.
POOL = range(19620, 19625)
#: The channel the test's viewer watches through the built-in proxy.
CONTENT = "5eed00005eed00005eed00005eed00005eed0000"


class Viewer:
    """One player reading a stream from the built-in proxy in a thread until told to leave."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.bytes = 0
        self.status: int | None = None
        self.leave = threading.Event()
        self.thread = threading.Thread(target=self._run, name="viewer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with httpx.stream("GET", self.url, timeout=60) as resp:
                self.status = resp.status_code
                for chunk in resp.iter_raw():
                    self.bytes += len(chunk)
                    if self.leave.is_set():
                        return
        except httpx.HTTPError:
            return

    def stop(self) -> None:
        self.leave.set()
        self.thread.join(15)


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

    # a viewer watches a channel through the built-in proxy, on the engine just started
    viewer = Viewer(f"http://127.0.0.1:{o.port}/ace/getstream?id={CONTENT}")
    try:
        wait_until(lambda: viewer.bytes > 188 * 100, timeout=60, what=f"the viewer's bytes\n{o.logs()[-3000:]}")
        assert viewer.status == 200
        wait_until(lambda: prom.query("sum(rate(orch_proxy_bytes_sent_total[1m])) > 0"), timeout=30,
                   what="the proxy's bytes in Prometheus")
        assert prom.query("orch_proxy_viewers")[0]["value"][1] == "1"
        assert prom.query("orch_proxy_streams")[0]["value"][1] == "1"

        # every panel's query runs (as Grafana would send it, over the last minutes) and returns without error
        queries = panel_queries()
        assert len(queries) >= 10
        now = time.time()
        answered = {}
        for title, expr in queries:
            data = prom.api("query_range", query=grafana_expr(expr), start=now - 120, end=now, step=1)
            assert data["resultType"] == "matrix", (title, expr)
            answered[expr] = data["result"]
    finally:
        viewer.stop()
    for title, expr in queries:
        if "orch_engines" in expr or "orch_vpn" in expr or "orch_streams_active" in expr:
            assert answered[expr], f"{title}: {expr} returned no series"
    delay_kept = bool(prom.query("orch_proxy_delivery_delay_seconds_count > 0"))
    proxy = [(t, e) for t, e in queries if "orch_proxy_" in e]
    assert {t for t, _ in proxy} >= {"Proxy throughput", "Proxy viewers and lag", "Streams and viewers"}
    for title, expr in proxy:
        if "delivery_delay" in expr and not delay_kept:
            continue  # the hub keeps no delivery-delay histogram: the panel's p99 line stays empty
        assert answered[expr], f"{title}: {expr} returned no series while a viewer watched"
    throughput = {e: max(float(v) for _, v in answered[e][0]["values"]) for t, e in proxy
                  if t == "Proxy throughput" and "bytes_" in e}
    assert len(throughput) == 2 and all(v > 0 for v in throughput.values()), throughput
    assert prom.api("label/instance/values", **{"match[]": "orch_engines"}) == [f"127.0.0.1:{o.port}"]
    # the board's job and instance variables resolve (Grafana's label_values(<selector>, <label>))
    board = json.loads(DASHBOARD.read_text())
    for var in board["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", var["definition"])
        assert m, var["definition"]
        values = prom.api(f"label/{m.group(2)}/values", **{"match[]": grafana_expr(m.group(1))})
        assert values == (["aceorch"] if var["name"] == "job" else [f"127.0.0.1:{o.port}"]), (var["name"], values)

    # an injected VPN drop fires VpnDisconnected through Prometheus's own rule evaluation (for: 1s in the test copy)
    g.vpn("down")
    alerts = wait_until(lambda: prom.firing("VpnDisconnected"), timeout=30, what="VpnDisconnected firing")
    assert alerts[0]["labels"]["severity"] == "critical"
    assert alerts[0]["labels"]["instance"] == f"127.0.0.1:{o.port}"
    assert "Gluetun" in alerts[0]["annotations"]["description"]
    g.vpn("up")
    wait_until(lambda: not prom.firing("VpnDisconnected"), timeout=30, what="VpnDisconnected resolved")
