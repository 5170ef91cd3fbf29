"""Fixtures for the deployment tests: the real compose files, run by docker-compose against the real Docker engine.

The session fixture :func:`deploy_tools` makes sure of a Docker engine, the offline images (the simulators, the
base, and ``aceorch/orchestrator:latest`` from ``scripts/build-orchestrator-image.sh``) and a compose
implementation (``scripts/ensure-compose.sh``). Any of them missing is a **failure**, never a skip.

:func:`compose_project` gives each test its own project: a unique project name, container names, engine label
(``CONTAINER_LABEL``), external network, free host ports and a project directory with ``.env`` and
``debug_logs/``. Everything it created is removed afterwards, even when the test failed: compose's containers,
the engines carrying the label, the network and the directory.
"""

from __future__ import annotations

import os
import random
import shlex
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from deploy_helpers import ROOT, ComposeProject, DeployTools, cleanup, docker, free_block, write_project

SETUP_TIMEOUT_S = 600


def _run_script(name: str) -> str:
    result = subprocess.run(
        [str(ROOT / "scripts" / name)], cwd=ROOT, capture_output=True, text=True, timeout=SETUP_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"scripts/{name} failed with status {result.returncode}; the deployment tests need it:\n"
            f"{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    return result.stdout


@pytest.fixture(scope="session")
def deploy_tools() -> DeployTools:
    _run_script("ensure-docker.sh")
    _run_script("build-images.sh")
    _run_script("build-orchestrator-image.sh")
    compose = shlex.split(_run_script("ensure-compose.sh").strip().splitlines()[-1])
    if os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock") != "unix:///var/run/docker.sock":
        pytest.fail("the compose file mounts /var/run/docker.sock; run these tests against that daemon", pytrace=False)
    return DeployTools(compose=compose, docker_gid=os.stat("/var/run/docker.sock").st_gid)


@pytest.fixture
def compose_project(deploy_tools: DeployTools) -> Iterator[Callable[..., ComposeProject]]:
    """``compose_project(vpn=False)`` -> a written, not yet started, compose project (cleaned up afterwards)."""
    made: list[ComposeProject] = []
    rng = random.Random()

    def make(vpn: bool = False) -> ComposeProject:
        token = uuid.uuid4().hex[:8]
        # Not pytest's tmp_path: its parents are 0700 root, and the host user must be able to read debug_logs/.
        directory = Path(tempfile.mkdtemp(prefix=f"aceorch-deploy-{token}-"))
        directory.chmod(0o755)
        uid = os.getuid() or 1000
        gid = os.getgid() or 1000
        block = free_block(14, rng)
        project = ComposeProject(
            tools=deploy_tools, directory=directory, token=token, uid=uid, gid=gid, app_port=block,
            gluetun_port=block + 1, engine_ports=(block + 2, block + 13), vpn=vpn,
        )
        made.append(project)
        write_project(project)
        docker("network", "create", "--label", f"{project.label[0]}={token}", project.network)
        return project

    yield make
    for project in made:
        cleanup(project)
