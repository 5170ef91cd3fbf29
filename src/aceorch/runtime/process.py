"""The process runtime (``RUNTIME=process``): each "container" is a child process of ``ENGINE_COMMAND``.

A container here is an :mod:`asyncio` subprocess of ``shlex.split(command)`` (no shell), with
``spec.command`` appended as arguments (as Docker appends ``Cmd`` to an image's entrypoint), run with the
spec's environment merged over ``os.environ``. The engine reads ``CONF`` / ``HTTP_PORT`` from that
environment and listens on its port, so the published ports are Docker-shaped records of the spec's ports
on 127.0.0.1; a published host port that cannot be bound when the process starts is ``PortUnavailable``.

The runtime keeps its own registry (random 64-hex ids, unique names, labels, created/started times,
status, exit code, a ring buffer of output) and mimics Docker's lifecycle and restart policies: a process
that dies under ``always``/``unless-stopped`` (or ``on-failure`` with a non-zero status) is started again
after a short back-off, unless aceorch stopped it. Each child runs in its own session, so stopping signals
its whole process group. ``network="container:..."`` has no meaning here and is refused; so is a bind mount
whose container path differs from its host path (a child sees the host's files where they are, so a mount of a
path onto itself needs nothing and is accepted). Memory and CPU caps
are not enforced; :meth:`~ProcessRuntime.stats` reads the child's own ``/proc`` entries, and
:meth:`~ProcessRuntime.clear_cache` empties the directory on the host's file system, which children share.
:meth:`ProcessRuntime.aclose` stops every child.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
import shlex
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aceorch.errors import (
    ContainerNotFound,
    ImageNotFound,
    NameConflict,
    PortUnavailable,
    RuntimeFailure,
    RuntimeUnavailable,
)
from aceorch.runtime.base import ContainerInfo, ContainerSpec, ContainerStats, EventHub, RuntimeEvent
from aceorch.runtime.process_usage import ProcUsage, clear_dir, cpu_percent_between, read_proc_usage

__all__ = ["ProcessRuntime"]

logger = logging.getLogger(__name__)

#: The address the published ports are reported on.
HOST_IP = "127.0.0.1"


@dataclass(eq=False)
class _Child:
    """One registered "container" and its current process, if any."""

    id: str
    spec: ContainerSpec
    argv: list[str]
    created: datetime
    logs: collections.deque[str]
    status: str = "created"
    started_at: datetime | None = None
    exit_code: int | None = None
    process: asyncio.subprocess.Process | None = None
    watcher: asyncio.Task[None] | None = None
    #: Set by stop/remove/aclose: the next exit is ours, so no restart.
    stopping: bool = False
    restarts: int = 0
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    #: The last /proc reading, the start of the next CPU measurement.
    usage: ProcUsage | None = None


class ProcessRuntime:
    """:class:`~aceorch.runtime.base.Runtime` running ``command`` as local child processes.

    ``log_lines`` bounds each child's output buffer; ``restart_delay`` is the first back-off before an
    automatic restart (doubling up to ``max_restart_delay``, reset after ``healthy_run_s`` of uptime);
    ``kill_after`` is how long :meth:`aclose` waits after SIGTERM before SIGKILL.
    """

    name = "process"

    def __init__(
        self,
        command: str,
        *,
        log_lines: int = 1000,
        restart_delay: float = 0.5,
        max_restart_delay: float = 10.0,
        healthy_run_s: float = 10.0,
        kill_after: float = 5.0,
    ) -> None:
        self._argv = shlex.split(command)
        if not self._argv:
            raise RuntimeFailure("ENGINE_COMMAND is empty")
        self._log_lines = log_lines
        self._restart_delay = restart_delay
        self._max_restart_delay = max_restart_delay
        self._healthy_run_s = healthy_run_s
        self._kill_after = kill_after
        self._children: dict[str, _Child] = {}
        self._events = EventHub()
        self._closed = False

    @property
    def image(self) -> str:
        """What :class:`ContainerInfo` reports as the image: the command's first word."""
        return self._argv[0]

    # -- registry -----------------------------------------------------------------------------------------

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise RuntimeUnavailable(f"{what}: the process runtime is closed")

    def _find(self, ref: str) -> _Child:
        if ref:
            child = self._children.get(ref)
            if child is not None:
                return child
            for candidate in self._children.values():
                if candidate.spec.name == ref.lstrip("/"):
                    return candidate
            matches = [c for c in self._children.values() if c.id.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise RuntimeFailure(f"multiple containers match the prefix {ref!r}")
        raise ContainerNotFound(f"No such container: {ref}")

    def _info(self, child: _Child) -> ContainerInfo:
        ports: dict[str, list[dict[str, str]] | None] = {}
        for port, host in child.spec.ports.items():
            key = port if "/" in port else f"{port}/tcp"
            ports[key] = [{"HostIp": HOST_IP, "HostPort": str(host)}] if host is not None else None
        return ContainerInfo(
            id=child.id,
            name=child.spec.name,
            image=self.image,
            created=child.created,
            status=child.status,
            labels=dict(child.spec.labels),
            ports=ports,
            health=None,
            ip=HOST_IP,
            started_at=child.started_at,
            exit_code=child.exit_code if child.status in ("exited", "dead", "restarting") else None,
        )

    def _emit(self, action: str, child: _Child, **attributes: str) -> None:
        attrs: dict[str, str] = {
            "name": child.spec.name,
            "image": self.image,
            **child.spec.labels,
            **attributes,
        }
        event = RuntimeEvent(
            action=action,
            container_id=child.id,
            name=child.spec.name,
            labels=dict(child.spec.labels),
            attributes=attrs,
        )
        self._events.publish(event)

    # -- processes ----------------------------------------------------------------------------------------

    @staticmethod
    def _check_ports(spec: ContainerSpec) -> None:
        for port, host in spec.ports.items():
            if host is None:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                # As servers do: connections in TIME_WAIT must not count, only a socket bound there.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("0.0.0.0", host))
                except OSError as exc:
                    raise PortUnavailable(
                        f"create {spec.name}: host port {host} (for {port}) is not free: {exc.strerror}"
                    ) from exc

    async def _spawn(self, child: _Child) -> None:
        """Start ``child``'s process (raising on failure) and its watcher."""
        self._check_ports(child.spec)
        env = {**os.environ, **child.spec.env}
        try:
            process = await asyncio.create_subprocess_exec(
                *child.argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise ImageNotFound(f"create {child.spec.name}: command not found: {child.argv[0]}") from exc
        except OSError as exc:
            raise RuntimeFailure(f"create {child.spec.name}: cannot run {child.argv[0]}: {exc}") from exc
        child.process = process
        child.usage = None  # a new process: CPU is measured afresh
        child.status = "running"
        child.exit_code = None
        child.started_at = datetime.now(UTC)
        child.exited = asyncio.Event()
        child.watcher = asyncio.create_task(self._watch(child, process), name=f"process-runtime {child.spec.name}")
        self._emit("start", child)

    async def _watch(self, child: _Child, process: asyncio.subprocess.Process) -> None:
        """Collect output until the process exits, record the exit, and restart it if its policy says so."""
        pump = asyncio.create_task(self._pump(child, process), name=f"process-runtime output {child.spec.name}")
        try:
            code = await process.wait()
            # Output still in the pipe belongs to this run; a grandchild holding the pipe must not stall us.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pump), timeout=1.0)
        finally:
            pump.cancel()
        child.exit_code = code if code >= 0 else 128 - code  # killed by signal N: 128+N, as Docker reports
        child.status = "exited"
        child.process = None
        child.exited.set()
        self._emit("die", child, exitCode=str(child.exit_code))
        if child.stopping or self._closed or not self._should_restart(child):
            return
        uptime = (datetime.now(UTC) - (child.started_at or child.created)).total_seconds()
        if uptime >= self._healthy_run_s:
            child.restarts = 0
        child.status = "restarting"
        # A back-off, not a poll: stop, remove and aclose cancel this watcher to cut the sleep short.
        while True:
            delay = min(self._max_restart_delay, self._restart_delay * (2**child.restarts))
            child.restarts += 1
            logger.info("%s exited with %s; restarting it in %.1f s", child.spec.name, child.exit_code, delay)
            await asyncio.sleep(delay)
            if child.stopping or self._closed or child.id not in self._children:
                child.status = "exited"
                return
            try:
                await self._spawn(child)
                return
            except RuntimeFailure as exc:  # e.g. its port is taken meanwhile: Docker would retry too
                logger.warning("cannot restart %s: %s", child.spec.name, exc)

    @staticmethod
    def _should_restart(child: _Child) -> bool:
        policy = (child.spec.restart_policy or "no").split(":", 1)[0]
        if policy in ("always", "unless-stopped"):
            return True
        return policy == "on-failure" and child.exit_code != 0

    async def _pump(self, child: _Child, process: asyncio.subprocess.Process) -> None:
        stream = process.stdout
        if stream is None:
            return
        partial = b""
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                break
            partial += chunk
            *lines, partial = partial.split(b"\n")
            for line in lines:
                child.logs.append(line.decode("utf-8", "replace") + "\n")
            if len(partial) > 65536:  # an endless line: keep it in pieces
                child.logs.append(partial.decode("utf-8", "replace"))
                partial = b""
        if partial:
            child.logs.append(partial.decode("utf-8", "replace"))

    @staticmethod
    def _signal(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)

    async def _terminate(self, child: _Child, grace: float) -> None:
        """SIGTERM the child's process group, SIGKILL it after ``grace`` s, and wait for the watcher."""
        child.stopping = True
        process = child.process
        if process is not None and process.returncode is None:
            self._signal(process, signal.SIGTERM)
            try:
                await asyncio.wait_for(child.exited.wait(), timeout=max(0.0, grace))
            except TimeoutError:
                self._signal(process, signal.SIGKILL)
        watcher = child.watcher
        if watcher is not None and not watcher.done():
            if process is None:  # sleeping before a restart: nothing to wait for
                watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if child.status in ("running", "restarting"):
            child.status = "exited"

    # -- Runtime ------------------------------------------------------------------------------------------

    async def ping(self) -> None:
        """Return while the runtime is open; there is no daemon to ask."""
        self._check_open("ping")

    async def image_exists(self, image: str) -> bool:
        """Always True: the process runtime runs its command whatever the image."""
        return True

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Register the container and start its process; on failure it is forgotten again."""
        self._check_open(f"create {spec.name}")
        if not spec.name:
            raise RuntimeFailure("create: a container needs a name")
        if spec.network and spec.network.startswith("container:"):
            raise RuntimeFailure(
                f"create {spec.name}: network {spec.network!r} needs the Docker runtime (RUNTIME=docker)"
            )
        moved = [m for m in spec.mounts if m.source.rstrip("/") != m.target.rstrip("/")]
        if moved:
            m = moved[0]
            raise RuntimeFailure(
                f"create {spec.name}: the mount {m.source}:{m.target} needs a container runtime (RUNTIME=docker or "
                "swarm); engines of the process runtime see this host's files where they are, so only a mount of a "
                "path onto itself works here"
            )
        if any(c.spec.name == spec.name for c in self._children.values()):
            raise NameConflict(f'create {spec.name}: the container name "/{spec.name}" is already in use')
        child = _Child(
            id=secrets.token_hex(32),
            spec=spec,
            argv=[*self._argv, *(spec.command or [])],
            created=datetime.now(UTC),
            logs=collections.deque(maxlen=self._log_lines),
        )
        self._children[child.id] = child
        self._emit("create", child)
        try:
            await self._spawn(child)
        except BaseException:
            del self._children[child.id]
            self._emit("destroy", child)
            raise
        return self._info(child)

    async def inspect(self, container_id: str) -> ContainerInfo:
        """The child's state, by id, unique id prefix or name."""
        self._check_open(f"inspect {container_id}")
        return self._info(self._find(container_id))

    async def list(self, labels: dict[str, str] | None = None) -> list[ContainerInfo]:
        """Every registered child whose labels include all of ``labels``."""
        self._check_open("list")
        wanted = labels or {}
        return [
            self._info(child)
            for child in self._children.values()
            if all(child.spec.labels.get(k) == v for k, v in wanted.items())
        ]

    async def stop(self, container_id: str, timeout: float = 10) -> None:
        """SIGTERM the child's process group, SIGKILL it after ``timeout``; no restart follows."""
        self._check_open(f"stop {container_id}")
        child = self._find(container_id)
        was_active = child.status in ("running", "restarting")
        await self._terminate(child, timeout)
        if was_active:
            self._emit("stop", child)

    async def restart(self, container_id: str, timeout: float = 10) -> None:
        """Stop the child's process and start it again under the same id."""
        self._check_open(f"restart {container_id}")
        child = self._find(container_id)
        await self._terminate(child, timeout)
        child.stopping = False
        child.restarts = 0
        await self._spawn(child)
        self._emit("restart", child)

    async def remove(self, container_id: str) -> None:
        """Kill the child's process at once and forget it."""
        self._check_open(f"remove {container_id}")
        child = self._find(container_id)
        await self._terminate(child, 0)
        self._children.pop(child.id, None)
        self._emit("destroy", child)

    async def logs(self, container_id: str, tail: int = 100) -> str:
        """The last ``tail`` lines of the child's combined output."""
        self._check_open(f"logs {container_id}")
        child = self._find(container_id)
        lines = list(child.logs)
        return "".join(lines[-tail:] if tail > 0 else [])

    async def stats(self, container_id: str) -> ContainerStats:
        """The child's resident memory, and its CPU use since the previous call (None on the first)."""
        self._check_open(f"stats {container_id}")
        child = self._find(container_id)
        process = child.process
        if process is None or process.returncode is not None:
            raise RuntimeFailure(f"stats {container_id}: container is not running")
        reading = await asyncio.to_thread(read_proc_usage, process.pid, time.monotonic())
        if reading is None:
            return ContainerStats(cpu_percent=None, memory_bytes=None)
        before, child.usage = child.usage, reading
        cpu = cpu_percent_between(before, reading) if before is not None else None
        return ContainerStats(cpu_percent=cpu, memory_bytes=reading.rss_bytes)

    async def clear_cache(self, container_id: str, path: str) -> None:
        """Empty the directory ``path`` on the host's file system (the children share it)."""
        self._check_open(f"clear cache {container_id}")
        child = self._find(container_id)
        if child.status != "running":
            raise RuntimeFailure(f"clear cache {path} in {container_id}: container is not running")
        try:
            await asyncio.to_thread(clear_dir, path)
        except OSError as exc:
            raise RuntimeFailure(f"clear cache {path} in {container_id}: {exc}") from exc

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """Events from the moment of this call (the subscription is taken now), until :meth:`aclose`."""
        return self._events.subscribe()

    async def aclose(self) -> None:
        """Stop every child (SIGTERM, SIGKILL after ``kill_after``) and end the event streams. Idempotent."""
        if self._closed:
            return
        self._closed = True
        children = list(self._children.values())
        await asyncio.gather(*(self._terminate(c, self._kill_after) for c in children), return_exceptions=True)
        self._events.end(close=True)
