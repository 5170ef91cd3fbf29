"""Several Gluetun VPNs: the set of monitors, which VPN an engine belongs to, where a new engine goes, failover.

:class:`VpnPool` holds one :class:`~aceorch.control.vpn.VpnMonitor` per Gluetun container (one for
``GLUETUN_CONTAINER_NAME``, several for ``GLUETUN_CONTAINER_NAMES``). It is connected while any VPN is.
:meth:`VpnPool.pick` chooses the healthy VPN with the fewest engines for a new one; :func:`pool_round` checks every
VPN once and, with several, marks the engines of a VPN that dropped unhealthy at once (``vpn_failover``), so that
the proxy and acexy choose engines on the others. :func:`start_vpn_monitor` runs it every
GLUETUN_HEALTH_CHECK_INTERVAL_S as a guarded task.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import httpx

from aceorch.aiokits import create_guarded_task
from aceorch.config import Settings
from aceorch.control.vpn import EngineRestarter, VpnMonitor, VpnSignals, VpnView, vpn_round
from aceorch.models import Engine, HealthStatus
from aceorch.runtime.base import Runtime

__all__ = ["ENGINE_VPN_LABEL", "VpnPool", "PoolSignals", "pool_round", "start_vpn_monitor"]

#: The label naming the VPN an engine was started behind.
ENGINE_VPN_LABEL = "aceorch.vpn"
#: How long the second opinion may take: one engine's network status.
ENGINE_OPINION_TIMEOUT_S = 3.0


class Named(Protocol):
    """Anything that names its Gluetun container (a VPN as the provisioner sees it)."""

    container: str | None


class PoolSignals(VpnSignals, Protocol):
    """The VPN loop's reports, with a failover (the stress monitor)."""

    def vpn_failover(self, *, vpn: str, engines: list[str], streams: list[str], to: list[str]) -> None:
        """A VPN dropped while others are up: its engines and streams move."""


class VpnPool:
    """The VPN monitors, one per Gluetun container; connected while any is."""

    def __init__(self, monitors: list[VpnMonitor]) -> None:
        self.monitors = monitors
        #: How many failovers each VPN caused (engines marked unhealthy because their VPN dropped).
        self.failovers: dict[str, int] = {m.container or "": 0 for m in monitors}

    @classmethod
    def build(cls, settings: Settings, *, runtime: Runtime, http: httpx.AsyncClient) -> VpnPool:
        """One monitor per configured Gluetun, each with its port range, control URL and key."""
        names = settings.vpn.names
        if len(names) <= 1:
            return cls([VpnMonitor(settings, runtime=runtime, http=http)])
        ranges = settings.vpn.port_ranges(settings.runtime.port_range_host)
        cap = settings.pool.max_active_replicas
        return cls([
            VpnMonitor(settings, runtime=runtime, http=http, container=name, api_url=url, api_key=key,
                       ports=list(rng)[:cap])
            for name, rng, url, key in zip(names, ranges, settings.vpn.api_urls(), settings.vpn.api_keys(),
                                           strict=True)
        ])

    @classmethod
    def of(cls, vpn: VpnMonitor | VpnPool) -> VpnPool:
        """A pool as it is, or one monitor as a pool of one."""
        return vpn if isinstance(vpn, VpnPool) else cls([vpn])

    @property
    def several(self) -> bool:
        """More than one VPN."""
        return len(self.monitors) > 1

    @property
    def enabled(self) -> bool:
        """VPN mode is on."""
        return self.monitors[0].enabled

    @property
    def connected(self) -> bool:
        """Any VPN is connected."""
        return any(m.connected for m in self.monitors)

    @property
    def forwarded_port(self) -> int | None:
        """The forwarded port of the first connected VPN (the one VPN's, with one)."""
        return next((m.forwarded_port for m in self.monitors if m.connected), None)

    def by_name(self, name: str | None) -> VpnMonitor | None:
        """The monitor of that Gluetun container."""
        return next((m for m in self.monitors if m.container == name), None)

    def member(self, engine: Engine) -> VpnMonitor | None:
        """The VPN an engine runs behind: its label, else the VPN whose port range holds its host port."""
        if not self.several:
            return self.monitors[0]
        found = self.by_name(engine.labels.get(ENGINE_VPN_LABEL))
        if found is not None:
            return found
        return self.owner(engine.host_http_port)

    def owner(self, port: int) -> VpnMonitor | None:
        """The VPN whose port range holds ``port``."""
        return next((m for m in self.monitors if port in m.ports), None)

    def engine_labels(self, target: Named) -> dict[str, str]:
        """The label naming the VPN on an engine started behind it."""
        return {ENGINE_VPN_LABEL: target.container or ""}

    def counts(self, engines: Iterable[Engine]) -> dict[str, int]:
        """Engines per VPN."""
        out = {m.container or "": 0 for m in self.monitors}
        for engine in engines:
            m = self.member(engine)
            if m is not None:
                out[m.container or ""] += 1
        return out

    def held(self, engine: Engine) -> bool:
        """The engine's VPN is down while others carry the load: it stays unhealthy, unprobed, until it is back."""
        if not self.several:
            return False
        m = self.member(engine)
        return m is not None and m.down_since is not None and not m.connected

    def pick(self, taken: frozenset[int]) -> VpnMonitor | None:
        """The connected VPN with the fewest engines (ports taken in its range, starts in flight included)."""
        best: tuple[int, int, VpnMonitor] | None = None
        for i, m in enumerate(self.monitors):
            if not m.connected:
                continue
            used = sum(1 for p in m.ports if p in taken)
            if used >= len(m.ports):
                continue
            if best is None or (used, i) < best[:2]:
                best = (used, i, m)
        return best[2] if best else None

    def bind(self, engines: Callable[[], list[Engine]]) -> None:
        """Give each monitor its second opinion: one running engine in its namespace, asked for its network."""
        for monitor in self.monitors:
            monitor.ask_engine = _asker(self, monitor, engines)

    def view(self, engines: Iterable[Engine] = ()) -> VpnView:
        """The one-VPN shape: the VPN itself, or with several a summary connected while any is, and ``vpns``."""
        if not self.several:
            return self.monitors[0].view()
        counts = self.counts(engines)
        views = [dataclasses.replace(m.view(), engines=counts.get(m.container or "", 0)) for m in self.monitors]
        up = [v for v in views if v.connected]
        first = up[0] if up else views[0]
        return VpnView(enabled=True, status=first.status, container=first.container,
                       health="healthy" if up else first.health, connected=bool(up),
                       forwarded_port=first.forwarded_port if up else None, public_ip=first.public_ip,
                       control_server=first.control_server,
                       last_check=max((v.last_check for v in views if v.last_check), default=None),
                       error=None if up else first.error, signal=first.signal, vpns=views)


