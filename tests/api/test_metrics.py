"""/metrics: Prometheus text that parses, with counters that match the events sent (docs/monitoring.md)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from aceorch.errors import RuntimeFailure
from aceorch.runtime.fake import InMemoryRuntime
from aceorch.service.metrics import Metrics

AUTH = {"Authorization": "Bearer test-key-123"}

#: Every family docs/monitoring.md names, with its type (counter families are named without ``_total`` by the parser;
#: labelled families without children yet still declare ``# TYPE``).
DOCUMENTED = {
    "orch_events_started": "counter", "orch_events_ended": "counter", "orch_collector_errors": "counter",
    "orch_streams_active": "gauge", "orch_provision": "counter", "orch_provision_blocked": "counter",
    "orch_provision_failures": "counter", "orch_provision_duration_seconds": "histogram", "orch_engines": "gauge",
    "orch_circuit_breaker_state": "gauge", "orch_vpn_connected": "gauge", "orch_stress_events": "counter",
    "orch_debug_entries_written": "counter", "orch_debug_entries_dropped": "counter",
    "orch_provision_slow_threshold_seconds": "gauge", "orch_engines_max": "gauge", "orch_vpn_enabled": "gauge",
    "orch_event_loop_lag_max_seconds": "gauge",
}


def samples(client: TestClient, path: str = "/metrics") -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    resp = client.get(path)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    assert resp.headers.get("x-request-id")
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = float(s.value)
    return out


def value(client: TestClient, metric: str, /, **labels: str) -> float:
    """The sample's value; 0 for a labelled counter child that was never incremented (absent)."""
    return samples(client).get((metric, frozenset(labels.items())), 0.0)


def started_body(host: str, port: int, sid: str) -> dict[str, Any]:
    key, pbid = sid.split("|")
    return {
        "engine": {"host": host, "port": port},
        "stream": {"key_type": "content_id", "key": key},
        "session": {"playback_session_id": pbid, "stat_url": f"http://{host}:{port}/ace/stat/{key}/{pbid}",
                    "command_url": f"http://{host}:{port}/ace/cmd/{key}/{pbid}", "is_live": 1},
        "labels": {"stream_id": sid},
    }


def test_metrics_parse_on_both_paths_and_name_every_documented_family(app_client: Any) -> None:
    client = app_client()
    families = {f.name: f.type for f in text_string_to_metric_families(client.get("/metrics").text)}
    assert {name: families.get(name) for name in DOCUMENTED} == DOCUMENTED
    assert samples(client, "/metrics/").keys() == samples(client).keys()
    assert client.get("/metrics", follow_redirects=False).status_code == 200
    assert value(client, "orch_circuit_breaker_state", name="general") == 0
    assert value(client, "orch_circuit_breaker_state", name="replacement") == 0
    assert value(client, "orch_vpn_connected") == 0
    assert value(client, "orch_engines", health="unknown") == 0


def test_stream_counters_match_events_and_active_never_goes_negative(app_client: Any) -> None:
    # no collections during the test: stale detection must not end streams behind the counters' back
    client = app_client(collect_interval_s=3600)
    eng = client.post("/provision/acestream", json={}, headers=AUTH).json()
    host, port = eng["host"], eng["host_http_port"]

    def start(sid: str) -> None:
        r = client.post("/events/stream_started", json=started_body(host, port, sid), headers=AUTH)
        assert r.status_code == 200 and r.json()["container_id"] == eng["container_id"], r.text

    def end(sid: str) -> bool:
        r = client.post("/events/stream_ended", json={"stream_id": sid, "reason": "handler_exit"}, headers=AUTH)
        assert r.status_code == 200, r.text
        return bool(r.json()["updated"])

    def counts() -> tuple[float, float, float]:
        m = samples(client)
        none: frozenset[tuple[str, str]] = frozenset()
        return (m[("orch_events_started_total", none)], m[("orch_events_ended_total", none)],
                m[("orch_streams_active", none)])

    assert counts() == (0, 0, 0)
    start("aa|p1")
    start("bb|p2")
    start("aa|p1")  # a second client on the same stream: not counted twice
    assert counts() == (2, 0, 2)

    assert end("aa|p1") is True
    assert end("aa|p1") is False  # duplicate end (two proxies): nothing counted
    assert end("zz|unknown") is False  # unknown id: nothing
    assert counts() == (2, 1, 1)

    assert end("bb|p2") is True
    assert end("bb|p2") is False
    assert end("bb|p2") is False
    assert counts() == (2, 2, 0)

    start("aa|p1")  # an ended id started again counts as a new start
    assert counts() == (3, 2, 1)
    assert client.get("/orchestrator/status").json()["streams"]["active"] == 1


