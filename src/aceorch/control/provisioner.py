"""Starting engines: admission, name allocation, the start itself, and rollback.

Ports and the VPN of a start are chosen by :class:`~aceorch.control.placement.Placement`.

A start is admitted first (:mod:`aceorch.control.admission`). An admitted start keeps its capacity slot, waits FIFO
for one of MAX_CONCURRENT_PROVISIONS start slots and for MIN_PROVISION_INTERVAL_S since the previous start, then
creates the container and waits until the engine's API answers. Any failure removes the container and releases
every reserved port before the error is raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import httpx

from aceorch.aiokits import poll_until
from aceorch.config import Settings
from aceorch.control.admission import GateState, ProvisionRequest, blocked_error, decide_admission, failed
from aceorch.control.breaker import CircuitBreaker
from aceorch.control.engine_api import ENGINE_NAME, advertised_address, engine_ready
from aceorch.control.placement import Placement, VpnPlacement, VpnTarget
from aceorch.control.ports import PortAllocator
from aceorch.errors import (
    ImageMissing,
    ImageNotFound,
    ImageUnavailable,
    InputRejected,
    NameConflict,
    PortUnavailable,
    ProvisioningError,
    RuntimeFailure,
    RuntimeUnavailable,
    SpecRefused,
)
from aceorch.models import Engine
from aceorch.runtime.base import BindMount, ContainerInfo, ContainerSpec, Runtime

__all__ = ["Fleet", "Provisioner"]

logger = logging.getLogger(__name__)

#: Failure reasons after which the engine's exit code and last output lines are recorded (before removal).
_EXIT_REASONS = frozenset({"engine_exited", "startup_timeout"})
#: How many of the engine's last output lines a failed start records.
_OUTPUT_TAIL = 20
#: How long reading them may take before the failure is recorded without them.
_EVIDENCE_TIMEOUT_S = 5.0


class Fleet(Protocol):
    """What the provisioner needs to know about the engines the service already manages."""

    def engine_count(self) -> int:
        """How many engines the fleet holds."""

    def engine_names(self) -> set[str]:
        """Container names of the engines."""

    def p2p_holder(self) -> str | None:
        """The engine holding the forwarded P2P port, if any."""

    def engines(self) -> list[Engine]:
        """Every engine."""

    async def register(self, engine: Engine, info: ContainerInfo) -> None:
        """A started engine joins the fleet."""


Recorder = Callable[..., None]


class Provisioner:
    """Admits and runs engine starts. One per service."""

    def __init__(
        self,
        settings: Settings,
        *,
        runtime: Runtime,
        fleet: Fleet,
        breakers: Mapping[str, CircuitBreaker],
        ports: PortAllocator,
        http: httpx.AsyncClient,
        record: Recorder,
        on_finished: Callable[[str, bool, float, str | None, str | None], None],
        vpn_gate: Callable[[], tuple[bool, int | None]],
        runtime_ok: Callable[[], Awaitable[bool]],
        in_container: bool = False,
        on_runtime_lost: Callable[[], None] = lambda: None,
        vpn_pool: VpnPlacement | None = None,
    ) -> None:
        self.settings = settings
        self.on_runtime_lost = on_runtime_lost
        self.runtime = runtime
        self.fleet = fleet
        self.breakers = breakers
        self.ports = ports
        self.http = http
        self.record = record
        self.on_finished = on_finished
        self.vpn_gate = vpn_gate
        #: The VPNs, when engines run behind Gluetun: a new engine goes to the connected one with the fewest.
        self.vpn_pool = vpn_pool
        #: Where each start goes: its ports and, with several VPNs, its VPN.
        self.placement = Placement(settings, runtime=runtime, ports=ports, vpn_pool=vpn_pool,
                                   gate_state=self.gate_state)
        #: The VPN chosen for each start being allocated or created, by its HTTP host port.
        self._vpn_of_port: dict[int, VpnTarget] = self.placement.vpn_of_port
        #: Starts in flight that were given their VPN's forwarded port (host port -> VPN), so that one engine gets it.
        self._p2p_of_port: dict[int, str | None] = {}
        self.runtime_ok = runtime_ok
        self.in_container = in_container
        self.in_flight = 0
        self._slots = asyncio.Semaphore(settings.pool.max_concurrent_provisions)
        self._interval_lock = asyncio.Lock()
        self._last_start = 0.0
        self._reserved_names: set[str] = set()
        self._foreign_names: set[str] = set()

    def starting_names(self) -> frozenset[str]:
        """Names of the containers being created right now (not yet in the fleet)."""
        return frozenset(self._reserved_names)

    # -- admission ----------------------------------------------------------------------------------------
    def gate_state(self, source: str = "api", runtime_ok: bool = True) -> GateState:
        """What admission sees now, for a start asked for by ``source``."""
        breaker = self.breakers["replacement" if source == "replacement" else "general"]
        adm = breaker.peek()
        connected, _ = self.vpn_gate()
        eta = adm.eta_s if not adm.allowed else None
        return GateState(
            runtime_ok=runtime_ok,
            vpn_enabled=self.settings.vpn_enabled,
            vpn_connected=connected,
            breaker_state=adm.state,
            breaker_eta_s=eta,
            breaker_allows=adm.allowed,
            engines=self.fleet.engine_count(),
            in_flight=self.in_flight,
            max_replicas=self.settings.pool.max_replicas,
            max_active_replicas=self.settings.pool.max_active_replicas,
            auto_delete=self.settings.pool.auto_delete,
            grace_period_s=self.settings.pool.engine_grace_period_s,
            startup_timeout_s=self.settings.runtime.startup_timeout_s,
        )

    @property
    def runtime_kind(self) -> str:
        """The runtime's name: docker, process or fake."""
        return self.runtime.name

    # -- the start ----------------------------------------------------------------------------------------
    async def provision(self, req: ProvisionRequest) -> tuple[Engine, float]:
        """Admit and start one engine; returns it (registered) and the start's duration in ms."""
        begin = time.perf_counter()
        image = req.image or self.settings.runtime.target_image
        self.record("provisioning", operation="start_acestream_begin", labels=req.labels,
                    image=image if self.runtime.name != "process" else self.settings.runtime.engine_command.split()[0],
                    custom_env=bool(req.env), source=req.source, request_id=req.request_id)
        reserved: list[int] = []
        claimed_slot = False
        breaker = self.breakers["replacement" if req.source == "replacement" else "general"]
        trial = False
        try:
            ok = await self.runtime_ok()
            gate = self.gate_state(req.source, runtime_ok=ok)
            code = decide_admission(gate)
            if code is None:
                adm = breaker.admit()
                trial = adm.trial
            if code is not None:
                raise blocked_error(code, gate)
            # Step 7: ports and image.
            layout = self.placement.allocate(req, reserved)
            if req.image and self.runtime.name != "process" and not await self.runtime.image_exists(req.image):
                raise ImageMissing(f"Image {req.image!r} is not present locally")
            self.in_flight += 1
            claimed_slot = True
        except ProvisioningError as exc:
            if trial:
                breaker.release_trial()
            self.ports.release(reserved)
            for port in reserved:
                self._vpn_of_port.pop(port, None)
            self._fail_record(req, exc, begin)
            raise
        released = False

        def release_slot() -> None:
            # Idempotent: the slot is handed back when the engine joins the fleet (so it is never counted twice),
            # or when the start fails.
            nonlocal released
            if claimed_slot and not released:
                released = True
                self.in_flight -= 1

        try:
            engine = await self._start(req, image, layout, breaker, begin, release_slot)
        finally:
            release_slot()
        duration_ms = (time.perf_counter() - begin) * 1000
        return engine, duration_ms

    def _fail_record(self, req: ProvisionRequest, exc: ProvisioningError, begin: float, **fields: Any) -> None:
        duration_ms = (time.perf_counter() - begin) * 1000
        self.record("provisioning", operation="start_acestream_failed", error=exc.message, reason=exc.reason,
                    code=exc.code, duration_ms=duration_ms, success=False, source=req.source,
                    request_id=req.request_id, **fields)
        self.on_finished("start_acestream", False, duration_ms, None, exc.code)

    def _next_name(self) -> str:
        used = self.fleet.engine_names() | self._reserved_names | self._foreign_names
        highest = 0
        for name in used:
            m = ENGINE_NAME.match(name)
            if m:
                highest = max(highest, int(m.group(1)))
        return f"acestream-{highest + 1}"

    def _spec(self, req: ProvisionRequest, image: str, name: str, layout: dict[str, int | None]) -> ContainerSpec:
        s = self.settings
        c_http = layout["container_http"]
        c_https = layout["container_https"]
        env = {**s.runtime.engine_env_map, **req.env}
        if "CONF" not in req.env:
            env["CONF"] = f"--http-port={c_http}\n--https-port={c_https}\n--bind-all"
        env.update(
            {
                "HTTP_PORT": str(c_http),
                "HTTPS_PORT": str(c_https),
                "BIND_ALL": "true",
                "INTERNAL_BUFFERING": "60",
                "CACHE_LIMIT": "1",
            }
        )
        key, value = s.label_pair
        labels = dict(req.labels)
        labels.update(
            {
                key: value,
                "acestream.http_port": str(c_http),
                "acestream.https_port": str(c_https),
                "host.http_port": str(layout["host_http"]),
                "aceorch.kind": "engine",
                "aceorch.request_id": req.request_id or "",
            }
        )
        if layout["host_https"] is not None:
            labels["host.https_port"] = str(layout["host_https"])
        ports: dict[str, int | None] = {}
        network: str | None = s.runtime.docker_network
        port = int(layout["host_http"] or 0)
        target = self._vpn_of_port.get(port)
        if s.vpn_enabled and target is not None and self.vpn_pool is not None and self.vpn_pool.several:
            network = f"container:{target.container}"
            labels.update(self.vpn_pool.engine_labels(target))
            forwarded = target.forwarded_port
            held = any(e.p2p_port is not None and self.vpn_pool.member(e) is target for e in self.fleet.engines())
            pending = any(v == target.container for p, v in self._p2p_of_port.items() if p != port)
            if forwarded and not held and not pending:
                env["P2P_PORT"] = str(forwarded)
                labels["aceorch.p2p_port"] = str(forwarded)
                self._p2p_of_port[port] = target.container
        elif s.vpn_enabled:
            network = f"container:{s.vpn.gluetun_container_name or (s.vpn.names or [''])[0]}"
            _, forwarded = self.vpn_gate()
            if forwarded and self.fleet.p2p_holder() is None:
                env["P2P_PORT"] = str(forwarded)
                labels["aceorch.p2p_port"] = str(forwarded)
        elif self.runtime.name != "process":
            ports[f"{c_http}/tcp"] = layout["host_http"]
            if layout["host_https"] is not None:
                ports[f"{c_https}/tcp"] = layout["host_https"]
        else:
            ports[f"{c_http}/tcp"] = layout["host_http"]
        command = None
        return ContainerSpec(
            name=name, image=image, env=env, labels=labels, ports=ports, network=network, command=command,
            memory_limit=s.runtime.engine_memory_bytes, cpus=s.runtime.engine_cpus,
            mounts=[BindMount(source, target, read_only) for source, target, read_only in s.runtime.engine_volume_list],
        )

    async def _wait_slot(self) -> None:
        await self._slots.acquire()
        gap = self.settings.pool.min_provision_interval_s
        if gap <= 0:
            return
        try:
            async with self._interval_lock:
                wait = self._last_start + gap - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._last_start = time.monotonic()
        except BaseException:
            self._slots.release()
            raise

    async def _start(
        self,
        req: ProvisionRequest,
        image: str,
        layout: dict[str, int | None],
        breaker: CircuitBreaker,
        begin: float,
        release_slot: Callable[[], None],
    ) -> Engine:
        s = self.settings
        info: ContainerInfo | None = None
        name = ""
        try:
            await self._wait_slot()
            try:
                for _attempt in range(5):
                    name = self._next_name()
                    self._reserved_names.add(name)
                    spec = self._spec(req, image, name, layout)
                    try:
                        info = await self.runtime.create(spec)
                        break
                    except NameConflict:
                        self._reserved_names.discard(name)
                        logger.warning("container name %s is taken; trying the next one", name)
                        # Names are global to the runtime: learn every name in use, ours or not.
                        self._foreign_names = {c.name for c in await self.runtime.list()} | {name}
                        continue
                    except PortUnavailable as exc:
                        self._reserved_names.discard(name)
                        self._p2p_of_port.pop(int(layout["host_http"] or 0), None)
                        self.placement.move_host_ports(req, layout, exc)
                        continue
                if info is None:
                    raise failed("no free container name or host port after 5 tries", "docker_error")
                host, port = advertised_address(
                    s,
                    container_name=name,
                    host_port=int(layout["host_http"] or 0),
                    container_port=int(layout["container_http"] or 0),
                    in_container=self.in_container,
                    runtime_kind=self.runtime.name,
                    node_address=info.node_address,
                    vpn=spec.labels.get("aceorch.vpn"),
                )
                await self._wait_ready(info, host, port, begin)
                engine = Engine(
                    container_id=info.id,
                    container_name=name,
                    host=host,
                    port=port,
                    host_http_port=int(layout["host_http"] or 0),
                    container_http_port=int(layout["container_http"] or 0),
                    container_https_port=layout["container_https"],
                    host_https_port=layout["host_https"],
                    labels=dict(info.labels) or dict(spec.labels),
                    p2p_port=int(spec.env["P2P_PORT"]) if "P2P_PORT" in spec.env else None,
                )
                release_slot()
                await self.fleet.register(engine, info)
            finally:
                self._slots.release()
                self._reserved_names.discard(name)
                self._vpn_of_port.pop(int(layout["host_http"] or 0), None)
                self._p2p_of_port.pop(int(layout["host_http"] or 0), None)
        except BaseException as exc:
            err = self._translate(exc)
            exit_fields: dict[str, Any] = {}
            if info is not None:
                if err.reason in _EXIT_REASONS:
                    exit_fields = await self._exit_evidence(info.id, name)
                await self._remove_quietly(info.id)
            self.ports.release(layout.values())
            self._vpn_of_port.pop(int(layout["host_http"] or 0), None)
            self._p2p_of_port.pop(int(layout["host_http"] or 0), None)
            if err.code == "runtime_unavailable":
                breaker.release_trial()  # the runtime went away: not the engine's failure, nothing to record
                self.on_runtime_lost()
            elif isinstance(err, InputRejected):
                breaker.record_rejected()  # the caller's input, not the engine: counts toward no breaker
            else:
                breaker.record(False)
            self._fail_record(req, err, begin, **exit_fields)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise err from exc
        breaker.record(True)
        duration_ms = (time.perf_counter() - begin) * 1000
        self.record("provisioning", operation="start_acestream_success", container_id=engine.container_id,
                    container_name=engine.container_name, host_http_port=engine.host_http_port,
                    container_http_port=engine.container_http_port, duration_ms=duration_ms, success=True,
                    source=req.source, request_id=req.request_id)
        self.on_finished("start_acestream", True, duration_ms, engine.container_id, None)
        return engine

    def _translate(self, exc: BaseException) -> ProvisioningError:
        if isinstance(exc, ProvisioningError):
            return exc
        vpn = self.settings.vpn_enabled
        if isinstance(exc, ImageNotFound):
            return ImageUnavailable(f"Failed to provision engine: image not found: {exc}")
        if isinstance(exc, PortUnavailable):
            return failed(f"port unavailable: {exc}", "docker_error")
        if isinstance(exc, SpecRefused):
            return InputRejected(f"the runtime refused the request's input: {exc}")
        if isinstance(exc, RuntimeUnavailable):
            return blocked_error("runtime_unavailable", self.gate_state(runtime_ok=False))
        if isinstance(exc, RuntimeFailure):
            text = str(exc)
            is_vpn = vpn and ("container:" in text or "network" in text.lower() or "namespace" in text.lower())
            return failed(text, "docker_error", vpn=is_vpn)
        if isinstance(exc, asyncio.CancelledError):
            return failed("cancelled during shutdown", "docker_error")
        logger.exception("unexpected error while provisioning", exc_info=exc)
        return failed(f"{type(exc).__name__}: {exc}", "docker_error")

    async def _wait_ready(self, info: ContainerInfo, host: str, port: int, begin: float) -> None:
        """Wait until the engine answers (or, with PROVISION_WAIT_FOR=running, runs); fail if it exits or is late."""
        deadline = begin + self.settings.runtime.startup_timeout_s
        wait_ready = self.settings.runtime.provision_wait_for.value == "ready"
        last_inspect = time.perf_counter()  # the container was just created running
        pauses = [0.02]  # poll fast first (an engine often answers within tens of ms), then back off to 100 ms

        def backoff() -> float:
            pause = pauses[0]
            pauses[0] = min(0.1, pause * 2)
            return pause

        async def up() -> bool:
            nonlocal last_inspect
            now = time.perf_counter()
            if now - last_inspect >= 0.5 or not wait_ready:
                last_inspect = now
                current = await self.runtime.inspect(info.id)
                if current.status in ("exited", "dead", "restarting") or (current.exit_code or 0) != 0:
                    raise failed(
                        f"engine exited during startup (status {current.status}, exit code {current.exit_code})",
                        "engine_exited",
                    )
                if not wait_ready and current.running:
                    return True
            return wait_ready and await engine_ready(
                self.http, host, port, timeout=min(2.0, max(0.2, deadline - now))
            )

        if not await poll_until(up, timeout=deadline - time.perf_counter(), interval=backoff):
            what = "ready" if wait_ready else "running"
            raise failed(
                f"engine not {what} within STARTUP_TIMEOUT_S ({self.settings.runtime.startup_timeout_s}s)",
                "startup_timeout",
            )

    async def _exit_evidence(self, container_id: str, name: str) -> dict[str, Any]:
        """The exit code and last output lines of an engine that failed to start, read before it is removed."""
        fields: dict[str, Any] = {"container_id": container_id, "container_name": name or None}
        try:
            current = await asyncio.wait_for(self.runtime.inspect(container_id), _EVIDENCE_TIMEOUT_S)
            fields["exit_code"] = current.exit_code
            fields["container_status"] = current.status
            text = await asyncio.wait_for(self.runtime.logs(container_id, tail=_OUTPUT_TAIL), _EVIDENCE_TIMEOUT_S)
            fields["output_tail"] = text.splitlines()[-_OUTPUT_TAIL:]
        except Exception:  # noqa: BLE001 - best effort: the failure is recorded with what could be read
            logger.debug("could not read the output of %s before removing it", container_id[:12], exc_info=True)
        return fields

    async def _remove_quietly(self, container_id: str) -> None:
        try:
            await asyncio.shield(self.runtime.remove(container_id))
        except Exception:  # noqa: BLE001 - best effort during rollback; the monitor reaps leftovers
            logger.warning("could not remove container %s during rollback", container_id[:12], exc_info=True)
