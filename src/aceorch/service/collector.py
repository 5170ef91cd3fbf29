"""Stats collection and engine hygiene, in the background, never on a request's path.

Each started stream's ``stat_url`` is read through its engine every COLLECT_INTERVAL_S; a stream without a
``stat_url``, or whose stats fail three times in a row, is stale and ends.

Every :data:`HYGIENE_INTERVAL_S`, :meth:`Collector.hygiene_once` samples each running engine's CPU and memory
from the runtime (a few at once) into ``cpu_percent`` and ``memory_bytes`` (None when the runtime cannot
tell), and empties the cache (ENGINE_CACHE_DIR) of each engine that :func:`cache_cleanup_due` names: running,
without streams for ENGINE_CACHE_CLEANUP_IDLE_S, not cleared since its last stream. Each clean-up sets
``last_cache_cleanup`` and is a ``health`` debug record (``operation=cache_cleanup``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx

from aceorch.errors import RuntimeFailure
from aceorch.models import Engine, StatSnapshot, Stream, utcnow
from aceorch.runtime.base import Runtime
from aceorch.service.fleet import Fleet
from aceorch.service.metrics import Metrics
from aceorch.service.streams import Streams
from aceorch.service.timed import Recorder

__all__ = ["Collector", "cache_cleanup_due", "HYGIENE_INTERVAL_S"]

logger = logging.getLogger(__name__)

#: Consecutive failed collections after which a stream is stale.
STALE_AFTER = 3
#: Seconds between two hygiene rounds (usage samples, idle cache clean-ups).
HYGIENE_INTERVAL_S = 5.0
#: Usage samples taken at once: Docker answers a one-shot sample in about a second.
SAMPLES_AT_ONCE = 4


def cache_cleanup_due(engine: Engine, now: datetime, idle_s: float) -> bool:
    """Whether the engine's cache is to be emptied now: ``idle_s`` > 0, it runs, it has no stream, its last
    stream (or its first sight) is ``idle_s`` ago, and its cache was not emptied since."""
    if idle_s <= 0 or not engine.running or engine.streams:
        return False
    idle_since = engine.last_stream_usage or engine.first_seen
    if now - idle_since < timedelta(seconds=idle_s):
        return False
    return engine.last_cache_cleanup is None or engine.last_cache_cleanup < idle_since


class Collector:
    """Reads the stats of every started stream, at most 32 at once; samples engines and empties idle caches.

    Without a ``runtime`` there is no hygiene; ``cache_cleanup_idle_s`` 0 turns the clean-up off.
    """

    def __init__(
        self, *, fleet: Fleet, streams: Streams, http: httpx.AsyncClient, metrics: Metrics, record: Recorder,
        runtime: Runtime | None = None, cache_dir: str = "", cache_cleanup_idle_s: float = 0,
    ) -> None:
        self._fleet = fleet
        self._streams = streams
        self._http = http
        self._metrics = metrics
        self._record = record
        self._runtime = runtime
        self._cache_dir = cache_dir
        self._cleanup_idle_s = cache_cleanup_idle_s
        #: When a clean-up last failed, per container: it is tried again one idle period later.
        self._cleanup_failed: dict[str, datetime] = {}

    async def collect_once(self) -> None:
        """One collection round over every started stream."""
        sem = asyncio.Semaphore(32)
        await asyncio.gather(*(self._collect(s, sem) for s in self._streams.live()))

    async def _read(self, engine: Engine, url: str, sem: asyncio.Semaphore) -> StatSnapshot | None:
        async with sem:
            try:
                resp = await self._http.get(url, timeout=3.0)
                if not 200 <= resp.status_code < 300:
                    return None
                body = resp.json()
            except (httpx.HTTPError, ValueError):
                return None
        if not isinstance(body, dict) or body.get("error") or not isinstance(body.get("response"), dict):
            return None
        r = body["response"]

        def num(key: str) -> int | None:
            v = r.get(key)
            return int(v) if isinstance(v, (int, float)) else None

        cache = r.get("disk_cache_stats")
        if isinstance(cache, dict) and isinstance(cache.get("active_inuse"), int):
            engine.cache_size_bytes = cache["active_inuse"]
        return StatSnapshot(ts=utcnow(), peers=num("peers"), speed_down=num("speed_down"),
                            speed_up=num("speed_up"), downloaded=num("downloaded"), uploaded=num("uploaded"),
                            status=r.get("status") if isinstance(r.get("status"), str) else None)

    async def _collect(self, stream: Stream, sem: asyncio.Semaphore) -> None:
        if not stream.stat_url:
            await self._streams.end(stream, "stale")
            return
        engine = self._fleet.get(stream.container_id)
        if engine is None:
            return
        parts = urlsplit(stream.stat_url)
        url = f"http://{engine.host}:{engine.port}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        snap = await self._read(engine, url, sem)
        if snap is not None:
            stream.collect_failures = 0
            await self._streams.add_snapshot(stream, snap)
            return
        stream.collect_failures += 1
        self._metrics.collector_errors.inc()
        self._record("streams", operation="stat_collection_failed", stream_id=stream.id,
                     container_id=stream.container_id, consecutive_failures=stream.collect_failures)
        if stream.collect_failures >= STALE_AFTER:
            self._record("streams", operation="stale_stream", stream_id=stream.id, container_id=stream.container_id)
            await self._streams.end(stream, "stale")

    # -- hygiene ------------------------------------------------------------------------------------------

    async def hygiene_once(self) -> None:
        """One hygiene round: usage samples of the running engines, then the clean-ups that are due."""
        if self._runtime is None:
            return
        engines = [e for e in self._fleet.engines() if e.running]
        sem = asyncio.Semaphore(SAMPLES_AT_ONCE)
        await asyncio.gather(*(self._sample(self._runtime, e, sem) for e in engines))
        if self._cleanup_idle_s > 0 and self._cache_dir:
            await self.clean_idle_caches(utcnow())

    async def _sample(self, runtime: Runtime, engine: Engine, sem: asyncio.Semaphore) -> None:
        async with sem:
            try:
                usage = await runtime.stats(engine.container_id)
            except RuntimeFailure:
                engine.cpu_percent = engine.memory_bytes = None
                return
        engine.cpu_percent = None if usage.cpu_percent is None else round(usage.cpu_percent, 3)
        engine.memory_bytes = usage.memory_bytes

    async def clean_idle_caches(self, now: datetime) -> None:
        """Empty the cache of every engine :func:`cache_cleanup_due` names, one after another."""
        runtime = self._runtime
        if runtime is None:
            return
        retry_after = timedelta(seconds=self._cleanup_idle_s)
        for engine in self._fleet.engines():
            failed = self._cleanup_failed.get(engine.container_id)
            if failed is not None and now - failed < retry_after:
                continue
            if not cache_cleanup_due(engine, now, self._cleanup_idle_s):
                continue
            await self._clean(runtime, engine, now)

    async def _clean(self, runtime: Runtime, engine: Engine, now: datetime) -> None:
        idle_since = engine.last_stream_usage or engine.first_seen
        size_before = engine.cache_size_bytes
        try:
            await runtime.clear_cache(engine.container_id, self._cache_dir)
        except RuntimeFailure as exc:
            self._cleanup_failed[engine.container_id] = now
            logger.warning("could not clear the cache of %s: %s", engine.container_name, exc)
            self._record("health", operation="cache_cleanup", container_id=engine.container_id,
                         container_name=engine.container_name, path=self._cache_dir, success=False,
                         error=f"{type(exc).__name__}: {exc}")
            return
        self._cleanup_failed.pop(engine.container_id, None)
        engine.last_cache_cleanup = utcnow()
        engine.cache_size_bytes = 0
        idle_s = round((now - idle_since).total_seconds(), 1)
        logger.info("cleared the cache of %s (%s), idle for %s s", engine.container_name, self._cache_dir, idle_s)
        self._record("health", operation="cache_cleanup", container_id=engine.container_id,
                     container_name=engine.container_name, path=self._cache_dir, success=True,
                     idle_s=idle_s, cache_size_bytes_before=size_before)
        await self._fleet.save(engine)
