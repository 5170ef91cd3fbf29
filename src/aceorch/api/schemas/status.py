"""The response models of the orchestrator status: counts, capacity, provisioning, settings and nodes."""

from __future__ import annotations

from typing import Literal

from aceorch.api.schemas.common import Time, _Public
from aceorch.api.schemas.vpn import VpnSummaryPublic
from aceorch.control.breaker import BreakerState

__all__ = [
    "EngineCountsPublic", "StreamCountsPublic", "CapacityPublic", "BlockedReasonPublic", "ProvisioningStatePublic",
    "ConfigSummaryPublic", "NodePublic", "OrchestratorStatusPublic",
]


class EngineCountsPublic(_Public):
    """Engines known, running, healthy, unhealthy and unreachable (running, kept, never handed out)."""

    total: int
    running: int
    healthy: int
    unhealthy: int
    unreachable: int


class StreamCountsPublic(_Public):
    """Streams started now, and all streams kept."""

    active: int
    total: int


class CapacityPublic(_Public):
    """Engines in use and free, against the replica limits."""

    total: int
    used: int
    available: int
    max_replicas: int
    min_replicas: int


class BlockedReasonPublic(_Public):
    """Why provisioning is blocked now, and whether and when to retry."""

    code: str
    message: str
    recovery_eta_seconds: int | None
    can_retry: bool
    should_wait: bool


class ProvisioningStatePublic(_Public):
    """Whether an engine can be started now, the general breaker, and the blocking reason."""

    can_provision: bool
    circuit_breaker_state: BreakerState
    last_failure: Time | None
    blocked_reason: str | None
    blocked_reason_details: BlockedReasonPublic | None


class ConfigSummaryPublic(_Public):
    """The settings a proxy cares about."""

    auto_delete: bool
    grace_period_s: int
    target_image: str
    runtime: str


class NodePublic(_Public):
    """One node of a multi-node runtime: its health (``ready``, ``down``, ...), availability (``active``,
    ``pause``, ``drain``), its address, and how many engines run on it."""

    id: str
    hostname: str
    address: str | None
    role: str
    availability: str
    state: str
    engines: int


class OrchestratorStatusPublic(_Public):
    """Engines, streams, capacity, VPN and whether provisioning is possible now."""

    status: Literal["healthy", "degraded", "unavailable"]
    engines: EngineCountsPublic
    streams: StreamCountsPublic
    capacity: CapacityPublic
    vpn: VpnSummaryPublic
    provisioning: ProvisioningStatePublic
    config: ConfigSummaryPublic
    #: The runtime's machines (RUNTIME=swarm: the swarm's nodes), with their health and engines; empty otherwise.
    nodes: list[NodePublic]
    timestamp: Time
