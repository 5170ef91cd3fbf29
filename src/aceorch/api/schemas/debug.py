"""The response models of debug mode: its status and files, and the stress events."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict

from aceorch.api.schemas.common import Time, _Public

__all__ = ["DebugFilePublic", "DebugSettingsPublic", "DebugStatusPublic", "DebugChangedPublic", "StressEventPublic"]


class DebugFilePublic(_Public):
    """One file of the debug session: its name, category and size in bytes."""

    name: str
    category: str
    bytes: int


class DebugSettingsPublic(_Public):
    """The debug-log settings in force."""

    retention_days: int
    max_mb: int
    flush_interval_ms: int
    slow_provisioning_ratio: float
    unhealthy_ratio: float


class DebugStatusPublic(_Public):
    """Whether debug mode is on, its session, files and counters."""

    enabled: bool
    enabled_by: str | None
    session_id: str | None
    session_started_at: Time | None
    log_dir: str
    files: list[DebugFilePublic]
    entries_written: int
    entries_dropped: int
    queue_depth: int
    last_flush_at: Time | None
    last_error: str | None
    settings: DebugSettingsPublic


class DebugChangedPublic(DebugStatusPublic):
    """The debug status after enable or disable, and whether the call changed it."""

    changed: bool


class StressEventPublic(_Public):
    """One stress event: its type, severity, description and time; the event's own fields follow as they are."""

    model_config = ConfigDict(from_attributes=True, extra="allow")

    session_id: str | None
    timestamp: Time
    event_type: str
    severity: Literal["info", "warning", "critical"]
    description: str
