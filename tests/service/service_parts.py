"""The service's components wired as the Service wires them, over the in-memory runtime and fake engine APIs.

:func:`build_parts` builds the fleet, streams, provisioning, collector and status, minus the loops. Engines answer
over an ``httpx.MockTransport``: a port in ``Parts.answering`` answers ``get_status``; ``Parts.stats[port]`` is
what its ``stat_url`` returns. Every debug record lands in ``Parts.records``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from aceorch.config import Settings
from aceorch.control.admission import ProvisionRequest
from aceorch.control.breaker import Breakers, CircuitBreaker
from aceorch.control.ports import PortAllocator
from aceorch.control.vpn_pool import VpnPool
from aceorch.debuglog.stress import StressMonitor
from aceorch.debuglog.writer import DebugLog
from aceorch.models import Engine
from aceorch.runtime.fake import InMemoryRuntime
from aceorch.service.collector import Collector
from aceorch.service.fleet import Fleet
from aceorch.service.liveness import Liveness
from aceorch.service.metrics import Metrics
from aceorch.service.provisioning import Provisioning
from aceorch.service.status import Status
from aceorch.service.streams import Streams
from aceorch.store import make_store
from aceorch.store.base import Store


@dataclass
class Parts:
    """The wired components and the fakes behind them."""

    settings: Settings
    runtime: InMemoryRuntime
    store: Store
    http: httpx.AsyncClient
    stop: asyncio.Event
    liveness: Liveness
    fleet: Fleet
    streams: Streams
    provisioning: Provisioning
    collector: Collector
    status: Status
    breakers: Breakers
    ports: PortAllocator
    records: list[tuple[str, dict[str, Any]]]
    answering: set[int] = field(default_factory=set)
    stats: dict[int, Any] = field(default_factory=dict)
    #: The VPNs (a pool of one monitor with one Gluetun); ports in ``offline`` say their network is down.
    vpn: Any = None
    offline: set[int] = field(default_factory=set)

    def ops(self, category: str) -> list[dict[str, Any]]:
        """The debug records of one category."""
        return [fields for cat, fields in self.records if cat == category]

    async def engine(self, **labels: str) -> Engine:
        """Provision one engine (it answers from now on)."""
        engine, _ = await self.provisioning.provision(ProvisionRequest(labels=labels))
        self.answering.add(engine.port)
        return engine

    async def settle(self) -> None:
        """Wait until every adoption and auto-delete in flight has ended."""
        await self.fleet.wait_adopted()
        pending = self.streams.pending_tasks()
        if pending:
            await asyncio.wait(pending)


def _engine_api(parts: list[Parts]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        p = parts[0]
        port = request.url.port or 80
        if port not in p.answering:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/server/api" and request.url.params.get("method") == "get_network_connection_status":
            return httpx.Response(200, json={"result": {"connected": port not in p.offline}})
        if request.url.path == "/server/api":
            return httpx.Response(200, json={"result": {"playlist_loaded": True}})
        if request.url.path.startswith("/ace/stat"):
            body = p.stats.get(port)
            return httpx.Response(200, json=body) if body is not None else httpx.Response(500)
        if request.url.path.startswith("/ace/cmd"):
            return httpx.Response(200, json={"response": "ok"})
        return httpx.Response(404)

    return httpx.MockTransport(handle)



async def build_parts(make_settings: Callable[..., Settings], **overrides: Any) -> Parts:
    """Build and open the components with these settings overrides."""
    values: dict[str, Any] = {"provision_wait_for": "running", "runtime": "docker", "startup_timeout_s": 2}
    values.update(overrides)
    settings = make_settings(**values)
    runtime = InMemoryRuntime()
    store = make_store(settings.api.db_url)
    await store.open()
    records: list[tuple[str, dict[str, Any]]] = []

    def record(category: str, **fields: Any) -> None:
        records.append((category, fields))

    holder: list[Parts] = []
    http = httpx.AsyncClient(transport=_engine_api(holder))
    stop = asyncio.Event()
    metrics = Metrics()
    stress = StressMonitor(DebugLog(settings, version="test"), settings)
    breakers = Breakers(
        [CircuitBreaker("general", failure_threshold=3, recovery_timeout=60),
         CircuitBreaker("replacement", failure_threshold=3, recovery_timeout=60)],
        record=record,
    )
    vpn = VpnPool.build(settings, runtime=runtime, http=http)
    liveness = Liveness(runtime=runtime, store=store, record=record,
                        monitor_interval_s=settings.pool.monitor_interval_s)
    ports = PortAllocator()
    fleet = Fleet(settings, runtime=runtime, store=store, http=http, ports=ports, metrics=metrics, record=record,
                  stop=stop, in_container=False)
    streams = Streams(settings, fleet=fleet, store=store, http=http, metrics=metrics, record=record, stop=stop)
    provisioning = Provisioning(
        settings, runtime=runtime, fleet=fleet, streams=streams, liveness=liveness, breakers=breakers,
        ports=ports, vpn=vpn, http=http, metrics=metrics, stress=stress, record=record, in_container=False,
    )
    fleet.bind(streams=streams, starts=provisioning.provisioner)
    fleet.held = vpn.held
    vpn.bind(fleet.engines)
    collector = Collector(fleet=fleet, streams=streams, http=http, metrics=metrics, record=record, runtime=runtime,
                          cache_dir=settings.runtime.engine_cache_dir,
                          cache_cleanup_idle_s=settings.runtime.engine_cache_cleanup_idle_s)
    status = Status(settings, runtime_name=runtime.name, fleet=fleet, streams=streams,
                    provisioning=provisioning, liveness=liveness, breakers=breakers, vpn=vpn)
    assert await liveness.check_runtime()
    p = Parts(settings=settings, runtime=runtime, store=store, http=http, stop=stop, liveness=liveness,
              fleet=fleet, streams=streams, provisioning=provisioning, collector=collector, status=status,
              breakers=breakers, ports=ports, records=records, vpn=vpn)
    holder.append(p)
    return p


async def close_parts(p: Parts) -> None:
    """Stop what the components started, then close the HTTP client and the store."""
    p.stop.set()
    p.streams.cancel_timers()
    pending = p.fleet.pending_tasks() + p.streams.pending_tasks() + p.provisioning.pending_tasks()
    if pending:
        await asyncio.wait(pending)
    await p.http.aclose()
    await p.store.aclose()
