"""DockerRuntime without a Docker engine: error translation, request bodies, parsing, and a dead socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiodocker.exceptions import DockerError
from aiohttp import web

from aceorch.errors import (
    ContainerNotFound,
    ImageNotFound,
    NameConflict,
    PortUnavailable,
    RuntimeFailure,
    RuntimeUnavailable,
)
from aceorch.runtime.base import ContainerSpec, Runtime
from aceorch.runtime.docker import (
    DockerRuntime,
    container_config,
    event_from_docker,
    info_from_inspect,
    map_docker_errors,
    parse_docker_time,
    translate_docker_error,
)


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (900, "Cannot connect to Docker Engine via unix:///var/run/docker.sock", RuntimeUnavailable),
        (404, "No such container: abc", ContainerNotFound),
        (404, "No such image: acestream/engine:latest", ImageNotFound),
        (404, "pull access denied for x, repository does not exist", ImageNotFound),
        (404, "network aceorch not found", RuntimeFailure),
        (409, 'Conflict. The container name "/e1" is already in use by container "abc".', NameConflict),
        (409, "removal of container abc is already in progress", RuntimeFailure),
        (
            500,
            "driver failed programming external connectivity on endpoint e1: Bind for 0.0.0.0:19001 failed: "
            "port is already allocated",
            PortUnavailable,
        ),
        (500, "listen tcp4 0.0.0.0:19001: bind: address already in use", PortUnavailable),
        (500, "OCI runtime create failed", RuntimeFailure),
        (503, "daemon is shutting down", RuntimeUnavailable),
    ],
)
def test_docker_errors_become_aceorch_errors(status: int, message: str, expected: type[Exception]) -> None:
    error = translate_docker_error(DockerError(status, message), "create e1")
    assert type(error) is expected
    assert str(error).startswith("create e1: ")


def test_map_docker_errors_chains_the_original_error() -> None:
    original = DockerError(404, "No such container: abc")
    with pytest.raises(ContainerNotFound) as caught, map_docker_errors("inspect abc"):
        raise original
    assert caught.value.__cause__ is original


def test_a_404_that_names_nothing_uses_the_callers_default() -> None:
    error = translate_docker_error(DockerError(404, "page not found"), "inspect image x", not_found=ImageNotFound)
    assert type(error) is ImageNotFound


def test_docker_times_become_aware_utc_datetimes() -> None:
    assert parse_docker_time("2024-05-01T10:20:30.123456789Z") == datetime(2024, 5, 1, 10, 20, 30, 123456, UTC)
    assert parse_docker_time("2024-05-01T12:20:30+02:00") == datetime(2024, 5, 1, 10, 20, 30, tzinfo=UTC)
    assert parse_docker_time("0001-01-01T00:00:00Z") is None
    assert parse_docker_time("") is None


def test_the_create_body_publishes_on_all_interfaces_with_the_restart_policy() -> None:
    spec = ContainerSpec(
        name="e1",
        image="acestream/engine:latest",
        env={"HTTP_PORT": "40001"},
        labels={"app": "aceorch"},
        ports={"40001/tcp": 19001, "45001/tcp": None},
        network="aceorch-net",
        command=["--flag"],
    )
    body = container_config(spec)

    assert body["Env"] == ["HTTP_PORT=40001"]
    assert body["Labels"] == {"app": "aceorch"}
    assert body["ExposedPorts"] == {"40001/tcp": {}, "45001/tcp": {}}
    assert body["HostConfig"]["PortBindings"] == {"40001/tcp": [{"HostIp": "0.0.0.0", "HostPort": "19001"}]}
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "unless-stopped"}
    assert body["HostConfig"]["NetworkMode"] == "aceorch-net"
    assert body["Cmd"] == ["--flag"]


def test_the_create_body_for_a_shared_namespace_has_no_ports() -> None:
    spec = ContainerSpec(name="e1", image="img", ports={"19001/tcp": None}, network="container:gluetun")
    body = container_config(spec)
    assert "ExposedPorts" not in body and "PortBindings" not in body["HostConfig"]
    assert body["HostConfig"]["NetworkMode"] == "container:gluetun"
    with pytest.raises(RuntimeFailure):
        container_config(ContainerSpec(name="e1", image="img", ports={"1/tcp": 2}, network="container:g"))


def test_inspect_answers_become_container_info() -> None:
    info = info_from_inspect(
        {
            "Id": "a" * 64,
            "Name": "/e1",
            "Created": "2024-05-01T10:20:30.5Z",
            "State": {
                "Status": "exited",
                "ExitCode": 137,
                "StartedAt": "2024-05-01T10:20:31Z",
                "Health": {"Status": "unhealthy"},
            },
            "Config": {"Image": "img:1", "Labels": {"app": "aceorch"}, "ExposedPorts": {"40001/tcp": {}}},
            "HostConfig": {"PortBindings": {"40001/tcp": [{"HostIp": "0.0.0.0", "HostPort": "19001"}]}},
            "NetworkSettings": {
                "IPAddress": "",
                "Ports": {},
                "Networks": {"net": {"IPAddress": "172.20.0.5"}},
            },
        }
    )
    assert info.name == "e1" and info.image == "img:1" and info.status == "exited" and not info.running
    assert info.exit_code == 137 and info.health == "unhealthy" and info.ip == "172.20.0.5"
    assert info.created == datetime(2024, 5, 1, 10, 20, 30, 500000, UTC)
    assert info.ports == {"40001/tcp": [{"HostIp": "0.0.0.0", "HostPort": "19001"}]}


def test_docker_events_become_runtime_events() -> None:
    event = event_from_docker(
        {
            "Type": "container",
            "Action": "health_status: unhealthy",
            "Actor": {"ID": "b" * 64, "Attributes": {"name": "gluetun", "image": "g", "app": "aceorch"}},
        }
    )
    assert event is not None
    assert event.action == "health_status" and event.attributes["health_status"] == "unhealthy"
    assert event.name == "gluetun" and event.labels == {"app": "aceorch"}
    assert event_from_docker({"Type": "network", "Action": "connect"}) is None


async def test_a_runtime_on_a_dead_socket_is_built_and_every_call_is_runtime_unavailable(
    tmp_path: Path,
) -> None:
    runtime = DockerRuntime(f"unix://{tmp_path}/docker.sock")
    assert isinstance(runtime, Runtime)
    try:
        with pytest.raises(RuntimeUnavailable):
            await runtime.ping()
        with pytest.raises(RuntimeUnavailable):
            await runtime.list({"app": "aceorch"})
        with pytest.raises(RuntimeUnavailable):
            await runtime.create(ContainerSpec(name="e1", image="img"))
        with pytest.raises(RuntimeUnavailable):
            await runtime.events().__anext__()
    finally:
        await runtime.aclose()
    with pytest.raises(RuntimeUnavailable):
        await runtime.ping()


class FakeDockerAPI:
    """A Docker Engine API on a Unix socket that answers ``/version`` and streams ``/events`` from a queue."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.event_requests: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        app = web.Application()
        app.router.add_get("/version", self._version)
        app.router.add_get("/v1.41/version", self._version)
        app.router.add_get("/v1.41/events", self._events)
        self._runner = web.AppRunner(app)

    async def start(self) -> None:
        await self._runner.setup()
        await web.UnixSite(self._runner, str(self.socket)).start()

    async def aclose(self) -> None:
        self.events.put_nowait(None)  # ends a stream still being served
        await self._runner.cleanup()

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"ApiVersion": "1.41", "Version": "20.10.24"})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        self.event_requests.put_nowait(dict(request.query))
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        while (event := await self.events.get()) is not None:
            await response.write(json.dumps(event).encode() + b"\n")
        return response  # the stream ends


