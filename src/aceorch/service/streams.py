"""Streams: what proxies report started and ended, their stat history, auto-delete of idle engines, pruning.

A started stream is attached to the engine that serves it; when an engine's last stream ends and AUTO_DELETE is
on, the engine is stopped after ENGINE_GRACE_PERIOD_S unless a new stream arrives or the floors forbid it.

A stream on an engine aceorch does not manage (unattached) is kept for STREAM_UNATTACHED_TTL_S from its start
only, then ended (reason ``unattached_expired``) if it is still started, and forgotten; at most
MAX_UNATTACHED_STREAMS are kept, started or already ended, and one more is refused
(:class:`~aceorch.errors.TooManyStreams`). Other ended streams go after STREAM_RETENTION_S, those loaded from a
previous run included.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from aceorch.aiokits import sleep_or_stop, spawn
from aceorch.config import Settings
from aceorch.errors import TooManyStreams
from aceorch.models import Engine, HealthStatus, StatSnapshot, Stream, StreamStart, utcnow
from aceorch.service.fleet import Fleet
from aceorch.service.metrics import Metrics
from aceorch.service.timed import Recorder
from aceorch.store.base import Store

__all__ = ["Streams"]

logger = logging.getLogger(__name__)

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
#: ``end_reason`` of an unattached stream that outlived STREAM_UNATTACHED_TTL_S.
UNATTACHED_EXPIRED = "unattached_expired"


class Streams:
    """Every stream this process knows (started and recently ended), with its stat snapshots."""

    def __init__(
        self,
        settings: Settings,
        *,
        fleet: Fleet,
        store: Store,
        http: httpx.AsyncClient,
        metrics: Metrics,
        record: Recorder,
        stop: asyncio.Event,
    ) -> None:
        self.settings = settings
        self._fleet = fleet
        self._store = store
        self._http = http
        self._metrics = metrics
        self._record = record
        self._stop = stop
        self._streams: dict[str, Stream] = {}
        self._stats: dict[str, deque[StatSnapshot]] = {}
        self._grace_timers: dict[str, asyncio.Task[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._expiry: asyncio.Task[Any] | None = None
        #: Streams started since this process began, plus those loaded from the store.
        self.total_started = 0

    async def load(self) -> None:
        """Load the stored streams (at start), then prune the old ones; raises what the store raises.

        Expired unattached streams stay in the store until STREAM_RETENTION_S, but are not loaded again.
        """
        for stream in await self._store.load_streams():
            if stream.status == "ended" and stream.end_reason == UNATTACHED_EXPIRED:
                continue
            self._streams[stream.id] = stream
            self._stats[stream.id] = deque(maxlen=self.settings.streams.stats_history_max)
        self.total_started = len(self._streams)
        await self.prune()
        self._arm_expiry()

    # -- reading ------------------------------------------------------------------------------------------
    def get(self, stream_id: str) -> Stream | None:
        """The stream of that id."""
        return self._streams.get(stream_id)

    def matching(self, *, status: str | None = None, container_id: str | None = None) -> list[Stream]:
        """Streams with that status and on that engine (each filter optional), ordered by ``started_at``."""
        out = [
            s for s in self._streams.values()
            if (status is None or s.status == status) and (container_id is None or s.container_id == container_id)
        ]
        return sorted(out, key=lambda s: s.started_at)

    def of_engine(self, engine: Engine) -> list[Stream]:
        """The streams an engine lists as its own, in its order."""
        return [self._streams[s] for s in engine.streams if s in self._streams]

    def live(self) -> list[Stream]:
        """Every started stream."""
        return [s for s in self._streams.values() if s.status == "started"]

    def count(self) -> int:
        """How many streams are known."""
        return len(self._streams)

    def count_started(self) -> int:
        """How many streams are started."""
        return sum(1 for s in self._streams.values() if s.status == "started")

    def started_on(self, container_id: str) -> list[str]:
        """Ids of the started streams of one engine."""
        return [s.id for s in self._streams.values() if s.status == "started" and s.container_id == container_id]

    async def stats(self, stream_id: str, since: datetime | None) -> list[StatSnapshot]:
        """Snapshots from memory; after a restart, from the store."""
        snaps = self._stats.get(stream_id)
        if not snaps and stream_id in self._streams:
            try:
                return await self._store.load_stats(stream_id, since=since)
            except Exception:  # noqa: BLE001
                logger.warning("could not load stats of %s", stream_id, exc_info=True)
                return []
        return [s for s in snaps or () if since is None or s.ts >= since]

    async def add_snapshot(self, stream: Stream, snap: StatSnapshot) -> None:
        """Keep one stat snapshot, in memory and in the store."""
        self._stats.setdefault(stream.id, deque(maxlen=self.settings.streams.stats_history_max)).append(snap)
        try:
            await self._store.add_stat(stream.id, snap, keep=self.settings.streams.stats_history_max)
        except Exception:  # noqa: BLE001
            logger.warning("could not store stats", exc_info=True)

    # -- started and ended --------------------------------------------------------------------------------
    def _resolve_engine(self, container_id: str | None, host: str, port: int) -> Engine | None:
        engines = self._fleet.engines()
        if container_id:
            for e in engines:
                if container_id in (e.container_id, e.container_name):
                    return e
        norm = "127.0.0.1" if host in LOCAL_HOSTS else host
        for e in engines:
            ehost = "127.0.0.1" if e.host in LOCAL_HOSTS else e.host
            if e.port == port and (ehost == norm or host == e.container_name):
                return e
        matches = [e for e in engines if port in (e.host_http_port, e.container_http_port)]
        return matches[0] if len(matches) == 1 else None

    async def started(self, start: StreamStart) -> Stream:
        """Record a started stream (idempotent for a stream already started: its URLs are refreshed)."""
        sid = start.stream_id
        engine = self._resolve_engine(start.container_id, start.engine_host, start.engine_port)
        now = utcnow()
        existing = self._streams.get(sid)
        if existing is not None and existing.status == "started":
            if start.stat_url:
                existing.stat_url = start.stat_url
            if start.command_url:
                existing.command_url = start.command_url
            self._record("streams", operation="stream_started", stream_id=sid, duplicate=True,
                         container_id=existing.container_id)
            await self._save(existing)
            return existing
        if engine is None:
            await self._admit_unattached()
        stream = Stream(
            id=sid, key_type=start.key_type, key=start.key,
            container_id=engine.container_id if engine else f"{start.engine_host}:{start.engine_port}",
            playback_session_id=start.playback_session_id, stat_url=start.stat_url,
            command_url=start.command_url, is_live=start.is_live, started_at=now,
            labels=dict(start.labels), attached=engine is not None,
        )
        self._streams[sid] = stream
        self._stats[sid] = deque(maxlen=self.settings.streams.stats_history_max)
        if engine is not None:
            if sid not in engine.streams:
                engine.streams.append(sid)
            engine.last_stream_usage = now
            timer = self._grace_timers.pop(engine.container_id, None)
            if timer is not None:
                timer.cancel()
            await self._fleet.save(engine)
        self.total_started += 1
        self._metrics.events_started.inc()
        self._update_gauge()
        self._record("streams", operation="stream_started", stream_id=sid, container_id=stream.container_id,
                     attached=stream.attached, key_type=stream.key_type, restarted=existing is not None)
        await self._save(stream)
        if engine is None:
            self._arm_expiry()
        return stream

    async def ended(self, container_id: str | None, stream_id: str | None,
                    reason: str | None) -> tuple[bool, Stream | None]:
        """Record an ended stream, by id or by its engine (the latest started one). Idempotent.

        Returns whether a stream was ended now, and the stream found.
        """
        stream: Stream | None = None
        if stream_id:
            stream = self._streams.get(stream_id)
        elif container_id:
            candidates = [s for s in self._streams.values()
                          if s.status == "started" and s.container_id == container_id]
            if not candidates:
                for e in self._fleet.engines():
                    if container_id == e.container_name:
                        candidates = [s for s in self._streams.values()
                                      if s.status == "started" and s.container_id == e.container_id]
            stream = max(candidates, key=lambda s: s.started_at) if candidates else None
        if stream is None:
            self._record("streams", operation="stream_ended", stream_id=stream_id, found=False)
            return False, None
        if stream.status == "ended":
            self._record("streams", operation="stream_ended", stream_id=stream.id, duplicate=True)
            return False, stream
        await self.end(stream, reason or "ended", schedule_auto_delete=True)
        return True, stream

    async def end(self, stream: Stream, reason: str, *, schedule_auto_delete: bool = False) -> None:
        """End one stream; with ``schedule_auto_delete``, an engine left without streams may be auto-deleted."""
        now = utcnow()
        stream.status = "ended"
        stream.ended_at = now
        stream.end_reason = reason
        self._metrics.events_ended.inc()
        self._update_gauge()
        engine = self._fleet.get(stream.container_id)
        if engine is not None:
            if stream.id in engine.streams:
                engine.streams.remove(stream.id)
            engine.last_stream_usage = now
            await self._fleet.save(engine)
            if schedule_auto_delete and not engine.streams and self.settings.pool.auto_delete:
                self._schedule_auto_delete(engine.container_id)
        self._record("streams", operation="stream_ended", stream_id=stream.id, container_id=stream.container_id,
                     reason=reason)
        await self._save(stream)

    async def end_streams_of(self, container_id: str, reason: str) -> None:
        """End every started stream of one engine."""
        for stream in list(self._streams.values()):
            if stream.status == "started" and stream.container_id == container_id:
                await self.end(stream, reason)

    async def stop(self, stream: Stream) -> bool:
        """Stop a started stream through its engine's ``command_url`` (``method=stop``), then end it.

        Returns whether the engine confirmed the stop; False (and nothing done) for a stream not started.
        """
        if stream.status != "started":
            return False
        stopped = False
        engine = self._fleet.get(stream.container_id)
        if engine is not None and stream.command_url:
            parts = urlsplit(stream.command_url)
            query = "&".join(q for q in parts.query.split("&") if q and not q.startswith("method="))
            url = f"http://{engine.host}:{engine.port}{parts.path}?{query + '&' if query else ''}method=stop"
            try:
                resp = await self._http.get(url, timeout=3.0)
                stopped = resp.status_code == 200
            except httpx.HTTPError:
                stopped = False
        await self.end(stream, "stopped", schedule_auto_delete=True)
        return stopped

    # -- auto-delete --------------------------------------------------------------------------------------
    def _schedule_auto_delete(self, container_id: str) -> None:
        old = self._grace_timers.pop(container_id, None)
        if old is not None:
            old.cancel()

        async def later() -> None:
            if await sleep_or_stop(self._stop, self.settings.pool.engine_grace_period_s):
                return
            self._grace_timers.pop(container_id, None)
            engine = self._fleet.get(container_id)
            # An unreachable engine may serve streams aceorch cannot see: it is never auto-deleted.
            if engine is None or engine.streams or engine.health_status is HealthStatus.UNREACHABLE:
                return
            s = self.settings
            engines = self._fleet.engines()
            free = sum(1 for e in engines if not e.streams)
            if len(engines) - 1 < s.pool.min_replicas or free - 1 < s.pool.min_free_replicas:
                self._record("autoscaler", operation="auto_delete_skipped", container_id=container_id,
                             reason="floor")
                return
            await self._fleet.stop_engine(container_id, "auto_delete")

        self._grace_timers[container_id] = spawn(later(), name=f"auto-delete {container_id[:12]}", tasks=self._tasks)

    def cancel_auto_delete(self, container_id: str) -> None:
        """Cancel the pending auto-delete of one engine, unless the caller is that auto-delete."""
        timer = self._grace_timers.pop(container_id, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    def auto_delete_pending(self, container_id: str) -> bool:
        """An auto-delete of that engine is waiting out its grace period."""
        return container_id in self._grace_timers

    def cancel_timers(self) -> None:
        """Cancel every pending auto-delete and the unattached-stream expiry (at shutdown)."""
        for timer in self._grace_timers.values():
            timer.cancel()
        if self._expiry is not None:
            self._expiry.cancel()

    def pending_tasks(self) -> list[asyncio.Task[Any]]:
        """Auto-delete tasks still running; once stopping, the expiry task too (for shutdown)."""
        tasks = list(self._tasks)
        if self._stop.is_set() and self._expiry is not None and not self._expiry.done():
            tasks.append(self._expiry)
        return tasks

    # -- unattached streams -------------------------------------------------------------------------------
    def _unattached(self) -> list[Stream]:
        """Every kept stream of an unmanaged engine, started or ended (an ended one may be stale, not expired)."""
        return [s for s in self._streams.values() if not s.attached]

    def _expires_at(self, stream: Stream) -> datetime:
        return stream.started_at + timedelta(seconds=self.settings.streams.stream_unattached_ttl_s)

    async def _admit_unattached(self) -> None:
        """Room for one more unattached stream, or :class:`TooManyStreams`."""
        cap = self.settings.streams.max_unattached_streams
        unattached = self._unattached()
        if len(unattached) < cap:
            return
        await self.expire_unattached()
        unattached = self._unattached()
        if len(unattached) < cap:
            return
        oldest = min((self._expires_at(s) for s in unattached), default=utcnow())
        wait = max(1, int((oldest - utcnow()).total_seconds() + 0.999))
        self._record("streams", operation="stream_refused", reason="max_unattached_streams", limit=cap)
        raise TooManyStreams(
            f"{cap} streams on engines aceorch does not manage are kept (MAX_UNATTACHED_STREAMS); "
            f"the oldest expires in {wait} s (STREAM_UNATTACHED_TTL_S)",
            retry_after_s=wait,
        )

    async def expire_unattached(self) -> int:
        """End (if started) and forget the unattached streams started over STREAM_UNATTACHED_TTL_S ago; how many."""
        now = utcnow()
        due = [s for s in self._unattached() if self._expires_at(s) <= now]
        for stream in due:
            if stream.status == "started":
                await self.end(stream, UNATTACHED_EXPIRED)
            self._streams.pop(stream.id, None)
            self._stats.pop(stream.id, None)
        return len(due)

    def _arm_expiry(self) -> None:
        """Run the expiry task while unattached streams exist (one task; it ends when none is left)."""
        if self._expiry is not None and not self._expiry.done():
            return
        if self._stop.is_set() or not self._unattached():
            return
        self._expiry = asyncio.create_task(self._expire_loop(), name="unattached stream expiry")

    async def _expire_loop(self) -> None:
        while True:
            unattached = self._unattached()
            if not unattached:
                return
            # Every new stream expires after the ones already here, so the earliest deadline only moves later.
            first = min(self._expires_at(s) for s in unattached)
            if await sleep_or_stop(self._stop, (first - utcnow()).total_seconds()):
                return
            try:
                await self.expire_unattached()
            except Exception:  # noqa: BLE001 - the loop outlives one bad round; the next one retries
                logger.warning("could not expire unattached streams", exc_info=True)
                if await sleep_or_stop(self._stop, 1.0):
                    return

    # -- pruning ------------------------------------------------------------------------------------------
    async def prune(self) -> int:
        """Forget expired unattached streams and streams ended longer than STREAM_RETENTION_S ago; how many."""
        expired = await self.expire_unattached()
        cutoff = utcnow() - timedelta(seconds=self.settings.streams.stream_retention_s)
        old = [sid for sid, st in self._streams.items()
               if st.status == "ended" and st.ended_at and st.ended_at < cutoff]
        for sid in old:
            self._streams.pop(sid, None)
            self._stats.pop(sid, None)
        try:
            await self._store.prune_streams(ended_before=cutoff)
        except Exception:  # noqa: BLE001
            logger.warning("could not prune the store", exc_info=True)
        return expired + len(old)

    # -- helpers ------------------------------------------------------------------------------------------
    async def _save(self, stream: Stream) -> None:
        try:
            await self._store.save_stream(stream)
        except Exception:  # noqa: BLE001
            logger.warning("could not save stream %s", stream.id, exc_info=True)

    def _update_gauge(self) -> None:
        self._metrics.streams_active.set(self.count_started())
