"""The engine simulator's disk cache: a real directory that grows while the engine streams.

Every chunk a reader is sent is also appended to a piece file of its swarm in the directory
(``<infohash>-<n>.piece``, a new piece every :data:`PIECE_BYTES`); past the limit the oldest pieces go. The
size that ``stat`` reports in ``disk_cache_stats.active_inuse`` is what the directory holds at that moment,
so emptying it from outside (``docker exec ... rm -rf``, as aceorch's idle clean-up does) shows at once.

``SIM_CACHE_DIR`` names the directory (the engine image sets the real engine's
``/root/.ACEStream/.acestream_cache``); unset, a fresh temporary directory is made on first use and
removed at exit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from typing import Any

__all__ = ["DiskCache", "PIECE_BYTES"]

#: Bytes per piece file.
PIECE_BYTES = 1 << 20


class DiskCache:
    """The cache directory of one simulated engine, safe to use from every request thread."""

    def __init__(self, path: str | None, limit_bytes: int) -> None:
        self._path = path
        self._owned = path is None
        self.limit_bytes = limit_bytes
        self._lock = threading.Lock()
        self._pieces: dict[str, tuple[int, int]] = {}  # infohash -> (piece number, bytes in it)

    @property
    def path(self) -> str | None:
        """The directory, once it exists (a temporary one is made on first write)."""
        return self._path

    def _dir(self) -> str:
        if self._path is None:
            self._path = tempfile.mkdtemp(prefix="engine-sim-cache-")
        os.makedirs(self._path, exist_ok=True)
        return self._path

    def store(self, infohash: str, data: bytes) -> None:
        """Append ``data`` to the swarm's current piece; start a new piece when it is full, then keep the limit."""
        if not data or self.limit_bytes <= 0:
            return
        with self._lock:
            try:
                directory = self._dir()
                number, filled = self._pieces.get(infohash, (0, 0))
                piece = os.path.join(directory, f"{infohash}-{number}.piece")
                if filled and not os.path.exists(piece):  # emptied from outside: start afresh
                    number, filled = number + 1, 0
                    piece = os.path.join(directory, f"{infohash}-{number}.piece")
                with open(piece, "ab") as f:
                    f.write(data)
                filled += len(data)
                if filled >= PIECE_BYTES:
                    number, filled = number + 1, 0
                    self._trim(directory)
                self._pieces[infohash] = (number, filled)
            except OSError:
                return  # a full or vanished disk: the engine streams on without caching

    def _trim(self, directory: str) -> None:
        entries = sorted(_files(directory), key=lambda e: e[1])
        total = sum(size for _, _, size in entries)
        for path, _, size in entries:
            if total <= self.limit_bytes:
                break
            try:
                os.unlink(path)
            except OSError:
                continue
            total -= size

    def size(self) -> int:
        """Bytes the directory holds now."""
        with self._lock:
            if self._path is None:
                return 0
            return sum(size for _, _, size in _files(self._path))

    def stats(self) -> dict[str, Any]:
        """The ``disk_cache_stats`` object of ``stat``: free space, the limit, and the bytes in use."""
        used = self.size()
        free = 0
        where = self._path or tempfile.gettempdir()
        while not os.path.isdir(where) and os.path.dirname(where) != where:  # not made yet: its file system
            where = os.path.dirname(where)
        try:
            free = shutil.disk_usage(where).free
        except OSError:
            pass
        return {"avail": free, "disk_cache_limit": self.limit_bytes, "inactive_inuse": 0, "active_inuse": used}

    def close(self) -> None:
        """Remove the directory if the cache made it (a temporary one)."""
        with self._lock:
            if self._owned and self._path is not None:
                shutil.rmtree(self._path, ignore_errors=True)
                self._path = None


def _files(directory: str) -> list[tuple[str, float, int]]:
    """Every file under ``directory``: path, modification time, size."""
    found: list[tuple[str, float, int]] = []
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            found.append((path, st.st_mtime, st.st_size))
    return found
