"""The pool never loses a live engine and heals itself when full, end to end: real aceorch processes, real Docker.

- Engines started on the default bridge survive a second orchestrator that runs on another network and cannot
  reach them: still running, listed as unreachable, counted in the status, one WARNING each.
- At MAX_REPLICAS a hung engine is stopped first and replaced within grace + 2 probe intervals + one start.
- A hung engine with a stream is replaced after HEALTH_UNHEALTHY_STREAM_GRACE_S; its stream ends as
  ``engine_unhealthy``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from orchestrator_proc import Orchestrator

from aceorch.models import parse_time
from support import wait_until

pytestmark = pytest.mark.docker

DOCKER_SOCKET = "/var/run/docker.sock"


def docker_api() -> httpx.Client:
    """The Docker engine API over its socket."""
    return httpx.Client(transport=httpx.HTTPTransport(uds=DOCKER_SOCKET), base_url="http://docker", timeout=60)


@pytest.fixture
def other_network(docker_engine: None) -> Iterator[str]:
    """A fresh Docker network (made with the Docker API), removed afterwards."""
    name = f"aceorch-test-{uuid.uuid4().hex[:8]}"
    with docker_api() as api:
        created = api.post("/networks/create", json={"Name": name, "Labels": {"aceorch.test": "1"}})
        assert created.status_code == 201, created.text
        yield name
        api.delete(f"/networks/{created.json()['Id']}")


def running(container_id: str) -> bool:
    with docker_api() as api:
        r = api.get(f"/containers/{container_id}/json")
        return r.status_code == 200 and bool(r.json()["State"]["Running"])


def sim_state(engine: dict[str, Any], **body: Any) -> None:
    """Change an engine simulator's fault modes through its control API (``/__sim/state``)."""
    r = httpx.post(f"http://127.0.0.1:{engine['port']}/__sim/state", json=body, timeout=5)
    assert r.status_code == 200, r.text


def engines(o: Orchestrator) -> list[dict[str, Any]]:
    r = o.client.get("/engines", headers=o.auth)
    r.raise_for_status()
    out: list[dict[str, Any]] = r.json()
    return out


def healthy(o: Orchestrator) -> list[dict[str, Any]]:
    return [e for e in engines(o) if e["health_status"] == "healthy"]


def debug_records(cwd: Path, category: str) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted((cwd / "debug_logs").glob(f"*_{category}.jsonl"))
            for line in f.read_text().splitlines()]


@pytest.fixture
def orch_in(docker_engine: None, tmp_path: Path) -> Iterator[Callable[..., Orchestrator]]:
    """``orch_in(name, **env)``: an orchestrator (RUNTIME=docker) in its own folder; all closed afterwards."""
    made: list[Orchestrator] = []

    def factory(name: str, *, start: bool = True, **env: str) -> Orchestrator:
        cwd = tmp_path / name
        cwd.mkdir()
        o = Orchestrator(cwd, {"RUNTIME": "docker", **env})
        made.append(o)
        return o.start() if start else o

    yield factory
    for o in made:
        o.close()


