"""Fixtures for the simulator tests: each simulator runs as a real subprocess on a free 127.0.0.1 port."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from simtools import SimProcess, free_port


@pytest.fixture
def start_engine() -> Iterator[Callable[..., SimProcess]]:
    """Start an engine simulator: ``start_engine(env={...}, args=[...], ready=True)``."""
    started: list[SimProcess] = []

    def _start(env: dict[str, str] | None = None, args: list[str] | None = None, ready: bool = True) -> SimProcess:
        port = free_port()
        merged = {"HTTP_PORT": str(port), "SIM_HOST": "127.0.0.1", "SIM_TIME_SCALE": "0.05"}
        merged.update(env or {})
        sim = SimProcess(["engine", *(args or [])], merged, port)
        started.append(sim)
        return sim.wait_ready() if ready else sim

    yield _start
    for sim in started:
        sim.close()


@pytest.fixture
def start_gluetun() -> Iterator[Callable[..., SimProcess]]:
    """Start a Gluetun simulator: ``start_gluetun(env={...}, args=[...])``."""
    started: list[SimProcess] = []

    def _start(env: dict[str, str] | None = None, args: list[str] | None = None, ready: bool = True) -> SimProcess:
        port = free_port()
        merged = {"SIM_PORT": str(port), "SIM_HOST": "127.0.0.1"}
        merged.update(env or {})
        sim = SimProcess(["gluetun", *(args or [])], merged, port)
        started.append(sim)
        return sim.wait_ready() if ready else sim

    yield _start
    for sim in started:
        sim.close()
