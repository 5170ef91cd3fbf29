"""Admission of an engine start: the gates, checked in a fixed order, and the error each closed gate raises.

The order is runtime, VPN, circuit breaker, capacity; the first closed gate answers and nothing is created
before all pass. :func:`decide_admission` is the pure rule; :func:`blocked_error` names the closed gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aceorch.control.breaker import BreakerState
from aceorch.errors import (
    BreakerBlocked,
    CapacityBlocked,
    ProvisioningBlocked,
    ProvisioningFailed,
    RuntimeBlocked,
    VpnBlocked,
    VpnFailure,
)

__all__ = ["ProvisionRequest", "GateState", "decide_admission", "blocked_error", "failed"]


@dataclass
class ProvisionRequest:
    """One engine start as asked for: image, labels, env, host port, who asked and on behalf of which request."""

    image: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    host_port: int | None = None
    #: who asked: ``api``, ``scale``, ``autoscaler`` (general breaker) or ``replacement`` (replacement breaker)
    source: str = "api"
    request_id: str | None = None


@dataclass(frozen=True)
class GateState:
    """Everything admission looks at, captured at one instant."""

    runtime_ok: bool
    vpn_enabled: bool
    vpn_connected: bool
    breaker_state: BreakerState
    breaker_eta_s: int | None
    breaker_allows: bool
    engines: int
    in_flight: int
    max_replicas: int
    max_active_replicas: int
    auto_delete: bool
    grace_period_s: int
    startup_timeout_s: int


def decide_admission(gate: GateState) -> str | None:
    """The code of the first gate that blocks a start, or None if all pass."""
    if not gate.runtime_ok:
        return "runtime_unavailable"
    if gate.vpn_enabled and not gate.vpn_connected:
        return "vpn_disconnected"
    if not gate.breaker_allows:
        return "circuit_breaker"
    cap = gate.max_replicas
    if gate.vpn_enabled:
        cap = min(cap, gate.max_active_replicas)
    if gate.engines + gate.in_flight >= cap:
        return "max_capacity"
    return None


def blocked_error(code: str, gate: GateState) -> ProvisioningBlocked:
    """The error for one closed gate, with its recovery estimate and retry advice."""
    if code == "runtime_unavailable":
        return RuntimeBlocked(
            "Container runtime is not answering; engines cannot be provisioned", recovery_eta_seconds=10,
            can_retry=True, should_wait=True, reason="docker_error",
        )
    if code == "vpn_disconnected":
        return VpnBlocked(
            "VPN connection is required but currently disconnected", recovery_eta_seconds=60, can_retry=True,
            should_wait=True,
        )
    if code == "circuit_breaker":
        state = gate.breaker_state.value
        return BreakerBlocked(
            f"Circuit breaker is {state} due to repeated failures", recovery_eta_seconds=gate.breaker_eta_s,
            can_retry=gate.breaker_state is not BreakerState.OPEN, should_wait=True,
        )
    limit = min(gate.max_replicas, gate.max_active_replicas) if gate.vpn_enabled else gate.max_replicas
    return CapacityBlocked(
        f"Maximum number of engines ({limit}) already running. Wait for streams to end or increase MAX_REPLICAS.",
        recovery_eta_seconds=gate.grace_period_s if gate.auto_delete else None, can_retry=False, should_wait=True,
    )


def failed(cause: str, reason: str, *, vpn: bool = False) -> ProvisioningFailed:
    """An admitted start that failed; ``vpn`` marks a failure of the VPN's network."""
    if vpn:
        return VpnFailure(
            f"VPN error during provisioning: {cause}", recovery_eta_seconds=60, can_retry=True, should_wait=True,
            reason=reason,
        )
    return ProvisioningFailed(f"Failed to provision engine: {cause}", reason=reason)
