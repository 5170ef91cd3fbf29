"""The ``debug`` group: debug mode's session files and the stress detectors' thresholds."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from aceorch.config.groups.base import Group
from aceorch.config.types import FLOAT, INT, Bool, Str

__all__ = ["DebugSettings"]


class DebugSettings(Group):
    """Debug mode: JSONL session files recording what the orchestrator did, and the stress detectors."""

    model_config = ConfigDict(title="Debug mode (JSONL session files)")

    debug_mode: Bool = Field(
        False,
        description="Start a debug session at start (then `docker-compose restart orchestrator`); default false.",
    )
    debug_log_dir: Str = Field(
        "./debug_logs",
        description="Where the session files go (created 0700, files 0600), default ./debug_logs. Under "
        "docker-compose keep ./debug_logs: that is the folder bind-mounted from the host.",
    )
    debug_log_retention_days: Annotated[int, INT] = Field(
        7, ge=0, le=3650,
        description="Session files older than this are deleted, 0-3650 days (0 keeps everything), default 7.",
    )
    debug_log_max_mb: Annotated[int, INT] = Field(
        512, ge=1, le=1048576,
        description="Cap on the size of the session files, 1-1048576 MB (oldest sessions go first), default 512.",
    )
    debug_flush_interval_ms: Annotated[int, INT] = Field(
        200, ge=10, le=1000, description="Background writer flush period, 10-1000 ms, default 200."
    )
    debug_slow_provisioning_ratio: Annotated[float, FLOAT] = Field(
        0.7, gt=0, le=1,
        description="Stress slow_provisioning fires above this ratio x STARTUP_TIMEOUT_S, 0 < r <= 1, default 0.7.",
    )
    debug_unhealthy_ratio: Annotated[float, FLOAT] = Field(
        0.3, ge=0, lt=1,
        description="Stress high_unhealthy_engines fires when unhealthy / total > r, 0 <= r < 1, default 0.3.",
    )