def test_engines_survive_an_orchestrator_on_another_network(
    orch_in: Callable[..., Orchestrator], other_network: str
) -> None:
    first = orch_in("first", MIN_REPLICAS="2", MAX_REPLICAS="3", AUTOSCALE_INTERVAL_S="1")
    pool = wait_until(lambda: len(healthy(first)) == 2 and healthy(first), timeout=60, what="two healthy engines")
    ids = sorted(e["container_id"] for e in pool)
    first.stop()
    assert all(running(cid) for cid in ids), "engines are left running for the next start"
    # The second orchestrator runs "in a container" on another network: it reaches engines by their container
    # names, which do not resolve from there.
    second = orch_in("second", start=False, DOCKER_NETWORK=other_network, ACEORCH_IN_CONTAINER="1",
                     CONTAINER_LABEL=first.label, STARTUP_TIMEOUT_S="3", HEALTH_CHECK_INTERVAL_S="1",
                     MONITOR_INTERVAL_S="1", MIN_REPLICAS="0", DEBUG_MODE="true")
    second.label = first.label
    second.start()
    listed = wait_until(lambda: len(engines(second)) == 2 and engines(second), timeout=30,
                        what="both engines adopted")
    assert sorted(e["container_id"] for e in listed) == ids
    for e in listed:
        assert e["health_status"] == "unreachable"
        assert e["unreachable_address"] == f"http://{e['container_name']}:{e['port']}"
        assert e["unreachable_reason"].startswith("no answer within STARTUP_TIMEOUT_S (3 s)")
    # Several probe rounds and reconciles later they are still there, still running, never replaced.
    wait_until(lambda: all(e["last_health_check"] for e in engines(second)), timeout=20, what="probed engines")
    wait_until(lambda: len([r for r in debug_records(second.cwd, "health")
                            if r.get("operation") == "health_monitor_cycle"]) >= 3, timeout=20,
               what="three probe rounds")
    assert all(running(cid) for cid in ids)
    assert sorted(e["container_id"] for e in engines(second)) == ids
    assert {e["health_status"] for e in engines(second)} == {"unreachable"}
    status = second.client.get("/orchestrator/status").json()
    assert status["engines"]["unreachable"] == 2 and status["status"] == "degraded"
    assert second.client.get("/health/status").json()["unreachable_engines"] == 2
    adopt = [r for r in debug_records(second.cwd, "provisioning") if r.get("operation") == "adopt_unreachable"]
    assert sorted(r["container_id"] for r in adopt) == ids
    assert not [r for r in debug_records(second.cwd, "provisioning") if r.get("operation") == "reap_container"]
    warnings = [line for line in second.logs().splitlines() if "does not answer at" in line]
    assert len(warnings) == 2, second.logs()
    for line in warnings:
        assert "WARNING" in line and "DOCKER_NETWORK" in line and "ENGINE_ADVERTISE_HOST" in line
    second.stop()
    assert all(running(cid) for cid in ids)


def test_at_max_replicas_a_hung_engine_is_stopped_and_replaced(orch_in: Callable[..., Orchestrator]) -> None:
    interval, grace = 2, 2
    o = orch_in("full", MIN_REPLICAS="3", MAX_REPLICAS="3", AUTOSCALE_INTERVAL_S="600",
                HEALTH_CHECK_INTERVAL_S=str(interval), HEALTH_FAILURE_THRESHOLD="1",
                HEALTH_UNHEALTHY_GRACE_PERIOD_S=str(grace), HEALTH_REPLACEMENT_COOLDOWN_S="0", DEBUG_MODE="true")
    pool = wait_until(lambda: len(healthy(o)) == 3 and healthy(o), timeout=60, what="three healthy engines")
    victim = pool[1]
    begin, hung_at = time.monotonic(), time.time()
    sim_state(victim, engine_mode="hang")

    def healed() -> list[dict[str, Any]] | None:
        now = healthy(o)
        ids = [e["container_id"] for e in now]
        return now if len(now) == 3 and victim["container_id"] not in ids else None

    after = wait_until(healed, timeout=60, interval=0.1, what="the pool back to three healthy engines")
    took = time.monotonic() - begin
    assert victim["container_id"] not in o.containers()
    assert len(after) == 3 and len(o.containers(running_only=True)) == 3
    starts = [r for r in debug_records(o.cwd, "provisioning")
              if r.get("operation") == "start_acestream_success" and r.get("source") == "replacement"]
    assert len(starts) == 1, "the prober replaced it (the autoscaler sleeps)"
    one_start = starts[0]["duration_ms"] / 1000
    bound = grace + 2 * interval + one_start
    health_records = debug_records(o.cwd, "health")
    decision = [r for r in health_records if r.get("operation") == "replacement_decision"]
    assert [(r["action"], r["container_id"]) for r in decision] == [("stop_then_start", victim["container_id"])]
    [result] = [r for r in health_records if r.get("operation") == "replacement_result"]
    assert (result["success"], result["stopped_first"]) == (True, True)
    replaced_after = parse_time(result["timestamp"]).timestamp() - hung_at
    print(f"hang -> stopped and replaced: {replaced_after:.1f} s; bound grace + 2 intervals + one start = "
          f"{grace} + {2 * interval} + {one_start:.1f} = {bound:.1f} s; pool healthy again after {took:.1f} s")
    assert replaced_after <= bound, f"replaced after {replaced_after:.1f} s > {bound:.1f} s"
    stops = [r for r in debug_records(o.cwd, "provisioning") if r.get("operation") == "stop_engine_success"]
    assert [(r["container_id"], r["reason"]) for r in stops] == [(victim["container_id"], "unhealthy_replacement")]
    [begun] = [r for r in debug_records(o.cwd, "provisioning")
               if r.get("operation") == "start_acestream_begin" and r.get("source") == "replacement"]
    assert parse_time(stops[0]["timestamp"]) <= parse_time(begun["timestamp"]), "stopped before the new start"
    assert "Maximum number of engines" not in o.logs()
    assert f"replaced unhealthy engine {victim['container_name']}" in o.logs()


