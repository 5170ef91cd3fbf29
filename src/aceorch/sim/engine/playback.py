"""The engine simulator's request handler base: reply helpers, progressive playback and HLS.

:class:`PlaybackHandler` holds what every engine route needs (the simulator, the engine's JSON envelope,
interruptible waits) and the routes that deliver media: ``/ace/r/...`` redirects to ``/content/...``, which
streams MPEG-TS to one reader per session, and the HLS playlist and segments. Each holds the request, sending
nothing, until its session reaches ``dl``. :class:`~aceorch.sim.engine.handler.EngineHandler` adds the rest.
"""

from __future__ import annotations

import time
from typing import Any, cast

from aceorch.sim import mpegts
from aceorch.sim._common import SimHTTPServer, SimRequestHandler
from aceorch.sim.engine.state import EngineState, Progress

__all__ = ["NOT_FOUND_TEXT", "PlaybackHandler"]

#: The real engine's 500 body for an unknown or ended playback session.
NOT_FOUND_TEXT = "Internal Server Error, couldn't find resource"

# Progressive playback: a burst from "cache", then a steady ~2 Mbit/s in ticks.
STREAM_BURST_PACKETS = 2800  # about 512 KiB
STREAM_TICK_S = 0.1
STREAM_TICK_PACKETS = 140  # 26 KiB per 0.1 s
# HLS: segment length as the playlist states it (before the time scale), the live window, packets a segment.
HLS_SEGMENT_S = 5.0
HLS_WINDOW = 17
HLS_SEGMENT_PACKETS = 1000


