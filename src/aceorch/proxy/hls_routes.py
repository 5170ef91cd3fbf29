"""The proxy's HLS and playlist routes: ``/ace/manifest.m3u8``, ``/ace/hls/<stream>/<n>.ts``, ``/playlist.m3u``.

HLS streams share the TS sessions of the :class:`~aceorch.proxy.hub.Hub` (see :mod:`aceorch.proxy.hls`); the
:class:`~aceorch.proxy.hls.HlsRegistry` is made on first use in ``app.state.proxy_hls``. Like ``/ace/getstream``
these routes need ``?token=`` only when PROXY_API_KEY is set; segment URLs in the playlist carry it.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from aceorch.aiokits import request_id_var
from aceorch.proxy.hls import TARGET_S, HlsRegistry, HlsStream
from aceorch.proxy.hub import Hub, content_key
from aceorch.proxy.playlist import rewrite_m3u
from aceorch.proxy.routes import FIRST_BYTES_WAIT_S, REFUSALS, _error, _key_refusal, _token_refusal

__all__ = ["router", "HlsStatusPublic"]

router = APIRouter(tags=["proxy"])

M3U8 = "application/vnd.apple.mpegurl"
#: How long a segment request waits for a segment that is about to be cut.
SEGMENT_WAIT_S = 3 * TARGET_S


class HlsStatusPublic(BaseModel):
    """The proxy's HLS counters: streams, playlists and segments served, segments cut from the engine's data."""

    model_config = ConfigDict(extra="forbid")

    hls_streams: int
    live_streams: int
    playlists_served: int
    segments_served: int
    segment_bytes_out: int
    segment_misses: int
    segments_cut: int


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.proxy
    return hub


def registry(request: Request) -> HlsRegistry:
    """This app's HLS streams (made on first use, with the proxy settings)."""
    reg: HlsRegistry | None = getattr(request.app.state, "proxy_hls", None)
    if reg is None:
        s = _hub(request).settings
        reg = HlsRegistry(s.proxy_hls_cache_segments, s.proxy_linger_s)
        request.app.state.proxy_hls = reg
    return reg


def _segment_url(stream: HlsStream, token: str | None) -> str:
    suffix = f"?token={quote(token)}" if token else ""
    return f"hls/{stream.id}/{{seq}}.ts{suffix}"


@router.get("/ace/manifest.m3u8", response_model=None, summary="Watch a stream (HLS)",
            responses={200: {"content": {M3U8: {}}, "description": "the live HLS playlist"},
                       400: {"description": "no id or infohash"}, **REFUSALS,
                       502: {"description": "the engine could not start the stream (JSON with code)"},
                       503: {"description": "no engine can be had now (JSON with code, and Retry-After)"},
                       504: {"description": "the stream sent nothing in time"}})
async def manifest(request: Request) -> Response:
    """The live playlist of ``id=`` (or ``infohash=``), its segments cut by the proxy from the shared stream."""
    hub = _hub(request)
    refusal = _token_refusal(request, hub)
    if refusal is not None:
        return refusal
    params = dict(request.query_params)
    found = content_key(params)
    if found is None:
        return _error(400, {"detail": "give id=<content id> or infohash=<infohash>", "code": "missing_source"})
    key_type, key = found
    reg = registry(request)
    rid = request_id_var.get()
    begin = time.perf_counter()
    stream = reg.get(key)
    for _ in range(2):
        if stream is None:
            session = hub.open(key_type, key, params, rid)
            stream = reg.add(session)
            hub.counters["viewers_total"] += 1
        stream.touch()
        session = stream.session
        try:
            await asyncio.wait_for(session.first_data.wait(), FIRST_BYTES_WAIT_S)
        except TimeoutError:
            stream.close("start_timeout")
            return _error(504, {"detail": f"the stream sent nothing within {FIRST_BYTES_WAIT_S:g} s",
                                "code": "start_timeout"})
        if session.failure is not None:
            stream.close("start_failed")
            f = session.failure
            return _error(f.status, f.body, f.retry_after)
        if await stream.wait_segments(1, FIRST_BYTES_WAIT_S):
            break
        stream.close("session_stopped")  # it stopped while we waited: start it again
        stream = None
    else:
        return _error(504, {"detail": "the stream ended before its first segment", "code": "start_timeout"})
    stream.touch()
    stream.playlist_requests += 1
    reg.counters["playlists_served"] += 1
    if stream.playlist_requests == 1:
        hub.record("requests", operation="first_byte_ready", stream_key=key, request_id=rid, format="hls",
                   duration_ms=(time.perf_counter() - begin) * 1000)
    template = _segment_url(stream, request.query_params.get("token"))
    body = stream.segmenter.playlist(lambda seq: template.format(seq=seq),
                                     min(6, max(1, reg.cache_segments - 2)))
    return Response(body, media_type=M3U8, headers={"Cache-Control": "no-cache"})