def test_a_hung_engine_with_a_stream_is_replaced_after_the_stream_grace(
    orch_in: Callable[..., Orchestrator],
) -> None:
    stream_grace = 6
    o = orch_in("streams", MIN_REPLICAS="1", MAX_REPLICAS="2", AUTOSCALE_INTERVAL_S="600",
                HEALTH_CHECK_INTERVAL_S="1", HEALTH_FAILURE_THRESHOLD="1", HEALTH_UNHEALTHY_GRACE_PERIOD_S="1",
                HEALTH_UNHEALTHY_STREAM_GRACE_S=str(stream_grace), HEALTH_REPLACEMENT_COOLDOWN_S="0",
                COLLECT_INTERVAL_S="600", DEBUG_MODE="true")
    [engine] = wait_until(lambda: len(healthy(o)) == 1 and healthy(o), timeout=60, what="one healthy engine")
    event = {"engine": {"host": "127.0.0.1", "port": engine["port"]},
             "stream": {"key_type": "content_id", "key": "k1"},
             "session": {"playback_session_id": "p1", "stat_url": f"http://127.0.0.1:{engine['port']}/ace/stat/x",
                         "command_url": "", "is_live": 1}}
    started = o.client.post("/events/stream_started", json=event, headers=o.auth)
    assert started.status_code == 200, started.text
    stream_id = started.json()["id"]
    begin = time.monotonic()
    sim_state(engine, engine_mode="hang")

    def stream() -> dict[str, Any]:
        [s] = [s for s in o.client.get("/streams", headers=o.auth).json() if s["id"] == stream_id]
        return s

    # A replacement starts beside it at once (below capacity); the hung engine stays while its stream plays.
    wait_until(lambda: len(engines(o)) == 2, timeout=30, what="a replacement beside the hung engine")
    assert stream()["status"] == "started"
    ended = wait_until(lambda: stream()["status"] == "ended" and stream(), timeout=60, interval=0.1,
                       what="the stream to end")
    took = time.monotonic() - begin
    assert ended["end_reason"] == "engine_unhealthy"
    assert took >= stream_grace, f"ended after {took:.1f} s, before the stream grace"
    wait_until(lambda: engine["container_id"] not in o.containers(), timeout=30, what="the hung engine removed")
    assert [e["container_id"] for e in engines(o)] != [engine["container_id"]]
    print(f"hang -> stream ended as engine_unhealthy after {took:.1f} s (stream grace {stream_grace} s)")