class PlaybackHandler(SimRequestHandler):
    """The media routes of the simulated engine, and the helpers all its routes share."""

    @property
    def sim(self) -> EngineState:
        """The simulated engine this request runs against."""
        return cast(EngineState, cast(SimHTTPServer, self.server).app)

    def setup(self) -> None:
        """Take the request-logging switch from the simulator's configuration."""
        super().setup()
        self.log_requests = self.sim.config.log_requests

    # ----------------------------------------------------------------- helpers

    def base_url(self) -> str:
        """The engine's URL as the client addressed it (its ``Host`` header), for the URLs we hand out."""
        host = (self.headers.get("Host") or "").strip() or f"127.0.0.1:{self.sim.config.http_port}"
        return f"http://{host}"

    def ace_json(self, response: Any, error: str | None) -> None:
        """Answer 200 with the engine's ``{"response": ..., "error": ...}`` envelope."""
        self.send_json(200, {"response": response, "error": error})

    def wait(self, seconds: float) -> None:
        """Hold the request for ``seconds`` (less if the process stops)."""
        if seconds > 0:
            self.sim.stop_event.wait(seconds)

    # ----------------------------------------------------------------- progressive playback

    def await_dl(self, token: str) -> Progress | None:
        """Hold the request, sending nothing, until the session reaches ``dl``, as the real engine does.

        None when the session ends or the client gives up first.
        """
        sim = self.sim
        if not sim.adjust(token, waiters=1):
            return None
        try:
            while not sim.stop_event.is_set():
                progress = sim.progress(token)
                if progress is None:
                    return None
                if progress.status == "dl":
                    return progress
                if self.wait_client_gone(0.05):
                    return None
            return None
        finally:
            sim.adjust(token, waiters=-1)

    def playback_redirect(self, infohash: str, token: str) -> None:
        """``/ace/r/<infohash>/<token>``: once in ``dl``, redirect to the session's ``/content/`` URL."""
        sim = self.sim
        sim.count("playback")
        session = sim.session(token)
        if session is None or session.infohash != infohash:
            self.send_text(500, NOT_FOUND_TEXT)
            return
        if self.await_dl(token) is None:
            if not self.client_gone() and not sim.stop_event.is_set():
                self.send_text(500, NOT_FOUND_TEXT)
            return
        location = f"{self.base_url()}/content/{infohash}/{session.content_n}"
        self.send_body(302, b"", "text/plain", {"Location": location})

    def content(self, infohash: str, number: int) -> None:
        """``/content/<infohash>/<n>``: the session's single progressive reader, streamed once in ``dl``."""
        sim = self.sim
        session = sim.session_by_content_n(number)
        if session is None or session.infohash != infohash:
            self.send_text(500, NOT_FOUND_TEXT)
            return
        token = session.token
        if self.await_dl(token) is None:
            if not self.client_gone() and not sim.stop_event.is_set():
                self.send_text(500, NOT_FOUND_TEXT)
            return
        claimed = sim.acquire_reader(token)
        if claimed is None:
            self.send_text(500, NOT_FOUND_TEXT)
            return
        if not claimed:
            # One consumer per progressive session: the real engine corrupts a second reader's response;
            # we refuse it.
            self.send_text(500, "Internal Server Error, playback session already has a reader")
            return
        try:
            self.stream(token)
        finally:
            sim.adjust(token, readers=-1)

    def stream(self, token: str) -> None:
        """Send MPEG-TS: a burst, then a steady rate, while the session flows; end on ``cut`` or its end.

        What is sent also goes to the disk cache, as the real engine keeps what it plays."""
        sim = self.sim
        session = sim.session(token)
        infohash = session.infohash if session is not None else token
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "video/MP2T")
        self.send_header("Connection", "close")
        self.end_headers()
        source = _packet_source(sim.config.media_file)
        tick_packets = _tick_packets(sim.config.stream_kbps)
        burst_sent = False
        try:
            while not sim.stop_event.is_set():
                progress = sim.progress(token)
                if progress is None or progress.cut:
                    return
                if not progress.flowing:
                    if self.wait_client_gone(0.1):
                        return
                    continue
                packets = tick_packets if burst_sent else STREAM_BURST_PACKETS
                burst_sent = True
                data = source.chunk(packets)
                self.wfile.write(data)
                sim.count("bytes_streamed", len(data))
                sim.cache.store(infohash, data)
                sim.touch(token)
                sim.stop_event.wait(STREAM_TICK_S)
        except OSError:
            return

    # ----------------------------------------------------------------- HLS

    def hls_playlist(self, infohash: str, token: str) -> None:
        """``/ace/m/<infohash>/<token>.m3u8``: a live window of segments, growing with time since ``dl``."""
        sim = self.sim
        sim.count("hls")
        session = sim.session(token)
        if session is None or session.infohash != infohash:
            if sim.dead_reason(token) == "superseded":
                self.send_text(403, "Forbidden")
            else:
                self.send_text(500, NOT_FOUND_TEXT)
            return
        if self.await_dl(token) is None:
            if not self.client_gone() and not sim.stop_event.is_set():
                status = 403 if sim.dead_reason(token) == "superseded" else 500
                self.send_text(status, "Forbidden" if status == 403 else NOT_FOUND_TEXT)
            return
        sim.touch(token)
        dl_at = session.dl_at if session.dl_at is not None else time.monotonic()
        segment_real_s = max(0.01, sim.scaled(HLS_SEGMENT_S))
        newest = int((time.monotonic() - dl_at) / segment_real_s)
        first = max(0, newest - HLS_WINDOW + 1)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            "#EXT-X-TARGETDURATION:7",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
        ]
        for number in range(first, newest + 1):
            lines.append(f"#EXTINF:{HLS_SEGMENT_S:.6f},")
            lines.append(f"{self.base_url()}/ace/c/{infohash}/{number}.ts")
        self.send_body(200, ("\n".join(lines) + "\n").encode(), "application/vnd.apple.mpegurl")

    def hls_segment(self, infohash: str, number: int) -> None:
        """``/ace/c/<infohash>/<n>.ts``: one segment of MPEG-TS for a live swarm."""
        sim = self.sim
        sim.count("hls")
        session = sim.session_by_infohash(infohash)
        if session is None:
            self.send_text(500, NOT_FOUND_TEXT)
            return
        sim.touch(session.token)
        body = _segment(sim.config.media_file, number)
        sim.count("bytes_streamed", len(body))
        sim.cache.store(infohash, body)
        self.send_body(200, body, "video/MP2T")


