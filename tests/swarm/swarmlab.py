"""The swarm lab as the tests see it: the manager's DOCKER_HOST, the nodes' addresses, the script and the CLI."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

LAB = Path(__file__).resolve().parents[2] / "scripts" / "swarm-lab.sh"


@dataclass(frozen=True)
class Lab:
    """A running lab: the manager's DOCKER_HOST and the address of each node (node 1 is the manager)."""

    docker_host: str
    addresses: dict[str, str]  # hostname -> address

    def script(self, *args: str) -> str:
        """Run ``scripts/swarm-lab.sh`` with ``args``; its stdout."""
        proc = subprocess.run([str(LAB), *args], capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def docker(self, *args: str) -> str:
        """The docker CLI against the manager; its stdout."""
        proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "DOCKER_HOST": self.docker_host})
        assert proc.returncode == 0, proc.stderr
        return proc.stdout
