"""Watching Gluetun (gluetun-api.md): Docker state, Docker health, then the control server, cheapest first.

:func:`derive_health` is the pure rule; :class:`VpnMonitor` gathers the signals and keeps the last answer, which is
what ``/vpn/status``, ``/orchestrator/status`` and the provisioning gate read.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from aceorch.config import Settings
from aceorch.errors import ContainerNotFound, RuntimeFailure
from aceorch.models import format_time, utcnow
from aceorch.runtime.base import ContainerInfo, Runtime

__all__ = ["ControlView", "derive_health", "VpnMonitor", "VpnCheck"]


@dataclass(frozen=True)
class ControlView:
    """What the control server said: ``state`` is ok | unauthorized | unreachable."""

    state: str
    vpn_running: bool | None = None
    public_ip: str | None = None


def derive_health(container_status: str, docker_health: str | None, control: ControlView | None) -> tuple[str, str]:
    """(health, signal): health is healthy | unhealthy | starting; signal names the deciding check."""
    if container_status != "running":
        return "unhealthy", "container_state"
    if docker_health == "unhealthy":
        return "unhealthy", "docker_health"
    if control is not None and control.state == "ok":
        if control.vpn_running is False:
            return "unhealthy", "control_server"
        if not control.public_ip:
            return "starting", "public_ip"
        return "healthy", "control_server"
    if docker_health == "healthy":
        return "healthy", "docker_health"
    return "starting", "docker_health" if docker_health else "control_server"


@dataclass
class VpnCheck:
    status: str = "unknown"
    health: str = "unknown"
    signal: str | None = None
    control_server: str | None = None
    public_ip: str | None = None
    error: str | None = None
    duration_ms: float = 0.0


class VpnMonitor:
    def __init__(self, settings: Settings, *, runtime: Runtime, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.runtime = runtime
        self.http = http
        self.enabled = settings.vpn_enabled
        self.container = settings.gluetun_container_name
        self.last = VpnCheck()
        self.last_check_at: datetime | None = None
        self._forwarded: int | None = None
        self._forwarded_at = 0.0
        self._base_url: str | None = settings.gluetun_api_url

    @property
    def connected(self) -> bool:
        return self.enabled and self.last.health == "healthy"

    @property
    def forwarded_port(self) -> int | None:
        return self._forwarded if self.connected else None

    def invalidate_port_cache(self) -> None:
        self._forwarded_at = 0.0

    async def _resolve_base(self, info: ContainerInfo) -> str | None:
        if self.settings.gluetun_api_url:
            return self.settings.gluetun_api_url.rstrip("/")
        name, port = self.container or "", self.settings.gluetun_api_port
        try:
            await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
            return f"http://{name}:{port}"
        except OSError:
            pass
        if info.ip:
            return f"http://{info.ip}:{port}"
        return None

    def _headers(self) -> dict[str, str]:
        key = self.settings.gluetun_api_key
        return {"X-API-Key": key.get_secret_value()} if key else {}

    async def _get(self, base: str, *paths: str) -> httpx.Response | None:
        for path in paths:
            try:
                resp = await self.http.get(base + path, headers=self._headers(), timeout=3.0)
            except httpx.HTTPError:
                return None
            if resp.status_code == 404 and path != paths[-1]:
                continue
            return resp
        return None

    async def _control(self, base: str | None) -> ControlView:
        if base is None:
            return ControlView("unreachable")
        resp = await self._get(base, "/v1/vpn/status", "/v1/openvpn/status")
        if resp is None:
            return ControlView("unreachable")
        if resp.status_code == 401:
            return ControlView("unauthorized")
        try:
            running = resp.json().get("status") == "running"
        except ValueError:
            return ControlView("unreachable")
        ip_resp = await self._get(base, "/v1/publicip/ip")
        public_ip = None
        if ip_resp is not None and ip_resp.status_code == 200:
            try:
                public_ip = ip_resp.json().get("public_ip") or None
            except ValueError:
                public_ip = None
        return ControlView("ok", vpn_running=running, public_ip=public_ip)

    async def _refresh_port(self, base: str | None) -> None:
        ttl = self.settings.gluetun_port_cache_ttl_s
        if base is None or (self._forwarded_at and time.monotonic() - self._forwarded_at < ttl):
            return
        resp = await self._get(base, "/v1/openvpn/portforwarded", "/v1/portforward")
        if resp is not None and resp.status_code == 200:
            try:
                port = int(resp.json().get("port") or 0)
            except (ValueError, TypeError, AttributeError):
                port = 0
            self._forwarded = port or None
            self._forwarded_at = time.monotonic()

    async def check(self) -> tuple[VpnCheck, str]:
        """Run every signal once. Returns the new check and the previous health."""
        previous = self.last.health
        begin = time.perf_counter()
        result = VpnCheck()
        try:
            info = await self.runtime.inspect(self.container or "")
        except ContainerNotFound:
            result.status, result.health, result.signal = "not_found", "unhealthy", "container_state"
        except RuntimeFailure as exc:
            result.status, result.health, result.signal, result.error = "error", "unhealthy", "runtime", str(exc)
        else:
            result.status = info.status
            control: ControlView | None = None
            if info.running and info.health != "unhealthy":
                base = await self._resolve_base(info)
                control = await self._control(base)
                result.control_server = control.state
                result.public_ip = control.public_ip
                result.health, result.signal = derive_health(info.status, info.health, control)
                if result.health == "healthy":
                    await self._refresh_port(base)
            else:
                result.health, result.signal = derive_health(info.status, info.health, None)
        result.duration_ms = (time.perf_counter() - begin) * 1000
        if result.health != previous:
            self.invalidate_port_cache()
        self.last = result
        self.last_check_at = utcnow()
        return result, previous

    def public(self) -> dict[str, Any]:
        if not self.enabled:
            return {
                "enabled": False, "status": "disabled", "container_name": None, "container": None,
                "health": "unknown", "connected": False, "forwarded_port": None, "last_check": None,
                "last_check_at": None,
            }
        last = format_time(self.last_check_at)
        body: dict[str, Any] = {
            "enabled": True,
            "status": self.last.status,
            "container_name": self.container,
            "container": self.container,
            "health": self.last.health,
            "connected": self.connected,
            "forwarded_port": self.forwarded_port,
            "public_ip": self.last.public_ip,
            "control_server": self.last.control_server,
            "last_check": last,
            "last_check_at": last,
        }
        if self.last.error:
            body["error"] = self.last.error
        return body
