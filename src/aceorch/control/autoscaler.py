"""Autoscaling: keep MIN_REPLICAS engines and MIN_FREE_REPLICAS free ones, never above MAX_REPLICAS,
and stop engines idle for IDLE_TTL_S while the floors still hold."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aceorch.models import Engine

__all__ = ["ScaleDecision", "decide", "idle_victims"]


@dataclass(frozen=True)
class ScaleDecision:
    current: int
    free: int
    in_flight: int
    target: int
    start: int
    stop: list[str] = field(default_factory=list)
    reason: str = "steady"


def _idle_since(engine: Engine) -> datetime:
    return engine.last_stream_usage or engine.first_seen


def idle_victims(
    engines: list[Engine], *, now: datetime, idle_for_s: int, min_replicas: int, min_free: int, force: bool = False
) -> list[str]:
    """Idle engines (no started stream) idle for ``idle_for_s`` seconds, longest idle first, within the floors.

    With ``force`` the idle time is not checked (``/scale`` down).
    """
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
) -> ScaleDecision:
    """One autoscaler decision. Pure: the loop only acts on it."""
    current = len(engines)
    free = sum(1 for e in engines if not e.streams)
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
