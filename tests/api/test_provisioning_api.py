from __future__ import annotations

from typing import Any

from aceorch.errors import RuntimeFailure
from aceorch.runtime.fake import InMemoryRuntime

AUTH = {"Authorization": "Bearer test-key-123"}
NO_AUTH = {"Authorization": ""}


def test_provision_answers_200_with_ports_and_lists_the_engine(app_client: Any, fake_runtime: InMemoryRuntime) -> None:
    client = app_client()
    resp = client.post("/provision/acestream", json={"labels": {"test": "stress"}, "env": {}}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["container_name"] == "acestream-1"
    assert 19000 <= body["host_http_port"] <= 19999 and 40000 <= body["container_http_port"] <= 44999
    assert len(resp.headers["x-request-id"]) >= 1
    engines = client.get("/engines").json()
    assert [e["container_id"] for e in engines] == [body["container_id"]]
    assert engines[0]["labels"]["test"] == "stress"
    assert engines[0]["first_seen"].endswith("Z") and len(engines[0]["first_seen"]) == 27
    info = fake_runtime._find(body["container_id"])  # noqa: SLF001
    assert info.spec.env["CONF"] == (
        f"--http-port={body['container_http_port']}\n--https-port={body['container_https_port']}\n--bind-all"
    )
    assert info.spec.labels["aceorch.request_id"] == resp.headers["x-request-id"]


def test_auth_401_403_and_the_keyless_reads(app_client: Any) -> None:
    client = app_client()
    r = client.post("/provision/acestream", json={}, headers=NO_AUTH)
    assert r.status_code == 401 and r.json() == {"detail": "missing bearer token"}
    assert r.headers["www-authenticate"] == "Bearer"
    r = client.post("/provision/acestream", json={}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 403 and r.json() == {"detail": "invalid token"}
    # auth runs before body validation, malformed JSON included
    r = client.post("/provision/acestream", content=b"{not json",
                    headers={"Content-Type": "application/json", **NO_AUTH})
    assert r.status_code == 401
    assert client.get("/engines", headers={"Authorization": "Bearer wrong"}).status_code == 403
    for path in ("/healthz", "/readyz", "/orchestrator/status"):
        assert client.get(path, headers=NO_AUTH).status_code == 200, path


def test_validation_errors_are_422_in_fastapi_shape(app_client: Any) -> None:
    client = app_client()
    r = client.post("/provision/acestream", json={"labels": {"a": None}}, headers=AUTH)
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], list) and r.json()["detail"][0]["loc"][:2] == ["body", "labels"]
    r = client.post("/provision/acestream", json={"labels": {"flag": True, "n": 3}}, headers=AUTH)
    assert r.status_code == 200
    assert client.get("/engines").json()[0]["labels"]["flag"] == "true"
    r = client.post("/provision/acestream", content=b"x" * (1024 * 1024 + 10), headers=AUTH)
    assert r.status_code == 413 and r.json() == {"detail": "request body too large"}


def test_max_capacity_is_503_with_retry_after_and_matches_status(app_client: Any) -> None:
    client = app_client(max_replicas=1)
    assert client.post("/provision/acestream", json={}, headers=AUTH).status_code == 200
    r = client.post("/provision/acestream", json={}, headers=AUTH)
    assert r.status_code == 503
    detail = r.json()["detail"]
    assert detail["error"] == "provisioning_blocked" and detail["code"] == "max_capacity"
    assert r.headers["retry-after"] == "30"
    status = client.get("/orchestrator/status").json()
    assert status["provisioning"]["can_provision"] is False
    assert status["provisioning"]["blocked_reason"] == "Maximum capacity reached"


