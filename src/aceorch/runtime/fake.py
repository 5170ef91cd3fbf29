"""``InMemoryRuntime``: a scriptable :class:`~aceorch.runtime.base.Runtime` for unit tests and demos.

Nothing runs: containers are records. Tests script it through a few hooks::

    runtime = InMemoryRuntime()
    runtime.fail_next("create", PortUnavailable("port 19000 is taken"))   # the next create raises it
    info = await runtime.create(spec)                                      # raises PortUnavailable
    info = await runtime.create(spec)                                      # works
    runtime.set_exited(info.id, exit_code=137)                             # as if the engine crashed
    runtime.set_health(info.id, "unhealthy")
    runtime.containers[info.id].usage = ContainerStats(cpu_percent=12.5, memory_bytes=64 << 20)
    await runtime.clear_cache(info.id, "/cache")                           # recorded in .cache_clears
    runtime.available = False                                              # every call: RuntimeUnavailable
    assert ("create", spec.name) in runtime.calls

It enforces what real runtimes enforce: unique names, free host ports among running containers, known images
(when ``images`` is given), ``ContainerNotFound`` for unknown ids. ``create_hook`` (an async callable taking
the spec) runs inside ``create`` before the container exists, so a test can hold a start open or fail it.
"""

from __future__ import annotations

import collections
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aceorch.errors import (
    ContainerNotFound,
    ImageNotFound,
    NameConflict,
    PortUnavailable,
    RuntimeFailure,
    RuntimeUnavailable,
)
from aceorch.runtime.base import ContainerInfo, ContainerSpec, ContainerStats, EventHub, RuntimeEvent

__all__ = ["InMemoryRuntime", "FakeContainer"]


@dataclass(eq=False)
class FakeContainer:
    """One recorded container. Tests may read it and change ``status``/``health``/``logs``/``usage`` directly.

    ``usage`` is what :meth:`InMemoryRuntime.stats` answers; ``cache_clears`` lists the paths cleared in it.
    """

    id: str
    spec: ContainerSpec
    created: datetime
    ip: str
    status: str = "running"
    health: str | None = None
    started_at: datetime | None = None
    exit_code: int | None = None
    logs: list[str] = field(default_factory=list)
    usage: ContainerStats = field(default_factory=lambda: ContainerStats(cpu_percent=None, memory_bytes=None))
    cache_clears: list[str] = field(default_factory=list)


