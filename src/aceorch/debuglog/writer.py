"""The debug-mode writer, :class:`DebugLog`: sessions on and off, the writer thread, retention and status.

Records are built and queued by :class:`~aceorch.debuglog.recording.Recorder` (the caller's side). Here:

* One background thread drains each session's queue every ``DEBUG_FLUSH_INTERVAL_MS``; how a batch reaches
  the files (one ``os.write`` per category, disk errors kept for retry, deleted files recreated) is
  :class:`~aceorch.debuglog.flushing.SessionWriter`'s.
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
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from aceorch import aiokits
from aceorch.config import Settings
from aceorch.debuglog import bundle as bundle_mod
from aceorch.debuglog import records, retention
from aceorch.debuglog.flushing import SessionWriter
from aceorch.debuglog.session import SESSION, Session, create_session, reason
from aceorch.errors import DebugDirError
from aceorch.models import format_time, utcnow

__all__ = ["DebugLog"]

logger = logging.getLogger("aceorch.debuglog")

_RETENTION_PERIOD_S = 3600.0


class DebugLog(SessionWriter):
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
        super().__init__(clock=clock, queue_size=queue_size, secrets=secrets, categories=categories,
                         max_mb=settings.debug.debug_log_max_mb)
        # A writer with categories of its own (the standalone proxy's) starts with ``session`` and ends with
        # ``errors`` like the orchestrator's; its folder may differ (PROXY_DEBUG_LOG_DIR).
        self._categories = categories
        self._settings = settings
        self._version = version
        self._runtime_name = runtime_name
        self._on_drop = on_drop
        self._log_dir_text = log_dir or settings.debug.debug_log_dir
        self._dir = Path(self._log_dir_text).expanduser().absolute()
        self._interval = settings.debug.debug_flush_interval_ms / 1000.0

        self._last_session: Session | None = None
        self._live: list[Session] = []
        self._reserved: set[str] = set()
        self._state_lock = threading.RLock()
        self._retention_lock = threading.Lock()

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
