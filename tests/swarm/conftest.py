"""The swarm lab for the swarm tests: ``scripts/swarm-lab.sh up 3`` once per session, ``down`` at its end.

The lab's daemons are separate from the host's Docker engine (which only gives the engine image by ``docker
save``), so these tests do not take the Docker test lock. They need root, and are skipped without it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB_LOCK = "/tmp/aceorch-swarm-lab.lock"
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "tests" / "seed"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from swarmlab import LAB, Lab  # noqa: E402


@pytest.fixture(scope="session")
def swarm_lab() -> Iterator[Lab]:
    """A 3-node lab swarm for the session."""
    if os.geteuid() != 0 or shutil.which("dockerd") is None or shutil.which("nsenter") is None:
        pytest.skip("the swarm lab needs root, dockerd and nsenter")
    # One lab per machine: its folder, bridge and namespaces have fixed names, so swarm suites of several
    # checkouts take turns for their whole session.
    lock = open(LAB_LOCK, "w")  # noqa: SIM115 - held until the session ends
    fcntl.flock(lock, fcntl.LOCK_EX)
    out = subprocess.run([str(LAB), "up", "3"], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        lock.close()
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("export DOCKER_HOST="))
    host = line.split("=", 1)[1]
    lab = Lab(docker_host=host, addresses={})
    nodes = lab.docker("node", "ls", "-q").split()
    for node in nodes:
        fmt = "{{.Description.Hostname}} {{.Status.Addr}}"
        name, addr = lab.docker("node", "inspect", node, "--format", fmt).split()
        lab.addresses[name] = addr
    try:
        yield lab
    finally:
        subprocess.run([str(LAB), "down"], capture_output=True, text=True, timeout=300, check=False)
        lock.close()
