"""Engine selection: fewest streams, then the P2P port holder, then idle longest; atomic claims; provisioning."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from aceorch.errors import CapacityBlocked
from aceorch.models import Engine, HealthStatus, StreamStart, utcnow
from aceorch.proxy.selection import Selector, choose


def engine(cid: str, *, health: HealthStatus = HealthStatus.HEALTHY, streams: list[str] | None = None,
           idle_min: int = 0) -> Engine:
    return Engine(container_id=cid, container_name=cid, host="127.0.0.1", port=1, host_http_port=1,
                  container_http_port=1, health_status=health, streams=streams or [],
                  last_stream_usage=utcnow() - timedelta(minutes=idle_min) if idle_min else None)


class FakeClient:
    """Engines in memory; provisioning adds one after a short await, up to ``cap``."""

    def __init__(self, engines: list[Engine], cap: int = 100, holder: str | None = None) -> None:
        self.list = engines
        self.cap = cap
        self.holder = holder
        self.provisions = 0

    async def engines(self) -> list[Engine]:
        await asyncio.sleep(0)
        return list(self.list)

    async def p2p_holders(self) -> frozenset[str]:
        return frozenset({self.holder}) if self.holder else frozenset()

    async def provision(self, request_id: str | None) -> Engine:
        if len(self.list) >= self.cap:
            raise CapacityBlocked("at MAX_REPLICAS", recovery_eta_seconds=5)
        self.provisions += 1
        e = engine(f"new{self.provisions}", health=HealthStatus.UNKNOWN)
        self.list.append(e)
        await asyncio.sleep(0.01)
        return e

    async def stream_started(self, start: StreamStart, request_id: str | None) -> str:
        return start.stream_id

    async def stream_ended(self, container_id: str, stream_id: str, reason: str, request_id: str | None) -> None:
        return None

    async def report_unhealthy(self, container_id: str, reason: str, request_id: str | None) -> None:
        return None

    async def watch_engines(self, changed: Any, *, interval_s: float) -> None:
        await asyncio.Event().wait()

    async def aclose(self) -> None:
        return None


def records() -> tuple[list[dict[str, Any]], Any]:
    out: list[dict[str, Any]] = []
    return out, lambda category, **f: out.append({"category": category, **f})


def test_choose_prefers_fewest_streams_then_the_p2p_holder_then_idle_longest() -> None:
    es = [engine("busy", streams=["x"]), engine("recent", idle_min=1), engine("old", idle_min=30),
          engine("holder", idle_min=2), engine("sick", health=HealthStatus.UNHEALTHY)]
    pick, seen = choose(es, load=lambda e: len(e.streams), limit=2, p2p_holders=frozenset({"holder"}))
    assert pick is not None and pick.container_id == "holder"
    pick, _ = choose(es, load=lambda e: len(e.streams), limit=2, p2p_holders=frozenset())
    assert pick is not None and pick.container_id == "old"
    assert {s["container_id"]: s["eligible"] for s in seen}["sick"] is False
    full, _ = choose(es[:1], load=lambda e: len(e.streams), limit=1, p2p_holders=frozenset())
    assert full is None


async def test_fifty_concurrent_channels_never_share_an_engine_beyond_the_limit() -> None:
    client = FakeClient([engine(f"e{i}") for i in range(20)])
    log, record = records()
    sel = Selector(client, 1, record)
    claims = await asyncio.gather(*(sel.acquire(f"ch{i}", None) for i in range(50)))
    per_engine: dict[str, int] = {}
    for c in claims:
        per_engine[c.engine.container_id] = per_engine.get(c.engine.container_id, 0) + 1
    assert max(per_engine.values()) == 1
    assert len(per_engine) == 50 and client.provisions == 30
    assert any(r["operation"] == "provision_request" for r in log)


async def test_blocked_provisioning_raises_with_its_code_and_a_release_frees_the_engine() -> None:
    client = FakeClient([engine("only")], cap=1)
    sel = Selector(client, 1, records()[1])
    first = await sel.acquire("a", "rid-1")
    with pytest.raises(CapacityBlocked) as err:
        await sel.acquire("b", "rid-2")
    assert err.value.code == "max_capacity"
    sel.release(first)
    again = await sel.acquire("b", "rid-3")
    assert again.engine.container_id == "only"


async def test_streams_of_another_proxy_count_and_the_proxys_own_do_not_count_twice() -> None:
    e = engine("e", streams=["other|1"])
    sel = Selector(FakeClient([e], cap=1), 2, records()[1])
    claim = await sel.acquire("k", None)
    e.streams.append("k|s")
    sel.mine.add("k|s")
    assert sel.load(e) == 2
    sel.release(claim)
    assert sel.load(e) == 1
