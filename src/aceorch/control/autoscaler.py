"""Autoscaling: keep MIN_REPLICAS engines and MIN_FREE_REPLICAS free ones, never above MAX_REPLICAS,
and stop engines idle for IDLE_TTL_S while the floors still hold.

:func:`decide` is the pure rule; :func:`autoscale_round` acts on one decision and :func:`start_autoscaler` runs
it every AUTOSCALE_INTERVAL_S as a guarded task, its collaborators given as keyword arguments.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from aceorch.aiokits import create_guarded_task
from aceorch.config import Settings
from aceorch.models import Engine, HealthStatus, utcnow

__all__ = [
    "ScaleDecision",
    "decide",
    "idle_victims",
    "usable",
    "ScalerFleet",
    "ScalerStarts",
    "StreamPruner",
    "autoscale_round",
    "start_autoscaler",
]


@dataclass(frozen=True)
class ScaleDecision:
    """One decision: the counts it saw, the target, how many to start and which engines to stop, and why."""

    current: int
    free: int
    in_flight: int
    target: int
    start: int
    stop: list[str] = field(default_factory=list)
    reason: str = "steady"


def usable(engines: list[Engine]) -> list[Engine]:
    """The engines that may be handed out or counted toward the floors: all but the unreachable ones."""
    return [e for e in engines if e.health_status is not HealthStatus.UNREACHABLE]


def _idle_since(engine: Engine) -> datetime:
    return engine.last_stream_usage or engine.first_seen


def idle_victims(
    engines: list[Engine], *, now: datetime, idle_for_s: int, min_replicas: int, min_free: int, force: bool = False
) -> list[str]:
    """Idle engines (no started stream) idle for ``idle_for_s`` seconds, longest idle first, within the floors.

    With ``force`` the idle time is not checked (``/scale`` down). Unreachable engines are never victims, nor
    counted toward the floors: they may serve streams aceorch cannot see.
    """
    engines = usable(engines)
    total = len(engines)
    free = [e for e in engines if not e.streams]
    victims: list[str] = []
    for engine in sorted(free, key=_idle_since):
        if total - len(victims) <= min_replicas or len(free) - len(victims) <= min_free:
            break
        if force or now - _idle_since(engine) >= timedelta(seconds=idle_for_s):
            victims.append(engine.container_id)
    return victims


def decide(
    engines: list[Engine],
    *,
    in_flight: int,
    now: datetime,
    min_replicas: int,
    min_free: int,
    max_replicas: int,
    idle_ttl_s: int,
    vpn_held: Callable[[Engine], bool] | None = None,
) -> ScaleDecision:
    """One autoscaler decision. Pure: the loop only acts on it.

    Unreachable engines take a slot under MAX_REPLICAS but count neither as replicas nor as free engines.
    Engines ``vpn_held`` by their VPN's outage (several VPNs, one down) count as replicas but not as free engines,
    so that MIN_FREE_REPLICAS holds across the healthy VPNs.
    """
    held = len(engines)
    engines = usable(engines)
    max_replicas -= held - len(engines)
    current = len(engines)
    free = sum(1 for e in engines if not e.streams and not (vpn_held is not None and vpn_held(e)))
    busy = current - free
    target = min(max_replicas, max(min_replicas, busy + min_free))
    start = max(0, target - current - in_flight)
    if start:
        reason = "below_min_replicas" if current + in_flight < min_replicas else "below_min_free"
        return ScaleDecision(current, free, in_flight, target, start, [], reason)
    stop: list[str] = []
    if idle_ttl_s > 0:
        stop = idle_victims(engines, now=now, idle_for_s=idle_ttl_s, min_replicas=min_replicas, min_free=min_free)
    return ScaleDecision(current, free, in_flight, target, 0, stop, "idle_ttl" if stop else "steady")


class ScalerFleet(Protocol):
    """The engines the autoscaler sizes."""

    def engines(self) -> list[Engine]:
        """Every engine."""

    async def stop_engine(self, container_id: str, reason: str) -> bool:
        """Stop and remove one engine."""


class ScalerStarts(Protocol):
    """Engine starts as the autoscaler asks for them."""

    @property
    def in_flight(self) -> int:
        """Admitted starts not yet in the fleet."""

    def admits(self, source: str) -> bool:
        """Every provisioning gate is open."""

    async def provision_quietly(self, source: str) -> Engine | None:
        """Start one engine; None if it failed."""


class StreamPruner(Protocol):
    """Forgets old ended streams."""

    async def prune(self) -> int:
        """Prune; how many streams went."""


async def autoscale_round(
    *,
    settings: Settings,
    fleet: ScalerFleet,
    starts: ScalerStarts,
    streams: StreamPruner,
    record: Callable[..., None],
) -> None:
    """Decide once and act: start the missing engines (if the gates are open), stop idle ones, prune streams."""
    s = settings
    decision = decide(
        fleet.engines(), in_flight=starts.in_flight, now=utcnow(),
        min_replicas=s.pool.min_replicas, min_free=s.pool.min_free_replicas, max_replicas=s.pool.max_replicas,
        idle_ttl_s=s.pool.idle_ttl_s, vpn_held=getattr(fleet, "held", None),
    )
    action = "none"
    if decision.start:
        action = f"start {decision.start}"
    elif decision.stop:
        action = f"stop {len(decision.stop)}"
    record("autoscaler", operation="decision", current=decision.current, free=decision.free,
           in_flight=decision.in_flight, target=decision.target, reason=decision.reason, action=action)
    if decision.start:
        if not starts.admits("autoscaler"):
            return
        await asyncio.gather(*(starts.provision_quietly("autoscaler") for _ in range(decision.start)))
    for cid in decision.stop:
        await fleet.stop_engine(cid, "idle")
    await streams.prune()


def start_autoscaler(
    *,
    settings: Settings,
    fleet: ScalerFleet,
    starts: ScalerStarts,
    streams: StreamPruner,
    record: Callable[..., None],
    stop: asyncio.Event,
    on_error: Callable[[BaseException], None] | None = None,
) -> asyncio.Task[None]:
    """The ``autoscaler`` task: :func:`autoscale_round` every AUTOSCALE_INTERVAL_S until ``stop`` is set."""

    async def once() -> None:
        await autoscale_round(settings=settings, fleet=fleet, starts=starts, streams=streams, record=record)

    return create_guarded_task("autoscaler", once, stop=stop,
                               interval=lambda: float(settings.pool.autoscale_interval_s),
                               on_error=on_error)
