"""Engine selection for new streams, with atomic claims so that MAX_STREAMS_PER_ENGINE is never exceeded.

A stream claims its engine before any await; a claim lasts until the stream ends. An engine's load is its
proxy claims plus the streams the orchestrator lists on it that the proxy did not start (another proxy's).
Among the healthy engines below the limit: fewest streams first, then a holder of a VPN's forwarded P2P port
(one per VPN), then the one idle longest. No free engine: one is provisioned and claimed the moment it is ready.
:func:`move_reason` decides whether a live stream must leave its engine because the orchestrator gave up on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aceorch.errors import ProvisioningError
from aceorch.models import Engine, HealthStatus
from aceorch.proxy.client import OrchestratorClient

__all__ = ["Claim", "Selector", "choose", "move_reason", "SELECTABLE"]

#: Engines a new stream may go to (a freshly started engine is still unknown until its first probe).
SELECTABLE = frozenset({HealthStatus.HEALTHY, HealthStatus.UNKNOWN})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Claim:
    """One stream's hold on one engine."""

    key: str
    engine: Engine
    #: When the claim was taken (``time.monotonic()``): engine states read before it say nothing about it.
    at: float = field(default_factory=time.monotonic)


def choose(
    engines: Iterable[Engine], *, load: Callable[[Engine], int], limit: int, p2p_holders: frozenset[str],
    exclude: frozenset[str] = frozenset(),
) -> tuple[Engine | None, list[dict[str, Any]]]:
    """The engine for a new stream (None when all are full), and the candidates considered with their load."""
    candidates: list[tuple[tuple[int, int, datetime], Engine]] = []
    seen: list[dict[str, Any]] = []
    for e in engines:
        n = load(e)
        ok = e.health_status in SELECTABLE and e.running and e.container_id not in exclude and n < limit
        seen.append({"container_id": e.container_id, "streams": n, "health": e.health_status.value,
                     "eligible": ok})
        if ok:
            idle_since = e.last_stream_usage or _EPOCH
            candidates.append(((n, 0 if e.container_id in p2p_holders else 1, idle_since), e))
    if not candidates:
        return None, seen
    candidates.sort(key=lambda c: c[0])
    return candidates[0][1], seen


def move_reason(claim: Claim, engines: Mapping[str, Engine], asof: float) -> str | None:
    """Why the stream holding ``claim`` must leave its engine now, given the engines read at ``asof``; None: stay.

    ``engine_gone`` (no longer listed, or not running), ``engine_unhealthy`` (failed probes, or its VPN dropped:
    the VPN monitor marks those unhealthy at once) or ``engine_unreachable``. A list read before the claim was
    taken says nothing about the claimed engine (a freshly started one may not be in it yet).
    """
    if asof < claim.at:
        return None
    engine = engines.get(claim.engine.container_id)
    if engine is None or not engine.running:
        return "engine_gone"
    if engine.health_status is HealthStatus.UNHEALTHY:
        return "engine_unhealthy"
    if engine.health_status is HealthStatus.UNREACHABLE:
        return "engine_unreachable"
    return None


@dataclass
class Selector:
    """The proxy's claims on engines, and the pick-or-provision step every new upstream session takes."""

    client: OrchestratorClient
    limit: int
    record: Callable[..., None]
    claims: dict[str, set[str]] = field(default_factory=dict)
    #: Stream ids the proxy reported started, so that they are not counted twice with the claims.
    mine: set[str] = field(default_factory=set)

    def load(self, engine: Engine) -> int:
        """Streams on an engine: the proxy's claims plus streams of others the orchestrator lists."""
        return len(self.claims.get(engine.container_id, ())) + sum(1 for s in engine.streams if s not in self.mine)

    def _take(self, key: str, engine: Engine) -> Claim:
        self.claims.setdefault(engine.container_id, set()).add(key)
        return Claim(key, engine)

    def release(self, claim: Claim) -> None:
        """Give a claim back (its stream ended or moved)."""
        keys = self.claims.get(claim.engine.container_id)
        if keys is not None:
            keys.discard(claim.key)
            if not keys:
                del self.claims[claim.engine.container_id]

    async def acquire(self, key: str, request_id: str | None, *, exclude: frozenset[str] = frozenset()) -> Claim:
        """Claim an engine for ``key``: a free one, else a newly provisioned one. Raises ProvisioningError."""
        begin = time.perf_counter()
        engines = await self.client.engines()
        holders = await self.client.p2p_holders()
        # No await between the choice and the claim: concurrent requests see each other's claims.
        engine, seen = choose(engines, load=self.load, limit=self.limit, p2p_holders=holders, exclude=exclude)
        if engine is not None:
            self.record("engine_selection", operation="select_engine", stream_key=key, candidates=seen,
                        chosen=engine.container_id, reason="free_engine", request_id=request_id,
                        duration_ms=(time.perf_counter() - begin) * 1000)
            return self._take(key, engine)
        self.record("engine_selection", operation="select_engine", stream_key=key, candidates=seen, chosen=None,
                    reason="no_free_engine", request_id=request_id,
                    duration_ms=(time.perf_counter() - begin) * 1000)
        self.record("provisioning", operation="provision_request", stream_key=key, request_id=request_id)
        p_begin = time.perf_counter()
        try:
            fresh = await self.client.provision(request_id)
        except ProvisioningError as exc:
            self.record("provisioning", operation="provision_response", stream_key=key, request_id=request_id,
                        success=False, error_code=exc.code, duration_ms=(time.perf_counter() - p_begin) * 1000)
            raise
        self.record("provisioning", operation="provision_response", stream_key=key, request_id=request_id,
                    success=True, container_id=fresh.container_id,
                    duration_ms=(time.perf_counter() - p_begin) * 1000)
        if self.load(fresh) < self.limit:
            return self._take(key, fresh)
        # Someone else claimed the new engine first: pick again (another may have freed up meanwhile).
        return await self.acquire(key, request_id, exclude=exclude)
