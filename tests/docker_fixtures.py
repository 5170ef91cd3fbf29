"""Fixtures for tests against a real Docker engine running the simulator images.

`make test` starts the engine and builds the images first; the session fixture :func:`docker_engine` makes
sure of both again (each script is a no-op when its work is done), so `pytest tests/integration` also works
on its own. A test that needs Docker **fails** when Docker cannot be had: it is never skipped.

Every container a test creates carries :data:`TEST_LABELS` (``aceorch.test=1``). Containers with that label
are removed when the session starts and ends, and after each test that used :func:`docker_runtime`, even when
the test failed. Use :func:`unique_name` for names and :func:`free_port` for host ports.

Reusable fixtures: ``docker_engine`` (session), ``docker_runtime``, ``test_labels``, ``engine_image``,
``gluetun_image``, ``unique_name``, ``free_port``, ``sim_engine_command``.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from aceorch.runtime.docker import DockerRuntime

ROOT = Path(__file__).resolve().parents[1]

#: The label on every container the tests create.
TEST_LABEL_KEY = "aceorch.test"
TEST_LABELS = {TEST_LABEL_KEY: "1"}
ENGINE_IMAGE = "aceorch/engine-sim:latest"
GLUETUN_IMAGE = "aceorch/gluetun-sim:latest"

#: How long the scripts may take: a cold image build (debootstrap) is about 45 s.
SETUP_TIMEOUT_S = 600


def _run_script(name: str) -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / name)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SETUP_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"scripts/{name} failed with status {result.returncode}; Docker tests need it "
            f"(run `make docker images`):\n{result.stdout}\n{result.stderr}",
            pytrace=False,
        )


def remove_test_containers() -> list[str]:
    """Remove every container labelled ``aceorch.test`` (any value: unit fixtures use 1, end-to-end runs a
    per-orchestrator value), running or not; returns the removed ids."""
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--no-trunc", "--filter", f"label={TEST_LABEL_KEY}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    ids = listed.stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=120, check=False)
    return ids


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[None]:
    """A Docker engine that answers, with the aceorch images built; labelled test containers cleaned up."""
    # make test's other lane must never reach the host's engine: this fixture removes every test-labelled
    # container, the host_docker lane's too. A test that gets here there is missing its docker mark.
    if os.environ.get("ACEORCH_TEST_LANE") == "rest":
        pytest.fail("this test uses the host's Docker engine but is not marked docker (tests/conftest.py runs "
                    "such tests in the host_docker lane)", pytrace=False)
    _run_script("ensure-docker.sh")
    _run_script("build-images.sh")
    remove_test_containers()
    yield
    remove_test_containers()


@pytest.fixture
def test_labels() -> dict[str, str]:
    return dict(TEST_LABELS)


@pytest.fixture
def engine_image() -> str:
    return ENGINE_IMAGE


@pytest.fixture
def gluetun_image() -> str:
    return GLUETUN_IMAGE


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """``unique_name("engine")`` -> ``"aceorch-test-engine-1a2b3c4d"``."""

    def make(prefix: str = "c") -> str:
        return f"aceorch-test-{prefix}-{uuid.uuid4().hex[:8]}"

    return make


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A function returning a TCP port that is free on 0.0.0.0 right now (distinct on each call)."""
    given: set[int] = set()

    def make() -> int:
        while True:
            port = _free_port()
            if port not in given:
                given.add(port)
                return port

    return make


@pytest.fixture
def sim_engine_command() -> str:
    """The ENGINE_COMMAND that runs the bundled engine simulator under the process runtime."""
    return f"{shlex.quote(sys.executable)} -m aceorch.sim engine"


@pytest.fixture
async def docker_runtime(docker_engine: None) -> AsyncIterator[DockerRuntime]:
    """A :class:`DockerRuntime` on the test engine; test-labelled containers are removed afterwards."""
    runtime = DockerRuntime(pull_missing=False)
    try:
        yield runtime
    finally:
        try:
            for info in await runtime.list(TEST_LABELS):
                await runtime.remove(info.id)
        finally:
            await runtime.aclose()
