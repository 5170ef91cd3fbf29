"""The pool heals without losing live engines, on the in-memory runtime: unreachable engines are kept and join
once they answer; at capacity an unhealthy engine is stopped before its replacement starts; a hung engine with
streams is replaced after HEALTH_UNHEALTHY_STREAM_GRACE_S."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from service_parts import Parts
from test_fleet import engine_spec, start_stream
from test_loops import Signals, probe

from aceorch.control import autoscaler, health
from aceorch.models import Engine, HealthStatus, utcnow

PartsFactory = Callable[..., Awaitable[Parts]]


def sicken(engine: Engine, p: Parts, *, for_s: float) -> None:
    """The engine stops answering and has been unhealthy for ``for_s`` seconds."""
    p.answering.discard(engine.port)
    engine.health_status = HealthStatus.UNHEALTHY
    engine.consecutive_failures = 5
    engine.unhealthy_since = (engine.last_health_check or engine.created_at) - timedelta(seconds=for_s)


def decisions(p: Parts) -> list[tuple[str, str]]:
    return [(r["operation"], r.get("action") or str(r.get("success"))) for r in p.ops("health")
            if r["operation"] in ("replacement_decision", "replacement_result")]


async def test_an_unreachable_engine_joins_the_pool_once_it_answers(
    parts: PartsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    p = await parts(startup_timeout_s=1, max_replicas=3)
    info = p.runtime.add_container(engine_spec("acestream-7", 19100))
    await p.fleet.reconcile(initial=True)
    await p.settle()
    kept = p.fleet.get(info.id)
    assert kept is not None and kept.health_status is HealthStatus.UNREACHABLE
    status = p.status.orchestrator_status()
    assert status["engines"]["unreachable"] == 1 and status["status"] == "degraded"
    assert status["capacity"]["available"] == 0
    assert p.status.health_status()["unreachable_engines"] == 1
    signals, state = Signals(), health.ProberState()
    await probe(p, signals, state)
    assert kept.health_status is HealthStatus.UNREACHABLE and p.fleet.get(info.id) is kept
    p.answering.add(19100)
    with caplog.at_level(logging.INFO):
        await probe(p, signals, state)
    assert kept.health_status is HealthStatus.HEALTHY and kept.unreachable_reason is None
    assert "engine_reachable" in [r["operation"] for r in p.ops("health")]
    assert any("acestream-7 answers" in r.getMessage() for r in caplog.records)
    assert p.status.orchestrator_status()["engines"]["unreachable"] == 0


async def test_the_autoscaler_starts_usable_engines_beside_unreachable_ones(parts: PartsFactory) -> None:
    p = await parts(startup_timeout_s=1, min_replicas=2, max_replicas=3)
    info = p.runtime.add_container(engine_spec("acestream-7", 19100))
    await p.fleet.reconcile(initial=True)
    await p.settle()
    await autoscaler.autoscale_round(settings=p.settings, fleet=p.fleet, starts=p.provisioning, streams=p.streams,
                                     record=lambda c, **f: p.records.append((c, f)))
    # The unreachable engine holds one of the three slots; two usable engines fill the floor beside it.
    assert p.fleet.engine_count() == 3 and p.fleet.get(info.id) is not None
    assert [r["action"] for r in p.ops("autoscaler")] == ["start 2"]


async def test_at_capacity_the_hung_engine_is_stopped_before_its_replacement_starts(
    parts: PartsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    p = await parts(max_replicas=3, health_unhealthy_grace_period_s=1, health_replacement_cooldown_s=0)
    engines = [await p.engine() for _ in range(3)]
    sicken(engines[1], p, for_s=5)
    with caplog.at_level(logging.INFO):
        await probe(p, Signals(), health.ProberState())
    assert p.fleet.get(engines[1].container_id) is None and engines[1].container_id not in p.runtime.containers
    assert p.fleet.engine_count() == 3
    calls = p.runtime.call_names()
    assert calls.index("remove") < len(calls) - 1 - calls[::-1].index("create"), "stopped before the new start"
    assert decisions(p) == [("replacement_decision", "stop_then_start"), ("replacement_result", "True")]
    assert not [r for r in caplog.records if "Maximum number of engines" in r.getMessage()]
    [line] = [r for r in caplog.records if "replaced unhealthy engine acestream-2" in r.getMessage()]
    assert line.levelname == "INFO" and "at capacity" in line.getMessage()
    # The line carries its debug record's fields (LOG_FORMAT=json shows them).
    assert (line.__dict__["operation"], line.__dict__["stopped_first"]) == ("replacement_result", True)


async def test_below_capacity_the_replacement_starts_before_the_hung_engine_stops(parts: PartsFactory) -> None:
    p = await parts(max_replicas=3, health_unhealthy_grace_period_s=1, health_replacement_cooldown_s=0)
    first, sick = await p.engine(), await p.engine()
    sicken(sick, p, for_s=5)
    await probe(p, Signals(), health.ProberState())
    assert p.fleet.get(sick.container_id) is None and p.fleet.engine_count() == 2
    calls = p.runtime.call_names()
    assert calls[::-1].index("create") > calls[::-1].index("remove"), "started before the old one stopped"
    assert decisions(p)[0] == ("replacement_decision", "start_then_stop")
    assert first.container_id in [e.container_id for e in p.fleet.engines()]


async def test_a_hung_engine_with_a_stream_is_replaced_after_the_stream_grace(parts: PartsFactory) -> None:
    p = await parts(max_replicas=2, health_unhealthy_grace_period_s=1, health_unhealthy_stream_grace_s=30,
                    health_replacement_cooldown_s=0)
    sick, other = await p.engine(), await p.engine()
    stream = await start_stream(p, sick.port)
    sicken(sick, p, for_s=10)
    state = health.ProberState()
    await probe(p, Signals(), state)
    # Within the stream grace, at capacity: nothing happens, the stream plays on.
    assert p.fleet.get(sick.container_id) is sick and stream.status == "started"
    assert decisions(p) == []
    assert sick.unhealthy_since is not None
    sick.unhealthy_since -= timedelta(seconds=30)
    await probe(p, Signals(), state)
    assert p.fleet.get(sick.container_id) is None
    assert (stream.status, stream.end_reason) == ("ended", "engine_unhealthy")
    assert p.fleet.engine_count() == 2 and other in p.fleet.engines()


async def test_an_open_replacement_breaker_keeps_the_hung_engine_at_capacity(parts: PartsFactory) -> None:
    p = await parts(max_replicas=2, health_unhealthy_grace_period_s=1, health_replacement_cooldown_s=0)
    sick, _ = await p.engine(), await p.engine()
    for _ in range(3):
        p.breakers["replacement"].record(False)
    sicken(sick, p, for_s=5)
    await probe(p, Signals(), health.ProberState())
    # Stopping it first would shrink the pool with no replacement to follow: it stays.
    assert p.fleet.get(sick.container_id) is sick
    assert [(r["action"], r["reason"]) for r in p.ops("health") if r["operation"] == "replacement_decision"] == [
        ("wait", "circuit_breaker")
    ]


async def test_a_vpn_restart_leaves_an_unreachable_engine_unreachable(parts: PartsFactory) -> None:
    p = await parts(startup_timeout_s=1)
    info = p.runtime.add_container(engine_spec("acestream-7", 19100))
    await p.fleet.reconcile(initial=True)
    await p.settle()
    kept = p.fleet.get(info.id)
    assert kept is not None and kept.health_status is HealthStatus.UNREACHABLE
    assert await p.fleet.restart_engines_created_before(utcnow() + timedelta(seconds=1)) == 1
    assert kept.health_status is HealthStatus.UNREACHABLE, "never unknown, then unhealthy, then replaced"


async def test_an_unreachable_engine_is_never_auto_deleted(parts: PartsFactory) -> None:
    p = await parts(startup_timeout_s=1, auto_delete=True, engine_grace_period_s=0, min_replicas=0,
                    min_free_replicas=0)
    info = p.runtime.add_container(engine_spec("acestream-7", 19100))
    await p.fleet.reconcile(initial=True)
    await p.settle()
    reachable = await p.engine()
    for port in (19100, reachable.port):
        stream = await start_stream(p, port, key=f"k{port}")
        await p.streams.end(stream, "ended", schedule_auto_delete=True)
    await p.settle()
    assert p.fleet.get(reachable.container_id) is None, "an idle reachable engine is auto-deleted"
    assert p.fleet.get(info.id) is not None and info.id in p.runtime.containers
