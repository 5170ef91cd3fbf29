"""Plumbing shared by the engine and Gluetun simulators: environment parsing, the HTTP server, shutdown.

Everything here is standard library only, because the simulators run as ``python3 -S -m aceorch.sim`` inside
a bare Debian image that holds nothing but ``aceorch/__init__.py`` (empty) and ``aceorch/sim/``.

Configuration errors are raised as :class:`ConfigError`, which names the variable (or flag) at fault; the CLI
turns it into one stderr line and exit status 2.
"""

from __future__ import annotations

import json
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

__all__ = [
    "ConfigError",
    "SimHTTPServer",
    "SimRequestHandler",
    "install_stop_signals",
    "log",
    "parse_bool",
    "parse_float",
    "parse_int",
    "parse_port",
]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(Exception):
    """A bad configuration value; ``name`` is the environment variable or flag that carried it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def flags_from_args(args: Any) -> dict[str, str]:
    """Command-line flags (argparse dests named like their SIM_* variables) as environment-style strings."""
    flags: dict[str, str] = {}
    for name, value in vars(args).items():
        if value is None or not name.isupper():
            continue
        flags[name] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return flags


def log(message: str) -> None:
    """One line on stderr, flushed at once (container logs and the process runtime read it live)."""
    print(message, file=sys.stderr, flush=True)


def parse_bool(name: str, value: str) -> bool:
    """``1/true/yes/on`` and ``0/false/no/off``, any case."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(name, f"expected a boolean (1/true/yes/on or 0/false/no/off), got {value!r}")


def parse_float(name: str, value: str, *, minimum: float = 0.0) -> float:
    """A duration or factor in seconds, as a float no smaller than ``minimum``."""
    try:
        result = float(value.strip())
    except ValueError:
        raise ConfigError(name, f"expected a number, got {value!r}") from None
    if result != result or result in (float("inf"), float("-inf")):
        raise ConfigError(name, f"expected a finite number, got {value!r}")
    if result < minimum:
        raise ConfigError(name, f"must be >= {minimum:g}, got {value!r}")
    return result


def parse_int(name: str, value: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer within ``[minimum, maximum]``."""
    try:
        result = int(value.strip())
    except ValueError:
        raise ConfigError(name, f"expected an integer, got {value!r}") from None
    if result < minimum or (maximum is not None and result > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise ConfigError(name, f"must be >= {minimum}{upper}, got {value!r}")
    return result


def parse_port(name: str, value: str) -> int:
    """A TCP port, 1-65535."""
    return parse_int(name, value, minimum=1, maximum=65535)


class SimHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server whose handler threads never keep the process alive.

    ``daemon_threads`` and ``block_on_close = False`` matter: a hung request (the simulators' hang modes)
    parks its thread until the client gives up, and neither ``server_close()`` nor interpreter exit may wait
    for it.
    """

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], app: Any) -> None:
        self.app = app
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response are normal here (acexy, timeouts, tests); stay quiet about them.
        """Ignore clients that hang up mid-response; report any other error as the base class does."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class SimRequestHandler(BaseHTTPRequestHandler):
    """Response helpers shared by both simulators.

    HTTP/1.0 (the base class's default): one request per connection, as the engine does.
    """

    # The real engine is a Python 2.7 BaseHTTPServer, and some clients sniff the Server header: send its value.
    server_version = "BaseHTTP/0.3"
    sys_version = "Python/2.7.18"
    log_requests = False

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Log the request on stderr only when request logging is on."""
        if self.log_requests:
            super().log_message(format, *args)

    def send_body(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send a complete response with a Content-Length."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """Send ``payload`` as a JSON response."""
        self.send_body(status, json.dumps(payload).encode(), "application/json", headers)

    def send_text(self, status: int, text: str) -> None:
        """Send ``text`` as a ``text/plain`` response."""
        self.send_body(status, text.encode(), "text/plain")

    def read_json_body(self) -> tuple[Any, str | None]:
        """The request body parsed as JSON; ``(None, error)`` when it is not. An empty body is ``{}``."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None, "bad Content-Length"
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw.strip():
            return {}, None
        try:
            return json.loads(raw), None
        except ValueError as exc:
            return None, f"body is not JSON: {exc}"

    def client_gone(self) -> bool:
        """True when the peer has closed (or reset) its side of the connection. Does not block."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return bool(self.connection.recv(1, socket.MSG_PEEK) == b"")
        except (OSError, ValueError):
            return True

    def wait_client_gone(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the peer to hang up; True if it did."""
        try:
            readable, _, _ = select.select([self.connection], [], [], timeout)
        except (OSError, ValueError):
            return True
        if not readable:
            return False
        try:
            if self.connection.recv(1, socket.MSG_PEEK) == b"":
                return True
        except OSError:
            return True
        # Unread bytes from the client (a pipelined request or a stray body) keep the socket readable;
        # wait out the timeout instead of spinning on them.
        time.sleep(timeout)
        return False

    def reset_connection(self) -> None:
        """Close the connection abortively (RST) without sending a response."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.rfile.close()
        except OSError:
            pass


def install_stop_signals(stop: threading.Event) -> Callable[[], None]:
    """Make SIGTERM and SIGINT set ``stop``; returns a function restoring the previous handlers.

    Signal handlers can only be installed from the main thread; elsewhere (an embedding caller) this does
    nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def _handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return _restore
