"""Watching Gluetun: Docker state, Docker health, then its control server, cheapest first.

:func:`derive_health` is the pure rule; :class:`VpnMonitor` gathers the signals and keeps the last answer, which is
what ``/vpn/status``, ``/orchestrator/status`` and the provisioning gate read. :func:`vpn_round` checks once and,
once a recovery has held for VPN_RECOVERY_STABILIZE_S, restarts the engines that predate it;
:func:`start_vpn_monitor` runs it every GLUETUN_HEALTH_CHECK_INTERVAL_S as a guarded task.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import httpx
from pydantic import SecretStr

from aceorch.config import Settings
from aceorch.errors import ContainerNotFound, RuntimeFailure
from aceorch.models import Engine, utcnow
from aceorch.runtime.base import ContainerInfo, Runtime

__all__ = [
    "ControlView",
    "derive_health",
    "VpnMonitor",
    "VpnCheck",
    "EngineRestarter",
    "VpnSignals",
    "vpn_round",
    "restart_due",
]

logger = logging.getLogger(__name__)


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
    """One check's outcome: container status, derived health, the deciding signal and the control server's view."""

    status: str = "unknown"
    health: str = "unknown"
    signal: str | None = None
    control_server: str | None = None
    public_ip: str | None = None
    error: str | None = None
    duration_ms: float = 0.0


@dataclass(frozen=True)
class VpnView:
    """The VPN's state as the status read models show it; ``container_name`` and ``last_check_at`` are aliases."""

    enabled: bool
    status: str
    container: str | None
    health: str
    connected: bool
    forwarded_port: int | None
    public_ip: str | None
    control_server: str | None
    last_check: datetime | None
    error: str | None
    #: The check that decided the health (container_state, docker_health, control_server, engine, ...).
    signal: str | None = None
    #: Why this VPN is blocked, in words, while it is (a missing container).
    reason: str | None = None
    #: Engines behind this VPN, and its host port range (with several VPNs).
    engines: int | None = None
    port_range: str | None = None
    #: With several VPNs: one entry each (None with one).
    vpns: list[VpnView] | None = None

    @property
    def name(self) -> str | None:
        """The VPN's name: its Gluetun container's."""
        return self.container

    @property
    def container_name(self) -> str | None:
        """The Gluetun container's name (the same as ``container``)."""
        return self.container

    @property
    def last_check_at(self) -> datetime | None:
        """When the last check ended (the same as ``last_check``)."""
        return self.last_check


