"""The Runtime contract, written once and run against both real backends.

``docker``: the engine simulator image under the real Docker engine (fails, never skips, without Docker).
``process``: the same simulator as a child process (``python -m aceorch.sim engine``); the image is ignored.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from aceorch.errors import ContainerNotFound, NameConflict, PortUnavailable
from aceorch.runtime.base import ContainerSpec, Runtime, RuntimeEvent
from aceorch.runtime.docker import DockerRuntime
from aceorch.runtime.process import ProcessRuntime
from support import async_wait_until

#: The container-side HTTP port of Docker engines (ACE_HTTP_RANGE); process engines listen on the host port.
CONTAINER_HTTP_PORT = 40001
DEADLINE_S = 20.0


@dataclass
class Backend:
    name: str
    runtime: Runtime
    labels: dict[str, str]
    image: str

    def engine_spec(
        self,
        name: str,
        host_port: int,
        env: dict[str, str] | None = None,
        restart_policy: str = "unless-stopped",
    ) -> ContainerSpec:
        """An engine published on ``host_port``, started as aceorch's provisioner would."""
        inner = CONTAINER_HTTP_PORT if self.name == "docker" else host_port
        return ContainerSpec(
            name=name,
            image=self.image,
            env={"CONF": f"--http-port={inner}\n--bind-all", "HTTP_PORT": str(inner), **(env or {})},
            labels=dict(self.labels),
            ports={f"{inner}/tcp": host_port},
            restart_policy=restart_policy,
        )


@pytest.fixture(params=[pytest.param("docker", marks=pytest.mark.docker), "process"])
async def backend(
    request: pytest.FixtureRequest, test_labels: dict[str, str], engine_image: str, sim_engine_command: str
) -> AsyncIterator[Backend]:
    runtime: Runtime
    if request.param == "docker":
        request.getfixturevalue("docker_engine")  # fails the test if Docker cannot be had
        runtime = DockerRuntime(pull_missing=False)
        image = engine_image
    else:
        runtime = ProcessRuntime(sim_engine_command, restart_delay=0.2, kill_after=3)
        image = "ignored-by-the-process-runtime"
    try:
        yield Backend(request.param, runtime, test_labels, image)
    finally:
        try:
            for info in await runtime.list(test_labels):
                await runtime.remove(info.id)
        finally:
            await runtime.aclose()


async def wait_for_http(url: str, deadline_s: float = DEADLINE_S) -> httpx.Response:
    """GET ``url`` until it answers 200 or the deadline passes (an engine opens its port after it starts)."""
    async with httpx.AsyncClient(timeout=2.0) as client:

        async def answered() -> httpx.Response | None:
            response = await client.get(url)
            return response if response.status_code == 200 else None

        return await async_wait_until(
            answered, f"{url} to answer 200", timeout=deadline_s, interval=0.1, ignoring=(httpx.HTTPError,)
        )


