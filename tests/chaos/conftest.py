"""Chaos drills: the real ``aceorch serve`` process under faults (dockerd restart, fuzzing, bad keys, a broken
or full DEBUG_LOG_DIR, SIGTERM and kill -9 under load).

Every test here is marked ``chaos`` (``make chaos`` runs ``pytest -m chaos``) and all of them are quick enough
(about a minute together) to run in the default ``pytest``/``make test`` too. Under ``-m chaos`` the schemathesis
drill (R4) runs 200 random cases per operation instead of 20 derandomized ones; ``CHAOS_EXAMPLES`` sets it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from chaos_helpers import host_port_range
from orchestrator_proc import Orchestrator, docker_rm_label


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: fault drills against a real aceorch process (make chaos)")


@pytest.fixture
def orch_factory(tmp_path: Path) -> Iterator[Callable[..., Orchestrator]]:
    """``orch_factory(runtime="process", api_key=..., **env)`` starts ``aceorch serve`` in its own folder.

    Every process is stopped afterwards; under Docker, every container carrying its label is removed.
    """
    made: list[tuple[Orchestrator, str]] = []

    def factory(runtime: str = "process", *, api_key: str = "k-chaos", wait_ready: bool = True,
                **env: str) -> Orchestrator:
        folder = tmp_path / f"run{len(made)}"
        folder.mkdir()
        base = {"RUNTIME": runtime, "PORT_RANGE_HOST": host_port_range()}
        o = Orchestrator(folder, {**base, **env}, api_key=api_key)
        made.append((o, runtime))
        return o.start(wait_ready=wait_ready)

    yield factory
    for o, runtime in made:
        try:
            o.stop()
        finally:
            o.client.close()
            if runtime == "docker":
                docker_rm_label(o.label)
