"""aceorch with RUNTIME=swarm on a real 3-node lab swarm: spread, addresses, adoption, a drained node, a failed node.

One ``aceorch serve`` (a child process, as an operator runs it) drives the lab's manager. The tests run in file
order and share its six engines; each leaves the swarm with all nodes active and six engines answering.
"""

from __future__ import annotations

import collections
import concurrent.futures
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from orchestrator_proc import Orchestrator
from swarmlab import Lab

from support import wait_until

pytestmark = pytest.mark.docker

SEED = Path(__file__).resolve().parents[1] / "seed"


def services(lab: Lab, label: str) -> list[str]:
    """Ids (12 characters, as ``docker service ls`` gives them) of the lab's services carrying ``label``."""
    return sorted(lab.docker("service", "ls", "-q", "--filter", f"label={label}").split())


def answers(engine: dict[str, Any]) -> bool:
    """The engine answers get_status at its advertised address."""
    try:
        r = httpx.get(f"http://{engine['host']}:{engine['port']}/server/api",
                      params={"api_version": "3", "method": "get_status"}, timeout=3)
    except httpx.HTTPError:
        return False
    return r.status_code == 200 and "result" in r.json()


def per_node(lab: Lab, engines: list[dict[str, Any]]) -> dict[str, int]:
    """Engines per node hostname, from their advertised addresses."""
    by_addr = {addr: name for name, addr in lab.addresses.items()}
    return dict(collections.Counter(by_addr.get(e["host"], e["host"]) for e in engines))


@pytest.fixture(scope="module")
def orch(swarm_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orchestrator]:
    """aceorch on the lab's manager, no engines kept at rest (MIN_REPLICAS=0)."""
    o = Orchestrator(tmp_path_factory.mktemp("swarm"), {
        "RUNTIME": "swarm", "DOCKER_HOST": swarm_lab.docker_host, "MONITOR_INTERVAL_S": "2",
        "STARTUP_TIMEOUT_S": "30", "MAX_REPLICAS": "20", "MAX_ACTIVE_REPLICAS": "20",
    })
    try:
        o.start()
        yield o
    finally:
        o.stop()
        o.client.close()
        for sid in services(swarm_lab, o.label):
            swarm_lab.docker("service", "rm", sid)


def settled(lab: Lab, orch: Orchestrator, count: int, *, avoid: str | None = None) -> list[dict[str, Any]]:
    """Wait until aceorch lists ``count`` engines, none at ``avoid``, each answering; one service each."""
    state: dict[str, Any] = {}

    def ok() -> bool:
        engines = orch.engines()
        state["engines"] = engines
        state["services"] = services(lab, orch.label)
        return (len(engines) == count and len({e["container_id"] for e in engines}) == count
                and all(e["host"] != avoid for e in engines) and all(answers(e) for e in engines)
                and sorted(e["container_id"][:12] for e in engines) == state["services"])

    try:
        wait_until(ok, timeout=60, interval=0.5, what=f"{count} engines settled")
    except AssertionError as exc:
        seen = [(e["container_id"], e["host"], e["port"], e["health_status"]) for e in state.get("engines", [])]
        raise AssertionError(f"{exc}; engines {seen}; services {state.get('services')}; "
                             f"log tail {orch.logs()[-1500:]}") from None
    engines: list[dict[str, Any]] = state["engines"]
    return engines


def test_six_provisions_spread_two_per_node(swarm_lab: Lab, orch: Orchestrator) -> None:
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda _: orch.provision({"labels": {"test": "swarm"}}), range(6)))
    assert [r.status_code for r in replies] == [200] * 6, [r.text for r in replies]
    engines = settled(swarm_lab, orch, 6)
    assert per_node(swarm_lab, engines) == {name: 2 for name in swarm_lab.addresses}
    assert {e["host"] for e in engines} == set(swarm_lab.addresses.values())
    # Published in host mode: an engine answers on its own node's address only (no routing mesh).
    engine = engines[0]
    other = next(a for a in swarm_lab.addresses.values() if a != engine["host"])
    ports_on_other = {e["port"] for e in engines if e["host"] == other}
    if engine["port"] not in ports_on_other:
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://{other}:{engine['port']}/server/api", params={"method": "get_status"}, timeout=2)
    status = orch.client.get("/orchestrator/status").json()
    nodes = {n["hostname"]: n for n in status["nodes"]}
    assert set(nodes) == set(swarm_lab.addresses)
    assert all(n["state"] == "ready" and n["engines"] == 2 for n in nodes.values()), nodes


def test_restart_adopts_every_engine_service(swarm_lab: Lab, orch: Orchestrator) -> None:
    before = {e["container_id"]: (e["host"], e["port"]) for e in settled(swarm_lab, orch, 6)}
    orch.stop()
    assert len(services(swarm_lab, orch.label)) == 6  # ENGINES_ON_EXIT=keep leaves them running
    orch.start()
    engines = settled(swarm_lab, orch, 6)
    assert {e["container_id"]: (e["host"], e["port"]) for e in engines} == before
    assert "removed" not in orch.logs().split("adopting", 1)[-1]


