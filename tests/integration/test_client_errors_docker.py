"""A client's bad input is the client's error: 422, no breaker counts it, provisioning stays open (real Docker)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aceorch.errors import SpecRefused
from aceorch.runtime.base import ContainerSpec
from aceorch.runtime.docker import DockerRuntime
from docker_fixtures import TEST_LABELS

pytestmark = pytest.mark.docker

#: Inputs that pass for a string but that Docker (or the engine) refuses: a NUL in an env value (runc refuses it
#: when it starts the container), and CONF ports outside the ranges aceorch gives engines.
BAD_INPUTS: list[dict[str, Any]] = [
    {"env": {"SIM_NOTE": "a\u0000b"}},
    {"env": {"SIM_NOTE": "\u0000"}},
    {"env": {"CONF": "--http-port=0"}},
    {"env": {"CONF": "--http-port=99999"}},
    {"env": {"CONF": "--https-port=1"}},
]


def provisioning_records(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted((tmp_path / "debug_logs").glob("*_provisioning.jsonl"))
            for line in f.read_text().splitlines()]


def test_five_refused_inputs_leave_the_breaker_closed_and_provisioning_open(orch: Any, tmp_path: Path) -> None:
    o = orch(CIRCUIT_BREAKER_FAILURE_THRESHOLD="3", CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S="300", STARTUP_TIMEOUT_S="10",
             DEBUG_MODE="true")
    rejected = 0
    for body in BAD_INPUTS:
        r = o.provision(body)
        assert r.status_code == 422, (body, r.status_code, r.text)
        detail = r.json()["detail"]
        if isinstance(detail, dict):  # refused by the runtime or the provisioner, not by the request schema
            assert (detail["error"], detail["code"]) == ("provisioning_rejected", "rejected_input"), detail
            rejected += 1
    health = o.client.get("/health/status", headers=o.auth).json()
    for name, breaker in health["circuit_breakers"].items():
        assert (breaker["state"], breaker["failure_count"]) == ("closed", 0), (name, breaker)
    status = o.client.get("/orchestrator/status", headers=o.auth).json()
    assert status["provisioning"]["can_provision"] is True, status["provisioning"]
    assert o.containers() == [], "a refused start left a container behind"
    failed = [r for r in provisioning_records(tmp_path) if r.get("operation") == "start_acestream_failed"]
    assert len([r for r in failed if r.get("reason") == "rejected_input"]) == rejected
    assert all(r.get("reason") == "rejected_input" for r in failed), failed
    # The next honest start goes through.
    ok = o.provision({})
    assert ok.status_code == 200, ok.text
    assert len(o.containers(running_only=True)) == 1


@pytest.mark.parametrize(
    ("env", "ports"),
    [
        ({"SIM_NOTE": "a\u0000b"}, {}),  # Docker accepts the create; runc refuses the start (Docker says 500)
        ({}, {"99999/tcp": 19999}),  # Docker refuses the create itself (400)
    ],
)
async def test_docker_refusing_a_containers_own_settings_is_spec_refused_and_leaves_nothing(
    docker_runtime: DockerRuntime, unique_name: Callable[[str], str], engine_image: str,
    env: dict[str, str], ports: dict[str, int | None],
) -> None:
    spec = ContainerSpec(name=unique_name("refused"), image=engine_image, env=env, labels=dict(TEST_LABELS),
                         ports=ports)
    with pytest.raises(SpecRefused):
        await docker_runtime.create(spec)
    assert [c.name for c in await docker_runtime.list(TEST_LABELS) if c.name == spec.name] == []
