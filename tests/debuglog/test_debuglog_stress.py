"""Stress detectors: each fires once per episode and writes ``<event_type>_resolved`` when it clears."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from debuglog_helpers import FakeClock, session_records

from aceorch.debuglog.records import SEVERITIES, STRESS_EVENT_TYPES
from aceorch.debuglog.stress import StressMonitor
from aceorch.debuglog.writer import DebugLog


class Harness:
    def __init__(self, log: DebugLog, monitor: StressMonitor, clock: FakeClock, events: list[dict[str, Any]]):
        self.log = log
        self.monitor = monitor
        self.clock = clock
        self.events = events

    def types(self) -> list[str]:
        return [e["event_type"] for e in self.events]

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event_type"] == event_type]


@pytest.fixture
def harness(make_settings: Any, clock: FakeClock) -> Iterator[Harness]:
    settings = make_settings()
    log = DebugLog(settings, version="1", clock=clock)
    events: list[dict[str, Any]] = []
    monitor = StressMonitor(log, settings, on_event=events.append, clock=clock, monotonic=clock.monotonic)
    yield Harness(log, monitor, clock, events)
    log.close()


def test_slow_provisioning_fires_once_per_slow_provision(harness: Harness) -> None:
    m = harness.monitor
    m.provision_finished(operation="start_acestream", success=True, duration_ms=17_000, container_id="a")
    assert harness.events == []
    m.provision_finished(operation="start_acestream", success=True, duration_ms=18_450.5, container_id="b")
    m.provision_finished(operation="start_container", success=True, duration_ms=20_000, container_id="c")
    slow = harness.of("slow_provisioning")
    assert len(slow) == 2
    first = slow[0]
    assert first["severity"] == "warning"
    assert first["description"] == "Provisioning took 18.45s (>17.5s threshold)"
    assert first["container_id"] == "b" and first["operation"] == "start_acestream"
    assert first["duration_ms"] == 18450.5 and first["threshold_ms"] == 17500.0
    assert first["session_id"] is None  # debug mode is off
    assert first["timestamp"] == "2025-10-18T14:44:30.000000Z"


def test_provisioning_failure_rate_is_a_state_machine(harness: Harness) -> None:
    m, clock = harness.monitor, harness.clock
    for _ in range(3):
        m.provision_finished(operation="start_acestream", success=True, duration_ms=100)
    m.provision_finished(operation="start_acestream", success=False, duration_ms=100, reason="docker_error")
    assert harness.of("provisioning_failure_rate") == []  # 4 attempts: too few
    m.provision_finished(operation="start_acestream", success=False, duration_ms=100, reason="docker_error")
    fired = harness.of("provisioning_failure_rate")
    assert len(fired) == 1
    assert fired[0]["failed"] == 2 and fired[0]["attempted"] == 5 and fired[0]["window_s"] == 300
    m.provision_finished(operation="start_acestream", success=False, duration_ms=100)
    assert len(harness.of("provisioning_failure_rate")) == 1  # still one record
    clock.advance(301)  # the window empties: the next tick clears it
    m.tick()
    resolved = harness.of("provisioning_failure_rate_resolved")
    assert len(resolved) == 1
    assert resolved[0]["severity"] == "info"
    assert resolved[0]["samples"] == 2
    assert resolved[0]["duration_ms"] == 301_000.0


def test_capacity_exhausted_until_capacity_ok(harness: Harness) -> None:
    m = harness.monitor
    m.provision_blocked(code="vpn_disconnected")
    assert harness.events == []
    m.provision_blocked(code="max_capacity", limit=20, running=20)
    m.provision_blocked(code="max_capacity", limit=20, running=20)
    m.provision_blocked(code="port_pool_exhausted")
    fired = harness.of("capacity_exhausted")
    assert len(fired) == 1 and fired[0]["limit"] == 20 and fired[0]["running"] == 20
    harness.clock.advance(12.5)
    m.capacity_ok()
    m.capacity_ok()
    resolved = harness.of("capacity_exhausted_resolved")
    assert len(resolved) == 1 and resolved[0]["samples"] == 3 and resolved[0]["duration_ms"] == 12_500.0


def test_vpn_disconnection_and_recovery(harness: Harness) -> None:
    m, clock = harness.monitor, harness.clock
    m.vpn_state(connected=False, signal="publicip")  # never seen healthy: still connecting, not an outage
    m.vpn_state(connected=True)
    assert harness.events == []
    m.vpn_state(connected=True)
    m.vpn_state(connected=False, signal="vpn_status")
    m.vpn_state(connected=False, signal="vpn_status")
    clock.advance(8)
    m.vpn_state(connected=False, signal="vpn_status")
    down = harness.of("vpn_disconnection")
    assert len(down) == 1
    assert down[0]["severity"] == "critical"
    assert down[0]["description"] == "Gluetun VPN became unhealthy"
    assert down[0]["signal"] == "vpn_status"
    clock.advance(2)
    m.vpn_state(connected=True)
    m.vpn_state(connected=True)
    resolved = harness.of("vpn_disconnection_resolved")
    assert len(resolved) == 1 and resolved[0]["samples"] == 3 and resolved[0]["duration_ms"] == 10_000.0
    recovered = harness.of("vpn_recovered")
    assert len(recovered) == 1
    assert recovered[0]["severity"] == "info" and recovered[0]["outage_ms"] == 10_000.0
    assert recovered[0]["engines_restarted"] is None
    m.vpn_engines_restarted(4)
    in_memory = m.recent(event_type="vpn_recovered")
    assert in_memory[0]["engines_restarted"] == 4
    assert harness.of("vpn_engines_restarted")[0]["engines_restarted"] == 4


def test_circuit_breaker_open_reopen_close(harness: Harness) -> None:
    m, clock = harness.monitor, harness.clock
    m.breaker_transition(operation_type="general", old="closed", new="open", failure_count=5, threshold=5)
    opened = harness.of("circuit_breaker_opened")
    assert len(opened) == 1
    assert opened[0]["description"] == "Circuit breaker opened after 5 failures"
    assert opened[0]["severity"] == "critical"
    assert opened[0]["operation_type"] == "general"
    assert opened[0]["failure_count"] == 5 and opened[0]["threshold"] == 5
    clock.advance(300)
    m.breaker_transition(operation_type="general", old="open", new="half_open", failure_count=5, threshold=5)
    m.breaker_transition(operation_type="general", old="half_open", new="open", failure_count=6, threshold=5)
    reopened = harness.of("circuit_breaker_reopened")
    assert len(reopened) == 1 and reopened[0]["failure_count"] == 6 and reopened[0]["operation_type"] == "general"
    # the replacement breaker is independent
    m.breaker_transition(operation_type="replacement", old="closed", new="open", failure_count=3, threshold=3)
    assert len(harness.of("circuit_breaker_opened")) == 2
    clock.advance(300)
    m.breaker_transition(operation_type="general", old="open", new="half_open", failure_count=6, threshold=5)
    m.breaker_transition(operation_type="general", old="half_open", new="closed", failure_count=0, threshold=5)
    resolved = harness.of("circuit_breaker_opened_resolved")
    assert len(resolved) == 1
    assert resolved[0]["operation_type"] == "general"
    assert resolved[0]["duration_ms"] == 600_000.0
    assert resolved[0]["samples"] == 4
    assert m.active() == ["circuit_breaker_opened"]  # the replacement breaker is still open


def test_high_unhealthy_engines(harness: Harness) -> None:
    m = harness.monitor
    m.engines_health(unhealthy=0, total=0)
    m.engines_health(unhealthy=3, total=10)  # 30% is not > 30%
    assert harness.events == []
    m.engines_health(unhealthy=4, total=10)
    m.engines_health(unhealthy=5, total=10)
    fired = harness.of("high_unhealthy_engines")
    assert len(fired) == 1
    assert fired[0]["description"] == "4/10 engines unhealthy (>30%)"
    assert fired[0]["unhealthy_count"] == 4 and fired[0]["total"] == 10
    assert fired[0]["severity"] == "warning"
    harness.clock.advance(40)
    m.engines_health(unhealthy=1, total=10)
    resolved = harness.of("high_unhealthy_engines_resolved")
    assert len(resolved) == 1 and resolved[0]["samples"] == 2 and resolved[0]["duration_ms"] == 40_000.0


def test_engine_replacement_storm(harness: Harness) -> None:
    m, clock = harness.monitor, harness.clock
    for _ in range(3):
        m.replacement_started()
        clock.advance(10)
    assert harness.events == []
    m.replacement_started()
    m.replacement_started()
    fired = harness.of("engine_replacement_storm")
    assert len(fired) == 1 and fired[0]["count"] == 4 and fired[0]["window_s"] == 300
    clock.advance(300)
    m.loop_lag(1.0)  # the periodic lag probe also ticks the window detectors
    assert len(harness.of("engine_replacement_storm_resolved")) == 1


def test_event_loop_lag(harness: Harness) -> None:
    m = harness.monitor
    m.loop_lag(50)
    m.loop_lag(100)
    assert harness.events == []
    m.loop_lag(150.456)
    m.loop_lag(400)
    fired = harness.of("event_loop_lag")
    assert len(fired) == 1 and fired[0]["lag_ms"] == 150.46
    harness.clock.advance(1)
    m.loop_lag(5)
    resolved = harness.of("event_loop_lag_resolved")
    assert len(resolved) == 1 and resolved[0]["samples"] == 2 and resolved[0]["max_lag_ms"] == 400.0


def test_debug_log_backpressure(harness: Harness) -> None:
    m = harness.monitor
    m.backpressure(0)
    assert harness.events == []
    m.backpressure(12)
    m.backpressure(3)
    fired = harness.of("debug_log_backpressure")
    assert len(fired) == 1 and fired[0]["dropped"] == 12
    m.backpressure(0)
    resolved = harness.of("debug_log_backpressure_resolved")
    assert len(resolved) == 1 and resolved[0]["dropped_total"] == 15 and resolved[0]["samples"] == 2


def test_stress_records_go_to_the_stress_file_when_debug_is_on(harness: Harness) -> None:
    harness.log.enable()
    sid = harness.log.session_id
    assert sid is not None
    harness.monitor.engines_health(unhealthy=4, total=10)
    harness.monitor.engines_health(unhealthy=0, total=10)
    harness.log.flush()
    recs = session_records(harness.log.log_dir, sid, "stress")
    assert [r["event_type"] for r in recs] == ["high_unhealthy_engines", "high_unhealthy_engines_resolved"]
    assert all(r["session_id"] == sid and "seq" in r for r in recs)
    # the in-memory copy is the file record
    assert harness.monitor.recent()[-1] == recs[-1]


def test_recent_filters_and_limits(harness: Harness) -> None:
    m, clock = harness.monitor, harness.clock
    m.loop_lag(200)
    t_mid = clock.now + timedelta(seconds=5)
    clock.advance(10)
    m.loop_lag(1)
    m.breaker_transition(operation_type="general", old="closed", new="open", failure_count=5, threshold=5)
    assert [e["event_type"] for e in m.recent()] == [
        "event_loop_lag",
        "event_loop_lag_resolved",
        "circuit_breaker_opened",
    ]
    assert [e["event_type"] for e in m.recent(since=t_mid)] == ["event_loop_lag_resolved", "circuit_breaker_opened"]
    assert [e["event_type"] for e in m.recent(severity="critical")] == ["circuit_breaker_opened"]
    assert [e["event_type"] for e in m.recent(event_type="event_loop_lag")] == ["event_loop_lag"]
    assert [e["event_type"] for e in m.recent(limit=1)] == ["circuit_breaker_opened"]
    for _ in range(1100):
        m.provision_finished(operation="start_acestream", success=True, duration_ms=30_000)
    assert len(m.recent(limit=1000)) == 1000


def test_every_event_type_has_a_known_severity() -> None:
    assert set(STRESS_EVENT_TYPES.values()) <= set(SEVERITIES)


def test_the_embedded_proxys_stress_events_are_the_monitors_too(harness: Harness) -> None:
    """The embedded proxy's detectors decide their episodes; the monitor writes them into the session, keeps
    them for ``/debug/stress`` and passes them to its hook (metrics, event feed), marked ``component: proxy``."""
    from aceorch.proxy.debug import ProxyDebug
    from aceorch.proxy.hub import embedded_record

    harness.log.enable()
    sid = harness.log.session_id
    assert sid is not None
    others: list[tuple[str, dict[str, Any]]] = []
    hook = ProxyDebug(embedded_record(lambda category, **f: others.append((category, f)),
                                      stress=lambda **f: harness.monitor.adopt(**f)))
    hook("requests", operation="first_byte_ready", stream_key="k", request_id="r1", duration_ms=19_000)
    hook("requests", operation="first_byte_ready", stream_key="k", request_id="r2", duration_ms=300)
    assert harness.types() == ["slow_request", "slow_request_resolved"]
    fired = harness.of("slow_request")[0]
    assert (fired["component"], fired["request_id"], fired["severity"]) == ("proxy", "r1", "warning")
    assert [e["event_type"] for e in harness.monitor.recent(event_type="slow_request")] == ["slow_request"]
    harness.log.flush()
    recs = session_records(harness.log.log_dir, sid, "stress")
    assert [r["event_type"] for r in recs] == ["slow_request", "slow_request_resolved"]
    assert all(r["component"] == "proxy" and r["session_id"] == sid for r in recs)
    # the proxy's other records still go to its own writer, not through the monitor
    assert [c for c, _ in others] == ["requests", "requests"] and not any(c == "stress" for c, _ in others)
