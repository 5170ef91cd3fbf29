"""The Service: it builds the components, starts their tasks in a fixed order and stops them.

It decides nothing itself. The components (``fleet``, ``streams``, ``collector``, ``provisioning``, ``status``,
``breakers``, ``debug``) hold the state and the operations; the control loops (health prober, autoscaler, VPN
monitor) live beside their decision functions in :mod:`aceorch.control` and are given their collaborators here.
The API holds one Service (``app.state.service``) and calls the components' methods.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

import httpx

from aceorch.aiokits import create_guarded_task, poll_until, sleep_or_stop, spawn, stop_tasks
from aceorch.config import Settings
from aceorch.control import autoscaler, health, vpn_pool
from aceorch.control.breaker import Breakers, BreakerState, CircuitBreaker
from aceorch.control.engine_api import running_in_container
from aceorch.control.ports import PortAllocator
from aceorch.control.vpn_pool import VpnPool
from aceorch.debuglog.stress import StressMonitor
from aceorch.debuglog.writer import DebugLog
from aceorch.errors import ContainerNotFound
from aceorch.runtime.base import Runtime
from aceorch.service.collector import HYGIENE_INTERVAL_S, Collector
from aceorch.service.debug import DebugControl
from aceorch.service.fleet import Fleet
from aceorch.service.history import History
from aceorch.service.liveness import Liveness
from aceorch.service.metrics import Metrics
from aceorch.service.provisioning import Provisioning
from aceorch.service.status import Status
from aceorch.service.story import Story
from aceorch.service.streams import Streams
from aceorch.service.timed import TimedRuntime, TimedTransport
from aceorch.store.base import Store, StoreUnavailable

__all__ = ["Service"]

logger = logging.getLogger(__name__)

#: How long ENGINES_ON_EXIT=stop may take to remove the engines at shutdown, and the last part of it, in which the
#: engines still there are killed rather than stopped.
ENGINES_STOP_DEADLINE_S = 10.0
ENGINES_KILL_S = 3.0

BREAKER_GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class Service:
    """Everything one aceorch process runs: the components, their tasks, and their start and stop."""

    def __init__(self, settings: Settings, *, runtime: Runtime, store: Store, debuglog: DebugLog) -> None:
        self.settings = settings
        self._debuglog = debuglog
        gluetun_key = settings.vpn.gluetun_api_key
        self._story = Story(live_streams=lambda: self.streams.count_started(), secrets=tuple(
            k for k in (settings.api_key_value(), gluetun_key.get_secret_value() if gluetun_key else None) if k))
        self.metrics = Metrics.from_settings(settings)
        self.history = History(slow_threshold_ms=settings.debug.debug_slow_provisioning_ratio
                               * settings.runtime.startup_timeout_s * 1000.0)
        #: The proxy's viewer count, for the history (the app sets it once the proxy exists).
        self.viewers: Callable[[], int | None] = lambda: None
        self._stress = StressMonitor(debuglog, settings, on_event=self._on_stress)
        self.runtime: Runtime = TimedRuntime(runtime, self.record)
        self.store = store
        self._http = httpx.AsyncClient(transport=TimedTransport(self.record), timeout=3.0)
        self._stop = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._max_lag_s = 0.0
        self._health_state = health.ProberState()
        self._failovers_seen: dict[str, int] = {}
        in_container = running_in_container()
        ports = PortAllocator()
        self.breakers = Breakers(
            [
                CircuitBreaker(
                    "general",
                    failure_threshold=settings.breaker.circuit_breaker_failure_threshold,
                    recovery_timeout=settings.breaker.circuit_breaker_recovery_timeout_s,
                    trial_eta=settings.runtime.startup_timeout_s,
                    on_transition=self._on_breaker,
                ),
                CircuitBreaker(
                    "replacement",
                    failure_threshold=settings.breaker.circuit_breaker_replacement_threshold,
                    recovery_timeout=settings.breaker.circuit_breaker_replacement_timeout_s,
                    trial_eta=settings.runtime.startup_timeout_s,
                    on_transition=self._on_breaker,
                ),
            ],
            record=self.record,
        )
        self.vpn = VpnPool.build(settings, runtime=self.runtime, http=self._http)
        self.liveness = Liveness(runtime=self.runtime, store=store, record=self.record,
                                 monitor_interval_s=settings.pool.monitor_interval_s)
        self.fleet = Fleet(settings, runtime=self.runtime, store=store, http=self._http, ports=ports,
                           metrics=self.metrics, record=self.record, stop=self._stop, in_container=in_container)
        self.streams = Streams(settings, fleet=self.fleet, store=store, http=self._http, metrics=self.metrics,
                               record=self.record, stop=self._stop)
        self.provisioning = Provisioning(
            settings, runtime=self.runtime, fleet=self.fleet, streams=self.streams, liveness=self.liveness,
            breakers=self.breakers, ports=ports, vpn=self.vpn, http=self._http, metrics=self.metrics,
            stress=self._stress, record=self.record, in_container=in_container,
        )
        self.fleet.bind(streams=self.streams, starts=self.provisioning.provisioner)
        self.fleet.held = self.vpn.held
        self.vpn.bind(self.fleet.engines)
        self.collector = Collector(fleet=self.fleet, streams=self.streams, http=self._http, metrics=self.metrics,
                                   record=self.record, runtime=self.runtime,
                                   cache_dir=settings.runtime.engine_cache_dir,
                                   cache_cleanup_idle_s=settings.runtime.engine_cache_cleanup_idle_s)
        self.status = Status(settings, runtime_name=self.runtime.name, fleet=self.fleet, streams=self.streams,
                             provisioning=self.provisioning, liveness=self.liveness, breakers=self.breakers,
                             vpn=self.vpn)
        self.debug = DebugControl(debuglog=debuglog, stress=self._stress)

    # -- records and hooks --------------------------------------------------------------------------------
    def record(self, category: str, **fields: Any) -> None:
        """Write one debug record (a no-op while debug mode is off); the story's events also get a log line."""
        self._debuglog.log(category, **fields)
        self._story.tell(category, fields)
        self.history.observe(category, fields)

    def _on_stress(self, event: dict[str, Any]) -> None:
        self.metrics.stress_events.labels(
            event_type=str(event.get("event_type")), severity=str(event.get("severity"))
        ).inc()
        self.history.stress(event)

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
        self._stress.breaker_transition(
            operation_type=name,
            old=old.value,
            new=new.value,
            failure_count=breaker.failure_count,
            threshold=breaker.failure_threshold,
        )

    def _on_vpn_connected(self, connected: bool) -> None:
        """Every VPN's gauges after a round (connected, engines behind it, failovers)."""
        counts = self.vpn.counts(self.fleet.engines())
        for m in self.vpn.monitors:
            name = m.container or ""
            self.metrics.vpn_connected.labels(vpn=name).set(1 if m.connected else 0)
            self.metrics.vpn_engines.labels(vpn=name).set(counts.get(name, 0))
            seen = self._failovers_seen.get(name, 0)
            if self.vpn.failovers.get(name, 0) > seen:
                self.metrics.vpn_failovers.labels(vpn=name).inc(self.vpn.failovers[name] - seen)
                self._failovers_seen[name] = self.vpn.failovers[name]

    def _on_gluetun_restart(self, name: str, restarted: bool, reason: str) -> None:
        self.metrics.vpn_gluetun_restarts.labels(vpn=name, outcome="restarted" if restarted else "refused").inc()
        self._stress.vpn_restart(vpn=name, restarted=restarted, reason=reason)

    def _loop_error(self, name: str) -> Callable[[BaseException], None]:
        def report(exc: BaseException) -> None:
            self.record(
                "errors",
                component=name,
                operation="loop",
                error_type=type(exc).__name__,
                error_message=str(exc),
                traceback="".join(traceback.format_exception(exc)),
            )

        return report

    def render_metrics(self) -> bytes:
        """The Prometheus text, with the debug-log counters refreshed."""
        self._refresh_debug_gauges()
        return self.metrics.render()

    def _refresh_debug_gauges(self) -> None:
        written, dropped = self.debug.counters()
        self.metrics.debug_counts(written, dropped)

    # -- lifecycle ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start order: debug session, store, adoption, then the loops; the VPN wait and the pool in a task.

        Loops: vpn monitor (with the VPN), runtime monitor, runtime events, health prober, stats collector, engine
        hygiene (usage samples, idle cache clean-ups), loop lag; the autoscaler starts once adoption and the VPN
        wait are over.
        """
        s = self.settings
        self._debuglog.set_runtime_name(self.runtime.name)
        await asyncio.to_thread(self._debuglog.start_from_env)  # creates the folder and files: off the loop
        try:
            await self.store.open()
            self.liveness.database_ok = True
            await self.streams.load()
        except StoreUnavailable as exc:
            logger.error("the store could not be opened (%s); state is kept in memory, and writes are queued until "
                         "it opens", exc)
        except Exception:
            logger.exception("the store could not be opened; streams are kept in memory only")
        if await self.liveness.check_runtime():
            await self.fleet.reconcile(initial=True)
            await self.provisioning.check_image()
        if s.vpn_enabled:
            self._loops.append(vpn_pool.start_vpn_monitor(
                settings=s, pool=self.vpn, fleet=self.fleet, signals=self._stress, record=self.record,
                on_connected=self._on_vpn_connected, on_restart=self._on_gluetun_restart, stop=self._stop,
                on_error=self._loop_error("vpn monitor"),
            ))
        self._loops.append(self._guarded("runtime monitor", self._monitor_once, lambda: 0.0))
        self._loops.append(self._guarded("runtime events", self.fleet.follow_events, lambda: 1.0))
        self._loops.append(health.start_health_prober(
            settings=s, fleet=self.fleet, replacer=self.provisioning, http=self._http, record=self.record,
            signals=self._stress, state=self._health_state, stop=self._stop,
            on_error=self._loop_error("health prober"),
        ))
        self._loops.append(self._guarded("stats collector", self.collector.collect_once,
                                         lambda: float(s.streams.collect_interval_s)))
        self._loops.append(self._guarded("engine hygiene", self.collector.hygiene_once, lambda: HYGIENE_INTERVAL_S))
        self._loops.append(self._guarded("loop lag", self._lag_once, lambda: 0.0))
        spawn(self._startup_pool(), name="startup pool", tasks=self._tasks)
        self.history.bind_loop(asyncio.get_running_loop())
        spawn(self._history_loop(), name="history", tasks=self._tasks)

    def _guarded(self, name: str, body: Callable[[], Any], interval: Callable[[], float]) -> asyncio.Task[None]:
        return create_guarded_task(name, body, stop=self._stop, interval=interval, on_error=self._loop_error(name))

    async def _startup_pool(self) -> None:
        """Wait for the VPN (at most GLUETUN_STARTUP_WAIT_S) and the adoptions, then start the autoscaler."""
        s = self.settings
        if s.vpn_enabled:

            async def connected() -> bool:
                return self.vpn.connected

            await poll_until(connected, timeout=s.vpn.gluetun_startup_wait_s, interval=0.5, stop=self._stop)
            if self._stop.is_set():
                return
            if not self.vpn.connected:
                logger.warning(
                    "the VPN did not become healthy within GLUETUN_STARTUP_WAIT_S (%ss); continuing",
                    s.vpn.gluetun_startup_wait_s,
                )
        await self.fleet.wait_adopted()
        self.status.started = True
        self._loops.append(autoscaler.start_autoscaler(
            settings=s, fleet=self.fleet, starts=self.provisioning, streams=self.streams, record=self.record,
            stop=self._stop, on_error=self._loop_error("autoscaler"),
        ))

    async def aclose(self) -> None:
        """Stop every task (loops first, within 1.5 s, then the rest), settle the engines (ENGINES_ON_EXIT), then
        close the clients and the store."""
        self._stop.set()
        self.history.close()
        self.streams.cancel_timers()
        await stop_tasks(self._loops, timeout=1.5)
        await stop_tasks(
            list(self._tasks) + self.provisioning.pending_tasks() + self.streams.pending_tasks()
            + self.fleet.pending_tasks(),
            timeout=0.5,
        )
        await self._engines_on_exit()
        await self._http.aclose()
        try:
            await self.store.aclose()
        except Exception:  # noqa: BLE001
            logger.warning("store close failed", exc_info=True)
        await asyncio.to_thread(self._debuglog.close)
        await self.runtime.aclose()

    async def _engines_on_exit(self) -> None:
        """ENGINES_ON_EXIT: ``keep`` leaves the engines for the next start (one line); ``stop`` removes them.

        The process runtime's engines are child processes and end with aceorch either way.
        """
        if self.runtime.name == "process":
            return
        if self.settings.pool.engines_on_exit == "keep":
            n = self.fleet.engine_count()
            if n:
                logger.info("%d engine%s left running for the next start (ENGINES_ON_EXIT=stop removes them)",
                            n, "" if n == 1 else "s")
            return
        removed = 0
        for graceful, within in ((True, ENGINES_STOP_DEADLINE_S - ENGINES_KILL_S), (False, ENGINES_KILL_S)):
            try:
                removed += await asyncio.wait_for(self._remove_engines(graceful=graceful), timeout=within)
                break
            except TimeoutError:
                continue  # engines slow to stop are killed next
            except Exception as exc:  # noqa: BLE001 - shutdown goes on
                logger.warning("ENGINES_ON_EXIT=stop: could not remove the engines: %s", exc)
                return
        else:
            logger.warning("ENGINES_ON_EXIT=stop: not every engine was removed within %.0f s; "
                           "`aceorch engines prune` removes the rest", ENGINES_STOP_DEADLINE_S)
            return
        logger.info("ENGINES_ON_EXIT=stop: %d engine%s removed", removed, "" if removed == 1 else "s")

    async def _remove_engines(self, *, graceful: bool) -> int:
        """Remove every managed engine (the fleet's, and any the runtime lists); how many went.

        ``graceful`` stops the fleet's engines as any stop does (their streams end, the store forgets them);
        otherwise every engine is killed and removed at once.
        """
        key, value = self.settings.label_pair
        known = [e.container_id for e in self.fleet.engines()] if graceful else []
        others = [c.id for c in await self.runtime.list({key: value})
                  if self.fleet.is_engine(c) and c.id not in known]

        async def stop(cid: str) -> bool:
            return await self.fleet.stop_engine(cid, "shutdown")

        async def remove(cid: str) -> bool:
            try:
                await self.runtime.remove(cid)
            except ContainerNotFound:
                return False
            return True

        results = await asyncio.gather(*(stop(c) for c in known), *(remove(c) for c in others),
                                       return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                logger.warning("ENGINES_ON_EXIT=stop: an engine could not be removed: %s", r)
        return sum(1 for r in results if r is True)

    def task_names(self) -> list[str]:
        """Names of the loops started so far, in start order."""
        return [t.get_name() for t in self._loops]

    # -- loop bodies that only wire components ------------------------------------------------------------
    async def _monitor_once(self) -> None:
        """Ping the store and the runtime, reconcile, then wait for the interval or an engine's death."""
        self.fleet.clear_change()
        await self.liveness.check_store()
        if await self.liveness.check_runtime():
            await self.fleet.reconcile()
        self._refresh_debug_gauges()
        await self.fleet.wait_for_change(self.settings.pool.monitor_interval_s)

    async def _history_loop(self) -> None:
        """One history sample now and every SAMPLE_INTERVAL_S until the stop."""
        self.history.sampler = self._history_counts
        while True:
            self.history.sample(**self._history_counts())
            if await sleep_or_stop(self._stop, self.history.sample_interval_s):
                return

    def _history_counts(self) -> dict[str, Any]:
        return {"engines": self.fleet.health_counts(), "vpn": self.vpn.connected if self.settings.vpn_enabled else None,
                "streams": self.streams.count_started(), "viewers": self.viewers()}

    async def _lag_once(self) -> None:
        begin = time.perf_counter()
        await asyncio.sleep(0.25)
        lag_ms = max(0.0, (time.perf_counter() - begin - 0.25) * 1000)
        if lag_ms / 1000 > self._max_lag_s:
            self._max_lag_s = lag_ms / 1000
            self.metrics.loop_lag_max.set(self._max_lag_s)
        self._stress.loop_lag(lag_ms)

    async def probe_health(self) -> None:
        """One health-prober round now (benchmarks and tests)."""
        await health.probe_round(
            settings=self.settings, fleet=self.fleet, replacer=self.provisioning, http=self._http,
            record=self.record, signals=self._stress, state=self._health_state,
        )
