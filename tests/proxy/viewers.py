"""Real viewers for the proxy tests: HTTP clients that read a stream and count its bytes, and a stalled one."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from orchestrator_proc import Orchestrator, free_port

from support import wait_until


class Reader:
    """One viewer reading ``url`` until stopped: bytes so far, first-byte time, the status, whether it ended."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client = client
        self.url = url
        self.bytes = 0
        self.status: int | None = None
        self.first_byte_s: float | None = None
        self.ended = False
        self.error: str | None = None
        self.last_byte_at = 0.0
        self.max_gap_s = 0.0
        self.body: bytes = b""
        self.task: asyncio.Task[None] | None = None

    def start(self) -> Reader:
        """Start reading in a task."""
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        begin = time.monotonic()
        try:
            async with self.client.stream("GET", self.url) as resp:
                self.status = resp.status_code
                if resp.status_code != 200:
                    self.body = await resp.aread()
                    return
                async for chunk in resp.aiter_raw():
                    now = time.monotonic()
                    if self.first_byte_s is None:
                        self.first_byte_s = now - begin
                    elif self.last_byte_at:
                        self.max_gap_s = max(self.max_gap_s, now - self.last_byte_at)
                    self.last_byte_at = now
                    self.bytes += len(chunk)
        except httpx.HTTPError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.ended = True

    async def stop(self) -> None:
        """Stop reading (the viewer leaves)."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


def client(**kw: Any) -> httpx.AsyncClient:
    """A client for many viewers: no pool limit, a read timeout long enough for a failover."""
    return httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0),
                             limits=httpx.Limits(max_connections=None, max_keepalive_connections=0), **kw)


def stalled_viewer(port: int, path: str) -> socket.socket:
    """A viewer that sends its request and never reads: a tiny receive buffer fills at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def sim_state(host: str, port: int) -> dict[str, Any]:
    """The engine simulator's /__sim/state."""
    resp = httpx.get(f"http://{host}:{port}/__sim/state", timeout=5.0)
    resp.raise_for_status()
    out: dict[str, Any] = resp.json()
    return out


def sim_update(host: str, port: int, body: dict[str, Any]) -> dict[str, Any]:
    """Change the engine simulator's modes (POST /__sim/state)."""
    resp = httpx.post(f"http://{host}:{port}/__sim/state", json=body, timeout=5.0)
    resp.raise_for_status()
    out: dict[str, Any] = resp.json()
    return out


class StandaloneProxy:
    """One ``aceorch proxy --orchestrator URL --port N`` process."""

    def __init__(self, o: Orchestrator, cwd: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.log_path = cwd / "proxy.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aceorch", "proxy", "--orchestrator", f"http://127.0.0.1:{o.port}",
             "--port", str(self.port), "--host", "127.0.0.1"],
            cwd=cwd, env={**o.env, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

        def up() -> bool:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=30, what="the standalone proxy to answer")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
