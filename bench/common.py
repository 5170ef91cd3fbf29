"""Helpers shared by the benchmarks: machine facts, percentiles, result files, an event-loop lag probe,
an in-process app (lifespan run by hand, requests through ``httpx.ASGITransport``) and the real-process
orchestrator of the integration tests."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Where result files go; BENCH_RESULTS_DIR moves them (the smoke test writes into a temporary folder).
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or ROOT / "bench" / "results")
ENGINE_IMAGE = "aceorch/engine-sim:latest"
API_KEY = "bench-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}

#: Keys every result file has (the smoke test checks them).
COMMON_KEYS = ("name", "title", "when", "machine", "quick", "goal", "ratio", "met", "summary")


def quick_default() -> bool:
    return os.environ.get("BENCH_QUICK", "") not in ("", "0", "false", "no")


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", default=quick_default(),
                        help="a tiny size, for the smoke test (default from BENCH_QUICK)")
    return parser.parse_args(argv)


def quiet_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("aceorch", "httpx", "httpcore", "aiodocker", "uvicorn"):
        logging.getLogger(name).setLevel(logging.ERROR)


def machine() -> dict[str, Any]:
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks."""
    if not values:
        return math.nan
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def stats(values: Sequence[float], digits: int = 4) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(pct(values, 50), digits),
        "p90": round(pct(values, 90), digits),
        "min": round(min(values), digits) if values else math.nan,
        "max": round(max(values), digits) if values else math.nan,
        "mean": round(sum(values) / len(values), digits) if values else math.nan,
    }


