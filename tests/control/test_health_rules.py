"""The health rules: unreachable engines, replacement order at capacity, streams on hung engines, round timing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from aceorch.config import Settings
from aceorch.control import autoscaler, health
from aceorch.models import Engine, HealthStatus, utcnow


def engine(i: int, *, streams: int = 0, unhealthy_s: float | None = None, idle_s: int = 0) -> Engine:
    now = utcnow()
    e = Engine(container_id=f"{i:064x}", container_name=f"acestream-{i}", host="127.0.0.1", port=19000 + i,
               host_http_port=19000 + i, container_http_port=40000 + i)
    e.streams = [f"s{i}-{n}" for n in range(streams)]
    e.first_seen = now - timedelta(seconds=idle_s)
    if unhealthy_s is not None:
        e.health_status = HealthStatus.UNHEALTHY
        e.unhealthy_since = now - timedelta(seconds=unhealthy_s)
    return e


def unreachable(i: int, **kw: int) -> Engine:
    e = engine(i, **kw)
    health.mark_unreachable(e, "cannot connect", timeout_s=5)
    return e


def test_an_unreachable_engine_keeps_its_state_until_it_answers_then_is_healthy() -> None:
    e = unreachable(1)
    assert e.unreachable_address == "http://127.0.0.1:19001"
    assert e.unreachable_reason == "no answer within STARTUP_TIMEOUT_S (5 s): cannot connect"
    now = utcnow()
    for _ in range(5):  # failures are not counted: it never becomes unhealthy, so it is never replaced
        assert health.apply_probe(e, False, now, 1) is None
    assert (e.health_status, e.consecutive_failures, e.unhealthy_since) == (HealthStatus.UNREACHABLE, 0, None)
    assert health.apply_probe(e, True, now, 1) is HealthStatus.HEALTHY
    assert e.unreachable_reason is None and e.unreachable_address is None


def test_unreachable_engines_are_never_planned_for_replacement() -> None:
    e = unreachable(1)
    plan = health.plan_replacements([e], now=utcnow(), grace_period_s=0, cooldown_s=0, last_replacement_at=None,
                                    already_replaced=set(), stream_grace_s=0, at_capacity=True)
    assert (plan.start_for, plan.stop_first, plan.stop) == ([], [], [])


def test_the_autoscaler_neither_counts_nor_stops_unreachable_engines() -> None:
    held = [unreachable(1, idle_s=9999), unreachable(2, idle_s=9999)]
    d = autoscaler.decide(held, in_flight=0, now=utcnow(), min_replicas=2, min_free=1, max_replicas=3,
                          idle_ttl_s=1)
    # Two slots are held by unreachable engines: one start fits under MAX_REPLICAS, and nothing is stopped.
    assert (d.current, d.free, d.target, d.start, d.stop) == (0, 0, 1, 1, [])
    assert autoscaler.idle_victims(held + [engine(3, idle_s=9999)], now=utcnow(), idle_for_s=0, min_replicas=0,
                                   min_free=0, force=True) == [f"{3:064x}"]


def test_below_capacity_the_replacement_starts_first() -> None:
    e = engine(1, unhealthy_s=100)
    plan = health.plan_replacements([e], now=utcnow(), grace_period_s=60, cooldown_s=60, last_replacement_at=None,
                                    already_replaced=set(), stream_grace_s=60, at_capacity=False)
    assert (plan.start_for, plan.stop_first, plan.may_stop) == ([e.container_id], [], {e.container_id})


def test_at_capacity_the_unhealthy_engine_is_stopped_first_once_per_cooldown() -> None:
    a, b = engine(1, unhealthy_s=100), engine(2, unhealthy_s=90)
    now = utcnow()
    plan = health.plan_replacements([a, b], now=now, grace_period_s=60, cooldown_s=60, last_replacement_at=None,
                                    already_replaced=set(), stream_grace_s=60, at_capacity=True)
    assert (plan.start_for, plan.stop_first) == ([], [a.container_id])
    cooling = health.plan_replacements([b], now=now, grace_period_s=60, cooldown_s=60,
                                       last_replacement_at=now - timedelta(seconds=5), already_replaced=set(),
                                       stream_grace_s=60, at_capacity=True)
    assert cooling.stop_first == []


def test_an_engine_with_streams_goes_only_after_the_stream_grace() -> None:
    now = utcnow()
    young = engine(1, streams=2, unhealthy_s=70)
    old = engine(2, streams=2, unhealthy_s=130)
    kw = {"now": now, "grace_period_s": 60, "cooldown_s": 0, "last_replacement_at": None, "stream_grace_s": 120}
    # At capacity, an engine with streams within the stream grace waits; past it, it is stopped first.
    assert health.plan_replacements([young], already_replaced=set(), at_capacity=True, **kw).stop_first == []
    assert health.plan_replacements([old], already_replaced=set(), at_capacity=True,
                                    **kw).stop_first == [old.container_id]
    # Below capacity a replacement starts beside it; the engine itself stays until the stream grace ends.
    plan = health.plan_replacements([young], already_replaced=set(), at_capacity=False, **kw)
    assert plan.start_for == [young.container_id] and young.container_id not in plan.may_stop
    replaced = health.plan_replacements([young, old], already_replaced={young.container_id, old.container_id},
                                        at_capacity=False, **kw)
    assert replaced.stop == [old.container_id]


def test_the_stream_grace_is_never_shorter_than_the_grace_period() -> None:
    e = engine(1, streams=1, unhealthy_s=50)
    plan = health.plan_replacements([e], now=utcnow(), grace_period_s=40, cooldown_s=0, last_replacement_at=None,
                                    already_replaced={e.container_id}, stream_grace_s=10)
    assert plan.stop == [e.container_id]
    plan = health.plan_replacements([e], now=utcnow(), grace_period_s=60, cooldown_s=0, last_replacement_at=None,
                                    already_replaced={e.container_id}, stream_grace_s=10)
    assert plan.stop == []


def test_the_next_round_comes_when_a_grace_ends() -> None:
    now = utcnow()
    sick = engine(1, unhealthy_s=8)
    busy = engine(2, streams=1, unhealthy_s=8)
    assert health.next_round_in([], now=now, interval_s=20, grace_period_s=10, stream_grace_s=30) == 20
    assert abs(health.next_round_in([sick], now=now, interval_s=20, grace_period_s=10, stream_grace_s=30) - 2) < 0.1
    assert abs(health.next_round_in([busy], now=now, interval_s=20, grace_period_s=10, stream_grace_s=30) - 20) < 0.1
    late = engine(3, unhealthy_s=100)
    assert health.next_round_in([late], now=now, interval_s=20, grace_period_s=10, stream_grace_s=30) == 20


def test_capacity_counts_starts_in_flight(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(max_replicas=3)
    assert not health.at_capacity(settings, engines=2, in_flight=0)
    assert health.at_capacity(settings, engines=2, in_flight=1)


def test_probe_timeouts_shrink_with_short_intervals() -> None:
    assert health.probe_timeout(20) == 3.0
    assert health.probe_timeout(2) == 0.5
    assert health.probe_timeout(1) == 0.25