def test_failed_start_rolls_back_and_opens_breaker(app_client: Any, fake_runtime: InMemoryRuntime) -> None:
    client = app_client(circuit_breaker_failure_threshold=2, circuit_breaker_recovery_timeout_s=100)
    fake_runtime.fail_next("create", RuntimeFailure("boom"), times=2)
    for _ in range(2):
        r = client.post("/provision/acestream", json={}, headers=AUTH)
        assert r.status_code == 500 and r.json()["detail"]["code"] == "general_error"
    r = client.post("/provision/acestream", json={}, headers=AUTH)
    assert r.status_code == 503 and r.json()["detail"]["code"] == "circuit_breaker"
    assert r.json()["detail"]["can_retry"] is False
    assert 90 <= int(r.headers["retry-after"]) <= 100
    assert client.get("/health/status").json()["circuit_breakers"]["general"]["state"] == "open"
    reset = client.post("/health/circuit-breaker/reset?operation_type=general", headers=AUTH)
    assert reset.json()["message"] == "Circuit breaker for general reset successfully"
    assert client.post("/health/circuit-breaker/reset?operation_type=x", headers=AUTH).status_code == 400
    assert client.post("/provision/acestream", json={}, headers=AUTH).status_code == 200


def test_delete_unknown_and_unmanaged_containers_404(app_client: Any, fake_runtime: InMemoryRuntime) -> None:
    from aceorch.runtime.base import ContainerSpec

    client = app_client()
    other = fake_runtime.add_container(ContainerSpec(name="not-ours", image="x"))
    assert client.delete(f"/containers/{other.id}", headers=AUTH).status_code == 404
    assert client.delete("/containers/nope", headers=AUTH).json() == {"detail": "container not found"}
    body = client.post("/provision/acestream", json={}, headers=AUTH).json()
    r = client.delete(f"/containers/{body['container_name']}", headers=AUTH)
    assert r.status_code == 200 and r.json() == {"deleted": body["container_name"],
                                                 "container_id": body["container_id"]}
    assert client.get("/engines").json() == []


def test_stream_events_are_idempotent(app_client: Any) -> None:
    client = app_client()
    eng = client.post("/provision/acestream", json={}, headers=AUTH).json()
    event = {"engine": {"host": "localhost", "port": eng["host_http_port"]},
             "stream": {"key_type": "content_id", "key": "abcd"},
             "session": {"playback_session_id": "pb1", "stat_url": "", "command_url": "", "is_live": 1},
             "labels": {"stream_id": "abcd|pb1"}}
    r = client.post("/events/stream_started", json=event, headers=AUTH)
    assert r.status_code == 200 and r.json()["container_id"] == eng["container_id"]
    assert r.json()["is_live"] is True
    client.post("/events/stream_started", json=event, headers=AUTH)
    assert len(client.get(f"/streams?container_id={eng['container_id']}&status=started").json()) == 1
    first = client.post("/events/stream_ended", json={"stream_id": "abcd|pb1", "reason": "handler_exit"},
                        headers=AUTH).json()
    second = client.post("/events/stream_ended", json={"stream_id": "abcd|pb1"}, headers=AUTH).json()
    assert first["updated"] is True and second["updated"] is False
    assert second["stream"]["end_reason"] == "handler_exit"
    assert client.post("/events/stream_ended", json={}, headers=AUTH).status_code == 422
    metrics = client.get("/metrics").text
    assert "orch_events_started_total 1.0" in metrics and "orch_streams_active 0.0" in metrics


def test_service_endpoints(app_client: Any) -> None:
    client = app_client()
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["runtime"] == "ok"
    assert client.get("/metrics").status_code == 200 and client.get("/metrics/").status_code == 200
    assert client.get("/nope").json() == {"detail": "Not Found"}
    assert client.get("/panel", follow_redirects=False).status_code == 308
    r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert client.get("/healthz", headers={"traceparent": tp}).headers["x-request-id"] == (
        "0af7651916cd43dd8448eb211c80319c"
    )
    assert client.get("/vpn/status").json()["status"] == "disabled"


