"""HLS from the proxy's shared buffer: segments cut once per content key, a live playlist, and the HLS idle timer.

The engine gives one playback session to either progressive or HLS reading, and a second start of the same
content supersedes the first; so the proxy keeps one progressive engine session per content key (the TS
session) and its HLS viewers get segments the proxy cuts from that session's shared buffer. TS and HLS viewers of
a channel thus share one engine session, and every byte is read from the engine once.

Segments start at the PAT before a key frame (random_access_indicator), once the target duration has passed, as
measured on the PCR (without PCRs, on bytes); a stream that marks no key frames is cut at a PAT after three
target durations. The last PROXY_HLS_CACHE_SEGMENTS segments are kept in memory, the same ``bytes`` object
for every viewer; the playlist lists the newest :data:`PLAYLIST_WINDOW` of them. Cutting runs on the request that
needs it and never waits on any viewer. The HLS viewers count as one viewer of the TS session; with no playlist or
segment request for PROXY_LINGER_S (at least two target durations) that viewer leaves and, with no TS viewer,
the session stops.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from aceorch.proxy.buffer import PACKET, SYNC
from aceorch.proxy.session import StreamSession, Viewer

__all__ = ["HlsStream", "HlsRegistry", "Segment", "Segmenter", "TARGET_S", "PLAYLIST_WINDOW"]

#: Target segment length, seconds of media.
TARGET_S = 2.0
#: Segments listed in the playlist (fewer when the cache is smaller).
PLAYLIST_WINDOW = 6
#: Bytes a segment holds at most when no PAT comes (a stream without PSI is still cut).
MAX_SEGMENT_BYTES = 8 << 20
#: Bytes taken as one target duration when the stream carries no PCR (about 2 Mbit/s).
NO_PCR_BYTES = 500_000
#: Packets from a PAT to the key frame it announces, at most (PAT, PMT, maybe SDT, then the key frame).
KEY_AFTER_PAT = 8 * PACKET
#: Target durations a segment may grow to while waiting for a key frame; then it is cut at a PAT anyway.
KEYLESS_TARGETS = 3
#: PCR steps larger than this (seconds) or backwards are discontinuities (a looped file, a new engine).
PCR_JUMP_S = 10.0


def _pcr(packet: memoryview | bytes) -> float | None:
    """The packet's PCR in seconds, or None when it carries none."""
    if not packet[3] & 0x20 or packet[4] < 7 or not packet[5] & 0x10:
        return None
    b = packet
    base = (b[6] << 25) | (b[7] << 17) | (b[8] << 9) | (b[9] << 1) | (b[10] >> 7)
    return base / 90000.0


def _random_access(packet: memoryview | bytes) -> bool:
    """Whether the packet's adaptation field sets random_access_indicator (a key frame starts in it)."""
    return bool(packet[3] & 0x20) and packet[4] > 0 and bool(packet[5] & 0x40)


def _is_pat(packet: memoryview | bytes) -> bool:
    return packet[0] == SYNC and packet[1] & 0x5F == 0x40 and packet[2] == 0


@dataclass(frozen=True, slots=True)
class Segment:
    """One cut segment: its media sequence number, duration (s), bytes, and whether a discontinuity precedes it."""

    seq: int
    duration: float
    data: bytes
    discontinuity: bool = False


