"""Helpers shared by the chaos drills (imported by the tests and by conftest.py)."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from orchestrator_proc import Orchestrator  # noqa: E402


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


def host_port_range(size: int = 40) -> str:
    """A PORT_RANGE_HOST block whose ports are all free now, away from the default 19000-19999."""
    for _ in range(100):
        low = random.randrange(20000, 29999 - size, size)
        if all(_free(p) for p in range(low, low + size)):
            return f"{low}-{low + size - 1}"
    raise RuntimeError("no free block of host ports")


class Run:
    """The folder of one aceorch run: its log, debug files and SQLite store."""

    def __init__(self, orch: Orchestrator) -> None:
        self.orch = orch
        self.dir = orch.cwd

    @property
    def debug_dir(self) -> Path:
        return Path(self.orch.env.get("DEBUG_LOG_DIR", str(self.dir / "debug_logs")))

    def records(self, category: str, *, complete_only: bool = False) -> list[dict[str, Any]]:
        """Every record of ``category``; with ``complete_only``, a torn last line (still being written) is left
        out instead of failing."""
        out: list[dict[str, Any]] = []
        for f in sorted(self.debug_dir.glob(f"*_{category}.jsonl")):
            text = f.read_text()
            if complete_only:
                text = text[: text.rfind("\n") + 1]
            for line in text.splitlines():
                out.append(json.loads(line))
        return out

    def log_lines(self, needle: str) -> list[str]:
        return [line for line in self.orch.logs().splitlines() if needle in line]


def run_of(orch: Orchestrator) -> Run:
    return Run(orch)


def mount_tmpfs(target: Path, *options: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    opts = ",".join(options)
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(target)], check=True, capture_output=True,
                   timeout=30)


def umount(target: Path) -> None:
    done = subprocess.run(["umount", str(target)], capture_output=True, timeout=30, check=False)
    if done.returncode != 0:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30, check=False)
