"""The fleet: the engines aceorch manages, kept equal to the runtime.

It registers started engines, adopts running ones, reaps dead leftovers, stops and restarts engines and follows
the runtime's events. The API reads engines from here (memory), never from the runtime. How a running engine is
rebuilt, waited for and recorded when adopted is :mod:`aceorch.service.adoption`'s.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import httpx

from aceorch.aiokits import poll_until, sleep_or_stop, spawn
from aceorch.config import Settings
from aceorch.control.engine_api import ENGINE_NAME, engine_ready
from aceorch.control.ports import PortAllocator, ports_from_labels
from aceorch.errors import ContainerNotFound, RuntimeFailure
from aceorch.models import Engine, HealthStatus, utcnow
from aceorch.runtime.base import ContainerInfo, ListsNodes, Runtime, RuntimeNode
from aceorch.service.adoption import engine_from_info, report_adoption, wait_answering
from aceorch.service.metrics import Metrics
from aceorch.service.timed import Recorder
from aceorch.store.base import Store

__all__ = ["Fleet", "StreamLedger", "Starts", "published_ports"]

logger = logging.getLogger(__name__)


def published_ports(info: ContainerInfo) -> list[int]:
    """Host ports a container publishes (generic containers have no port labels)."""
    out: list[int] = []
    for binds in info.ports.values():
        for bind in binds or ():
            port = bind.get("HostPort", "")
            if port.isdigit():
                out.append(int(port))
    return out


class StreamLedger(Protocol):
    """What the fleet needs from the streams: end an engine's streams, know them, cancel its auto-delete."""

    async def end_streams_of(self, container_id: str, reason: str) -> None:
        """End every started stream of one engine."""

    def started_on(self, container_id: str) -> list[str]:
        """Ids of the started streams of one engine."""

    def cancel_auto_delete(self, container_id: str) -> None:
        """Cancel the pending auto-delete of one engine (unless it is the caller)."""


class Starts(Protocol):
    """What the fleet needs from the provisioner: the starts in flight and the names they hold."""

    in_flight: int

    def starting_names(self) -> frozenset[str]:
        """Names of the containers being created right now."""


