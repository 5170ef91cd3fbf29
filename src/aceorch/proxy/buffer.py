"""The fan-out ring buffer: the last PROXY_BUFFER_MB of one stream, shared by all its viewers.

The upstream bytes are cut into chunks of whole 188-byte MPEG-TS packets and kept as immutable ``bytes``, each
with its absolute offset in the stream. Every viewer holds only its own offset and is handed the very same chunk
objects: nothing is copied per viewer, except the first, partial chunk of a viewer that joins mid-chunk. The
oldest chunks are dropped once the buffer holds more than its capacity; a viewer whose offset fell behind the
oldest chunk is moved to the live edge and counted as lagged. Each chunk keeps the monotonic time it was read
from upstream (one clock read per write), so that the viewer's write can measure its delivery delay.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["PACKET", "SYNC", "Chunk", "FanoutBuffer", "Cursor", "find_sync"]

PACKET = 188
SYNC = 0x47
#: How many packets in a row must start with the sync byte before a position counts as aligned.
SYNC_RUN = 3


def find_sync(data: bytes | bytearray, start: int = 0) -> int:
    """The first offset from ``start`` where SYNC_RUN packets in a row begin with 0x47 (or where data runs out)."""
    i = data.find(SYNC, start)
    while i >= 0:
        if all(i + k * PACKET >= len(data) or data[i + k * PACKET] == SYNC for k in range(SYNC_RUN)):
            return i
        i = data.find(SYNC, i + 1)
    return len(data)


def pat_offsets(chunk: bytes) -> tuple[int, ...]:
    """Offsets of the PAT packets (PID 0 with payload-unit start) in a packet-aligned chunk."""
    out: list[int] = []
    i = chunk.find(b"\x47\x40\x00")
    while i >= 0:
        if i % PACKET == 0:
            out.append(i)
            i = chunk.find(b"\x47\x40\x00", i + PACKET)
        else:
            i = chunk.find(b"\x47\x40\x00", i + 1)
    return tuple(out)


def last_random_access(chunk: bytes) -> int:
    """Offset of the last packet whose adaptation field sets random_access_indicator (a key frame), or -1."""
    for i in range(len(chunk) - PACKET, -1, -PACKET):
        if chunk[i + 3] & 0x20 and chunk[i + 4] and chunk[i + 5] & 0x40:
            return i
    return -1


@dataclass(frozen=True, slots=True)
class Chunk:
    """Whole packets of the stream, starting at absolute offset ``start``, with the offsets (in it) of its PATs,
    of its last key-frame packet (-1: none), and the buffer clock's time when it was read from upstream."""

    start: int
    data: bytes
    pats: tuple[int, ...]
    key: int
    at: float = 0.0

    @property
    def end(self) -> int:
        """The absolute offset just past the chunk."""
        return self.start + len(self.data)


@dataclass(slots=True)
class Cursor:
    """One viewer's place in the buffer, and how often it was moved to the live edge."""

    pos: int
    lagged: int = 0


