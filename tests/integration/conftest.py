"""Fixtures for the end-to-end tests: the real ``aceorch serve`` on the real Docker engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from orchestrator_proc import Orchestrator


@pytest.fixture
def orch(docker_engine: None, tmp_path: Path) -> Iterator[Callable[..., Orchestrator]]:
    """``orch(**env)`` starts an orchestrator (RUNTIME=docker) with those settings; all are closed afterwards."""
    made: list[Orchestrator] = []

    def factory(**env: str) -> Orchestrator:
        o = Orchestrator(tmp_path, {"RUNTIME": "docker", **env})
        made.append(o)
        return o.start()

    yield factory
    for o in made:
        o.close()
