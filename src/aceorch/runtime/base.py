"""The one boundary between aceorch and a container platform.

A :class:`Runtime` creates, inspects, lists, stops and removes containers described by a
:class:`ContainerSpec`, reads their logs and resource use (:class:`ContainerStats`), clears a directory inside
them (an engine's cache), and streams lifecycle :class:`RuntimeEvent` s. Backends
(``docker``, ``swarm``, ``process``, ``fake``) implement it and translate their own failures into
:mod:`aceorch.errors` (``RuntimeUnavailable``, ``ContainerNotFound``, ``ImageNotFound``, ``NameConflict``,
``PortUnavailable``, else ``RuntimeFailure``).
Backends never import each other; callers get one injected.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "BindMount", "ContainerSpec", "ContainerInfo", "ContainerStats", "RuntimeEvent", "Runtime", "EventHub",
    "RuntimeNode",
    "ListsNodes",
]


@dataclass(frozen=True)
class BindMount:
    """A directory or file of the host (``source``) seen at ``target`` inside the container, read-only or not."""

    source: str
    target: str
    read_only: bool = False


@dataclass
class ContainerSpec:
    """What to run.

    ``ports`` maps a container port with protocol (``"40001/tcp"``) to a host port on 0.0.0.0, or ``None`` for
    an unpublished port. ``network`` is a network name, ``"container:<name>"`` to join another container's
    network namespace, or ``None`` for the runtime's default. ``memory_limit`` (bytes) and ``cpus`` (CPUs, may
    be fractional) cap the container; ``None`` means no cap. The process runtime does not enforce them.
    ``mounts`` are bind mounts of host paths; the process runtime accepts only those whose two paths are equal.
    """

    name: str
    image: str
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int | None] = field(default_factory=dict)
    network: str | None = None
    restart_policy: str = "unless-stopped"
    command: list[str] | None = None
    memory_limit: int | None = None
    cpus: float | None = None
    mounts: list[BindMount] = field(default_factory=list)


@dataclass
class ContainerInfo:
    """What a runtime reports about one container.

    ``status`` uses Docker's words (``created``, ``running``, ``restarting``, ``exited``, ``dead``, ...).
    ``ports`` has Docker's shape: ``{"40001/tcp": [{"HostIp": "0.0.0.0", "HostPort": "19001"}]}`` or ``None``
    for an unpublished port. ``health`` is the Docker health status (``healthy``/``unhealthy``/``starting``)
    or ``None`` without a health check. ``ip`` is the container's address on its first network, if any.
    """

    id: str
    name: str
    image: str
    created: datetime
    status: str
    labels: dict[str, str] = field(default_factory=dict)
    ports: dict[str, list[dict[str, str]] | None] = field(default_factory=dict)
    health: str | None = None
    ip: str | None = None
    started_at: datetime | None = None
    exit_code: int | None = None
    #: Where the engine's published ports listen when that is not this host: the address of the Swarm node that
    #: runs it (``None`` under the single-host runtimes, and while no node runs it).
    node_address: str | None = None
    #: The name of the node that runs it, under a multi-node runtime.
    node: str | None = None

    @property
    def running(self) -> bool:
        """Whether the container is running now (status ``running``)."""
        return self.status == "running"


@dataclass(frozen=True)
class ContainerStats:
    """One sample of a container's resource use; a value the runtime cannot tell is ``None``.

    ``cpu_percent`` is as ``docker stats`` shows it: 100 is one CPU busy, so it may exceed 100 on several CPUs.
    ``memory_bytes`` is the memory in use without the reclaimable page cache.
    """

    cpu_percent: float | None
    memory_bytes: int | None


@dataclass(frozen=True)
class RuntimeNode:
    """One machine of a multi-node runtime (a Swarm node): ``state`` is ``ready``, ``down``, ``unknown``, ...;
    ``availability`` is ``active``, ``pause`` or ``drain``; ``address`` is where its published ports listen."""

    id: str
    hostname: str
    address: str | None
    role: str
    availability: str
    state: str


@dataclass
class RuntimeEvent:
    """A container lifecycle event: ``action`` is one of ``create``, ``start``, ``die``, ``stop``,
    ``destroy``, ``health_status`` (others may appear and are ignored by consumers).

    ``attributes`` are Docker's actor attributes (``name``, ``image``, the labels, ``exitCode`` on ``die``,
    ``health_status`` on ``health_status``)."""

    action: str
    container_id: str
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)


class EventHub:
    """Fans :class:`RuntimeEvent` s out to every open ``events()`` iterator, for backends that make their own
    events (the process and in-memory runtimes). A subscription is taken when ``subscribe()`` is called."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[RuntimeEvent | None]] = set()
        self.closed = False

    def publish(self, event: RuntimeEvent) -> None:
        """Hand ``event`` to every open subscription."""
        for queue in self._subscribers:
            queue.put_nowait(event)

    def subscribe(self) -> AsyncIterator[RuntimeEvent]:
        """An iterator of the events published from now on, until :meth:`end`."""
        queue: asyncio.Queue[RuntimeEvent | None] = asyncio.Queue()
        if self.closed:
            queue.put_nowait(None)
        else:
            self._subscribers.add(queue)
        return self._drain(queue)

    async def _drain(self, queue: asyncio.Queue[RuntimeEvent | None]) -> AsyncIterator[RuntimeEvent]:
        try:
            while True:
                event = await queue.get()
                if event is None:
                    return
                yield event
        finally:
            self._subscribers.discard(queue)

    def end(self, *, close: bool = False) -> None:
        """End every open iterator; with ``close``, later subscriptions end at once too."""
        self.closed = self.closed or close
        for queue in self._subscribers:
            queue.put_nowait(None)
        self._subscribers.clear()


