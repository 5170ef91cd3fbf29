"""Shared fixtures: a clean environment for settings, a settings factory, and the check that no async test
leaves asyncio tasks behind.

``tests/`` is on ``sys.path`` (this conftest's folder), so every test module can ``import support``.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aceorch.config import Settings

#: Fixtures for tests against the real Docker engine (docker_engine, docker_runtime, ...) and a throwaway
#: PostgreSQL (pg_cluster, pg_url), for every folder.
pytest_plugins = ["docker_fixtures", "pg_fixtures"]

#: The name of the fixture that fails an async test which leaks tasks.
NO_LEAKED_TASKS = "_no_leaked_tasks"
#: How many times the leak check yields to the loop so that tasks cancelled in teardown can finish.
SETTLE_ROUNDS = 10
#: Where the outcome of a test's call phase is kept, for its fixtures' teardown.
CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that use the host's Docker engine, and put the task-leak check first in async tests.

    Marking runs before ``-m`` selects. ``make test`` runs the ``host_docker`` tests and the others as two pytest
    processes side by side. The host's engine is shared state (the fixtures remove every test-labelled container,
    a chaos drill restarts the daemon), so all its users stay in one process; the swarm suite runs daemons of its
    own and goes with the rest.

    The leak check is set up first and torn down last, so tasks that the other fixtures stop in their teardown
    are not counted as leaks.
    """
    swarm = Path(__file__).resolve().parent / "swarm"
    for item in items:
        uses_engine = "docker_engine" in getattr(item, "fixturenames", ())
        marked = item.get_closest_marker("docker") is not None and swarm not in Path(str(item.path)).parents
        if uses_engine or marked:
            item.add_marker(pytest.mark.host_docker)
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            names = item.fixturenames
            if NO_LEAKED_TASKS in names:
                names.remove(NO_LEAKED_TASKS)
            names.insert(0, NO_LEAKED_TASKS)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Remember whether the test itself failed: a failing test's stray tasks are not reported as well."""
    report = yield
    if call.when == "call":
        item.stash[CALL_FAILED] = bool(getattr(report, "failed", False))
    return report


@pytest.fixture
async def _no_leaked_tasks(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Fail the test if asyncio tasks it started are still pending once every other fixture is torn down.

    A task that outlives its test runs on in no one's care and is destroyed, pending, when the loop closes; its
    errors are lost. The leaked tasks are named in the failure and then cancelled.
    """
    before = asyncio.all_tasks()
    yield
    for _ in range(SETTLE_ROUNDS):
        leaked = _pending_since(before)
        if not leaked:
            return
        await asyncio.sleep(0)
    for task in leaked:
        task.cancel()
    await asyncio.gather(*leaked, return_exceptions=True)
    if request.node.stash.get(CALL_FAILED, False):
        return
    described = "\n".join(f"  {task.get_name()}: {task.get_coro()!r}" for task in leaked)
    pytest.fail(f"{len(leaked)} asyncio task(s) still pending after the test and its fixtures ended:\n{described}",
                pytrace=False)


def _pending_since(before: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return sorted((t for t in asyncio.all_tasks() - before if not t.done() and t is not current),
                  key=lambda t: t.get_name())


@pytest.fixture(autouse=True)
def _clean_settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test is influenced by the developer's own environment or .env."""
    names = set(Settings.env_names())
    for key in list(os.environ):
        if key.upper() in names:
            monkeypatch.delenv(key, raising=False)
    yield


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "db_url": f"sqlite:///{tmp_path}/orch.db",
            "debug_log_dir": str(tmp_path / "debug_logs"),
            "min_replicas": 0,
            "min_free_replicas": 0,
            "min_provision_interval_s": 0,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return factory
