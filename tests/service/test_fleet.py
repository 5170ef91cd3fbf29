"""The fleet on the in-memory runtime: register, adopt, reap, vanish, stop and delete."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from service_parts import Parts

from aceorch.models import HealthStatus, Stream, StreamStart
from aceorch.runtime.base import ContainerSpec

PartsFactory = Callable[..., Awaitable[Parts]]

LABEL = {"ondemand.app": "myservice"}


def engine_spec(name: str, host_port: int, **labels: str) -> ContainerSpec:
    return ContainerSpec(
        name=name, image="acestream/engine:latest",
        labels={**LABEL, "aceorch.kind": "engine", "acestream.http_port": "40100",
                "acestream.https_port": "45100", "host.http_port": str(host_port), **labels},
        ports={"40100/tcp": host_port},
    )


async def start_stream(p: Parts, port: int, key: str = "ih") -> Stream:
    return await p.streams.started(StreamStart(engine_host="127.0.0.1", engine_port=port, key_type="infohash",
                                               key=key, playback_session_id="pb"))


async def test_a_provisioned_engine_is_registered_with_its_ports(parts: PartsFactory) -> None:
    p = await parts()
    engine = await p.engine()
    assert p.fleet.engines() == [engine]
    assert p.fleet.find(engine.container_name) is engine and p.fleet.get(engine.container_id) is engine
    assert p.fleet.engine_names() == {"acestream-1"}
    assert p.fleet.health_counts() == {"healthy": 0, "unhealthy": 0, "unknown": 1, "unreachable": 0}


async def test_reconcile_adopts_a_running_engine_once_its_api_answers(parts: PartsFactory) -> None:
    p = await parts()
    info = p.runtime.add_container(engine_spec("acestream-7", 19100))
    p.answering.add(19100)
    await p.fleet.reconcile(initial=True)
    await p.settle()
    adopted = p.fleet.get(info.id)
    assert adopted is not None and (adopted.host, adopted.port) == ("127.0.0.1", 19100)
    assert [r["operation"] for r in p.ops("provisioning")] == ["adopt_engine"]
    assert [e.container_id for e in await p.store.load_engines()] == [info.id]


async def test_an_adopted_engine_gets_back_its_started_streams(parts: PartsFactory) -> None:
    p = await parts()
    info = p.runtime.add_container(engine_spec("acestream-7", 19100))
    orphan = await start_stream(p, 19100)  # no engine yet: kept as "host:port"
    orphan.container_id = info.id
    p.answering.add(19100)
    await p.fleet.reconcile()
    await p.settle()
    adopted = p.fleet.get(info.id)
    assert adopted is not None and adopted.streams == [orphan.id]


async def test_a_running_engine_that_never_answers_is_kept_as_unreachable(
    parts: PartsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    p = await parts(startup_timeout_s=1, docker_network="aceorch")
    info = p.runtime.add_container(engine_spec("acestream-7", 19100))
    await p.fleet.reconcile(initial=True)
    await p.settle()
    kept = p.fleet.get(info.id)
    assert kept is not None and info.id in p.runtime.containers
    assert kept.health_status is HealthStatus.UNREACHABLE
    assert kept.unreachable_address == "http://127.0.0.1:19100"
    assert kept.unreachable_reason is not None and "cannot connect" in kept.unreachable_reason
    [adopt] = p.ops("provisioning")
    assert (adopt["operation"], adopt["address"]) == ("adopt_unreachable", "http://127.0.0.1:19100")
    [line] = [r for r in caplog.records if "acestream-7" in r.getMessage()]
    assert line.levelname == "WARNING"
    assert "DOCKER_NETWORK (now aceorch" in line.getMessage() and "ENGINE_ADVERTISE_HOST" in line.getMessage()
    assert (line.__dict__["operation"], line.__dict__["address"]) == ("adopt_unreachable", "http://127.0.0.1:19100")
    # Later reconciles keep it: not answering is no reason to remove a running engine.
    await p.fleet.reconcile()
    await p.settle()
    assert p.fleet.get(info.id) is kept and info.id in p.runtime.containers
    assert p.fleet.health_counts()["unreachable"] == 1


async def test_exited_leftovers_are_reaped_at_start_only(parts: PartsFactory) -> None:
    p = await parts()
    first = p.runtime.add_container(engine_spec("acestream-1", 19100), status="exited")
    await p.fleet.reconcile()
    assert first.id in p.runtime.containers  # at run time a stopped container is left to the runtime
    await p.fleet.reconcile(initial=True)
    assert first.id not in p.runtime.containers
    assert [(r["operation"], r["reason"]) for r in p.ops("provisioning")] == [("reap_container", "exited")]


async def test_an_engine_gone_from_the_runtime_leaves_and_its_streams_end(parts: PartsFactory) -> None:
    p = await parts()
    engine = await p.engine()
    stream = await start_stream(p, engine.port)
    await p.runtime.remove(engine.container_id)
    await p.fleet.reconcile()
    assert p.fleet.engines() == []
    assert (stream.status, stream.end_reason) == ("ended", "engine_removed")
    assert "engine_vanished" in [r["operation"] for r in p.ops("provisioning")]


async def test_stop_engine_ends_its_streams_removes_it_and_frees_its_ports(parts: PartsFactory) -> None:
    p = await parts()
    engine = await p.engine()
    stream = await start_stream(p, engine.port)
    assert not p.ports.is_free(engine.host_http_port)
    assert await p.fleet.stop_engine(engine.container_id, "test", end_reason="engine_deleted")
    assert p.fleet.engines() == [] and engine.container_id not in p.runtime.containers
    assert (stream.status, stream.end_reason) == ("ended", "engine_deleted")
    assert p.ports.is_free(engine.host_http_port) and p.ports.is_free(engine.container_http_port)


async def test_a_second_stop_while_the_first_runs_is_refused(parts: PartsFactory) -> None:
    p = await parts()
    engine = await p.engine()
    first, second = await asyncio.gather(p.fleet.stop_engine(engine.container_id, "one"),
                                         p.fleet.stop_engine(engine.container_id, "two"))
    assert (first, second) == (True, False)
    assert [r["reason"] for r in p.ops("provisioning") if r["operation"] == "stop_engine_success"] == ["one"]


async def test_deleting_a_generic_container_stops_and_removes_it(parts: PartsFactory) -> None:
    p = await parts()
    started = await p.provisioning.provision_generic(image=None, env={}, labels={"role": "x"},
                                                     ports={"8080/tcp": 18080}, name_prefix="svc", request_id=None)
    assert [c.name for c in await p.fleet.by_label("role", "x")] == ["svc-1"]
    assert await p.fleet.delete_container("svc-1") == started["container_id"]
    assert await p.fleet.by_label("role", "x") == []
    assert p.fleet.engines() == []


@pytest.mark.parametrize("ident", ["name", "prefix"])
async def test_find_managed_by_name_or_id_prefix(parts: PartsFactory, ident: str) -> None:
    p = await parts()
    engine = await p.engine()
    key: Any = engine.container_name if ident == "name" else engine.container_id[:12]
    assert (await p.fleet.find_managed(key)).id == engine.container_id


async def test_reconcile_keeps_an_engine_registered_while_its_start_finishes(
    parts: PartsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = await parts()
    saving = asyncio.Event()
    release = asyncio.Event()
    save = p.store.save_engine

    async def held_save(engine: Any) -> None:
        saving.set()
        await release.wait()
        await save(engine)

    monkeypatch.setattr(p.store, "save_engine", held_save)
    start = asyncio.create_task(p.engine())
    await saving.wait()  # registered in the fleet; the start has not handed its name back yet
    assert p.provisioning.provisioner.starting_names() == {"acestream-1"}
    await p.fleet.reconcile()
    assert p.fleet.engine_names() == {"acestream-1"}
    release.set()
    engine = await start
    assert p.fleet.engines() == [engine]
    assert "engine_vanished" not in [r["operation"] for r in p.ops("provisioning")]
