from datetime import timedelta

import pytest

from aceorch.config import PortRange
from aceorch.control import autoscaler, health
from aceorch.control.ports import PortAllocator, PortConflict, PortPoolExhausted
from aceorch.models import Engine, HealthStatus, utcnow


def engine(i: int, *, streams: int = 0, idle_s: int = 0) -> Engine:
    now = utcnow()
    e = Engine(container_id=f"{i:064x}", container_name=f"acestream-{i}", host="127.0.0.1", port=19000 + i,
               host_http_port=19000 + i, container_http_port=40000 + i)
    e.streams = [f"s{i}-{n}" for n in range(streams)]
    e.first_seen = now - timedelta(seconds=idle_s)
    return e


def test_keeps_min_replicas() -> None:
    d = autoscaler.decide([], in_flight=0, now=utcnow(), min_replicas=2, min_free=1, max_replicas=5, idle_ttl_s=0)
    assert d.start == 2 and d.reason == "below_min_replicas"


def test_keeps_min_free_and_counts_starts_in_flight() -> None:
    engines = [engine(1, streams=1), engine(2, streams=1)]
    d = autoscaler.decide(engines, in_flight=0, now=utcnow(), min_replicas=1, min_free=2, max_replicas=10,
                          idle_ttl_s=0)
    assert (d.target, d.start) == (4, 2)
    d2 = autoscaler.decide(engines, in_flight=2, now=utcnow(), min_replicas=1, min_free=2, max_replicas=10,
                           idle_ttl_s=0)
    assert d2.start == 0


def test_never_exceeds_max_replicas() -> None:
    engines = [engine(i, streams=1) for i in range(3)]
    d = autoscaler.decide(engines, in_flight=0, now=utcnow(), min_replicas=1, min_free=5, max_replicas=4,
                          idle_ttl_s=0)
    assert d.target == 4 and d.start == 1


def test_idle_sweep_respects_both_floors_longest_idle_first() -> None:
    engines = [engine(1, idle_s=100), engine(2, idle_s=900), engine(3, idle_s=700), engine(4, streams=1)]
    d = autoscaler.decide(engines, in_flight=0, now=utcnow(), min_replicas=2, min_free=1, max_replicas=10,
                          idle_ttl_s=600)
    assert d.stop == [engines[1].container_id, engines[2].container_id]


def test_probe_rules_need_threshold_failures() -> None:
    e = engine(1)
    now = utcnow()
    assert health.apply_probe(e, True, now, 2) is HealthStatus.HEALTHY
    assert health.apply_probe(e, False, now, 2) is None
    assert health.apply_probe(e, False, now, 2) is HealthStatus.UNHEALTHY
    assert e.unhealthy_since == now
    assert health.apply_probe(e, True, now, 2) is HealthStatus.HEALTHY and e.unhealthy_since is None


def test_replacement_waits_for_grace_and_cooldown_and_live_streams() -> None:
    now = utcnow()
    a, b = engine(1, streams=1), engine(2)
    for e in (a, b):
        e.health_status = HealthStatus.UNHEALTHY
        e.unhealthy_since = now - timedelta(seconds=100)
    plan = health.plan_replacements([a, b], now=now, grace_period_s=60, cooldown_s=60, last_replacement_at=None,
                                    already_replaced=set())
    assert plan.start_for == [a.container_id]  # one per cooldown
    plan2 = health.plan_replacements([a, b], now=now, grace_period_s=60, cooldown_s=60,
                                     last_replacement_at=now - timedelta(seconds=10),
                                     already_replaced={a.container_id})
    assert plan2.start_for == [] and plan2.stop == []  # a still serves a stream; b waits for the cooldown
    plan3 = health.plan_replacements([a, b], now=now, grace_period_s=200, cooldown_s=0, last_replacement_at=None,
                                     already_replaced=set())
    assert plan3.start_for == []


def test_port_allocator_never_hands_out_a_port_twice() -> None:
    ports = PortAllocator()
    rng = PortRange(100, 102)
    got = {ports.take(rng) for _ in range(3)}
    assert got == {100, 101, 102}
    with pytest.raises(PortPoolExhausted):
        ports.take(rng)
    with pytest.raises(PortConflict):
        ports.claim(101, rng)
    with pytest.raises(PortConflict):
        ports.claim(200, rng)
    ports.release([101])
    assert ports.take(rng) == 101