class FanoutBuffer:
    """The shared ring of one stream. Writes never wait; readers wait for new data with :meth:`wait`.

    ``clock`` (monotonic seconds) stamps each chunk's read time; a viewer compares it with the same clock.
    """

    def __init__(self, capacity: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = max(PACKET, capacity)
        self.clock = clock
        self._chunks: deque[Chunk] = deque()
        self._size = 0
        self._carry = b""
        self._head = 0
        self._changed: asyncio.Future[None] | None = None
        self.closed = False
        #: Bytes received from upstream and bytes dropped while resynchronising on the 0x47 packet start.
        self.bytes_in = 0
        self.bytes_skipped = 0
        self.discontinuities = 0

    # -- writing ----------------------------------------------------------------------------------------
    @property
    def head(self) -> int:
        """The absolute offset of the live edge (every byte written so far)."""
        return self._head

    @property
    def tail(self) -> int:
        """The absolute offset of the oldest byte still held."""
        return self._chunks[0].start if self._chunks else self._head

    def write(self, data: bytes) -> int:
        """Append upstream bytes (any size); whole packets become readable at once. Returns the bytes made readable."""
        if not data:
            return 0
        self.bytes_in += len(data)
        buf = self._carry + data if self._carry else data
        start = 0
        if buf[0] != SYNC or (len(buf) > PACKET and buf[PACKET] != SYNC):
            start = find_sync(buf)
            self.bytes_skipped += start
        whole = (len(buf) - start) // PACKET * PACKET
        self._carry = bytes(buf[start + whole:])
        if whole == 0:
            return 0
        body = bytes(buf[start:start + whole]) if (start or whole != len(buf)) else bytes(buf)
        chunk = Chunk(self._head, body, pat_offsets(body), last_random_access(body), self.clock())
        self._chunks.append(chunk)
        self._size += whole
        self._head += whole
        while self._size > self.capacity and len(self._chunks) > 1:
            self._size -= len(self._chunks.popleft().data)
        self._wake()
        return whole

    def mark_discontinuity(self) -> None:
        """A new upstream begins (reconnect or failover): a partial packet of the old one is dropped."""
        if self._carry:
            self.bytes_skipped += len(self._carry)
            self._carry = b""
        self.discontinuities += 1

    def close(self) -> None:
        """No more data will come; waiting readers wake and see ``closed``."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        fut = self._changed
        self._changed = None
        if fut is not None and not fut.done():
            fut.set_result(None)

    # -- reading ----------------------------------------------------------------------------------------
    def join_offset(self) -> int:
        """Where a new viewer starts, always on a packet: the last PAT before the last key frame in the buffer
        (so that a decoder starts cleanly), else the last PAT, else the live edge."""
        chunks = self._chunks
        key_at = -1
        for chunk in reversed(chunks):
            if chunk.key >= 0:
                key_at = chunk.start + chunk.key
                break
        if key_at >= 0:
            for chunk in reversed(chunks):
                if chunk.start > key_at:
                    continue
                before = [p for p in chunk.pats if chunk.start + p <= key_at]
                if before:
                    return chunk.start + before[-1]
        for chunk in reversed(chunks):
            if chunk.pats:
                return chunk.start + chunk.pats[-1]
        return self._head

    def cursor(self) -> Cursor:
        """A new viewer's cursor, at :meth:`join_offset`."""
        return Cursor(self.join_offset())

    def read(self, cursor: Cursor, max_chunks: int = 16, times: list[float] | None = None) -> list[bytes]:
        """The data from the cursor to the live edge (at most ``max_chunks`` pieces); advances the cursor.

        A cursor behind the tail first moves to the live edge and counts one lag. With ``times``, each piece's
        upstream read time (:attr:`Chunk.at`) is appended to it, in the order of the pieces.
        """
        if cursor.pos < self.tail:
            cursor.pos = self.join_offset()
            cursor.lagged += 1
        if cursor.pos >= self._head:
            return []
        out: list[bytes] = []
        # Find the chunk holding the cursor, searching from the live edge (where viewers are).
        idx = len(self._chunks) - 1
        while idx > 0 and self._chunks[idx].start > cursor.pos:
            idx -= 1
        while idx < len(self._chunks) and len(out) < max_chunks:
            chunk = self._chunks[idx]
            if cursor.pos > chunk.start:
                out.append(chunk.data[cursor.pos - chunk.start:])
            else:
                out.append(chunk.data)
            if times is not None:
                times.append(chunk.at)
            cursor.pos = chunk.end
            idx += 1
        return out

    async def wait(self, cursor: Cursor, timeout: float | None = None) -> bool:
        """Wait until there is data past the cursor or the buffer closes; False on timeout."""
        if cursor.pos < self._head or self.closed:
            return True
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._changed), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def size(self) -> int:
        """Bytes held now."""
        return self._size
