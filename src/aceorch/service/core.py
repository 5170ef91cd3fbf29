"""The Service owns everything: runtime, store, debug log, breakers, the control loops and the in-memory state.

The API reads state from memory (never from the runtime on the request path) and asks the service to act.
Loops are started in a fixed order by :meth:`Service.start` and stopped, within 2 s, by :meth:`Service.aclose`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from aceorch import __version__
from aceorch.aiokits import create_guarded_task, sleep_or_stop, spawn, stop_tasks
from aceorch.config import Settings
from aceorch.control import autoscaler, health
from aceorch.control.breaker import BreakerState, CircuitBreaker
from aceorch.control.ports import PortAllocator, ports_from_labels
from aceorch.control.provisioner import (
    ENGINE_NAME,
    Provisioner,
    ProvisionRequest,
    advertised_address,
    blocked_error,
    decide_admission,
    engine_ready,
    rejected,
    running_in_container,
)
from aceorch.control.vpn import VpnMonitor
from aceorch.debuglog.stress import StressMonitor
from aceorch.debuglog.writer import DebugLog
from aceorch.errors import (
    ContainerNotFound,
    ImageNotFound,
    NameConflict,
    PortUnavailable,
    ProvisioningError,
    RuntimeFailure,
)
from aceorch.models import Engine, HealthStatus, StatSnapshot, Stream, format_time, utcnow
from aceorch.runtime.base import ContainerInfo, ContainerSpec, Runtime
from aceorch.service.metrics import Metrics
from aceorch.service.timed import TimedRuntime, TimedTransport
from aceorch.store.base import Store

__all__ = ["Service"]

logger = logging.getLogger(__name__)

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
BREAKER_GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


def _published_ports(info: ContainerInfo) -> list[int]:
    """Host ports a container publishes (generic containers have no port labels)."""
    out: list[int] = []
    for binds in info.ports.values():
        for bind in binds or ():
            port = bind.get("HostPort", "")
            if port.isdigit():
                out.append(int(port))
    return out


class Service:
    def __init__(self, settings: Settings, *, runtime: Runtime, store: Store, debuglog: DebugLog) -> None:
        self.settings = settings
        self.debuglog = debuglog
        self.metrics = Metrics()
        self.stress = StressMonitor(debuglog, settings, on_event=self._on_stress)
        self.runtime: Runtime = TimedRuntime(runtime, self.record)
        self.store = store
        self.http = httpx.AsyncClient(transport=TimedTransport(self.record), timeout=3.0)
        self.engines: dict[str, Engine] = {}
        self.streams: dict[str, Stream] = {}
        self.stats: dict[str, deque[StatSnapshot]] = {}
        self.ports = PortAllocator()
        self.breakers = {
            "general": CircuitBreaker(
                "general",
                failure_threshold=settings.circuit_breaker_failure_threshold,
                recovery_timeout=settings.circuit_breaker_recovery_timeout_s,
                trial_eta=settings.startup_timeout_s,
                on_transition=self._on_breaker,
            ),
            "replacement": CircuitBreaker(
                "replacement",
                failure_threshold=settings.circuit_breaker_replacement_threshold,
                recovery_timeout=settings.circuit_breaker_replacement_timeout_s,
                trial_eta=settings.startup_timeout_s,
                on_transition=self._on_breaker,
            ),
        }
        self.in_container = running_in_container()
        self.vpn = VpnMonitor(settings, runtime=self.runtime, http=self.http)
        self.provisioner = Provisioner(
            settings,
            runtime=self.runtime,
            fleet=self,
            breakers=self.breakers,
            ports=self.ports,
            http=self.http,
            record=self.record,
            on_finished=self._on_provision_finished,
            vpn_gate=lambda: (self.vpn.connected, self.vpn.forwarded_port),
            runtime_ok=self._runtime_ok_live,
            in_container=self.in_container,
            on_runtime_lost=self._runtime_lost,
        )
        self.started = False
        self.runtime_ok = False
        self.runtime_checked_at = 0.0
        self.database_ok = False
        self.streams_total_started = 0
        self._stop = asyncio.Event()
        self._wake_monitor = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping: set[str] = set()
        self._grace_timers: dict[str, asyncio.Task[Any]] = {}
        self._replaced: set[str] = set()
        self._last_replacement_at: datetime | None = None
        self._vpn_recovered_at: datetime | None = None
        self._vpn_down_since: datetime | None = None
        self._max_lag_s = 0.0
        self._adopting: set[str] = set()
        self._adopt_tasks: set[asyncio.Task[Any]] = set()

    # -- records and hooks --------------------------------------------------------------------------------
    def record(self, category: str, **fields: Any) -> None:
        self.debuglog.log(category, **fields)

    def _on_stress(self, event: dict[str, Any]) -> None:
        self.metrics.stress_events.labels(
            event_type=str(event.get("event_type")), severity=str(event.get("severity"))
        ).inc()

    def _on_breaker(self, name: str, old: BreakerState, new: BreakerState, breaker: CircuitBreaker) -> None:
        self.metrics.breaker_state.labels(name=name).set(BREAKER_GAUGE[new])
        self.record(
            "circuit_breaker",
            operation="transition",
            operation_type=name,
            **{"from": old.value, "to": new.value},
            failure_count=breaker.failure_count,
            threshold=breaker.failure_threshold,
        )
        self.stress.breaker_transition(
            operation_type=name,
            old=old.value,
            new=new.value,
            failure_count=breaker.failure_count,
            threshold=breaker.failure_threshold,
        )

    def _on_provision_finished(
        self, operation: str, success: bool, duration_ms: float, container_id: str | None, code: str | None
    ) -> None:
        kind = "acestream" if operation == "start_acestream" else "generic"
        if success:
            self.metrics.provision_duration.labels(kind=kind).observe(duration_ms / 1000)
            self.stress.capacity_ok()
        elif code in ("runtime_unavailable", "vpn_disconnected", "circuit_breaker", "max_capacity"):
            self.metrics.provision_blocked.labels(code=code).inc()
            if code == "max_capacity":
                self.stress.provision_blocked(
                    code=code, limit=self.settings.max_replicas, running=len(self.engines)
                )
            return
        else:
            self.metrics.provision_failures.labels(kind=kind, code=code or "general_error").inc()
        if code not in ("port_conflict", "image_not_found", "unsupported_runtime"):
            self.stress.provision_finished(
                operation=f"{operation}_{'success' if success else 'failed'}",
                success=success,
                duration_ms=duration_ms,
                container_id=container_id,
                reason=code,
            )

    # -- Fleet protocol (for the provisioner) ---------------------------------------------------------------
    def engine_count(self) -> int:
        return len(self.engines)

    def engine_names(self) -> set[str]:
        return {e.container_name for e in self.engines.values()}

    def p2p_holder(self) -> str | None:
        for engine in self.engines.values():
            if engine.p2p_port is not None:
                return engine.container_id
        return None

    async def register(self, engine: Engine, info: ContainerInfo) -> None:
        engine.first_seen = engine.last_seen = engine.created_at = utcnow()
        self.engines[engine.container_id] = engine
        self._update_engine_gauges()
        await self._save_engine(engine)

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start order: store, debug session, adoption, VPN wait, minimum pool, then the loops."""
        self.debuglog.set_runtime_name(self.runtime.name)
        await asyncio.to_thread(self.debuglog.start_from_env)  # creates the folder and files: off the loop
        if not self.settings.api_key_value():
            logger.warning(
                "API_KEY is not set: every endpoint, including provisioning and container deletion, "
                "is open to anyone who can reach %s:%s",
                self.settings.app_host,
                self.settings.app_port,
            )
        try:
            await self.store.open()
            self.database_ok = True
            for stream in await self.store.load_streams():
                self.streams[stream.id] = stream
                self.stats[stream.id] = deque(maxlen=self.settings.stats_history_max)
            self.streams_total_started = len(self.streams)
        except Exception:
            logger.exception("the store could not be opened; streams are kept in memory only")
        await self._check_runtime()
        if self.runtime_ok:
            await self.reconcile(initial=True)
        s = self.settings
        loops = [
            ("runtime monitor", self._monitor_once, lambda: 0.0),  # waits inside, woken by events
            ("runtime events", self._follow_events, lambda: 1.0),
            ("health prober", self._health_once, lambda: float(s.health_check_interval_s)),
            ("stats collector", self._collect_once, lambda: float(s.collect_interval_s)),
            ("loop lag", self._lag_once, lambda: 0.0),
        ]
        if s.vpn_enabled:
            loops.insert(0, ("vpn monitor", self._vpn_once, lambda: float(s.gluetun_health_check_interval_s)))
        for name, body, interval in loops:
            self._loops.append(create_guarded_task(name, body, stop=self._stop, interval=interval,
                                                   on_error=self._loop_error(name)))
        spawn(self._startup_pool(), name="startup pool", tasks=self._tasks)

    def _loop_error(self, name: str) -> Any:
        def report(exc: BaseException) -> None:
            self.record(
                "errors",
                component=name,
                operation="loop",
                error_type=type(exc).__name__,
                error_message=str(exc),
                traceback="".join(__import__("traceback").format_exception(exc)),
            )

        return report

    async def _startup_pool(self) -> None:
        s = self.settings
        if s.vpn_enabled:
            deadline = time.monotonic() + s.gluetun_startup_wait_s
            while not self.vpn.connected and time.monotonic() < deadline:
                if await sleep_or_stop(self._stop, 0.5):
                    return
            if not self.vpn.connected:
                logger.warning(
                    "the VPN did not become healthy within GLUETUN_STARTUP_WAIT_S (%ss); continuing",
                    s.gluetun_startup_wait_s,
                )
        if self._adopt_tasks:
            await asyncio.wait(list(self._adopt_tasks))
        self.started = True
        self._loops.append(
            create_guarded_task(
                "autoscaler", self._autoscale_once, stop=self._stop,
                interval=lambda: float(s.autoscale_interval_s), on_error=self._loop_error("autoscaler"),
            )
        )

    async def aclose(self) -> None:
        self._stop.set()
        for timer in self._grace_timers.values():
            timer.cancel()
        await stop_tasks(self._loops, timeout=1.5)
        await stop_tasks(list(self._tasks) + list(self._adopt_tasks), timeout=0.5)
        await self.http.aclose()
        try:
            await self.store.aclose()
        except Exception:  # noqa: BLE001
            logger.warning("store close failed", exc_info=True)
        await asyncio.to_thread(self.debuglog.close)
        await self.runtime.aclose()

    # -- runtime state -----------------------------------------------------------------------------------
    async def _check_runtime(self) -> bool:
        try:
            await asyncio.wait_for(self.runtime.ping(), timeout=2.0)
        except (RuntimeFailure, TimeoutError, OSError):
            if self.runtime_ok:
                logger.error("the container runtime (%s) stopped answering", self.runtime.name)
                self.record("errors", component="runtime", operation="ping", error_type="RuntimeUnavailable",
                            error_message="container runtime unavailable", traceback=None)
            self.runtime_ok = False
            return False
        if not self.runtime_ok and self.runtime_checked_at:
            logger.info("the container runtime (%s) answers again", self.runtime.name)
        self.runtime_ok = True
        self.runtime_checked_at = time.monotonic()
        return True

    def _runtime_lost(self) -> None:
        self.runtime_ok = False

    async def _runtime_ok_live(self) -> bool:
        """Admission step 3: a runtime that answered within the last second is not pinged again."""
        if self.runtime_ok and time.monotonic() - self.runtime_checked_at < 1.0:
            return True
        return await self._check_runtime()

    def runtime_fresh(self) -> bool:
        return self.runtime_ok and time.monotonic() - self.runtime_checked_at <= self.settings.monitor_interval_s + 2

    def _managed(self, info: ContainerInfo) -> bool:
        key, value = self.settings.label_pair
        return info.labels.get(key) == value

    def _is_engine(self, info: ContainerInfo) -> bool:
        kind = info.labels.get("aceorch.kind")
        return kind == "engine" or (kind is None and bool(ENGINE_NAME.match(info.name)))

    def _engine_from_info(self, info: ContainerInfo) -> Engine | None:
        ports = ports_from_labels(info.labels)
        c_http, h_http = ports["container_http"], ports["host_http"]
        if c_http is None or h_http is None:
            return None
        host, port = advertised_address(
            self.settings, container_name=info.name, host_port=h_http, container_port=c_http,
            in_container=self.in_container, runtime_kind=self.runtime.name,
        )
        p2p = info.labels.get("aceorch.p2p_port")
        return Engine(
            container_id=info.id,
            container_name=info.name,
            host=host,
            port=port,
            host_http_port=h_http,
            container_http_port=c_http,
            container_https_port=ports["container_https"],
            host_https_port=ports["host_https"],
            labels=dict(info.labels),
            first_seen=info.created,
            created_at=info.started_at or info.created,
            p2p_port=int(p2p) if p2p and p2p.isdigit() else None,
        )

    async def reconcile(self, *, initial: bool = False) -> None:
        """Make the state equal the runtime: adopt running managed engines, reap dead ones, rebuild ports."""
        key, value = self.settings.label_pair
        listed_at = utcnow()
        containers = await self.runtime.list({key: value})
        in_flight_names = self.provisioner._reserved_names  # noqa: SLF001 - same service
        seen: set[str] = set()
        ports: list[int | None] = []
        stored = {e.container_id: e for e in await self._load_stored_engines()} if initial else {}
        for info in containers:
            # Every managed container keeps its ports, running or not: a stopped one may be restarted by Docker.
            ports.extend(ports_from_labels(info.labels).values())
            ports.extend(_published_ports(info))
            if info.name in in_flight_names or info.id in self._stopping:
                continue
            if not info.running:
                # Half-created or exited leftovers are reaped at start only (config.md CONTAINER_LABEL). At run
                # time a container that stops (a daemon restart, a crash under a restart policy) is left to
                # Docker; its engine leaves the state below and is adopted again once it answers.
                if initial and info.status != "restarting":
                    await self._reap(info, "exited")
                continue
            if not self._is_engine(info):
                continue
            seen.add(info.id)
            engine = self.engines.get(info.id)
            if engine is None:
                if info.id not in self._adopting:
                    self._adopting.add(info.id)
                    spawn(self._adopt_when_ready(info, stored.get(info.id)), name=f"adopt {info.name}",
                          tasks=self._adopt_tasks)
                continue
            engine.running = True
            engine.last_seen = utcnow()
        for cid in list(self.engines):
            if cid not in seen and cid not in self._stopping and cid not in self._adopting:
                if self.engines[cid].created_at >= listed_at:
                    continue  # registered while the list was on its way: not in it, yet not gone
                engine = self.engines.pop(cid)
                logger.info("engine %s vanished", engine.container_name)
                self.record("provisioning", operation="engine_vanished", container_id=cid,
                            container_name=engine.container_name)
                await self._end_streams_of(cid, "engine_removed")
                await self._delete_stored(cid)
        # Starts in flight have their ports reserved by the provisioner; keep them.
        reserved_now = set(self.ports.taken)
        keep = set(p for p in ports if p is not None)
        for engine in self.engines.values():
            keep.update(p for p in (engine.host_http_port, engine.container_http_port,
                                    engine.container_https_port, engine.host_https_port) if p)
        if self.provisioner.in_flight:
            keep |= reserved_now
        self.ports.reset(keep)
        if initial:
            for cid in stored:
                if cid not in self.engines:
                    await self._delete_stored(cid)
        self._update_engine_gauges()

    async def _adopt_when_ready(self, info: ContainerInfo, stored: Engine | None) -> None:
        """Adopt a running managed engine once its API answers; remove it if it never does in time."""
        try:
            engine = self._engine_from_info(info)
            if engine is None:
                await self._reap(info, "unlabelled")
                return
            # Our own clock only: the runtime's clock may differ from ours.
            deadline = time.monotonic() + self.settings.startup_timeout_s
            while not await engine_ready(self.http, engine.host, engine.port, timeout=2.0):
                if time.monotonic() >= deadline or self._stop.is_set():
                    if not self._stop.is_set():
                        await self._reap(info, "never became ready")
                    return
                await asyncio.sleep(0.2)
            engine.created_at = utcnow()
            if stored is not None:
                engine.first_seen = stored.first_seen
                engine.last_stream_usage = stored.last_stream_usage
            engine.streams = [
                s.id for s in self.streams.values() if s.status == "started" and s.container_id == info.id
            ]
            self.engines[info.id] = engine
            self.record("provisioning", operation="adopt_engine", container_id=info.id,
                        container_name=info.name, host_http_port=engine.host_http_port, success=True)
            logger.info("adopted running engine %s (%s)", info.name, info.id[:12])
            self._update_engine_gauges()
            await self._save_engine(engine)
        finally:
            self._adopting.discard(info.id)

    async def _reap(self, info: ContainerInfo, why: str) -> None:
        try:
            await self.runtime.remove(info.id)
            logger.info("removed %s container %s (%s)", why, info.name, info.id[:12])
            self.record("provisioning", operation="reap_container", container_id=info.id,
                        container_name=info.name, reason=why, success=True)
        except ContainerNotFound:
            pass
        except RuntimeFailure as exc:
            logger.warning("could not remove %s: %s", info.name, exc)

    async def _load_stored_engines(self) -> list[Engine]:
        try:
            return await self.store.load_engines()
        except Exception:  # noqa: BLE001
            logger.warning("could not load engines from the store", exc_info=True)
            return []

    async def _save_engine(self, engine: Engine) -> None:
        try:
            await self.store.save_engine(engine)
        except Exception:  # noqa: BLE001
            logger.warning("could not save engine %s", engine.container_name, exc_info=True)

    async def _delete_stored(self, cid: str) -> None:
        try:
            await self.store.delete_engine(cid)
        except Exception:  # noqa: BLE001
            logger.warning("could not delete engine %s from the store", cid[:12], exc_info=True)

    async def _monitor_once(self) -> None:
        self._wake_monitor.clear()
        try:
            await self.store.ping()
            self.database_ok = True
        except Exception:  # noqa: BLE001
            self.database_ok = False
        if await self._check_runtime():
            await self.reconcile()
        self.metrics.debug_written.set(self.debuglog.entries_written)
        self.metrics.debug_dropped.set(self.debuglog.entries_dropped)
        # Wake early when an event says a managed container died (or when stopping).
        waiters = [asyncio.ensure_future(self._wake_monitor.wait()), asyncio.ensure_future(self._stop.wait())]
        await asyncio.wait(waiters, timeout=self.settings.monitor_interval_s, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()

    async def _follow_events(self) -> None:
        follow = asyncio.ensure_future(self._consume_events())
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait([follow, stop], return_when=asyncio.FIRST_COMPLETED)
        for task in (follow, stop):
            task.cancel()

    async def _consume_events(self) -> None:
        key, value = self.settings.label_pair
        try:
            async for event in self.runtime.events():
                if self._stop.is_set():
                    return
                if event.labels.get(key) == value and event.action in ("die", "destroy", "stop"):
                    if event.container_id in self.engines and event.container_id not in self._stopping:
                        self._wake_monitor.set()
        except RuntimeFailure:
            await sleep_or_stop(self._stop, 2.0)

    async def _lag_once(self) -> None:
        begin = time.perf_counter()
        await asyncio.sleep(0.25)
        lag_ms = max(0.0, (time.perf_counter() - begin - 0.25) * 1000)
        if lag_ms / 1000 > self._max_lag_s:
            self._max_lag_s = lag_ms / 1000
            self.metrics.loop_lag_max.set(self._max_lag_s)
        self.stress.loop_lag(lag_ms)

    # -- provisioning ------------------------------------------------------------------------------------
    async def provision(self, req: ProvisionRequest) -> tuple[Engine, float]:
        """Provision one engine. The start runs in its own task: a client that leaves does not cancel it."""
        task = spawn(self.provisioner.provision(req), name="provision", tasks=self._tasks)
        try:
            result: tuple[Engine, float] = await asyncio.shield(task)
        except ProvisioningError as exc:
            if exc.error == "provisioning_failed":  # admitted, then failed: still an admitted start
                self.metrics.provision_total.labels(kind="acestream").inc()
            raise
        self.metrics.provision_total.labels(kind="acestream").inc()
        return result

    async def provision_generic(
        self, *, image: str | None, env: dict[str, str], labels: dict[str, str], ports: dict[str, int | None],
        name_prefix: str, request_id: str | None,
    ) -> dict[str, str]:
        begin = time.perf_counter()
        image = image or self.settings.target_image
        self.record("provisioning", operation="start_container_begin", image=image, labels=labels,
                    custom_env=bool(env))

        def fail(err: ProvisioningError) -> ProvisioningError:
            duration = (time.perf_counter() - begin) * 1000
            self.record("provisioning", operation="start_container_failed", error=err.message, reason=err.reason,
                        code=err.code, duration_ms=duration, success=False)
            self._on_provision_finished("start_container", False, duration, None, err.code)
            return err

        if self.runtime.name == "process":
            raise fail(rejected("unsupported_runtime", "Generic containers need the Docker runtime", 409))
        if not await self._check_runtime():
            gate = self.provisioner.gate_state(runtime_ok=False)
            raise fail(blocked_error("runtime_unavailable", gate))
        host_ports = [p for p in ports.values() if p is not None]
        for p in host_ports:
            if not self.ports.is_free(p):
                raise fail(rejected("port_conflict", f"Port conflict: port {p} is already in use", 409))
        if image != self.settings.target_image and not await self.runtime.image_exists(image):
            raise fail(rejected("image_not_found", f"Image {image!r} is not present locally", 400))
        key, value = self.settings.label_pair
        all_labels = dict(labels)
        all_labels.update({key: value, "aceorch.kind": "generic", "aceorch.request_id": request_id or ""})
        existing = {c.name for c in await self.runtime.list({key: value})}
        n = 1 + max([int(x.rsplit("-", 1)[1]) for x in existing
                     if x.startswith(name_prefix + "-") and x.rsplit("-", 1)[1].isdigit()] or [0])
        self.ports.mark(host_ports)
        info: ContainerInfo | None = None
        try:
            for _ in range(5):
                spec = ContainerSpec(name=f"{name_prefix}-{n}", image=image, env=env, labels=all_labels,
                                     ports=ports, network=self.settings.docker_network)
                try:
                    info = await self.runtime.create(spec)
                    break
                except NameConflict:
                    n += 1
            if info is None:
                raise ProvisioningError(status=500, error="provisioning_failed", code="general_error",
                                        message="Failed to provision engine: no free container name",
                                        reason="docker_error")
            deadline = time.monotonic() + self.settings.startup_timeout_s
            while not (await self.runtime.inspect(info.id)).running:
                if time.monotonic() > deadline:
                    raise ProvisioningError(status=500, error="provisioning_failed", code="general_error",
                                            message="Failed to provision engine: container not running in time",
                                            reason="startup_timeout")
                await asyncio.sleep(0.2)
        except BaseException as exc:
            if info is not None:
                try:
                    await self.runtime.remove(info.id)
                except RuntimeFailure:
                    pass
            self.ports.release(host_ports)
            if isinstance(exc, ProvisioningError):
                raise fail(exc) from None
            if isinstance(exc, ImageNotFound):
                raise fail(ProvisioningError(status=500, error="provisioning_failed", code="general_error",
                                             message=f"Failed to provision engine: {exc}",
                                             reason="image_not_found")) from None
            if isinstance(exc, PortUnavailable):
                raise fail(rejected("port_conflict", f"Port conflict: {exc}", 409)) from None
            if isinstance(exc, RuntimeFailure):
                raise fail(ProvisioningError(status=500, error="provisioning_failed", code="general_error",
                                             message=f"Failed to provision engine: {exc}",
                                             reason="docker_error")) from None
            raise
        duration = (time.perf_counter() - begin) * 1000
        self.record("provisioning", operation="start_container_success", container_id=info.id,
                    container_name=info.name, duration_ms=duration, success=True)
        self.metrics.provision_total.labels(kind="generic").inc()
        self._on_provision_finished("start_container", True, duration, info.id, None)
        return {"container_id": info.id, "container_name": info.name}

    async def stop_engine(self, container_id: str, reason: str, *, end_reason: str = "engine_removed") -> bool:
        """Stop and remove an engine; its streams end. Returns False if it was already gone."""
        engine = self.engines.get(container_id)
        if container_id in self._stopping:
            return False
        self._stopping.add(container_id)
        begin = time.perf_counter()
        name = engine.container_name if engine else None
        self.record("provisioning", operation="stop_engine_begin", container_id=container_id,
                    container_name=name, reason=reason)
        try:
            if engine is not None:
                self.engines.pop(container_id, None)
                await self._end_streams_of(container_id, end_reason)
            timer = self._grace_timers.pop(container_id, None)
            if timer is not None and timer is not asyncio.current_task():
                timer.cancel()
            try:
                await self.runtime.stop(container_id, timeout=10)
            except ContainerNotFound:
                pass
            try:
                await self.runtime.remove(container_id)
            except ContainerNotFound:
                pass
        except RuntimeFailure as exc:
            self.record("provisioning", operation="stop_engine_failed", container_id=container_id,
                        container_name=name, reason=reason, error=str(exc),
                        duration_ms=(time.perf_counter() - begin) * 1000, success=False)
            self._stopping.discard(container_id)
            raise
        if engine is not None:
            self.ports.release([engine.host_http_port, engine.container_http_port,
                                engine.container_https_port, engine.host_https_port])
            await self._delete_stored(container_id)
        self._stopping.discard(container_id)
        self._replaced.discard(container_id)
        self._update_engine_gauges()
        self.record("provisioning", operation="stop_engine_success", container_id=container_id,
                    container_name=name, reason=reason, duration_ms=(time.perf_counter() - begin) * 1000,
                    success=True)
        return True

    async def find_managed(self, ident: str) -> ContainerInfo:
        """A managed container by full id, unique id prefix (≥ 12 hex) or name. Raises ContainerNotFound."""
        for engine in self.engines.values():
            if ident in (engine.container_id, engine.container_name) or (
                len(ident) >= 12 and engine.container_id.startswith(ident)
            ):
                ident = engine.container_id
                break
        info = await self.runtime.inspect(ident)
        if not self._managed(info):
            raise ContainerNotFound(ident)
        if info.id != ident and info.name != ident and not (len(ident) >= 12 and info.id.startswith(ident)):
            raise ContainerNotFound(ident)
        return info

    async def delete_container(self, ident: str) -> str:
        info = await self.find_managed(ident)
        if info.id in self.engines or self._is_engine(info):
            await self.stop_engine(info.id, "api_delete", end_reason="engine_deleted")
        else:
            try:
                await self.runtime.stop(info.id, timeout=10)
            finally:
                await self.runtime.remove(info.id)
                self.ports.release(_published_ports(info))
        return info.id

    async def by_label(self, key: str, value: str) -> list[ContainerInfo]:
        mkey, mvalue = self.settings.label_pair
        return [c for c in await self.runtime.list({mkey: mvalue}) if c.labels.get(key) == value]

    async def scale(self, demand: int, request_id: str | None) -> dict[str, Any]:
        s = self.settings
        target = min(max(s.min_replicas, demand), s.max_replicas)
        if s.vpn_enabled:
            target = min(target, s.max_active_replicas)
        have = len(self.engines) + self.provisioner.in_flight
        started: list[str] = []
        stopped: list[str] = []
        failed = 0
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
                if isinstance(first, ProvisioningError) and first.error == "provisioning_blocked":
                    raise first
            failed = len(errors)
        elif target < len(self.engines):
            victims = autoscaler.idle_victims(
                list(self.engines.values()), now=utcnow(), idle_for_s=0, min_replicas=target, min_free=0,
                force=True,
            )
            for cid in victims:
                if await self.stop_engine(cid, "scale_down"):
                    stopped.append(cid)
            deferred = max(0, len(self.engines) - target)  # engines with started streams are never stopped
        return {"scaled_to": target, "requested": demand, "started": started, "stopped": stopped,
                "failed": failed, "deferred": deferred}

    async def gc(self) -> dict[str, Any]:
        s = self.settings
        stopped: list[str] = []
        if s.idle_ttl_s > 0:
            for cid in autoscaler.idle_victims(
                list(self.engines.values()), now=utcnow(), idle_for_s=s.idle_ttl_s,
                min_replicas=s.min_replicas, min_free=s.min_free_replicas,
            ):
                if await self.stop_engine(cid, "idle"):
                    stopped.append(cid)
        pruned = await self._prune_streams()
        if await self._check_runtime():
            await self.reconcile()
        return {"status": "ok", "stopped": stopped, "pruned_streams": pruned}

    async def _prune_streams(self) -> int:
        cutoff = utcnow() - timedelta(seconds=self.settings.stream_retention_s)
        old = [sid for sid, st in self.streams.items() if st.status == "ended" and st.ended_at and st.ended_at < cutoff]
        for sid in old:
            self.streams.pop(sid, None)
            self.stats.pop(sid, None)
        try:
            await self.store.prune_streams(ended_before=cutoff)
        except Exception:  # noqa: BLE001
            logger.warning("could not prune the store", exc_info=True)
        return len(old)

    # -- autoscaler --------------------------------------------------------------------------------------
    async def _autoscale_once(self) -> None:
        s = self.settings
        decision = autoscaler.decide(
            list(self.engines.values()), in_flight=self.provisioner.in_flight, now=utcnow(),
            min_replicas=s.min_replicas, min_free=s.min_free_replicas, max_replicas=s.max_replicas,
            idle_ttl_s=s.idle_ttl_s,
        )
        action = "none"
        if decision.start:
            action = f"start {decision.start}"
        elif decision.stop:
            action = f"stop {len(decision.stop)}"
        self.record("autoscaler", operation="decision", current=decision.current, free=decision.free,
                    in_flight=decision.in_flight, target=decision.target, reason=decision.reason, action=action)
        if decision.start:
            gate = self.provisioner.gate_state("autoscaler", runtime_ok=self.runtime_ok)
            if decide_admission(gate) is not None:
                return
            await asyncio.gather(
                *(self._quiet_provision(ProvisionRequest(source="autoscaler")) for _ in range(decision.start))
            )
        for cid in decision.stop:
            await self.stop_engine(cid, "idle")
        await self._prune_streams()

    async def _quiet_provision(self, req: ProvisionRequest) -> Engine | None:
        try:
            engine, _ = await self.provision(req)
            return engine
        except ProvisioningError as exc:
            logger.warning("%s start failed: %s", req.source, exc.message)
            return None

    # -- health ------------------------------------------------------------------------------------------
    async def _probe(self, engine: Engine, sem: asyncio.Semaphore) -> bool:
        async with sem:
            return await engine_ready(self.http, engine.host, engine.port, timeout=3.0)

    async def _health_once(self) -> None:
        s = self.settings
        engines = [e for e in self.engines.values() if e.container_id not in self._stopping]
        begin = time.perf_counter()
        # Bounded parallelism: enough to sweep hundreds of engines in well under a second, few enough that
        # starting the probes never holds the event loop for long (bench P5/P7).
        sem = asyncio.Semaphore(16)
        results = await asyncio.gather(*(self._probe(e, sem) for e in engines))
        now = utcnow()
        for engine, ok in zip(engines, results, strict=True):
            old = engine.health_status
            changed = health.apply_probe(engine, ok, now, s.health_failure_threshold)
            if not ok:
                self.record("health", component="health", operation="probe_failed",
                            container_id=engine.container_id, container_name=engine.container_name,
                            consecutive_failures=engine.consecutive_failures)
            if changed is not None:
                self.record("health", component="health", operation="status_transition",
                            container_id=engine.container_id, container_name=engine.container_name,
                            **{"from": old.value, "to": changed.value})
        counts = self._health_counts()
        self.record("health", component="health", operation="health_monitor_cycle",
                    duration_ms=(time.perf_counter() - begin) * 1000, total=len(self.engines), **counts)
        self.stress.engines_health(unhealthy=counts["unhealthy"], total=len(self.engines))
        self._update_engine_gauges()
        await self._replace_unhealthy(now)

    def _health_counts(self) -> dict[str, int]:
        counts = {"healthy": 0, "unhealthy": 0, "unknown": 0}
        for e in self.engines.values():
            counts[e.health_status.value] += 1
        return counts

    async def _replace_unhealthy(self, now: datetime) -> None:
        s = self.settings
        plan = health.plan_replacements(
            list(self.engines.values()), now=now, grace_period_s=s.health_unhealthy_grace_period_s,
            cooldown_s=s.health_replacement_cooldown_s, last_replacement_at=self._last_replacement_at,
            already_replaced=self._replaced,
        )
        for cid in plan.start_for:
            engine = self.engines.get(cid)
            self.record("health", component="health", operation="replacement_decision", container_id=cid,
                        container_name=engine.container_name if engine else None, action="start_replacement")
            self._last_replacement_at = now
            self.stress.replacement_started()
            replacement = await self._quiet_provision(ProvisionRequest(source="replacement"))
            if replacement is not None:
                self._replaced.add(cid)
                if engine is not None and not engine.streams:
                    await self.stop_engine(cid, "unhealthy_replacement")
        for cid in plan.stop:
            await self.stop_engine(cid, "unhealthy_replacement")

    # -- VPN ---------------------------------------------------------------------------------------------
    async def _vpn_once(self) -> None:
        check, previous = await self.vpn.check()
        self.metrics.vpn_connected.set(1 if self.vpn.connected else 0)
        self.record("vpn", operation="health_check", status=check.status, health=check.health,
                    connected=self.vpn.connected, signal=check.signal, control_server=check.control_server,
                    forwarded_port=self.vpn.forwarded_port, duration_ms=check.duration_ms, success=True)
        now = utcnow()
        if check.health != previous:
            self.record("vpn", operation="transition", **{"from": previous, "to": check.health},
                        signal=check.signal)
            if previous == "healthy":
                self._vpn_down_since = now
                self._vpn_recovered_at = None
            if check.health == "healthy" and self._vpn_down_since is not None:
                self._vpn_recovered_at = now
        self.stress.vpn_state(connected=self.vpn.connected, signal=check.signal)
        if (
            self._vpn_recovered_at is not None
            and self.vpn.connected
            and now - self._vpn_recovered_at >= timedelta(seconds=self.settings.vpn_recovery_stabilize_s)
        ):
            recovered_at = self._vpn_recovered_at
            self._vpn_recovered_at = None
            self._vpn_down_since = None
            restarted = 0
            if self.settings.vpn_restart_engines_on_reconnect:
                restarted = await self._restart_engines_before(recovered_at)
            self.stress.vpn_engines_restarted(restarted)

    async def _restart_engines_before(self, when: datetime) -> int:
        count = 0
        for engine in list(self.engines.values()):
            if engine.created_at >= when:
                continue
            begin = time.perf_counter()
            await self._end_streams_of(engine.container_id, "vpn_recovery")
            self._stopping.add(engine.container_id)
            try:
                await self.runtime.restart(engine.container_id, timeout=5)
                deadline = time.monotonic() + self.settings.startup_timeout_s
                ok = False
                while time.monotonic() < deadline:
                    if await engine_ready(self.http, engine.host, engine.port, timeout=1.0):
                        ok = True
                        break
                    await asyncio.sleep(0.2)
                engine.created_at = utcnow()
                engine.health_status = HealthStatus.HEALTHY if ok else HealthStatus.UNKNOWN
                count += 1
                self.record("vpn", operation="engine_restart", container_id=engine.container_id,
                            container_name=engine.container_name, duration_ms=(time.perf_counter() - begin) * 1000,
                            success=ok, error=None if ok else "not ready after restart")
            except RuntimeFailure as exc:
                self.record("vpn", operation="engine_restart", container_id=engine.container_id,
                            container_name=engine.container_name, duration_ms=(time.perf_counter() - begin) * 1000,
                            success=False, error=str(exc))
            finally:
                self._stopping.discard(engine.container_id)
        return count

    # -- streams -----------------------------------------------------------------------------------------
    def _resolve_engine(self, container_id: str | None, host: str, port: int) -> Engine | None:
        if container_id:
            for e in self.engines.values():
                if container_id in (e.container_id, e.container_name):
                    return e
        norm = "127.0.0.1" if host in LOCAL_HOSTS else host
        for e in self.engines.values():
            ehost = "127.0.0.1" if e.host in LOCAL_HOSTS else e.host
            if e.port == port and (ehost == norm or host == e.container_name):
                return e
        matches = [e for e in self.engines.values() if port in (e.host_http_port, e.container_http_port)]
        return matches[0] if len(matches) == 1 else None

    async def stream_started(self, body: dict[str, Any]) -> Stream:
        eng = body["engine"]
        st = body["stream"]
        sess = body["session"]
        labels: dict[str, str] = body.get("labels") or {}
        sid = labels.get("stream_id") or f"{st['key']}|{sess['playback_session_id']}"
        engine = self._resolve_engine(body.get("container_id"), eng["host"], eng["port"])
        now = utcnow()
        existing = self.streams.get(sid)
        if existing is not None and existing.status == "started":
            if sess.get("stat_url"):
                existing.stat_url = sess["stat_url"]
            if sess.get("command_url"):
                existing.command_url = sess["command_url"]
            self.record("streams", operation="stream_started", stream_id=sid, duplicate=True,
                        container_id=existing.container_id)
            await self._save_stream(existing)
            return existing
        stream = Stream(
            id=sid, key_type=st["key_type"], key=st["key"],
            container_id=engine.container_id if engine else f"{eng['host']}:{eng['port']}",
            playback_session_id=sess["playback_session_id"], stat_url=sess.get("stat_url") or "",
            command_url=sess.get("command_url") or "", is_live=bool(sess.get("is_live", 1)), started_at=now,
            labels=labels, attached=engine is not None,
        )
        self.streams[sid] = stream
        self.stats[sid] = deque(maxlen=self.settings.stats_history_max)
        if engine is not None:
            if sid not in engine.streams:
                engine.streams.append(sid)
            engine.last_stream_usage = now
            timer = self._grace_timers.pop(engine.container_id, None)
            if timer is not None:
                timer.cancel()
            await self._save_engine(engine)
        self.streams_total_started += 1
        self.metrics.events_started.inc()
        self._update_stream_gauge()
        self.record("streams", operation="stream_started", stream_id=sid, container_id=stream.container_id,
                    attached=stream.attached, key_type=stream.key_type, restarted=existing is not None)
        await self._save_stream(stream)
        return stream

    async def stream_ended(self, container_id: str | None, stream_id: str | None,
                           reason: str | None) -> tuple[bool, Stream | None]:
        stream: Stream | None = None
        if stream_id:
            stream = self.streams.get(stream_id)
        elif container_id:
            candidates = [s for s in self.streams.values()
                          if s.status == "started" and s.container_id == container_id]
            if not candidates:
                for e in self.engines.values():
                    if container_id == e.container_name:
                        candidates = [s for s in self.streams.values()
                                      if s.status == "started" and s.container_id == e.container_id]
            stream = max(candidates, key=lambda s: s.started_at) if candidates else None
        if stream is None:
            self.record("streams", operation="stream_ended", stream_id=stream_id, found=False)
            return False, None
        if stream.status == "ended":
            self.record("streams", operation="stream_ended", stream_id=stream.id, duplicate=True)
            return False, stream
        await self._end_stream(stream, reason or "ended", schedule_auto_delete=True)
        return True, stream

    async def _end_stream(self, stream: Stream, reason: str, *, schedule_auto_delete: bool = False) -> None:
        now = utcnow()
        stream.status = "ended"
        stream.ended_at = now
        stream.end_reason = reason
        self.metrics.events_ended.inc()
        self._update_stream_gauge()
        engine = self.engines.get(stream.container_id)
        if engine is not None:
            if stream.id in engine.streams:
                engine.streams.remove(stream.id)
            engine.last_stream_usage = now
            await self._save_engine(engine)
            if schedule_auto_delete and not engine.streams and self.settings.auto_delete:
                self._schedule_auto_delete(engine.container_id)
        self.record("streams", operation="stream_ended", stream_id=stream.id, container_id=stream.container_id,
                    reason=reason)
        await self._save_stream(stream)

    async def _end_streams_of(self, container_id: str, reason: str) -> None:
        for stream in list(self.streams.values()):
            if stream.status == "started" and stream.container_id == container_id:
                await self._end_stream(stream, reason)

    async def stop_stream(self, stream: Stream) -> bool:
        """Stop a started stream through its engine's ``command_url`` (``method=stop``), then end it."""
        if stream.status != "started":
            return False
        stopped = False
        engine = self.engines.get(stream.container_id)
        if engine is not None and stream.command_url:
            parts = urlsplit(stream.command_url)
            query = "&".join(q for q in parts.query.split("&") if q and not q.startswith("method="))
            url = f"http://{engine.host}:{engine.port}{parts.path}?{query + '&' if query else ''}method=stop"
            try:
                resp = await self.http.get(url, timeout=3.0)
                stopped = resp.status_code == 200
            except httpx.HTTPError:
                stopped = False
        await self._end_stream(stream, "stopped", schedule_auto_delete=True)
        return stopped

    def _schedule_auto_delete(self, container_id: str) -> None:
        old = self._grace_timers.pop(container_id, None)
        if old is not None:
            old.cancel()

        async def later() -> None:
            if await sleep_or_stop(self._stop, self.settings.engine_grace_period_s):
                return
            self._grace_timers.pop(container_id, None)
            engine = self.engines.get(container_id)
            if engine is None or engine.streams:
                return
            s = self.settings
            free = sum(1 for e in self.engines.values() if not e.streams)
            if len(self.engines) - 1 < s.min_replicas or free - 1 < s.min_free_replicas:
                self.record("autoscaler", operation="auto_delete_skipped", container_id=container_id,
                            reason="floor")
                return
            await self.stop_engine(container_id, "auto_delete")

        self._grace_timers[container_id] = spawn(later(), name=f"auto-delete {container_id[:12]}", tasks=self._tasks)

    async def _save_stream(self, stream: Stream) -> None:
        try:
            await self.store.save_stream(stream)
        except Exception:  # noqa: BLE001
            logger.warning("could not save stream %s", stream.id, exc_info=True)

    def _update_stream_gauge(self) -> None:
        self.metrics.streams_active.set(sum(1 for s in self.streams.values() if s.status == "started"))

    def _update_engine_gauges(self) -> None:
        for state, n in self._health_counts().items():
            self.metrics.engines.labels(health=state).set(n)

    async def _collect_once(self) -> None:
        live = [s for s in self.streams.values() if s.status == "started"]
        sem = asyncio.Semaphore(32)
        await asyncio.gather(*(self._collect(s, sem) for s in live))

    async def _collect(self, stream: Stream, sem: asyncio.Semaphore) -> None:
        if not stream.stat_url:
            await self._end_stream(stream, "stale")
            return
        engine = self.engines.get(stream.container_id)
        if engine is None:
            return
        parts = urlsplit(stream.stat_url)
        url = f"http://{engine.host}:{engine.port}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        ok = False
        snap: StatSnapshot | None = None
        async with sem:
            try:
                resp = await self.http.get(url, timeout=3.0)
                if 200 <= resp.status_code < 300:
                    body = resp.json()
                    if isinstance(body, dict) and not body.get("error") and isinstance(body.get("response"), dict):
                        r = body["response"]

                        def num(key: str) -> int | None:
                            v = r.get(key)
                            return int(v) if isinstance(v, (int, float)) else None

                        cache = r.get("disk_cache_stats")
                        if isinstance(cache, dict) and isinstance(cache.get("active_inuse"), int):
                            engine.cache_size_bytes = cache["active_inuse"]
                        snap = StatSnapshot(ts=utcnow(), peers=num("peers"), speed_down=num("speed_down"),
                                            speed_up=num("speed_up"), downloaded=num("downloaded"),
                                            uploaded=num("uploaded"),
                                            status=r.get("status") if isinstance(r.get("status"), str) else None)
                        ok = True
            except (httpx.HTTPError, ValueError):
                ok = False
        if ok and snap is not None:
            stream.collect_failures = 0
            self.stats.setdefault(stream.id, deque(maxlen=self.settings.stats_history_max)).append(snap)
            try:
                await self.store.add_stat(stream.id, snap, keep=self.settings.stats_history_max)
            except Exception:  # noqa: BLE001
                logger.warning("could not store stats", exc_info=True)
            return
        stream.collect_failures += 1
        self.metrics.collector_errors.inc()
        self.record("streams", operation="stat_collection_failed", stream_id=stream.id,
                    container_id=stream.container_id, consecutive_failures=stream.collect_failures)
        if stream.collect_failures >= 3:
            self.record("streams", operation="stale_stream", stream_id=stream.id, container_id=stream.container_id)
            await self._end_stream(stream, "stale")

    # -- status ------------------------------------------------------------------------------------------
    def blocked(self) -> tuple[str | None, ProvisioningError | None]:
        gate = self.provisioner.gate_state(runtime_ok=self.runtime_fresh())
        code = decide_admission(gate)
        if code is None:
            return None, None
        return code, blocked_error(code, gate)

    def orchestrator_status(self) -> dict[str, Any]:
        s = self.settings
        counts = self._health_counts()
        total = len(self.engines)
        running = sum(1 for e in self.engines.values() if e.running)
        used = sum(1 for e in self.engines.values() if e.streams)
        code, err = self.blocked()
        general = self.breakers["general"]
        state = general.state
        reason: str | None = None
        details: dict[str, Any] | None = None
        if code is not None and err is not None:
            reason, message = {
                "runtime_unavailable": ("Runtime unavailable", "The container runtime is not answering. Engines "
                                        "cannot be provisioned until it is back."),
                "vpn_disconnected": ("VPN not connected", "VPN connection is required but currently disconnected. "
                                     "Engines cannot be provisioned without VPN."),
                "circuit_breaker": (f"Circuit breaker is {state.value}", f"Provisioning circuit breaker is "
                                    f"{state.value} due to repeated failures. System is waiting for conditions to "
                                    "improve."),
                "max_capacity": ("Maximum capacity reached", f"Maximum number of engines ({s.max_replicas}) already "
                                 "running. Wait for streams to end or increase MAX_REPLICAS."),
            }[code]
            details = {"code": code, "message": message, "recovery_eta_seconds": err.recovery_eta_seconds,
                       "can_retry": err.can_retry, "should_wait": err.should_wait}
        can = code is None
        if running == 0 and not can:
            status = "unavailable"
        elif (
            code in ("runtime_unavailable", "vpn_disconnected", "circuit_breaker")
            or state is not BreakerState.CLOSED
            or running == 0
        ):
            status = "degraded"
        else:
            status = "healthy"
        vpn = self.vpn.public()
        return {
            "status": status,
            "engines": {"total": total, "running": running, "healthy": counts["healthy"],
                        "unhealthy": counts["unhealthy"]},
            "streams": {"active": sum(1 for x in self.streams.values() if x.status == "started"),
                        "total": len(self.streams)},
            "capacity": {"total": total, "used": used, "available": total - used, "max_replicas": s.max_replicas,
                         "min_replicas": s.min_replicas},
            "vpn": {"enabled": vpn["enabled"], "connected": vpn["connected"], "health": vpn["health"],
                    "container": vpn["container"], "forwarded_port": vpn["forwarded_port"]},
            "provisioning": {"can_provision": can, "circuit_breaker_state": state.value,
                             "last_failure": format_time(general.last_failure_time), "blocked_reason": reason,
                             "blocked_reason_details": details},
            "config": {"auto_delete": s.auto_delete, "grace_period_s": s.engine_grace_period_s,
                       "target_image": s.target_image, "runtime": self.runtime.name},
            "timestamp": format_time(utcnow()),
        }

    def health_status(self) -> dict[str, Any]:
        counts = self._health_counts()
        return {
            "total_engines": len(self.engines),
            "healthy_engines": counts["healthy"],
            "unhealthy_engines": counts["unhealthy"],
            "unknown_engines": counts["unknown"],
            "marked_for_replacement": sum(
                1 for e in self.engines.values()
                if e.health_status is HealthStatus.UNHEALTHY and e.unhealthy_since is not None
            ),
            "minimum_required": self.settings.min_replicas,
            "health_check_interval": self.settings.health_check_interval_s,
            "circuit_breakers": {name: b.public() for name, b in self.breakers.items()},
        }

    def readiness(self) -> dict[str, str]:
        return {
            "startup": "ok" if self.started else "pending",
            "database": "ok" if self.database_ok else "unreachable",
            "runtime": "ok" if self.runtime_fresh() else "unreachable",
        }

    async def stream_stats(self, stream_id: str, since: datetime | None) -> list[StatSnapshot]:
        """Snapshots from memory; after a restart, from the store."""
        snaps = self.stats.get(stream_id)
        if not snaps and stream_id in self.streams:
            try:
                return await self.store.load_stats(stream_id, since=since)
            except Exception:  # noqa: BLE001
                logger.warning("could not load stats of %s", stream_id, exc_info=True)
                return []
        return [s for s in snaps or () if since is None or s.ts >= since]

    def engines_sorted(self) -> list[Engine]:
        return sorted(self.engines.values(), key=lambda e: e.first_seen)

    def version(self) -> str:
        return __version__
