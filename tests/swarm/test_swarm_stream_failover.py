"""A viewer of aceorch's built-in proxy keeps watching when the worker node that runs its engine fails.

One ``aceorch serve`` on the lab's manager places engines on the workers only. A viewer streams a channel through
the proxy; the node that runs its engine fails, in one of two ways: its daemon stops (its containers stop, so the
engine's connections close), or its network goes (the machine vanishes: nothing closes, the bytes just stop). The
viewer's connection stays open and bytes resume from another engine; the orchestrator's old stream ended with a
reason, and no started stream, nor engine, is left at the dead node's address. The panel, in Chromium, shows the
node down (screenshot in test-artifacts/).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from orchestrator_proc import Orchestrator
from playwright.sync_api import expect, sync_playwright
from swarmlab import Lab

from support import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.browser]

CONTENT = "c0ffee00" * 5
TS = 188
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]

#: How a node fails, and how it comes back: its daemon stopped, or its network cut (``ip -n NS link set eth0``).
Step = Callable[[Lab, str], object]
FAILURES: dict[str, tuple[Step, Step]] = {
    "daemon_stopped": (lambda lab, i: lab.script("stop-node", i), lambda lab, i: lab.script("start-node", i)),
    "network_cut": (lambda lab, i: netns_link(i, "down"), lambda lab, i: netns_link(i, "up")),
}


def netns_link(node: str, state: str) -> None:
    """Take node ``node``'s only interface down or up inside its namespace (created by scripts/swarm-lab.sh)."""
    subprocess.run(["ip", "-n", f"aceswarm{node}", "link", "set", "eth0", state], check=True, timeout=10)


class Viewer:
    """One viewer of the proxy in a thread: the bytes it got, when, and how its connection ended."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.arrivals: list[tuple[float, int]] = []  # (monotonic time, bytes so far)
        self.received = 0
        self.first = b""
        self.ended: str | None = None  # "clean" when the proxy ended the response, else the error
        self.started_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="viewer", daemon=True)

    def start(self) -> Viewer:
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    def _read(self) -> None:
        try:
            with httpx.stream("GET", self.url, params={"id": CONTENT},
                              timeout=httpx.Timeout(10.0, read=90.0)) as resp:
                if resp.status_code != 200:
                    self.ended = f"HTTP {resp.status_code}"
                    return
                for chunk in resp.iter_bytes():
                    if len(self.first) < TS * 2:
                        self.first += chunk[: TS * 2]
                    self.received += len(chunk)
                    self.arrivals.append((time.monotonic(), self.received))
                    if self._stop.is_set():
                        return
            self.ended = "clean"
        except httpx.HTTPError as exc:
            self.ended = f"{type(exc).__name__}: {exc}"

    def bytes_since(self, t: float) -> int:
        """Bytes that arrived after monotonic time ``t``."""
        before = max((n for at, n in self.arrivals if at <= t), default=0)
        return self.received - before

    def longest_gap_after(self, t: float) -> float:
        """The longest wait between two arrivals (seconds) that ends after ``t``: the viewer's pause."""
        times = [at for at, _ in self.arrivals]
        return max((b - a for a, b in zip(times, times[1:], strict=False) if b > t), default=0.0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=100)


def services(lab: Lab, label: str) -> list[str]:
    """Ids of the lab's services carrying ``label``."""
    return sorted(lab.docker("service", "ls", "-q", "--filter", f"label={label}").split())


def streams(orch: Orchestrator) -> list[dict[str, Any]]:
    """The orchestrator's streams, started and ended."""
    r = orch.client.get("/streams")
    r.raise_for_status()
    out: list[dict[str, Any]] = r.json()
    return out


@pytest.fixture
def worker_orch(swarm_lab: Lab, tmp_path: Path) -> Iterator[Orchestrator]:
    """aceorch on the lab's manager, engines on the workers only, never removed for being idle."""
    o = Orchestrator(tmp_path, {"RUNTIME": "swarm", "DOCKER_HOST": swarm_lab.docker_host,
                                "SWARM_CONSTRAINTS": "node.role!=manager", "AUTO_DELETE": "false",
                                "MONITOR_INTERVAL_S": "2", "STARTUP_TIMEOUT_S": "30"})
    try:
        o.start()
        yield o
    finally:
        o.stop()
        o.client.close()
        for sid in services(swarm_lab, o.label):
            swarm_lab.docker("service", "rm", sid)


