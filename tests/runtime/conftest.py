"""Fixtures for the runtime unit tests: a process runtime over tiny Python commands, and the fake runtime."""

from __future__ import annotations

import shlex
import sys
from collections.abc import AsyncIterator

import pytest

from aceorch.runtime.fake import InMemoryRuntime
from aceorch.runtime.process import ProcessRuntime

#: A command whose children run the Python code given as their first argument (``spec.command``).
PYTHON_C = f"{shlex.quote(sys.executable)} -u -c"


@pytest.fixture
async def process_runtime() -> AsyncIterator[ProcessRuntime]:
    """A process runtime whose containers run ``python -c <spec.command[0]>``; closed afterwards."""
    runtime = ProcessRuntime(PYTHON_C, restart_delay=0.1, max_restart_delay=0.4, kill_after=2)
    try:
        yield runtime
    finally:
        await runtime.aclose()


@pytest.fixture
def fake_runtime() -> InMemoryRuntime:
    """A fresh in-memory runtime."""
    return InMemoryRuntime()