class InMemoryRuntime:
    """An in-memory :class:`~aceorch.runtime.base.Runtime`: no processes, no Docker, fully scriptable."""

    name = "fake"

    def __init__(
        self,
        *,
        images: Iterable[str] | None = None,
        create_hook: Callable[[ContainerSpec], Awaitable[None]] | None = None,
    ) -> None:
        #: Present images; ``None`` means every image exists.
        self.images: set[str] | None = set(images) if images is not None else None
        self.create_hook = create_hook
        #: False makes every call raise ``RuntimeUnavailable`` (the Docker engine is down).
        self.available = True
        #: Every call in order, as ``(method, argument)``: ``("create", name)``, ``("stop", id)``, ...
        self.calls: list[tuple[str, Any]] = []
        self.containers: dict[str, FakeContainer] = {}
        self._failures: dict[str, collections.deque[BaseException]] = collections.defaultdict(collections.deque)
        self._events = EventHub()
        self._next_ip = 2
        self.closed = False

    # -- scripting ----------------------------------------------------------------------------------------

    def fail_next(self, method: str, error: BaseException, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` (``"create"``, ``"stop"``, ...) raise ``error``."""
        for _ in range(times):
            self._failures[method].append(error)

    def set_exited(self, container_id: str, exit_code: int = 1) -> None:
        """Mark a container exited (as if its process died) and emit ``die``."""
        container = self._find(container_id)
        container.status = "exited"
        container.exit_code = exit_code
        self.emit("die", container, exitCode=str(exit_code))

    def set_running(self, container_id: str) -> None:
        """Mark a container running again (as a restart policy would) and emit ``start``."""
        container = self._find(container_id)
        container.status = "running"
        container.exit_code = None
        container.started_at = datetime.now(UTC)
        self.emit("start", container)

    def set_health(self, container_id: str, health: str | None) -> None:
        """Set the Docker health status and emit ``health_status``."""
        container = self._find(container_id)
        container.health = health
        if health is not None:
            self.emit("health_status", container, health_status=health)

    def add_container(self, spec: ContainerSpec, *, status: str = "running") -> ContainerInfo:
        """Record a container that "already existed" (for adoption tests), without any call or event."""
        container = self._new(spec)
        container.status = status
        return self._info(container)

    def emit(self, action: str, container: FakeContainer, **attributes: str) -> None:
        """Send one event to every subscriber."""
        attrs = {"name": container.spec.name, "image": container.spec.image, **container.spec.labels}
        attrs.update(attributes)
        event = RuntimeEvent(
            action=action,
            container_id=container.id,
            name=container.spec.name,
            labels=dict(container.spec.labels),
            attributes=attrs,
        )
        self._events.publish(event)

    def call_names(self) -> list[str]:
        """Just the method names of :attr:`calls`."""
        return [method for method, _ in self.calls]

    # -- helpers ------------------------------------------------------------------------------------------

    def _enter(self, method: str, argument: Any) -> None:
        self.calls.append((method, argument))
        if self.closed or not self.available:
            raise RuntimeUnavailable(f"{method}: the fake runtime is unavailable")
        queue = self._failures.get(method)
        if queue:
            raise queue.popleft()

    def _find(self, ref: str) -> FakeContainer:
        if ref in self.containers:
            return self.containers[ref]
        for container in self.containers.values():
            if container.spec.name == ref:
                return container
        matches = [c for c in self.containers.values() if ref and c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        raise ContainerNotFound(f"No such container: {ref}")

    def _new(self, spec: ContainerSpec) -> FakeContainer:
        now = datetime.now(UTC)
        container = FakeContainer(
            id=secrets.token_hex(32), spec=spec, created=now, started_at=now, ip=f"172.30.0.{self._next_ip}"
        )
        self._next_ip = self._next_ip % 250 + 2
        self.containers[container.id] = container
        return container

    @staticmethod
    def _info(container: FakeContainer) -> ContainerInfo:
        spec = container.spec
        joins = spec.network is not None and spec.network.startswith("container:")
        ports: dict[str, list[dict[str, str]] | None] = {}
        for port, host in spec.ports.items():
            ports[port] = [{"HostIp": "0.0.0.0", "HostPort": str(host)}] if host is not None else None
        return ContainerInfo(
            id=container.id,
            name=spec.name,
            image=spec.image,
            created=container.created,
            status=container.status,
            labels=dict(spec.labels),
            ports=ports,
            health=container.health,
            ip=None if joins else container.ip,
            started_at=container.started_at,
            exit_code=container.exit_code if container.status in ("exited", "dead", "restarting") else None,
        )

    # -- Runtime ------------------------------------------------------------------------------------------

    async def ping(self) -> None:
        """Return, unless the runtime is unavailable or a failure is scripted."""
        self._enter("ping", None)

    async def image_exists(self, image: str) -> bool:
        """Whether the image is in ``images`` (every image is, when ``images`` is None)."""
        self._enter("image_exists", image)
        return self.images is None or image in self.images

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Record a running container, enforcing unique names, free host ports and known images."""
        self._enter("create", spec.name)
        if self.create_hook is not None:
            await self.create_hook(spec)
        if any(c.spec.name == spec.name for c in self.containers.values()):
            raise NameConflict(f'create {spec.name}: the container name "/{spec.name}" is already in use')
        if self.images is not None and spec.image not in self.images:
            raise ImageNotFound(f"create {spec.name}: No such image: {spec.image}")
        if spec.network and spec.network.startswith("container:"):
            if any(host is not None for host in spec.ports.values()):
                raise RuntimeFailure(f"create {spec.name}: ports cannot be published with {spec.network}")
            target = spec.network.removeprefix("container:")
            try:
                if self._find(target).status != "running":
                    raise RuntimeFailure(f"create {spec.name}: container {target} is not running")
            except ContainerNotFound as exc:
                raise RuntimeFailure(f"create {spec.name}: No such container: {target}") from exc
        taken = {
            host
            for c in self.containers.values()
            if c.status == "running"
            for host in c.spec.ports.values()
            if host is not None
        }
        for host in spec.ports.values():
            if host is not None and host in taken:
                raise PortUnavailable(f"create {spec.name}: Bind for 0.0.0.0:{host} failed: port is already allocated")
        container = self._new(spec)
        self.emit("create", container)
        self.emit("start", container)
        return self._info(container)

    async def inspect(self, container_id: str) -> ContainerInfo:
        """The recorded container, by id, unique id prefix or name."""
        self._enter("inspect", container_id)
        return self._info(self._find(container_id))

    async def list(self, labels: dict[str, str] | None = None) -> list[ContainerInfo]:
        """Every recorded container whose labels include all of ``labels``."""
        self._enter("list", dict(labels or {}))
        wanted = labels or {}
        return [
            self._info(c) for c in self.containers.values() if all(c.spec.labels.get(k) == v for k, v in wanted.items())
        ]

    async def stop(self, container_id: str, timeout: float = 10) -> None:
        """Mark a running container exited with status 0, emitting ``die`` and ``stop``."""
        self._enter("stop", container_id)
        container = self._find(container_id)
        if container.status == "running":
            container.status = "exited"
            container.exit_code = 0
            self.emit("die", container, exitCode="0")
            self.emit("stop", container)

    async def restart(self, container_id: str, timeout: float = 10) -> None:
        """Mark the container running again, emitting ``die`` (if it ran), ``start`` and ``restart``."""
        self._enter("restart", container_id)
        container = self._find(container_id)
        if container.status == "running":
            self.emit("die", container, exitCode="0")
        container.status = "running"
        container.exit_code = None
        container.started_at = datetime.now(UTC)
        self.emit("start", container)
        self.emit("restart", container)

    async def remove(self, container_id: str) -> None:
        """Forget the container (killed with 137 if it ran), emitting ``destroy``."""
        self._enter("remove", container_id)
        container = self._find(container_id)
        if container.status == "running":
            container.status = "exited"
            container.exit_code = 137
            self.emit("die", container, exitCode="137")
        del self.containers[container.id]
        self.emit("destroy", container)

    async def logs(self, container_id: str, tail: int = 100) -> str:
        """The last ``tail`` of the container's recorded log lines."""
        self._enter("logs", container_id)
        lines = self._find(container_id).logs
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines[-tail:] if tail > 0)

    async def stats(self, container_id: str) -> ContainerStats:
        """The container's scripted ``usage``; a container that does not run has none to report."""
        self._enter("stats", container_id)
        container = self._find(container_id)
        if container.status != "running":
            raise RuntimeFailure(f"stats {container_id}: container is not running")
        return container.usage

    async def clear_cache(self, container_id: str, path: str) -> None:
        """Record ``path`` in the running container's ``cache_clears``."""
        self._enter("clear_cache", container_id)
        container = self._find(container_id)
        if container.status != "running":
            raise RuntimeFailure(f"clear cache {path} in {container_id}: container is not running")
        container.cache_clears.append(path)

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """Events from the moment of this call (the subscription is taken now), until :meth:`aclose`."""
        return self._events.subscribe()

    def end_events(self) -> None:
        """End every open event iterator (as a dropped Docker connection would); new ones still work."""
        self._events.end(close=self.closed)

    async def aclose(self) -> None:
        """End every event iterator; later calls raise ``RuntimeUnavailable``."""
        self.calls.append(("aclose", None))
        if self.closed:
            return
        self.closed = True
        self.end_events()
