"""The panel's Nodes section in headless Chromium: engines per node and node health, as a multi-node runtime reports
them in ``/orchestrator/status``.

The server is the live one of the other panel tests (the process runtime, simulator engines as child processes),
with a runtime that also lists three nodes: one per loopback address (127.0.0.1-3), each engine's published port
"on" the node it was placed on, so that aceorch probes it at that node's address, as it does on a swarm. A node
that goes down is a node whose engines stop answering (connections reset) and that the runtime lists as down.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from aceorch_live import API_KEY, LiveServer
from playwright.sync_api import Page, expect

import aceorch.api.app as app_module
from aceorch.config import Settings
from aceorch.runtime.base import ContainerInfo, ContainerSpec, RuntimeNode
from aceorch.runtime.process import ProcessRuntime
from support import wait_until

pytestmark = pytest.mark.browser

CONTENT = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
MANAGER, WORKER2, WORKER3 = "127.0.0.1", "127.0.0.2", "127.0.0.3"


class NodesRuntime(ProcessRuntime):
    """The process runtime as a three-node cluster: it lists nodes and places each engine on one of them."""

    def __init__(self, command: str) -> None:
        super().__init__(command)
        self.node_list = [
            RuntimeNode(id="n1aaaaaaaaaa", hostname="swarm-node1", address=MANAGER, role="manager",
                        availability="active", state="ready"),
            RuntimeNode(id="n2bbbbbbbbbb", hostname="swarm-node2", address=WORKER2, role="worker",
                        availability="active", state="ready"),
            RuntimeNode(id="n3cccccccccc", hostname="swarm-node3", address=WORKER3, role="worker",
                        availability="active", state="ready"),
        ]
        self.placements: list[str] = []  # where the next creates go, in order
        self.where: dict[str, str] = {}  # container id -> node address

    async def nodes(self) -> list[RuntimeNode]:
        """The three nodes as the test set them."""
        return list(self.node_list)

    def set_node(self, hostname: str, **change: str) -> None:
        """Change a node's state or availability, as the cluster would."""
        self.node_list = [replace(n, **change) if n.hostname == hostname else n for n in self.node_list]

    def _placed(self, info: ContainerInfo) -> ContainerInfo:
        addr = self.where.get(info.id)
        name = next((n.hostname for n in self.node_list if n.address == addr), None)
        return replace(info, node_address=addr, node=name)

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        info = await super().create(spec)
        self.where[info.id] = self.placements.pop(0) if self.placements else MANAGER
        return self._placed(info)

    async def inspect(self, container_id: str) -> ContainerInfo:
        return self._placed(await super().inspect(container_id))

    async def list(self, labels: dict[str, str] | None = None) -> list[ContainerInfo]:
        return [self._placed(i) for i in await super().list(labels)]


@pytest.fixture
def nodes_runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[NodesRuntime]]:
    """The server started next builds a :class:`NodesRuntime` instead of its usual runtime."""
    made: list[NodesRuntime] = []

    async def make(settings: Settings) -> NodesRuntime:
        rt = NodesRuntime(settings.runtime.engine_command)
        made.append(rt)
        return rt

    monkeypatch.setattr(app_module, "make_runtime", make)
    yield made


def open_panel(page: Page, srv: LiveServer) -> None:
    page.goto(f"{srv.url}/panel?key={API_KEY}")
    page.wait_for_function("() => Number(document.body.dataset.refreshed || 0) >= 1", timeout=10_000)


