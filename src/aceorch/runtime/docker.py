"""The Docker runtime: :class:`~aceorch.runtime.base.Runtime` over the Docker Engine API, through aiodocker.

Every aiodocker/aiohttp failure is translated at this boundary by :func:`map_docker_errors` into
:mod:`aceorch.errors` (``from`` the original)::

    cannot connect, timeout, no socket   -> RuntimeUnavailable
    404 "No such container"              -> ContainerNotFound
    404 "No such image" / pull denied    -> ImageNotFound
    409 "... is already in use"          -> NameConflict
    "port is already allocated", bind    -> PortUnavailable
    anything else                        -> RuntimeFailure

The client is created lazily on first use, so a :class:`DockerRuntime` can be built while the Docker engine
is down (``RUNTIME=docker``); its calls then raise ``RuntimeUnavailable`` until the engine answers. The API
version is negotiated with the daemon (``auto``), which works with Docker 20.10 (API 1.41) and newer engines
alike; ``DOCKER_API_VERSION`` pins it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError

from aceorch.errors import (
    ContainerNotFound,
    ImageNotFound,
    NameConflict,
    PortUnavailable,
    RuntimeFailure,
    RuntimeUnavailable,
    SpecRefused,
)
from aceorch.runtime._docker_api import IMAGE_ERROR, PORT_ERROR, label_filters, make_client
from aceorch.runtime._docker_api import api_version as api_version_of
from aceorch.runtime._docker_api import parse_time as parse_docker_time
from aceorch.runtime.base import ContainerInfo, ContainerSpec, ContainerStats, RuntimeEvent
from aceorch.runtime.docker_usage import clear_dir_argv, limits_host_config, stats_from_docker

__all__ = ["DockerRuntime", "map_docker_errors", "parse_docker_time"]

logger = logging.getLogger(__name__)

#: Event attributes that are not container labels.
_NON_LABEL_ATTRIBUTES = frozenset({"name", "image", "exitCode", "signal", "execID", "health_status"})

#: A start refused for the container's own settings: Docker answers 500 for these, found only when the OCI runtime
#: reads the spec (a NUL in an env value), or 400 for what the daemon checks itself.
_SPEC_ERROR = re.compile(r"environment variable|invalid port specification", re.I)


@contextlib.contextmanager
def map_docker_errors(what: str, *, not_found: type[RuntimeFailure] = ContainerNotFound) -> Iterator[None]:
    """Translate aiodocker/aiohttp errors raised inside the block into :mod:`aceorch.errors`.

    ``what`` names the operation for the message (``"create engine-1"``); ``not_found`` is the error that a
    404 naming neither a container nor an image stands for.
    """
    try:
        yield
    except RuntimeFailure:
        raise
    except DockerError as exc:
        raise translate_docker_error(exc, what, not_found=not_found) from exc
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise RuntimeUnavailable(f"{what}: Docker engine unreachable: {exc!s}"[:500]) from exc
    except ValueError as exc:  # aiodocker: no Docker host could be determined
        raise RuntimeUnavailable(f"{what}: {exc!s}") from exc


def translate_docker_error(
    exc: DockerError, what: str, *, not_found: type[RuntimeFailure] = ContainerNotFound
) -> RuntimeFailure:
    """The :mod:`aceorch.errors` instance for one aiodocker ``DockerError``."""
    message = str(exc.message or "").strip()
    text = f"{what}: {message}" if message else what
    status = exc.status
    lowered = message.lower()
    if status == 900:  # aiodocker's code for "cannot connect"
        return RuntimeUnavailable(text)
    if PORT_ERROR.search(message):
        return PortUnavailable(text)
    if status == 404 or IMAGE_ERROR.search(message):
        if "no such container" in lowered:
            return ContainerNotFound(text)
        if IMAGE_ERROR.search(message):
            return ImageNotFound(text)
        if "network" in lowered:  # e.g. DOCKER_NETWORK names a network that does not exist
            return RuntimeFailure(text)
        return not_found(text)
    if status == 409 and "already in use" in lowered:
        return NameConflict(text)
    if status in (502, 503, 504):
        return RuntimeUnavailable(text)
    if _SPEC_ERROR.search(message) or (
        status == 400 and "network" not in lowered and "conflicting options" not in lowered
    ):
        return SpecRefused(text)  # a 400 about the network or its options is aceorch's setup, not the input
    return RuntimeFailure(text)


def _restart_policy(name: str) -> dict[str, Any]:
    name = (name or "no").strip()
    if name.startswith("on-failure:"):
        _, _, count = name.partition(":")
        return {"Name": "on-failure", "MaximumRetryCount": int(count)}
    return {"Name": name}


def container_config(spec: ContainerSpec, *, init: bool = True) -> dict[str, Any]:
    """The Docker ``containers/create`` body for ``spec``.

    Published ports bind on 0.0.0.0. ``network="container:<name>"`` joins that container's network
    namespace; Docker refuses port publishing (and exposing) there, so published ports are an error and
    unpublished ones are dropped. ``memory_limit`` and ``cpus`` become ``HostConfig.Memory`` and ``NanoCpus``,
    ``mounts`` ``HostConfig.Binds`` (``source:target`` with ``:ro`` when read-only).
    """
    joins = spec.network is not None and spec.network.startswith("container:")
    published = {port: host for port, host in spec.ports.items() if host is not None}
    if joins and published:
        raise RuntimeFailure(
            f"create {spec.name}: ports cannot be published with network {spec.network!r}; "
            "publish them on that container instead"
        )
    host_config: dict[str, Any] = {"RestartPolicy": _restart_policy(spec.restart_policy), "Init": init}
    host_config.update(limits_host_config(spec.memory_limit, spec.cpus))
    if spec.mounts:
        host_config["Binds"] = [f"{m.source}:{m.target}{':ro' if m.read_only else ''}" for m in spec.mounts]
    config: dict[str, Any] = {
        "Image": spec.image,
        "Env": [f"{key}={value}" for key, value in spec.env.items()],
        "Labels": dict(spec.labels),
        "HostConfig": host_config,
    }
    if not joins:
        config["ExposedPorts"] = {_port_key(port): {} for port in spec.ports}
        host_config["PortBindings"] = {
            _port_key(port): [{"HostIp": "0.0.0.0", "HostPort": str(host)}] for port, host in published.items()
        }
    if spec.network:
        host_config["NetworkMode"] = spec.network
    if spec.command is not None:
        config["Cmd"] = list(spec.command)
    return config


def _port_key(port: str) -> str:
    return port if "/" in port else f"{port}/tcp"


def info_from_inspect(data: dict[str, Any]) -> ContainerInfo:
    """A :class:`ContainerInfo` from a ``containers/{id}/json`` answer."""
    state: dict[str, Any] = data.get("State") or {}
    config: dict[str, Any] = data.get("Config") or {}
    host_config: dict[str, Any] = data.get("HostConfig") or {}
    net: dict[str, Any] = data.get("NetworkSettings") or {}
    status = str(state.get("Status") or "unknown")

    ports: dict[str, list[dict[str, str]] | None] = {}
    live = net.get("Ports") or {}
    if live:
        for key, bindings in live.items():
            ports[key] = [dict(b) for b in bindings] if bindings else None
    else:  # not running: Docker reports no live bindings, so show the configured ones
        for key in config.get("ExposedPorts") or {}:
            ports[key] = None
        for key, bindings in (host_config.get("PortBindings") or {}).items():
            ports[key] = [dict(b) for b in bindings] if bindings else None

    ip = net.get("IPAddress") or None
    if not ip:
        for network in (net.get("Networks") or {}).values():
            if network and network.get("IPAddress"):
                ip = network["IPAddress"]
                break

    health = (state.get("Health") or {}).get("Status") or None
    exit_code = state.get("ExitCode")
    return ContainerInfo(
        id=str(data["Id"]),
        name=str(data.get("Name") or "").lstrip("/"),
        image=str(config.get("Image") or data.get("Image") or ""),
        created=parse_docker_time(data.get("Created")) or datetime.fromtimestamp(0, UTC),
        status=status,
        labels=dict(config.get("Labels") or {}),
        ports=ports,
        health=health,
        ip=ip,
        started_at=parse_docker_time(state.get("StartedAt")),
        # While Docker restarts a container, ExitCode is the code of the exit that made it restart.
        exit_code=int(exit_code) if exit_code is not None and status in ("exited", "dead", "restarting") else None,
    )


#: Errors that end an established event stream (a broken chunk, a half line): the stream just ends.
_STREAM_BROKE = (aiohttp.ClientPayloadError, asyncio.IncompleteReadError, ValueError)


async def _end_stream(run: asyncio.Task[None]) -> None:
    """Cancel the shared event stream task and wait for it; its own failure was already reported."""
    if not run.done():
        run.cancel()
    await asyncio.wait([run])
    if not run.cancelled():
        run.exception()  # retrieved, so asyncio does not log it as never retrieved


def event_from_docker(data: dict[str, Any]) -> RuntimeEvent | None:
    """A :class:`RuntimeEvent` from one Docker event object, or ``None`` for a non-container event."""
    if (data.get("Type") or "container") != "container":
        return None
    actor: dict[str, Any] = data.get("Actor") or {}
    attributes: dict[str, Any] = dict(actor.get("Attributes") or {})
    raw_action = str(data.get("Action") or data.get("status") or "")
    action, _, detail = raw_action.partition(":")
    action = action.strip()
    if action == "health_status" and detail.strip():
        attributes["health_status"] = detail.strip()
    container_id = str(actor.get("ID") or data.get("id") or "")
    labels = {k: str(v) for k, v in attributes.items() if k not in _NON_LABEL_ATTRIBUTES}
    return RuntimeEvent(
        action=action,
        container_id=container_id,
        name=attributes.get("name"),
        labels=labels,
        attributes=attributes,
    )


class DockerRuntime:
    """:class:`~aceorch.runtime.base.Runtime` over a Docker engine (``DOCKER_HOST`` or the default socket).

    ``init`` runs a tiny init (``docker run --init``) as PID 1, so an engine that ignores SIGTERM as PID 1
    still stops at once. ``pull_missing`` lets :meth:`create` try ``docker pull`` for an absent image, as
    ``docker run`` does; offline machines fail that pull and get ``ImageNotFound``.
    """

    name = "docker"

    def __init__(
        self,
        url: str | None = None,
        *,
        api_version: str | None = None,
        init: bool = True,
        pull_missing: bool = True,
        request_timeout: float = 120.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self._url = url
        self._api_version = api_version_of(api_version)
        self._init = init
        self._pull_missing = pull_missing
        self._timeout = aiohttp.ClientTimeout(total=request_timeout, connect=connect_timeout)
        self._client: aiodocker.Docker | None = None
        self._closed = False
        self._event_stream: asyncio.Task[None] | None = None
        self._event_readers = 0

    # -- client -------------------------------------------------------------------------------------------

    def _docker(self, what: str) -> aiodocker.Docker:
        if self._closed:
            raise RuntimeUnavailable(f"{what}: the Docker runtime is closed")
        if self._client is None:
            with map_docker_errors(what):
                self._client = make_client(self._url, self._api_version, self._timeout)
        return self._client

    @property
    def docker_host(self) -> str | None:
        """Where the client connects, once it exists."""
        return self._client.docker_host if self._client is not None else self._url

    # -- Runtime ------------------------------------------------------------------------------------------

    async def ping(self) -> None:
        """Return if the daemon answers ``/version``; ``RuntimeUnavailable`` otherwise."""
        docker = self._docker("ping")
        with map_docker_errors("ping", not_found=RuntimeUnavailable):
            await docker.version()

    async def image_exists(self, image: str) -> bool:
        """Whether the image is present in the daemon's image store."""
        docker = self._docker("image_exists")
        try:
            with map_docker_errors(f"inspect image {image}", not_found=ImageNotFound):
                await docker.images.inspect(image)
        except ImageNotFound:
            return False
        return True

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Create and start the container (pulling a missing image if allowed); on failure remove it again."""
        docker = self._docker(f"create {spec.name}")
        config = container_config(spec, init=self._init)
        what = f"create {spec.name}"
        try:
            with map_docker_errors(what, not_found=ImageNotFound):
                container = await docker.containers.create(config, name=spec.name)
        except ImageNotFound:
            if not self._pull_missing:
                raise
            await self._pull(spec.image)
            with map_docker_errors(what, not_found=ImageNotFound):
                container = await docker.containers.create(config, name=spec.name)
        try:
            with map_docker_errors(f"start {spec.name}"):
                await container.start()
            return await self.inspect(container.id)
        except BaseException:
            # Nothing is left behind: a created-but-unstarted container would hold its name and ports.
            with contextlib.suppress(Exception):
                await asyncio.shield(container.delete(force=True))
            raise

    async def _pull(self, image: str) -> None:
        docker = self._docker(f"pull {image}")
        logger.info("image %s is not present; pulling it", image)
        try:
            with map_docker_errors(f"pull {image}", not_found=ImageNotFound):
                await docker.images.pull(image)
        except RuntimeUnavailable:
            raise
        except RuntimeFailure as exc:
            raise ImageNotFound(f"image {image} is not present and cannot be pulled: {exc}") from exc

    async def inspect(self, container_id: str) -> ContainerInfo:
        """The container's state, from ``containers/{id}/json``."""
        docker = self._docker(f"inspect {container_id}")
        if not container_id:
            raise ContainerNotFound("inspect: empty container id")
        with map_docker_errors(f"inspect {container_id}"):
            data = await docker.containers.container(container_id).show()
        return info_from_inspect(data)

    async def list(self, labels: dict[str, str] | None = None) -> list[ContainerInfo]:
        """Every container, running or not, whose labels include all of ``labels``, oldest first."""
        docker = self._docker("list")
        filters = label_filters(labels)
        with map_docker_errors("list"):
            summaries = await docker.containers.list(all=True, filters=json.dumps(filters))
        results = await asyncio.gather(*(self.inspect(c.id) for c in summaries), return_exceptions=True)
        infos: list[ContainerInfo] = []
        for result in results:
            if isinstance(result, ContainerNotFound):  # removed between list and inspect
                continue
            if isinstance(result, BaseException):
                raise result
            infos.append(result)
        infos.sort(key=lambda i: (i.created, i.name))
        return infos

    async def stop(self, container_id: str, timeout: float = 10) -> None:
        """``docker stop`` with ``timeout`` rounded up to whole seconds."""
        docker = self._docker(f"stop {container_id}")
        with map_docker_errors(f"stop {container_id}"):
            await docker.containers.container(container_id).stop(t=max(0, math.ceil(timeout)))

    async def restart(self, container_id: str, timeout: float = 10) -> None:
        """``docker restart`` with ``timeout`` rounded up to whole seconds."""
        docker = self._docker(f"restart {container_id}")
        with map_docker_errors(f"restart {container_id}"):
            await docker.containers.container(container_id).restart(t=max(0, math.ceil(timeout)))

    async def remove(self, container_id: str) -> None:
        """``docker rm -f``; a removal already in progress counts as done."""
        docker = self._docker(f"remove {container_id}")
        try:
            with map_docker_errors(f"remove {container_id}"):
                await docker.containers.container(container_id).delete(force=True)
        except RuntimeFailure as exc:
            if "already in progress" in str(exc):  # a concurrent remove will finish the job
                return
            raise

    async def logs(self, container_id: str, tail: int = 100) -> str:
        """The last ``tail`` lines of the container's stdout and stderr."""
        docker = self._docker(f"logs {container_id}")
        with map_docker_errors(f"logs {container_id}"):
            lines = await docker.containers.container(container_id).log(
                stdout=True, stderr=True, tail=max(0, int(tail))
            )
        return "".join(lines)

    async def stats(self, container_id: str) -> ContainerStats:
        """One ``stream=false`` stats answer (the daemon samples twice, so the CPU delta is filled in)."""
        docker = self._docker(f"stats {container_id}")
        with map_docker_errors(f"stats {container_id}"):
            answers = await docker.containers.container(container_id).stats(stream=False, timeout=30.0)
        data = answers[-1] if answers else {}
        if isinstance(data, dict) and data.get("message") and not data.get("cpu_stats"):
            raise ContainerNotFound(f"stats {container_id}: {data['message']}")
        return stats_from_docker(data if isinstance(data, dict) else {})

    async def clear_cache(self, container_id: str, path: str) -> None:
        """Empty ``path`` inside the container through ``docker exec`` (``sh -c 'rm -rf ...'``)."""
        docker = self._docker(f"clear cache {container_id}")
        what = f"clear cache {path} in {container_id}"
        with map_docker_errors(what):
            execution = await docker.containers.container(container_id).exec(clear_dir_argv(path))
            output = b""
            async with execution.start(detach=False, timeout=60.0) as stream:
                while (message := await stream.read_out()) is not None:
                    output += message.data
            result = await execution.inspect()
        code = result.get("ExitCode")
        if code != 0:
            text = output.decode("utf-8", "replace").strip()[:300]
            raise RuntimeFailure(f"{what}: exit code {code}" + (f": {text}" if text else ""))

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """Container events from the moment of this call until :meth:`aclose` or the stream breaks.

        Docker replays from ``since``, so none is lost between the call and the first iteration. Readers of
        one runtime share a single ``/events`` stream (aiodocker fans it out to its subscribers); a reader that
        joins a live stream sees the events from its first iteration on.
        """
        return self._events(since=time.time())

    async def _events(self, since: float) -> AsyncIterator[RuntimeEvent]:
        docker = self._docker("events")
        subscriber = docker.events.subscribe(create_task=False)  # type: ignore[no-untyped-call]
        run = self._event_stream
        if run is None or run.done():
            run = asyncio.create_task(
                # aiodocker's default for a stream: the client's connect timeout, no read or total limit.
                docker.events.run(since=f"{since:.6f}", filters=json.dumps({"type": ["container"]})),
                name="docker-events",
            )
            self._event_stream = run
        self._event_readers += 1
        try:
            while (data := await subscriber.get()) is not None:
                event = event_from_docker(data)
                if event is not None:
                    yield event
            # aiodocker publishes None when the stream ends: say why, unless it merely broke off.
            await asyncio.wait([run])
            failure = None if run.cancelled() else run.exception()
            if failure is not None and not isinstance(failure, _STREAM_BROKE):
                with map_docker_errors("events"):
                    raise failure
            if failure is not None:
                logger.debug("the Docker event stream broke off: %r", failure)
        finally:
            self._event_readers -= 1
            if self._event_readers == 0:
                await _end_stream(run)

    async def aclose(self) -> None:
        """End the event stream and close the client; later calls raise ``RuntimeUnavailable``."""
        if self._closed:
            return
        self._closed = True
        if self._event_stream is not None:
            await _end_stream(self._event_stream)
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
