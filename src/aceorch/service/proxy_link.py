"""The embedded proxy's way into the service: engines, engine starts, stream events and health reports.

It answers the proxy's orchestrator interface (:class:`aceorch.proxy.client.OrchestratorClient`, matched by
shape: the service sits below the proxy and does not import it) by calling the components directly, so that
proxy streams land in the same stream state as those any other proxy reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aceorch.control import health
from aceorch.control.admission import ProvisionRequest
from aceorch.models import Engine, HealthStatus, StreamStart, utcnow

if TYPE_CHECKING:
    from aceorch.service.core import Service

__all__ = ["ProxyLink"]


class ProxyLink:
    """The in-process orchestrator client of the embedded proxy."""

    def __init__(self, service: Service) -> None:
        self._service = service

    async def engines(self) -> list[Engine]:
        """Every engine of the fleet that is not being stopped."""
        fleet = self._service.fleet
        return [e for e in fleet.engines() if not fleet.is_stopping(e.container_id)]

    async def p2p_holder(self) -> str | None:
        """The engine holding the VPN's forwarded P2P port."""
        return self._service.fleet.p2p_holder()

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
        s = self._service
        engine = s.fleet.get(container_id)
        if engine is None or engine.health_status is HealthStatus.UNREACHABLE:
            return
        threshold = s.settings.health.health_failure_threshold
        for _ in range(max(1, threshold - engine.consecutive_failures)):
            health.apply_probe(engine, False, utcnow(), threshold)
        s.record("health", operation="proxy_reported_hang", container_id=container_id, reason=reason,
                 request_id=request_id, health_status=engine.health_status.value)
        s.fleet.update_gauges()

    async def aclose(self) -> None:
        """Nothing to release: the service owns its clients."""
