"""make_runtime: RUNTIME=docker|process|auto."""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path

import pytest

from aceorch.config import Settings
from aceorch.errors import RuntimeUnavailable
from aceorch.runtime.docker import DockerRuntime
from aceorch.runtime.factory import make_runtime
from aceorch.runtime.process import ProcessRuntime


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def no_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point the Docker client at a socket nobody listens on."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")


async def test_process_gives_a_process_runtime_of_engine_command(caplog: pytest.LogCaptureFixture) -> None:
    command = f"{shlex.quote(sys.executable)} -m aceorch.sim engine"
    with caplog.at_level(logging.INFO, logger="aceorch.runtime.factory"):
        runtime = await make_runtime(settings(runtime="process", engine_command=command))
    try:
        assert isinstance(runtime, ProcessRuntime)
        assert runtime.image == sys.executable
        assert [r.getMessage() for r in caplog.records if "runtime: process" in r.getMessage()]
    finally:
        await runtime.aclose()


async def test_docker_gives_a_docker_runtime_even_when_docker_is_down(no_docker: None) -> None:
    runtime = await make_runtime(settings(runtime="docker"))
    try:
        assert isinstance(runtime, DockerRuntime)
        with pytest.raises(RuntimeUnavailable):
            await runtime.ping()
    finally:
        await runtime.aclose()


async def test_auto_falls_back_to_processes_without_docker_and_logs_the_choice_once(
    no_docker: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="aceorch.runtime.factory"):
        runtime = await make_runtime(settings(runtime="auto"))
    try:
        assert isinstance(runtime, ProcessRuntime)
        choices = [r for r in caplog.records if r.getMessage().startswith("runtime:")]
        assert len(choices) == 1 and choices[0].levelno == logging.INFO
        assert "RUNTIME=auto" in choices[0].getMessage()
    finally:
        await runtime.aclose()
