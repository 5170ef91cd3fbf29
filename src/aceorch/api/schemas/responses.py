"""The API's response models: one per response body, so that OpenAPI declares each.

Models are named ``<Thing>Public``. Those built from domain objects read their attributes
(``from_attributes``); the others validate the service's read models, dicts or objects alike. Every time
leaves as :data:`Time`, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` or null, the form acexy decodes with Go's RFC 3339
parser. Lists are bare JSON arrays. Label values whose names look secret (``db_password``, ``api_key``) leave as
``***``, by the debug log's rule (:func:`aceorch.debuglog.masking.is_secret_name`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    model_serializer,
)

from aceorch.control.breaker import BreakerState
from aceorch.debuglog.masking import is_secret_name, maskable
from aceorch.models import HealthStatus, format_time

__all__ = [
    "Time",
    "Labels",
    "mask_labels",
    "AUTH_ERRORS",
    "Message",
    "ErrorPublic",
    "ProvisioningErrorDetail",
    "ProvisioningErrorPublic",
    "EnginePublic",
    "StreamPublic",
    "EngineDetailPublic",
    "StatSnapshotPublic",
    "StreamEndedPublic",
    "EngineHealthReportPublic",
    "StreamStoppedPublic",
    "EngineProvisionedPublic",
    "ContainerProvisionedPublic",
    "ContainerPublic",
    "ContainerDeletedPublic",
    "ScalePublic",
    "GcPublic",
    "BreakerPublic",
    "HealthStatusPublic",
    "BreakerResetPublic",
    "VpnStatusPublic",
    "VpnEntryPublic",
    "VpnSummaryEntryPublic",
    "EngineCountsPublic",
    "StreamCountsPublic",
    "CapacityPublic",
    "VpnSummaryPublic",
    "BlockedReasonPublic",
    "ProvisioningStatePublic",
    "ConfigSummaryPublic",
    "OrchestratorStatusPublic",
    "DebugFilePublic",
    "DebugSettingsPublic",
    "DebugStatusPublic",
    "DebugChangedPublic",
    "StressEventPublic",
    "LivenessPublic",
    "ReadinessChecksPublic",
    "ReadinessPublic",
]


def mask_labels(labels: dict[str, str]) -> dict[str, str]:
    """Labels with the values of secret-looking names replaced by ``***``."""
    return {k: "***" if is_secret_name(k) and maskable(v) else v for k, v in labels.items()}


#: Labels as they leave the API: secret-looking values masked.
Labels = Annotated[dict[str, str], AfterValidator(mask_labels)]


def _format_time(value: datetime) -> str:
    return format_time(value) or ""


#: A time in a response: a timezone-aware datetime (or its RFC 3339 text), written by
#: :func:`~aceorch.models.format_time` as ``2025-10-18T14:45:23.456000Z``.
Time = Annotated[
    datetime,
    PlainSerializer(_format_time, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2025-10-18T14:45:23.456000Z"]}),
]


class _Public(BaseModel):
    """Base of the response models: built from objects (``from_attributes``) or dicts; unknown fields ignored."""

    model_config = ConfigDict(from_attributes=True)


class Message(_Public):
    """A body that only says what happened."""

    message: str


class ErrorPublic(_Public):
    """An error whose detail is one sentence (401, 403, 404, 413, a refused breaker name, ...)."""

    detail: str


class ProvisioningErrorDetail(_Public):
    """Why a start was refused or failed, and whether and when to retry."""

    error: Literal["provisioning_blocked", "provisioning_rejected", "provisioning_failed"]
    code: str
    message: str
    recovery_eta_seconds: int | None
    can_retry: bool
    should_wait: bool


class ProvisioningErrorPublic(_Public):
    """A refused or failed start (400, 409, 500, 503); 503s carry ``Retry-After``."""

    detail: ProvisioningErrorDetail


#: OpenAPI entries for the bearer-key refusals of every route that needs the key.
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "missing bearer token"},
    403: {"model": ErrorPublic, "description": "invalid token"},
}


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


class StreamPublic(_Public):
    """One stream a proxy reported: its key, engine, session URLs, times, status and labels."""

    id: str
    key_type: str
    key: str
    container_id: str
    playback_session_id: str
    stat_url: str
    command_url: str
    is_live: bool
    started_at: Time
    ended_at: Time | None
    status: Literal["started", "ended"]
    end_reason: str | None
    labels: Labels


class EngineDetailPublic(_Public):
    """One engine and its started streams."""

    engine: EnginePublic
    streams: list[StreamPublic]


class StatSnapshotPublic(_Public):
    """One stat collection of a stream; counters the engine did not give are null."""

    ts: Time
    peers: int | None
    speed_down: int | None
    speed_up: int | None
    downloaded: int | None
    uploaded: int | None
    status: str | None


class StreamEndedPublic(_Public):
    """Whether ``stream_ended`` changed anything, and the stream (null when unknown)."""

    updated: bool
    stream: StreamPublic | None


class StreamStoppedPublic(_Public):
    """Whether the engine confirmed the stop, and the stream, now ended."""

    stopped: bool
    stream: StreamPublic


class EngineProvisionedPublic(_Public):
    """A started engine: its container and ports."""

    container_id: str
    container_name: str
    host_http_port: int
    container_http_port: int
    container_https_port: int | None
    host: str


class ContainerProvisionedPublic(_Public):
    """A started generic container."""

    container_id: str
    container_name: str


class ContainerPublic(_Public):
    """A managed container as the runtime reports it; ``ports`` has Docker's shape."""

    id: str
    name: str
    image: str
    created: Time
    status: str
    labels: Labels
    ports: dict[str, list[dict[str, str]] | None]


