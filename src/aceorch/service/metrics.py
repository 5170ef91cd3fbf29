"""Prometheus metrics, in a registry of their own per service: no process-wide globals."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]


class Metrics:
    """The service's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_started = Counter("orch_events_started", "stream_started events that started a stream", registry=r)
        self.events_ended = Counter("orch_events_ended", "stream_ended events that ended a stream", registry=r)
        self.collector_errors = Counter("orch_collector_errors", "failed stat collections", registry=r)
        self.streams_active = Gauge("orch_streams_active", "streams currently started", registry=r)
        self.provision_total = Counter("orch_provision", "admitted starts", ["kind"], registry=r)
        self.provision_blocked = Counter(
            "orch_provision_blocked", "provisions refused before a start", ["code"], registry=r
        )
        self.provision_failures = Counter(
            "orch_provision_failures", "starts that failed", ["kind", "code"], registry=r
        )
        self.provision_duration = Histogram(
            "orch_provision_duration_seconds",
            "duration of successful starts, measured to readiness",
            ["kind"],
            buckets=(0.25, 0.5, 1, 2, 3, 5, 8, 12, 17.5, 25, 40, 60, 120),
            registry=r,
        )
        self.engines = Gauge("orch_engines", "engines by health state", ["health"], registry=r)
        self.breaker_state = Gauge(
            "orch_circuit_breaker_state", "0 closed, 1 half_open, 2 open", ["name"], registry=r
        )
        self.vpn_connected = Gauge("orch_vpn_connected", "1 when the VPN is connected", registry=r)
        self.stress_events = Counter(
            "orch_stress_events", "stress events detected", ["event_type", "severity"], registry=r
        )
        self.debug_written = Gauge("orch_debug_entries_written_total", "debug records written", registry=r)
        self.debug_dropped = Gauge("orch_debug_entries_dropped_total", "debug records dropped", registry=r)
        self.loop_lag_max = Gauge(
            "orch_event_loop_lag_max_seconds", "the largest event-loop lag seen since start", registry=r
        )
        for health in ("healthy", "unhealthy", "unknown"):
            self.engines.labels(health=health).set(0)
        for name in ("general", "replacement"):
            self.breaker_state.labels(name=name).set(0)

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)
