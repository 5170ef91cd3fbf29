"""The Service: tasks start in a fixed order, the autoscaler after startup, and every task ends on aclose."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import support
from aceorch import __version__
from aceorch.config import Settings
from aceorch.debuglog.writer import DebugLog
from aceorch.runtime.fake import InMemoryRuntime
from aceorch.service.core import Service
from aceorch.store import make_store

ORDER = ["runtime monitor", "runtime events", "health prober", "stats collector", "engine hygiene", "loop lag",
         "autoscaler"]


@pytest.fixture
async def service(make_settings: Callable[..., Settings]) -> AsyncIterator[Callable[..., Service]]:
    """``service(**settings)``: a Service over the in-memory runtime (not started); closed at teardown."""
    made: list[Service] = []

    def build(**overrides: Any) -> Service:
        values: dict[str, Any] = {"provision_wait_for": "running", "runtime": "docker"}
        values.update(overrides)
        settings = make_settings(**values)
        svc = Service(settings, runtime=InMemoryRuntime(), store=make_store(settings.api.db_url),
                      debuglog=DebugLog(settings, version=__version__))
        made.append(svc)
        return svc

    yield build
    for svc in made:
        await svc.aclose()


async def test_tasks_start_in_order_and_the_autoscaler_last(service: Callable[..., Service]) -> None:
    svc = service(min_replicas=1)
    await svc.start()
    await support.async_wait_until(lambda: svc.status.started, "startup")
    assert svc.task_names() == ORDER
    await support.async_wait_until(lambda: svc.fleet.engine_count() == 1, "the autoscaler's first engine")
    assert svc.status.readiness() == {"startup": "ok", "database": "ok", "runtime": "ok"}


async def test_with_the_vpn_its_monitor_starts_first(service: Callable[..., Service]) -> None:
    svc = service(vpn_enabled=True, gluetun_container_name="gluetun", gluetun_startup_wait_s=1)
    await svc.start()
    assert svc.task_names()[:2] == ["vpn monitor", "runtime monitor"]
    await support.async_wait_until(lambda: svc.status.started, "startup after the VPN wait")
    assert svc.task_names() == ["vpn monitor", *ORDER]
    assert svc.status.vpn_status().health == "unhealthy"  # no gluetun container in the fake runtime


async def test_aclose_ends_every_task(service: Callable[..., Service]) -> None:
    svc = service()
    await svc.start()
    await support.async_wait_until(lambda: svc.status.started, "startup")
    loops = [t for t in asyncio.all_tasks() if t.get_name() in ORDER]
    assert sorted(t.get_name() for t in loops) == sorted(ORDER)
    await svc.aclose()
    assert all(t.done() for t in loops)
    assert [t.get_name() for t in asyncio.all_tasks() if t.get_name() in ORDER] == []
