"""The Gluetun control-server simulator: ``python -m aceorch.sim gluetun`` (``aceorch sim gluetun``).

It serves the routes aceorch reads from Gluetun's control server:

- ``GET /v1/vpn/status`` and the older ``GET /v1/openvpn/status``: ``{"status": "running" | "stopped"}``
  (``PUT`` with the same body starts or stops the simulated tunnel, as the real server allows);
- ``GET /v1/publicip/ip``: ``{"public_ip", "region", "country", "city", "organization"}``, ``public_ip`` empty
  while the VPN is down;
- ``GET /v1/openvpn/portforwarded`` and the newer ``GET /v1/portforward``: ``{"port": N}``, 0 while down.

With ``SIM_API_KEY`` set, every ``/v1/*`` request needs a matching ``X-API-Key`` header or gets 401, as
Gluetun v3.39.1+ does. The control routes ``/__sim/state`` (GET, and POST with ``vpn``, ``forwarded_port``,
``public_ip``, ``flap_every_s``, ``reset_counters``) need no key, so the Docker ``HEALTHCHECK``
(``python -m aceorch.sim gluetun --healthcheck``) works whatever the key. ``SIM_FLAP_EVERY_S`` flips the VPN
between up and down on its own.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from aceorch.sim._common import (
    ConfigError,
    SimHTTPServer,
    SimRequestHandler,
    flags_from_args,
    install_stop_signals,
    log,
    parse_bool,
    parse_float,
    parse_int,
    parse_port,
)

__all__ = [
    "DEFAULT_PORT",
    "GluetunConfig",
    "GluetunHandler",
    "GluetunSimulator",
    "add_arguments",
    "healthcheck",
    "load_config",
    "run_from_args",
]

DEFAULT_PORT = 8000
DEFAULT_FORWARDED_PORT = 5914
DEFAULT_PUBLIC_IP = "203.0.113.7"


@dataclass
class GluetunConfig:
    """The Gluetun simulator's configuration (environment, overridden by flags)."""

    port: int = DEFAULT_PORT
    host: str = "0.0.0.0"
    api_key: str | None = None
    forwarded_port: int = DEFAULT_FORWARDED_PORT
    public_ip: str = DEFAULT_PUBLIC_IP
    vpn_up: bool = True
    flap_every_s: float | None = None
    log_requests: bool = False


def load_config(env: Mapping[str, str], flags: Mapping[str, str] | None = None) -> GluetunConfig:
    """Build the configuration; ``flags`` (variable name -> value) win over ``env``. Raises ConfigError."""
    flags = flags or {}

    def get(name: str) -> str | None:
        value = flags.get(name, env.get(name))
        return value if value not in (None, "") else None

    cfg = GluetunConfig()
    if (value := get("SIM_PORT")) is not None:
        cfg.port = parse_port("SIM_PORT", value)
    if (value := get("SIM_HOST")) is not None:
        cfg.host = value.strip()
    cfg.api_key = get("SIM_API_KEY")
    if (value := get("SIM_FORWARDED_PORT")) is not None:
        cfg.forwarded_port = parse_int("SIM_FORWARDED_PORT", value, minimum=0, maximum=65535)
    if (value := get("SIM_PUBLIC_IP")) is not None:
        cfg.public_ip = value.strip()
    if (value := get("SIM_VPN")) is not None:
        lowered = value.strip().lower()
        if lowered in ("up", "running"):
            cfg.vpn_up = True
        elif lowered in ("down", "stopped"):
            cfg.vpn_up = False
        else:
            raise ConfigError("SIM_VPN", f"expected up or down, got {value!r}")
    if (value := get("SIM_FLAP_EVERY_S")) is not None:
        flap = parse_float("SIM_FLAP_EVERY_S", value)
        cfg.flap_every_s = flap if flap > 0 else None
    if (value := get("SIM_LOG_REQUESTS")) is not None:
        cfg.log_requests = parse_bool("SIM_LOG_REQUESTS", value)
    return cfg


