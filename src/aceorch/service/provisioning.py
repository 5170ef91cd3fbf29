"""Provisioning as the API and the loops ask for it: engine starts, generic containers, scaling and the idle sweep.

The :class:`~aceorch.control.provisioner.Provisioner` decides and performs each engine start; this component runs
starts in their own tasks, counts them in the metrics and the stress monitor, and sizes the pool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx

from aceorch.aiokits import poll_until, spawn
from aceorch.config import Settings
from aceorch.control import autoscaler
from aceorch.control.admission import GateState, ProvisionRequest, blocked_error, decide_admission, failed
from aceorch.control.breaker import CircuitBreaker
from aceorch.control.ports import PortAllocator
from aceorch.control.provisioner import Provisioner
from aceorch.control.vpn import VpnMonitor
from aceorch.control.vpn_pool import VpnPool
from aceorch.debuglog.stress import StressMonitor
from aceorch.errors import (
    ImageMissing,
    ImageNotFound,
    ImageUnavailable,
    InputRejected,
    NameConflict,
    PortInUse,
    PortUnavailable,
    ProvisioningBlocked,
    ProvisioningError,
    ProvisioningFailed,
    RuntimeFailure,
    RuntimeUnsupported,
    SpecRefused,
)
from aceorch.models import Engine, utcnow
from aceorch.runtime.base import ContainerInfo, ContainerSpec, Runtime
from aceorch.service.fleet import Fleet
from aceorch.service.liveness import Liveness
from aceorch.service.metrics import Metrics
from aceorch.service.streams import Streams
from aceorch.service.timed import Recorder

__all__ = ["Provisioning"]

logger = logging.getLogger(__name__)

#: Codes of a start refused by a gate: counted as blocked, not as failed.
BLOCKED_CODES = ("runtime_unavailable", "vpn_disconnected", "circuit_breaker", "max_capacity")
#: Codes of a start refused for its request: not a sign of stress.
REQUEST_CODES = ("port_conflict", "image_not_found", "rejected_input", "unsupported_runtime")


class Provisioning:
    """Engine and generic container starts, ``/scale`` and ``/gc``."""

    def __init__(
        self,
        settings: Settings,
        *,
        runtime: Runtime,
        fleet: Fleet,
        streams: Streams,
        liveness: Liveness,
        breakers: Mapping[str, CircuitBreaker],
        ports: PortAllocator,
        vpn: VpnMonitor | VpnPool,
        http: httpx.AsyncClient,
        metrics: Metrics,
        stress: StressMonitor,
        record: Recorder,
        in_container: bool,
    ) -> None:
        self.settings = settings
        self._runtime = runtime
        self._fleet = fleet
        self._streams = streams
        self._liveness = liveness
        self._ports = ports
        self._metrics = metrics
        self._stress = stress
        self._record = record
        self._tasks: set[asyncio.Task[Any]] = set()
        pool = VpnPool.of(vpn)
        self.provisioner = Provisioner(
            settings,
            runtime=runtime,
            fleet=fleet,
            breakers=breakers,
            ports=ports,
            http=http,
            record=record,
            on_finished=self._finished,
            vpn_gate=lambda: (pool.connected, pool.forwarded_port),
            vpn_pool=pool,
            runtime_ok=liveness.runtime_answers,
            in_container=in_container,
            on_runtime_lost=liveness.runtime_lost,
        )

    @property
    def in_flight(self) -> int:
        """Admitted engine starts not yet in the fleet."""
        return self.provisioner.in_flight

    def gate_state(self, source: str = "api", *, runtime_ok: bool) -> GateState:
        """What admission sees now."""
        return self.provisioner.gate_state(source, runtime_ok=runtime_ok)

    def pending_tasks(self) -> list[asyncio.Task[Any]]:
        """Starts still running (for shutdown)."""
        return list(self._tasks)

    def _finished(
        self, operation: str, success: bool, duration_ms: float, container_id: str | None, code: str | None
    ) -> None:
        kind = "acestream" if operation == "start_acestream" else "generic"
        if success:
            self._metrics.provision_duration.labels(kind=kind).observe(duration_ms / 1000)
            self._stress.capacity_ok()
        elif code in BLOCKED_CODES:
            self._metrics.provision_blocked.labels(code=code).inc()
            if code == "max_capacity":
                self._stress.provision_blocked(
                    code=code, limit=self.settings.pool.max_replicas, running=self._fleet.engine_count()
                )
            return
        else:
            self._metrics.provision_failures.labels(kind=kind, code=code or "general_error").inc()
        if code not in REQUEST_CODES:
            self._stress.provision_finished(
                operation=f"{operation}_{'success' if success else 'failed'}",
                success=success,
                duration_ms=duration_ms,
                container_id=container_id,
                reason=code,
            )

    # -- engines ------------------------------------------------------------------------------------------
    async def provision(self, req: ProvisionRequest) -> tuple[Engine, float]:
        """Provision one engine. The start runs in its own task: a client that leaves does not cancel it."""
        task = spawn(self.provisioner.provision(req), name="provision", tasks=self._tasks)
        try:
            result: tuple[Engine, float] = await asyncio.shield(task)
        except ProvisioningFailed:  # admitted, then failed: still an admitted start
            self._metrics.provision_total.labels(kind="acestream").inc()
            raise
        self._metrics.provision_total.labels(kind="acestream").inc()
        return result

    async def provision_quietly(self, source: str) -> Engine | None:
        """Start one engine for a loop (autoscaler, replacement); a failure is never raised.

        The failure's service log line comes from its debug record (see :mod:`aceorch.service.story`).
        """
        try:
            engine, _ = await self.provision(ProvisionRequest(source=source))
            return engine
        except ProvisioningError:
            return None

    async def check_image(self) -> bool:
        """At start: whether TARGET_IMAGE is present; if not, one WARNING line that says how to get it."""
        image = self.settings.runtime.target_image
        try:
            if await self._runtime.image_exists(image):
                return True
        except RuntimeFailure:
            return True  # the runtime's own trouble is reported by the liveness checks
        simulator = image.startswith(("aceorch/engine-sim", "aceorch/gluetun-sim"))
        how = "build it with scripts/build-images.sh" if simulator else f"pull it with `docker pull {image}`"
        logger.warning(
            "TARGET_IMAGE %s is not present locally: %s. Until then each engine start tries to pull it and fails "
            "with image_not_found if no registry has it", image, how,
        )
        return False

    def admits(self, source: str) -> bool:
        """Every gate is open for a start asked for by ``source`` (as of the runtime's last ping)."""
        return decide_admission(self.gate_state(source, runtime_ok=self._liveness.runtime_ok)) is None

    # -- generic containers -------------------------------------------------------------------------------
    async def provision_generic(
        self, *, image: str | None, env: dict[str, str], labels: dict[str, str], ports: dict[str, int | None],
        name_prefix: str, request_id: str | None,
    ) -> dict[str, str]:
        """Start a generic (non-engine) managed container; its id and name."""
        begin = time.perf_counter()
        image = image or self.settings.runtime.target_image
        self._record("provisioning", operation="start_container_begin", image=image, labels=labels,
                     custom_env=bool(env))

        def fail(err: ProvisioningError) -> ProvisioningError:
            duration = (time.perf_counter() - begin) * 1000
            self._record("provisioning", operation="start_container_failed", error=err.message, reason=err.reason,
                         code=err.code, duration_ms=duration, success=False)
            self._finished("start_container", False, duration, None, err.code)
            return err

        if self._runtime.name == "process":
            raise fail(RuntimeUnsupported("Generic containers need the Docker runtime"))
        if not await self._liveness.check_runtime():
            raise fail(blocked_error("runtime_unavailable", self.gate_state(runtime_ok=False)))
        host_ports = [p for p in ports.values() if p is not None]
        for p in host_ports:
            if not self._ports.is_free(p):
                raise fail(PortInUse(f"Port conflict: port {p} is already in use"))
        if image != self.settings.runtime.target_image and not await self._runtime.image_exists(image):
            raise fail(ImageMissing(f"Image {image!r} is not present locally"))
        key, value = self.settings.label_pair
        all_labels = dict(labels)
        all_labels.update({key: value, "aceorch.kind": "generic", "aceorch.request_id": request_id or ""})
        existing = {c.name for c in await self._runtime.list({key: value})}
        n = 1 + max([int(x.rsplit("-", 1)[1]) for x in existing
                     if x.startswith(name_prefix + "-") and x.rsplit("-", 1)[1].isdigit()] or [0])
        self._ports.mark(host_ports)
        info: ContainerInfo | None = None
        try:
            for _ in range(5):
                spec = ContainerSpec(name=f"{name_prefix}-{n}", image=image, env=env, labels=all_labels,
                                     ports=ports, network=self.settings.runtime.docker_network)
                try:
                    info = await self._runtime.create(spec)
                    break
                except NameConflict:
                    n += 1
            if info is None:
                raise failed("no free container name", "docker_error")
            container_id = info.id

            async def running() -> bool:
                return (await self._runtime.inspect(container_id)).running

            if not await poll_until(running, timeout=self.settings.runtime.startup_timeout_s, interval=0.2):
                raise failed("container not running in time", "startup_timeout")
        except BaseException as exc:
            if info is not None:
                try:
                    await self._runtime.remove(info.id)
                except RuntimeFailure:
                    pass
            self._ports.release(host_ports)
            if isinstance(exc, ProvisioningError):
                raise fail(exc) from None
            if isinstance(exc, ImageNotFound):
                raise fail(ImageUnavailable(str(exc))) from None
            if isinstance(exc, PortUnavailable):
                raise fail(PortInUse(f"Port conflict: {exc}")) from None
            if isinstance(exc, SpecRefused):
                raise fail(InputRejected(f"the runtime refused the request's input: {exc}")) from None
            if isinstance(exc, RuntimeFailure):
                raise fail(failed(str(exc), "docker_error")) from None
            raise
        duration = (time.perf_counter() - begin) * 1000
        self._record("provisioning", operation="start_container_success", container_id=info.id,
                     container_name=info.name, duration_ms=duration, success=True)
        self._metrics.provision_total.labels(kind="generic").inc()
        self._finished("start_container", True, duration, info.id, None)
        return {"container_id": info.id, "container_name": info.name}

    # -- the pool -----------------------------------------------------------------------------------------
    async def scale(self, demand: int, request_id: str | None) -> dict[str, Any]:
        """Scale to ``min(max(MIN_REPLICAS, demand), MAX_REPLICAS)`` engines; engines with streams stay."""
        s = self.settings
        target = min(max(s.pool.min_replicas, demand), s.pool.max_replicas)
        if s.vpn_enabled:
            target = min(target, s.pool.max_active_replicas)
        have = self._fleet.engine_count() + self.in_flight
        started: list[str] = []
        stopped: list[str] = []
        failed_n = 0
        deferred = 0
        if target > have:
            n = target - have
            results = await asyncio.gather(
                *(self.provision(ProvisionRequest(source="scale", request_id=request_id)) for _ in range(n)),
                return_exceptions=True,
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            for r in results:
                if not isinstance(r, BaseException):
                    started.append(r[0].container_id)
            if errors and not started:
                first = errors[0]
                if isinstance(first, ProvisioningBlocked):
                    raise first
            failed_n = len(errors)
        elif target < self._fleet.engine_count():
            victims = autoscaler.idle_victims(
                self._fleet.engines(), now=utcnow(), idle_for_s=0, min_replicas=target, min_free=0, force=True,
            )
            for cid in victims:
                if await self._fleet.stop_engine(cid, "scale_down"):
                    stopped.append(cid)
            deferred = max(0, self._fleet.engine_count() - target)  # engines with started streams are never stopped
        return {"scaled_to": target, "requested": demand, "started": started, "stopped": stopped,
                "failed": failed_n, "deferred": deferred}

    async def gc(self) -> dict[str, Any]:
        """The idle sweep now: stop engines idle for IDLE_TTL_S above the floors, prune streams, reconcile."""
        s = self.settings
        stopped: list[str] = []
        if s.pool.idle_ttl_s > 0:
            for cid in autoscaler.idle_victims(
                self._fleet.engines(), now=utcnow(), idle_for_s=s.pool.idle_ttl_s,
                min_replicas=s.pool.min_replicas, min_free=s.pool.min_free_replicas,
            ):
                if await self._fleet.stop_engine(cid, "idle"):
                    stopped.append(cid)
        pruned = await self._streams.prune()
        if await self._liveness.check_runtime():
            await self._fleet.reconcile()
        return {"status": "ok", "stopped": stopped, "pruned_streams": pruned}
