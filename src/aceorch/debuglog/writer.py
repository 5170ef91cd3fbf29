"""The debug-mode writer: JSONL records per category, written off the caller's thread.

Shape and why (debug-log.md "The writer"):

* ``log()`` is called from the event loop, from threads, from everywhere. It builds the record (common
  fields first), masks secrets, serialises it with one shared ``JSONEncoder`` and appends
  ``(category, line)`` to the session's bounded ``deque``, all under one short lock so that ``seq`` and the
  timestamps follow file order. No disk access happens on the caller's thread; when debug mode is off
  ``log()`` is one attribute read.
* One background thread swaps the queue out every ``DEBUG_FLUSH_INTERVAL_MS`` and writes each category's
  batch with one ``os.write`` on an ``O_APPEND`` descriptor. A write that fails (disk full, folder gone)
  keeps the unwritten bytes and retries on the next flush; the failure is reported once per episode in the
  service log and in the ``errors`` category. A file deleted under the writer is noticed (inode check) and
  recreated.
* The queue drops its oldest records when full (``deque(maxlen=…)``); every drop is counted and reported
  through the ``on_drop`` callback (the stress monitor's ``debug_log_backpressure``) and in
  ``session_end``.
* ``flush()`` and ``disable()`` drain synchronously on the calling thread (a per-session I/O lock keeps the
  order), so a graceful stop loses nothing. Retention runs at start and hourly on its own thread.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from aceorch import aiokits
from aceorch.config import Settings
from aceorch.debuglog import bundle as bundle_mod
from aceorch.debuglog import records
from aceorch.errors import DebugDirError
from aceorch.models import format_time, utcnow

__all__ = ["DebugLog"]

logger = logging.getLogger("aceorch.debuglog")

_CAT_INDEX: dict[str, int] = {c: i for i, c in enumerate(records.CATEGORIES)}
_SESSION = _CAT_INDEX["session"]
_ERRORS = _CAT_INDEX["errors"]
_NCATS = len(records.CATEGORIES)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

# orjson serialises a record in about a tenth of the standard library's time; the fallback keeps odd objects
# (integers beyond 64 bits, cycles) from ever breaking a caller.
_encode = json.JSONEncoder(default=str, ensure_ascii=False, separators=(",", ":")).encode
_encode_str: Callable[[str], str] = json.encoder.encode_basestring
_orjson_dumps = orjson.dumps
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def _dumps(obj: dict[str, Any]) -> str:
    """Serialise a record, compactly (as ``jq -c`` prints it); never raises (a caller's odd object must not
    break its operation)."""
    try:
        return _orjson_dumps(obj, default=str, option=_ORJSON_OPTIONS).decode("utf-8")
    except (TypeError, ValueError):
        pass
    try:
        return json.dumps(obj, default=str, skipkeys=True, ensure_ascii=False, check_circular=True,
                          separators=(",", ":"))
    except Exception as exc:  # noqa: BLE001 - e.g. a cycle, or a __str__ that raises
        return _encode({"unserialisable_record": repr(exc)})


_SECRET_MARKERS = ("KEY", "TOKEN", "PASSWORD", "SECRET")
# Names that contain KEY but carry no secret: an AceStream content key is what a stream *is*.
_NOT_SECRET = frozenset({"KEY", "KEY_TYPE", "STREAM_KEY", "CONTENT_KEY", "INFOHASH", "KEYS", "MONKEY"})
_secret_name_cache: dict[str, bool] = {}

_RETENTION_PERIOD_S = 3600.0
_MAX_BACKLOG_BYTES = 32 * 1024 * 1024


def _is_secret_name(name: object) -> bool:
    if not isinstance(name, str):
        return False
    hit = _secret_name_cache.get(name)
    if hit is None:
        upper = name.upper()
        hit = upper not in _NOT_SECRET and not upper.endswith("KEY_TYPE")
        hit = hit and any(marker in upper for marker in _SECRET_MARKERS)
        if len(_secret_name_cache) < 4096:
            _secret_name_cache[name] = hit
    return hit


#: The shortest secret that is also masked inside longer strings.
MIN_SUBSTRING_SECRET = 6


def _maskable(value: object) -> bool:
    return value is not None and value != "" and not isinstance(value, bool)


def _mask_names(obj: Any) -> Any:
    """A copy of a nested dict/list with the values of secret-looking keys replaced by ``***``."""
    if isinstance(obj, dict):
        return {k: ("***" if _is_secret_name(k) and _maskable(v) else _mask_names(v)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_mask_names(v) for v in obj]
    return obj


def _mask_values(obj: Any, secrets: tuple[str, ...]) -> Any:
    """A copy of ``obj`` with every occurrence of a secret value inside strings replaced by ``***``.

    Secrets shorter than :data:`MIN_SUBSTRING_SECRET` are masked only where a whole string equals them: replacing
    every ``k`` of a one-letter key would shred the records while protecting nothing.
    """
    if isinstance(obj, str):
        for secret in secrets:
            if obj == secret:
                return "***"
            if len(secret) >= MIN_SUBSTRING_SECRET and secret in obj:
                obj = obj.replace(secret, "***")
        return obj
    if isinstance(obj, dict):
        return {_mask_values(k, secrets): _mask_values(v, secrets) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_mask_values(v, secrets) for v in obj]
    return obj


_CONTAINERS = frozenset({dict, list, tuple})
_get_request_id = aiokits.request_id_var.get
_get_trace_id = aiokits.trace_id_var.get
_time_ns = time.time_ns
_NUMBERS = frozenset({int, float})


def _record(
    session_id: str,
    timestamp: str,
    elapsed: float,
    seq: int,
    rid: str | None,
    tid: str | None,
    fields: dict[str, Any],
) -> dict[str, Any]:
    """The record as a dict, in the same key order as the serialised line."""
    rec: dict[str, Any] = {
        "session_id": session_id,
        "timestamp": timestamp,
        "elapsed_seconds": elapsed,
        "seq": seq,
    }
    if rid is not None:
        rec["request_id"] = rid
    if tid is not None:
        rec["trace_id"] = tid
    rec.update(fields)
    return rec


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


class _Session:
    """The state of one debug session: its files, its queue and its counters."""

    def __init__(self, session_id: str, directory: Path, start_us: int, enabled_by: str, queue_size: int) -> None:
        self.id = session_id
        self.id_json = _encode(session_id)
        self.directory = directory
        self.start_us = start_us
        self.started_at = _EPOCH + start_us * _ONE_US
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
        self.paths = [directory / records.session_file_name(session_id, c) for c in records.CATEGORIES]
        self.fds: list[int] = [-1] * _NCATS
        self.idents: list[tuple[int, int] | None] = [None] * _NCATS
        self.partial: list[bytes] = [b""] * _NCATS
        self.written: list[int] = [0] * _NCATS
        self.bytes: list[int] = [0] * _NCATS
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
        return sum(self.bytes)


class DebugLog:
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
    ) -> None:
        self._settings = settings
        self._version = version
        self._runtime_name = runtime_name
        self._clock = clock
        self._fast_clock = clock is utcnow
        self._queue_size = max(1, queue_size)
        self._high_water = max(1, self._queue_size // 2)
        self._on_drop = on_drop
        self._log_dir_text = settings.debug_log_dir
        self._dir = Path(settings.debug_log_dir).expanduser().absolute()
        self._interval = settings.debug_flush_interval_ms / 1000.0
        self._cap_bytes = settings.debug_log_max_mb * 1024 * 1024
        secrets = [settings.api_key_value()]
        if settings.gluetun_api_key is not None:
            secrets.append(settings.gluetun_api_key.get_secret_value())
        # Secrets as they appear inside a JSON string, for the cheap substring test on each line.
        self._secrets = tuple(s for s in secrets if s)
        self._secrets_json = tuple(_encode(s)[1:-1] for s in self._secrets)

        self._session: _Session | None = None
        self._last_session: _Session | None = None
        self._live: list[_Session] = []
        self._reserved: set[str] = set()
        self._state_lock = threading.RLock()
        self._count_lock = threading.Lock()
        self._retention_lock = threading.Lock()
        self._written_total = 0
        self._dropped_total = 0
        self._last_flush_at: datetime | None = None
        # (second, "YYYY-MM-DDTHH:MM:SS") caches: one used under the session lock, one by the writer thread.
        self._ts_cache_caller: list[Any] = [-1, ""]
        self._ts_cache_writer: list[Any] = [-1, ""]

        self._wake = threading.Event()
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._maintenance: threading.Thread | None = None
        self._closed = False

    # Properties ---------------------------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return self._session is not None

    @property
    def session_id(self) -> str | None:
        s = self._session
        return s.id if s is not None else None

    @property
    def entries_written(self) -> int:
        return self._written_total

    @property
    def entries_dropped(self) -> int:
        return self._dropped_total

    @property
    def log_dir(self) -> Path:
        return self._dir

    def set_drop_callback(self, callback: Callable[[int], None] | None) -> None:
        """Called from the writer thread with the number of records dropped since the previous call."""
        self._on_drop = callback

    def set_runtime_name(self, name: str) -> None:
        if name == self._runtime_name:
            return
        self._runtime_name = name
        self.log("session", operation="runtime_selected", runtime=name)

    # Switching ----------------------------------------------------------------------------------------------
    def start_from_env(self) -> None:
        """At service start: retention now and hourly; a session if DEBUG_MODE is on. Never raises."""
        self._start_maintenance()
        if not self._settings.debug_mode:
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
                _SESSION,
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
            self._submit(session, _SESSION, {"operation": "debug_enabled", "enabled_by": by})
            self._wake.set()
        self._announce()
        return True

    def disable(self) -> bool:
        """Flush, write ``session_end``, close the files (they stay). Returns False if debug mode was off."""
        with self._state_lock:
            s = self._session
            if s is None:
                return False
            self._submit(s, _SESSION, {"operation": "debug_disabled"})
            self._session = None  # from here on, log() is a no-op
            self._drain(s)
            end_us = self._now_us()
            self._submit(
                s,
                _SESSION,
                {
                    "operation": "session_end",
                    "records": {c: s.written[i] for i, c in enumerate(records.CATEGORIES)},
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

    # Logging ------------------------------------------------------------------------------------------------
    def log(self, category: str, **fields: Any) -> None:
        """Record ``fields`` in ``category``; a no-op when debug mode is off.

        Raises ValueError for an unknown category (whether debug mode is on or not, so tests catch typos).
        """
        cat = _CAT_INDEX.get(category)
        if cat is None:
            raise ValueError(f"unknown debug-log category {category!r}")
        s = self._session
        if s is None:
            return
        self._submit(s, cat, fields, False)

    def log_record(self, category: str, **fields: Any) -> dict[str, Any] | None:
        """Like :meth:`log`, and returns the record as written (None when debug mode is off)."""
        cat = _CAT_INDEX.get(category)
        if cat is None:
            raise ValueError(f"unknown debug-log category {category!r}")
        s = self._session
        if s is None:
            return None
        return self._submit(s, cat, fields, True)

    def _submit(
        self,
        s: _Session,
        cat: int,
        fields: dict[str, Any],
        want: bool = False,
        into: list[str] | None = None,
    ) -> dict[str, Any] | None:
        """Mask, serialise and enqueue one record. ``fields`` is the caller's private ``**kwargs`` dict.

        This is the hot path (debug-log.md: a few microseconds of caller time): the fields are serialised
        outside the lock, and the common fields are formatted as text in front of them under the lock.
        """
        cache = _secret_name_cache
        for key, value in fields.items():
            if value.__class__ in _CONTAINERS:
                try:
                    fields[key] = _mask_names(value)  # a copy: the caller's nested objects stay unchanged
                except RecursionError:
                    fields[key] = "<recursive structure>"
            else:
                hit = cache.get(key)
                if hit is None:
                    hit = _is_secret_name(key)
                if hit and _maskable(value):
                    fields[key] = "***"
        duration = fields.get("duration_ms")
        if duration is not None and duration.__class__ in _NUMBERS:
            fields["duration_ms"] = round(float(duration), 2)  # type: ignore[arg-type]
        rid = _get_request_id()
        tid = _get_trace_id()
        extra = ""
        if rid is not None and "request_id" not in fields:
            extra = ',"request_id":' + _encode_str(rid)
        else:
            rid = None
        if tid is not None and "trace_id" not in fields:
            extra += ',"trace_id":' + _encode_str(tid)
        else:
            tid = None
        with s.lock:
            if s.closed:
                return None
            us = _time_ns() // 1000 if self._fast_clock else self._now_us()
            if us <= s.last_us:
                # Strictly increasing, even if the wall clock stands still or steps back: jq's
                # ``sort_by(.timestamp)`` over all files then gives exactly the seq order.
                us = s.last_us + 1
            s.last_us = us
            s.seq += 1
            seq = s.seq
            if into is None and not want:
                # The hot path: serialisation happens on the writer thread (``_render``); the caller only
                # enqueues. ``fields`` is the caller's private ``**kwargs`` dict, and nested containers were
                # copied by ``_mask_names`` above, so nothing the caller holds can change the record later.
                q = s.queue
                if len(q) == s.queue_size:
                    s.dropped += 1
                    with self._count_lock:
                        self._dropped_total += 1
                q.append((cat, (us, seq, rid, tid, extra, fields)))
                depth = len(q)
            else:
                line, rec = self._render(s, us, seq, rid, tid, extra, fields, self._ts_cache_caller)
                if into is not None:
                    into.append(line)
                    return rec
                q = s.queue
                if len(q) == s.queue_size:
                    s.dropped += 1
                    with self._count_lock:
                        self._dropped_total += 1
                q.append((cat, line))
                depth = len(q)
        if depth > self._high_water:
            self._wake.set()
        if want and rec is None:
            sec, frac = divmod(us, 1_000_000)
            timestamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:06d}Z"
            rec = _record(s.id, timestamp, round((us - s.start_us) / 1e6, 3), seq, rid, tid, fields)
        return rec if want else None

    def _render(
        self,
        s: _Session,
        us: int,
        seq: int,
        rid: str | None,
        tid: str | None,
        extra: str,
        fields: dict[str, Any],
        cache: list[Any],
    ) -> tuple[str, dict[str, Any] | None]:
        """One record as a JSON line (and, if a secret had to be masked in it, the masked record)."""
        body = _dumps(fields)
        body = "," + body[1:] if len(body) > 2 else "}"
        sec, frac = divmod(us, 1_000_000)
        if cache[0] != sec:
            cache[0] = sec
            cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        timestamp = f"{cache[1]}.{frac:06d}Z"
        elapsed = round((us - s.start_us) / 1e6, 3)
        line = (
            f'{{"session_id":{s.id_json},"timestamp":"{timestamp}",'
            f'"elapsed_seconds":{elapsed!r},"seq":{seq}{extra}{body}'
        )
        rec: dict[str, Any] | None = None
        for secret in self._secrets_json:
            if secret in line:
                rec = _mask_values(_record(s.id, timestamp, elapsed, seq, rid, tid, fields), self._secrets)
                line = _dumps(rec)
                break
        return line, rec

    def _now_us(self) -> int:
        if self._fast_clock:
            return time.time_ns() // 1000
        now = self._clock()
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return (now - _EPOCH) // _ONE_US

    # Writing ------------------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Block until every record submitted so far is on disk (or kept for retry after a disk error)."""
        for s in list(self._live):
            self._drain(s)

    def _drain(self, s: _Session) -> None:
        with s.io_lock:
            with s.lock:
                batch = s.queue
                if batch:
                    s.queue = deque(maxlen=s.queue_size)
            if all(fd < 0 for fd in s.fds) and s.closed:
                return
            chunks: list[list[str]] = [[] for _ in range(_NCATS)]
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
                dropped = sum(len(chunks[i]) for i in range(_NCATS) if i != _SESSION)
                if dropped:
                    for i in range(_NCATS):
                        if i != _SESSION:
                            chunks[i] = []
                    self._count_drops(s, dropped)
                if not s.cap_reported:
                    s.cap_reported = True
                    message = (
                        f"debug session {s.id} reached DEBUG_LOG_MAX_MB "
                        f"({self._settings.debug_log_max_mb} MB); new entries are dropped and counted"
                    )
                    logger.error("%s", message)
                    line = self._error_line(s, "size_cap", "DebugLogFull", message)
                    if line:
                        forced.append(line)
            for i in range(_NCATS):
                lines = chunks[i]
                if i == _ERRORS and forced:
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

    def _write(self, s: _Session, i: int, data: bytes) -> bool:
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

    def _check_files(self, s: _Session) -> bool:
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

    def _report(self, s: _Session, name: str, exc: OSError) -> None:
        s.last_error = f"{name}: {_reason(exc)}"
        if s.error_active:
            return
        s.error_active = True
        logger.error("debug log write failed (%s); debug mode stays on and retries on the next flush", s.last_error)
        self._submit(
            s,
            _ERRORS,
            {
                "component": "debuglog",
                "operation": "write",
                "error_type": type(exc).__name__,
                "error_message": s.last_error,
                "traceback": None,
            },
        )

    def _error_line(self, s: _Session, operation: str, error_type: str, message: str) -> str:
        """Build an ``errors`` record without queueing it (it bypasses the size cap)."""
        fields: dict[str, Any] = {
            "component": "debuglog",
            "operation": operation,
            "error_type": error_type,
            "error_message": message,
            "traceback": None,
        }
        out: list[str] = []
        self._submit(s, _ERRORS, fields, into=out)
        return out[0] if out else ""

    def _count_drops(self, s: _Session, n: int) -> None:
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
    def _create_session(self, by: str) -> _Session:
        directory = self._dir
        try:
            created = not directory.exists()
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            if created:
                os.chmod(directory, 0o700)
            start_us = self._now_us()
            base = time.strftime("%Y%m%d_%H%M%S", time.gmtime(start_us // 1_000_000))
            n = 1
            while True:
                sid = base if n == 1 else f"{base}_{n}"
                n += 1
                if sid in self._reserved or (self._last_session is not None and self._last_session.id == sid):
                    continue
                session = _Session(sid, directory, start_us, by, self._queue_size)
                self._reserved.add(sid)
                try:
                    session.open_files()
                except FileExistsError:
                    self._reserved.discard(sid)
                    continue
                except OSError:
                    self._reserved.discard(sid)
                    raise
                return session
        except OSError as exc:
            raise DebugDirError(_reason(exc)) from exc

    def run_retention(self) -> list[str]:
        """Delete whole sessions older than DEBUG_LOG_RETENTION_DAYS, then the oldest until under
        DEBUG_LOG_MAX_MB.

        Never deletes the current session. Returns the deleted session ids.
        """
        with self._retention_lock:
            sessions = records.scan_sessions(self._dir)
            with self._state_lock:
                protected = set(self._reserved)
                current = self._session
                if current is not None:
                    protected.add(current.id)
            sizes: dict[str, int] = {}
            newest: dict[str, float] = {}
            for sf in sessions:
                size, mtime = 0, 0.0
                for path in sf.paths:
                    try:
                        st = path.stat()
                    except OSError:
                        continue
                    size += st.st_size
                    mtime = max(mtime, st.st_mtime)
                sizes[sf.session_id], newest[sf.session_id] = size, mtime
            deleted: list[str] = []
            keep: list[records.SessionFiles] = []
            days = self._settings.debug_log_retention_days
            cutoff = (self._clock() - timedelta(days=days)).timestamp() if days > 0 else None
            for sf in sessions:
                if cutoff is not None and sf.session_id not in protected and newest[sf.session_id] < cutoff:
                    self._delete_session(sf)
                    deleted.append(sf.session_id)
                else:
                    keep.append(sf)
            total = sum(sizes[sf.session_id] for sf in keep)
            for sf in keep:
                if total <= self._cap_bytes:
                    break
                if sf.session_id in protected:
                    continue
                self._delete_session(sf)
                deleted.append(sf.session_id)
                total -= sizes[sf.session_id]
            if deleted:
                logger.info("debug log retention deleted %d session(s): %s", len(deleted), ", ".join(deleted))
            return deleted

    @staticmethod
    def _delete_session(sf: records.SessionFiles) -> None:
        for path in sf.paths:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                logger.warning("debug log retention could not delete %s: %s", path, _reason(exc))

    # Status and bundle --------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The api.md §8 DebugStatus body (without ``changed``)."""
        active = self._session
        s = active or self._last_session
        files: list[dict[str, Any]] = []
        if active is not None:
            files = [
                {"name": path.name, "category": records.CATEGORIES[i], "bytes": active.bytes[i]}
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
                "retention_days": self._settings.debug_log_retention_days,
                "max_mb": self._settings.debug_log_max_mb,
                "flush_interval_ms": self._settings.debug_flush_interval_ms,
                "slow_provisioning_ratio": self._settings.debug_slow_provisioning_ratio,
                "unhealthy_ratio": self._settings.debug_unhealthy_ratio,
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
        """The INFO line of config.md, emitted even when the root level is above INFO."""
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
