"""The debug-mode writer, :class:`DebugLog`: sessions on and off, the writer thread, retention and status.

Records are built and queued by :class:`~aceorch.debuglog.recording.Recorder` (the caller's side). Here:

* One background thread swaps each session's queue out every ``DEBUG_FLUSH_INTERVAL_MS`` and writes each
  category's batch with one ``os.write`` on an ``O_APPEND`` descriptor. A write that fails (disk full, folder
  gone) keeps the unwritten bytes and retries on the next flush; the failure is reported once per episode in
  the service log and in the ``errors`` category. A file deleted under the writer is noticed (inode check)
  and recreated.
* The queue drops its oldest records when full (``deque(maxlen=…)``); every drop is counted and reported
  through the ``on_drop`` callback (the stress monitor's ``debug_log_backpressure``) and in
  ``session_end``. Past ``DEBUG_LOG_MAX_MB`` new records, except the ``session`` category's, are dropped
  and counted.
* ``flush()`` and ``disable()`` drain synchronously on the calling thread (a per-session I/O lock keeps the
  order), so a graceful stop loses nothing. Retention runs at start and hourly on its own thread.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from aceorch import aiokits
from aceorch.config import Settings
from aceorch.debuglog import bundle as bundle_mod
from aceorch.debuglog import records, retention
from aceorch.debuglog.recording import Recorder
from aceorch.debuglog.session import SESSION, Session, create_session, reason
from aceorch.errors import DebugDirError
from aceorch.models import format_time, utcnow

__all__ = ["DebugLog"]

logger = logging.getLogger("aceorch.debuglog")

_RETENTION_PERIOD_S = 3600.0
_MAX_BACKLOG_BYTES = 32 * 1024 * 1024


class DebugLog(Recorder):
    """The debug-mode writer. One per service; ``close()`` it at shutdown.

    Thread-safe. ``log()`` never touches the disk and never raises for disk problems; ``enable()``,
    ``disable()``, ``flush()``, ``bundle()`` and ``close()`` do blocking file work and belong in a worker
    thread when called from async code.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        version: str,
        runtime_name: str = "unknown",
        clock: Callable[[], datetime] = utcnow,
        queue_size: int = 50_000,
        on_drop: Callable[[int], None] | None = None,
        categories: tuple[str, ...] = records.CATEGORIES,
        log_dir: str | None = None,
    ) -> None:
        secrets = [settings.api_key_value()]
        if settings.vpn.gluetun_api_key is not None:
            secrets.append(settings.vpn.gluetun_api_key.get_secret_value())
        super().__init__(clock=clock, queue_size=queue_size, secrets=secrets, categories=categories)
        # A writer with categories of its own (the standalone proxy's) starts with ``session`` and ends with
        # ``errors`` like the orchestrator's; its folder may differ (PROXY_DEBUG_LOG_DIR).
        self._categories = categories
        self._ncats = len(categories)
        self._errors = categories.index("errors")
        self._settings = settings
        self._version = version
        self._runtime_name = runtime_name
        self._on_drop = on_drop
        self._log_dir_text = log_dir or settings.debug.debug_log_dir
        self._dir = Path(self._log_dir_text).expanduser().absolute()
        self._interval = settings.debug.debug_flush_interval_ms / 1000.0
        self._cap_bytes = settings.debug.debug_log_max_mb * 1024 * 1024

        self._last_session: Session | None = None
        self._live: list[Session] = []
        self._reserved: set[str] = set()
        self._state_lock = threading.RLock()
        self._retention_lock = threading.Lock()
        self._last_flush_at: datetime | None = None

        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._maintenance: threading.Thread | None = None
        self._closed = False

    # Properties ---------------------------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        """Whether a session is active."""
        return self._session is not None

    @property
    def session_id(self) -> str | None:
        """The active session's id, or None."""
        s = self._session
        return s.id if s is not None else None

    @property
    def entries_written(self) -> int:
        """Records written to disk since this writer was created."""
        return self._written_total

    @property
    def entries_dropped(self) -> int:
        """Records dropped (queue full, size cap, disk backlog) since this writer was created."""
        return self._dropped_total

    @property
    def log_dir(self) -> Path:
        """The absolute log folder."""
        return self._dir

    def set_drop_callback(self, callback: Callable[[int], None] | None) -> None:
        """Called from the writer thread with the number of records dropped since the previous call."""
        self._on_drop = callback

    def set_runtime_name(self, name: str) -> None:
        """Name the runtime in later ``session_start`` records; a change is recorded as ``runtime_selected``."""
        if name == self._runtime_name:
            return
        self._runtime_name = name
        self.log("session", operation="runtime_selected", runtime=name)

    # Switching ----------------------------------------------------------------------------------------------
    def start_from_env(self) -> None:
        """At service start: retention now and hourly; a session if DEBUG_MODE is on. Never raises."""
        self._start_maintenance()
        if not self._settings.debug.debug_mode:
            return
        try:
            self.enable(by="env")
        except DebugDirError as exc:
            logger.error("Debug mode is off: cannot write to DEBUG_LOG_DIR '%s': %s", self._log_dir_text, exc)
        except Exception as exc:  # noqa: BLE001 - debug mode must never stop the service
            logger.error("Debug mode is off: could not start a debug session: %r", exc)

    def enable(self, by: str = "api") -> bool:
        """Start a session. Returns False if one is active. Raises DebugDirError if the folder is unusable."""
        with self._state_lock:
            if self._closed:
                raise DebugDirError("the debug log is closed")
            if self._session is not None:
                return False
            session = self._create_session(by)
            self._session = session
            self._last_session = session
            self._live.append(session)
            self._start_writer()
            self._submit(
                session,
                SESSION,
                {
                    "operation": "session_start",
                    "version": self._version,
                    "runtime": self._runtime_name,
                    "config": self._settings.masked(),
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "python": platform.python_version(),
                    "log_dir": self._log_dir_text,
                    "enabled_by": by,
                },
            )
            self._submit(session, SESSION, {"operation": "debug_enabled", "enabled_by": by})
            self._wake.set()
        self._announce()
        return True

    def disable(self) -> bool:
        """Flush, write ``session_end``, close the files (they stay). Returns False if debug mode was off."""
        with self._state_lock:
            s = self._session
            if s is None:
                return False
            self._submit(s, SESSION, {"operation": "debug_disabled"})
            self._session = None  # from here on, log() is a no-op
            self._drain(s)
            end_us = self._now_us()
            self._submit(
                s,
                SESSION,
                {
                    "operation": "session_end",
                    "records": {c: s.written[i] for i, c in enumerate(self._categories)},
                    "dropped": s.dropped,
                    "duration_ms": round((end_us - s.start_us) / 1000.0, 2),
                },
            )
            with s.lock:
                s.closed = True
            self._drain(s)
            with s.io_lock:
                s.close_files()
            if s in self._live:
                self._live.remove(s)
            self._reserved.discard(s.id)
        logger.info("Debug mode disabled; session %s closed", s.id)
        return True

    def close(self) -> None:
        """Graceful stop: end the session (losing nothing) and stop the background threads. Idempotent."""
        with self._state_lock:
            if self._closed:
                return
            self.disable()
            self._closed = True
        self._stop.set()
        self._wake.set()
        for thread in (self._writer, self._maintenance):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=10)

    # Writing ------------------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Block until every record submitted so far is on disk (or kept for retry after a disk error)."""
        for s in list(self._live):
            self._drain(s)

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
                        f"({self._settings.debug.debug_log_max_mb} MB); new entries are dropped and counted"
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

    # Threads ------------------------------------------------------------------------------------------------
    def _start_writer(self) -> None:
        if self._writer is None:
            self._writer = threading.Thread(target=self._run_writer, name="aceorch-debuglog-writer", daemon=True)
            self._writer.start()

    def _run_writer(self) -> None:
        reported = 0
        last_delta = 0
        while True:
            self._wake.wait(self._interval if self._live else None)
            self._wake.clear()
            for s in list(self._live):
                try:
                    self._drain(s)
                except Exception:  # noqa: BLE001 - the writer must survive anything
                    logger.exception("debug log writer failed; it will retry")
            total = self._dropped_total
            delta = total - reported
            reported = total
            if (delta or last_delta) and self._on_drop is not None:
                try:
                    self._on_drop(delta)
                except Exception:  # noqa: BLE001
                    logger.exception("debug log drop callback failed")
            last_delta = delta
            if self._stop.is_set():
                return

    def _start_maintenance(self) -> None:
        with self._state_lock:
            if self._maintenance is None and not self._closed:
                self._maintenance = threading.Thread(
                    target=self._run_maintenance, name="aceorch-debuglog-retention", daemon=True
                )
                self._maintenance.start()

    def _run_maintenance(self) -> None:
        while True:
            try:
                self.run_retention()
            except Exception:  # noqa: BLE001
                logger.exception("debug log retention failed; it will run again in an hour")
            if self._stop.wait(_RETENTION_PERIOD_S):
                return

    # Sessions and retention ---------------------------------------------------------------------------------
    def _create_session(self, by: str) -> Session:
        try:
            last = self._last_session
            return create_session(
                self._dir,
                self._now_us,
                by,
                self._queue_size,
                reserved=self._reserved,
                last_id=last.id if last is not None else None,
                categories=self._categories,
            )
        except OSError as exc:
            raise DebugDirError(reason(exc)) from exc

    def run_retention(self) -> list[str]:
        """Delete whole sessions older than DEBUG_LOG_RETENTION_DAYS, then the oldest until under
        DEBUG_LOG_MAX_MB.

        Never deletes the current session. Returns the deleted session ids.
        """
        with self._retention_lock:
            own = self._categories != records.CATEGORIES
            sessions = records.scan_sessions(self._dir, any_category=own)
            with self._state_lock:
                protected = set(self._reserved)
                current = self._session
                if current is not None:
                    protected.add(current.id)
            deleted = retention.prune(
                sessions,
                protected=protected,
                retention_days=self._settings.debug.debug_log_retention_days,
                cap_bytes=self._cap_bytes,
                clock=self._clock,
            )
            if deleted:
                logger.info("debug log retention deleted %d session(s): %s", len(deleted), ", ".join(deleted))
            return deleted

    # Status and bundle --------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The ``GET /debug`` status body (without ``changed``): session, files, counters and settings."""
        active = self._session
        s = active or self._last_session
        files: list[dict[str, Any]] = []
        if active is not None:
            files = [
                {"name": path.name, "category": self._categories[i], "bytes": active.bytes[i]}
                for i, path in enumerate(active.paths)
            ]
        return {
            "enabled": active is not None,
            "enabled_by": active.enabled_by if active is not None else None,
            "session_id": s.id if s is not None else None,
            "session_started_at": format_time(s.started_at) if s is not None else None,
            "log_dir": self._log_dir_text,
            "files": files,
            "entries_written": self._written_total,
            "entries_dropped": self._dropped_total,
            "queue_depth": len(active.queue) if active is not None else 0,
            "last_flush_at": format_time(self._last_flush_at),
            "last_error": s.last_error if s is not None else None,
            "settings": {
                "retention_days": self._settings.debug.debug_log_retention_days,
                "max_mb": self._settings.debug.debug_log_max_mb,
                "flush_interval_ms": self._settings.debug.debug_flush_interval_ms,
                "slow_provisioning_ratio": self._settings.debug.debug_slow_provisioning_ratio,
                "unhealthy_ratio": self._settings.debug.debug_unhealthy_ratio,
            },
        }

    def bundle(self, session: str | None) -> Path:
        """Write a ``tar.gz`` of one session to a temporary file and return its path (the caller deletes it).

        ``session`` None means the current session, else this process's last one. Raises LookupError.
        """
        self.flush()
        if session is None:
            s = self._session or self._last_session
            if s is None:
                raise LookupError("no debug session")
            session = s.id
        return bundle_mod.write_bundle(
            directory=self._dir,
            session_id=session,
            version=self._version,
            config=self._settings.masked(),
            request_id=aiokits.request_id_var.get(),
            created_at=self._clock(),
        )

    # Service log --------------------------------------------------------------------------------------------
    def _announce(self) -> None:
        """The INFO line that says where the logs go, emitted even when the root level is above INFO."""
        record = logger.makeRecord(
            logger.name,
            logging.INFO,
            __file__,
            0,
            "Debug mode enabled. Logs will be written to: %s",
            (self._log_dir_text,),
            None,
        )
        if not logger.disabled:
            logger.handle(record)
