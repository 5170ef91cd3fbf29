"""The embedded proxy's way into the service: engines, engine starts, stream events, health reports, and the
engine-health feed that moves streams off engines the orchestrator gave up on.

It answers the proxy's orchestrator interface (:class:`aceorch.proxy.client.OrchestratorClient`, matched by
shape: the service sits below the proxy and does not import it) by calling the components directly, so that
proxy streams land in the same stream state as those any other proxy reports. :func:`report_hang` is the one
path by which a proxy's report of a hung engine reaches health, in-process and through the API alike.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aceorch.control import health
from aceorch.control.admission import ProvisionRequest
from aceorch.models import Engine, HealthStatus, StreamStart, utcnow

if TYPE_CHECKING:
    from aceorch.service.core import Service

__all__ = ["ProxyLink", "report_hang", "WATCHED_EVENTS"]

#: Event types of the service's live feed after which the engines' health may have changed.
WATCHED_EVENTS = frozenset({"engine", "vpn"})
#: Longest wait between two looks at the engines while the feed is silent (a safety net, not the signal).
RESYNC_S = 30.0


def report_hang(service: Service, container_id: str, reason: str, request_id: str | None,
                *, source: str = "proxy") -> Engine | None:
    """A proxy saw the engine hang under a live stream: count it as failed probes up to the threshold, so that it
    is unhealthy now and the pool replaces it. None when the engine is unknown.

    Neither a breaker nor the engine's start record is touched: a report weighs exactly what that many failed
    health probes weigh.
    """
    engine = service.fleet.get(container_id)
    if engine is None:
        return None
    if engine.health_status is HealthStatus.UNREACHABLE:
        return engine
    old = engine.health_status
    threshold = service.settings.health.health_failure_threshold
    for _ in range(max(1, threshold - engine.consecutive_failures)):
        health.apply_probe(engine, False, utcnow(), threshold)
    service.record("health", operation="proxy_reported_hang", container_id=container_id, reason=reason,
                   request_id=request_id, health_status=engine.health_status.value, source=source)
    if engine.health_status is not old:
        service.record("health", component="health", operation="status_transition", container_id=container_id,
                       container_name=engine.container_name, reason=reason, source=source,
                       **{"from": old.value, "to": engine.health_status.value})
    service.fleet.update_gauges()
    return engine


class ProxyLink:
    """The in-process orchestrator client of the embedded proxy."""

    def __init__(self, service: Service) -> None:
        self._service = service

    async def engines(self) -> list[Engine]:
        """Every engine of the fleet that is not being stopped."""
        return self._usable()

    def _usable(self) -> list[Engine]:
        fleet = self._service.fleet
        return [e for e in fleet.engines() if not fleet.is_stopping(e.container_id)]

    async def p2p_holders(self) -> frozenset[str]:
        """The engines holding a VPN's forwarded P2P port (one per VPN)."""
        return frozenset(e.container_id for e in self._service.fleet.engines() if e.p2p_port is not None)

    async def provision(self, request_id: str | None) -> Engine:
        """Start one engine (the proxy asks as a client would); raises ProvisioningError."""
        engine, _ = await self._service.provisioning.provision(ProvisionRequest(source="api", request_id=request_id))
        return engine

    async def stream_started(self, start: StreamStart, request_id: str | None) -> str:
        """Record the stream in the service's stream state; its id."""
        return (await self._service.streams.started(start)).id

    async def stream_ended(self, container_id: str, stream_id: str, reason: str, request_id: str | None) -> None:
        """End the stream (an engine left without streams may then be auto-deleted)."""
        await self._service.streams.ended(container_id, stream_id, reason)

    async def report_unhealthy(self, container_id: str, reason: str, request_id: str | None) -> None:
        """Count the hang as failed probes up to the threshold: the engine is unhealthy and will be replaced."""
        report_hang(self._service, container_id, reason, request_id)

    async def watch_engines(self, changed: Callable[[dict[str, Engine], float], None], *, interval_s: float) -> None:
        """Call ``changed(engines, asof)`` after every engine or VPN event of the service's live feed (the one
        behind ``/events/stream``: health transitions, engine stops, VPN drops), until the service stops.

        ``interval_s`` is not needed: the feed notifies.
        """
        history = self._service.history
        while True:
            with history.subscribe() as queue:
                changed(*self._snapshot())
                while history.is_subscribed(queue):
                    try:
                        event = await asyncio.wait_for(queue.get(), timeout=RESYNC_S)
                    except TimeoutError:
                        changed(*self._snapshot())
                        continue
                    if event is None:
                        return  # the service is stopping
                    if event.get("type") in WATCHED_EVENTS:
                        changed(*self._snapshot())
            # Dropped for falling behind: subscribe again, starting from a fresh look.

    def _snapshot(self) -> tuple[dict[str, Engine], float]:
        asof = time.monotonic()
        return {e.container_id: e for e in self._usable()}, asof

    async def aclose(self) -> None:
        """Nothing to release: the service owns its clients."""