class Segmenter:
    """Cuts packet-aligned MPEG-TS into segments at the PATs before key frames, by PCR time (pure: no I/O, no clock)."""

    def __init__(self, target_s: float = TARGET_S, keep: int = 12) -> None:
        self.target_s = target_s
        self.segments: deque[Segment] = deque(maxlen=max(1, keep))
        self.cut = 0
        self._pending = bytearray()
        self._elapsed = 0.0
        self._last_pcr: float | None = None
        self._seen_pcr = False
        self._discontinuity = False
        self._need_pat = True
        #: Where in the pending bytes the last PAT begins (-1: none yet) and the media time up to it.
        self._pat_at = -1
        self._pat_elapsed = 0.0

    def discontinuity(self) -> None:
        """The next data does not follow the previous (a lag or a new upstream): the partial segment is dropped."""
        self._pending.clear()
        self._elapsed = 0.0
        self._last_pcr = None
        self._discontinuity = bool(self.cut)
        self._need_pat = True
        self._pat_at = -1
        self._pat_elapsed = 0.0

    def feed(self, data: bytes) -> int:
        """Add whole packets; returns how many segments were completed."""
        done = 0
        view = memoryview(data)
        for i in range(0, len(data) - PACKET + 1, PACKET):
            packet = view[i:i + PACKET]
            pat = _is_pat(packet)
            pcr = _pcr(packet)
            if pcr is not None:
                self._seen_pcr = True
                if self._last_pcr is not None and 0 <= pcr - self._last_pcr <= PCR_JUMP_S:
                    self._elapsed += pcr - self._last_pcr
                self._last_pcr = pcr
            if self._need_pat:
                if not pat:
                    continue  # the first segment (and the first after a discontinuity) starts at a PAT
                self._need_pat = False
            pending = self._pending
            if pat and pending:
                if self._seen_pcr and self._elapsed >= KEYLESS_TARGETS * self.target_s or (
                        not self._seen_pcr and len(pending) >= NO_PCR_BYTES):
                    self._close(len(pending), self._elapsed)  # no key frame came: cut at this PAT
                    done += 1
                self._pat_at, self._pat_elapsed = len(self._pending), self._elapsed
            elif (_random_access(packet) and self._pat_at > 0 and len(pending) - self._pat_at <= KEY_AFTER_PAT
                  and self._pat_elapsed >= 0.9 * self.target_s):
                self._close(self._pat_at, self._pat_elapsed)  # the new segment starts at the PAT before the key
                done += 1
            elif len(pending) >= MAX_SEGMENT_BYTES:
                self._close(len(pending), self._elapsed)
                done += 1
            self._pending += packet
        return done

    def _close(self, at: int, elapsed: float) -> None:
        """Close the segment with the first ``at`` pending bytes (``elapsed`` seconds); the rest starts the next."""
        duration = elapsed if self._seen_pcr and elapsed > 0 else self.target_s
        self.segments.append(Segment(self.cut, duration, bytes(self._pending[:at]), self._discontinuity))
        self.cut += 1
        del self._pending[:at]
        self._elapsed = max(0.0, self._elapsed - elapsed) if self._seen_pcr else 0.0
        self._pat_at = 0 if self._pending else -1
        self._pat_elapsed = 0.0
        self._discontinuity = False

    def find(self, seq: int) -> Segment | None:
        """The kept segment with this sequence number."""
        if not self.segments or seq < self.segments[0].seq or seq > self.segments[-1].seq:
            return None
        return self.segments[seq - self.segments[0].seq]

    def playlist(self, segment_url: Callable[[int], str], window: int = PLAYLIST_WINDOW) -> str:
        """The live playlist of the newest ``window`` segments."""
        shown = list(self.segments)[-window:]
        target = max([math.ceil(s.duration) for s in shown] + [math.ceil(self.target_s)])
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}",
                 f"#EXT-X-MEDIA-SEQUENCE:{shown[0].seq if shown else 0}"]
        for s in shown:
            if s.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            lines.append(f"#EXTINF:{s.duration:.3f},")
            lines.append(segment_url(s.seq))
        return "\n".join(lines) + "\n"