def _tick_packets(kbps: float | None) -> int:
    """Packets per tick for SIM_STREAM_KBPS (kilobytes per second); the built-in rate when unset."""
    if kbps is None:
        return STREAM_TICK_PACKETS
    return max(1, round(kbps * 1000 * STREAM_TICK_S / mpegts.PACKET_SIZE))


class MediaLoop:
    """Consecutive chunks of a real MPEG-TS file, from its start, looping at the end (whole packets only)."""

    def __init__(self, data: bytes) -> None:
        start = data.find(bytes([mpegts.SYNC_BYTE]))
        usable = (len(data) - start) // mpegts.PACKET_SIZE * mpegts.PACKET_SIZE
        self._data = data[start:start + usable]
        self._pos = 0

    def chunk(self, packets: int) -> bytes:
        """The next ``packets`` packets of the file (wrapping to its start)."""
        want = packets * mpegts.PACKET_SIZE
        parts: list[bytes] = []
        while want > 0:
            piece = self._data[self._pos:self._pos + want]
            parts.append(piece)
            want -= len(piece)
            self._pos = (self._pos + len(piece)) % len(self._data)
        return b"".join(parts)


_MEDIA_CACHE: dict[str, bytes] = {}


def _packet_source(media_file: str | None) -> mpegts.TSGenerator | MediaLoop:
    """The packets a progressive reader gets: synthetic, or SIM_MEDIA_FILE's (read once per process)."""
    if not media_file:
        return mpegts.TSGenerator()
    if media_file not in _MEDIA_CACHE:
        with open(media_file, "rb") as fh:
            _MEDIA_CACHE[media_file] = fh.read()
    return MediaLoop(_MEDIA_CACHE[media_file])


_SEGMENT_CACHE: dict[str, list[bytes]] = {}


def media_segments(data: bytes, packets: int = HLS_SEGMENT_PACKETS) -> list[bytes]:
    """A real MPEG-TS file cut into segments of about ``packets`` packets, each starting at a PAT before a key
    frame (so a player decodes it on its own); the whole file as one segment when it has no PAT."""
    size = mpegts.PACKET_SIZE
    start = data.find(bytes([mpegts.SYNC_BYTE]))
    body = data[start:start + (len(data) - start) // size * size]
    pats = [i for i in range(0, len(body), size) if body[i + 1] & 0x5F == 0x40 and body[i + 2] == 0]
    keyed = [at for at in pats if any(_random_access(body, at + k * size) for k in range(1, 4))]
    pats = keyed or pats
    if not pats:
        return [body]
    cuts = [pats[0]]
    for at in pats:
        if at - cuts[-1] >= packets * size:
            cuts.append(at)
    return [body[a:b] for a, b in zip(cuts, [*cuts[1:], len(body)], strict=True)]


def _random_access(data: bytes, at: int) -> bool:
    """Whether the packet at ``at`` sets random_access_indicator (a key frame starts in it)."""
    return at + 6 <= len(data) and bool(data[at + 3] & 0x20) and data[at + 4] > 0 and bool(data[at + 5] & 0x40)


def _segment(media_file: str | None, number: int) -> bytes:
    """HLS segment ``number``: SIM_MEDIA_FILE's segments in turn (looping), else one synthetic segment."""
    key = media_file or ""
    if key not in _SEGMENT_CACHE:
        if media_file:
            with open(media_file, "rb") as fh:
                _SEGMENT_CACHE[key] = media_segments(fh.read())
        else:
            _SEGMENT_CACHE[key] = [mpegts.segment_bytes(HLS_SEGMENT_PACKETS)]
    segments = _SEGMENT_CACHE[key]
    return segments[number % len(segments)]
