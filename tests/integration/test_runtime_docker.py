"""Docker-only runtime behaviour: Gluetun's network namespace, health checks, image errors, the factory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from aceorch.config import Settings
from aceorch.errors import ContainerNotFound, ImageNotFound, RuntimeFailure
from aceorch.runtime.base import ContainerSpec
from aceorch.runtime.docker import DockerRuntime
from aceorch.runtime.factory import make_runtime
from support import async_wait_until

DEADLINE_S = 20.0


async def get_json_until_ok(url: str, deadline_s: float = DEADLINE_S) -> dict[str, object]:
    """GET ``url`` until it answers 200, and return its JSON body."""
    async with httpx.AsyncClient(timeout=2.0) as client:

        async def answered() -> httpx.Response | None:
            response = await client.get(url)
            return response if response.status_code == 200 else None

        response = await async_wait_until(
            answered, f"{url} to answer 200", timeout=deadline_s, interval=0.1, ignoring=(httpx.HTTPError,)
        )
    body: dict[str, object] = response.json()
    return body


async def test_an_engine_in_gluetuns_network_namespace_answers_on_the_port_published_by_gluetun(
    docker_runtime: DockerRuntime,
    test_labels: dict[str, str],
    engine_image: str,
    gluetun_image: str,
    unique_name: Callable[[str], str],
    free_port: Callable[[], int],
) -> None:
    pool_port = free_port()  # in VPN mode the pool port is used on both sides
    gluetun = await docker_runtime.create(
        ContainerSpec(
            name=unique_name("gluetun"),
            image=gluetun_image,
            labels=dict(test_labels),
            ports={f"{pool_port}/tcp": pool_port},
        )
    )
    engine = await docker_runtime.create(
        ContainerSpec(
            name=unique_name("engine"),
            image=engine_image,
            env={"CONF": f"--http-port={pool_port}\n--bind-all", "HTTP_PORT": str(pool_port)},
            labels=dict(test_labels),
            ports={f"{pool_port}/tcp": None},  # informational only: Docker refuses ports in this mode
            network=f"container:{gluetun.name}",
        )
    )

    body = await get_json_until_ok(f"http://127.0.0.1:{pool_port}/webui/api/service?method=get_version&format=json")

    assert body["error"] is None
    assert engine.running and engine.ip is None  # it has no network of its own
    assert all(bindings is None for bindings in engine.ports.values())  # nothing published on it
    assert gluetun.ports[f"{pool_port}/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(pool_port)}]


async def test_publishing_ports_in_another_containers_namespace_is_refused_before_docker_is_asked(
    docker_runtime: DockerRuntime,
    test_labels: dict[str, str],
    engine_image: str,
    unique_name: Callable[[str], str],
    free_port: Callable[[], int],
) -> None:
    name = unique_name("engine")
    with pytest.raises(RuntimeFailure, match="cannot be published"):
        await docker_runtime.create(
            ContainerSpec(
                name=name,
                image=engine_image,
                labels=dict(test_labels),
                ports={"40001/tcp": free_port()},
                network="container:somebody",
            )
        )
    assert name not in {i.name for i in await docker_runtime.list(test_labels)}


async def test_joining_a_missing_container_fails_and_leaves_nothing_behind(
    docker_runtime: DockerRuntime,
    test_labels: dict[str, str],
    engine_image: str,
    unique_name: Callable[[str], str],
) -> None:
    name = unique_name("engine")
    with pytest.raises(RuntimeFailure):
        await docker_runtime.create(
            ContainerSpec(
                name=name,
                image=engine_image,
                labels=dict(test_labels),
                network=f"container:{unique_name('missing')}",
            )
        )
    assert name not in {i.name for i in await docker_runtime.list(test_labels)}


async def test_the_gluetun_simulator_reports_docker_health(
    docker_runtime: DockerRuntime,
    test_labels: dict[str, str],
    gluetun_image: str,
    unique_name: Callable[[str], str],
) -> None:
    gluetun = await docker_runtime.create(
        ContainerSpec(name=unique_name("gluetun"), image=gluetun_image, labels=dict(test_labels))
    )
    assert gluetun.health in ("starting", "healthy")


    async def healthy() -> bool:
        return (await docker_runtime.inspect(gluetun.id)).health == "healthy"

    assert await async_wait_until(healthy, "gluetun-sim to turn healthy", timeout=DEADLINE_S, interval=0.2)
    assert gluetun.ip is not None  # on the default bridge, the control server is reached by this address


async def test_an_absent_image_is_image_not_found_without_a_pull(
    docker_runtime: DockerRuntime, test_labels: dict[str, str], unique_name: Callable[[str], str]
) -> None:
    name = unique_name("engine")
    with pytest.raises(ImageNotFound):
        await docker_runtime.create(
            ContainerSpec(name=name, image="aceorch/no-such-image:never", labels=dict(test_labels))
        )
    assert not await docker_runtime.image_exists("aceorch/no-such-image:never")


async def test_an_unknown_network_is_a_runtime_failure_and_leaves_nothing_behind(
    docker_runtime: DockerRuntime,
    test_labels: dict[str, str],
    engine_image: str,
    unique_name: Callable[[str], str],
) -> None:
    name = unique_name("engine")
    with pytest.raises(RuntimeFailure) as caught:
        await docker_runtime.create(
            ContainerSpec(name=name, image=engine_image, labels=dict(test_labels), network=unique_name("no-network"))
        )
    assert not isinstance(caught.value, ImageNotFound | ContainerNotFound)
    assert name not in {i.name for i in await docker_runtime.list(test_labels)}


async def test_an_engine_on_a_named_network_gets_an_address_there(
    docker_runtime: DockerRuntime,
    test_labels: dict[str, str],
    engine_image: str,
    unique_name: Callable[[str], str],
) -> None:
    network = unique_name("net")
    created = await asyncio.create_subprocess_exec(
        "docker",
        "network",
        "create",
        "--label",
        "aceorch.test=1",
        network,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await created.communicate()
    assert created.returncode == 0, err
    try:
        info = await docker_runtime.create(
            ContainerSpec(name=unique_name("engine"), image=engine_image, labels=dict(test_labels), network=network)
        )
        assert info.running and info.ip is not None
        await docker_runtime.remove(info.id)
    finally:
        removed = await asyncio.create_subprocess_exec(
            "docker",
            "network",
            "rm",
            network,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await removed.wait()


async def test_auto_picks_docker_when_the_engine_answers(docker_engine: None) -> None:
    runtime = await make_runtime(Settings(runtime="auto", _env_file=None))  # type: ignore[call-arg]
    try:
        assert runtime.name == "docker"
        await runtime.ping()
    finally:
        await runtime.aclose()