@runtime_checkable
class Runtime(Protocol):
    """An async container platform. Every method may raise ``RuntimeUnavailable``."""

    #: ``docker``, ``swarm``, ``process`` or ``fake``.
    name: str

    async def ping(self) -> None:
        """Return if the platform answers; raise ``RuntimeUnavailable`` otherwise."""

    async def image_exists(self, image: str) -> bool:
        """Whether ``image`` is present locally (or needs none, as under the process runtime)."""

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Create **and start** a container. On any failure nothing is left behind.

        Raises ``NameConflict``, ``ImageNotFound``, ``PortUnavailable`` or ``RuntimeFailure``.
        """

    async def inspect(self, container_id: str) -> ContainerInfo:
        """By full id, unique id prefix, or name. Raises ``ContainerNotFound``."""

    async def list(self, labels: dict[str, str] | None = None) -> list[ContainerInfo]:
        """All containers (running or not) whose labels include every ``labels`` pair."""

    async def stop(self, container_id: str, timeout: float = 10) -> None:
        """Stop (SIGTERM, then kill after ``timeout``). Stopping a stopped container is not an error."""

    async def restart(self, container_id: str, timeout: float = 10) -> None:
        """Stop then start the same container, keeping its id, ports and labels."""

    async def remove(self, container_id: str) -> None:
        """Remove, killing it first if it runs. Raises ``ContainerNotFound`` if it is already gone."""

    async def logs(self, container_id: str, tail: int = 100) -> str:
        """The last ``tail`` lines of stdout and stderr."""

    async def stats(self, container_id: str) -> ContainerStats:
        """One sample of the running container's CPU and memory use. Raises ``ContainerNotFound``."""

    async def clear_cache(self, container_id: str, path: str) -> None:
        """Delete everything inside the directory ``path`` of the running container, keeping the directory.

        A missing directory is nothing to clear. Raises ``ContainerNotFound``, or ``RuntimeFailure`` when the
        deletion fails.
        """

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """Lifecycle events from the moment of this call, until ``aclose()``.

        The subscription starts at the call, not at the first iteration, so a caller can take the iterator,
        then act, then read the events its action caused. Consumers reconnect if the iterator ends.
        """

    async def aclose(self) -> None:
        """Release connections and, for the process runtime, stop every child process. Idempotent."""


@runtime_checkable
class ListsNodes(Protocol):
    """A runtime that spans several machines and can list them (the Swarm runtime); an optional extra of
    :class:`Runtime`, tested with ``isinstance``."""

    async def nodes(self) -> list[RuntimeNode]:
        """Every node of the cluster, with its health and availability."""
