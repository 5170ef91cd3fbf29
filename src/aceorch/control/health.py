"""Engine health: the prober that probes every engine, and the pure rules that turn probes into states and
replacements.

:func:`apply_probe` and :func:`plan_replacements` decide; :func:`probe_round` probes every engine once, applies
the rules and acts on the plan; :func:`start_health_prober` runs it every HEALTH_CHECK_INTERVAL_S as a guarded
task. Its collaborators arrive as keyword arguments, typed by the small protocols below.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import httpx

from aceorch.aiokits import create_guarded_task
from aceorch.config import Settings
from aceorch.control.engine_api import engine_ready
from aceorch.models import Engine, HealthStatus, utcnow

__all__ = [
    "apply_probe",
    "ReplacementPlan",
    "plan_replacements",
    "HealthFleet",
    "Replacer",
    "HealthSignals",
    "ProberState",
    "probe_round",
    "start_health_prober",
]

#: Probes in flight at once: enough to sweep hundreds of engines in well under a second, few enough that starting
#: them never holds the event loop for long.
PROBE_CONCURRENCY = 16


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


class HealthFleet(Protocol):
    """The engines the prober probes, and what it may do to them."""

    def engines(self) -> list[Engine]:
        """Every engine."""

    def probe_targets(self) -> list[Engine]:
        """Engines to probe now."""

    def get(self, container_id: str) -> Engine | None:
        """The engine of that id."""

    def health_counts(self) -> dict[str, int]:
        """Engines per health state."""

    def update_gauges(self) -> None:
        """Refresh the health gauges."""

    def replaced(self) -> set[str]:
        """Unhealthy engines whose replacement has started."""

    def mark_replaced(self, container_id: str) -> None:
        """A replacement for this engine has started."""

    async def stop_engine(self, container_id: str, reason: str) -> bool:
        """Stop and remove one engine."""


class Replacer(Protocol):
    """Starts a replacement engine."""

    async def provision_quietly(self, source: str) -> Engine | None:
        """Start one engine; None if it failed."""


class HealthSignals(Protocol):
    """Where the prober reports the fleet's health (the stress monitor)."""

    def engines_health(self, *, unhealthy: int, total: int) -> None:
        """One sweep's counts."""

    def replacement_started(self) -> None:
        """A replacement began."""


@dataclass
class ProberState:
    """What the prober remembers between rounds."""

    last_replacement_at: datetime | None = None


async def probe_round(
    *,
    settings: Settings,
    fleet: HealthFleet,
    replacer: Replacer,
    http: httpx.AsyncClient,
    record: Callable[..., None],
    signals: HealthSignals,
    state: ProberState,
) -> None:
    """Probe every engine once, record the transitions, then replace engines unhealthy for too long."""
    engines = fleet.probe_targets()
    begin = time.perf_counter()
    sem = asyncio.Semaphore(PROBE_CONCURRENCY)

    async def probe(engine: Engine) -> bool:
        async with sem:
            return await engine_ready(http, engine.host, engine.port, timeout=3.0)

    results = await asyncio.gather(*(probe(e) for e in engines))
    now = utcnow()
    for engine, ok in zip(engines, results, strict=True):
        old = engine.health_status
        changed = apply_probe(engine, ok, now, settings.health.health_failure_threshold)
        if not ok:
            record("health", component="health", operation="probe_failed",
                   container_id=engine.container_id, container_name=engine.container_name,
                   consecutive_failures=engine.consecutive_failures)
        if changed is not None:
            record("health", component="health", operation="status_transition",
                   container_id=engine.container_id, container_name=engine.container_name,
                   **{"from": old.value, "to": changed.value})
    counts = fleet.health_counts()
    total = len(fleet.engines())
    record("health", component="health", operation="health_monitor_cycle",
           duration_ms=(time.perf_counter() - begin) * 1000, total=total, **counts)
    signals.engines_health(unhealthy=counts["unhealthy"], total=total)
    fleet.update_gauges()
    await _replace_unhealthy(settings=settings, fleet=fleet, replacer=replacer, record=record, signals=signals,
                             state=state, now=now)


async def _replace_unhealthy(
    *,
    settings: Settings,
    fleet: HealthFleet,
    replacer: Replacer,
    record: Callable[..., None],
    signals: HealthSignals,
    state: ProberState,
    now: datetime,
) -> None:
    plan = plan_replacements(
        fleet.engines(), now=now, grace_period_s=settings.health.health_unhealthy_grace_period_s,
        cooldown_s=settings.health.health_replacement_cooldown_s, last_replacement_at=state.last_replacement_at,
        already_replaced=fleet.replaced(),
    )
    for cid in plan.start_for:
        engine = fleet.get(cid)
        record("health", component="health", operation="replacement_decision", container_id=cid,
               container_name=engine.container_name if engine else None, action="start_replacement")
        state.last_replacement_at = now
        signals.replacement_started()
        replacement = await replacer.provision_quietly("replacement")
        if replacement is not None:
            fleet.mark_replaced(cid)
            if engine is not None and not engine.streams:
                await fleet.stop_engine(cid, "unhealthy_replacement")
    for cid in plan.stop:
        await fleet.stop_engine(cid, "unhealthy_replacement")


def start_health_prober(
    *,
    settings: Settings,
    fleet: HealthFleet,
    replacer: Replacer,
    http: httpx.AsyncClient,
    record: Callable[..., None],
    signals: HealthSignals,
    state: ProberState,
    stop: asyncio.Event,
    on_error: Callable[[BaseException], None] | None = None,
) -> asyncio.Task[None]:
    """The ``health prober`` task: :func:`probe_round` every HEALTH_CHECK_INTERVAL_S until ``stop`` is set."""

    async def once() -> None:
        await probe_round(settings=settings, fleet=fleet, replacer=replacer, http=http, record=record,
                          signals=signals, state=state)

    return create_guarded_task("health prober", once, stop=stop,
                               interval=lambda: float(settings.health.health_check_interval_s), on_error=on_error)

