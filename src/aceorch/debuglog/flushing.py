"""Writing a debug session's queued records to its files, on the writer thread or a flushing caller.

:meth:`SessionWriter._drain` swaps a session's queue out and writes each category's batch with one ``os.write``
on an ``O_APPEND`` descriptor. A write that fails (disk full, folder gone) keeps the unwritten bytes (up to a
backlog limit, the rest dropped and counted) and retries on the next flush; the failure is reported once per
episode in the service log and in the ``errors`` category. A file deleted under the writer is noticed (inode
check) and recreated. Past ``DEBUG_LOG_MAX_MB`` new records, except the ``session`` category's, are dropped and
counted. The threads, sessions and retention around it are :class:`~aceorch.debuglog.writer.DebugLog`'s.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from aceorch.debuglog.recording import Recorder
from aceorch.debuglog.session import SESSION, Session, reason

__all__ = ["SessionWriter"]

#: The debug log's service-log logger (the writer's).
logger = logging.getLogger("aceorch.debuglog")

_MAX_BACKLOG_BYTES = 32 * 1024 * 1024


class SessionWriter(Recorder):
    """The disk side of :class:`~aceorch.debuglog.writer.DebugLog`: drains sessions' queues into their files."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        queue_size: int,
        secrets: Sequence[str | None],
        categories: Sequence[str],
        max_mb: int,
    ) -> None:
        super().__init__(clock=clock, queue_size=queue_size, secrets=secrets, categories=categories)
        self._ncats = len(categories)
        self._errors = categories.index("errors")
        self._max_mb = max_mb
        self._cap_bytes = max_mb * 1024 * 1024
        self._last_flush_at: datetime | None = None

    def _drain(self, s: Session) -> None:
        with s.io_lock:
            with s.lock:
                batch = s.queue
                if batch:
                    s.queue = deque(maxlen=s.queue_size)
            if all(fd < 0 for fd in s.fds) and s.closed:
                return
            chunks: list[list[str]] = [[] for _ in range(self._ncats)]
            render, cache = self._render, self._ts_cache_writer
            for cat, item in batch:
                if item.__class__ is str:
                    chunks[cat].append(item)
                else:
                    us, seq, rid, tid, extra, fields = item
                    chunks[cat].append(render(s, us, seq, rid, tid, extra, fields, cache)[0])
            failed = self._check_files(s)
            forced: list[str] = []
            if s.total_bytes >= self._cap_bytes:
                dropped = sum(len(chunks[i]) for i in range(self._ncats) if i != SESSION)
                if dropped:
                    for i in range(self._ncats):
                        if i != SESSION:
                            chunks[i] = []
                    self._count_drops(s, dropped)
                if not s.cap_reported:
                    s.cap_reported = True
                    message = (
                        f"debug session {s.id} reached DEBUG_LOG_MAX_MB "
                        f"({self._max_mb} MB); new entries are dropped and counted"
                    )
                    logger.error("%s", message)
                    line = self._error_line(s, "size_cap", "DebugLogFull", message)
                    if line:
                        forced.append(line)
            for i in range(self._ncats):
                lines = chunks[i]
                if i == self._errors and forced:
                    lines.extend(forced)
                if not lines and not s.partial[i]:
                    continue
                data = s.partial[i]
                if lines:
                    data += ("\n".join(lines) + "\n").encode("utf-8", "replace")
                s.partial[i] = b""
                if self._write(s, i, data):
                    failed = True
            if not failed and s.error_active:
                s.error_active = False
                logger.warning("debug log writes recovered for session %s", s.id)
            self._last_flush_at = self._clock()

    def _write(self, s: Session, i: int, data: bytes) -> bool:
        """Write ``data`` to category ``i``; keep what could not be written. Returns True on failure."""
        off = 0
        try:
            if s.fds[i] < 0:
                s.reopen(i)
            view = memoryview(data)
            while off < len(data):
                off += os.write(s.fds[i], view[off:])
        except OSError as exc:
            self._report(s, s.paths[i].name, exc)
            rest = data[off:]
            if len(rest) > _MAX_BACKLOG_BYTES:
                # Keep the end of the line already half-written, drop the rest (counted).
                cut = rest.find(b"\n") + 1
                self._count_drops(s, rest.count(b"\n", cut))
                rest = rest[:cut]
            s.partial[i] = rest
            return True
        finally:
            if off:
                lines = data.count(b"\n", 0, off)
                s.written[i] += lines
                s.bytes[i] += off
                with self._count_lock:
                    self._written_total += lines
        return False

    def _check_files(self, s: Session) -> bool:
        """Recreate files deleted under the writer. Returns True if one could not be recreated."""
        failed = False
        for i, path in enumerate(s.paths):
            if s.fds[i] >= 0:
                try:
                    st = os.stat(path)
                    if (st.st_dev, st.st_ino) == s.idents[i]:
                        continue
                except OSError:
                    pass
                exc = FileNotFoundError(2, f"debug log file {path.name} was deleted; recreating it")
                self._report(s, path.name, exc)
            try:
                s.reopen(i)
            except OSError as again:
                self._report(s, path.name, again)
                failed = True
        return failed

    def _report(self, s: Session, name: str, exc: OSError) -> None:
        s.last_error = f"{name}: {reason(exc)}"
        if s.error_active:
            return
        s.error_active = True
        logger.error("debug log write failed (%s); debug mode stays on and retries on the next flush", s.last_error)
        self._submit(
            s,
            self._errors,
            {
                "component": "debuglog",
                "operation": "write",
                "error_type": type(exc).__name__,
                "error_message": s.last_error,
                "traceback": None,
            },
        )

    def _error_line(self, s: Session, operation: str, error_type: str, message: str) -> str:
        """Build an ``errors`` record without queueing it (it bypasses the size cap)."""
        fields: dict[str, Any] = {
            "component": "debuglog",
            "operation": operation,
            "error_type": error_type,
            "error_message": message,
            "traceback": None,
        }
        out: list[str] = []
        self._submit(s, self._errors, fields, into=out)
        return out[0] if out else ""

    def _count_drops(self, s: Session, n: int) -> None:
        if n <= 0:
            return
        s.dropped += n
        with self._count_lock:
            self._dropped_total += n
