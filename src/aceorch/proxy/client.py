"""What the proxy needs from the orchestrator, as one small interface with two implementations.

Embedded, the service's in-process link answers (:mod:`aceorch.service.proxy_link`); standalone, the HTTP client
(:mod:`aceorch.proxy.http_client`) asks a remote aceorch. Engines travel as :class:`~aceorch.models.Engine`;
a refused engine start raises an :class:`~aceorch.errors.ProvisioningError` (``code`` says why). Every call takes
the viewer request's id, so that the orchestrator's records carry it.

:meth:`OrchestratorClient.watch_engines` tells the proxy when the engines' health may have changed (embedded: the
service's event feed; standalone: a poll of ``GET /engines``), so that a stream on an engine the orchestrator gave
up on (unhealthy, unreachable, gone, or behind a VPN that dropped) moves before its bytes stop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from aceorch.models import Engine, StreamStart

__all__ = ["OrchestratorClient", "EnginesChanged"]

#: ``changed(engines, asof)``: the orchestrator's engines by container id, as read at ``asof``
#: (``time.monotonic()`` when the read began).
EnginesChanged = Callable[[dict[str, Engine], float], None]


class OrchestratorClient(Protocol):
    """The orchestrator as the proxy sees it: engines, engine starts, stream events and health reports."""

    async def engines(self) -> list[Engine]:
        """Every engine the orchestrator manages now."""
        ...

    async def p2p_holders(self) -> frozenset[str]:
        """The container ids of the engines holding a VPN's forwarded P2P port (one per VPN; empty if none)."""
        ...

    async def provision(self, request_id: str | None) -> Engine:
        """Start one engine and return it once it answers; raises ProvisioningError when refused or failed."""
        ...

    async def stream_started(self, start: StreamStart, request_id: str | None) -> str:
        """Record a stream started on an engine; returns the stream's id."""
        ...

    async def stream_ended(self, container_id: str, stream_id: str, reason: str, request_id: str | None) -> None:
        """Record that a stream ended, and why."""
        ...

    async def report_unhealthy(self, container_id: str, reason: str, request_id: str | None) -> None:
        """Tell the orchestrator's health that an engine hung under a live stream."""
        ...

    async def watch_engines(self, changed: EnginesChanged, *, interval_s: float) -> None:
        """Call ``changed`` with the engines whenever their health may have changed, until cancelled.

        ``interval_s`` is the poll period of a client that cannot be notified; returning means the feed ended.
        """
        ...

    async def aclose(self) -> None:
        """Release the client's connections."""
        ...
