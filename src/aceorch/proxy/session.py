"""One upstream engine session per content key, and what happens to it: start, reconnect, failover, linger, stop.

The session's task reads the engine into the shared :class:`~aceorch.proxy.buffer.FanoutBuffer`. When the engine
stalls for PROXY_UPSTREAM_STALL_S or drops the connection, the same engine is asked again once; then the stream
moves to another engine (provisioned if none is free) and a stalled engine is reported to health. When the
orchestrator gives up on the engine under a live session (unhealthy, unreachable, gone, its VPN dropped), the hub
calls :meth:`StreamSession.move_off` and the stream moves at once, without retrying that engine. Viewers stay
connected throughout: they see a gap, which is recorded. After the last viewer leaves, the session lingers
for PROXY_LINGER_S, then stops through the engine's ``command_url`` and ends with reason ``no_viewers``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from aceorch.aiokits import spawn
from aceorch.config import ProxySettings
from aceorch.errors import ProvisioningBlocked, ProvisioningError, VpnFailure
from aceorch.models import StreamStart, utcnow
from aceorch.proxy.buffer import FanoutBuffer
from aceorch.proxy.client import OrchestratorClient
from aceorch.proxy.selection import Claim, Selector
from aceorch.proxy.upstream import EngineSession, UpstreamError, read_playback, start_session, stop_session

__all__ = ["StreamSession", "StartFailed", "Viewer"]

logger = logging.getLogger(__name__)

#: Wait between failover rounds when no engine can be had (provisioning blocked), if it gives no estimate.
FAILOVER_RETRY_S = 2.0
#: Engines tried for a stream that never sent a byte before its viewers get an error.
START_ENGINES = 2
#: Outcomes of a play that come from the orchestrator's view of the engine (see selection.move_reason): the
#: stream moves at once, without a second try on the same engine and without a health report of its own.
MOVE_OUTCOMES = frozenset({"engine_gone", "engine_unhealthy", "engine_unreachable"})


class StartFailed(Exception):
    """The stream could not start for its first viewers: ``status`` and a JSON ``body`` to answer with."""

    def __init__(self, status: int, body: dict[str, Any], retry_after: int | None = None) -> None:
        super().__init__(body.get("detail", ""))
        self.status = status
        self.body = body
        self.retry_after = retry_after


@dataclass(eq=False)
class Viewer:
    """One connected viewer of a stream."""

    request_id: str | None
    client: str
    joined: float = field(default_factory=time.monotonic)
    bytes_out: int = 0
    lagged: int = 0
    #: ``time.monotonic()`` of the viewer's last move to the live edge (None: never).
    last_lag: float | None = None


class StreamSession:
    """The engine session of one content key and its viewers."""

    def __init__(
        self, key_type: str, key: str, params: Mapping[str, str], *, settings: ProxySettings,
        client: OrchestratorClient, selector: Selector, http: httpx.AsyncClient, record: Callable[..., None],
        request_id: str | None, on_closed: Callable[[StreamSession], None],
    ) -> None:
        self.key_type = key_type
        self.key = key
        self.params = dict(params)
        self.settings = settings
        self._client = client
        self._selector = selector
        self._http = http
        self._record = record
        self.request_id = request_id
        self._on_closed = on_closed
        self.buffer = FanoutBuffer(settings.buffer_bytes)
        self.viewers: set[Viewer] = set()
        self.started_at = utcnow()
        self.state = "starting"
        self.claim: Claim | None = None
        self.engine_session: EngineSession | None = None
        self.stream_id: str | None = None
        self.first_data = asyncio.Event()
        self.failure: StartFailed | None = None
        self.gaps_ms: list[float] = []
        self.reconnects = 0
        self.failovers = 0
        self.viewers_total = 0
        self.lagged = 0
        self.stalled = 0
        self.bytes_out_done = 0
        self.end_reason: str | None = None
        #: Whether the hub has added this session's totals to its own (once, when it stopped).
        self.counted = False
        #: Engine-session stops still running (awaited, bounded, at shutdown).
        self.stops: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._linger: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_data = time.monotonic()
        #: (container id, reason) once the hub said the stream must leave that engine.
        self._move: tuple[str, str] | None = None
        #: The scope of the play in progress, expired at once by move_off.
        self._play_scope: asyncio.Timeout | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the session's task (in the creating request's context, so its records carry its request id)."""
        self._task = asyncio.create_task(self._run(), name=f"proxy stream {self.key[:12]}")

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The session's task."""
        return self._task

    @property
    def alive(self) -> bool:
        """Whether new viewers may join (the session is neither stopping nor failed)."""
        return not self._stopping and self.failure is None

    def attach(self, viewer: Viewer) -> None:
        """A viewer joins; a pending linger is cancelled."""
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self.viewers.add(viewer)
        self.viewers_total += 1
        self._record("clients", operation="client_joined", stream_key=self.key, request_id=viewer.request_id,
                     viewers=len(self.viewers), client=viewer.client)

    def detach(self, viewer: Viewer, reason: str) -> None:
        """A viewer leaves; with no viewer left the session lingers, then stops."""
        if viewer not in self.viewers:
            return
        self.viewers.discard(viewer)
        self.bytes_out_done += viewer.bytes_out
        if reason == "client_stalled":
            self.stalled += 1
        self._record("clients", operation="client_left", stream_key=self.key, request_id=viewer.request_id,
                     reason=reason, bytes=viewer.bytes_out, lagged=viewer.lagged,
                     duration_ms=(time.monotonic() - viewer.joined) * 1000, viewers=len(self.viewers))
        if not self.viewers and not self._stopping:
            loop = asyncio.get_running_loop()
            self._linger = loop.call_later(self.settings.proxy_linger_s, self._linger_over)

    def _linger_over(self) -> None:
        self._linger = None
        if not self.viewers:
            self.stop("no_viewers")

    def stop(self, reason: str) -> None:
        """Stop the session: no new viewers, the upstream is stopped and the stream ended with ``reason``."""
        if self._stopping:
            return
        self._stopping = True
        self.end_reason = reason
        self._on_closed(self)
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def move_off(self, claim: Claim, reason: str) -> bool:
        """Leave the claimed engine now (the orchestrator gave up on it); whether this started a move.

        Only signals: the session's own task ends the engine's session and moves the stream, as on a stall.
        """
        if self._stopping or self.claim is not claim or self._move is not None:
            return False
        self._move = (claim.engine.container_id, reason)
        self._record("streams", operation="upstream_engine_unusable", stream_key=self.key,
                     container_id=claim.engine.container_id, reason=reason)
        scope = self._play_scope
        if scope is not None:
            scope.reschedule(asyncio.get_running_loop().time())
        return True

    def _moving(self) -> str | None:
        """The move reason for the current claim, if the hub signalled one."""
        if self._move is None or self.claim is None or self._move[0] != self.claim.engine.container_id:
            return None
        return self._move[1]

    def counted_lag(self, viewer: Viewer, lags: int) -> None:
        """A viewer was moved to the live edge ``lags`` more times."""
        viewer.lagged += lags
        viewer.last_lag = time.monotonic()
        self.lagged += lags
        self._record("clients", operation="client_lagged", stream_key=self.key, request_id=viewer.request_id,
                     lagged=viewer.lagged)

    def record_stalled(self, viewer: Viewer, stall_s: float) -> None:
        """A viewer accepted nothing for PROXY_CLIENT_STALL_S and is disconnected."""
        self._record("clients", operation="client_stalled", stream_key=self.key, request_id=viewer.request_id,
                     stall_s=stall_s, bytes=viewer.bytes_out)

    # -- the upstream ---------------------------------------------------------------------------------------
    async def _run(self) -> None:
        exclude: set[str] = set()
        tries_before_data = 0
        try:
            while not self._stopping:
                try:
                    self.claim = await self._selector.acquire(self.key, self.request_id, exclude=frozenset(exclude))
                except ProvisioningError as exc:
                    if not self.first_data.is_set():
                        self._fail_start(exc)
                        return
                    await asyncio.sleep(exc.recovery_eta_seconds or FAILOVER_RETRY_S)
                    continue
                engine = self.claim.engine
                outcome = "dropped"
                for attempt in range(2):
                    if attempt:
                        self.reconnects += 1
                        self._record("streams", operation="upstream_reconnect", stream_key=self.key,
                                     container_id=engine.container_id, after=outcome)
                    outcome = await self._play_once()
                    if outcome == "start_failed_content" or outcome in MOVE_OUTCOMES:
                        break
                if self.failure is not None:
                    return
                if not self.first_data.is_set():
                    tries_before_data += 1
                    if tries_before_data >= START_ENGINES:
                        self._fail(502, {"detail": f"no engine could start the stream ({outcome})",
                                         "code": "upstream_failed"})
                        return
                # The engine failed twice: move the stream elsewhere.
                if outcome == "stalled":
                    # In the background: the move does not wait for the orchestrator to take the report.
                    spawn(self._client.report_unhealthy(engine.container_id, "stream stalled under a live stream",
                                                        self.request_id),
                          name=f"report {engine.container_id[:12]}", tasks=self.stops)
                exclude.add(engine.container_id)
                self._release()
                self._move = None
                self.failovers += 1
                self.state = "failover"
                self._record("streams", operation="upstream_failover", stream_key=self.key,
                             container_id=engine.container_id, reason=outcome)
        except asyncio.CancelledError:
            pass
        finally:
            await asyncio.shield(self._shutdown())

    @asynccontextmanager
    async def _interruptible(self) -> AsyncIterator[None]:
        """A wait that move_off cuts short (TimeoutError), at once if a move is already pending."""
        async with asyncio.timeout(None) as scope:
            if self._moving() is not None:
                scope.reschedule(asyncio.get_running_loop().time())
            self._play_scope = scope
            try:
                yield
            finally:
                self._play_scope = None

    async def _play_once(self) -> str:
        """One engine session: start, read until it ends or the hub moves the stream; returns why it ended.

        Only the engine start and the read are cut short by a move; the stream bookkeeping around them always
        completes, so that the orchestrator hears of every start and end.
        """
        assert self.claim is not None
        moving = self._moving()
        if moving is not None:
            return moving
        engine = self.claim.engine
        s = self.settings
        try:
            async with self._interruptible():
                session = await start_session(self._http, engine, self.params,
                                              timeout=s.proxy_upstream_start_timeout_s)
        except UpstreamError as exc:
            if not self.first_data.is_set() and "failed to load content" in str(exc):
                self._fail(502, {"detail": f"the engine could not start the stream: {exc}",
                                 "code": "upstream_failed"})
                return "start_failed_content"
            logger.info("stream %s: start on %s failed: %s", self.key, engine.container_name, exc)
            return "start_failed"
        except TimeoutError:
            return self._moving() or "stalled"
        self.engine_session = session
        try:
            self.stream_id = await self._client.stream_started(StreamStart(
                engine_host=engine.host, engine_port=engine.port, key_type=self.key_type, key=self.key,
                playback_session_id=session.playback_session_id, stat_url=session.stat_url,
                command_url=session.command_url, is_live=session.is_live, container_id=engine.container_id,
                labels={"proxy": "aceorch"},
            ), self.request_id)
            self._selector.mine.add(self.stream_id)
        except Exception as exc:  # noqa: BLE001 - the data path does not depend on the bookkeeping
            logger.warning("stream %s: stream_started was not recorded: %s", self.key, exc)
        self._record("streams", operation="stream_started", stream_key=self.key, container_id=engine.container_id,
                     stream_id=self.stream_id)
        self.state = "streaming" if self.first_data.is_set() else "starting"
        self.buffer.mark_discontinuity()
        outcome = "upstream_closed"  # the engine ended a live playback the proxy did not stop
        gap_from = self._last_data if self.first_data.is_set() else None
        try:
            async with self._interruptible():
                async for data in read_playback(self._http, session,
                                                first_byte_timeout=s.proxy_upstream_start_timeout_s,
                                                stall_timeout=s.proxy_upstream_stall_s):
                    if gap_from is not None:
                        gap = (time.monotonic() - gap_from) * 1000
                        self.gaps_ms.append(gap)
                        self._record("streams", operation="upstream_gap", stream_key=self.key, gap_ms=gap,
                                     container_id=engine.container_id)
                        gap_from = None
                    self.buffer.write(data)
                    self._last_data = time.monotonic()
                    if not self.first_data.is_set():
                        self.first_data.set()
                    self.state = "streaming"
        except TimeoutError:
            moving = self._moving()
            if moving is not None:
                outcome = moving
            else:
                outcome = "stalled"
                self._record("stress", operation="upstream_stall", stream_key=self.key,
                             container_id=engine.container_id, stall_s=s.proxy_upstream_stall_s)
        except (httpx.HTTPError, UpstreamError) as exc:
            outcome = "dropped"
            logger.info("stream %s: upstream on %s dropped: %s", self.key, engine.container_name, exc)
        self.state = "reconnecting"
        await self._end_upstream(outcome)
        return outcome

    async def _end_upstream(self, reason: str) -> None:
        """Stop the engine's session (best effort) and end its stream in the orchestrator."""
        session, self.engine_session = self.engine_session, None
        stream_id, self.stream_id = self.stream_id, None
        if session is not None:
            # In the background: a hung engine would hold the failover for the stop's timeout.
            spawn(stop_session(self._http, session), name=f"stop {self.key[:12]}", tasks=self.stops)
        if stream_id is not None and session is not None:
            try:
                await self._client.stream_ended(session.engine.container_id, stream_id, reason, self.request_id)
            except Exception as exc:  # noqa: BLE001
                logger.warning("stream %s: stream_ended was not recorded: %s", self.key, exc)
            self._selector.mine.discard(stream_id)
        self._record("streams", operation="stream_ended", stream_key=self.key, reason=reason,
                     stream_id=stream_id)

    def _release(self) -> None:
        if self.claim is not None:
            self._selector.release(self.claim)
            self.claim = None

    async def _shutdown(self) -> None:
        self._stopping = True
        try:
            await self._end_upstream(self.end_reason or "stopped")
        finally:
            self._release()
            self.state = "stopped"
            self.buffer.close()
            self._on_closed(self)

    # -- start failures -------------------------------------------------------------------------------------
    def _fail_start(self, exc: ProvisioningError) -> None:
        blocked = isinstance(exc, (ProvisioningBlocked, VpnFailure))  # as the API answers them: 503
        retry = max(1, int(exc.recovery_eta_seconds or 30)) if blocked else None
        self._fail(503 if blocked else 502, {
            "detail": exc.message, "error": exc.error, "code": exc.code, "recovery_eta_seconds": retry,
        }, retry)

    def _fail(self, status: int, body: dict[str, Any], retry_after: int | None = None) -> None:
        self.failure = StartFailed(status, body, retry_after)
        self.end_reason = str(body.get("code") or "start_failed")
        self.first_data.set()
