"""The proxy's sessions by content key, its counters, and its start and stop.

A viewer's request finds the live session of its content or starts one; sessions remove themselves when they
stop. The hub is built once per process (embedded in the orchestrator, or standalone) with its
:class:`~aceorch.proxy.client.OrchestratorClient` and a record hook for the debug log.

While it has sessions the hub runs its engine watch: the client reports each change of the engines' health
(:meth:`~aceorch.proxy.client.OrchestratorClient.watch_engines`), and a live session whose engine the orchestrator
gave up on is told to move (:func:`~aceorch.proxy.selection.move_reason` decides). The watch only signals; the
sessions' own tasks do the moving, so the data path never waits on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from aceorch.aiokits import stop_tasks
from aceorch.config import ProxySettings
from aceorch.models import Engine
from aceorch.proxy.client import OrchestratorClient
from aceorch.proxy.latency import DelayHistogram
from aceorch.proxy.selection import Selector, move_reason
from aceorch.proxy.session import StreamSession
from aceorch.proxy.upstream import SOURCE_KEYS

__all__ = ["Hub", "content_key", "embedded_record"]

logger = logging.getLogger(__name__)

#: Wait before the engine watch starts again after its client's feed failed.
WATCH_RETRY_S = 2.0


def embedded_record(record: Callable[..., None], *, stress: Callable[..., None] | None = None) -> Callable[..., None]:
    """The proxy's record hook inside the orchestrator's debug session.

    The proxy's records go into the session's categories of the same names as a standalone proxy's
    (``requests``, ``engine_selection``, ``provisioning``, ``streams``, ``clients``, ``stress``), with the same
    operations, marked ``component="proxy"`` so that they never pass for the orchestrator's own records in the
    categories both write. ``record`` is the debug log's own writer, not the service's hook, so that the proxy's
    ``stream_started`` is not told as the orchestrator's. ``stress``, when given, takes the proxy's stress
    events instead (the orchestrator's stress monitor, which writes them and lists them in ``/debug/stress``).
    """

    def write(category: str, **fields: Any) -> None:
        if category == "stress" and stress is not None:
            stress(component="proxy", **fields)
        else:
            record(category, component="proxy", **fields)

    return write


def content_key(params: Mapping[str, str]) -> tuple[str, str] | None:
    """The stream's (key type, key) from the viewer's query: ``id``/``content_id`` or ``infohash`` (lower case)."""
    for name in SOURCE_KEYS:
        value = (params.get(name) or "").strip()
        if value:
            kind = {"id": "content_id", "direct_url": "url"}.get(name, name)
            return kind, value.lower() if kind in ("content_id", "infohash") else value
    return None


class Hub:
    """Every live proxy stream of this process."""

    def __init__(self, settings: ProxySettings, *, client: OrchestratorClient,
                 record: Callable[..., None] | None = None, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.client = client
        self.record: Callable[..., None] = record or (lambda category, **fields: None)
        self._http = http or httpx.AsyncClient(limits=httpx.Limits(max_connections=None,
                                                                   max_keepalive_connections=50))
        self._own_http = http is None
        self.selector = Selector(client, settings.max_streams_per_engine, self.record)
        self.sessions: dict[str, StreamSession] = {}
        self._ended: set[asyncio.Task[None]] = set()
        #: Stopped sessions whose engine-session stops may still run.
        self._stopped: list[StreamSession] = []
        #: Sessions stopping (gone from ``sessions``, their totals not yet the hub's): still summed by status(),
        #: so that no total goes back while a session stops.
        self._closing: set[StreamSession] = set()
        #: Every viewer's delay from an upstream read to its completed write (read by status and metrics).
        self.delivery_delay = DelayHistogram()
        self.counters: dict[str, int] = {"sessions_started": 0, "sessions_ended": 0, "viewers_total": 0,
                                         "start_failures": 0}
        self._ended_totals: dict[str, int] = {"bytes_in": 0, "bytes_out": 0, "lagged": 0, "stalled": 0,
                                              "reconnects": 0, "failovers": 0}
        self._watch: asyncio.Task[None] | None = None

    def open(self, key_type: str, key: str, params: Mapping[str, str], request_id: str | None) -> StreamSession:
        """The live session of this content, or a new one (started at once)."""
        session = self.sessions.get(key)
        if session is not None and session.alive:
            return session
        session = StreamSession(
            key_type, key, params, settings=self.settings, client=self.client, selector=self.selector,
            http=self._http, record=self.record, request_id=request_id, on_closed=self._closed,
        )
        self.sessions[key] = session
        self.counters["sessions_started"] += 1
        session.start()
        if self._watch is None:
            self._watch = asyncio.create_task(self._watch_engines(), name="proxy engine watch")
        return session

    # -- the engine watch -----------------------------------------------------------------------------------
    def _stop_watch(self) -> None:
        """No session left: the watch stops (the next session starts it again), awaited at close."""
        watch, self._watch = self._watch, None
        if watch is not None and not watch.done():
            watch.cancel()
            self._ended.add(watch)
            watch.add_done_callback(self._ended.discard)

    async def _watch_engines(self) -> None:
        """Feed :meth:`engines_changed` from the client until the hub closes (restarted after a failure)."""
        while True:
            try:
                await self.client.watch_engines(self.engines_changed, interval_s=self.settings.proxy_health_watch_s)
                return  # the feed ended: the orchestrator is stopping
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the watch must outlive its client's failures
                logger.exception("the proxy's engine watch failed; it starts again in %g s", WATCH_RETRY_S)
            await asyncio.sleep(WATCH_RETRY_S)

    def engines_changed(self, engines: dict[str, Engine], asof: float) -> None:
        """The engines (by id, read at ``asof``) may have changed: each live session whose engine is no longer
        usable is told to move."""
        for session in list(self.sessions.values()):
            claim = session.claim
            if claim is None:
                continue
            reason = move_reason(claim, engines, asof)
            if reason is not None and session.move_off(claim, reason):
                logger.info("stream %s: engine %s is %s; moving the stream", session.key[:12],
                            claim.engine.container_name, reason.removeprefix("engine_"))

    def _closed(self, session: StreamSession) -> None:
        if self.sessions.get(session.key) is session:
            del self.sessions[session.key]
        if not self.sessions:
            self._stop_watch()
        task = session.task
        if task is not None and not task.done():
            self._ended.add(task)
            task.add_done_callback(self._ended.discard)
        if session.state != "stopped" and not session.counted:
            self._closing.add(session)
        if session.state == "stopped" and not session.counted:
            session.counted = True
            self._closing.discard(session)
            self._stopped = [s for s in self._stopped if s.stops] + [session]
            self.counters["sessions_ended"] += 1
            if session.failure is not None:
                self.counters["start_failures"] += 1
            t = self._ended_totals
            t["bytes_in"] += session.buffer.bytes_in
            t["bytes_out"] += session.bytes_out_done + sum(v.bytes_out for v in session.viewers)
            t["lagged"] += session.lagged
            t["stalled"] += session.stalled
            t["reconnects"] += session.reconnects
            t["failovers"] += session.failovers

    # -- reading --------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The live counters (``/ace/status``)."""
        live = list(self.sessions.values())
        summed = live + list(self._closing)
        t = self._ended_totals
        return {
            "status": "ok",
            "streams": len(live),
            "viewers": sum(len(s.viewers) for s in live),
            "bytes_in": t["bytes_in"] + sum(s.buffer.bytes_in for s in summed),
            "bytes_out": t["bytes_out"] + sum(s.bytes_out_done + sum(v.bytes_out for v in s.viewers) for s in summed),
            "lagged": t["lagged"] + sum(s.lagged for s in summed),
            "stalled": t["stalled"] + sum(s.stalled for s in summed),
            "reconnects": t["reconnects"] + sum(s.reconnects for s in summed),
            "failovers": t["failovers"] + sum(s.failovers for s in summed),
            **self.counters,
        }

    def streams(self) -> list[dict[str, Any]]:
        """Each live stream: key, engine, viewers, bytes in and out, start time, upstream state (``/proxy/streams``)."""
        out = []
        for s in self.sessions.values():
            engine = s.claim.engine if s.claim else None
            out.append({
                "key": s.key, "key_type": s.key_type, "stream_id": s.stream_id,
                "engine": {"container_id": engine.container_id, "container_name": engine.container_name,
                           "host": engine.host, "port": engine.port} if engine else None,
                "clients": len(s.viewers), "clients_total": s.viewers_total,
                "bytes_in": s.buffer.bytes_in,
                "bytes_out": s.bytes_out_done + sum(v.bytes_out for v in s.viewers),
                "buffer_bytes": s.buffer.size, "started_at": s.started_at.isoformat(),
                "upstream_state": s.state, "reconnects": s.reconnects, "failovers": s.failovers,
                "gaps_ms": [round(g, 1) for g in s.gaps_ms], "lagged": s.lagged, "stalled": s.stalled,
            })
        return out

    # -- stop -----------------------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Stop every session (their engine sessions stopped, their streams ended), then close the clients."""
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        for session in list(self.sessions.values()):
            session.stop("proxy_shutdown")
        tasks = [t for t in self._ended if not t.done()]
        await stop_tasks(tasks, timeout=5.0)
        await stop_tasks([t for s in self._stopped for t in s.stops], timeout=3.5)
        self._stopped.clear()
        if self._own_http:
            await self._http.aclose()