@router.get("/ace/hls/{stream_id}/{seq}.ts", response_model=None, summary="One HLS segment",
            responses={200: {"content": {"video/MP2T": {}}, "description": "the segment"}, **REFUSALS,
                       404: {"description": "unknown stream, or a segment no longer (or not yet) held"}})
async def segment(request: Request, stream_id: str, seq: int) -> Response:
    """Segment ``seq`` of an HLS stream, from the shared in-memory cache (cut once, served to every viewer)."""
    hub = _hub(request)
    refusal = _token_refusal(request, hub)
    if refusal is not None:
        return refusal
    reg = registry(request)
    stream = reg.by_id.get(stream_id)
    if stream is None or stream.closed:
        return _error(404, {"detail": "unknown HLS stream (reload the playlist)", "code": "unknown_stream"})
    stream.touch()
    seg = stream.segmenter.find(seq)
    if seg is None:  # only then cut what came in since (cutting may drop the oldest segments from the cache)
        stream.pull()
        seg = stream.segmenter.find(seq)
    if seg is None and seq >= stream.segmenter.cut and seq <= stream.segmenter.cut + 1:
        await stream.wait_segments(seq + 1, SEGMENT_WAIT_S)
        seg = stream.segmenter.find(seq)
    if seg is None:
        reg.counters["segment_misses"] += 1
        return _error(404, {"detail": f"segment {seq} is not held", "code": "unknown_segment"})
    stream.segment_requests += 1
    stream.served(len(seg.data))
    reg.counters["segments_served"] += 1
    reg.counters["segment_bytes_out"] += len(seg.data)
    return Response(seg.data, media_type="video/MP2T", headers={"Cache-Control": "max-age=60"})


@router.get("/proxy/hls", summary="The proxy's HLS counters", response_model=HlsStatusPublic, responses=REFUSALS)
async def hls_status(request: Request) -> Response | HlsStatusPublic:
    """Streams, playlists and segments served, and segments cut (API key when set)."""
    refusal = _key_refusal(request)
    if refusal is not None:
        return refusal
    reg = registry(request)
    return HlsStatusPublic(**reg.counters, live_streams=len(reg.by_key), segments_cut=reg.segments_cut())


async def _playlist(request: Request, source: str | None) -> Response:
    hub = _hub(request)
    refusal = _token_refusal(request, hub)
    if refusal is not None:
        return refusal
    if source is None:
        path = hub.settings.playlist_file
        if not path:
            return _error(404, {"detail": "PLAYLIST_FILE is not set: POST the M3U instead", "code": "no_playlist"})
        try:
            source = await asyncio.to_thread(Path(path).read_text, encoding="utf-8", errors="replace")
        except OSError as exc:
            return _error(404, {"detail": f"PLAYLIST_FILE cannot be read: {exc.strerror}", "code": "no_playlist"})
    hls = request.query_params.get("format", "").lower() == "hls"
    body = rewrite_m3u(source, str(request.base_url), hls=hls, token=request.query_params.get("token"))
    return Response(body, media_type="audio/x-mpegurl",
                    headers={"Content-Disposition": 'inline; filename="playlist.m3u"'})


PLAYLIST_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"audio/x-mpegurl": {}}, "description": "the playlist, entries pointing at the proxy"},
    **REFUSALS, 404: {"description": "no PLAYLIST_FILE (GET)"}, 422: {"description": "a JSON body without m3u"}}


@router.get("/playlist.m3u", response_model=None, summary="PLAYLIST_FILE with proxy URLs",
            responses=PLAYLIST_RESPONSES)
async def playlist_get(request: Request) -> Response:
    """PLAYLIST_FILE with its ``acestream://`` entries pointing at the proxy (TS; ``?format=hls`` for HLS)."""
    return await _playlist(request, None)


@router.post("/playlist.m3u", response_model=None, summary="An M3U body with proxy URLs",
             responses=PLAYLIST_RESPONSES)
async def playlist_post(request: Request) -> Response:
    """The posted M3U with its ``acestream://`` entries pointing at the proxy (TS; ``?format=hls`` for HLS).

    The body is JSON ``{"m3u": "<the playlist>"}`` (the orchestrator accepts only JSON bodies on POST), or, on the
    standalone proxy, the M3U text itself."""
    raw = await request.body()
    if "json" in request.headers.get("content-type", "").lower():
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("m3u"), str):
            return _error(422, {"detail": 'send {"m3u": "<the playlist text>"}', "code": "invalid_body"})
        return await _playlist(request, data["m3u"])
    return await _playlist(request, raw.decode("utf-8", errors="replace"))
