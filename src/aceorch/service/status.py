"""Read models: orchestrator status, health status, readiness and whether provisioning is blocked now.

Everything is read from memory, never from the runtime, so that status answers within milliseconds.
"""

from __future__ import annotations

import collections
from typing import Any

from aceorch.config import Settings
from aceorch.control.admission import blocked_error, decide_admission
from aceorch.control.breaker import Breakers, BreakerState, CircuitBreaker
from aceorch.control.vpn import VpnMonitor, VpnView
from aceorch.control.vpn_pool import VpnPool
from aceorch.errors import ProvisioningBlocked
from aceorch.models import HealthStatus, format_time, utcnow
from aceorch.service.fleet import Fleet
from aceorch.service.liveness import Liveness
from aceorch.service.provisioning import Provisioning
from aceorch.service.streams import Streams

__all__ = ["Status"]


def _blocked_reason(code: str, *, breaker_state: str, max_replicas: int) -> tuple[str, str]:
    """(reason, message) shown in ``/orchestrator/status`` for a closed gate."""
    return {
        "runtime_unavailable": ("Runtime unavailable", "The container runtime is not answering. Engines "
                                "cannot be provisioned until it is back."),
        "vpn_disconnected": ("VPN not connected", "VPN connection is required but currently disconnected. "
                             "Engines cannot be provisioned without VPN."),
        "circuit_breaker": (f"Circuit breaker is {breaker_state}", f"Provisioning circuit breaker is "
                            f"{breaker_state} due to repeated failures. System is waiting for conditions to "
                            "improve."),
        "max_capacity": ("Maximum capacity reached", f"Maximum number of engines ({max_replicas}) already "
                         "running. Wait for streams to end or increase MAX_REPLICAS."),
    }[code]


class Status:
    """The status read models, built from the fleet, the streams, the gates, the breakers and the VPN monitor."""

    def __init__(
        self,
        settings: Settings,
        *,
        runtime_name: str,
        fleet: Fleet,
        streams: Streams,
        provisioning: Provisioning,
        liveness: Liveness,
        breakers: Breakers,
        vpn: VpnMonitor | VpnPool,
    ) -> None:
        self.settings = settings
        self._runtime_name = runtime_name
        self._fleet = fleet
        self._streams = streams
        self._provisioning = provisioning
        self._liveness = liveness
        self._breakers = breakers
        self._vpn = VpnPool.of(vpn)
        #: Startup (adoption, VPN wait) is done and the autoscaler runs.
        self.started = False

    def blocked(self) -> tuple[str | None, ProvisioningBlocked | None]:
        """The code and error of the first closed provisioning gate, or (None, None)."""
        gate = self._provisioning.gate_state(runtime_ok=self._liveness.runtime_fresh())
        code = decide_admission(gate)
        if code is None:
            return None, None
        return code, blocked_error(code, gate)

    def orchestrator_status(self) -> dict[str, Any]:
        """Engines, streams, capacity, VPN and whether provisioning is possible now."""
        s = self.settings
        engines = self._fleet.engines()
        counts = self._fleet.health_counts()
        total = len(engines)
        running = sum(1 for e in engines if e.running)
        used = sum(1 for e in engines if e.streams)
        # An unreachable engine takes a slot but is never handed out: it is not available.
        available = sum(1 for e in engines if not e.streams and e.health_status is not HealthStatus.UNREACHABLE)
        code, err = self.blocked()
        general = self._breakers["general"]
        state = general.state
        reason: str | None = None
        details: dict[str, Any] | None = None
        if code is not None and err is not None:
            reason, message = _blocked_reason(code, breaker_state=state.value, max_replicas=s.pool.max_replicas)
            details = {"code": code, "message": message, "recovery_eta_seconds": err.recovery_eta_seconds,
                       "can_retry": err.can_retry, "should_wait": err.should_wait}
        can = code is None
        if running == 0 and not can:
            status = "unavailable"
        elif (
            code in ("runtime_unavailable", "vpn_disconnected", "circuit_breaker")
            or state is not BreakerState.CLOSED
            or running == 0
            or counts["unreachable"]
        ):
            status = "degraded"
        else:
            status = "healthy"
        vpn = self._vpn.view(engines)
        return {
            "status": status,
            "engines": {"total": total, "running": running, "healthy": counts["healthy"],
                        "unhealthy": counts["unhealthy"], "unreachable": counts["unreachable"]},
            "streams": {"active": self._streams.count_started(), "total": self._streams.count()},
            "capacity": {"total": total, "used": used, "available": available, "max_replicas": s.pool.max_replicas,
                         "min_replicas": s.pool.min_replicas},
            "vpn": {"enabled": vpn.enabled, "connected": vpn.connected, "health": vpn.health,
                    "container": vpn.container, "forwarded_port": vpn.forwarded_port, "vpns": vpn.vpns},
            "provisioning": {"can_provision": can, "circuit_breaker_state": state.value,
                             "last_failure": format_time(general.last_failure_time), "blocked_reason": reason,
                             "blocked_reason_details": details},
            "config": {"auto_delete": s.pool.auto_delete, "grace_period_s": s.pool.engine_grace_period_s,
                       "target_image": s.runtime.target_image, "runtime": self._runtime_name},
            "nodes": self._nodes(engines),
            "timestamp": format_time(utcnow()),
        }

    def _nodes(self, engines: list[Any]) -> list[dict[str, Any]]:
        """The runtime's nodes (a swarm's; none under the single-host runtimes) with their engines, as last seen."""
        at = collections.Counter(e.host for e in engines)
        return [{"id": n.id, "hostname": n.hostname, "address": n.address, "role": n.role,
                 "availability": n.availability, "state": n.state, "engines": at.get(n.address or "", 0)}
                for n in self._fleet.nodes]

    def vpn_status(self) -> VpnView:
        """The VPN monitor's last check (with several VPNs, the summary and each one)."""
        return self._vpn.view(self._fleet.engines())

    def breakers(self) -> dict[str, CircuitBreaker]:
        """Both circuit breakers, by name."""
        return dict(self._breakers)

    def health_status(self) -> dict[str, Any]:
        """Engine health counts and both circuit breakers."""
        engines = self._fleet.engines()
        counts = self._fleet.health_counts()
        return {
            "total_engines": len(engines),
            "healthy_engines": counts["healthy"],
            "unhealthy_engines": counts["unhealthy"],
            "unknown_engines": counts["unknown"],
            "unreachable_engines": counts["unreachable"],
            "marked_for_replacement": sum(
                1 for e in engines if e.health_status is HealthStatus.UNHEALTHY and e.unhealthy_since is not None
            ),
            "minimum_required": self.settings.pool.min_replicas,
            "health_check_interval": self.settings.health.health_check_interval_s,
            "circuit_breakers": self.breakers(),
        }

    def readiness(self) -> dict[str, str]:
        """Per check, ``ok`` or why not: startup done, database answering, runtime answering."""
        return {
            "startup": "ok" if self.started else "pending",
            "database": "ok" if self._liveness.database_ok else "down",
            "runtime": "ok" if self._liveness.runtime_fresh() else "unreachable",
        }
