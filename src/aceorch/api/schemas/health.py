"""The response models of health: the engines' health and the circuit breakers, and the service's own probes."""

from __future__ import annotations

from typing import Literal

from aceorch.api.schemas.common import Message, Time, _Public
from aceorch.control.breaker import BreakerState

__all__ = [
    "BreakerPublic", "HealthStatusPublic", "BreakerResetPublic", "LivenessPublic", "ReadinessChecksPublic",
    "ReadinessPublic",
]


class BreakerPublic(_Public):
    """One circuit breaker: its state, failures against the threshold, and its recovery timeout (seconds)."""

    state: BreakerState
    failure_count: int
    failure_threshold: int
    last_failure_time: Time | None
    last_success_time: Time | None
    recovery_timeout: int


class HealthStatusPublic(_Public):
    """Engine health counts, the health settings, and both circuit breakers."""

    total_engines: int
    healthy_engines: int
    unhealthy_engines: int
    unknown_engines: int
    unreachable_engines: int
    marked_for_replacement: int
    minimum_required: int
    health_check_interval: int
    circuit_breakers: dict[str, BreakerPublic]


class BreakerResetPublic(Message):
    """A breaker reset: what was reset, and both breakers after it."""

    circuit_breakers: dict[str, BreakerPublic]


class LivenessPublic(_Public):
    """The process serves."""

    status: Literal["ok"]


class ReadinessChecksPublic(_Public):
    """Each readiness check: ``ok`` or what is wrong."""

    startup: str
    database: str
    runtime: str


class ReadinessPublic(_Public):
    """Whether the orchestrator is ready, and each check."""

    status: Literal["ready", "not_ready"]
    checks: ReadinessChecksPublic
