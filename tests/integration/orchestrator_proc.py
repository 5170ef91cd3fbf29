"""Run the real ``aceorch serve`` as a child process, as an operator would, and talk to it over HTTP."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from support import wait_until

ROOT = Path(__file__).resolve().parents[2]


def free_port(low: int = 30000, high: int = 38999) -> int:
    """A free TCP port outside aceorch's default port ranges (19000-19999, 40000-49999)."""
    import random

    for _ in range(200):
        port = random.randint(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def docker_ids(label: str, *, all_states: bool = True) -> list[str]:
    args = ["docker", "ps", "-q", "--no-trunc", "--filter", f"label={label}"]
    if all_states:
        args.insert(2, "-a")
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    return sorted(out.stdout.split())


def docker_rm_label(label: str) -> None:
    ids = docker_ids(label)
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=120, check=False)


class Orchestrator:
    """One ``aceorch serve`` process in ``cwd``, configured through its environment."""

    def __init__(self, cwd: Path, env: dict[str, str], *, port: int | None = None, api_key: str = "k-test") -> None:
        self.cwd = cwd
        self.port = port or free_port()
        #: A fixed port (8000, as the user's documents say) is shared by every test that needs it, in both
        #: ``make test`` lanes: it is held under a machine-wide lock from start to close.
        self._port_lock_path = f"/tmp/aceorch-test-port-{port}.lock" if port else None
        self._port_lock: Any = None
        self.api_key = api_key
        self.label_value = f"t{uuid.uuid4().hex[:10]}"
        self.label = f"aceorch.test={self.label_value}"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "APP_HOST": "127.0.0.1",
            "APP_PORT": str(self.port),
            "API_KEY": api_key,
            "CONTAINER_LABEL": self.label,
            "MIN_REPLICAS": "0",
            "MIN_FREE_REPLICAS": "0",
            "MIN_PROVISION_INTERVAL_S": "0",
            "TARGET_IMAGE": "aceorch/engine-sim:latest",
            "DB_URL": "sqlite:///./orchestrator.db",
            **env,
        }
        if self.env.get("RUNTIME") == "process" and "PORT_RANGE_HOST" not in self.env:
            # Engines as local processes bind host ports: a block of their own, away from the default range that
            # the Docker tests of the other make-test lane use.
            low = free_port(22000, 28900)
            self.env["PORT_RANGE_HOST"] = f"{low}-{low + 40}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = cwd / "aceorch.log"
        self.client = self._client()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def _client(self) -> httpx.Client:
        """A client that sends the key on every request, as acexy and the dashboard do (reads need it too)."""
        headers = self.auth if self.api_key else {}
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60, headers=headers)

    def start(self, *, wait_ready: bool = True) -> Orchestrator:
        if self._port_lock_path is not None and self._port_lock is None:
            self._port_lock = open(self._port_lock_path, "w")  # noqa: SIM115 - held until close()
            fcntl.flock(self._port_lock, fcntl.LOCK_EX)
        self.client.close()
        self.client = self._client()
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aceorch", "serve"],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

        def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.logs()
            try:
                r = self.client.get("/readyz" if wait_ready else "/healthz", timeout=2)
                return r.status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=60, what="aceorch to answer")
        return self

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def provision(self, body: dict[str, Any] | None = None, *, headers: dict[str, str] | None = None,
                  **kw: Any) -> httpx.Response:
        return self.client.post("/provision/acestream", json=body if body is not None else {},
                                headers={**self.auth, **(headers or {})}, **kw)

    def engines(self) -> list[dict[str, Any]]:
        r = self.client.get("/engines")
        r.raise_for_status()
        out: list[dict[str, Any]] = r.json()
        return out

    def containers(self, *, running_only: bool = False) -> list[str]:
        return docker_ids(self.label, all_states=not running_only)

    def close(self) -> None:
        self.stop()
        # Captured output: pytest shows it with a failing test, so its cause is in the CI log.
        print(f"--- the last lines of aceorch's log ({self.log_path}) ---")
        print("\n".join(self.logs().splitlines()[-60:]))
        self.client.close()
        docker_rm_label(self.label)
        if self._port_lock is not None:
            self._port_lock.close()  # releases the fixed port's lock
            self._port_lock = None
