"""Building, masking and queueing debug records on the caller's thread: the hot path of debug mode.

``log()`` is called from the event loop, from threads, from everywhere. It masks the values of
secret-looking keys, takes ``seq`` and a strictly increasing timestamp under the session's short lock (so
that ``seq`` and the timestamps follow file order) and appends the record to the session's bounded queue.
Serialisation happens later, on the writer thread (:meth:`Recorder._render`), except for records the
caller wants back. Nothing here touches the disk; when debug mode is off ``log()`` is one attribute read.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from aceorch import aiokits
from aceorch.debuglog.masking import is_secret_name, mask_names, mask_values, maskable, secret_name_cache
from aceorch.debuglog.session import CAT_INDEX, EPOCH, ONE_US, Session, encode
from aceorch.models import utcnow

__all__ = ["Recorder", "dumps", "build_record"]


# orjson serialises a record in about a tenth of the standard library's time; the fallback keeps odd objects
# (integers beyond 64 bits, cycles) from ever breaking a caller.
_encode_str: Callable[[str], str] = json.encoder.encode_basestring
_orjson_dumps = orjson.dumps
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(obj: dict[str, Any]) -> str:
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
        return encode({"unserialisable_record": repr(exc)})



_CONTAINERS = frozenset({dict, list, tuple})
_get_request_id = aiokits.request_id_var.get
_get_trace_id = aiokits.trace_id_var.get
_time_ns = time.time_ns
_NUMBERS = frozenset({int, float})


def build_record(
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


class Recorder:
    """The record path of :class:`~aceorch.debuglog.writer.DebugLog`: ``log()``, masking, ``seq``, the queue."""

    def __init__(self, *, clock: Callable[[], datetime], queue_size: int, secrets: Sequence[str | None],
                 categories: Sequence[str] | None = None) -> None:
        self._clock = clock
        #: Category name -> file index; the orchestrator's categories unless a writer names its own.
        self._cat_index = CAT_INDEX if categories is None else {c: i for i, c in enumerate(categories)}
        self._fast_clock = clock is utcnow
        self._queue_size = max(1, queue_size)
        self._high_water = max(1, self._queue_size // 2)
        # Secrets as they appear inside a JSON string, for the cheap substring test on each line.
        self._secrets: tuple[str, ...] = tuple(s for s in secrets if s)
        self._secrets_json = tuple(encode(s)[1:-1] for s in self._secrets)
        self._session: Session | None = None
        self._count_lock = threading.Lock()
        self._written_total = 0
        self._dropped_total = 0
        # (second, "YYYY-MM-DDTHH:MM:SS") caches: one used under the session lock, one by the writer thread.
        self._ts_cache_caller: list[Any] = [-1, ""]
        self._ts_cache_writer: list[Any] = [-1, ""]
        #: Set to wake the writer thread early (the queue is past its high-water mark).
        self._wake = threading.Event()

    def log(self, category: str, **fields: Any) -> None:
        """Record ``fields`` in ``category``; a no-op when debug mode is off.

        Raises ValueError for an unknown category (whether debug mode is on or not, so tests catch typos).
        """
        cat = self._cat_index.get(category)
        if cat is None:
            raise ValueError(f"unknown debug-log category {category!r}")
        s = self._session
        if s is None:
            return
        self._submit(s, cat, fields, False)

    def log_record(self, category: str, **fields: Any) -> dict[str, Any] | None:
        """Like :meth:`log`, and returns the record as written (None when debug mode is off)."""
        cat = self._cat_index.get(category)
        if cat is None:
            raise ValueError(f"unknown debug-log category {category!r}")
        s = self._session
        if s is None:
            return None
        return self._submit(s, cat, fields, True)

    def _submit(
        self,
        s: Session,
        cat: int,
        fields: dict[str, Any],
        want: bool = False,
        into: list[str] | None = None,
    ) -> dict[str, Any] | None:
        """Mask, serialise and enqueue one record. ``fields`` is the caller's private ``**kwargs`` dict.

        This is the hot path (a few microseconds of caller time): the fields are serialised
        outside the lock, and the common fields are formatted as text in front of them under the lock.
        """
        cache = secret_name_cache
        for key, value in fields.items():
            if value.__class__ in _CONTAINERS:
                try:
                    fields[key] = mask_names(value)  # a copy: the caller's nested objects stay unchanged
                except RecursionError:
                    fields[key] = "<recursive structure>"
            else:
                hit = cache.get(key)
                if hit is None:
                    hit = is_secret_name(key)
                if hit and maskable(value):
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
                # copied by ``mask_names`` above, so nothing the caller holds can change the record later.
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
            rec = build_record(s.id, timestamp, round((us - s.start_us) / 1e6, 3), seq, rid, tid, fields)
        return rec if want else None

    def _render(
        self,
        s: Session,
        us: int,
        seq: int,
        rid: str | None,
        tid: str | None,
        extra: str,
        fields: dict[str, Any],
        cache: list[Any],
    ) -> tuple[str, dict[str, Any] | None]:
        """One record as a JSON line (and, if a secret had to be masked in it, the masked record)."""
        body = dumps(fields)
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
                rec = mask_values(build_record(s.id, timestamp, elapsed, seq, rid, tid, fields), self._secrets)
                line = dumps(rec)
                break
        return line, rec

    def _now_us(self) -> int:
        if self._fast_clock:
            return time.time_ns() // 1000
        now = self._clock()
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return (now - EPOCH) // ONE_US
