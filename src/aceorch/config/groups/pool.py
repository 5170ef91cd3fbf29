"""The ``pool``, ``health`` and ``breaker`` groups: how many engines run, when they are replaced, when starts stop."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from aceorch.config.groups.base import Group
from aceorch.config.types import FLOAT, INT, Bool, lower

__all__ = ["PoolSettings", "HealthSettings", "BreakerSettings"]


class PoolSettings(Group):
    """How many engines run, when new ones start and when idle ones stop."""

    model_config = ConfigDict(title="Pool, autoscaling and provisioning")

    min_replicas: Annotated[int, INT] = Field(
        1, ge=0, le=1000, description="Engines kept at all times, 0-1000, default 1, <= MAX_REPLICAS."
    )
    min_free_replicas: Annotated[int, INT] = Field(
        1, ge=0, le=1000,
        description="Free (stream-less) engines kept warm so that a new stream need not wait for a start, 0-1000, "
        "default 1, <= MAX_REPLICAS.",
    )
    max_replicas: Annotated[int, INT] = Field(
        20, ge=1, le=1000,
        description="Hard cap on engines (starts in flight included), 1-1000, default 20, >= MIN_REPLICAS.",
    )
    max_active_replicas: Annotated[int, INT] = Field(
        20, ge=1, le=1000,
        description="VPN mode only: size of the VPN port pool and a second cap, 1-1000, default 20, <= size of "
        "PORT_RANGE_HOST.",
    )
    auto_delete: Bool = Field(
        False,
        description="Stop an engine once its last stream has ended and ENGINE_GRACE_PERIOD_S has passed; "
        "default false.",
    )
    engine_grace_period_s: Annotated[int, INT] = Field(
        30, ge=0, le=86400,
        description="Grace period for AUTO_DELETE, so that a stream restarted at once finds its engine, "
        "0-86400 s (0 = at once), default 30.",
    )
    idle_ttl_s: Annotated[int, INT] = Field(
        600, ge=0, le=604800,
        description="Stop any engine without a started stream for this long, 0-604800 s (0 disables), default 600.",
    )
    autoscale_interval_s: Annotated[int, INT] = Field(
        30, ge=1, le=3600,
        description="Autoscaler loop period (how often the pool is brought back to MIN_REPLICAS and "
        "MIN_FREE_REPLICAS), 1-3600 s, default 30.",
    )
    monitor_interval_s: Annotated[int, INT] = Field(
        10, ge=1, le=3600,
        description="Runtime reconcile loop period (how often the runtime and the store are pinged and the engine "
        "list is reconciled with the runtime's containers), 1-3600 s, default 10.",
    )
    max_concurrent_provisions: Annotated[int, INT] = Field(
        5, ge=1, le=100,
        description="Starts in flight across all callers, 1-100, default 5 (extra requests wait, FIFO), so that a "
        "burst of requests does not start every engine at once.",
    )
    min_provision_interval_s: Annotated[float, FLOAT] = Field(
        0.5, ge=0, le=60,
        description="Minimum gap between two starts, spacing a burst out, 0-60 s (float; 0 disables), default 0.5.",
    )
    engines_on_exit: Annotated[Literal["keep", "stop"], lower] = Field(
        "keep",
        description="What a stopping aceorch does with its engines: keep (left running for the next start to "
        "adopt, so live streams survive a restart) or stop (removed within the shutdown deadline); default keep. "
        "`make run` demo mode uses stop; `aceorch engines prune` removes them later.",
    )


class HealthSettings(Group):
    """The engine prober: how often it probes and when an unhealthy engine is replaced."""

    model_config = ConfigDict(title="Health")

    health_check_interval_s: Annotated[int, INT] = Field(
        20, ge=1, le=3600, description="Engine prober period, 1-3600 s, default 20."
    )
    health_failure_threshold: Annotated[int, INT] = Field(
        3, ge=1, le=100,
        description="Consecutive failed probes before an engine is unhealthy, 1-100, default 3 (one slow answer "
        "does not condemn an engine).",
    )
    health_unhealthy_grace_period_s: Annotated[int, INT] = Field(
        60, ge=0, le=86400,
        description="How long an engine stays unhealthy before it is replaced, giving it time to recover, "
        "0-86400 s, default 60.",
    )
    health_replacement_cooldown_s: Annotated[int, INT] = Field(
        60, ge=0, le=86400,
        description="Minimum gap between two replacements, so that a sick host does not churn the whole pool, "
        "0-86400 s, default 60.",
    )
    health_unhealthy_stream_grace_s: Annotated[int, INT] = Field(
        60, ge=0, le=86400,
        description="How long an unhealthy engine that serves streams is kept before it is replaced anyway and "
        "its streams end (engine_unhealthy): a hung engine delivers nothing. Counted from when it became "
        "unhealthy, never shorter than HEALTH_UNHEALTHY_GRACE_PERIOD_S; 0-86400 s, default 60.",
    )


class BreakerSettings(Group):
    """The circuit breakers that stop starting engines while starts keep failing."""

    model_config = ConfigDict(title="Circuit breakers")

    circuit_breaker_failure_threshold: Annotated[int, INT] = Field(
        5, ge=1, le=1000,
        description="Consecutive failed starts that open the general breaker, 1-1000, default 5; while it is open, "
        "provision calls fail at once instead of queueing starts that would fail too.",
    )
    circuit_breaker_recovery_timeout_s: Annotated[int, INT] = Field(
        300, ge=1, le=86400,
        description="How long the general breaker stays open before one trial start, 1-86400 s, default 300.",
    )
    circuit_breaker_replacement_threshold: Annotated[int, INT] = Field(
        3, ge=1, le=1000,
        description="The same threshold for the replacement breaker (starts that replace unhealthy engines), "
        "1-1000, default 3.",
    )
    circuit_breaker_replacement_timeout_s: Annotated[int, INT] = Field(
        180, ge=1, le=86400,
        description="The same recovery timeout for the replacement breaker, 1-86400 s, default 180.",
    )
