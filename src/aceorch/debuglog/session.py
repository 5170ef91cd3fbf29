"""One debug session on disk: its category files (created, checked, recreated), its queue and its counters.

A session creates every category file at its start, empty, mode 0600, in a folder of mode 0700; its id is
its UTC start second, with ``_2``, ``_3``… when that id is taken (by a file or by an earlier session of
this process).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aceorch.debuglog import records

__all__ = [
    "CAT_INDEX",
    "SESSION",
    "ERRORS",
    "NCATS",
    "EPOCH",
    "ONE_US",
    "encode",
    "reason",
    "Session",
    "create_session",
]

#: Category name -> its index in :data:`records.CATEGORIES` (the index of its file, queue entries and counters).
CAT_INDEX: dict[str, int] = {c: i for i, c in enumerate(records.CATEGORIES)}
SESSION = CAT_INDEX["session"]
ERRORS = CAT_INDEX["errors"]
NCATS = len(records.CATEGORIES)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)

#: JSON text of a value (``ensure_ascii=False``, compact), with ``str()`` for anything JSON cannot encode.
encode = json.JSONEncoder(default=str, ensure_ascii=False, separators=(",", ":")).encode


def reason(exc: OSError) -> str:
    """The readable part of an OS error (``No space left on device``)."""
    return exc.strerror or str(exc) or type(exc).__name__


class Session:
    """The state of one debug session: its files, its queue and its counters."""

    def __init__(self, session_id: str, directory: Path, start_us: int, enabled_by: str, queue_size: int,
                 categories: tuple[str, ...] = records.CATEGORIES) -> None:
        self.id = session_id
        #: The categories of this session's files (``session`` first and ``errors`` last, as in CATEGORIES).
        self.categories = categories
        self.id_json = encode(session_id)
        self.directory = directory
        self.start_us = start_us
        self.started_at = EPOCH + start_us * ONE_US
        self.enabled_by = enabled_by
        self.queue_size = queue_size
        #: Guards seq, the queue and ``closed`` (held by producers for a few microseconds).
        self.lock = threading.Lock()
        #: Serialises drains, so batches reach the files in queue order.
        self.io_lock = threading.Lock()
        # (category, a JSON line, or the parts to render it from on the writer thread)
        self.queue: deque[tuple[int, Any]] = deque(maxlen=queue_size)
        self.seq = 0
        self.last_us = start_us - 1
        self.closed = False
        self.paths = [directory / records.session_file_name(session_id, c) for c in categories]
        n = len(categories)
        self.fds: list[int] = [-1] * n
        self.idents: list[tuple[int, int] | None] = [None] * n
        self.partial: list[bytes] = [b""] * n
        self.written: list[int] = [0] * n
        self.bytes: list[int] = [0] * n
        self.dropped = 0
        self.error_active = False
        self.last_error: str | None = None
        self.cap_reported = False

    def open_files(self) -> None:
        """Create every category file, empty, mode 0600. Raises FileExistsError if one exists already."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        try:
            for i, path in enumerate(self.paths):
                fd = os.open(path, flags, 0o600)
                self.fds[i] = fd
                os.fchmod(fd, 0o600)
                st = os.fstat(fd)
                self.idents[i] = (st.st_dev, st.st_ino)
        except OSError:
            for i, fd in enumerate(self.fds):
                if fd >= 0:
                    os.close(fd)
                    self.fds[i] = -1
                    try:
                        os.unlink(self.paths[i])
                    except OSError:
                        pass
            raise

    def close_files(self) -> None:
        """Close every open file (the files stay)."""
        for i, fd in enumerate(self.fds):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
                self.fds[i] = -1

    def reopen(self, i: int) -> None:
        """Recreate a file that was deleted (or never opened); raises OSError when the folder is unusable."""
        if self.fds[i] >= 0:
            try:
                os.close(self.fds[i])
            except OSError:
                pass
            self.fds[i] = -1
        if not self.directory.is_dir():
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.directory, 0o700)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.paths[i], flags, 0o600)
        os.fchmod(fd, 0o600)
        st = os.fstat(fd)
        self.fds[i] = fd
        self.idents[i] = (st.st_dev, st.st_ino)
        self.bytes[i] = st.st_size

    @property
    def total_bytes(self) -> int:
        """Bytes in the session's files, as far as this process wrote or found them."""
        return sum(self.bytes)



def create_session(
    directory: Path,
    now_us: Callable[[], int],
    by: str,
    queue_size: int,
    *,
    reserved: set[str],
    last_id: str | None,
    categories: tuple[str, ...] = records.CATEGORIES,
) -> Session:
    """Create the folder (if needed) and a new session's files; its id is added to ``reserved``.

    Ids in ``reserved``, the id ``last_id`` and ids whose files exist already are skipped. Raises OSError
    when the folder is unusable.
    """
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if created:
        os.chmod(directory, 0o700)
    start_us = now_us()
    base = time.strftime("%Y%m%d_%H%M%S", time.gmtime(start_us // 1_000_000))
    n = 1
    while True:
        sid = base if n == 1 else f"{base}_{n}"
        n += 1
        if sid in reserved or last_id == sid:
            continue
        session = Session(sid, directory, start_us, by, queue_size, categories)
        reserved.add(sid)
        try:
            session.open_files()
        except FileExistsError:
            reserved.discard(sid)
            continue
        except OSError:
            reserved.discard(sid)
            raise
        return session
