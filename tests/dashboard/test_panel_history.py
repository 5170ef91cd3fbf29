"""The panel's history and live events in Chromium, against a real ``aceorch serve`` on Docker behind a
gluetun-sim VPN: a point per provision on the provisioning chart, the VPN band after a flap, a stress event that the
SSE stream delivers in under 1 s with the poll off, and a screenshot of the incident (test-artifacts/)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from aceorch.models import parse_time
from support import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

from orchestrator_proc import Orchestrator, docker_rm_label, free_port  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.docker]

POOL = range(19610, 19615)


class Gluetun:
    """A gluetun-sim container whose VPN the test turns down and up."""

    def __init__(self, label: str) -> None:
        self.name = f"gluetun-{uuid.uuid4().hex[:8]}"
        self.control_port = free_port()
        span = f"{POOL.start}-{POOL.stop - 1}"
        ports = ["-p", f"127.0.0.1:{self.control_port}:8000", "-p", f"{span}:{span}"]
        subprocess.run(["docker", "run", "-d", "--name", self.name, "--label", label, "--label", "aceorch.test=1",
                        *ports, "aceorch/gluetun-sim:latest"], check=True, capture_output=True, timeout=60)

    def vpn(self, state: str) -> None:
        url = f"http://127.0.0.1:{self.control_port}/__sim/state"
        httpx.post(url, json={"vpn": state}, timeout=5).raise_for_status()

    def remove(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, timeout=60)


@pytest.fixture
def vpn_orch(docker_engine: None, tmp_path: Path) -> Iterator[tuple[Orchestrator, Gluetun]]:
    o = Orchestrator(tmp_path, {"RUNTIME": "docker"})
    g = Gluetun(f"aceorch.test.vpn={o.label_value}")
    o.env.update({
        "GLUETUN_CONTAINER_NAME": g.name, "GLUETUN_API_URL": f"http://127.0.0.1:{g.control_port}",
        "PORT_RANGE_HOST": f"{POOL.start}-19699", "MAX_ACTIVE_REPLICAS": "5", "GLUETUN_HEALTH_CHECK_INTERVAL_S": "1",
        "GLUETUN_STARTUP_WAIT_S": "20", "VPN_RECOVERY_STABILIZE_S": "300",
        # a start slower than 0.08 x 25 s = 2 s is slow; the provision answers once the engine is ready
        "STARTUP_TIMEOUT_S": "25", "DEBUG_SLOW_PROVISIONING_RATIO": "0.08", "PROVISION_WAIT_FOR": "ready",
    })
    try:
        o.start()
        yield o, g
    finally:
        o.close()
        g.remove()
        docker_rm_label(o.label)


def test_panel_charts_the_provisions_the_vpn_flap_and_gets_stress_events_live(
    vpn_orch: tuple[Orchestrator, Gluetun], page: Page, artifacts: Path
) -> None:
    o, g = vpn_orch
    wait_until(lambda: o.client.get("/vpn/status").json()["connected"], timeout=30, what="VPN connected")
    # one quick start and one slow one (the simulator answers only after 3.5 s)
    made = [o.provision({}).json(), o.provision({"env": {"SIM_STARTUP_DELAY_S": "3.5"}}).json()]
    assert all("container_id" in m for m in made), made

    page.goto(f"http://127.0.0.1:{o.port}/?key={o.api_key}")
    page.wait_for_function("() => Number(document.body.dataset.refreshed || 0) >= 1")
    assert page.url.endswith("/panel/")
    page.wait_for_function("() => document.body.dataset.live === 'true'")
    # the poll off: from here on only the event stream changes the page
    page.get_by_test_id("auto-refresh").uncheck()
    prov = page.get_by_test_id("prov-chart")
    expect(prov).to_have_attribute("data-points", "2")
    expect(prov).to_have_attribute("data-slow", "1")

    # a stress event, pushed by SSE: time from the event's own timestamp to its row in the DOM
    page.evaluate("""() => {
      window.__seen = null;
      new MutationObserver(() => {
        const li = document.querySelector('[data-testid="stress-event"][data-type="vpn_disconnection"]');
        if (li && !window.__seen) window.__seen = { at: Date.now(), via: li.dataset.via };
      }).observe(document.getElementById('stress-feed'), { childList: true, subtree: true });
    }""")
    g.vpn("down")
    page.wait_for_function("() => window.__seen !== null", timeout=15_000)
    seen = page.evaluate("window.__seen")
    events = o.client.get("/events", params={"type": "stress"}).json()["events"]
    ev = next(e for e in events if e["action"] == "vpn_disconnection")
    latency = seen["at"] / 1000 - parse_time(ev["ts"]).timestamp()
    print(f"\nSSE stress event: {latency * 1000:.0f} ms from the event to the DOM (via {seen['via']})")
    assert seen["via"] == "sse" and latency < 1.0

    time.sleep(4)  # the outage lasts a few seconds, so that its band is wide enough to see
    g.vpn("up")
    wait_until(lambda: o.client.get("/vpn/status").json()["connected"], timeout=15, what="VPN back")
    third = o.provision({}).json()
    assert "container_id" in third
    expect(prov).to_have_attribute("data-points", "3", timeout=5_000)
    expect(prov).to_have_attribute("data-bands", "1", timeout=5_000)
    expect(page.get_by_test_id("engines-chart")).to_have_attribute("data-bands", "1")
    expect(page.get_by_test_id("incident")).to_contain_text("VPN was down 1×")
    expect(page.get_by_test_id("incident")).to_contain_text("slow start")
    # the engine rows: uptime, image, start duration
    row = page.locator(f'[data-testid="engine-row"][data-id="{third["container_id"]}"]')
    page.get_by_test_id("auto-refresh").check()
    expect(row.get_by_test_id("engine-image")).to_have_text("aceorch/engine-sim:latest")
    expect(row.get_by_test_id("engine-start")).to_have_text(re.compile(r"^\d+\.\d s$"))
    page.screenshot(path=str(artifacts / "panel-vpn-flap-slow-start.png"), full_page=True)
