"""The standalone proxy (``aceorch proxy``'s app) served by uvicorn in a thread, for in-process tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from aceorch.config import Settings
from aceorch.proxy.app import create_proxy_app
from support import wait_until


@contextmanager
def proxy_server(settings: Settings, orchestrator_url: str) -> Iterator[str]:
    """Serve the standalone proxy against ``orchestrator_url``; yields its base URL. Its lifespan (and debug
    session) ends on exit, and the server thread must be gone by then."""
    app = create_proxy_app(settings, orchestrator_url)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), "the proxy to start", timeout=20.0)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(20.0)
        sock.close()
        assert not thread.is_alive()
