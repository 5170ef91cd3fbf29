"""Stats collection: each started stream's ``stat_url`` is read through its engine every COLLECT_INTERVAL_S.

A stream without a ``stat_url``, or whose stats fail three times in a row, is stale and ends.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx

from aceorch.models import Engine, StatSnapshot, Stream, utcnow
from aceorch.service.fleet import Fleet
from aceorch.service.metrics import Metrics
from aceorch.service.streams import Streams
from aceorch.service.timed import Recorder

__all__ = ["Collector"]

#: Consecutive failed collections after which a stream is stale.
STALE_AFTER = 3


class Collector:
    """Reads the stats of every started stream, at most 32 at once."""

    def __init__(
        self, *, fleet: Fleet, streams: Streams, http: httpx.AsyncClient, metrics: Metrics, record: Recorder
    ) -> None:
        self._fleet = fleet
        self._streams = streams
        self._http = http
        self._metrics = metrics
        self._record = record

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