async def refuses(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            await client.get(url)
    except httpx.ConnectError:
        return True
    except httpx.HTTPError:
        return False
    return False


class EventLog:
    """Collects a runtime's events in the background from the moment it is built."""

    def __init__(self, runtime: Runtime) -> None:
        self.events: list[RuntimeEvent] = []
        self._iterator = runtime.events()
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self._iterator:
            self.events.append(event)

    def actions(self, container_id: str) -> list[str]:
        return [e.action for e in self.events if e.container_id == container_id]

    async def wait_for(self, container_id: str, action: str, count: int = 1) -> None:
        await async_wait_until(
            lambda: self.actions(container_id).count(action) >= count,
            f"{count} {action!r} event(s) for {container_id[:12]} (seen {self.actions(container_id)})",
            timeout=DEADLINE_S,
        )

    async def aclose(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        aclose = getattr(self._iterator, "aclose", None)
        if aclose is not None:
            await aclose()


def version_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/webui/api/service?method=get_version&format=json"


def status_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/server/api?api_version=3&method=get_status"


async def test_a_created_engine_runs_and_answers_through_its_published_host_port(
    backend: Backend, unique_name: Callable[[str], str], free_port: Callable[[], int]
) -> None:
    host_port = free_port()
    name = unique_name("engine")
    before = datetime.now(UTC) - timedelta(seconds=2)

    info = await backend.runtime.create(backend.engine_spec(name, host_port))

    assert len(info.id) == 64 and all(c in "0123456789abcdef" for c in info.id)
    assert info.name == name
    assert info.status == "running" and info.running
    assert info.created.tzinfo is not None and info.created >= before
    assert info.started_at is not None and info.started_at >= info.created - timedelta(seconds=1)
    assert info.exit_code is None
    assert info.labels.items() >= backend.labels.items()
    bindings = next(iter(v for v in info.ports.values() if v))
    assert bindings[0]["HostPort"] == str(host_port)

    version = (await wait_for_http(version_url(host_port))).json()
    assert version["error"] is None and version["result"]["platform"] == "linux"
    status = (await wait_for_http(status_url(host_port))).json()
    assert "playlist_loaded" in status["result"]

    await async_wait_until(
        lambda: _logs_mention(backend.runtime, info.id, "listening"), "the engine's start line in its logs",
        timeout=DEADLINE_S,
    )


async def _logs_mention(runtime: Runtime, container_id: str, text: str) -> bool:
    return text in await runtime.logs(container_id, tail=50)


async def test_inspect_finds_a_container_by_id_prefix_and_name(
    backend: Backend, unique_name: Callable[[str], str], free_port: Callable[[], int]
) -> None:
    info = await backend.runtime.create(backend.engine_spec(unique_name("engine"), free_port()))

    by_prefix = await backend.runtime.inspect(info.id[:12])
    by_name = await backend.runtime.inspect(info.name)

    assert by_prefix.id == info.id and by_name.id == info.id
    with pytest.raises(ContainerNotFound):
        await backend.runtime.inspect(unique_name("nobody"))


async def test_list_returns_the_containers_carrying_every_requested_label(
    backend: Backend, unique_name: Callable[[str], str], free_port: Callable[[], int]
) -> None:
    group = unique_name("group")
    spec_a = backend.engine_spec(unique_name("a"), free_port())
    spec_a.labels["aceorch.test.group"] = group
    spec_b = backend.engine_spec(unique_name("b"), free_port())
    a = await backend.runtime.create(spec_a)
    b = await backend.runtime.create(spec_b)

    in_group = await backend.runtime.list({**backend.labels, "aceorch.test.group": group})
    all_test = await backend.runtime.list(backend.labels)

    assert [i.id for i in in_group] == [a.id]
    assert {a.id, b.id} <= {i.id for i in all_test}
    assert await backend.runtime.list({"aceorch.test.group": unique_name("none")}) == []


async def test_stop_ends_the_engine_and_remove_makes_it_unknown(
    backend: Backend, unique_name: Callable[[str], str], free_port: Callable[[], int]
) -> None:
    host_port = free_port()
    info = await backend.runtime.create(backend.engine_spec(unique_name("engine"), host_port))
    await wait_for_http(version_url(host_port))

    await backend.runtime.stop(info.id, timeout=5)

    stopped = await backend.runtime.inspect(info.id)
    assert stopped.status == "exited" and not stopped.running
    assert stopped.exit_code == 0  # the simulator exits cleanly on SIGTERM
    assert await refuses(version_url(host_port))
    listed = {i.id: i for i in await backend.runtime.list(backend.labels)}
    assert listed[info.id].status == "exited"  # stopped containers are still listed

    await backend.runtime.stop(info.id, timeout=5)  # stopping a stopped container is not an error
    await backend.runtime.remove(info.id)

    with pytest.raises(ContainerNotFound):
        await backend.runtime.inspect(info.id)
    with pytest.raises(ContainerNotFound):
        await backend.runtime.remove(info.id)
    assert info.id not in {i.id for i in await backend.runtime.list(backend.labels)}


async def test_remove_kills_a_running_engine(
    backend: Backend, unique_name: Callable[[str], str], free_port: Callable[[], int]
) -> None:
    host_port = free_port()
    info = await backend.runtime.create(backend.engine_spec(unique_name("engine"), host_port))
    await wait_for_http(version_url(host_port))

    await backend.runtime.remove(info.id)

    await async_wait_until(lambda: refuses(version_url(host_port)), "the removed engine's port to close",
                           timeout=DEADLINE_S)
    with pytest.raises(ContainerNotFound):
        await backend.runtime.inspect(info.id)


async def test_a_duplicate_name_is_a_name_conflict_and_leaves_the_first_container_alone(
    backend: Backend, unique_name: Callable[[str], str], free_port: Callable[[], int]
) -> None:
    name = unique_name("engine")
    first = await backend.runtime.create(backend.engine_spec(name, free_port()))

    with pytest.raises(NameConflict):
        await backend.runtime.create(backend.engine_spec(name, free_port()))

    again = await backend.runtime.inspect(name)
    assert again.id == first.id and again.running
    assert [i.id for i in await backend.runtime.list(backend.labels) if i.name == name] == [first.id]


async def test_a_taken_host_port_is_port_unavailable_and_nothing_is_left_behind(
    backend: Backend, unique_name: Callable[[str], str], free_port: Callable[[], int]
) -> None:
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("0.0.0.0", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    name = unique_name("engine")
    try:
        with pytest.raises(PortUnavailable):
            await backend.runtime.create(backend.engine_spec(name, taken))
    finally:
        holder.close()

    assert name not in {i.name for i in await backend.runtime.list(backend.labels)}
    with pytest.raises(ContainerNotFound):
        await backend.runtime.inspect(name)
    # The name is free again: a retry on a free port works.
    retry = await backend.runtime.create(backend.engine_spec(name, free_port()))
    assert retry.running


async def test_events_report_start_die_and_destroy_of_a_container(
    backend: Backend, unique_name: Callable[[str], str], free_port: Callable[[], int]
) -> None:
    log = EventLog(backend.runtime)  # subscribed now: nothing after this line may be missed
    try:
        info = await backend.runtime.create(backend.engine_spec(unique_name("engine"), free_port()))
        await log.wait_for(info.id, "start")
        await backend.runtime.remove(info.id)
        await log.wait_for(info.id, "destroy")

        actions = log.actions(info.id)
        assert actions.index("start") < actions.index("die") < actions.index("destroy")
        start = next(e for e in log.events if e.container_id == info.id and e.action == "start")
        assert start.name == info.name
        assert start.labels.items() >= backend.labels.items()
    finally:
        await log.aclose()


async def test_restart_keeps_the_id_and_port_and_starts_the_engine_again(
    backend: Backend, unique_name: Callable[[str], str], free_port: Callable[[], int]
) -> None:
    host_port = free_port()
    info = await backend.runtime.create(backend.engine_spec(unique_name("engine"), host_port))
    await wait_for_http(version_url(host_port))

    await backend.runtime.restart(info.id, timeout=5)

    again = await backend.runtime.inspect(info.id)
    assert again.id == info.id and again.running
    assert again.started_at is not None and info.started_at is not None and again.started_at > info.started_at
    assert again.ports == info.ports
    await wait_for_http(version_url(host_port))


async def test_a_crashed_engine_is_restarted_by_the_unless_stopped_policy(
    backend: Backend, unique_name: Callable[[str], str], free_port: Callable[[], int]
) -> None:
    host_port = free_port()
    log = EventLog(backend.runtime)
    try:
        spec = backend.engine_spec(unique_name("engine"), host_port, env={"SIM_CRASH_AFTER_S": "1"})
        info = await backend.runtime.create(spec)

        await log.wait_for(info.id, "die")
        await log.wait_for(info.id, "start", count=2)  # the policy brought it back
        await wait_for_http(version_url(host_port))
        assert (await backend.runtime.inspect(info.id)).id == info.id
    finally:
        await log.aclose()


async def test_a_stopped_engine_is_not_restarted_by_its_policy(
    backend: Backend, unique_name: Callable[[str], str], free_port: Callable[[], int]
) -> None:
    host_port = free_port()
    log = EventLog(backend.runtime)
    try:
        info = await backend.runtime.create(backend.engine_spec(unique_name("engine"), host_port))
        await wait_for_http(version_url(host_port))
        await backend.runtime.stop(info.id, timeout=5)
        await log.wait_for(info.id, "die")
        # A restart would come within a second (policy back-off); watch for two.
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            assert log.actions(info.id).count("start") == 1
            assert (await backend.runtime.inspect(info.id)).status == "exited"
            await asyncio.sleep(0.2)
    finally:
        await log.aclose()


async def test_logs_tail_returns_only_the_last_lines(
    backend: Backend, unique_name: Callable[[str], str], free_port: Callable[[], int]
) -> None:
    host_port = free_port()
    info = await backend.runtime.create(backend.engine_spec(unique_name("engine"), host_port))
    await wait_for_http(version_url(host_port))
    await async_wait_until(lambda: _logs_mention(backend.runtime, info.id, "listening"), "the start line",
                           timeout=DEADLINE_S)

    assert (await backend.runtime.logs(info.id, tail=1)).count("\n") <= 1
    assert await backend.runtime.logs(info.id, tail=0) == ""


async def test_a_runtime_answers_ping_and_reports_images(backend: Backend) -> None:
    await backend.runtime.ping()
    assert await backend.runtime.image_exists(backend.image)
    if isinstance(backend.runtime, DockerRuntime):
        assert not await backend.runtime.image_exists("aceorch/no-such-image:never")


async def test_events_are_delivered_from_the_moment_the_iterator_was_taken(
    backend: Backend, unique_name: Callable[[str], str], free_port: Callable[[], int]
) -> None:
    events = backend.runtime.events()  # taken, not yet iterated
    info = await backend.runtime.create(backend.engine_spec(unique_name("engine"), free_port()))
    await backend.runtime.remove(info.id)

    actions: list[str] = []

    async def read_until_destroy() -> None:
        async for event in events:
            if event.container_id == info.id:
                actions.append(event.action)
                if event.action == "destroy":
                    return

    try:
        await asyncio.wait_for(read_until_destroy(), timeout=DEADLINE_S)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    assert "start" in actions and actions[-1] == "destroy"