def finish(name: str, title: str, *, quick: bool, goal: str, ratio: float, met: bool, summary: str,
           **data: Any) -> dict[str, Any]:
    """Print the one-line summary and write ``bench/results/<name>.json``; returns what was written."""
    result: dict[str, Any] = {
        "name": name,
        "title": title,
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "quick": quick,
        "goal": goal,
        "ratio": round(ratio, 4) if math.isfinite(ratio) else None,
        "met": bool(met),
        "summary": summary,
        **data,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    flag = "MET" if met else "MISSED"
    print(f"SUMMARY {name}: {summary} (goal {goal}: {flag}){' [quick]' if quick else ''}")
    print(f"wrote {out}")
    return result


def ensure_docker() -> None:
    """A Docker engine that answers and the simulator image (each script is a no-op when its work is done)."""
    for script in ("ensure-docker.sh", "build-images.sh"):
        proc = subprocess.run([str(ROOT / "scripts" / script)], cwd=ROOT, capture_output=True, text=True,
                              timeout=900, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"scripts/{script} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def orchestrator_class() -> Any:
    """``tests/integration/orchestrator_proc.Orchestrator``: the real ``aceorch serve`` as a child process."""
    for path in (str(ROOT / "tests"), str(ROOT / "tests" / "integration")):  # support.py, orchestrator_proc.py
        if path not in sys.path:
            sys.path.insert(0, path)
    import orchestrator_proc

    return orchestrator_proc


class LagProbe:
    """Sleeps ``interval`` over and over on the running loop and records how late each wake-up is.

    For each wake-up it also records the CPU time the loop's thread used meanwhile (``time.thread_time``):
    ``min(lag, cpu)`` is the part of a lag that work on the loop itself can explain. A late wake-up with
    little CPU on the loop thread means the process was waiting: for a CPU (other processes were running)
    or for the GIL (another thread of the process was running).
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self.busy: list[float] = []
        self.max_at = 0.0
        self.max_cpu = 0.0
        self._task: asyncio.Task[None] | None = None
        self._t0 = 0.0
        self._cpu0 = 0.0
        self._wall0 = 0.0

    async def _run(self) -> None:
        worst = -1.0
        while True:
            begin = time.perf_counter()
            cpu = time.thread_time()
            await asyncio.sleep(self.interval)
            lag = max(0.0, time.perf_counter() - begin - self.interval)
            used = time.thread_time() - cpu
            if lag > worst:
                worst = lag
                self.max_at = begin - self._t0
                self.max_cpu = used
            self.lags.append(lag)
            self.busy.append(min(lag, used))

    def start(self) -> LagProbe:
        self._t0 = time.perf_counter()
        self._cpu0 = time.process_time()
        self._task = asyncio.create_task(self._run(), name="lag probe")
        return self

    async def stop(self) -> None:
        self._wall0 = time.perf_counter() - self._t0
        self._cpu0 = time.process_time() - self._cpu0
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def figures(self) -> dict[str, float]:
        lags = self.lags or [0.0]
        busy = self.busy or [0.0]
        return {
            "samples": len(self.lags),
            "max_ms": round(max(lags) * 1000, 2),
            "p99_ms": round(pct(lags, 99) * 1000, 2),
            "p50_ms": round(pct(lags, 50) * 1000, 3),
            "max_at_s": round(self.max_at, 2),
            "loop_cpu_in_max_ms": round(self.max_cpu * 1000, 2),
            "max_busy_ms": round(max(busy) * 1000, 2),
            "process_cpu_pct": round(100 * self._cpu0 / self._wall0, 1) if self._wall0 else 0.0,
        }


@contextlib.asynccontextmanager
async def running_app(settings: Any, **kwargs: Any) -> AsyncIterator[tuple[Any, Any]]:
    """``create_app(settings, **kwargs)`` with its lifespan running, and an ``httpx.AsyncClient`` on it."""
    import httpx

    from aceorch.api import create_app

    app = create_app(settings, **kwargs)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        # the key on every request: reads need it too
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=None,
                                     headers=AUTH) as client:
            yield app, client


def bench_settings(tmp: Path, **overrides: Any) -> Any:
    from aceorch.config import Settings

    values: dict[str, Any] = {
        "api_key": API_KEY,
        "db_url": f"sqlite:///{tmp}/orch.db",
        "debug_log_dir": str(tmp / "debug_logs"),
        "min_replicas": 0,
        "min_free_replicas": 0,
        "min_provision_interval_s": 0,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def gauge(metrics_text: str, name: str) -> float | None:
    """The value of an unlabelled gauge in Prometheus text."""
    for line in metrics_text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{}"):
            return float(line.rsplit(" ", 1)[1])
    return None


async def engine_answers(client: Any, port: int) -> bool:
    """What aceorch's readiness check asks: ``get_status`` answers 200 (with ``playlist_loaded`` when present)."""
    import httpx

    try:
        r = await client.get(f"http://127.0.0.1:{port}/server/api",
                             params={"api_version": "3", "method": "get_status"}, timeout=2.0)
    except httpx.HTTPError:
        return False
    if r.status_code != 200:
        return False
    try:
        result = r.json().get("result")
    except ValueError:
        return False
    return not isinstance(result, dict) or bool(result.get("playlist_loaded", True))


class RawDocker:
    """The baseline: what a script does without aceorch (``docker run -d -p ...`` of the same image with the
    same environment, then ``get_status`` until 200), through the Docker Engine API (aiodocker) so no CLI
    start-up cost is counted. Polls exactly like aceorch's provisioner: at once, then after 20 ms, doubling up
    to ``poll_s`` (100 ms), so that both sides lose the same to the poll interval."""

    def __init__(self, label: str, poll_s: float = 0.1) -> None:
        import aiodocker
        import httpx

        self.docker = aiodocker.Docker()
        self.http = httpx.AsyncClient()
        self.key, _, self.value = label.partition("=")
        self.poll_s = poll_s
        self.counter = 0

    async def run_until_ready(self, host_port: int, container_port: int, timeout: float = 60.0) -> tuple[str, float]:
        """Create + start one engine and poll it; returns (container id, seconds from create to 200)."""
        self.counter += 1
        c_https = container_port + 5000
        env = {
            "CONF": f"--http-port={container_port}\n--https-port={c_https}\n--bind-all",
            "HTTP_PORT": str(container_port),
            "HTTPS_PORT": str(c_https),
            "BIND_ALL": "true",
            "INTERNAL_BUFFERING": "60",
            "CACHE_LIMIT": "1",
        }
        key = f"{container_port}/tcp"
        config: dict[str, Any] = {
            "Image": ENGINE_IMAGE,
            "Env": [f"{k}={v}" for k, v in env.items()],
            "Labels": {self.key: self.value},
            "ExposedPorts": {key: {}},
            "HostConfig": {
                "PortBindings": {key: [{"HostIp": "0.0.0.0", "HostPort": str(host_port)}]},
                "Init": True,  # as aceorch creates engines (docker run --init)
                "RestartPolicy": {"Name": "no"},
            },
        }
        name = f"bench-raw-{os.getpid()}-{self.counter}"
        begin = time.perf_counter()
        container = await self.docker.containers.create(config=config, name=name)
        await container.start()
        pause = 0.02
        while not await engine_answers(self.http, host_port):
            if time.perf_counter() - begin > timeout:
                raise RuntimeError(f"raw engine on port {host_port} not ready within {timeout}s")
            await asyncio.sleep(pause)
            pause = min(self.poll_s, pause * 2)
        return container.id, time.perf_counter() - begin

    async def remove(self, cid: str) -> None:
        await self.docker.containers.container(cid).delete(force=True)

    async def remove_all(self) -> None:
        for c in await self.docker.containers.list(all=True, filters={"label": [f"{self.key}={self.value}"]}):
            with contextlib.suppress(Exception):
                await c.delete(force=True)

    async def aclose(self) -> None:
        await self.remove_all()
        await self.http.aclose()
        await self.docker.close()


def free_ports(n: int, low: int = 30000, high: int = 38999) -> list[int]:
    """``n`` distinct free TCP ports outside aceorch's default ranges."""
    import random
    import socket

    ports: list[int] = []
    while len(ports) < n:
        port = random.randint(low, high)
        if port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    return ports


#: A minimal engine for scale runs: answers every request with a ready ``get_status`` on HTTP_PORT, one
#: connection at a time, HTTP/1.0 and ``Connection: close`` like the simulator. Standard library, no site
#: imports: about 9 MB and 15 ms of CPU per process, against about 22 MB and 130 ms for
#: ``python -m aceorch.sim engine``.
TINY_ENGINE = r'''
import os, signal, socket
port = int(os.environ.get("HTTP_PORT") or "6878")
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(256)
body = b'{"result": {"playlist_loaded": true, "status": "idle"}, "error": null}'
reply = (b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "
         + str(len(body)).encode() + b"\r\n\r\n" + body)
while True:
    conn, _ = srv.accept()
    conn.settimeout(2.0)
    try:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        conn.sendall(reply)
    except OSError:
        pass
    finally:
        conn.close()
'''


def tiny_engine_command(folder: Path) -> str:
    """ENGINE_COMMAND running :data:`TINY_ENGINE` (written into ``folder``)."""
    import shlex

    path = folder / "tiny_engine.py"
    path.write_text(TINY_ENGINE)
    return f"{shlex.quote(sys.executable)} -I -S {shlex.quote(str(path))}"


def sim_engine_command() -> str:
    import shlex

    return f"{shlex.quote(sys.executable)} -m aceorch.sim engine"


def children_rss_mb() -> float:
    """Total resident memory of this process's direct children (Linux /proc)."""
    total_kb = 0
    pids: list[str] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{os.getpid()}/task").iterdir():
            with contextlib.suppress(OSError):
                pids.extend((task / "children").read_text().split())
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return round(total_kb / 1024, 1)
