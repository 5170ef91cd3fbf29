"""A start the runtime refuses for the request's own input: 422 ``provisioning_rejected``, counted by no breaker."""

from __future__ import annotations

from typing import Any

from aceorch.errors import RuntimeFailure, SpecRefused
from aceorch.runtime.fake import InMemoryRuntime

AUTH = {"Authorization": "Bearer test-key-123"}


def breakers(client: Any) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/health/status", headers=AUTH).json()["circuit_breakers"]
    return body


def test_a_refused_spec_is_422_rejected_input_and_leaves_the_breakers_closed(
    app_client: Any, fake_runtime: InMemoryRuntime,
) -> None:
    client = app_client(circuit_breaker_failure_threshold=3)
    fake_runtime.fail_next("create", SpecRefused("create acestream-1: invalid environment variable"), times=5)
    for _ in range(5):
        r = client.post("/provision/acestream", json={"env": {}}, headers=AUTH)
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert (detail["error"], detail["code"]) == ("provisioning_rejected", "rejected_input")
        assert "invalid environment variable" in detail["message"]
    for name, breaker in breakers(client).items():
        assert (breaker["state"], breaker["failure_count"]) == ("closed", 0), name
    assert client.post("/provision/acestream", json={}, headers=AUTH).status_code == 200
    assert len(client.get("/engines", headers=AUTH).json()) == 1


def test_an_engine_failure_still_counts(app_client: Any, fake_runtime: InMemoryRuntime) -> None:
    client = app_client(circuit_breaker_failure_threshold=3)
    fake_runtime.fail_next("create", RuntimeFailure("create acestream-1: OCI runtime exploded"), times=3)
    for _ in range(3):
        assert client.post("/provision/acestream", json={}, headers=AUTH).status_code == 500
    assert breakers(client)["general"]["state"] == "open"
    r = client.post("/provision/acestream", json={}, headers=AUTH)
    assert r.status_code == 503 and r.json()["detail"]["code"] == "circuit_breaker"


def test_a_conf_port_outside_its_range_is_refused_before_any_container(
    app_client: Any, fake_runtime: InMemoryRuntime,
) -> None:
    client = app_client(circuit_breaker_failure_threshold=3)
    for conf in ("--http-port=0", "--http-port=80", "--https-port=1"):
        r = client.post("/provision/acestream", json={"env": {"CONF": conf}}, headers=AUTH)
        # The request schema may refuse it first (a validation list); either way it is 422 and starts nothing.
        assert r.status_code == 422, (conf, r.text)
        detail = r.json()["detail"]
        if isinstance(detail, dict):
            assert (detail["error"], detail["code"]) == ("provisioning_rejected", "rejected_input")
    assert breakers(client)["general"]["failure_count"] == 0
    assert client.get("/engines", headers=AUTH).json() == []
