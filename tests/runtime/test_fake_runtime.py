"""InMemoryRuntime: the scriptable fake that other unit tests lean on."""

from __future__ import annotations

import asyncio

import pytest

from aceorch.errors import (
    ContainerNotFound,
    ImageNotFound,
    NameConflict,
    PortUnavailable,
    RuntimeFailure,
    RuntimeUnavailable,
)
from aceorch.runtime.base import ContainerSpec, Runtime, RuntimeEvent
from aceorch.runtime.fake import InMemoryRuntime


def engine(name: str, port: int | None = 19000, **kwargs: object) -> ContainerSpec:
    return ContainerSpec(
        name=name,
        image="acestream/engine:latest",
        labels={"app": "aceorch"},
        ports={"40001/tcp": port},
        **kwargs,  # type: ignore[arg-type]
    )


def test_the_fake_satisfies_the_runtime_protocol() -> None:
    assert isinstance(InMemoryRuntime(), Runtime)


async def test_create_inspect_list_stop_remove_round_trip(fake_runtime: InMemoryRuntime) -> None:
    info = await fake_runtime.create(engine("e1"))

    assert info.running and len(info.id) == 64
    assert info.ports == {"40001/tcp": [{"HostIp": "0.0.0.0", "HostPort": "19000"}]}
    assert (await fake_runtime.inspect("e1")).id == info.id
    assert (await fake_runtime.inspect(info.id[:6])).id == info.id
    assert [i.id for i in await fake_runtime.list({"app": "aceorch"})] == [info.id]
    assert await fake_runtime.list({"app": "other"}) == []

    await fake_runtime.stop(info.id)
    stopped = await fake_runtime.inspect(info.id)
    assert stopped.status == "exited" and stopped.exit_code == 0

    await fake_runtime.remove(info.id)
    with pytest.raises(ContainerNotFound):
        await fake_runtime.inspect(info.id)
    with pytest.raises(ContainerNotFound):
        await fake_runtime.remove(info.id)
    assert fake_runtime.call_names() == [
        "create",
        "inspect",
        "inspect",
        "list",
        "list",
        "stop",
        "inspect",
        "remove",
        "inspect",
        "remove",
    ]


async def test_fail_next_raises_once_per_scripted_failure(fake_runtime: InMemoryRuntime) -> None:
    fake_runtime.fail_next("create", PortUnavailable("taken"), times=2)

    for _ in range(2):
        with pytest.raises(PortUnavailable):
            await fake_runtime.create(engine("e1"))
    assert (await fake_runtime.create(engine("e1"))).running
    assert fake_runtime.calls.count(("create", "e1")) == 3


async def test_names_ports_and_images_are_enforced_like_a_real_runtime() -> None:
    runtime = InMemoryRuntime(images={"acestream/engine:latest"})
    first = await runtime.create(engine("e1", 19000))

    with pytest.raises(NameConflict):
        await runtime.create(engine("e1", 19001))
    with pytest.raises(PortUnavailable):
        await runtime.create(engine("e2", 19000))
    with pytest.raises(ImageNotFound):
        await runtime.create(ContainerSpec(name="e3", image="missing:1"))
    assert not await runtime.image_exists("missing:1")
    assert await runtime.image_exists("acestream/engine:latest")

    runtime.set_exited(first.id, exit_code=137)  # a dead container no longer holds its port
    assert (await runtime.create(engine("e2", 19000))).running
    assert (await runtime.inspect(first.id)).exit_code == 137


async def test_joining_a_network_namespace_needs_a_running_target_and_no_published_ports(
    fake_runtime: InMemoryRuntime,
) -> None:
    with pytest.raises(RuntimeFailure):
        await fake_runtime.create(engine("e1", None, network="container:gluetun"))
    gluetun = await fake_runtime.create(ContainerSpec(name="gluetun", image="gluetun"))
    with pytest.raises(RuntimeFailure):
        await fake_runtime.create(engine("e1", 19000, network="container:gluetun"))

    joined = await fake_runtime.create(engine("e1", None, network="container:gluetun"))

    assert joined.ip is None and gluetun.ip is not None


async def test_unavailable_makes_every_call_raise_runtime_unavailable(fake_runtime: InMemoryRuntime) -> None:
    info = await fake_runtime.create(engine("e1"))
    fake_runtime.available = False

    for call in (
        fake_runtime.ping(),
        fake_runtime.list(),
        fake_runtime.inspect(info.id),
        fake_runtime.stop("e1"),
    ):
        with pytest.raises(RuntimeUnavailable):
            await call

    fake_runtime.available = True
    await fake_runtime.ping()


async def test_events_follow_the_scripted_lifecycle(fake_runtime: InMemoryRuntime) -> None:
    events = fake_runtime.events()
    info = await fake_runtime.create(engine("e1"))
    fake_runtime.set_health(info.id, "unhealthy")
    fake_runtime.set_exited(info.id, exit_code=1)
    fake_runtime.set_running(info.id)
    await fake_runtime.remove(info.id)
    fake_runtime.end_events()

    seen: list[RuntimeEvent] = [e async for e in events]

    assert [e.action for e in seen] == ["create", "start", "health_status", "die", "start", "die", "destroy"]
    assert seen[2].attributes["health_status"] == "unhealthy"
    assert seen[3].attributes["exitCode"] == "1"
    assert all(e.container_id == info.id and e.name == "e1" and e.labels == {"app": "aceorch"} for e in seen)


async def test_create_hook_can_hold_a_start_open(fake_runtime: InMemoryRuntime) -> None:
    gate = asyncio.Event()
    held = asyncio.Event()

    async def hold(spec: ContainerSpec) -> None:
        held.set()
        await gate.wait()

    fake_runtime.create_hook = hold
    pending = asyncio.create_task(fake_runtime.create(engine("slow")))
    await asyncio.wait_for(held.wait(), 2)
    assert not pending.done() and await fake_runtime.list() == []

    gate.set()
    assert (await asyncio.wait_for(pending, 2)).name == "slow"


async def test_add_container_records_an_existing_container_silently(fake_runtime: InMemoryRuntime) -> None:
    info = fake_runtime.add_container(engine("adopted"), status="exited")
    assert fake_runtime.calls == []
    assert (await fake_runtime.inspect("adopted")).status == "exited"
    assert info.exit_code is None


async def test_aclose_ends_event_iterators_and_is_idempotent(fake_runtime: InMemoryRuntime) -> None:
    events = fake_runtime.events()
    await fake_runtime.aclose()
    await fake_runtime.aclose()

    assert [e async for e in events] == []
    with pytest.raises(RuntimeUnavailable):
        await fake_runtime.ping()