def _docker_event(action: str, container_id: str) -> dict[str, Any]:
    return {"Type": "container", "Action": action, "Actor": {"ID": container_id, "Attributes": {"name": "e1"}}}


@pytest.fixture
async def fake_docker(tmp_path: Path) -> AsyncIterator[FakeDockerAPI]:
    api = FakeDockerAPI(tmp_path / "docker.sock")
    await api.start()
    try:
        yield api
    finally:
        await api.aclose()


async def test_readers_of_one_runtime_share_one_event_stream_until_it_ends(fake_docker: FakeDockerAPI) -> None:
    runtime = DockerRuntime(f"unix://{fake_docker.socket}")
    try:
        await runtime.ping()
        first, second = runtime.events(), runtime.events()
        first_read = asyncio.ensure_future(first.__anext__())
        query = await asyncio.wait_for(fake_docker.event_requests.get(), timeout=10)
        assert json.loads(query["filters"]) == {"type": ["container"]} and float(query["since"]) > 0
        # Scheduled before the daemon is woken below, so the second reader subscribes before any event flows.
        second_read = asyncio.ensure_future(second.__anext__())
        fake_docker.events.put_nowait({"Type": "network", "Action": "connect"})  # not a container event: skipped
        fake_docker.events.put_nowait(_docker_event("start", "c1"))
        assert (await first_read).action == (await second_read).action == "start"
        assert fake_docker.event_requests.empty()  # one stream for both readers

        fake_docker.events.put_nowait(None)  # the daemon ends the stream: both readers end quietly
        assert [e async for e in first] == [] and [e async for e in second] == []

        third = runtime.events()  # a later reader opens a new stream
        third_read = asyncio.ensure_future(third.__anext__())
        await asyncio.wait_for(fake_docker.event_requests.get(), timeout=10)
        fake_docker.events.put_nowait(_docker_event("die", "c1"))
        assert (await third_read).action == "die"
        await runtime.aclose()  # closing the runtime ends a waiting reader
        assert [e async for e in third] == []
    finally:
        await runtime.aclose()
