"""The history ring and the event log: sampling bounds, starts and outages, event filters and paging."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aceorch.service.history import HISTORY_S, SAMPLE_INTERVAL_S, History


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def make() -> tuple[History, Clock]:
    clock = Clock()
    return History(slow_threshold_ms=1000.0, clock=clock, events_max=50), clock


def test_the_sample_ring_keeps_24_hours_at_10_s_and_the_range_cuts() -> None:
    h, clock = make()
    for i in range(int(HISTORY_S / SAMPLE_INTERVAL_S) + 30):
        h.sample(engines={"healthy": i % 3, "unhealthy": 1}, vpn=None, streams=i, viewers=None)
        clock.t += SAMPLE_INTERVAL_S
    snap = h.snapshot(HISTORY_S)
    assert len(h.snapshot(HISTORY_S * 2)["samples"]) == 8640
    assert len(snap["samples"]) == 8640
    hour = h.snapshot(3600)["samples"]
    assert len(hour) == 360
    assert hour[-1]["total"] == hour[-1]["engines"]["healthy"] + 1
    assert "t" not in hour[-1]


def test_starts_are_kept_with_duration_slowness_and_image() -> None:
    h, clock = make()
    h.observe("provisioning", {"operation": "start_acestream_begin", "image": "acestream/engine:3", "source": "api",
                               "request_id": "r1"})
    clock.t += 2
    h.observe("provisioning", {"operation": "start_acestream_success", "container_id": "c1", "container_name": "e1",
                               "duration_ms": 2500.0, "source": "api", "request_id": "r1"})
    h.observe("provisioning", {"operation": "start_acestream_failed", "code": "start_timeout", "duration_ms": 300.0,
                               "error": "x"})
    snap = h.snapshot(3600)
    assert [(p["ok"], p["slow"], p["container_id"]) for p in snap["provisions"]] == [
        (True, True, "c1"), (False, False, None)]
    assert snap["engines"] == [{"container_id": "c1", "image": "acestream/engine:3",
                                "started_at": snap["provisions"][0]["ts"], "start_duration_ms": 2500.0}]
    h.observe("provisioning", {"operation": "stop_engine_success", "container_id": "c1", "reason": "api"})
    assert h.snapshot(3600)["engines"] == []
    assert [e["action"] for e in h.events()] == ["started", "start_failed", "stopped"]


def test_vpn_checks_make_outages_and_one_event_per_change() -> None:
    h, clock = make()
    for connected in (True, True, False, False, True):
        h.observe("vpn", {"operation": "health_check", "vpn": "g1", "connected": connected})
        clock.t += 5
    outages = h.snapshot(3600)["vpn_outages"]
    assert len(outages) == 1 and outages[0]["end"] is not None and outages[0]["vpn"] == "g1"
    assert [e["action"] for e in h.events(types={"vpn"})] == ["disconnected", "connected"]
    h.observe("vpn", {"operation": "health_check", "vpn": "g1", "connected": False})
    assert h.snapshot(3600)["vpn_outages"][-1]["end"] is None


def test_event_filters_type_engine_since_cursor_and_limit() -> None:
    h, clock = make()
    h.stress({"event_type": "slow_provisioning", "severity": "warning", "description": "slow", "container_id": "abc1",
              "timestamp": datetime.fromtimestamp(clock.t, UTC).isoformat()})
    clock.t += 10
    h.observe("streams", {"operation": "stream_started", "stream_id": "s1", "container_id": "abc1"})
    h.observe("streams", {"operation": "stream_started", "stream_id": "s1", "duplicate": True})
    clock.t += 10
    h.observe("health", {"operation": "status_transition", "container_id": "zzz9", "from": "healthy",
                         "to": "unhealthy"})
    h.observe("health", {"operation": "probe_failed", "container_id": "zzz9"})
    assert [e["type"] for e in h.events()] == ["stress", "stream", "engine"]
    assert [e["type"] for e in h.events(types={"stream", "engine"})] == ["stream", "engine"]
    assert [e["type"] for e in h.events(engine="abc")] == ["stress", "stream"]
    assert [e["type"] for e in h.events(since=datetime.fromtimestamp(clock.t - 5, UTC))] == ["engine"]
    first = h.events(limit=2)
    assert [e["id"] for e in first] == [1, 2]
    assert [e["id"] for e in h.events(after_id=first[-1]["id"])] == [3]
    assert h.last_id == 3


def test_the_log_keeps_the_last_n() -> None:
    h, _ = make()
    for i in range(80):
        h.observe("streams", {"operation": "stream_ended", "stream_id": f"s{i}", "container_id": "c"})
    ids = [e["id"] for e in h.events(limit=1000)]
    assert len(ids) == 50 and ids[0] == 31 and ids[-1] == 80


async def test_subscribers_get_each_new_event_and_none_at_close() -> None:
    h, _ = make()
    h.bind_loop(asyncio.get_running_loop())
    with h.subscribe() as queue:
        h.observe("streams", {"operation": "stream_started", "stream_id": "s1", "container_id": "c"})
        ev = await asyncio.wait_for(queue.get(), 1)
        assert ev is not None and ev["stream"] == "s1"
        await asyncio.to_thread(h.observe, "streams", {"operation": "stream_ended", "stream_id": "s1"})
        ev = await asyncio.wait_for(queue.get(), 1)
        assert ev is not None and ev["action"] == "ended"
        h.close()
        assert await asyncio.wait_for(queue.get(), 1) is None
    assert not h.is_subscribed(queue)


def test_a_change_adds_a_sample_at_once_and_a_burst_keeps_the_latest() -> None:
    h, clock = make()
    counts = {"engines": {"healthy": 0}, "vpn": None, "streams": 0, "viewers": None}
    h.sampler = lambda: counts
    h.sample(**counts)
    clock.t += 5
    counts = {**counts, "engines": {"healthy": 1}}
    h.observe("provisioning", {"operation": "start_acestream_success", "container_id": "c1", "duration_ms": 10.0})
    counts = {**counts, "engines": {"healthy": 2}}
    h.observe("provisioning", {"operation": "start_acestream_success", "container_id": "c2", "duration_ms": 10.0})
    samples = h.snapshot(3600)["samples"]
    assert [s["total"] for s in samples] == [0, 2]
    h.stress({"event_type": "loop_lag", "severity": "warning", "description": "lag"})
    assert len(h.snapshot(3600)["samples"]) == 2, "a stress event is no count change"
