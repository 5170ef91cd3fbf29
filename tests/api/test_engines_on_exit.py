"""ENGINES_ON_EXIT on the in-memory runtime: keep leaves the engines and says how many; stop removes them all."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aceorch.api import create_app
from aceorch.config import Settings
from aceorch.runtime.base import ContainerSpec
from aceorch.runtime.fake import InMemoryRuntime

API_KEY = "test-key-h8"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def run_and_stop(make_settings: Callable[..., Settings], runtime: InMemoryRuntime, n: int, **overrides: Any) -> None:
    settings = make_settings(api_key=API_KEY, provision_wait_for="running", runtime="docker", **overrides)
    with TestClient(create_app(settings, runtime=runtime), headers=AUTH) as client:
        for _ in range(n):
            assert client.post("/provision/acestream", json={}).status_code == 200


def running(runtime: InMemoryRuntime) -> list[str]:
    return [c.spec.name for c in runtime.containers.values() if c.status == "running"]


def test_keep_leaves_the_engines_and_logs_one_line(make_settings: Callable[..., Settings],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aceorch.service.core")
    runtime = InMemoryRuntime()
    run_and_stop(make_settings, runtime, 2)
    assert sorted(running(runtime)) == ["acestream-1", "acestream-2"]
    said = [r.getMessage() for r in caplog.records if "left running" in r.getMessage()]
    assert said == ["2 engines left running for the next start (ENGINES_ON_EXIT=stop removes them)"]


def test_stop_removes_every_engine_and_leaves_generic_containers(make_settings: Callable[..., Settings],
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aceorch.service.core")
    runtime = InMemoryRuntime()
    run_and_stop(make_settings, runtime, 3, engines_on_exit="stop")
    assert running(runtime) == []
    assert any(r.getMessage() == "ENGINES_ON_EXIT=stop: 3 engines removed" for r in caplog.records)
    assert not [r for r in caplog.records if "left running" in r.getMessage()]


def test_stop_also_removes_a_managed_engine_started_behind_its_back(make_settings: Callable[..., Settings]) -> None:
    runtime = InMemoryRuntime()
    settings = make_settings(api_key=API_KEY, provision_wait_for="running", runtime="docker", engines_on_exit="stop")
    key, value = settings.label_pair
    with TestClient(create_app(settings, runtime=runtime), headers=AUTH) as client:
        assert client.portal is not None
        client.portal.call(runtime.create, ContainerSpec(name="acestream-77", image="x", env={}, labels={
            key: value, "aceorch.kind": "engine"}, ports={}))
        client.portal.call(runtime.create, ContainerSpec(name="other", image="x", env={}, labels={"unrelated": "1"},
                                                         ports={}))
    assert running(runtime) == ["other"]