def shoot_panel(orch: Orchestrator, failed: str, name: str) -> None:
    """The panel in Chromium: the failed node's card is down with no engine; a screenshot of the Nodes section."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"http://127.0.0.1:{orch.port}/panel?key={orch.api_key}")
            cards = page.get_by_test_id("node-card")
            expect(cards).to_have_count(3, timeout=15_000)
            down = page.locator(f'[data-testid="node-card"][data-hostname="{failed}"]')
            expect(down).to_have_attribute("data-status", "down")
            expect(down.get_by_test_id("node-engines")).to_have_text("0")
            engines = sum(int(c.get_attribute("data-engines") or 0) for c in cards.all())
            assert engines == len(orch.engines())
            ARTIFACTS.mkdir(exist_ok=True)
            page.get_by_test_id("nodes").screenshot(path=str(ARTIFACTS / name))
        finally:
            browser.close()


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_viewer_keeps_watching_when_its_engine_s_node_fails(
    swarm_lab: Lab, worker_orch: Orchestrator, failure: str
) -> None:
    o = worker_orch
    fail, restore = FAILURES[failure]
    viewer = Viewer(f"http://127.0.0.1:{o.port}/ace/getstream").start()
    try:
        wait_until(lambda: viewer.received >= TS * 200 or viewer.ended is not None, timeout=60,
                   what="the first bytes through the proxy")
        assert viewer.ended is None, viewer.ended
        assert viewer.first[0] == 0x47 and viewer.first[TS] == 0x47  # MPEG-TS, relayed by aceorch's proxy
        first_bytes_s = viewer.arrivals[0][0] - viewer.started_at
        [engine] = o.engines()
        dead_addr = engine["host"]
        node = next(name for name, addr in swarm_lab.addresses.items() if addr == dead_addr)
        assert node != "swarm-node1"  # a worker
        [old] = [s for s in streams(o) if s["status"] == "started"]
        assert old["container_id"] == engine["container_id"]
        assert urlsplit(old["stat_url"]).hostname == dead_addr

        index = node.removeprefix("swarm-node")
        down_at = time.monotonic()
        fail(swarm_lab, index)  # a stopped daemon: returns once it has exited
        try:
            # The old stream ends with a reason, and a new one is started elsewhere.
            state: dict[str, Any] = {}

            def moved() -> bool:
                state["streams"] = all_streams = streams(o)
                state["engines"] = {e["container_id"]: e for e in o.engines()}
                ended = next((s for s in all_streams if s["id"] == old["id"] and s["status"] == "ended"), None)
                started = [s for s in all_streams if s["status"] == "started"]
                return (ended is not None and len(started) == 1
                        and urlsplit(started[0]["stat_url"]).hostname != dead_addr)

            try:
                wait_until(moved, timeout=90, interval=0.5, what="the stream to move off the failed node")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; streams {state.get('streams')}; log {o.logs()[-2000:]}") from None
            moved_after = time.monotonic() - down_at
            ended = next(s for s in state["streams"] if s["id"] == old["id"])
            assert ended["end_reason"], ended
            [new] = [s for s in state["streams"] if s["status"] == "started"]
            new_engine = state["engines"][new["container_id"]]
            assert new_engine["host"] != dead_addr
            assert new_engine["host"] in swarm_lab.addresses.values()

            # The viewer's connection stayed open and the bytes resumed: more than any buffer could hold.
            mark = viewer.received
            wait_until(lambda: viewer.received - mark >= 500_000 or viewer.ended is not None, timeout=30,
                       what="bytes from the new engine")
            assert viewer.ended is None, viewer.ended
            gap = viewer.longest_gap_after(down_at)
            print(f"{node} {failure}: stream on a new engine after {moved_after:.1f} s, the viewer's longest gap "
                  f"{gap:.1f} s, {viewer.bytes_since(down_at)} bytes since; old stream ended "
                  f"({ended['end_reason']}); the first start took {first_bytes_s:.1f} s")
            assert viewer.bytes_since(down_at) >= 500_000

            # Swarm moves the old engine's task too: no engine is left at the dead address, none is duplicated.
            def relisted() -> bool:
                engines = o.engines()
                state["engines"] = engines
                return (all(e["host"] != dead_addr for e in engines)
                        and sorted(e["container_id"][:12] for e in engines) == services(swarm_lab, o.label))

            wait_until(relisted, timeout=60, interval=0.5, what="the old engine relisted at its new node")
            assert engine["container_id"] in {e["container_id"] for e in state["engines"]}
            assert all(urlsplit(s["stat_url"]).hostname != dead_addr
                       for s in streams(o) if s["status"] == "started")
            down = next(n for n in o.client.get("/orchestrator/status").json()["nodes"] if n["hostname"] == node)
            assert down["state"] == "down" and down["engines"] == 0
            shoot_panel(o, node, f"panel-swarm-{failure.replace('_', '-')}.png")
        finally:
            restore(swarm_lab, index)
            wait_until(lambda: "Down" not in swarm_lab.docker("node", "ls", "--format", "{{.Status}}"),
                       timeout=60, what=f"{node} back")
    finally:
        viewer.close()
