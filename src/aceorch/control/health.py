"""Engine health: one prober for every engine, and the pure rules that turn probes into states and replacements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aceorch.models import Engine, HealthStatus

__all__ = ["apply_probe", "ReplacementPlan", "plan_replacements"]


def apply_probe(engine: Engine, ok: bool, now: datetime, failure_threshold: int) -> HealthStatus | None:
    """Fold one probe result into ``engine``; returns the new status if it changed, else None."""
    old = engine.health_status
    engine.last_health_check = now
    if ok:
        engine.consecutive_failures = 0
        engine.unhealthy_since = None
        new = HealthStatus.HEALTHY
    else:
        engine.consecutive_failures += 1
        if engine.consecutive_failures >= failure_threshold:
            new = HealthStatus.UNHEALTHY
            if engine.unhealthy_since is None:
                engine.unhealthy_since = now
        else:
            new = old
    engine.health_status = new
    return new if new is not old else None


@dataclass(frozen=True)
class ReplacementPlan:
    """``start_for``: unhealthy engines that need a replacement started; ``stop``: those that may go now."""

    start_for: list[str]
    stop: list[str]


def plan_replacements(
    engines: list[Engine],
    *,
    now: datetime,
    grace_period_s: int,
    cooldown_s: int,
    last_replacement_at: datetime | None,
    already_replaced: set[str],
) -> ReplacementPlan:
    """Which unhealthy engines to replace (one per cooldown) and which replaced ones to stop.

    An engine unhealthy for longer than the grace period gets a replacement started first. It is stopped once
    its replacement exists and it serves no started stream (never stop an engine under live streams).
    """
    start_for: list[str] = []
    stop: list[str] = []
    cooled = last_replacement_at is None or now - last_replacement_at >= timedelta(seconds=cooldown_s)
    for engine in sorted(engines, key=lambda e: e.unhealthy_since or now):
        if engine.health_status is not HealthStatus.UNHEALTHY or engine.unhealthy_since is None:
            continue
        if now - engine.unhealthy_since < timedelta(seconds=grace_period_s):
            continue
        if engine.container_id in already_replaced:
            if not engine.streams:
                stop.append(engine.container_id)
            continue
        if cooled:
            start_for.append(engine.container_id)
            cooled = False
    return ReplacementPlan(start_for=start_for, stop=stop)