def test_a_foreign_container_holding_the_next_name_is_skipped(app_client: Any, fake_runtime: InMemoryRuntime) -> None:
    from aceorch.runtime.base import ContainerSpec

    client = app_client()
    fake_runtime.add_container(ContainerSpec(name="acestream-1", image="someone-else"))
    r = client.post("/provision/acestream", json={}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["container_name"] == "acestream-2"


def test_a_provision_without_a_body_is_like_an_empty_object(app_client: Any) -> None:
    client = app_client()
    r = client.post("/provision/acestream", headers=AUTH)
    assert r.status_code == 200, r.text
    assert client.post("/provision/acestream", content=b"[1]", headers={**AUTH, "Content-Type": "application/json"}
                       ).status_code == 422


def test_streams_and_their_stats_survive_a_restart(app_client: Any) -> None:
    from aceorch.models import StatSnapshot, utcnow

    client = app_client()
    eng = client.post("/provision/acestream", json={}, headers=AUTH).json()
    event = {"engine": {"host": "127.0.0.1", "port": eng["host_http_port"]},
             "stream": {"key_type": "infohash", "key": "ih1"},
             "session": {"playback_session_id": "pb9", "stat_url": "http://127.0.0.1:1/ace/stat/ih1/pb9",
                         "command_url": "", "is_live": True}}
    sid = client.post("/events/stream_started", json=event, headers=AUTH).json()["id"]
    service = client.app.state.service
    snap = StatSnapshot(ts=utcnow(), peers=4, speed_down=257, speed_up=29, downloaded=1, uploaded=2, status="dl")
    client.portal.call(lambda: service.store.add_stat(sid, snap, keep=10))
    client.__exit__(None, None, None)

    again = app_client()
    assert [s["id"] for s in again.get("/streams").json()] == [sid]
    stats = again.get(f"/streams/{sid.replace('|', '%7C')}/stats").json()
    assert [(s["peers"], s["speed_down"], s["status"]) for s in stats] == [(4, 257, "dl")]


def test_scale_up_and_down_reports_what_it_did(app_client: Any) -> None:
    client = app_client(max_replicas=5)
    up = client.post("/scale/3", headers=AUTH).json()
    assert up["scaled_to"] == 3 and up["requested"] == 3 and len(up["started"]) == 3 and up["failed"] == 0
    over = client.post("/scale/50", headers=AUTH).json()
    assert over["scaled_to"] == 5 and len(over["started"]) == 2
    busy = client.get("/engines").json()[0]
    event = {"engine": {"host": "127.0.0.1", "port": busy["port"]}, "stream": {"key_type": "content_id", "key": "a"},
             "session": {"playback_session_id": "p", "stat_url": "", "command_url": ""}}
    client.post("/events/stream_started", json=event, headers=AUTH)
    down = client.post("/scale/0", headers=AUTH).json()
    assert down["scaled_to"] == 0 and len(down["stopped"]) == 4 and down["deferred"] == 1
    assert [e["container_id"] for e in client.get("/engines").json()] == [busy["container_id"]]
    assert client.post("/scale/10001", headers=AUTH).status_code == 422


def test_gc_stops_idle_engines_above_the_floors(app_client: Any) -> None:
    client = app_client(idle_ttl_s=1, min_replicas=1, min_free_replicas=0, autoscale_interval_s=3600)
    client.post("/scale/3", headers=AUTH)
    service = client.app.state.service
    from datetime import timedelta

    for engine in service.fleet.engines():
        engine.first_seen -= timedelta(seconds=5)
    gc = client.post("/gc", headers=AUTH).json()
    assert gc["status"] == "ok" and len(gc["stopped"]) == 2 and gc["pruned_streams"] == 0
    assert len(client.get("/engines").json()) == 1


def test_generic_containers_are_not_engines(app_client: Any, fake_runtime: InMemoryRuntime) -> None:
    client = app_client(allowed_images="busybox")
    r = client.post("/provision", json={"image": "busybox:latest", "ports": {"8080/tcp": 19080},
                                        "labels": {"role": "x"}, "name_prefix": "svc"}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["container_name"] == "svc-1"
    assert client.get("/engines").json() == []
    listed = client.get("/by-label?key=role&value=x", headers=AUTH).json()
    assert [c["name"] for c in listed] == ["svc-1"] and listed[0]["labels"]["aceorch.kind"] == "generic"
    assert client.get("/by-label?key=role", headers=AUTH).status_code == 422
    clash = client.post("/provision", json={"ports": {"80/tcp": 19080}}, headers=AUTH)
    assert clash.status_code == 409 and clash.json()["detail"]["code"] == "port_conflict"
    assert client.delete(f"/containers/{r.json()['container_id']}", headers=AUTH).status_code == 200
    assert client.post("/provision", json={"ports": {"80/tcp": 19080}}, headers=AUTH).status_code == 200
