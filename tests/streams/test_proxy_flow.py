"""The proxy flow of api.md §5 end to end: a real aceorch server over the process runtime, real simulator engines,
and the requests acexy makes (getstream on the engine, then stream_started / stream_ended on aceorch)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from aceorch_live import AUTH, NO_AUTH, LiveServer, port_refuses, sim_state
from prometheus_client.parser import text_string_to_metric_families

from support import wait_until

CONTENT_A = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
CONTENT_B = "0f1e2d3c4b5a69788796a5b4c3d2e1f001234567"


def stats_path(stream_id: str) -> str:
    return f"/streams/{quote(stream_id, safe='')}/stats"


def metric(live: LiveServer, name: str, **labels: str) -> float:
    text = live.client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"metric {name}{labels} not found")


def test_stream_started_collects_stats_and_stream_ended_is_idempotent(live: Callable[..., LiveServer]) -> None:
    srv = live()
    eng = srv.provision()
    port = eng["host_http_port"]
    session, stream = srv.started(port, CONTENT_A)

    pbid = session["stat_url"].rsplit("/", 1)[-1]
    assert stream["id"] == f"{CONTENT_A}|{pbid}"
    # acexy reports "localhost": it is resolved to the engine, not recorded as a phantom "host:port"
    assert stream["container_id"] == eng["container_id"]
    assert stream["status"] == "started" and stream["is_live"] is True and stream["ended_at"] is None
    assert stream["stat_url"] == session["stat_url"]
    detail = srv.get(f"/engines/{eng['container_id']}")
    assert detail["engine"]["streams"] == [stream["id"]]
    assert [s["id"] for s in detail["streams"]] == [stream["id"]]

    # the collector (COLLECT_INTERVAL_S=1) fetches the engine's stat_url; the sim reaches prebuf/dl with peers
    snaps = wait_until(
        lambda: [s for s in srv.get(stats_path(stream["id"])) if (s["peers"] or 0) > 0 and (s["speed_down"] or 0) > 0],
        "stats with peers and speed", timeout=15.0,
    )
    assert snaps[-1]["status"] in ("prebuf", "dl")
    every = srv.get(stats_path(stream["id"]))
    assert [s["ts"] for s in every] == sorted(s["ts"] for s in every)
    assert all(s["ts"].endswith("Z") and len(s["ts"]) == 27 for s in every)
    # a raw "|" in the path works too, and since= filters
    assert srv.get(f"/streams/{stream['id']}/stats")[: len(every)] == every
    assert srv.get(stats_path(stream["id"]), params={"since": every[-1]["ts"]})[0]["ts"] == every[-1]["ts"]

    first = srv.ended(stream["id"])
    assert first["updated"] is True
    assert first["stream"]["status"] == "ended" and first["stream"]["end_reason"] == "handler_exit"
    ended_at = first["stream"]["ended_at"]
    assert ended_at is not None

    second = srv.ended(stream["id"], reason="panic")
    assert second["updated"] is False
    assert second["stream"]["ended_at"] == ended_at and second["stream"]["end_reason"] == "handler_exit"

    status = srv.get("/orchestrator/status")
    assert status["streams"] == {"active": 0, "total": 1}
    assert srv.get(f"/engines/{eng['container_id']}")["engine"]["streams"] == []
    assert metric(srv, "orch_events_started_total") == 1
    assert metric(srv, "orch_events_ended_total") == 1
    assert metric(srv, "orch_streams_active") == 0
    assert srv.get("/streams", params={"status": "started"}) == []


def test_delete_stream_stops_the_session_on_the_engine(live: Callable[..., LiveServer]) -> None:
    srv = live()
    eng = srv.provision()
    port = eng["host_http_port"]
    session, stream = srv.started(port, CONTENT_B)
    token = session["stat_url"].rsplit("/", 1)[-1]
    assert [s["token"] for s in sim_state(port)["sessions"]] == [token]
    wait_until(lambda: srv.get(stats_path(stream["id"])), "a first stat snapshot")

    resp = srv.client.delete(f"/streams/{quote(stream['id'], safe='')}", headers=AUTH)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["stopped"] is True
    assert body["stream"]["status"] == "ended" and body["stream"]["end_reason"] == "stopped"

    state = sim_state(port)
    assert state["sessions"] == []
    assert state["counters"]["sessions_stopped"] == 1
    gone = httpx.get(session["stat_url"], timeout=5.0).json()
    assert gone == {"response": None, "error": "unknown playback session id"}

    # deleting it again stops nothing; an unknown stream is 404; without the key it is 401
    again = srv.client.delete(f"/streams/{quote(stream['id'], safe='')}", headers=AUTH)
    assert again.status_code == 200 and again.json()["stopped"] is False
    assert srv.client.delete("/streams/nope%7Cnope", headers=AUTH).status_code == 404
    assert srv.client.delete(f"/streams/{quote(stream['id'], safe='')}", headers=NO_AUTH).status_code == 401


def test_unknown_session_and_empty_stat_url_end_as_stale(live: Callable[..., LiveServer]) -> None:
    srv = live()
    eng = srv.provision()
    port = eng["host_http_port"]
    session, stream = srv.started(port, CONTENT_A)
    wait_until(lambda: srv.get(stats_path(stream["id"])), "a first stat snapshot")
    collected = len(srv.get(stats_path(stream["id"])))

    # the engine forgets the session (stopped behind aceorch's back): stat answers "unknown playback session id"
    stop = httpx.get(session["command_url"], params={"method": "stop"}, timeout=5.0).json()
    assert stop == {"response": "ok", "error": None}
    errors_before = metric(srv, "orch_collector_errors_total")

    # acexy's fetch-failure report: empty URLs, stream id <key>|fetch_failed; ends as stale at the first collection
    failed = srv.client.post("/events/stream_started", headers=AUTH, json={
        "engine": {"host": "localhost", "port": port},
        "stream": {"key_type": "content_id", "key": CONTENT_B},
        "session": {"playback_session_id": "fetch_failed", "stat_url": "", "command_url": "", "is_live": 1},
        "labels": {"stream_id": f"{CONTENT_B}|fetch_failed"},
    })
    assert failed.status_code == 200, failed.text
    assert failed.json()["status"] == "started"

    wait_until(lambda: srv.stream(f"{CONTENT_B}|fetch_failed")["status"] == "ended", "the fetch_failed stream to end",
               timeout=5.0)
    assert srv.stream(f"{CONTENT_B}|fetch_failed")["end_reason"] == "stale"

    ended = wait_until(lambda: (s := srv.stream(stream["id"]))["status"] == "ended" and s, "the stale stream to end",
                       timeout=10.0)
    assert ended["end_reason"] == "stale"
    # it took three failed collections, and no snapshot was added for them
    assert metric(srv, "orch_collector_errors_total") - errors_before >= 3
    assert len(srv.get(stats_path(stream["id"]))) <= collected + 1
    assert srv.get(f"/engines/{eng['container_id']}")["engine"]["streams"] == []
    assert metric(srv, "orch_streams_active") == 0


def test_auto_delete_removes_the_engine_after_the_grace_period(live: Callable[..., LiveServer]) -> None:
    srv = live(auto_delete=True, engine_grace_period_s=1)
    eng = srv.provision()
    port = eng["host_http_port"]
    _, stream = srv.started(port, CONTENT_A)

    assert srv.ended(stream["id"])["updated"] is True
    ended = time.monotonic()
    assert eng["container_id"] in srv.engine_ids(), "removed before the grace period"

    wait_until(lambda: eng["container_id"] not in srv.engine_ids(), "the engine to be auto-deleted", timeout=10.0)
    assert time.monotonic() - ended >= 0.9
    wait_until(lambda: port_refuses(port), "the engine process to stop listening", timeout=10.0)
    assert srv.get("/orchestrator/status")["engines"]["total"] == 0
    assert srv.stream(stream["id"])["end_reason"] == "handler_exit"


def test_a_new_stream_cancels_the_grace_timer(live: Callable[..., LiveServer]) -> None:
    srv = live(auto_delete=True, engine_grace_period_s=1)
    eng = srv.provision()
    port = eng["host_http_port"]
    _, first = srv.started(port, CONTENT_A)
    first_ended = datetime.fromisoformat(srv.ended(first["id"])["stream"]["ended_at"])
    _, second = srv.started(port, CONTENT_B)
    assert second["container_id"] == eng["container_id"]
    # The busy engine outlives its old grace deadline (ENGINE_GRACE_PERIOD_S=1 after the first stream ended): the
    # collector (COLLECT_INTERVAL_S=1) has stored two snapshots of the second stream after it, so it ran since.
    old_deadline = first_ended + timedelta(seconds=1)

    def collected_after_deadline() -> list[dict[str, Any]]:
        return [s for s in srv.get(stats_path(second["id"])) if datetime.fromisoformat(s["ts"]) > old_deadline]

    wait_until(lambda: len(collected_after_deadline()) >= 2, "two stat collections after the old grace deadline",
               timeout=10.0)
    assert eng["container_id"] in srv.engine_ids()
    assert not port_refuses(port)