class GluetunSimulator:
    """State of the simulated VPN, behind one lock."""

    def __init__(self, config: GluetunConfig) -> None:
        self.config = config
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._vpn_up = config.vpn_up
        self._forwarded_port = config.forwarded_port
        self._public_ip = config.public_ip
        self._flap_every_s = config.flap_every_s
        self._next_flip = None if config.flap_every_s is None else self._started + config.flap_every_s
        self._counters: dict[str, int] = {"requests": 0, "unauthorized": 0, "flips": 0}

    def vpn_up(self) -> bool:
        """Whether the simulated tunnel is up now (after any flap that fell due)."""
        self._maybe_flip()
        with self._lock:
            return self._vpn_up

    def _maybe_flip(self) -> None:
        with self._lock:
            now = time.monotonic()
            if self._next_flip is None or self._flap_every_s is None or now < self._next_flip:
                return
            # Catch up on every flip that fell due, so the phase is the same however often we are asked.
            missed = int((now - self._next_flip) // self._flap_every_s) + 1
            if missed % 2:
                self._vpn_up = not self._vpn_up
            self._counters["flips"] += missed
            self._next_flip += missed * self._flap_every_s

    def count(self, key: str) -> None:
        """Add one to a counter."""
        with self._lock:
            self._counters[key] += 1

    def set_vpn(self, up: bool) -> None:
        """Bring the simulated tunnel up or down."""
        with self._lock:
            self._vpn_up = up

    def public_ip_payload(self) -> dict[str, str]:
        """The ``/v1/publicip/ip`` body: the address and place, empty while the VPN is down."""
        up = self.vpn_up()
        with self._lock:
            ip = self._public_ip if up else ""
        return {
            "public_ip": ip,
            "region": "Noord-Holland" if ip else "",
            "country": "Netherlands" if ip else "",
            "city": "Amsterdam" if ip else "",
            "organization": "Simulated VPN B.V." if ip else "",
        }

    def forwarded_port(self) -> int:
        """The forwarded port, 0 while the VPN is down."""
        up = self.vpn_up()
        with self._lock:
            return self._forwarded_port if up else 0

    def state(self) -> dict[str, Any]:
        """The ``GET /__sim/state`` body."""
        up = self.vpn_up()
        with self._lock:
            return {
                "vpn": "up" if up else "down",
                "forwarded_port": self._forwarded_port,
                "public_ip": self._public_ip,
                "flap_every_s": self._flap_every_s,
                "api_key_required": self.config.api_key is not None,
                "uptime_s": round(time.monotonic() - self._started, 3),
                "counters": dict(self._counters),
            }

    def apply_update(self, body: Any) -> str | None:
        """Apply a ``POST /__sim/state`` body; an error message (nothing applied) or None."""
        if not isinstance(body, dict):
            return "body must be a JSON object"
        unknown = sorted(set(body) - {"vpn", "forwarded_port", "public_ip", "flap_every_s", "reset_counters"})
        if unknown:
            return f"unknown field(s): {', '.join(unknown)}"
        if "vpn" in body and body["vpn"] not in ("up", "down"):
            return 'vpn must be "up" or "down"'
        if "forwarded_port" in body:
            port = body["forwarded_port"]
            if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
                return "forwarded_port must be an integer 0-65535"
        if "public_ip" in body and not isinstance(body["public_ip"], str):
            return "public_ip must be a string"
        if "flap_every_s" in body and body["flap_every_s"] is not None:
            flap = body["flap_every_s"]
            if isinstance(flap, bool) or not isinstance(flap, (int, float)) or flap <= 0:
                return "flap_every_s must be a number > 0 or null"
        if "reset_counters" in body and not isinstance(body["reset_counters"], bool):
            return "reset_counters must be a boolean"
        with self._lock:
            if "vpn" in body:
                self._vpn_up = body["vpn"] == "up"
            if "forwarded_port" in body:
                self._forwarded_port = body["forwarded_port"]
            if "public_ip" in body:
                self._public_ip = body["public_ip"]
            if "flap_every_s" in body:
                self._flap_every_s = None if body["flap_every_s"] is None else float(body["flap_every_s"])
                self._next_flip = None if self._flap_every_s is None else time.monotonic() + self._flap_every_s
            if body.get("reset_counters"):
                self._counters = {key: 0 for key in self._counters}
        return None

    def run(self) -> int:
        """Serve until ``stop_event`` is set; returns the exit status."""
        cfg = self.config
        try:
            server = SimHTTPServer((cfg.host, cfg.port), GluetunHandler, self)
        except OSError as exc:
            log(f"gluetun-sim: cannot listen on {cfg.host}:{cfg.port}: {exc}")
            return 1
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="gluetun-sim-serve", daemon=True
        )
        thread.start()
        log(f"gluetun-sim: listening on {cfg.host}:{cfg.port} (vpn {'up' if self._vpn_up else 'down'})")
        try:
            while not self.stop_event.wait(0.1):
                self._maybe_flip()
        finally:
            server.shutdown()
            server.server_close()
        log("gluetun-sim: stopped")
        return 0


