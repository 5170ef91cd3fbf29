"""A real aceorch server for end-to-end tests: uvicorn in a background thread, on a free 127.0.0.1 port, with the
app built by ``create_app(settings)`` over the **process runtime** (the bundled engine simulator as ENGINE_COMMAND).

Shared by ``tests/streams`` and ``tests/dashboard`` (whose conftest puts this directory on ``sys.path``).
"""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import uvicorn
from fastapi import FastAPI

from aceorch.api import create_app
from aceorch.config import Settings
from support import wait_until

API_KEY = "live-test-key-7f3a"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
#: Per-request headers that drop the client's default key.
NO_AUTH = {"Authorization": ""}
#: Fast simulator timings for engines started by the tests (engine-api.md §13).
FAST_SIM_ENV = {"SIM_TIME_SCALE": "0.1", "SIM_TIME_TO_DL_S": "2"}

T = TypeVar("T")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def engine_port_range(size: int = 30) -> str:
    """A random PORT_RANGE_HOST block, so parallel test runs on one machine do not collide."""
    for _ in range(50):
        base = random.randrange(20000, 32000 - size)
        if all(_bindable(p) for p in range(base, base + 5)):
            return f"{base}-{base + size - 1}"
    raise AssertionError("no free port block for engines")


def live_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "runtime": "process",
        "provision_wait_for": "ready",
        "min_replicas": 0,
        "min_free_replicas": 0,
        "min_provision_interval_s": 0,
        "api_key": API_KEY,
        "db_url": f"sqlite:///{tmp_path}/orch.db",
        "debug_log_dir": str(tmp_path / "debug_logs"),
        "collect_interval_s": 1,
        "port_range_host": engine_port_range(),
        "startup_timeout_s": 15,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def port_refuses(port: int) -> bool:
    """True when nothing accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as s:
        s.settimeout(1.0)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            return True
    return False


class LiveServer:
    def __init__(self, url: str, app: FastAPI, settings: Settings) -> None:
        self.url = url
        self.app = app
        self.settings = settings
        # acexy sends its key on every call; so does this client (a test drops it with headers=NO_AUTH)
        self.client = httpx.Client(base_url=url, timeout=30.0, headers=AUTH)

    def provision(self, env: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
        """POST /provision/acestream; asserts 200 and returns the AceProvisionResponse."""
        payload = {"labels": {}, "env": {**FAST_SIM_ENV, **(env or {})}, **body}
        resp = self.client.post("/provision/acestream", json=payload, headers=AUTH)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def get(self, path: str, **kw: Any) -> Any:
        resp = self.client.get(path, **kw)
        assert resp.status_code == 200, f"GET {path}: {resp.status_code} {resp.text}"
        return resp.json()

    def engine_ids(self) -> list[str]:
        return [e["container_id"] for e in self.get("/engines")]

    def stream(self, stream_id: str) -> dict[str, Any]:
        return next(s for s in self.get("/streams") if s["id"] == stream_id)

    def started(self, port: int, content_id: str, *, host: str = "localhost") -> tuple[dict[str, Any], dict[str, Any]]:
        """What acexy does: getstream on the engine, then stream_started with its URLs. Returns (session, stream)."""
        session = get_stream(port, content_id)
        body = acexy_started_body(host, port, content_id, session)
        resp = self.client.post("/events/stream_started", json=body, headers=AUTH)
        assert resp.status_code == 200, resp.text
        return session, dict(resp.json())

    def ended(self, stream_id: str, reason: str = "handler_exit") -> dict[str, Any]:
        resp = self.client.post("/events/stream_ended", json={"stream_id": stream_id, "reason": reason}, headers=AUTH)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())


def get_stream(port: int, content_id: str) -> dict[str, Any]:
    """``GET /ace/getstream?format=json&id=…&pid=…`` on a simulator engine; returns ``response`` (engine-api.md §5)."""
    resp = httpx.get(
        f"http://127.0.0.1:{port}/ace/getstream",
        params={"format": "json", "id": content_id, "pid": f"pid-{random.getrandbits(64):016x}"},
        timeout=10.0,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["error"] is None, body
    return dict(body["response"])


def acexy_started_body(host: str, port: int, content_id: str, session: dict[str, Any]) -> dict[str, Any]:
    """acexy's stream_started body (api.md §5.1): the playback id is the last path segment of ``stat_url``."""
    pbid = urlsplit(session["stat_url"]).path.rstrip("/").rsplit("/", 1)[-1]
    return {
        "engine": {"host": host, "port": port},
        "stream": {"key_type": "content_id", "key": content_id},
        "session": {
            "playback_session_id": pbid,
            "stat_url": session["stat_url"],
            "command_url": session["command_url"],
            "is_live": session["is_live"],
        },
        "labels": {"stream_id": f"{content_id}|{pbid}"},
    }


def sim_state(port: int) -> dict[str, Any]:
    resp = httpx.get(f"http://127.0.0.1:{port}/__sim/state", timeout=5.0)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


@contextmanager
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """Serve ``create_app(settings)`` with uvicorn in a thread; the lifespan (and every engine) ends on exit."""
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="aceorch-live", daemon=True)
    thread.start()
    live = LiveServer(f"http://127.0.0.1:{port}", app, settings)
    try:
        wait_until(lambda: server.started or not thread.is_alive(), "the server to start", timeout=20.0)
        assert thread.is_alive() and server.started, "uvicorn did not start"
        yield live
    finally:
        live.client.close()
        server.should_exit = True
        thread.join(20.0)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop within 20 s"