def test_nodes_section_shows_engines_per_node_and_a_down_and_a_drained_node(
    nodes_runtime: list[NodesRuntime], live: Callable[..., LiveServer], page: Page, artifacts: Path
) -> None:
    srv = live(monitor_interval_s=1, health_check_interval_s=1, health_failure_threshold=1,
               health_unhealthy_grace_period_s=600)
    [rt] = nodes_runtime
    rt.placements = [MANAGER, MANAGER, MANAGER, WORKER2, WORKER3]
    engines = [srv.provision() for _ in range(5)]
    on = {e["container_id"]: rt.where[e["container_id"]] for e in engines}
    hosts = {e["container_id"]: e["host"] for e in srv.get("/engines")}
    assert hosts == on  # each engine is advertised at its node's address, and answers there
    _, stream = srv.started(engines[0]["host_http_port"], CONTENT)

    open_panel(page, srv)
    section = page.get_by_test_id("nodes")
    expect(section).to_be_visible()
    cards = page.get_by_test_id("node-card")
    expect(cards).to_have_count(3)
    # the manager first, then the workers by name
    assert cards.evaluate_all("cs => cs.map(c => c.dataset.hostname)") == ["swarm-node1", "swarm-node2", "swarm-node3"]
    expect(page.get_by_test_id("nodes-summary")).to_have_text("3 ready")
    n1 = page.locator('[data-testid="node-card"][data-hostname="swarm-node1"]')
    expect(n1.get_by_test_id("node-role")).to_have_text("manager")
    expect(n1.get_by_test_id("node-addr")).to_have_text(MANAGER)
    expect(n1.get_by_test_id("node-engines")).to_have_text("3")
    expect(n1.get_by_test_id("node-engine")).to_have_count(3)
    assert set(n1.get_by_test_id("node-engine").evaluate_all("es => es.map(e => e.dataset.id)")) == {
        e["container_id"] for e in engines[:3]}
    expect(n1.get_by_test_id("node-health")).to_have_text("3 healthy")

    # node 2 drained: Swarm moves its engine to the manager; node 3 fails: its engine stops answering
    rt.set_node("swarm-node2", availability="drain")
    rt.where[engines[3]["container_id"]] = MANAGER
    rt.set_node("swarm-node3", state="down")
    reset = httpx.post(f"http://{WORKER3}:{engines[4]['host_http_port']}/__sim/state", json={"engine_mode": "reset"},
                       timeout=5)
    assert reset.status_code == 200
    wait_until(lambda: {e["container_id"]: e["health_status"] for e in srv.get("/engines")}[
        engines[4]["container_id"]] == "unhealthy", "the engine on the failed node to be unhealthy", timeout=15)
    expected = {"swarm-node1": ("ready", "active", 4), "swarm-node2": ("ready", "drain", 0),
                "swarm-node3": ("down", "active", 1)}
    wait_until(lambda: {n["hostname"]: (n["state"], n["availability"], n["engines"])
                        for n in srv.get("/orchestrator/status")["nodes"]} == expected,
               "the next reconcile to list the nodes as changed", timeout=10)

    n2 = page.locator('[data-testid="node-card"][data-hostname="swarm-node2"]')
    n3 = page.locator('[data-testid="node-card"][data-hostname="swarm-node3"]')
    expect(n3).to_have_attribute("data-status", "down", timeout=10_000)
    expect(n3.get_by_test_id("node-health")).to_have_text("1 unhealthy", timeout=10_000)
    expect(n3.get_by_test_id("node-state")).to_have_text("down")
    expect(n3.get_by_test_id("node-engines")).to_have_text("1")
    expect(n3.get_by_test_id("node-note")).to_contain_text("Swarm moves its 1 engine(s) to other nodes")
    expect(n3.get_by_test_id("node-engine")).to_have_attribute("data-health", "unhealthy")
    expect(n2).to_have_attribute("data-status", "drain")
    expect(n2.get_by_test_id("node-availability")).to_have_text("drain")
    expect(n2.get_by_test_id("node-state")).to_have_text("ready")
    expect(n2.get_by_test_id("node-engines")).to_have_text("0")
    expect(n2.get_by_test_id("node-engine")).to_have_count(0)
    expect(n2.get_by_test_id("node-note")).to_have_text("drained: takes no engines")
    expect(n1.get_by_test_id("node-engines")).to_have_text("4")
    expect(n1.get_by_test_id("node-health")).to_have_text("4 healthy")
    expect(n1.get_by_test_id("node-note")).to_have_count(0)
    # the engine with the stream says so
    busy = n1.locator(f'[data-testid="node-engine"][data-id="{stream["container_id"]}"]')
    expect(busy).to_contain_text("▶1")
    expect(page.get_by_test_id("nodes-summary")).to_have_text("1 ready · 1 down · 1 drained")
    expect(page.get_by_test_id("nodes-count")).to_have_text("3")
    expect(page.get_by_test_id("node-unplaced")).to_have_count(0)
    # colours: green, amber and red borders tell the three apart at a glance
    borders = {h: page.locator(f'[data-testid="node-card"][data-hostname="{h}"]').evaluate(
        "c => getComputedStyle(c).borderLeftColor") for h in ("swarm-node1", "swarm-node2", "swarm-node3")}
    assert len(set(borders.values())) == 3, borders
    assert re.fullmatch(r"rgb\(248, 81, 73\)", borders["swarm-node3"]), borders
    expect(page.get_by_test_id("error-banner")).to_be_hidden()

    shot = artifacts / "panel-nodes.png"
    section.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    page.screenshot(path=str(artifacts / "panel-nodes-page.png"), full_page=True)

    # an engine at an address that is no listed node's (a task between two nodes) has a card of its own
    rt.where[engines[1]["container_id"]] = "127.0.0.9"
    loose = page.get_by_test_id("node-unplaced")
    expect(loose).to_have_count(1, timeout=10_000)
    expect(loose.get_by_test_id("node-name")).to_have_text("no node")
    expect(loose.get_by_test_id("node-engine")).to_have_attribute("data-id", engines[1]["container_id"])
    expect(n1.get_by_test_id("node-engines")).to_have_text("3")


def test_nodes_section_is_hidden_on_a_single_host(live: Callable[..., LiveServer], page: Page) -> None:
    srv = live()
    srv.provision()
    assert srv.get("/orchestrator/status")["nodes"] == []
    open_panel(page, srv)
    expect(page.get_by_test_id("engine-row")).to_have_count(1)
    expect(page.get_by_test_id("nodes")).to_be_hidden()
    expect(page.get_by_test_id("node-card")).to_have_count(0)