def test_a_drained_node_empties(swarm_lab: Lab, orch: Orchestrator) -> None:
    settled(swarm_lab, orch, 6)
    node, addr = "swarm-node2", swarm_lab.addresses["swarm-node2"]
    ids = {e["container_id"] for e in orch.engines()}
    swarm_lab.docker("node", "update", "--availability", "drain", node)
    begin = time.monotonic()
    try:
        engines = settled(swarm_lab, orch, 6, avoid=addr)
        print(f"node 2 drained: its engines answered elsewhere after {time.monotonic() - begin:.1f} s")
        assert {e["container_id"] for e in engines} == ids  # the same services, moved
        assert per_node(swarm_lab, engines).get(node) is None
        drained = next(n for n in orch.client.get("/orchestrator/status").json()["nodes"] if n["hostname"] == node)
        assert drained["availability"] == "drain" and drained["engines"] == 0
    finally:
        swarm_lab.docker("node", "update", "--availability", "active", node)


def test_a_failed_node_s_engines_run_elsewhere_within_60_s(swarm_lab: Lab, orch: Orchestrator) -> None:
    engines = settled(swarm_lab, orch, 6)
    node, addr = "swarm-node3", swarm_lab.addresses["swarm-node3"]
    ids = {e["container_id"] for e in engines}
    moving = {e["container_id"] for e in engines if e["host"] == addr}
    assert moving
    swarm_lab.script("stop-node", "3")
    begin = time.monotonic()
    try:
        after = settled(swarm_lab, orch, 6, avoid=addr)  # 60 s at most
        print(f"node 3 stopped: its {len(moving)} engines answered elsewhere after {time.monotonic() - begin:.1f} s")
        assert {e["container_id"] for e in after} == ids  # no duplicate, no orphan
        assert all(e["host"] in swarm_lab.addresses.values() for e in after)
        down = next(n for n in orch.client.get("/orchestrator/status").json()["nodes"] if n["hostname"] == node)
        assert down["state"] == "down"
    finally:
        swarm_lab.script("start-node", "3")
        wait_until(lambda: "Down" not in swarm_lab.docker("node", "ls", "--format", "{{.Status}}"), timeout=60,
                   what="node 3 back")


def test_the_seed_step_3_loop_works_unchanged(swarm_lab: Lab, tmp_path: Path) -> None:
    from seedblocks import find

    seed_orch = Orchestrator(tmp_path, {"RUNTIME": "swarm", "DOCKER_HOST": swarm_lab.docker_host,
                                        "MAX_REPLICAS": "20", "MAX_ACTIVE_REPLICAS": "20"},
                             port=8000, api_key="your-api-key")
    try:
        seed_orch.start()
        loop = subprocess.run(["bash", "-c", find("bash", "for i in {1..5}").code], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)
        assert loop.returncode == 0, loop.stderr
        import json

        replies = [json.loads(line) for line in loop.stdout.splitlines() if line.strip()]
        assert len(replies) == 5 and all(r.get("container_id") for r in replies), replies
        engines = settled(swarm_lab, seed_orch, 5)
        assert {e["container_id"] for e in engines} == {r["container_id"] for r in replies}
        assert all(e["labels"].get("test") == "stress" for e in engines)
    finally:
        seed_orch.close()
        seed_orch.client.close()
        for sid in services(swarm_lab, seed_orch.label):
            swarm_lab.docker("service", "rm", sid)


def test_the_proxy_streams_through_an_engine_on_a_worker_node(swarm_lab: Lab, tmp_path: Path) -> None:
    workers = {name: addr for name, addr in swarm_lab.addresses.items() if name != "swarm-node1"}
    o = Orchestrator(tmp_path, {"RUNTIME": "swarm", "DOCKER_HOST": swarm_lab.docker_host,
                                "SWARM_CONSTRAINTS": "node.role!=manager", "AUTO_DELETE": "false"})
    try:
        o.start()
        content = "c0ffee00" * 5
        with httpx.stream("GET", f"http://127.0.0.1:{o.port}/ace/getstream", params={"id": content},
                          timeout=60) as resp:
            assert resp.status_code == 200
            got = b""
            for chunk in resp.iter_bytes():
                got += chunk
                if len(got) >= 188 * 200:
                    break
        assert got[0] == 0x47 and got[188] == 0x47  # MPEG-TS packets, relayed by aceorch's proxy
        [engine] = o.engines()
        assert engine["host"] in workers.values()
    finally:
        o.stop()
        o.client.close()
        for sid in services(swarm_lab, o.label):
            swarm_lab.docker("service", "rm", sid)
