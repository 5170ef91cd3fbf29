"""The Swarm runtime: :class:`~aceorch.runtime.base.Runtime` over a Docker Swarm manager (``DOCKER_HOST``), through
aiodocker's ``services``, ``tasks`` and ``nodes`` APIs.

An engine is a one-replica service (:mod:`aceorch.runtime.swarm_specs`); its "container id" is the service id, which
outlives the tasks Swarm replaces, so an engine whose node fails keeps its id and moves to a new address.
:meth:`SwarmRuntime.create` returns once the service's task runs on a node. ``stop`` scales the service to zero,
``restart`` forces a new task, ``remove`` deletes the service. Logs come through the manager; resource use and
the cache of a task on another node are out of the manager's reach (``stats`` tells nothing, ``clear_cache``
refuses).

Events: the manager's ``service`` and ``node`` events, plus task changes that Swarm does not report as events,
seen by listing the tasks every :data:`TASK_POLL_S` (and at once after each Swarm event): a task that stops running
gives ``die``, a new running task ``start``, a removed service ``destroy``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from typing import Any, cast

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError

from aceorch.aiokits import poll_until
from aceorch.errors import ContainerNotFound, RuntimeFailure, RuntimeUnavailable
from aceorch.runtime._docker_api import api_version as api_version_of
from aceorch.runtime._docker_api import label_filters, make_client
from aceorch.runtime.base import ContainerInfo, ContainerSpec, ContainerStats, EventHub, RuntimeEvent, RuntimeNode
from aceorch.runtime.swarm_specs import (
    FAILED_STATES,
    current_task,
    info_from_service,
    node_from_swarm,
    service_spec,
    task_error,
    translate_status,
)

__all__ = ["SwarmRuntime", "TASK_POLL_S"]

logger = logging.getLogger(__name__)

#: How often the event watcher lists the tasks.
TASK_POLL_S = 1.0
#: How long a task may wait for a node (``no suitable node``) before a create gives up.
_UNPLACED_S = 5.0


@contextlib.contextmanager
def _errors(what: str) -> Iterator[None]:
    """Translate aiodocker/aiohttp errors raised inside the block into :mod:`aceorch.errors`."""
    try:
        yield
    except RuntimeFailure:
        raise
    except DockerError as exc:
        raise translate_status(exc.status, str(exc.message or "").strip(), what) from exc
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise RuntimeUnavailable(f"{what}: Swarm manager unreachable: {exc!s}"[:500]) from exc
    except ValueError as exc:  # aiodocker: no Docker host could be determined
        raise RuntimeUnavailable(f"{what}: {exc!s}") from exc


class SwarmRuntime:
    """:class:`~aceorch.runtime.base.Runtime` over a Swarm manager; also lists the nodes (``ListsNodes``).

    ``max_replicas_per_node`` (0: no cap) and ``constraints`` go into every service's placement.
    """

    name = "swarm"

    def __init__(
        self,
        url: str | None = None,
        *,
        max_replicas_per_node: int = 0,
        constraints: list[str] | None = None,
        api_version: str | None = None,
        init: bool = True,
        create_timeout: float = 60.0,
        request_timeout: float = 60.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self._url = url
        self._api_version = api_version_of(api_version)
        self._max_per_node = max_replicas_per_node
        self._constraints = list(constraints or [])
        self._init = init
        self._create_timeout = create_timeout
        self._timeout = aiohttp.ClientTimeout(total=request_timeout, connect=connect_timeout)
        self._client: aiodocker.Docker | None = None
        self._closed = False
        self._hub = EventHub()
        self._watcher: asyncio.Task[None] | None = None

    def _docker(self, what: str) -> aiodocker.Docker:
        if self._closed:
            raise RuntimeUnavailable(f"{what}: the Swarm runtime is closed")
        if self._client is None:
            with _errors(what):
                self._client = make_client(self._url, self._api_version, self._timeout)
        return self._client

    @property
    def docker_host(self) -> str | None:
        """Where the client connects, once it exists."""
        return self._client.docker_host if self._client is not None else self._url

    # -- reading the swarm --------------------------------------------------------------------------------

    async def _nodes_by_id(self, docker: aiodocker.Docker) -> dict[str, Mapping[str, Any]]:
        with _errors("list nodes"):
            return {str(n.get("ID")): n for n in await docker.nodes.list()}

    async def _tasks(self, docker: aiodocker.Docker, service_id: str | None = None) -> list[Mapping[str, Any]]:
        filters = {"service": [service_id]} if service_id else None
        with _errors(f"list tasks of {service_id}" if service_id else "list tasks"):
            return list(await docker.tasks.list(filters=filters))

    async def nodes(self) -> list[RuntimeNode]:
        """Every node of the swarm, managers first, then by hostname."""
        docker = self._docker("nodes")
        listed = [node_from_swarm(n) for n in (await self._nodes_by_id(docker)).values()]
        return sorted(listed, key=lambda n: (n.role != "manager", n.hostname))

    # -- Runtime ------------------------------------------------------------------------------------------

    async def ping(self) -> None:
        """Return if the daemon answers and is a Swarm manager; ``RuntimeUnavailable`` otherwise."""
        docker = self._docker("ping")
        with _errors("ping"):
            info = await docker.system.info()
        swarm = info.get("Swarm") or {}
        if not swarm.get("ControlAvailable"):
            state = swarm.get("LocalNodeState") or "inactive"
            raise RuntimeUnavailable(
                f"ping: the Docker engine at {self.docker_host} is not a Swarm manager (swarm state {state}); "
                "RUNTIME=swarm needs DOCKER_HOST to point at a manager"
            )

    async def image_exists(self, image: str) -> bool:
        """Always true: every node resolves the image from its own store when it runs a task, and Swarm places
        a task that a node rejects for a missing image on another node."""
        return True

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Create the service and return once its task runs on a node; on failure remove it again."""
        docker = self._docker(f"create {spec.name}")
        kwargs = service_spec(spec, max_replicas_per_node=self._max_per_node, constraints=self._constraints,
                              init=self._init)
        with _errors(f"create {spec.name}"):
            created = await docker.services.create(**kwargs)
        service_id = str(created.get("ID") or "")
        try:
            return await self._wait_placed(service_id, spec.name)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._delete(service_id))
            raise

    async def _wait_placed(self, service_id: str, name: str) -> ContainerInfo:
        """Poll the service until its task runs, fails to start, or finds no node for :data:`_UNPLACED_S`."""
        begin = time.monotonic()
        found: list[ContainerInfo] = []
        unplaced_since: list[float] = []

        async def placed() -> bool:
            info, task = await self._inspect_with_task(service_id)
            state = str((task.get("Status") or {}).get("State") or "") if task else ""
            error = task_error(task)
            if info.running or state in FAILED_STATES:
                if state in FAILED_STATES and error:
                    failure = translate_status(500, error, f"create {name}")
                    if type(failure) is not RuntimeFailure:  # a port, an image: Swarm's retries would not help
                        raise failure
                found.append(info)
                return True
            if state == "pending" and error:
                unplaced_since[:] = unplaced_since or [time.monotonic()]
                if time.monotonic() - unplaced_since[0] >= _UNPLACED_S:
                    raise RuntimeFailure(f"create {name}: no node can run it: {error}")
            return False

        if not await poll_until(placed, timeout=self._create_timeout, interval=0.05):
            raise RuntimeFailure(f"create {name}: its task did not start within {self._create_timeout:.0f} s "
                                 f"({time.monotonic() - begin:.1f} s)")
        return found[0]

    async def _inspect_with_task(self, service_id: str) -> tuple[ContainerInfo, Mapping[str, Any] | None]:
        docker = self._docker(f"inspect {service_id}")
        if not service_id:
            raise ContainerNotFound("inspect: empty service id")
        with _errors(f"inspect {service_id}"):
            service = await docker.services.inspect(service_id)
        task = current_task(await self._tasks(docker, str(service.get("ID"))))
        nodes: dict[str, Mapping[str, Any]] = {}
        if task is not None and task.get("NodeID"):
            node_id = str(task["NodeID"])
            with _errors(f"inspect node {node_id}"):
                nodes[node_id] = await docker.nodes.inspect(node_id=node_id)
        return info_from_service(service, task, nodes), task

    async def inspect(self, container_id: str) -> ContainerInfo:
        """The engine service by id, unique id prefix or name, with its current task's node and state."""
        info, _ = await self._inspect_with_task(container_id)
        return info

    async def list(self, labels: dict[str, str] | None = None) -> list[ContainerInfo]:
        """Every service whose labels include all of ``labels``, oldest first."""
        docker = self._docker("list")
        filters = label_filters(labels) or None
        with _errors("list services"):
            services = await docker.services.list(filters=filters)
        if not services:
            return []
        tasks, nodes = await asyncio.gather(self._tasks(docker), self._nodes_by_id(docker))
        by_service: dict[str, list[Mapping[str, Any]]] = {}
        for task in tasks:
            by_service.setdefault(str(task.get("ServiceID")), []).append(task)
        infos = [info_from_service(s, current_task(by_service.get(str(s.get("ID")), [])), nodes) for s in services]
        infos.sort(key=lambda i: (i.created, i.name))
        return infos

    async def _update(self, service_id: str, what: str, change: Any) -> None:
        """Read the service, apply ``change`` to its spec and post it at the version read."""
        docker = self._docker(what)
        with _errors(what):
            service = await docker.services.inspect(service_id)
            spec = dict(service["Spec"])
            change(spec)
            await docker._query_json(  # aiodocker's services.update changes only the image
                f"services/{service['ID']}/update", method="POST", data=json.dumps(spec),
                params={"version": str((service.get("Version") or {}).get("Index"))},
            )

    async def stop(self, container_id: str, timeout: float = 10) -> None:
        """Scale the service to zero and wait (``timeout`` plus 5 s at most) until its task no longer runs."""
        def to_zero(spec: dict[str, Any]) -> None:
            spec["Mode"] = {"Replicated": {"Replicas": 0}}

        await self._update(container_id, f"stop {container_id}", to_zero)

        async def stopped() -> bool:
            task = current_task(await self._tasks(self._docker("stop"), container_id))
            return task is None or (task.get("Status") or {}).get("State") != "running"

        await poll_until(stopped, timeout=timeout + 5, interval=0.2)

    async def restart(self, container_id: str, timeout: float = 10) -> None:
        """Force a new task (``docker service update --force``), back at one replica."""
        def force(spec: dict[str, Any]) -> None:
            spec["Mode"] = {"Replicated": {"Replicas": 1}}
            template = spec.setdefault("TaskTemplate", {})
            template["ForceUpdate"] = int(template.get("ForceUpdate") or 0) + 1

        await self._update(container_id, f"restart {container_id}", force)

    async def _delete(self, service_id: str) -> None:
        docker = self._docker(f"remove {service_id}")
        with _errors(f"remove {service_id}"):
            await docker.services.delete(service_id)

    async def remove(self, container_id: str) -> None:
        """Delete the service; Swarm stops its task."""
        await self._delete(container_id)

    async def logs(self, container_id: str, tail: int = 100) -> str:
        """The last ``tail`` lines of the service's output, gathered by the manager from its node."""
        docker = self._docker(f"logs {container_id}")
        with _errors(f"logs {container_id}"):
            answer = docker.services.logs(container_id, stdout=True, stderr=True, tail=str(max(0, int(tail))))
            # Without follow, aiodocker returns a coroutine of the lines (its annotation says otherwise).
            lines = await cast(Awaitable[Any], answer)
        return "".join(lines) if isinstance(lines, list) else str(lines or "")

    async def stats(self, container_id: str) -> ContainerStats:
        """Nothing known: a task's resource use is read on its own node, out of the manager's reach."""
        await self.inspect(container_id)  # ContainerNotFound for a service that is gone
        return ContainerStats(cpu_percent=None, memory_bytes=None)

    async def clear_cache(self, container_id: str, path: str) -> None:
        """Refused: the manager cannot run a command in a task on another node."""
        raise RuntimeFailure(f"clear cache {path} in {container_id}: not possible through a Swarm manager")

    # -- events -------------------------------------------------------------------------------------------

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """Service, node and task events from the moment of this call until :meth:`aclose`."""
        stream = self._hub.subscribe()
        if not self._closed and (self._watcher is None or self._watcher.done()):
            self._watcher = asyncio.create_task(self._watch(), name="swarm-events")
        return stream

    async def _watch(self) -> None:
        """Publish the events of one manager until the runtime closes; reconnects after a failure."""
        previous: dict[str, tuple[str, str, dict[str, str]]] | None = None
        wake = asyncio.Event()
        stream: asyncio.Task[None] | None = None
        try:
            while not self._closed:
                if stream is not None and stream.done() and not stream.cancelled() and stream.exception():
                    logger.debug("the Swarm event stream ended: %r", stream.exception())
                if stream is None or stream.done():
                    stream = asyncio.create_task(self._follow_swarm_events(wake), name="swarm-event-stream")
                try:
                    previous = await self._diff_tasks(previous)
                except RuntimeFailure as exc:
                    logger.debug("the Swarm task watch failed: %s", exc)
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), TASK_POLL_S)
        finally:
            if stream is not None:
                stream.cancel()
                await asyncio.wait([stream])

    async def _follow_swarm_events(self, wake: asyncio.Event) -> None:
        docker = self._docker("events")
        subscriber = docker.events.subscribe(create_task=False)  # type: ignore[no-untyped-call]
        run = asyncio.create_task(docker.events.run(filters=json.dumps({"type": ["service", "node"]})))
        try:
            while (data := await subscriber.get()) is not None:
                actor: dict[str, Any] = data.get("Actor") or {}
                attributes = dict(actor.get("Attributes") or {})
                kind = str(data.get("Type") or "")
                action = str(data.get("Action") or "")
                self._hub.publish(RuntimeEvent(action=f"{kind}_{action}", container_id=str(actor.get("ID") or ""),
                                               name=attributes.get("name"), attributes=attributes))
                wake.set()
        finally:
            run.cancel()
            await asyncio.wait([run])
            if not run.cancelled():
                run.exception()

    async def _diff_tasks(
        self, previous: dict[str, tuple[str, str, dict[str, str]]] | None
    ) -> dict[str, tuple[str, str, dict[str, str]]]:
        """Publish what changed since ``previous`` (service id to current task id, state and labels)."""
        now: dict[str, tuple[str, str, dict[str, str]]] = {}
        infos = {i.id: i for i in await self.list()}
        for info in infos.values():
            now[info.id] = (info.started_at.isoformat() if info.started_at else "", info.status, info.labels)
        if previous is None:
            return now
        for sid, (started, status, labels) in now.items():
            before = previous.get(sid)
            info = infos[sid]
            attributes = {"name": info.name, "node": info.node or "", "address": info.node_address or ""}
            if before is None:
                self._hub.publish(RuntimeEvent("create", sid, info.name, dict(labels), attributes))
            if before is not None and before[1] == "running" and (status != "running" or before[0] != started):
                if info.exit_code is not None:
                    attributes["exitCode"] = str(info.exit_code)
                self._hub.publish(RuntimeEvent("die", sid, info.name, dict(labels), attributes))
            if status == "running" and (before is None or before[1] != "running" or before[0] != started):
                self._hub.publish(RuntimeEvent("start", sid, info.name, dict(labels), attributes))
        for sid, (_, _, labels) in previous.items():
            if sid not in now:
                self._hub.publish(RuntimeEvent("destroy", sid, None, dict(labels), {}))
        return now

    async def aclose(self) -> None:
        """End the event watch and close the client; later calls raise ``RuntimeUnavailable``."""
        if self._closed:
            return
        self._closed = True
        self._hub.end(close=True)
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.wait([self._watcher])
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
