"""The pieces the Docker and Swarm backends share: the API version asked for, label filters, times, error texts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aceorch.runtime import _docker_api, docker, swarm_specs
from aceorch.runtime._docker_api import IMAGE_ERROR, PORT_ERROR, api_version, label_filters, parse_time


def test_the_api_version_gets_its_v_and_defaults_to_negotiation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_API_VERSION", raising=False)
    assert api_version(None) == "auto"
    assert api_version("1.41") == "v1.41" and api_version("v1.43") == "v1.43"
    monkeypatch.setenv("DOCKER_API_VERSION", "1.44")
    assert api_version(None) == "v1.44" and api_version("1.41") == "v1.41"


def test_label_filters_and_the_shared_parsers() -> None:
    assert label_filters({"a": "1", "b": "x=y"}) == {"label": ["a=1", "b=x=y"]}
    assert label_filters(None) == {} and label_filters({}) == {}
    assert parse_time("2024-05-01T10:20:30.123456789Z") == datetime(2024, 5, 1, 10, 20, 30, 123456, UTC)
    assert parse_time("0001-01-01T00:00:00Z") is None and parse_time("junk") is None
    assert PORT_ERROR.search("Bind for 0.0.0.0:19000 failed: port is already allocated")
    assert IMAGE_ERROR.search("pull access denied for nope") and not IMAGE_ERROR.search("no such container")
    # Both backends read times the same way, from the one shared function.
    assert docker.parse_docker_time is swarm_specs.parse_time is _docker_api.parse_time