class HlsStream:
    """The HLS side of one proxy stream: its segmenter, reading the session's buffer, and its idle timer."""

    def __init__(self, session: StreamSession, *, cache_segments: int, idle_s: float,
                 on_idle: Callable[[HlsStream], None]) -> None:
        self.id = secrets.token_hex(8)
        self.session = session
        self.segmenter = Segmenter(keep=cache_segments)
        self.viewer = Viewer(session.request_id, "hls")
        self.idle_s = max(idle_s, 2 * TARGET_S)
        self._on_idle = on_idle
        self._cursor = session.buffer.cursor()
        self._discontinuities = session.buffer.discontinuities
        self._timer: asyncio.TimerHandle | None = None
        self.last_request = time.monotonic()
        self.playlist_requests = 0
        self.segment_requests = 0
        self.closed = False
        session.attach(self.viewer)
        self.touch()

    def touch(self) -> None:
        """A playlist or segment request: the idle timer starts again."""
        self.last_request = time.monotonic()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self.idle_s, self._idle)

    def _idle(self) -> None:
        self._timer = None
        self.close("hls_idle")

    def close(self, reason: str) -> None:
        """The HLS viewers are gone: leave the session (which stops when no TS viewer remains)."""
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        session = self.session
        session.detach(self.viewer, reason)
        if not session.viewers and reason == "hls_idle":
            session.stop("no_viewers")
        self._on_idle(self)

    def pull(self) -> int:
        """Cut what the buffer got since the last pull; returns the new segments."""
        buf = self.session.buffer
        lagged = self._cursor.lagged
        if buf.discontinuities != self._discontinuities:
            self._discontinuities = buf.discontinuities
            self.segmenter.discontinuity()
        done = 0
        while True:
            pieces = buf.read(self._cursor, 64)
            if self._cursor.lagged != lagged:
                lagged = self._cursor.lagged
                self.session.counted_lag(self.viewer, 1)
                self.segmenter.discontinuity()
            if not pieces:
                return done
            for piece in pieces:
                done += self.segmenter.feed(piece)

    async def wait_segments(self, at_least: int, timeout: float) -> bool:
        """Wait until ``at_least`` segments were cut (False on timeout or when the stream ends first)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self.pull()
            if self.segmenter.cut >= at_least:
                return True
            left = deadline - loop.time()
            if left <= 0 or self.session.buffer.closed or self.closed:
                return False
            await self.session.buffer.wait(self._cursor, min(left, 1.0))

    def served(self, nbytes: int) -> None:
        """A segment of ``nbytes`` went to a viewer."""
        self.viewer.bytes_out += nbytes


class HlsRegistry:
    """The live HLS streams of one proxy, by content key and by stream id (held in ``app.state.proxy_hls``)."""

    def __init__(self, cache_segments: int, idle_s: float) -> None:
        self.cache_segments = cache_segments
        self.idle_s = idle_s
        self.by_key: dict[str, HlsStream] = {}
        self.by_id: dict[str, HlsStream] = {}
        self.counters = {"hls_streams": 0, "playlists_served": 0, "segments_served": 0, "segment_bytes_out": 0,
                         "segment_misses": 0}

    def get(self, key: str) -> HlsStream | None:
        """The live HLS stream of this content key (None when none, or when its session stopped)."""
        stream = self.by_key.get(key)
        if stream is None:
            return None
        if stream.closed or not stream.session.alive:
            stream.close("session_stopped")
            return None
        return stream

    def add(self, session: StreamSession) -> HlsStream:
        """A new HLS stream over this session."""
        stream = HlsStream(session, cache_segments=self.cache_segments, idle_s=self.idle_s, on_idle=self._gone)
        self.by_key[session.key] = stream
        self.by_id[stream.id] = stream
        self.counters["hls_streams"] += 1
        return stream

    def _gone(self, stream: HlsStream) -> None:
        if self.by_key.get(stream.session.key) is stream:
            del self.by_key[stream.session.key]
        self.by_id.pop(stream.id, None)

    def segments_cut(self) -> int:
        """Segments cut by the live streams."""
        return sum(s.segmenter.cut for s in self.by_key.values())

    def close(self) -> None:
        """Stop every HLS stream's timer (at shutdown)."""
        for stream in list(self.by_id.values()):
            stream.close("proxy_shutdown")