class GluetunHandler(SimRequestHandler):
    """One request against the simulated Gluetun control server."""

    @property
    def sim(self) -> GluetunSimulator:
        """The simulated Gluetun this request runs against."""
        return cast(GluetunSimulator, cast(SimHTTPServer, self.server).app)

    def setup(self) -> None:
        """Take the request-logging switch from the simulator's configuration."""
        super().setup()
        self.log_requests = self.sim.config.log_requests

    def authorised(self) -> bool:
        """Whether the request carries the API key (when one is set); answers 401 if not."""
        key = self.sim.config.api_key
        if key is None or self.headers.get("X-API-Key") == key:
            return True
        self.sim.count("unauthorized")
        self.send_text(401, "Unauthorized")
        return False

    def do_GET(self) -> None:
        """The control API's state, then the ``/v1/*`` status, public IP and forwarded-port routes."""
        path = urllib.parse.urlsplit(self.path).path.rstrip("/") or "/"
        sim = self.sim
        if path == "/__sim/state":
            self.send_json(200, sim.state())
            return
        if not path.startswith("/v1/"):
            self.send_text(404, "404 page not found")
            return
        sim.count("requests")
        if not self.authorised():
            return
        if path in ("/v1/vpn/status", "/v1/openvpn/status"):
            self.send_json(200, {"status": "running" if sim.vpn_up() else "stopped"})
        elif path == "/v1/publicip/ip":
            self.send_json(200, sim.public_ip_payload())
        elif path in ("/v1/openvpn/portforwarded", "/v1/portforward"):
            self.send_json(200, {"port": sim.forwarded_port()})
        else:
            self.send_text(404, "404 page not found")

    def do_PUT(self) -> None:
        """``PUT /v1/vpn/status``: start or stop the simulated tunnel."""
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        if not path.startswith("/v1/"):
            self.send_text(404, "404 page not found")
            return
        self.sim.count("requests")
        if not self.authorised():
            return
        if path not in ("/v1/vpn/status", "/v1/openvpn/status"):
            self.send_text(404, "404 page not found")
            return
        body, error = self.read_json_body()
        status = body.get("status") if isinstance(body, dict) else None
        if error is not None or status not in ("running", "stopped"):
            self.send_text(400, 'body must be {"status": "running" | "stopped"}')
            return
        self.sim.set_vpn(status == "running")
        self.send_json(200, {"outcome": status})

    def do_POST(self) -> None:
        """``POST /__sim/state``: change the simulated VPN."""
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        if path != "/__sim/state":
            self.send_json(404, {"error": f"no such route: {path}"})
            return
        body, error = self.read_json_body()
        if error is None:
            error = self.sim.apply_update(body)
        if error is not None:
            self.send_json(400, {"error": error})
        else:
            self.send_json(200, self.sim.state())


def healthcheck(port: int, *, host: str = "127.0.0.1", timeout: float = 3.0) -> int:
    """Ask the local simulator for its state: 0 when the VPN is up, 1 when down or not answering."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/__sim/state")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            print(f"unhealthy: control route answered HTTP {response.status}")
            return 1
        state = json.loads(body)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        print(f"unhealthy: no answer from {host}:{port} ({exc})")
        return 1
    finally:
        conn.close()
    if state.get("vpn") != "up":
        print("unhealthy: VPN is down")
        return 1
    print("healthy: VPN is up")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``aceorch sim gluetun``; each overrides the environment variable named in its help."""
    parser.add_argument("--port", dest="SIM_PORT", default=None, metavar="N", help="listen port [env SIM_PORT, 8000]")
    parser.add_argument("--host", dest="SIM_HOST", default=None, metavar="ADDR", help="listen address [env SIM_HOST]")
    parser.add_argument("--api-key", dest="SIM_API_KEY", default=None, metavar="KEY", help="[env SIM_API_KEY]")
    parser.add_argument(
        "--forwarded-port",
        dest="SIM_FORWARDED_PORT",
        default=None,
        metavar="N",
        help="[env SIM_FORWARDED_PORT]",
    )
    parser.add_argument("--public-ip", dest="SIM_PUBLIC_IP", default=None, metavar="IP", help="[env SIM_PUBLIC_IP]")
    parser.add_argument("--vpn", dest="SIM_VPN", default=None, metavar="up|down", help="initial state [env SIM_VPN]")
    parser.add_argument(
        "--flap-every", dest="SIM_FLAP_EVERY_S", default=None, metavar="S", help="[env SIM_FLAP_EVERY_S]"
    )
    parser.add_argument(
        "--log-requests",
        dest="SIM_LOG_REQUESTS",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log every request on stderr [env SIM_LOG_REQUESTS]",
    )
    parser.add_argument(
        "--healthcheck",
        action="store_true",
        help="query the simulator on this port and exit 1 if the VPN is down or it does not answer",
    )


def run_from_args(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Serve (or, with ``--healthcheck``, probe the local simulator); exit status 2 on a bad value."""
    try:
        config = load_config(env, flags_from_args(args))
    except ConfigError as exc:
        log(f"gluetun-sim: invalid configuration: {exc}")
        return 2
    if args.healthcheck:
        return healthcheck(config.port)
    simulator = GluetunSimulator(config)
    restore = install_stop_signals(simulator.stop_event)
    try:
        return simulator.run()
    finally:
        restore()
