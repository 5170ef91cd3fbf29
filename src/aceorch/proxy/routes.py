"""The proxy's HTTP routes: ``/ace/getstream``, ``/ace/status`` and ``/proxy/streams``.

Players cannot send headers, so ``/ace/*`` is open unless PROXY_API_KEY is set, then it needs ``?token=``.
``/proxy/streams`` needs the API key (bearer) when API_KEY is set. The app holds the
:class:`~aceorch.proxy.hub.Hub` as ``app.state.proxy`` and the settings as ``app.state.settings``. Each viewer's
completed write of a chunk adds the chunk's delay since its upstream read to the hub's ``delivery_delay``, from
the moment that viewer first reached the live edge (the backlog a viewer joins with is not a delay).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from aceorch.aiokits import request_id_var
from aceorch.proxy.debug import mask_client, request_fields
from aceorch.proxy.hub import Hub, content_key
from aceorch.proxy.latency import DelayHistogram
from aceorch.proxy.schemas import ProxyStatusPublic, ProxyStreamPublic
from aceorch.proxy.session import StreamSession, Viewer

__all__ = ["router", "TSResponse"]

router = APIRouter(tags=["proxy"])

#: How long a viewer waits for the stream's first bytes (engine selection, provisioning, engine start) at most.
FIRST_BYTES_WAIT_S = 180.0
#: Chunks handed to one viewer per wake-up.
CHUNKS_PER_SEND = 16


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.proxy
    return hub


def _error(status: int, body: dict[str, Any], retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(body, status_code=status, headers=headers)


def _token_refusal(request: Request, hub: Hub) -> JSONResponse | None:
    key = hub.settings.api_key_value()
    if not key:
        return None
    token = request.query_params.get("token", "")
    if not token:
        return _error(401, {"detail": "missing ?token= (PROXY_API_KEY is set)"})
    if not hmac.compare_digest(token.encode(), key.encode()):
        return _error(403, {"detail": "invalid token"})
    return None


def _key_refusal(request: Request) -> JSONResponse | None:
    key = request.app.state.settings.api_key_value()
    if not key:
        return None
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return JSONResponse({"detail": "missing bearer token"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(token.strip().encode(), key.encode()):
        return _error(403, {"detail": "invalid token"})
    return None


def _client_address(request: Request) -> str:
    return mask_client(request.client.host if request.client else "")


def _done(hub: Hub, request: Request, response: Response, begin: float, sent: int = 0, **extra: Any) -> Response:
    """Write the viewer request's ``requests`` record and hand its response back."""
    hub.record("requests", **request_fields(request.method, request.url.path, response.status_code, begin, sent,
                                            _client_address(request), request.headers.get("user-agent"),
                                            request_id=request_id_var.get(), **extra))
    return response


@router.get("/ace/getstream", response_model=None, summary="Watch a stream (MPEG-TS)",
            responses={200: {"content": {"video/MP2T": {}}, "description": "the MPEG-TS stream"},
                       400: {"description": "no id or infohash"},
                       401: {"description": "PROXY_API_KEY is set and ?token= is missing"},
                       403: {"description": "wrong ?token="},
                       502: {"description": "the engine could not start the stream (JSON with code)"},
                       503: {"description": "no engine can be had now (JSON with code, and Retry-After)"},
                       504: {"description": "the stream sent nothing in time"}})
async def getstream(request: Request) -> Response | TSResponse:
    """The stream of ``id=`` (or ``content_id=``, ``infohash=``) as MPEG-TS, shared with its other viewers."""
    hub = _hub(request)
    begin = time.perf_counter()
    refusal = _token_refusal(request, hub)
    if refusal is not None:
        return _done(hub, request, refusal, begin)
    params = dict(request.query_params)
    found = content_key(params)
    if found is None:
        return _done(hub, request, _error(400, {"detail": "give id=<content id> or infohash=<infohash>",
                                                "code": "missing_source"}), begin)
    key_type, key = found
    viewer = Viewer(request_id_var.get(), _client_address(request))
    for _ in range(2):
        session = hub.open(key_type, key, params, viewer.request_id)
        session.attach(viewer)
        try:
            await asyncio.wait_for(session.first_data.wait(), FIRST_BYTES_WAIT_S)
        except TimeoutError:
            session.detach(viewer, "start_timeout")
            late = _error(504, {"detail": f"the stream sent nothing within {FIRST_BYTES_WAIT_S:g} s",
                                "code": "start_timeout"})
            return _done(hub, request, late, begin, stream_key=key)
        except asyncio.CancelledError:
            session.detach(viewer, "client_left")
            raise
        if session.failure is not None:
            session.detach(viewer, "start_failed")
            f = session.failure
            return _done(hub, request, _error(f.status, f.body, f.retry_after), begin, stream_key=key,
                         error_code=f.body.get("code"))
        if session.alive or session.buffer.head > 0:
            break
        session.detach(viewer, "session_stopped")  # it stopped while we waited: start it again
    hub.counters["viewers_total"] += 1
    hub.record("requests", operation="first_byte_ready", stream_key=key, request_id=viewer.request_id,
               duration_ms=(time.perf_counter() - begin) * 1000)
    return TSResponse(session, viewer, request=request, begin=begin, delays=hub.delivery_delay)


