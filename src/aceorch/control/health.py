"""Engine health: the prober that probes every engine, and the pure rules that turn probes into states and
replacements.

:func:`apply_probe` and :func:`plan_replacements` decide; :func:`probe_round` probes every engine once, applies
the rules and acts on the plan; :func:`start_health_prober` runs it every HEALTH_CHECK_INTERVAL_S as a guarded
task. Its collaborators arrive as keyword arguments, typed by the small protocols below.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import httpx

from aceorch.aiokits import create_guarded_task
from aceorch.config import Settings
from aceorch.control.admission import GateState, ProvisionRequest, decide_admission
from aceorch.control.engine_api import engine_ready
from aceorch.errors import ProvisioningBlocked, ProvisioningError
from aceorch.models import Engine, HealthStatus, utcnow

__all__ = [
    "not_ready_reason",
    "mark_unreachable",
    "unreachable_warning",
    "probe_timeout",
    "apply_probe",
    "at_capacity",
    "next_round_in",
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

logger = logging.getLogger(__name__)


async def not_ready_reason(client: httpx.AsyncClient, host: str, port: int, timeout: float = 2.0) -> str:
    """Why the engine at ``host:port`` is not ready, in a few words (``ready`` when it is)."""
    if await engine_ready(client, host, port, timeout=timeout):
        return "ready"
    url = f"http://{host}:{port}/server/api"
    try:
        resp = await client.get(url, params={"api_version": "3", "method": "get_status"}, timeout=timeout)
    except httpx.TimeoutException:
        return f"no answer within {timeout:g} s"
    except httpx.ConnectError as exc:
        return f"cannot connect ({exc or type(exc).__name__})"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return f"get_status answered HTTP {resp.status_code}" if resp.status_code != 200 else "get_status not ready"


def mark_unreachable(engine: Engine, why: str, *, timeout_s: float) -> None:
    """The running engine did not answer within ``timeout_s``: keep it as unreachable, with the reason and address."""
    engine.health_status = HealthStatus.UNREACHABLE
    engine.unreachable_address = f"http://{engine.host}:{engine.port}"
    engine.unreachable_reason = f"no answer within STARTUP_TIMEOUT_S ({timeout_s:g} s): {why}"
    engine.consecutive_failures = 0
    engine.unhealthy_since = None


def unreachable_warning(engine: Engine, settings: Settings) -> str:
    """The one WARNING line for an engine kept as unreachable: its name, the address tried and what to check."""
    return (
        f"engine {engine.container_name} is running but does not answer at {engine.unreachable_address} "
        f"({engine.unreachable_reason}); kept as unreachable, never handed out nor removed for this. Check "
        f"DOCKER_NETWORK (now {settings.runtime.docker_network or 'unset'}: aceorch must share the engines' "
        f"network) and ENGINE_ADVERTISE_HOST (now {settings.runtime.engine_advertise_host})"
    )


def probe_timeout(interval_s: float) -> float:
    """How long one probe may wait: 3 s, less with short probe intervals so that a hung engine never delays a
    round by more than a quarter of the interval."""
    return min(3.0, max(0.25, interval_s / 4))


def apply_probe(engine: Engine, ok: bool, now: datetime, failure_threshold: int) -> HealthStatus | None:
    """Fold one probe result into ``engine``; returns the new status if it changed, else None.

    An unreachable engine stays unreachable until it answers (its failures are not counted: it never becomes
    unhealthy, so it is never replaced for being out of reach); once it answers it is healthy.
    """
    old = engine.health_status
    engine.last_health_check = now
    if old is HealthStatus.UNREACHABLE and not ok:
        return None
    if ok:
        engine.consecutive_failures = 0
        engine.unhealthy_since = None
        engine.unreachable_reason = engine.unreachable_address = None
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


def at_capacity(settings: Settings, *, engines: int, in_flight: int) -> bool:
    """One more engine would exceed MAX_REPLICAS (MAX_ACTIVE_REPLICAS with the VPN), counting starts in flight."""
    cap = settings.pool.max_replicas
    if settings.vpn_enabled:
        cap = min(cap, settings.pool.max_active_replicas)
    return engines + in_flight >= cap


@dataclass(frozen=True)
class ReplacementPlan:
    """What to do with unhealthy engines this round.

    ``start_for``: start a replacement first, then stop the engine if it is in ``may_stop`` (make-before-break);
    ``stop_first``: at capacity, stop the engine first, then start its replacement (break-before-make);
    ``stop``: engines whose replacement already runs and that may go now. An engine in ``may_stop`` with
    streams has been unhealthy for HEALTH_UNHEALTHY_STREAM_GRACE_S: its streams end as ``engine_unhealthy``.
    """

    start_for: list[str]
    stop: list[str]
    stop_first: list[str] = field(default_factory=list)
    may_stop: frozenset[str] = frozenset()


def plan_replacements(
    engines: list[Engine],
    *,
    now: datetime,
    grace_period_s: int,
    cooldown_s: int,
    last_replacement_at: datetime | None,
    already_replaced: set[str],
    stream_grace_s: int | None = None,
    at_capacity: bool = False,
) -> ReplacementPlan:
    """Which unhealthy engines to replace (one per cooldown), in which order, and which replaced ones to stop.

    An engine unhealthy for longer than the grace period is replaced. Below capacity its replacement starts
    first; at capacity it is stopped first. An engine that serves streams may only be stopped once it has been
    unhealthy for ``stream_grace_s`` too (never, when None): until then a replacement may start beside it, but
    it stays.
    """
    start_for: list[str] = []
    stop: list[str] = []
    stop_first: list[str] = []
    may_stop: set[str] = set()
    cooled = last_replacement_at is None or now - last_replacement_at >= timedelta(seconds=cooldown_s)
    for engine in sorted(engines, key=lambda e: e.unhealthy_since or now):
        if engine.health_status is not HealthStatus.UNHEALTHY or engine.unhealthy_since is None:
            continue
        sick_for = now - engine.unhealthy_since
        if sick_for < timedelta(seconds=grace_period_s):
            continue
        stoppable = not engine.streams or (
            stream_grace_s is not None and sick_for >= timedelta(seconds=max(grace_period_s, stream_grace_s))
        )
        cid = engine.container_id
        if stoppable:
            may_stop.add(cid)
        if cid in already_replaced:
            if stoppable:
                stop.append(cid)
            continue
        if not cooled or (at_capacity and not stoppable):
            continue
        (stop_first if at_capacity else start_for).append(cid)
        cooled = False
    return ReplacementPlan(start_for=start_for, stop=stop, stop_first=stop_first, may_stop=frozenset(may_stop))


def next_round_in(engines: list[Engine], *, now: datetime, interval_s: float, grace_period_s: int,
                  stream_grace_s: int) -> float:
    """Seconds until the next probe round: the interval, or less when an unhealthy engine's grace ends sooner (so
    that a replacement waits for its grace, not for the grace rounded up to the next round)."""
    wait = interval_s
    for engine in engines:
        if engine.health_status is not HealthStatus.UNHEALTHY or engine.unhealthy_since is None:
            continue
        grace = max(grace_period_s, stream_grace_s) if engine.streams else grace_period_s
        due = (engine.unhealthy_since + timedelta(seconds=grace) - now).total_seconds()
        if due > 0:
            wait = min(wait, due)
    return max(0.2, wait)


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

    async def stop_engine(self, container_id: str, reason: str, *, end_reason: str = "engine_removed") -> bool:
        """Stop and remove one engine; its streams end with ``end_reason``."""


class Replacer(Protocol):
    """Starts a replacement engine and tells whether one may start."""

    @property
    def in_flight(self) -> int:
        """Admitted starts not yet in the fleet."""

    def gate_state(self, source: str = "api", *, runtime_ok: bool) -> GateState:
        """What admission sees now."""

    async def provision(self, req: ProvisionRequest) -> tuple[Engine, float]:
        """Start one engine; raises ProvisioningError."""


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
    timeout = probe_timeout(settings.health.health_check_interval_s)

    async def probe(engine: Engine) -> bool:
        async with sem:
            return await engine_ready(http, engine.host, engine.port, timeout=timeout)

    results = await asyncio.gather(*(probe(e) for e in engines))
    now = utcnow()
    for engine, ok in zip(engines, results, strict=True):
        old = engine.health_status
        changed = apply_probe(engine, ok, now, settings.health.health_failure_threshold)
        if not ok and engine.health_status is not HealthStatus.UNREACHABLE:
            record("health", component="health", operation="probe_failed",
                   container_id=engine.container_id, container_name=engine.container_name,
                   consecutive_failures=engine.consecutive_failures)
        if changed is not None:
            record("health", component="health", operation="status_transition",
                   container_id=engine.container_id, container_name=engine.container_name,
                   **{"from": old.value, "to": changed.value})
            if old is HealthStatus.UNREACHABLE:
                fields = {"operation": "engine_reachable", "container_id": engine.container_id,
                          "container_name": engine.container_name, "address": f"http://{engine.host}:{engine.port}"}
                record("health", component="health", **fields)
                logger.info("engine %s answers at %s now: it joins the pool", engine.container_name,
                            fields["address"], extra={"category": "health", **fields})
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
    h = settings.health
    engines = fleet.engines()
    full = at_capacity(settings, engines=len(engines), in_flight=replacer.in_flight)
    plan = plan_replacements(
        engines, now=now, grace_period_s=h.health_unhealthy_grace_period_s,
        cooldown_s=h.health_replacement_cooldown_s, last_replacement_at=state.last_replacement_at,
        already_replaced=fleet.replaced(), stream_grace_s=h.health_unhealthy_stream_grace_s, at_capacity=full,
    )
    for cid in plan.start_for:
        await _replace(cid, stop_first=False, plan=plan, fleet=fleet, replacer=replacer, record=record,
                       signals=signals, state=state, now=now)
    for cid in plan.stop_first:
        await _replace(cid, stop_first=True, plan=plan, fleet=fleet, replacer=replacer, record=record,
                       signals=signals, state=state, now=now)
    for cid in plan.stop:
        engine = fleet.get(cid)
        record("health", component="health", operation="replacement_decision", container_id=cid,
               container_name=engine.container_name if engine else None, action="stop_replaced",
               streams=len(engine.streams) if engine else 0)
        await fleet.stop_engine(cid, "unhealthy_replacement", end_reason="engine_unhealthy")


def _may_break_first(replacer: Replacer) -> str | None:
    """The gate (capacity aside) that would refuse the replacement: then the unhealthy engine is not stopped first."""
    gate = replacer.gate_state("replacement", runtime_ok=True)
    return decide_admission(dataclasses.replace(gate, engines=0, in_flight=0))


async def _replace(
    cid: str,
    *,
    stop_first: bool,
    plan: ReplacementPlan,
    fleet: HealthFleet,
    replacer: Replacer,
    record: Callable[..., None],
    signals: HealthSignals,
    state: ProberState,
    now: datetime,
    retry: bool = False,
) -> None:
    """Replace one unhealthy engine, make-before-break or (at capacity) break-before-make; one log line."""
    engine = fleet.get(cid)
    if engine is None:
        return
    name, streams = engine.container_name, len(engine.streams)
    begin = time.perf_counter()
    sick_s = (now - engine.unhealthy_since).total_seconds() if engine.unhealthy_since else 0.0
    common = {"container_id": cid, "container_name": name, "streams": streams, "unhealthy_for_s": round(sick_s, 1)}
    if stop_first:
        blocked = _may_break_first(replacer)
        if blocked is not None:
            record("health", component="health", operation="replacement_decision", action="wait",
                   reason=blocked, **common)
            return
    record("health", component="health", operation="replacement_decision",
           action="stop_then_start" if stop_first else "start_then_stop", at_capacity=stop_first, **common)
    state.last_replacement_at = now
    if not retry:
        signals.replacement_started()
    stopped = False
    if stop_first:
        stopped = await fleet.stop_engine(cid, "unhealthy_replacement", end_reason="engine_unhealthy")
    try:
        replacement, _ = await replacer.provision(ProvisionRequest(source="replacement"))
    except ProvisioningError as exc:
        refilled = isinstance(exc, ProvisioningBlocked) and exc.code == "max_capacity"
        if refilled and not stopped:
            # The pool filled up, or no port is left: stop the engine first after all, once it may go.
            if cid not in plan.may_stop:
                record("health", component="health", operation="replacement_decision", action="wait",
                       reason=exc.reason, **common)
                return
            await _replace(cid, stop_first=True, plan=plan, fleet=fleet, replacer=replacer, record=record,
                           signals=signals, state=state, now=now, retry=True)
            return
        if refilled and stopped:
            # Another start took the freed slot: the pool is whole again.
            result = {"operation": "replacement_result", "success": True, "replacement": None,
                      "reason": "slot_taken", "stopped_first": True, **common}
            record("health", component="health", **result)
            logger.info("unhealthy engine %s stopped (pool at capacity); another start took its slot", name,
                        extra={"category": "health", **result})
            return
        result = {"operation": "replacement_result", "success": False, "error": exc.message, "code": exc.code,
                  "stopped_first": stopped, **common}
        record("health", component="health", **result)
        logger.warning("could not replace unhealthy engine %s%s: %s", name,
                       " (already stopped, the pool at capacity)" if stopped else "", exc.message,
                       extra={"category": "health", **result})
        return
    fleet.mark_replaced(cid)
    if not stopped and cid in plan.may_stop:
        stopped = await fleet.stop_engine(cid, "unhealthy_replacement", end_reason="engine_unhealthy")
    duration = time.perf_counter() - begin
    result = {"operation": "replacement_result", "success": True, "replacement": replacement.container_name,
              "stopped_first": stop_first, "old_stopped": stopped, "duration_ms": duration * 1000, **common}
    record("health", component="health", **result)
    logger.info(
        "replaced unhealthy engine %s with %s in %.1f s (%s%s)", name, replacement.container_name, duration,
        "stopped first: the pool was at capacity" if stop_first else "started the replacement first",
        f"; its {streams} stream(s) ended as engine_unhealthy" if stopped and streams else
        "" if stopped else f"; it stays while its {streams} stream(s) play",
        extra={"category": "health", **result},
    )


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
    """The ``health prober`` task: :func:`probe_round` every HEALTH_CHECK_INTERVAL_S (sooner when an unhealthy
    engine's grace ends first) until ``stop`` is set."""

    async def once() -> None:
        await probe_round(settings=settings, fleet=fleet, replacer=replacer, http=http, record=record,
                          signals=signals, state=state)

    def interval() -> float:
        h = settings.health
        return next_round_in(fleet.engines(), now=utcnow(), interval_s=float(h.health_check_interval_s),
                             grace_period_s=h.health_unhealthy_grace_period_s,
                             stream_grace_s=h.health_unhealthy_stream_grace_s)

    return create_guarded_task("health prober", once, stop=stop, interval=interval, on_error=on_error)
