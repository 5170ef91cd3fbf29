"""The response models of engines: an engine, an engine with its streams, and a health report's outcome."""

from __future__ import annotations

from aceorch.api.schemas.common import Labels, Time, _Public
from aceorch.api.schemas.streams import StreamPublic
from aceorch.models import HealthStatus

__all__ = ["EnginePublic", "EngineDetailPublic", "EngineHealthReportPublic"]


class EnginePublic(_Public):
    """One ready engine: where it listens, its labels, streams, health and cache."""

    container_id: str
    container_name: str
    host: str
    port: int
    labels: Labels
    first_seen: Time
    last_seen: Time
    streams: list[str]
    health_status: HealthStatus
    last_health_check: Time | None
    last_cache_cleanup: Time | None
    last_stream_usage: Time | None
    cache_size_bytes: int | None
    #: CPU use (100 = one CPU busy) and memory in use in bytes, as last sampled from the runtime (null: unknown).
    cpu_percent: float | None
    memory_bytes: int | None
    #: With health_status ``unreachable``: why, and the address aceorch tried (null otherwise).
    unreachable_reason: str | None
    unreachable_address: str | None


class EngineDetailPublic(_Public):
    """One engine and its started streams."""

    engine: EnginePublic
    streams: list[StreamPublic]


class EngineHealthReportPublic(_Public):
    """The engine a health report was taken for: its health now, and whether the report changed it."""

    container_id: str
    health_status: HealthStatus
    changed: bool
