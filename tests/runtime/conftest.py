"""Fixtures for the runtime unit tests: a process runtime over tiny Python commands, and the fake runtime."""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

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
    return InMemoryRuntime()


async def poll(predicate: Callable[[], Awaitable[bool] | bool], what: str, deadline_s: float = 10.0) -> None:
    """Wait until ``predicate`` is true, or fail after ``deadline_s``."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {deadline_s} s waiting for {what}")


@pytest.fixture
def wait_for() -> Callable[..., Awaitable[None]]:
    return poll