def test_provision_blocked_failure_and_breaker_metrics(app_client: Any, fake_runtime: InMemoryRuntime) -> None:
    client = app_client(max_replicas=1, circuit_breaker_failure_threshold=1, circuit_breaker_recovery_timeout_s=100)

    ok = client.post("/provision/acestream", json={}, headers=AUTH)
    assert ok.status_code == 200
    assert value(client, "orch_provision_total", kind="acestream") == 1
    assert value(client, "orch_provision_duration_seconds_count", kind="acestream") == 1

    # max_capacity is blocked: counted as blocked, not as a provision
    for _ in range(2):
        assert client.post("/provision/acestream", json={}, headers=AUTH).json()["detail"]["code"] == "max_capacity"
    assert value(client, "orch_provision_blocked_total", code="max_capacity") == 2
    assert value(client, "orch_provision_total", kind="acestream") == 1

    # free the slot, then a failed start: a failure, and the breaker (threshold 1) opens
    assert client.delete(f"/containers/{ok.json()['container_id']}", headers=AUTH).status_code == 200
    fake_runtime.fail_next("create", RuntimeFailure("boom"))
    failed = client.post("/provision/acestream", json={}, headers=AUTH)
    assert failed.status_code == 500 and failed.json()["detail"]["code"] == "general_error"
    assert value(client, "orch_provision_failures_total", kind="acestream", code="general_error") == 1
    assert value(client, "orch_provision_duration_seconds_count", kind="acestream") == 1
    assert value(client, "orch_circuit_breaker_state", name="general") == 2
    assert value(client, "orch_circuit_breaker_state", name="replacement") == 0
    assert value(client, "orch_stress_events_total", event_type="circuit_breaker_opened", severity="critical") == 1

    blocked = client.post("/provision/acestream", json={}, headers=AUTH)
    assert blocked.status_code == 503 and blocked.json()["detail"]["code"] == "circuit_breaker"
    assert value(client, "orch_provision_blocked_total", code="circuit_breaker") == 1

    assert client.post("/health/circuit-breaker/reset?operation_type=general", headers=AUTH).status_code == 200
    assert value(client, "orch_circuit_breaker_state", name="general") == 0

    # the runtime stops answering: blocked with runtime_unavailable
    fake_runtime.available = False
    down = client.post("/provision/acestream", json={}, headers=AUTH)
    assert down.status_code == 503 and down.json()["detail"]["code"] == "runtime_unavailable"
    assert value(client, "orch_provision_blocked_total", code="runtime_unavailable") == 1
    fake_runtime.available = True

    # the totals by code are exactly what was sent; every refusal code is exported from the start (at 0)
    blocked_codes = {dict(labels)["code"]: v for (name, labels), v in samples(client).items()
                     if name == "orch_provision_blocked_total"}
    assert blocked_codes == {"max_capacity": 2, "circuit_breaker": 1, "runtime_unavailable": 1, "vpn_disconnected": 0}
    again = client.post("/provision/acestream", json={}, headers=AUTH)
    assert again.status_code == 200
    # admitted starts: two that succeeded and one that failed; blocked requests are not counted
    assert value(client, "orch_provision_total", kind="acestream") == 3
    assert value(client, "orch_provision_duration_seconds_count", kind="acestream") == 2


def test_engine_gauge_follows_the_fleet(app_client: Any) -> None:
    client = app_client()
    ids = [client.post("/provision/acestream", json={}, headers=AUTH).json()["container_id"] for _ in range(2)]
    total = sum(value(client, "orch_engines", health=h) for h in ("healthy", "unhealthy", "unknown"))
    assert total == 2
    client.delete(f"/containers/{ids[0]}", headers=AUTH)
    total = sum(value(client, "orch_engines", health=h) for h in ("healthy", "unhealthy", "unknown"))
    assert total == 1


def test_limits_and_thresholds_are_gauges_and_the_slow_threshold_is_a_bucket(app_client: Any) -> None:
    client = app_client(max_replicas=7, startup_timeout_s=30, debug_slow_provisioning_ratio=0.5)
    assert value(client, "orch_engines_max") == 7
    assert value(client, "orch_provision_slow_threshold_seconds") == 15
    assert value(client, "orch_vpn_enabled") == 0
    assert client.post("/provision/acestream", json={}, headers=AUTH).status_code == 200
    buckets = {dict(labels)["le"] for (name, labels), _ in samples(client).items()
               if name == "orch_provision_duration_seconds_bucket"}
    assert "15.0" in buckets and "+Inf" in buckets


def test_debug_counters_follow_the_debug_log_and_never_go_down() -> None:
    m = Metrics()

    def totals() -> tuple[float, float]:
        got = {s.name: s.value for f in text_string_to_metric_families(m.render().decode()) for s in f.samples}
        return got["orch_debug_entries_written_total"], got["orch_debug_entries_dropped_total"]

    m.debug_counts(5, 1)
    m.debug_counts(8, 1)
    assert totals() == (8, 1)
    m.debug_counts(2, 0)  # a new debug log started from zero: its records still count
    assert totals() == (10, 1)