class ContainerDeletedPublic(_Public):
    """A removed container: the id asked for and the full id."""

    deleted: str
    container_id: str


class ScalePublic(_Public):
    """What a scale request did: the target, the engines started and stopped, failures and deferrals."""

    scaled_to: int
    requested: int
    started: list[str]
    stopped: list[str]
    failed: int
    deferred: int


class GcPublic(_Public):
    """What the idle sweep did: the engines stopped and the old streams pruned."""

    status: Literal["ok"]
    stopped: list[str]
    pruned_streams: int


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


class VpnEntryPublic(_Public):
    """One VPN of several: its Gluetun, its last check, the signal that decided, its engines and port range."""

    name: str | None
    container: str | None
    status: str
    health: str
    connected: bool
    signal: str | None
    forwarded_port: int | None
    public_ip: str | None
    control_server: str | None
    engines: int | None
    port_range: str | None
    reason: str | None
    last_check: Time | None
    error: str | None


class VpnStatusPublic(_Public):
    """The VPN monitor's last check (with several VPNs: connected while any is, and ``vpns``, one entry each).

    With the VPN disabled the body has no ``public_ip`` or ``control_server``; ``error`` appears only when the
    last check failed with one.
    """

    enabled: bool
    status: str
    container_name: str | None
    container: str | None
    health: str
    connected: bool
    forwarded_port: int | None
    public_ip: str | None = None
    control_server: str | None = None
    last_check: Time | None
    last_check_at: Time | None
    error: str | None = None
    vpns: list[VpnEntryPublic] | None = None

    # No return annotation: pydantic would take it for the serialised schema and hide the fields from OpenAPI.
    @model_serializer(mode="wrap")
    def _present_fields(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        body = handler(self)
        if not self.enabled:
            body.pop("public_ip", None)
            body.pop("control_server", None)
        if self.error is None:
            body.pop("error", None)
        if self.vpns is None:
            body.pop("vpns", None)
        return body


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


class VpnSummaryEntryPublic(_Public):
    """One VPN of several in the orchestrator status."""

    name: str | None
    connected: bool
    health: str
    forwarded_port: int | None
    engines: int | None
    reason: str | None


class VpnSummaryPublic(_Public):
    """The VPN as the orchestrator status shows it (with several: connected while any is, and ``vpns``)."""

    enabled: bool
    connected: bool
    health: str
    container: str | None
    forwarded_port: int | None
    vpns: list[VpnSummaryEntryPublic] | None = None

    # No return annotation: pydantic would take it for the serialised schema and hide the fields from OpenAPI.
    @model_serializer(mode="wrap")
    def _present_fields(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        body = handler(self)
        if self.vpns is None:
            body.pop("vpns", None)
        return body


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


class EngineHealthReportPublic(_Public):
    """The engine a health report was taken for: its health now, and whether the report changed it."""

    container_id: str
    health_status: HealthStatus
    changed: bool