def _asker(pool: VpnPool, monitor: VpnMonitor, engines: Callable[[], list[Engine]]) -> Any:
    async def ask() -> bool | None:
        """Whether one engine in this VPN's namespace says it is connected (None: no engine answered)."""
        for engine in engines():
            if not engine.running or pool.member(engine) is not monitor:
                continue
            url = f"http://{engine.host}:{engine.port}/server/api"
            try:
                resp = await monitor.http.get(url, params={"api_version": "3",
                                                           "method": "get_network_connection_status"},
                                              timeout=ENGINE_OPINION_TIMEOUT_S)
                result = resp.json().get("result") or {}
            except (httpx.HTTPError, ValueError, AttributeError):
                continue
            if isinstance(result, dict):
                return result.get("connected") is True
        return None

    return ask


def fail_over(pool: VpnPool, monitor: VpnMonitor, engines: list[Engine], signals: PoolSignals,
              record: Callable[..., None]) -> list[Engine]:
    """A VPN dropped: mark its engines unhealthy now (never replaced for it), report what moves; the engines."""
    moved = [e for e in engines if pool.member(e) is monitor]
    for engine in moved:
        engine.health_status = HealthStatus.UNHEALTHY
        engine.unhealthy_since = None
    name = monitor.container or ""
    to = [m.container or "" for m in pool.monitors if m.connected and m is not monitor]
    streams = [s for e in moved for s in e.streams]
    pool.failovers[name] = pool.failovers.get(name, 0) + 1
    record("vpn", operation="failover", vpn=name, engines=[e.container_name for e in moved], streams=streams, to=to)
    signals.vpn_failover(vpn=name, engines=[e.container_name for e in moved], streams=streams, to=to)
    return moved


class PoolFleet(EngineRestarter, Protocol):
    """What the VPN loop needs from the fleet: its engines, restarts, and the health gauges."""

    def engines(self) -> list[Engine]:
        """Every engine."""

    def update_gauges(self) -> None:
        """Refresh the engines-by-health gauge."""


async def pool_round(
    *,
    settings: Settings,
    pool: VpnPool,
    fleet: PoolFleet,
    signals: PoolSignals,
    record: Callable[..., None],
    on_connected: Callable[[bool], None],
    on_restart: Callable[[str, bool, str], None] | None = None,
) -> None:
    """Check every VPN once; with several, a VPN that drops fails its engines over to the others."""
    if not pool.several:
        monitor = pool.monitors[0]
        await vpn_round(settings=settings, monitor=monitor, fleet=fleet, signals=signals, record=record,
                        on_connected=on_connected, on_restart=on_restart)
        return

    def down(monitor: VpnMonitor) -> None:
        fail_over(pool, monitor, fleet.engines(), signals, record)
        fleet.update_gauges()

    for monitor in pool.monitors:
        await vpn_round(settings=settings, monitor=monitor, fleet=fleet, signals=signals, record=record,
                        on_connected=lambda _c: None, named=True,
                        members=lambda e, m=monitor: pool.member(e) is m,  # type: ignore[misc]
                        on_down=down, on_restart=on_restart)
    on_connected(pool.connected)


def start_vpn_monitor(
    *,
    settings: Settings,
    pool: VpnPool,
    fleet: PoolFleet,
    signals: PoolSignals,
    record: Callable[..., None],
    on_connected: Callable[[bool], None],
    stop: asyncio.Event,
    on_restart: Callable[[str, bool, str], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
) -> asyncio.Task[None]:
    """The ``vpn monitor`` task: :func:`pool_round` every GLUETUN_HEALTH_CHECK_INTERVAL_S until ``stop`` is set."""

    async def once() -> None:
        await pool_round(settings=settings, pool=pool, fleet=fleet, signals=signals, record=record,
                         on_connected=on_connected, on_restart=on_restart)

    return create_guarded_task("vpn monitor", once, stop=stop,
                               interval=lambda: float(settings.vpn.gluetun_health_check_interval_s), on_error=on_error)
