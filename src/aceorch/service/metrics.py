"""Prometheus metrics, in a registry of their own per service: no process-wide globals.

Names follow the Prometheus conventions: base units (seconds), counters end in ``_total`` (the client adds it),
states are gauges. ``deploy/prometheus/alerts.yml`` and ``deploy/grafana/aceorch.json`` are written against
these names; ``docs/monitoring.md`` lists them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from aceorch.config import Settings

__all__ = ["Metrics", "DURATION_BUCKETS"]

#: Provisioning duration buckets, in seconds; the slow threshold is added when it is not one of them, so that
#: "slower than the threshold" is exact in PromQL.
DURATION_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 17.5, 25.0, 40.0, 60.0, 120.0)

#: The codes a provision is refused with before a start: their counters exist from the start at 0, so that
#: ``increase()`` sees the first refusal (a series that appears at 1 shows no increase).
BLOCKED_CODES = ("runtime_unavailable", "vpn_disconnected", "circuit_breaker", "max_capacity")

#: Default slow threshold: STARTUP_TIMEOUT_S (25) x DEBUG_SLOW_PROVISIONING_RATIO (0.7).
DEFAULT_SLOW_THRESHOLD_S = 17.5


class Metrics:
    """The service's Prometheus metrics, in a registry of its own."""

    def __init__(
        self,
        *,
        slow_threshold_s: float = DEFAULT_SLOW_THRESHOLD_S,
        max_replicas: int = 20,
        vpn_enabled: bool = False,
        vpn_names: tuple[str, ...] = (),
    ) -> None:
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
            buckets=tuple(sorted({*DURATION_BUCKETS, float(slow_threshold_s)})),
            registry=r,
        )
        self.provision_slow_threshold = Gauge(
            "orch_provision_slow_threshold_seconds",
            "a start slower than this is slow (STARTUP_TIMEOUT_S x DEBUG_SLOW_PROVISIONING_RATIO)",
            registry=r,
        )
        self.engines = Gauge("orch_engines", "engines by health state", ["health"], registry=r)
        self.engines_max = Gauge("orch_engines_max", "the most engines aceorch runs (MAX_REPLICAS)", registry=r)
        self.breaker_state = Gauge(
            "orch_circuit_breaker_state", "0 closed, 1 half_open, 2 open", ["name"], registry=r
        )
        self.vpn_enabled = Gauge(
            "orch_vpn_enabled", "1 when engines run behind a Gluetun VPN (GLUETUN_CONTAINER_NAME set)", registry=r
        )
        self.vpn_connected = Gauge(
            "orch_vpn_connected", "1 when that VPN (vpn: its Gluetun container) is connected", ["vpn"], registry=r
        )
        self.vpn_engines = Gauge("orch_vpn_engines", "engines behind each VPN", ["vpn"], registry=r)
        self.vpn_failovers = Counter(
            "orch_vpn_failovers", "times a VPN dropped while another was up and its engines failed over", ["vpn"],
            registry=r,
        )
        self.vpn_gluetun_restarts = Counter(
            "orch_vpn_gluetun_restarts",
            "forced Gluetun restarts (outcome restarted) and restarts the restart breaker refused (refused)",
            ["vpn", "outcome"], registry=r,
        )
        self.stress_events = Counter(
            "orch_stress_events", "stress events detected", ["event_type", "severity"], registry=r
        )
        self.debug_written = Counter("orch_debug_entries_written", "debug records written", registry=r)
        self.debug_dropped = Counter("orch_debug_entries_dropped", "debug records dropped", registry=r)
        self.loop_lag_max = Gauge(
            "orch_event_loop_lag_max_seconds", "the largest event-loop lag seen since start", registry=r
        )
        self._debug_seen = (0, 0)
        self.provision_slow_threshold.set(slow_threshold_s)
        self.engines_max.set(max_replicas)
        self.vpn_enabled.set(1 if vpn_enabled else 0)
        for vpn in vpn_names:
            self.vpn_connected.labels(vpn=vpn).set(0)
            self.vpn_engines.labels(vpn=vpn).set(0)
            self.vpn_failovers.labels(vpn=vpn)
        for health in ("healthy", "unhealthy", "unknown", "unreachable"):
            self.engines.labels(health=health).set(0)
        for name in ("general", "replacement"):
            self.breaker_state.labels(name=name).set(0)
        for code in BLOCKED_CODES:
            self.provision_blocked.labels(code=code)

    @classmethod
    def from_settings(cls, settings: Settings) -> Metrics:
        """The metrics of a service run with these settings (limits and thresholds exported as gauges)."""
        return cls(
            slow_threshold_s=settings.debug.debug_slow_provisioning_ratio * settings.runtime.startup_timeout_s,
            max_replicas=settings.pool.max_replicas,
            vpn_enabled=settings.vpn_enabled,
            vpn_names=tuple(settings.vpn.names),
        )

    def debug_counts(self, written: int, dropped: int) -> None:
        """Advance the debug-record counters to the debug log's totals (a total that went down restarted)."""
        last_written, last_dropped = self._debug_seen
        self.debug_written.inc(written - last_written if written >= last_written else written)
        self.debug_dropped.inc(dropped - last_dropped if dropped >= last_dropped else dropped)
        self._debug_seen = (written, dropped)

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)