class Fleet:
    """The managed engines, in memory, and every operation that adds or removes one."""

    def __init__(
        self,
        settings: Settings,
        *,
        runtime: Runtime,
        store: Store,
        http: httpx.AsyncClient,
        ports: PortAllocator,
        metrics: Metrics,
        record: Recorder,
        stop: asyncio.Event,
        in_container: bool,
    ) -> None:
        self.settings = settings
        self._runtime = runtime
        self._store = store
        self._http = http
        self._ports = ports
        self._metrics = metrics
        self._record = record
        self._stop = stop
        self._in_container = in_container
        self._engines: dict[str, Engine] = {}
        self._stopping: set[str] = set()
        self._replaced: set[str] = set()
        self._adopting: set[str] = set()
        self._adopt_tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()
        self._streams: StreamLedger | None = None
        self._starts: Starts | None = None
        #: The runtime's nodes as last listed (multi-node runtimes only).
        self.nodes: list[RuntimeNode] = []
        #: Engines whose VPN is down while others are up: unhealthy, not probed, until it is back (VpnPool.held).
        self.held: Callable[[Engine], bool] = lambda engine: False

    def bind(self, *, streams: StreamLedger, starts: Starts) -> None:
        """Connect the streams and the provisioner, which are built after the fleet."""
        self._streams = streams
        self._starts = starts

    @property
    def _ledger(self) -> StreamLedger:
        assert self._streams is not None, "Fleet.bind() was not called"
        return self._streams

    # -- reading ------------------------------------------------------------------------------------------
    def engine_count(self) -> int:
        """How many engines the fleet holds."""
        return len(self._engines)

    def engine_names(self) -> set[str]:
        """Container names of the engines."""
        return {e.container_name for e in self._engines.values()}

    def p2p_holder(self) -> str | None:
        """The engine that holds the VPN's forwarded P2P port, if any."""
        for engine in self._engines.values():
            if engine.p2p_port is not None:
                return engine.container_id
        return None

    def engines(self) -> list[Engine]:
        """Every engine, in registration order."""
        return list(self._engines.values())

    def engines_sorted(self) -> list[Engine]:
        """Every engine, oldest first."""
        return sorted(self._engines.values(), key=lambda e: e.first_seen)

    def get(self, container_id: str) -> Engine | None:
        """The engine of that container id."""
        return self._engines.get(container_id)

    def find(self, ident: str) -> Engine | None:
        """The engine of that container id or name."""
        for engine in self._engines.values():
            if ident in (engine.container_id, engine.container_name):
                return engine
        return None

    def probe_targets(self) -> list[Engine]:
        """Engines to health-probe: every engine not being stopped or restarted, nor held by its VPN's outage."""
        return [e for e in self._engines.values() if e.container_id not in self._stopping and not self.held(e)]

    def is_stopping(self, container_id: str) -> bool:
        """The engine is being stopped or restarted by aceorch."""
        return container_id in self._stopping

    def health_counts(self) -> dict[str, int]:
        """Engines per health state: healthy, unhealthy, unknown, unreachable."""
        counts = {state.value: 0 for state in HealthStatus}
        for e in self._engines.values():
            counts[e.health_status.value] += 1
        return counts

    def update_gauges(self) -> None:
        """Refresh the engines-by-health gauge."""
        for state, n in self.health_counts().items():
            self._metrics.engines.labels(health=state).set(n)

    def replaced(self) -> set[str]:
        """Unhealthy engines whose replacement has started."""
        return set(self._replaced)

    def mark_replaced(self, container_id: str) -> None:
        """A replacement for this unhealthy engine has started."""
        self._replaced.add(container_id)

    # -- adding -------------------------------------------------------------------------------------------
    async def register(self, engine: Engine, info: ContainerInfo) -> None:
        """A started engine joins the fleet."""
        engine.first_seen = engine.last_seen = engine.created_at = utcnow()
        self._engines[engine.container_id] = engine
        self.update_gauges()
        await self.save(engine)

    def _managed(self, info: ContainerInfo) -> bool:
        key, value = self.settings.label_pair
        return info.labels.get(key) == value

    def is_engine(self, info: ContainerInfo) -> bool:
        """The container is an engine (by its kind label, or by its name for older containers)."""
        kind = info.labels.get("aceorch.kind")
        return kind == "engine" or (kind is None and bool(ENGINE_NAME.match(info.name)))

    async def reconcile(self, *, initial: bool = False) -> None:
        """Make the state equal the runtime: adopt running managed engines, reap dead ones, rebuild ports."""
        key, value = self.settings.label_pair
        listed_at = utcnow()
        containers = await self._runtime.list({key: value})
        if isinstance(self._runtime, ListsNodes):
            try:
                self.nodes = await self._runtime.nodes()
            except RuntimeFailure as exc:
                logger.debug("could not list the runtime's nodes: %s", exc)
        starts = self._starts
        in_flight_names = starts.starting_names() if starts is not None else frozenset()
        seen: set[str] = set()
        ports: list[int | None] = []
        stored = {e.container_id: e for e in await self._load_stored()} if initial else {}
        for info in containers:
            # Every managed container keeps its ports, running or not: a stopped one may be restarted by Docker.
            ports.extend(ports_from_labels(info.labels).values())
            ports.extend(published_ports(info))
            if info.name in in_flight_names or info.id in self._stopping:
                continue
            if not info.running:
                # Half-created or exited leftovers are reaped at start only. At run time a container that stops
                # (a daemon restart, a crash under a restart policy) is left to Docker; its engine leaves the
                # state below and is adopted again once it answers.
                if initial and info.status != "restarting":
                    await self._reap(info, "exited")
                continue
            if not self.is_engine(info):
                continue
            seen.add(info.id)
            engine = self._engines.get(info.id)
            if engine is None:
                if info.id not in self._adopting:
                    self._adopting.add(info.id)
                    spawn(self._adopt_when_ready(info, stored.get(info.id)), name=f"adopt {info.name}",
                          tasks=self._adopt_tasks)
                continue
            engine.running = True
            engine.last_seen = utcnow()
            if info.node_address and info.node_address != engine.host:  # a Swarm task moved to another node
                logger.info("engine %s moved to %s (node %s)", engine.container_name, info.node_address, info.node)
                engine.host = info.node_address
        for cid in list(self._engines):
            if cid not in seen and cid not in self._stopping and cid not in self._adopting:
                if self._engines[cid].created_at >= listed_at:
                    continue  # registered while the list was on its way: not in it, yet not gone
                if self._engines[cid].container_name in in_flight_names:
                    continue  # registered, its start not yet over: its container was skipped above, not gone
                engine = self._engines.pop(cid)
                logger.info("engine %s vanished", engine.container_name)
                self._record("provisioning", operation="engine_vanished", container_id=cid,
                             container_name=engine.container_name)
                await self._ledger.end_streams_of(cid, "engine_removed")
                await self._delete_stored(cid)
        # Starts in flight have their ports reserved by the provisioner; keep them.
        reserved_now = set(self._ports.taken)
        keep = set(p for p in ports if p is not None)
        for engine in self._engines.values():
            keep.update(p for p in (engine.host_http_port, engine.container_http_port,
                                    engine.container_https_port, engine.host_https_port) if p)
        if starts is not None and starts.in_flight:
            keep |= reserved_now
        self._ports.reset(keep)
        if initial and self._adopting:
            logger.info("adopting %d running engine(s); each gets STARTUP_TIMEOUT_S (%s s) to answer",
                        len(self._adopting), self.settings.runtime.startup_timeout_s)
        if initial:
            for cid in stored:
                if cid not in self._engines:
                    await self._delete_stored(cid)
        self.update_gauges()

    async def _adopt_when_ready(self, info: ContainerInfo, stored: Engine | None) -> None:
        """Adopt a running managed engine; one that does not answer within STARTUP_TIMEOUT_S is kept as unreachable."""
        try:
            engine = engine_from_info(self.settings, info, in_container=self._in_container,
                                      runtime_kind=self._runtime.name)
            if engine is None:
                await self._reap(info, "unlabelled")
                return
            if not await wait_answering(engine, self.settings, self._http, self._stop):
                return
            engine.created_at = utcnow()
            if stored is not None:
                engine.first_seen = stored.first_seen
                engine.last_stream_usage = stored.last_stream_usage
            engine.streams = self._ledger.started_on(info.id)
            self._engines[info.id] = engine
            report_adoption(engine, info, self.settings, self._record)
            self.update_gauges()
            await self.save(engine)
        finally:
            self._adopting.discard(info.id)

    async def wait_adopted(self) -> None:
        """Wait until every adoption in flight has ended."""
        if self._adopt_tasks:
            await asyncio.wait(list(self._adopt_tasks))

    def pending_tasks(self) -> list[asyncio.Task[Any]]:
        """Adoptions still running (for shutdown)."""
        return list(self._adopt_tasks)

    async def _reap(self, info: ContainerInfo, why: str) -> None:
        try:
            await self._runtime.remove(info.id)
            logger.info("removed %s container %s (%s)", why, info.name, info.id[:12])
            self._record("provisioning", operation="reap_container", container_id=info.id,
                         container_name=info.name, reason=why, success=True)
        except ContainerNotFound:
            pass
        except RuntimeFailure as exc:
            logger.warning("could not remove %s: %s", info.name, exc)

    # -- the store ----------------------------------------------------------------------------------------
    async def _load_stored(self) -> list[Engine]:
        try:
            return await self._store.load_engines()
        except Exception:  # noqa: BLE001
            logger.warning("could not load engines from the store", exc_info=True)
            return []

    async def save(self, engine: Engine) -> None:
        """Write one engine to the store; a failure is logged, never raised."""
        try:
            await self._store.save_engine(engine)
        except Exception:  # noqa: BLE001
            logger.warning("could not save engine %s", engine.container_name, exc_info=True)

    async def _delete_stored(self, cid: str) -> None:
        try:
            await self._store.delete_engine(cid)
        except Exception:  # noqa: BLE001
            logger.warning("could not delete engine %s from the store", cid[:12], exc_info=True)

    # -- removing -----------------------------------------------------------------------------------------
    async def stop_engine(self, container_id: str, reason: str, *, end_reason: str = "engine_removed") -> bool:
        """Stop and remove an engine; its streams end. Returns False if it was already being stopped."""
        engine = self._engines.get(container_id)
        if container_id in self._stopping:
            return False
        self._stopping.add(container_id)
        begin = time.perf_counter()
        name = engine.container_name if engine else None
        self._record("provisioning", operation="stop_engine_begin", container_id=container_id,
                     container_name=name, reason=reason)
        try:
            if engine is not None:
                self._engines.pop(container_id, None)
                await self._ledger.end_streams_of(container_id, end_reason)
            self._ledger.cancel_auto_delete(container_id)
            try:
                await self._runtime.stop(container_id, timeout=10)
            except ContainerNotFound:
                pass
            try:
                await self._runtime.remove(container_id)
            except ContainerNotFound:
                pass
        except RuntimeFailure as exc:
            self._record("provisioning", operation="stop_engine_failed", container_id=container_id,
                         container_name=name, reason=reason, error=str(exc),
                         duration_ms=(time.perf_counter() - begin) * 1000, success=False)
            self._stopping.discard(container_id)
            raise
        if engine is not None:
            self._ports.release([engine.host_http_port, engine.container_http_port,
                                 engine.container_https_port, engine.host_https_port])
            await self._delete_stored(container_id)
        self._stopping.discard(container_id)
        self._replaced.discard(container_id)
        self.update_gauges()
        self._record("provisioning", operation="stop_engine_success", container_id=container_id,
                     container_name=name, reason=reason, duration_ms=(time.perf_counter() - begin) * 1000,
                     success=True)
        return True

    async def find_managed(self, ident: str) -> ContainerInfo:
        """A managed container by full id, unique id prefix (≥ 12 hex) or name. Raises ContainerNotFound."""
        for engine in self._engines.values():
            if ident in (engine.container_id, engine.container_name) or (
                len(ident) >= 12 and engine.container_id.startswith(ident)
            ):
                ident = engine.container_id
                break
        info = await self._runtime.inspect(ident)
        if not self._managed(info):
            raise ContainerNotFound(ident)
        if info.id != ident and info.name != ident and not (len(ident) >= 12 and info.id.startswith(ident)):
            raise ContainerNotFound(ident)
        return info

    async def delete_container(self, ident: str) -> str:
        """Stop and remove a managed container (an engine's streams end as ``engine_deleted``); its full id."""
        info = await self.find_managed(ident)
        if info.id in self._engines or self.is_engine(info):
            await self.stop_engine(info.id, "api_delete", end_reason="engine_deleted")
        else:
            try:
                await self._runtime.stop(info.id, timeout=10)
            finally:
                await self._runtime.remove(info.id)
                self._ports.release(published_ports(info))
        return info.id

    async def by_label(self, key: str, value: str) -> list[ContainerInfo]:
        """Managed containers whose label ``key`` equals ``value``."""
        mkey, mvalue = self.settings.label_pair
        return [c for c in await self._runtime.list({mkey: mvalue}) if c.labels.get(key) == value]

    async def restart_engines_created_before(
        self, when: datetime, *, only: Callable[[Engine], bool] | None = None, vpn: str | None = None
    ) -> int:
        """Restart every engine created before ``when`` (of those ``only`` accepts; its streams end as
        ``vpn_recovery``; the records name ``vpn``); how many restarted."""
        count = 0
        for engine in list(self._engines.values()):
            if engine.created_at >= when or (only is not None and not only(engine)):
                continue
            begin = time.perf_counter()
            await self._ledger.end_streams_of(engine.container_id, "vpn_recovery")
            self._stopping.add(engine.container_id)
            answers = functools.partial(engine_ready, self._http, engine.host, engine.port, timeout=1.0)
            try:
                await self._runtime.restart(engine.container_id, timeout=5)
                ok = await poll_until(answers, timeout=self.settings.runtime.startup_timeout_s, interval=0.2)
                engine.created_at = utcnow()
                if ok:
                    engine.unreachable_reason = engine.unreachable_address = None
                    engine.health_status = HealthStatus.HEALTHY
                elif engine.health_status is not HealthStatus.UNREACHABLE:  # unreachable stays so: never replaced
                    engine.health_status = HealthStatus.UNKNOWN
                count += 1
                self._record("vpn", operation="engine_restart", vpn=vpn, container_id=engine.container_id,
                             container_name=engine.container_name, duration_ms=(time.perf_counter() - begin) * 1000,
                             success=ok, error=None if ok else "not ready after restart")
            except RuntimeFailure as exc:
                self._record("vpn", operation="engine_restart", vpn=vpn, container_id=engine.container_id,
                             container_name=engine.container_name, duration_ms=(time.perf_counter() - begin) * 1000,
                             success=False, error=str(exc))
            finally:
                self._stopping.discard(engine.container_id)
        return count

    # -- runtime events -----------------------------------------------------------------------------------
    async def follow_events(self) -> None:
        """Follow the runtime's events until stopping; a managed engine that dies wakes the monitor."""
        follow = asyncio.ensure_future(self._consume_events())
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait([follow, stop], return_when=asyncio.FIRST_COMPLETED)
        for task in (follow, stop):
            task.cancel()

    async def _consume_events(self) -> None:
        key, value = self.settings.label_pair
        try:
            async for event in self._runtime.events():
                if self._stop.is_set():
                    return
                if event.labels.get(key) == value and event.action in ("die", "destroy", "stop"):
                    if event.container_id in self._engines and event.container_id not in self._stopping:
                        self._changed.set()
        except RuntimeFailure:
            await sleep_or_stop(self._stop, 2.0)

    async def wait_for_change(self, timeout: float) -> None:
        """Wait ``timeout`` seconds, or less if an event says an engine died or the service is stopping."""
        waiters = [asyncio.ensure_future(self._changed.wait()), asyncio.ensure_future(self._stop.wait())]
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()

    def clear_change(self) -> None:
        """Forget the last change signal (the monitor is about to reconcile)."""
        self._changed.clear()