class TSResponse(Response):
    """One viewer's response: the shared buffer from the join point on, until the viewer or the stream goes."""

    media_type = "video/MP2T"

    def __init__(self, session: StreamSession, viewer: Viewer, *, request: Request | None = None,
                 begin: float | None = None, delays: DelayHistogram | None = None) -> None:
        # No Content-Length: the body never ends by itself (so Response's own header setup is not used).
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"video/MP2T"), (b"cache-control", b"no-cache")]
        self.session = session
        self.viewer = viewer
        self._request = request
        self._begin = begin if begin is not None else time.perf_counter()
        self._delays = delays

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session, viewer = self.session, self.viewer
        buf = session.buffer
        stall_s = session.settings.proxy_client_stall_s
        gone = asyncio.Event()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone.set()
                    return

        watcher = asyncio.create_task(watch(), name="proxy viewer disconnect")
        reason = "client_left"
        cursor = buf.cursor()
        delays, clock = self._delays, buf.clock
        read_at: list[float] = []
        live = False  # at the live edge once: from then on every write's delay is measured
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            while not gone.is_set():
                read_at.clear()
                pieces = buf.read(cursor, CHUNKS_PER_SEND, read_at)
                if cursor.lagged > viewer.lagged:
                    session.counted_lag(viewer, cursor.lagged - viewer.lagged)
                    live = False  # moved back to a join point: a backlog again
                if not pieces:
                    if buf.closed:
                        reason = f"stream_{session.end_reason or 'ended'}"
                        break
                    live = True
                    await buf.wait(cursor, 1.0)
                    continue
                for piece, at in zip(pieces, read_at, strict=True):
                    try:
                        async with asyncio.timeout(stall_s):
                            await send({"type": "http.response.body", "body": piece, "more_body": True})
                    except TimeoutError:
                        reason = "client_stalled"
                        session.record_stalled(viewer, stall_s)
                        return
                    viewer.bytes_out += len(piece)
                    if live and delays is not None:
                        delays.observe(clock() - at)
            if not gone.is_set() and reason.startswith("stream_"):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            reason = "client_left"
        finally:
            watcher.cancel()
            session.detach(viewer, reason)
            if self._request is not None:
                _done(_hub(self._request), self._request, self, self._begin, viewer.bytes_out,
                      stream_key=session.key, reason=reason)


REFUSALS: dict[int | str, dict[str, Any]] = {401: {"description": "key missing"}, 403: {"description": "wrong key"}}


@router.get("/ace/status", summary="The proxy's live counters", response_model=ProxyStatusPublic,
            responses=REFUSALS)
async def ace_status(request: Request) -> Response | ProxyStatusPublic:
    """``{"status": "ok"}`` with the proxy's counters: streams, viewers, bytes, lags, stalls, failovers."""
    hub = _hub(request)
    refusal = _token_refusal(request, hub)
    if refusal is not None:
        return refusal
    delay = hub.delivery_delay
    return ProxyStatusPublic.model_validate({**hub.status(), "delivery_delay_p50_ms": delay.quantile_ms(0.5),
                                             "delivery_delay_p99_ms": delay.quantile_ms(0.99)})


@router.get("/proxy/streams", summary="The proxy's live streams", response_model=list[ProxyStreamPublic],
            responses=REFUSALS)
async def proxy_streams(request: Request) -> Response | list[ProxyStreamPublic]:
    """Each live stream: key, engine, viewers, bytes in and out, start time, upstream state (API key when set)."""
    refusal = _key_refusal(request)
    if refusal is not None:
        return refusal
    return [ProxyStreamPublic.model_validate(s) for s in _hub(request).streams()]
