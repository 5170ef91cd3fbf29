"""One round of each control loop, driven with the real components: health prober, autoscaler, VPN monitor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from service_parts import Parts

from aceorch.control import autoscaler, health, vpn
from aceorch.models import Engine, HealthStatus
from aceorch.runtime.base import ContainerSpec

PartsFactory = Callable[..., Awaitable[Parts]]


class Signals:
    """Counts what the loops report to the stress monitor."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def engines_health(self, *, unhealthy: int, total: int) -> None:
        self.calls.append(("engines_health", (unhealthy, total)))

    def replacement_started(self) -> None:
        self.calls.append(("replacement_started", None))

    def vpn_state(self, *, connected: bool, signal: str | None = None) -> None:
        self.calls.append(("vpn_state", connected))

    def vpn_engines_restarted(self, count: int) -> None:
        self.calls.append(("vpn_engines_restarted", count))


async def probe(p: Parts, signals: Signals, state: health.ProberState) -> None:
    await health.probe_round(settings=p.settings, fleet=p.fleet, replacer=p.provisioning, http=p.http,
                             record=lambda c, **f: p.records.append((c, f)), signals=signals, state=state)


async def test_the_prober_marks_a_silent_engine_unhealthy_and_replaces_it(parts: PartsFactory) -> None:
    p = await parts(health_failure_threshold=2, health_unhealthy_grace_period_s=0, max_replicas=5)
    sick = await p.engine()
    p.answering.discard(sick.port)
    signals, state = Signals(), health.ProberState()
    await probe(p, signals, state)
    assert (sick.health_status, sick.consecutive_failures) == (HealthStatus.UNKNOWN, 1)
    await probe(p, signals, state)
    assert p.fleet.get(sick.container_id) is None  # unhealthy, replaced, and stopped (it had no stream)
    assert [e.container_name for e in p.fleet.engines()] == ["acestream-2"]
    assert ("replacement_started", None) in signals.calls
    assert [r["operation"] for r in p.ops("health") if r["operation"] == "status_transition"] == [
        "status_transition"
    ]


async def test_the_prober_marks_an_answering_engine_healthy(parts: PartsFactory) -> None:
    p = await parts()
    engine = await p.engine()
    signals = Signals()
    await probe(p, signals, health.ProberState())
    assert engine.health_status is HealthStatus.HEALTHY
    assert signals.calls == [("engines_health", (0, 1))]


async def test_the_autoscaler_fills_the_floor_then_stops_idle_engines(parts: PartsFactory) -> None:
    p = await parts(min_replicas=2, max_replicas=5)
    record = lambda c, **f: p.records.append((c, f))  # noqa: E731
    await autoscaler.autoscale_round(settings=p.settings, fleet=p.fleet, starts=p.provisioning, streams=p.streams,
                                     record=record)
    assert p.fleet.engine_count() == 2
    p2 = await parts(min_replicas=0, idle_ttl_s=1)
    engine = await p2.engine()
    engine.first_seen -= timedelta(seconds=5)
    await autoscaler.autoscale_round(settings=p2.settings, fleet=p2.fleet, starts=p2.provisioning,
                                     streams=p2.streams, record=record)
    assert p2.fleet.engines() == []


async def test_the_autoscaler_starts_nothing_while_a_gate_is_closed(parts: PartsFactory) -> None:
    p = await parts(min_replicas=2)
    p.liveness.runtime_lost()
    await autoscaler.autoscale_round(settings=p.settings, fleet=p.fleet, starts=p.provisioning, streams=p.streams,
                                     record=lambda c, **f: p.records.append((c, f)))
    assert p.fleet.engine_count() == 0 and "create" not in p.runtime.call_names()
    assert [r["action"] for r in p.ops("autoscaler")] == ["start 2"]


async def test_after_a_stable_vpn_recovery_older_engines_are_restarted(parts: PartsFactory) -> None:
    p = await parts(vpn_enabled=True, gluetun_container_name="gluetun", gluetun_api_url="http://gluetun-api:8000",
                    vpn_recovery_stabilize_s=0, vpn_restart_engines_on_reconnect=True)
    gluetun = p.runtime.add_container(ContainerSpec(name="gluetun", image="qmcgaw/gluetun"))
    info = p.runtime.add_container(ContainerSpec(name="acestream-1", image="acestream/engine"))
    engine = Engine(container_id=info.id, container_name="acestream-1", host="127.0.0.1", port=19100,
                    host_http_port=19100, container_http_port=19100)
    await p.fleet.register(engine, info)
    p.answering.add(19100)
    monitor = vpn.VpnMonitor(p.settings, runtime=p.runtime, http=p.http)
    monitor.last = vpn.VpnCheck(health="healthy")
    signals, gauge = Signals(), list[bool]()

    async def check() -> None:
        await vpn.vpn_round(settings=p.settings, monitor=monitor, fleet=p.fleet, signals=signals,
                            record=lambda c, **f: p.records.append((c, f)), on_connected=gauge.append)

    p.runtime.set_health(gluetun.id, "unhealthy")
    await check()
    assert gauge == [False] and monitor.down_since is not None
    assert ("vpn_engines_restarted", 1) not in signals.calls
    p.runtime.set_health(gluetun.id, "healthy")
    await check()
    assert gauge == [False, True]
    assert monitor.down_since is None and monitor.recovered_at is None
    assert ("vpn_engines_restarted", 1) in signals.calls
    assert ("restart", info.id) in p.runtime.calls and engine.health_status is HealthStatus.HEALTHY
    assert [(r["operation"], r.get("success")) for r in p.ops("vpn") if r["operation"] == "engine_restart"] == [
        ("engine_restart", True)
    ]
