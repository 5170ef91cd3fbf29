"""The proxy flow (api.md §5) against real engine containers: what acexy does, step by step."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from orchestrator_proc import Orchestrator

from support import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "streams"))
from aceorch_live import acexy_started_body, get_stream, sim_state  # noqa: E402

pytestmark = pytest.mark.docker

CONTENT = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"


def test_acexy_flow_on_docker_engines(orch: Callable[..., Orchestrator]) -> None:
    o = orch(AUTO_DELETE="true", ENGINE_GRACE_PERIOD_S="1", COLLECT_INTERVAL_S="1")
    engine = o.provision({"labels": {}, "env": {}}).json()
    cid, port = engine["container_id"], engine["host_http_port"]

    # acexy: getstream on the engine (localhost:<host_http_port>), then stream_started with its URLs
    session = get_stream(port, CONTENT)
    body = acexy_started_body("localhost", port, CONTENT, session)
    started = o.client.post("/events/stream_started", json=body, headers=o.auth)
    assert started.status_code == 200, started.text
    stream = started.json()
    assert stream["container_id"] == cid and stream["is_live"] is True
    assert [s["id"] for s in o.client.get(f"/streams?container_id={cid}&status=started").json()] == [stream["id"]]

    # the collector polls the engine's stat_url inside its container and stores snapshots
    stats_url = f"/streams/{quote(stream['id'], safe='')}/stats"
    snaps = wait_until(lambda: [s for s in o.client.get(stats_url).json() if (s["peers"] or 0) > 0], timeout=20,
                       what="stats with peers")
    assert snaps[-1]["status"] in ("prebuf", "dl")
    assert sim_state(port)["counters"]["requests"]["stat"] >= len(snaps)

    # stream_ended twice: the second changes nothing
    first = o.client.post("/events/stream_ended", json={"stream_id": stream["id"], "reason": "handler_exit"},
                          headers=o.auth).json()
    second = o.client.post("/events/stream_ended", json={"stream_id": stream["id"], "reason": "handler_exit"},
                           headers=o.auth).json()
    assert first["updated"] is True and second["updated"] is False
    assert second["stream"]["ended_at"] == first["stream"]["ended_at"]
    status = o.client.get("/orchestrator/status").json()
    assert status["streams"]["active"] == 0

    # AUTO_DELETE: the idle engine's container is removed after the grace period
    wait_until(lambda: cid not in o.containers(), timeout=20, what="the engine container removed after the grace")
    assert all(e["container_id"] != cid for e in o.engines())