class VpnMonitor:
    """Runs the VPN checks and keeps the last answer and the current outage/recovery times."""

    def __init__(
        self,
        settings: Settings,
        *,
        runtime: Runtime,
        http: httpx.AsyncClient,
        container: str | None = None,
        api_url: str | None = None,
        api_key: SecretStr | None = None,
        ports: list[int] | None = None,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.http = http
        self.enabled = settings.vpn_enabled
        self.container: str | None = container or next(iter(settings.vpn.names), None)
        self.last = VpnCheck()
        self.last_check_at: datetime | None = None
        self._forwarded: int | None = None
        self._forwarded_at = 0.0
        self._base_url: str | None = api_url if container else settings.vpn.gluetun_api_url
        self._api_key = api_key if container else settings.vpn.gluetun_api_key
        #: The host ports of this VPN's engines (its Gluetun publishes them).
        self.ports: list[int] = ports if ports is not None else settings.vpn_port_pool
        #: Asks one engine in this VPN's namespace whether it is connected (None: no engine to ask).
        self.ask_engine: Callable[[], Awaitable[bool | None]] | None = None
        #: Since when the VPN has been down without a break (None while healthy or not yet seen healthy).
        self.unhealthy_since: float | None = None
        #: When aceorch last restarted this Gluetun (monotonic), for the restart breaker.
        self.restarted_at: float | None = None
        #: A restart the breaker refused, already recorded for this outage.
        self.restart_refused = False
        #: Why the VPN is blocked, in words, while it is (``container missing``, ...).
        self.reason: str | None = None
        #: When the VPN last went from healthy to down (None while up).
        self.down_since: datetime | None = None
        #: When it came back after an outage, until the engines have been restarted.
        self.recovered_at: datetime | None = None

    @property
    def connected(self) -> bool:
        """The VPN is enabled and its last check was healthy."""
        return self.enabled and self.last.health == "healthy"

    @property
    def forwarded_port(self) -> int | None:
        """The port Gluetun forwards (while connected)."""
        return self._forwarded if self.connected else None

    def invalidate_port_cache(self) -> None:
        """Ask Gluetun for the forwarded port again at the next healthy check."""
        self._forwarded_at = 0.0

    async def _resolve_base(self, info: ContainerInfo) -> str | None:
        if self._base_url:
            return self._base_url.rstrip("/")
        name, port = self.container or "", self.settings.vpn.gluetun_api_port
        try:
            await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
            return f"http://{name}:{port}"
        except OSError:
            pass
        if info.ip:
            return f"http://{info.ip}:{port}"
        return None

    def _headers(self) -> dict[str, str]:
        key = self._api_key
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
        ttl = self.settings.vpn.gluetun_port_cache_ttl_s
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
            result.error = f"Gluetun container {self.container} not found (removed?)"
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
                if control.state == "unreachable" and self.ask_engine is not None:
                    answer = await self.ask_engine()
                    if answer is not None:
                        result.health, result.signal = ("healthy" if answer else "unhealthy"), "engine"
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

    def view(self) -> VpnView:
        """The VPN monitor's last check as a read model (what ``/vpn/status`` shows)."""
        if not self.enabled:
            return VpnView(enabled=False, status="disabled", container=None, health="unknown", connected=False,
                           forwarded_port=None, public_ip=None, control_server=None, last_check=None, error=None)
        return VpnView(
            enabled=True,
            status=self.last.status,
            container=self.container,
            health=self.last.health,
            connected=self.connected,
            forwarded_port=self.forwarded_port,
            public_ip=self.last.public_ip,
            control_server=self.last.control_server,
            last_check=self.last_check_at,
            error=self.last.error or None,
            signal=self.last.signal,
            reason=self.reason,
            port_range=f"{self.ports[0]}-{self.ports[-1]}" if self.ports else None,
        )


class EngineRestarter(Protocol):
    """Restarts the engines that predate a VPN recovery."""

    async def restart_engines_created_before(
        self, when: datetime, *, only: Callable[[Engine], bool] | None = None, vpn: str | None = None
    ) -> int:
        """Restart them (those ``only`` accepts; the records name ``vpn``); how many restarted."""


class VpnSignals(Protocol):
    """Where the VPN loop reports state changes (the stress monitor)."""

    def vpn_state(self, *, connected: bool, signal: str | None = None, vpn: str | None = None) -> None:
        """One check's outcome (``vpn`` names the VPN when there are several)."""

    def vpn_engines_restarted(self, count: int, vpn: str | None = None) -> None:
        """Engines restarted after a recovery."""


def restart_due(monitor: VpnMonitor, *, now: float, timeout_s: int, window_s: int) -> str | None:
    """Whether to force a Gluetun restart now: ``restart``, ``refused`` (the breaker holds it), or None."""
    if timeout_s <= 0 or monitor.unhealthy_since is None or now - monitor.unhealthy_since < timeout_s:
        return None
    if monitor.last.status == "not_found":
        return None  # nothing to restart: a removed container blocks its VPN until it is back
    if monitor.restarted_at is not None and now - monitor.restarted_at < window_s:
        return None if monitor.restart_refused else "refused"
    return "restart"


async def _self_heal(settings: Settings, monitor: VpnMonitor, record: Callable[..., None],
                     on_restart: Callable[[str, bool, str], None] | None) -> None:
    """Restart a Gluetun that stayed unhealthy past VPN_UNHEALTHY_RESTART_TIMEOUT_S, at most once per window."""
    now = time.monotonic()
    due = restart_due(monitor, now=now, timeout_s=settings.vpn.vpn_unhealthy_restart_timeout_s,
                      window_s=settings.vpn.vpn_restart_window_s)
    if due is None:
        return
    name = monitor.container or ""
    if due == "refused":
        monitor.restart_refused = True
        why = f"unhealthy again within VPN_RESTART_WINDOW_S ({settings.vpn.vpn_restart_window_s}s) of a restart"
        record("vpn", operation="gluetun_restart", vpn=name, success=False, restarted=False, reason=why)
        logger.warning("Gluetun %s is unhealthy again soon after a forced restart; not restarting it again", name)
        if on_restart is not None:
            on_restart(name, False, why)
        return
    monitor.restarted_at, monitor.restart_refused = now, False
    monitor.unhealthy_since = now
    begin = time.perf_counter()
    why = f"unhealthy for {settings.vpn.vpn_unhealthy_restart_timeout_s}s (VPN_UNHEALTHY_RESTART_TIMEOUT_S)"
    try:
        await monitor.runtime.restart(name, timeout=10)
    except (ContainerNotFound, RuntimeFailure) as exc:
        record("vpn", operation="gluetun_restart", vpn=name, success=False, restarted=False, reason=why,
               error=str(exc), duration_ms=(time.perf_counter() - begin) * 1000)
        return
    logger.warning("Gluetun %s restarted: %s", name, why)
    record("vpn", operation="gluetun_restart", vpn=name, success=True, restarted=True, reason=why,
           duration_ms=(time.perf_counter() - begin) * 1000)
    if on_restart is not None:
        on_restart(name, True, why)


async def vpn_round(
    *,
    settings: Settings,
    monitor: VpnMonitor,
    fleet: EngineRestarter,
    signals: VpnSignals,
    record: Callable[..., None],
    on_connected: Callable[[bool], None],
    named: bool = False,
    members: Callable[[Engine], bool] | None = None,
    on_down: Callable[[VpnMonitor], None] | None = None,
    on_restart: Callable[[str, bool, str], None] | None = None,
) -> None:
    """Check one VPN once, record transitions, restart a Gluetun stuck unhealthy, and restart its old engines
    once a recovery has held long enough. ``named`` adds the VPN's name to the stress signals (several VPNs);
    ``members`` picks its engines; ``on_down`` runs when it goes from healthy to down."""
    check, previous = await monitor.check()
    name = monitor.container
    on_connected(monitor.connected)
    record("vpn", operation="health_check", vpn=name, status=check.status, health=check.health,
           connected=monitor.connected, signal=check.signal, control_server=check.control_server,
           forwarded_port=monitor.forwarded_port, duration_ms=check.duration_ms, success=True)
    now = utcnow()
    if check.status == "not_found" and monitor.reason is None:
        monitor.reason = f"Gluetun container {name} is missing; this VPN is blocked until it is back"
        logger.error("%s", monitor.reason)
    elif check.status != "not_found":
        monitor.reason = None
    if check.health != previous:
        record("vpn", operation="transition", vpn=name, **{"from": previous, "to": check.health},
               signal=check.signal)
        if previous == "healthy":
            monitor.down_since = now
            monitor.recovered_at = None
            if on_down is not None:
                on_down(monitor)
        if check.health == "healthy" and monitor.down_since is not None:
            monitor.recovered_at = now
    if check.health == "healthy":
        monitor.unhealthy_since = None
        monitor.restart_refused = False
    elif check.health == "unhealthy" and monitor.unhealthy_since is None:
        monitor.unhealthy_since = time.monotonic()
    if named:
        signals.vpn_state(connected=monitor.connected, signal=check.signal, vpn=name)
    else:
        signals.vpn_state(connected=monitor.connected, signal=check.signal)
    await _self_heal(settings, monitor, record, on_restart)
    if (
        monitor.recovered_at is not None
        and monitor.connected
        and now - monitor.recovered_at >= timedelta(seconds=settings.vpn.vpn_recovery_stabilize_s)
    ):
        recovered_at = monitor.recovered_at
        monitor.recovered_at = None
        monitor.down_since = None
        restarted = 0
        if settings.vpn.vpn_restart_engines_on_reconnect:
            restarted = await fleet.restart_engines_created_before(recovered_at, only=members, vpn=name)
        if named:
            signals.vpn_engines_restarted(restarted, vpn=name)
        else:
            signals.vpn_engines_restarted(restarted)
