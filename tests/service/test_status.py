"""The read models: orchestrator status, health status, readiness and the blocked gate."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from service_parts import Parts

from aceorch.errors import BreakerBlocked, CapacityBlocked, RuntimeBlocked
from aceorch.models import HealthStatus

PartsFactory = Callable[..., Awaitable[Parts]]


async def test_no_engine_and_no_gate_closed_is_degraded(parts: PartsFactory) -> None:
    p = await parts()
    status = p.status.orchestrator_status()
    assert status["status"] == "degraded" and status["provisioning"]["can_provision"] is True
    assert status["provisioning"]["blocked_reason"] is None and status["config"]["runtime"] == "fake"


async def test_a_running_engine_with_every_gate_open_is_healthy(parts: PartsFactory) -> None:
    p = await parts(max_replicas=3)
    await p.engine()
    status = p.status.orchestrator_status()
    assert status["status"] == "healthy"
    assert status["capacity"] == {"total": 1, "used": 0, "available": 1, "max_replicas": 3, "min_replicas": 0}


async def test_a_full_pool_reports_max_capacity_with_its_advice(parts: PartsFactory) -> None:
    p = await parts(max_replicas=1, auto_delete=True, engine_grace_period_s=45)
    await p.engine()
    code, err = p.status.blocked()
    assert code == "max_capacity" and isinstance(err, CapacityBlocked)
    details = p.status.orchestrator_status()["provisioning"]["blocked_reason_details"]
    assert details["code"] == "max_capacity" and details["recovery_eta_seconds"] == 45
    assert details["can_retry"] is False and details["should_wait"] is True


async def test_an_open_breaker_blocks_and_degrades(parts: PartsFactory) -> None:
    p = await parts()
    await p.engine()
    for _ in range(3):
        p.breakers["general"].record(False)
    code, err = p.status.blocked()
    assert code == "circuit_breaker" and isinstance(err, BreakerBlocked)
    status = p.status.orchestrator_status()
    assert status["status"] == "degraded" and status["provisioning"]["circuit_breaker_state"] == "open"
    assert p.breakers.reset("general") == ["general"]
    assert p.status.blocked() == (None, None)


async def test_without_engines_a_lost_runtime_is_unavailable(parts: PartsFactory) -> None:
    p = await parts()
    p.runtime.available = False
    assert not await p.liveness.check_runtime()
    code, err = p.status.blocked()
    assert code == "runtime_unavailable" and isinstance(err, RuntimeBlocked)
    assert p.status.orchestrator_status()["status"] == "unavailable"
    assert p.status.readiness()["runtime"] == "unreachable"


async def test_health_status_counts_engines_by_state(parts: PartsFactory) -> None:
    p = await parts(min_replicas=0)
    one, two = await p.engine(), await p.engine()
    one.health_status = HealthStatus.HEALTHY
    two.health_status = HealthStatus.UNHEALTHY
    two.unhealthy_since = one.first_seen
    health = p.status.health_status()
    assert (health["total_engines"], health["healthy_engines"], health["unhealthy_engines"],
            health["unknown_engines"], health["marked_for_replacement"]) == (2, 1, 1, 0, 1)
    assert set(health["circuit_breakers"]) == {"general", "replacement"}


async def test_readiness_waits_for_startup(parts: PartsFactory) -> None:
    p = await parts()
    p.liveness.database_ok = True
    assert p.status.readiness() == {"startup": "pending", "database": "ok", "runtime": "ok"}
    p.status.started = True
    assert p.status.readiness()["startup"] == "ok"
