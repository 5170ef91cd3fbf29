"""Start-up preflight (a missing TARGET_IMAGE) and the service log's story, in-process on the in-memory runtime."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aceorch.api import create_app
from aceorch.cli.serve import JsonFormatter
from aceorch.config import Settings
from aceorch.errors import RuntimeFailure
from aceorch.runtime.base import ContainerSpec
from aceorch.runtime.fake import InMemoryRuntime
from aceorch.service.story import MANY_STREAMS, Story
from support import wait_until

API_KEY = "test-key-h8"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def client_on(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., TestClient]]:
    """``client_on(runtime, **settings)``: the app over that in-memory runtime, lifespan running."""
    clients: list[TestClient] = []

    def factory(runtime: InMemoryRuntime, **overrides: Any) -> TestClient:
        values: dict[str, Any] = {"api_key": API_KEY, "provision_wait_for": "running", "runtime": "docker"}
        values.update(overrides)
        client = TestClient(create_app(make_settings(**values), runtime=runtime), headers=AUTH)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for c in clients:
        c.__exit__(None, None, None)


def lines(caplog: pytest.LogCaptureFixture, logger: str, level: int | None = None) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and (level is None or r.levelno == level)]


def test_a_missing_target_image_is_one_warning_at_start_and_image_not_found_on_a_start(
    client_on: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = client_on(InMemoryRuntime(images={"other/image:1"}), target_image="example/engine:9")
    warnings = [m for m in lines(caplog, "aceorch.service.provisioning", logging.WARNING) if "TARGET_IMAGE" in m]
    assert len(warnings) == 1
    assert "example/engine:9 is not present locally" in warnings[0]
    assert "docker pull example/engine:9" in warnings[0]
    r = client.post("/provision/acestream", json={})
    assert r.status_code == 500
    assert r.json()["detail"]["error"] == "provisioning_failed"
    assert r.json()["detail"]["code"] == "image_not_found"
    failed = [m for m in lines(caplog, "aceorch.story", logging.WARNING) if "engine start failed" in m]
    assert failed and "image_not_found" in failed[-1]


def test_a_missing_simulator_image_says_how_to_build_it(
    client_on: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client_on(InMemoryRuntime(images=set()), target_image="aceorch/engine-sim:latest")
    warnings = [m for m in lines(caplog, "aceorch.service.provisioning", logging.WARNING) if "TARGET_IMAGE" in m]
    assert len(warnings) == 1 and "scripts/build-images.sh" in warnings[0]


def test_a_present_image_draws_no_warning(
    client_on: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client_on(InMemoryRuntime(images={"example/engine:9"}), target_image="example/engine:9")
    assert not [m for m in lines(caplog, "aceorch.service.provisioning") if "TARGET_IMAGE" in m]


def started_body(host: str, port: int, sid: str) -> dict[str, Any]:
    key, pbid = sid.split("|")
    return {
        "engine": {"host": host, "port": port},
        "stream": {"key_type": "content_id", "key": key},
        "session": {"playback_session_id": pbid, "stat_url": f"http://{host}:{port}/ace/stat/{key}/{pbid}",
                    "command_url": f"http://{host}:{port}/ace/cmd/{key}/{pbid}", "is_live": 1},
        "labels": {"stream_id": sid},
    }


def test_the_log_tells_starts_failures_breakers_and_streams_with_debug_mode_off(
    client_on: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    failing = {"on": True}

    async def hook(spec: ContainerSpec) -> None:
        if failing["on"]:
            raise RuntimeFailure("the daemon said no")

    client = client_on(InMemoryRuntime(create_hook=hook), circuit_breaker_failure_threshold=1,
                       circuit_breaker_recovery_timeout_s=1, debug_mode=False)
    assert client.post("/provision/acestream", json={}).status_code == 500
    story = lines(caplog, "aceorch.story")
    assert any(m.startswith("engine start failed (general_error/docker_error, api)") and "the daemon said no" in m
               for m in story)
    assert any(m.startswith("circuit breaker general opened after 1 failures") for m in story)

    failing["on"] = False
    wait_until(lambda: client.post("/provision/acestream", json={}).status_code == 200, timeout=10,
               what="a start once the breaker lets a trial through")
    story = lines(caplog, "aceorch.story")
    assert "circuit breaker general closed" in story
    started = [m for m in story if m.startswith("engine acestream-") and " started on port " in m]
    assert len(started) == 1 and started[0].endswith("(api)")

    engine = client.get("/engines").json()[0]
    sid = "c0ffee|pb1"
    assert client.post("/events/stream_started", json=started_body(engine["host"], engine["port"], sid)).status_code \
        == 200
    assert client.post("/events/stream_ended", json={"stream_id": sid, "reason": "client_left"}).status_code == 200
    infos = lines(caplog, "aceorch.story", logging.INFO)
    assert any(m.startswith(f"stream {sid} started on engine ") for m in infos)
    assert any(m.startswith(f"stream {sid} ended (client_left)") for m in infos)


def test_stream_lines_drop_to_debug_when_many_streams_are_live(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="aceorch.story")
    live = {"n": MANY_STREAMS + 1}
    story = Story(live_streams=lambda: live["n"])
    story.tell("streams", {"operation": "stream_started", "stream_id": "s1", "container_id": "abc"})
    live["n"] = 1
    story.tell("streams", {"operation": "stream_started", "stream_id": "s2", "container_id": "abc"})
    levels = {r.getMessage().split()[1]: r.levelno for r in caplog.records if r.name == "aceorch.story"}
    assert levels == {"s1": logging.DEBUG, "s2": logging.INFO}


def test_json_lines_carry_the_debug_record_fields_masked() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("aceorch.story")
    log.addHandler(handler)
    previous = log.level
    log.setLevel(logging.INFO)
    try:
        Story(live_streams=lambda: 0, secrets=("sekrit-key-value",)).tell("provisioning", {
            "operation": "start_acestream_success", "container_id": "c" * 64, "container_name": "acestream-3",
            "host_http_port": 19003, "duration_ms": 1234.5, "source": "autoscaler", "name": "clashes",
            "labels": {"db_password": "hunter2", "note": "has sekrit-key-value inside"},
        })
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)
    body = json.loads(out.getvalue())
    assert body["message"] == "engine acestream-3 started on port 19003 in 1.2 s (autoscaler)"
    assert body["level"] == "INFO" and body["logger"] == "aceorch.story"
    assert body["category"] == "provisioning" and body["operation"] == "start_acestream_success"
    assert body["container_name"] == "acestream-3" and body["host_http_port"] == 19003
    assert body["duration_ms"] == 1234.5 and body["name_"] == "clashes"
    assert body["labels"] == {"db_password": "***", "note": "has *** inside"}
