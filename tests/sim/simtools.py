"""Helpers for the simulator tests: subprocess handles, free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from support import wait_until

SRC = Path(__file__).resolve().parents[2] / "src"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class SimProcess:
    """One simulator subprocess and a small HTTP toolkit around it."""

    def __init__(self, args: list[str], env: dict[str, str], port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SIM_")}
        full_env.update(env)
        full_env["PYTHONPATH"] = str(SRC) + os.pathsep + full_env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aceorch.sim", *args],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.client = httpx.Client(base_url=self.base, timeout=5.0)

    def wait_ready(self, timeout: float = 5.0) -> SimProcess:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"simulator exited early: {self.proc.returncode} {self.stderr()}")
            try:
                return self.client.get("/__sim/state", timeout=0.5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, "the simulator to answer /__sim/state", timeout=timeout)
        return self

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def state(self) -> dict[str, Any]:
        response = self.client.get("/__sim/state")
        assert response.status_code == 200
        result: dict[str, Any] = response.json()
        return result

    def post_state(self, body: dict[str, Any]) -> httpx.Response:
        return self.client.post("/__sim/state", json=body)

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def terminate(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=5)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def close(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def run_sim(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 10.0
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m aceorch.sim ARGS`` to completion."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SIM_")}
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(SRC) + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "aceorch.sim", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
