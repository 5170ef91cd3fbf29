"""Offline analysis of debug-mode session files: what the seed does with ``jq`` and ad-hoc Python.

Everything here is a pure function over the JSONL files of ``debug-log.md`` (or over plain record dicts) and
depends on the standard library only, so ``aceorch debug …`` works on a copied log folder without the service,
and so the writer can change its internals without breaking the analysis.

Shape, and why:

* **Streaming.** Files are read line by line in binary; nothing keeps a whole file in memory. Where a
  command needs a merged view across categories (``slow``, ``timeline``) the per-category files, each
  already in ``seq`` order, are merged lazily with :func:`heapq.merge` on ``(timestamp, seq)``.
* **A fast path for ``report``.** Most lines of a large provisioning log only contribute an operation name,
  a duration and a success flag. :func:`fast_fields` pulls those three out with byte regexes when they are
  provably top-level keys (they appear before any nested ``{``), and falls back to :func:`json.loads`
  otherwise. Durations are summed left to right in file order, exactly as ``jq -s '… | add / length'``
  does, so the average of ``start_acestream_success`` is bit-for-bit the seed's answer.
* **Progress.** Readers call an optional ``progress(bytes_read)`` callback every few thousand lines; the
  CLI turns it into a rich progress bar on large inputs. This module never prints.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import heapq
import itertools
import json
import math
import multiprocessing
import operator
import os
import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aceorch.debuglog.records import CATEGORIES

__all__ = [
    "CATEGORIES",
    "AnalysisError",
    "Reader",
    "Session",
    "discover_sessions",
    "select_sessions",
    "parse_session_time",
    "parse_timestamp",
    "fast_fields",
    "percentile",
    "slow_threshold_ms",
    "session_config",
    "session_summaries",
    "build_report",
    "slow_records",
    "stress_summary",
    "timeline",
    "csv_rows",
    "CSV_COLUMNS",
    "vpn_outages",
    "health_cycles",
    "health_buckets",
    "Outage",
    "HealthCycle",
    "Record",
]

Record = dict[str, Any]
Progress = Callable[[int], None]

# Any category name: a proxy's own files (same layout) may have categories of their own.
SESSION_FILE_RE = re.compile(r"^(?P<sid>\d{8}_\d{6}(?:_\d+)?)_(?P<cat>[a-z][a-z_]*)\.jsonl$")
SESSION_ID_RE = re.compile(r"^\d{8}_\d{6}(?:_\d+)?$")

DEFAULT_STARTUP_TIMEOUT_S = 25.0
DEFAULT_SLOW_RATIO = 0.7
DEFAULT_UNHEALTHY_RATIO = 0.3

# Files at least this large are aggregated by worker processes in ``report``.
PARALLEL_MIN_BYTES = 64 * 1024 * 1024

# How often (in lines) readers report progress and check the file position.
_PROGRESS_EVERY = 8192


class AnalysisError(Exception):
    """A problem the user can fix (no such folder or session, bad argument); the CLI prints it and exits 1."""


# ----------------------------------------------------------------------------------------------------
# Sessions and files
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """One debug session: its id and its category files (only the ones that exist)."""

    session_id: str
    files: dict[str, Path]

    @property
    def sort_key(self) -> tuple[str, int]:
        base, _, suffix = self.session_id[:15], None, self.session_id[16:]
        return base, int(suffix) if suffix else 1

    @property
    def size(self) -> int:
        total = 0
        for path in self.files.values():
            try:
                total += path.stat().st_size
            except OSError:
                pass
        return total

    def path(self, category: str) -> Path | None:
        return self.files.get(category)


def parse_session_time(session_id: str) -> datetime:
    """The UTC start time encoded in a session id (``YYYYMMDD_HHMMSS`` with an optional ``_N``)."""
    return datetime.strptime(session_id[:15], "%Y%m%d_%H%M%S").replace(tzinfo=UTC)


def discover_sessions(log_dir: Path) -> list[Session]:
    """Every session in ``log_dir``, oldest first. Files not named by the contract are ignored."""
    if not log_dir.is_dir():
        raise AnalysisError(f"debug log folder not found: {log_dir}")
    found: dict[str, dict[str, Path]] = {}
    for entry in log_dir.iterdir():
        match = SESSION_FILE_RE.match(entry.name)
        if match is None or not entry.is_file():
            continue
        found.setdefault(match["sid"], {})[match["cat"]] = entry
    sessions = [Session(sid, files) for sid, files in found.items()]
    sessions.sort(key=lambda s: s.sort_key)
    return sessions


def select_sessions(
    sessions: Sequence[Session], *, session_id: str | None, all_sessions: bool
) -> list[Session]:
    """``--session ID`` (or a unique prefix of one), ``--all``, or by default the latest session."""
    if not sessions:
        raise AnalysisError("no debug sessions found")
    if all_sessions:
        return list(sessions)
    if session_id is None:
        return [sessions[-1]]
    exact = [s for s in sessions if s.session_id == session_id]
    if exact:
        return exact
    prefixed = [s for s in sessions if s.session_id.startswith(session_id)]
    if len(prefixed) == 1:
        return prefixed
    if prefixed:
        raise AnalysisError(
            f"session {session_id!r} is ambiguous: " + ", ".join(s.session_id for s in prefixed)
        )
    raise AnalysisError(f"no such session: {session_id}")


def parse_timestamp(text: str) -> datetime:
    """Parse a record timestamp (``YYYY-MM-DDTHH:MM:SS.ffffffZ``, or any ISO 8601 form with an offset)."""
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ts_seconds(text: Any) -> float | None:
    """A record timestamp as POSIX seconds, or ``None`` if it is missing or malformed."""
    if not isinstance(text, str):
        return None
    try:
        return parse_timestamp(text).timestamp()
    except ValueError:
        return None


# ----------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------


@dataclass
class Reader:
    """Reads session files line by line, counting malformed lines and reporting progress in bytes."""

    progress: Progress | None = None
    bad_lines: int = 0

    def lines(self, path: Path) -> Iterator[bytes]:
        """Non-blank lines of ``path`` (bytes, stripped). A missing file yields nothing."""
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return
        progress = self.progress
        with handle:
            reported = 0
            count = 0
            for line in handle:
                count += 1
                if progress is not None and count % _PROGRESS_EVERY == 0:
                    pos = handle.tell()
                    progress(pos - reported)
                    reported = pos
                line = line.strip()
                if line:
                    yield line
            if progress is not None:
                end = handle.tell()
                progress(end - reported)

    def chunks(self, path: Path, size: int = 4 << 20) -> Iterator[bytes]:
        """Blocks of whole lines (each ends with a newline, a final partial line gets one)."""
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return
        with handle:
            rest = b""
            while True:
                block = handle.read(size)
                if self.progress is not None and block:
                    self.progress(len(block))
                if not block:
                    if rest.strip():
                        yield rest + b"\n"
                    return
                block = rest + block
                cut = block.rfind(b"\n") + 1
                rest = block[cut:]
                if cut:
                    yield block[:cut]

    def records(self, path: Path, *, needle: bytes | None = None) -> Iterator[Record]:
        """Parsed records of ``path``. With ``needle``, lines that do not contain it are skipped unparsed."""
        for line in self.lines(path):
            if needle is not None and needle not in line:
                continue
            record = self.parse(line)
            if record is not None:
                yield record

    def parse(self, line: bytes) -> Record | None:
        try:
            value = json.loads(line)
        except ValueError:
            self.bad_lines += 1
            return None
        if not isinstance(value, dict):
            self.bad_lines += 1
            return None
        return value

    def merged(
        self,
        sessions: Sequence[Session],
        categories: Iterable[str],
        *,
        needle: bytes | None = None,
    ) -> Iterator[tuple[str, Record]]:
        """``(category, record)`` of several files merged by ``(timestamp, seq)``, lazily."""
        wanted = list(categories)
        streams: list[Iterator[tuple[tuple[str, int], str, Record]]] = []
        for session in sessions:
            for category in wanted:
                path = session.path(category)
                if path is not None:
                    streams.append(self._keyed(category, path, needle))
        for _key, category, record in heapq.merge(*streams, key=lambda item: item[0]):
            yield category, record

    def _keyed(
        self, category: str, path: Path, needle: bytes | None
    ) -> Iterator[tuple[tuple[str, int], str, Record]]:
        for record in self.records(path, needle=needle):
            yield _order_key(record), category, record


def _order_key(record: Record) -> tuple[str, int]:
    ts = record.get("timestamp")
    seq = record.get("seq")
    seq_key = seq if isinstance(seq, int) and not isinstance(seq, bool) else 0
    return (ts if isinstance(ts, str) else "", seq_key)


def total_size(sessions: Sequence[Session], categories: Iterable[str] | None = None) -> int:
    """Bytes that a command will read (for deciding whether to show a progress bar)."""
    wanted = set(categories) if categories is not None else None
    total = 0
    for session in sessions:
        for category, path in session.files.items():
            if wanted is None or category in wanted:
                try:
                    total += path.stat().st_size
                except OSError:
                    pass
    return total


# ----------------------------------------------------------------------------------------------------
# The fast path
# ----------------------------------------------------------------------------------------------------

_OP_RE = re.compile(rb'"operation"\s*:\s*"((?:[^"\\]|\\.)*)"')
_DUR_RE = re.compile(rb'"duration_ms"\s*:\s*(null|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?=\s*[,}])')
_SUC_RE = re.compile(rb'"success"\s*:\s*(true|false|null)(?=\s*[,}])')
_MISSING = object()


def _fast_value(line: bytes, pattern: re.Pattern[bytes], key: bytes, limit: int) -> Any:
    """The raw match of a top-level key, ``None`` if the key is absent, ``_MISSING`` if unsure."""
    match = pattern.search(line)
    if match is None:
        return _MISSING if key in line else None
    if match.start() > limit:
        # Behind a nested object: it may belong to it (labels, config…); let json decide.
        return _MISSING
    return match.group(1)


def fast_fields(line: bytes) -> tuple[str | None, float | None, bool | None] | None:
    """``(operation, duration_ms, success)`` of one JSONL line without parsing it, or ``None`` when unsure.

    A key found by the regex is a real key (inside a JSON string every quote is escaped), and it is a
    top-level key when it comes before the first nested ``{``. Anything else (a key only after a nested
    object, an unexpected value type, an escaped operation name) returns ``None`` and the caller parses the
    line with :mod:`json`.
    """
    if not line.startswith(b"{") or not line.endswith(b"}"):
        return None
    nested = line.find(b"{", 1)
    limit = len(line) if nested < 0 else nested
    op_raw = _fast_value(line, _OP_RE, b'"operation"', limit)
    if op_raw is _MISSING:
        return None
    dur_raw = _fast_value(line, _DUR_RE, b'"duration_ms"', limit)
    if dur_raw is _MISSING:
        return None
    suc_raw = _fast_value(line, _SUC_RE, b'"success"', limit)
    if suc_raw is _MISSING:
        return None
    operation: str | None = None
    if op_raw is not None:
        if b"\\" in op_raw:
            return None
        operation = op_raw.decode("utf-8", "replace")
    duration = None if dur_raw is None or dur_raw == b"null" else float(dur_raw)
    success = None if suc_raw is None or suc_raw == b"null" else suc_raw == b"true"
    return operation, duration, success


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100) by linear interpolation between closest ranks (numpy's default)."""
    n = len(sorted_values)
    if n == 0:
        return None
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


# ----------------------------------------------------------------------------------------------------
# Session config and thresholds
# ----------------------------------------------------------------------------------------------------


def session_config(reader: Reader, sessions: Sequence[Session]) -> dict[str, Any]:
    """The effective config of the first ``session_start`` record found (empty if none)."""
    for session in sessions:
        path = session.path("session")
        if path is None:
            continue
        for record in reader.records(path, needle=b"session_start"):
            if record.get("operation") == "session_start" or record.get("event_type") == "session_start":
                config = record.get("config")
                if isinstance(config, dict):
                    return config
                return {}
    return {}


def config_value(config: dict[str, Any], name: str) -> Any:
    """A setting from a ``session_start`` config, by env-var name or field name (case-insensitive)."""
    wanted = name.lower()
    for key, value in config.items():
        if isinstance(key, str) and key.lower() == wanted:
            return value
    for value in config.values():
        if isinstance(value, dict):
            found = config_value(value, name)
            if found is not None:
                return found
    return None


def _config_float(config: dict[str, Any], name: str, default: float) -> float:
    value = config_value(config, name)
    try:
        return float(value) if value is not None and not isinstance(value, bool) else default
    except (TypeError, ValueError):
        return default


def slow_threshold_ms(config: dict[str, Any]) -> float:
    """``STARTUP_TIMEOUT_S`` × ``DEBUG_SLOW_PROVISIONING_RATIO`` in ms (17500 with the defaults)."""
    timeout = _config_float(config, "STARTUP_TIMEOUT_S", DEFAULT_STARTUP_TIMEOUT_S)
    ratio = _config_float(config, "DEBUG_SLOW_PROVISIONING_RATIO", DEFAULT_SLOW_RATIO)
    return round(timeout * ratio * 1000.0, 2)


def unhealthy_ratio(config: dict[str, Any]) -> float:
    return _config_float(config, "DEBUG_UNHEALTHY_RATIO", DEFAULT_UNHEALTHY_RATIO)


# ----------------------------------------------------------------------------------------------------
# sessions
# ----------------------------------------------------------------------------------------------------


def _count_lines(path: Path, progress: Progress | None) -> int:
    count = 0
    last = b"\n"
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(1 << 20)
            if not chunk:
                break
            count += chunk.count(b"\n")
            last = chunk[-1:]
            if progress is not None:
                progress(len(chunk))
    if last != b"\n":
        count += 1  # a final line without its newline (killed writer)
    return count


def _first_last_timestamps(path: Path) -> tuple[str | None, str | None]:
    first: str | None = None
    last: str | None = None
    with path.open("rb") as handle:
        for raw in handle:
            ts = _line_timestamp(raw)
            if ts is not None:
                first = ts
                break
        handle.seek(0, 2)
        size = handle.tell()
        back = min(size, 1 << 16)
        handle.seek(size - back)
        tail = handle.read(back).splitlines()
        for raw in reversed(tail):
            ts = _line_timestamp(raw)
            if ts is not None:
                last = ts
                break
    return first, last


_TS_RE = re.compile(rb'"timestamp"\s*:\s*"([^"]+)"')


def _line_timestamp(line: bytes) -> str | None:
    match = _TS_RE.search(line)
    return match.group(1).decode("ascii", "replace") if match else None


def session_summaries(reader: Reader, sessions: Sequence[Session]) -> list[dict[str, Any]]:
    """Per session: start, end, duration, records per category, size, and how it ended."""
    out: list[dict[str, Any]] = []
    for session in sessions:
        counts: dict[str, int] = {}
        firsts: list[str] = []
        lasts: list[str] = []
        for category, path in sorted(session.files.items()):
            try:
                counts[category] = _count_lines(path, reader.progress)
                first, last = _first_last_timestamps(path)
            except OSError:
                continue
            if first:
                firsts.append(first)
            if last:
                lasts.append(last)
        start: str | None = None
        end: str | None = None
        ended_cleanly = False
        dropped: Any = None
        version: Any = None
        session_path = session.path("session")
        if session_path is not None:
            for record in reader.records(session_path):
                op = record.get("operation") or record.get("event_type")
                if op == "session_start" and start is None:
                    start = record.get("timestamp")
                    version = record.get("version")
                elif op == "session_end":
                    end = record.get("timestamp")
                    ended_cleanly = True
                    dropped = record.get("dropped", record.get("records_dropped"))
        if start is None:
            start = min(firsts) if firsts else format_timestamp(parse_session_time(session.session_id))
        if end is None:
            end = max(lasts) if lasts else start
        start_s, end_s = ts_seconds(start), ts_seconds(end)
        duration = round(end_s - start_s, 3) if start_s is not None and end_s is not None else None
        out.append(
            {
                "session_id": session.session_id,
                "start": start,
                "end": end,
                "duration_s": duration,
                "ended_cleanly": ended_cleanly,
                "records": counts,
                "total_records": sum(counts.values()),
                "records_dropped": dropped,
                "size_bytes": session.size,
                "version": version,
            }
        )
    return out


# ----------------------------------------------------------------------------------------------------
# VPN outages and health cycles (small files, parsed fully)
# ----------------------------------------------------------------------------------------------------

_VPN_DOWN = frozenset(
    {"unhealthy", "down", "disconnected", "stopped", "exited", "error", "failed", "unreachable"}
)
_VPN_UP = frozenset({"healthy", "connected", "up"})


@dataclass
class Outage:
    start: str
    end: str | None = None
    duration_ms: float | None = None
    signal: str | None = None
    outage_ms: float | None = None  # what vpn_recovered reported, if anything
    engines_restarted: Any = None

    def start_s(self) -> float:
        return ts_seconds(self.start) or 0.0

    def end_s(self, default: float) -> float:
        value = ts_seconds(self.end) if self.end else None
        return value if value is not None else default

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "duration_ms": self.duration_ms,
            "signal": self.signal,
            "outage_ms": self.outage_ms,
            "engines_restarted": self.engines_restarted,
        }


def _vpn_signal(record: Record) -> bool | None:
    """True = the VPN is up, False = down, None = this record says nothing about it."""
    op = record.get("operation") or record.get("event_type")
    if op == "transition":
        to = record.get("to")
        if isinstance(to, str):
            if to.lower() in _VPN_DOWN:
                return False
            if to.lower() in _VPN_UP:
                return True
        return None
    if op == "health_check":
        connected = record.get("connected")
        if isinstance(connected, bool):
            return connected
        health = record.get("health")
        if isinstance(health, str):
            if health.lower() in _VPN_DOWN:
                return False
            if health.lower() in _VPN_UP:
                return True
    if op == "vpn_disconnection":
        return False
    if op == "vpn_recovered":
        return True
    return None


def vpn_outages(records: Iterable[Record]) -> list[Outage]:
    """Outages from a time-ordered stream of ``vpn`` and ``stress`` records: a small state machine.

    Any down signal (a transition to ``unhealthy``, a failed ``health_check``, a ``vpn_disconnection``)
    opens an outage, and the first up signal closes it.
    ``vpn_recovered`` adds its ``outage_ms`` and restart count.
    """
    outages: list[Outage] = []
    current: Outage | None = None
    for record in records:
        up = _vpn_signal(record)
        ts = record.get("timestamp")
        if not isinstance(ts, str):
            continue
        kind = record.get("operation") or record.get("event_type")
        if up is False and current is None:
            signal = record.get("signal") or record.get("reason") or kind
            current = Outage(start=ts, signal=str(signal) if signal is not None else None)
            outages.append(current)
        elif up is False and current is not None and kind == "vpn_disconnection" and record.get("signal"):
            current.signal = str(record["signal"])
        elif up is True and current is not None:
            current.end = ts
            start_s, end_s = ts_seconds(current.start), ts_seconds(ts)
            if start_s is not None and end_s is not None:
                current.duration_ms = round((end_s - start_s) * 1000.0, 2)
            current = None
        if kind == "vpn_recovered" and outages:
            target = outages[-1]
            target.outage_ms = _number(record.get("outage_ms"))
            target.engines_restarted = record.get("engines_restarted")
    return outages


@dataclass(frozen=True)
class HealthCycle:
    timestamp: str
    t: float
    healthy: int
    unhealthy: int
    unknown: int
    total: int


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def health_cycles(records: Iterable[Record]) -> list[HealthCycle]:
    """The ``health_monitor_cycle`` summaries (one per sweep) of a stream of ``health`` records."""
    out: list[HealthCycle] = []
    for record in records:
        if record.get("operation") != "health_monitor_cycle":
            continue
        t = ts_seconds(record.get("timestamp"))
        if t is None:
            continue
        healthy, unhealthy, unknown = (_int(record.get(k)) for k in ("healthy", "unhealthy", "unknown"))
        total = _int(record.get("total")) or healthy + unhealthy + unknown
        out.append(HealthCycle(str(record["timestamp"]), t, healthy, unhealthy, unknown, total))
    return out


def health_buckets(cycles: Sequence[HealthCycle], buckets: int = 12) -> list[dict[str, Any]]:
    """Health over time: ``buckets`` equal time slices, each with sum(healthy) / sum(total) of its sweeps."""
    if not cycles:
        return []
    t0, t1 = cycles[0].t, cycles[-1].t
    n = max(1, min(buckets, len(cycles)))
    width = (t1 - t0) / n if t1 > t0 else 1.0
    slots: list[list[HealthCycle]] = [[] for _ in range(n)]
    for cycle in cycles:
        index = min(n - 1, int((cycle.t - t0) / width)) if t1 > t0 else 0
        slots[index].append(cycle)
    out: list[dict[str, Any]] = []
    for index, slot in enumerate(slots):
        if not slot:
            continue
        healthy = sum(c.healthy for c in slot)
        unhealthy = sum(c.unhealthy for c in slot)
        total = sum(c.total for c in slot)
        out.append(
            {
                "start": format_timestamp(datetime.fromtimestamp(t0 + index * width, UTC)),
                "end": format_timestamp(datetime.fromtimestamp(t0 + (index + 1) * width, UTC)),
                "cycles": len(slot),
                "healthy_avg": round(healthy / len(slot), 2),
                "unhealthy_avg": round(unhealthy / len(slot), 2),
                "total_avg": round(total / len(slot), 2),
                "healthy_ratio": round(healthy / total, 4) if total else None,
                "min_healthy_ratio": min(
                    (round(c.healthy / c.total, 4) for c in slot if c.total), default=None
                ),
            }
        )
    return out


# ----------------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------------


@dataclass
class OpStats:
    """Running statistics of one operation in one category."""

    category: str
    operation: str
    count: int = 0
    durations: array[float] = field(default_factory=lambda: array("d"))
    total: float = 0.0  # summed left to right in file order, like jq's ``add``
    succeeded: int = 0
    failed: int = 0
    ok_count: int = 0
    ok_total: float = 0.0
    ok_min: float = math.inf
    ok_max: float = -math.inf

    def add(self, duration: float | None, success: bool | None) -> None:
        self.count += 1
        if success is True:
            self.succeeded += 1
        elif success is False:
            self.failed += 1
        if duration is None:
            return
        self.durations.append(duration)
        self.total += duration
        if success:
            # The seed's "Performance Report": entries with a duration whose success is truthy.
            self.ok_count += 1
            self.ok_total += duration
            self.ok_min = min(self.ok_min, duration)
            self.ok_max = max(self.ok_max, duration)

    def merge(self, part: _ChunkOp) -> None:
        """Fold a chunk's aggregate in, exactly as if its lines had been ``add``-ed one by one."""
        self.count += part.count
        self.succeeded += part.succeeded
        self.failed += part.failed
        if part.durations:
            values = part.durations
            self.durations.extend(values)
            self.total = functools.reduce(operator.add, values, self.total)
        if part.ok:
            ok = part.ok
            self.ok_count += len(ok)
            self.ok_total = functools.reduce(operator.add, ok, self.ok_total)
            self.ok_min = min(self.ok_min, min(ok))
            self.ok_max = max(self.ok_max, max(ok))

    def as_dict(self) -> dict[str, Any]:
        values = sorted(self.durations)
        n = len(values)
        decided = self.succeeded + self.failed
        return {
            "category": self.category,
            "operation": self.operation,
            "count": self.count,
            "with_duration": n,
            "avg_ms": self.total / n if n else None,
            "min_ms": values[0] if n else None,
            "max_ms": values[-1] if n else None,
            "p50_ms": percentile(values, 50),
            "p95_ms": percentile(values, 95),
            "succeeded": self.succeeded,
            "failed": self.failed,
            "success_rate": self.succeeded / decided if decided else None,
            "successful": {
                "count": self.ok_count,
                "avg_ms": self.ok_total / self.ok_count if self.ok_count else None,
                "min_ms": self.ok_min if self.ok_count else None,
                "max_ms": self.ok_max if self.ok_count else None,
            },
        }


@dataclass
class _ChunkOp:
    """One operation's share of a block: counts, and its durations in file order."""

    count: int = 0
    succeeded: int = 0
    failed: int = 0
    durations: list[float] = field(default_factory=list)
    ok: list[float] = field(default_factory=list)


_CHUNK_OP_RE = re.compile(rb'"operation": ?"([^"\\\n]*)"')
_CHUNK_DUR_RE = re.compile(rb'"duration_ms": ?(-?\d[\d.eE+-]*|null)(?=[ ,}])')
_CHUNK_SUC_RE = re.compile(rb'"success": ?(true|false|null)(?=[ ,}])')
_CHUNK_NESTED_RE = re.compile(rb': ?\{([^{}\n]*)\}')
_KEYS = (b'"operation"', b'"duration_ms"', b'"success"')

def chunk_aggregate(chunk: bytes) -> tuple[dict[str, _ChunkOp], int] | None:
    """Per-operation counts and durations of a block of JSONL lines (and its line count), or ``None``.

    The block-level fast path of ``report``. Every step is a C-level call over the whole block or mapped
    over its lines (``findall``, ``filter``, ``map``, ``Counter``), so no Python bytecode runs per line.
    It is only used when the block proves simple enough for that to be exact: every line is one object
    whose nested objects are flat and hold none of the three keys, and every occurrence of the keys was
    matched (so none hides in an unusual form). ``None`` sends the caller to line-by-line parsing.
    """
    lines = chunk.count(b"\n")
    if not chunk.startswith(b"{") or chunk.count(b"\n{") != lines - 1:
        return None
    nested = _CHUNK_NESTED_RE.findall(chunk)
    if chunk.count(b"{") != lines + len(nested) or chunk.count(b"}") != lines + len(nested):
        return None
    if nested:
        inner = b"".join(nested)
        if any(key in inner for key in _KEYS):
            return None
    ops = _CHUNK_OP_RE.findall(chunk)
    if len(ops) != chunk.count(_KEYS[0]):
        return None
    timed = list(filter(_CHUNK_DUR_RE.search, chunk.split(b"\n")))
    if len(timed) != chunk.count(_KEYS[1]):
        return None
    op_matches = list(map(_CHUNK_OP_RE.search, timed))
    if None in op_matches:
        return None
    suc_matches = list(map(_CHUNK_SUC_RE.search, timed))
    suc_found = len(suc_matches) - suc_matches.count(None)
    if suc_found != chunk.count(_KEYS[2]):
        return None
    group1 = operator.methodcaller("group", 1)
    timed_ops: list[bytes] = list(map(group1, op_matches))
    raws: list[bytes] = [m.group(1) for m in map(_CHUNK_DUR_RE.search, timed) if m is not None]
    flags: list[bytes | None] = [m.group(1) if m is not None else None for m in suc_matches]
    counts = collections.Counter(ops)
    outcomes = collections.Counter(zip(timed_ops, flags, strict=True))
    out: dict[str, _ChunkOp] = {}
    for key, count in counts.items():
        entry = _ChunkOp(
            count=count, succeeded=outcomes.get((key, b"true"), 0), failed=outcomes.get((key, b"false"), 0)
        )
        if key in outcomes or any(k[0] == key for k in outcomes):
            mine = list(map(key.__eq__, timed_ops))
            durations = list(itertools.compress(raws, mine))
            ok_mask = [is_mine and flag == b"true" for is_mine, flag in zip(mine, flags, strict=True)]
            ok = list(itertools.compress(raws, ok_mask))
            entry.durations = [float(v) for v in durations if v != b"null"]
            entry.ok = [float(v) for v in ok if v != b"null"]
        out[key.decode("utf-8", "replace")] = entry
    return out, lines


def block_stats(chunk: bytes) -> tuple[dict[str, _ChunkOp], int, int]:
    """``(per-operation aggregates, lines taken by the fast path, malformed lines)`` of one block.

    A module-level function of bytes only, so that ``report`` can hand blocks to worker processes.
    """
    fast = chunk_aggregate(chunk)
    if fast is not None:
        return fast[0], fast[1], 0
    out: dict[str, _ChunkOp] = {}
    bad = 0
    for line in chunk.split(b"\n"):
        line = line.strip()
        if not line:
            continue
        fields = fast_fields(line)
        if fields is None:
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                bad += 1
                continue
            op_value = record.get("operation")
            success_value = record.get("success")
            fields = (
                op_value if isinstance(op_value, str) else None,
                _number(record.get("duration_ms")),
                success_value if isinstance(success_value, bool) else None,
            )
        op, duration, success = fields
        if op is None:
            continue
        entry = out.get(op)
        if entry is None:
            entry = out[op] = _ChunkOp()
        entry.count += 1
        if success is True:
            entry.succeeded += 1
        elif success is False:
            entry.failed += 1
        if duration is not None:
            entry.durations.append(duration)
            if success:
                entry.ok.append(duration)
    return out, 0, bad


# Categories whose records carry ``operation`` + ``duration_ms`` and go through the fast path.
_OP_CATEGORIES = ("provisioning", "performance", "autoscaler", "circuit_breaker", "streams", "errors")


def block_stats_at(path: str, start: int, end: int) -> tuple[dict[str, _ChunkOp], int, int]:
    """``block_stats`` of bytes ``start:end`` of ``path`` (a worker reads its own block: nothing is piped)."""
    with open(path, "rb") as handle:
        handle.seek(start)
        return block_stats(handle.read(end - start))


def _block_bounds(path: Path, size: int, block: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` byte ranges of about ``block`` bytes, each ending just after a newline."""
    with path.open("rb") as handle:
        start = 0
        while start < size:
            end = min(start + block, size)
            if end < size:
                handle.seek(end)
                end = min(end + len(handle.readline()), size)
            yield start, end
            start = end


def _block_results(
    reader: Reader, path: Path, workers: int | None
) -> Iterator[tuple[dict[str, _ChunkOp], int, int]]:
    """``block_stats`` of each block of ``path``, in file order; in worker processes for large files."""
    try:
        size = path.stat().st_size
    except OSError:
        return
    count = workers if workers is not None else min(os.cpu_count() or 1, 4)
    if count <= 1 or size < PARALLEL_MIN_BYTES:
        for chunk in reader.chunks(path):
            yield block_stats(chunk)
        return
    # spawn, not fork: the CLI's progress bar runs a thread, and forking a threaded process is unsafe.
    context = multiprocessing.get_context("spawn")
    Result = tuple[dict[str, _ChunkOp], int, int]
    with concurrent.futures.ProcessPoolExecutor(max_workers=count, mp_context=context) as pool:
        pending: collections.deque[tuple[int, concurrent.futures.Future[Result]]] = collections.deque()
        for start, end in _block_bounds(path, size, 8 << 20):
            pending.append((end - start, pool.submit(block_stats_at, str(path), start, end)))
            if len(pending) >= 2 * count:  # bounded: memory stays flat
                length, future = pending.popleft()
                yield future.result()
                if reader.progress is not None:
                    reader.progress(length)
        while pending:
            length, future = pending.popleft()
            yield future.result()
            if reader.progress is not None:
                reader.progress(length)


def build_report(
    reader: Reader, sessions: Sequence[Session], *, workers: int | None = 1
) -> dict[str, Any]:
    """The seed's "Performance Report" and more: per operation, stress counts, VPN outages, health.

    ``workers``: processes for files over ``PARALLEL_MIN_BYTES`` (``None``: the CPU count, at most 4; the
    default 1 stays in this process). Workers are spawned, so a calling script needs the usual
    ``if __name__ == "__main__"`` guard; the CLI asks for them, library callers opt in.
    """
    stats: dict[tuple[str, str], OpStats] = {}

    def feed(category: str, operation: str | None, duration: float | None, success: bool | None) -> None:
        if operation is None:
            return
        key = (category, operation)
        entry = stats.get(key)
        if entry is None:
            entry = stats[key] = OpStats(category, operation)
        entry.add(duration, success)

    fast_hits = 0
    for category in _OP_CATEGORIES:
        for session in sessions:
            path = session.path(category)
            if path is None:
                continue
            for parts, fast_lines, bad in _block_results(reader, path, workers):
                fast_hits += fast_lines
                reader.bad_lines += bad
                for name, part in parts.items():
                    key = (category, name)
                    entry = stats.get(key)
                    if entry is None:
                        entry = stats[key] = OpStats(category, name)
                    entry.merge(part)

    health: list[HealthCycle] = []
    for session in sessions:
        path = session.path("health")
        if path is None:
            continue
        records = list(reader.records(path))
        health.extend(health_cycles(records))
        for record in records:
            op = record.get("operation")
            success = record.get("success")
            feed(
                "health",
                op if isinstance(op, str) else None,
                _number(record.get("duration_ms")),
                success if isinstance(success, bool) else None,
            )

    stress_counts: dict[str, int] = {}
    vpn_records: list[Record] = []
    for category, record in reader.merged(sessions, ("vpn", "stress")):
        if category == "stress":
            kind = record.get("event_type")
            if isinstance(kind, str):
                stress_counts[kind] = stress_counts.get(kind, 0) + 1
        else:
            op = record.get("operation")
            success = record.get("success")
            feed(
                "vpn",
                op if isinstance(op, str) else None,
                _number(record.get("duration_ms")),
                success if isinstance(success, bool) else None,
            )
        if _vpn_signal(record) is not None:
            vpn_records.append(record)
    outages = vpn_outages(vpn_records)

    operations = [entry.as_dict() for entry in stats.values()]
    seed = stats.get(("provisioning", "start_acestream_success"))
    cycles_total = sum(c.total for c in health)
    return {
        "sessions": [s.session_id for s in sessions],
        "operations": operations,
        "average_provisioning_ms": (seed.total / len(seed.durations)) if seed and seed.durations else None,
        "stress": dict(sorted(stress_counts.items())),
        "vpn_outages": [o.as_dict() for o in outages],
        "health": {
            "cycles": len(health),
            "healthy_ratio": (sum(c.healthy for c in health) / cycles_total) if cycles_total else None,
            "min_healthy_ratio": min((c.healthy / c.total for c in health if c.total), default=None),
            "over_time": health_buckets(health),
        },
        "bad_lines": reader.bad_lines,
        "fast_path_lines": fast_hits,
    }


# ----------------------------------------------------------------------------------------------------
# slow, stress, timeline, export-csv
# ----------------------------------------------------------------------------------------------------


def _kind(record: Record) -> str | None:
    kind = record.get("event_type") or record.get("operation")
    return kind if isinstance(kind, str) else None


def slow_records(reader: Reader, sessions: Sequence[Session], *, over_ms: float) -> Iterator[dict[str, Any]]:
    """``select(.duration_ms > MS)`` across every category, in time order."""
    for category, record in reader.merged(sessions, CATEGORIES, needle=b'"duration_ms"'):
        duration = _number(record.get("duration_ms"))
        if duration is None or not duration > over_ms:
            continue
        yield {
            "timestamp": record.get("timestamp"),
            "category": category,
            "type": _kind(record),
            "duration_ms": duration,
            "success": record.get("success"),
            "container_name": record.get("container_name"),
            "container_id": record.get("container_id"),
            "request_id": record.get("request_id"),
            "error": record.get("error"),
            "seq": record.get("seq"),
        }


def stress_summary(
    reader: Reader, sessions: Sequence[Session], *, event_type: str | None = None
) -> dict[str, Any]:
    """Stress events grouped by type (``X`` and ``X_resolved`` together), and the list of them in order."""
    groups: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    for _category, record in reader.merged(sessions, ("stress",)):
        kind = record.get("event_type")
        if not isinstance(kind, str):
            continue
        resolved = kind.endswith("_resolved")
        base = kind[: -len("_resolved")] if resolved else kind
        if event_type is not None and base != event_type and kind != event_type:
            continue
        group = groups.get(base)
        if group is None:
            group = groups[base] = {
                "event_type": base,
                "severity": None,
                "count": 0,
                "resolved": 0,
                "resolved_duration_ms": 0.0,
                "samples": 0,
                "first": None,
                "last": None,
            }
        ts = record.get("timestamp")
        if resolved:
            group["resolved"] += 1
            group["resolved_duration_ms"] += _number(record.get("duration_ms")) or 0.0
            group["samples"] += _int(record.get("samples"))
        else:
            group["count"] += 1
            group["severity"] = record.get("severity") or group["severity"]
            group["first"] = group["first"] or ts
            group["last"] = ts
        events.append(
            {
                "timestamp": ts,
                "event_type": kind,
                "severity": record.get("severity"),
                "description": record.get("description"),
                "duration_ms": _number(record.get("duration_ms")),
                "container_name": record.get("container_name"),
                "seq": record.get("seq"),
            }
        )
    for group in groups.values():
        group["resolved_duration_ms"] = round(group["resolved_duration_ms"], 2)
    ordered = sorted(groups.values(), key=lambda g: (-g["count"], g["event_type"]))
    return {"groups": ordered, "events": events, "total": sum(g["count"] for g in ordered)}


def _bound(value: str | None, *, upper: bool) -> Callable[[str], bool] | None:
    """A predicate on record timestamps for ``--since``/``--until``.

    Accepts a full ISO time (``2025-10-18T14:45:15Z``, a date, or a naive time taken as UTC) or a time of day
    (``14:45`` / ``14:45:15``), which is compared with each record's time of day.
    """
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?", text):
        hh, rest = text.split(":", 1)
        tod = f"{int(hh):02d}:{rest}"
        if upper:
            return lambda ts: ts[11 : 11 + len(tod)] <= tod
        return lambda ts: ts[11 : 11 + len(tod)] >= tod
    try:
        moment = parse_timestamp(text if "T" in text or " " in text else text + "T00:00:00")
    except ValueError as exc:
        raise AnalysisError(f"cannot read time {value!r}: use 2025-10-18T14:45:15Z or 14:45:15") from exc
    if upper and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        moment += timedelta(days=1) - timedelta(microseconds=1)
    key = format_timestamp(moment)
    if upper:
        return lambda ts: ts <= key
    return lambda ts: ts >= key


def timeline(
    reader: Reader,
    sessions: Sequence[Session],
    *,
    types: Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
    categories: Sequence[str] = CATEGORIES,
) -> Iterator[dict[str, Any]]:
    """The seed's merged, time-sorted view: records with an ``event_type`` or ``operation``.

    Each item has the seed's ``{time, type, desc}`` plus ``category``, ``seq`` and a few context fields.
    ``types`` match exactly or as a shell pattern (``vpn_*``).
    """
    import fnmatch

    after = _bound(since, upper=False)
    before = _bound(until, upper=True)
    for category, record in reader.merged(sessions, categories):
        kind = _kind(record)
        if kind is None:
            continue
        if types and not any(kind == t or fnmatch.fnmatchcase(kind, t) for t in types):
            continue
        ts = record.get("timestamp")
        ts_text = ts if isinstance(ts, str) else ""
        if after is not None and not after(ts_text):
            continue
        if before is not None and not before(ts_text):
            continue
        yield {
            "time": ts,
            "type": kind,
            "desc": record.get("description"),
            "category": category,
            "seq": record.get("seq"),
            "severity": record.get("severity"),
            "duration_ms": _number(record.get("duration_ms")),
            "success": record.get("success"),
            "container_name": record.get("container_name"),
            "error": record.get("error"),
            "reason": record.get("reason"),
            "request_id": record.get("request_id"),
        }


CSV_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "operation",
    "duration_ms",
    "success",
    "session_id",
    "category",
    "seq",
    "elapsed_seconds",
    "event_type",
    "component",
    "request_id",
    "container_id",
    "container_name",
    "reason",
    "error",
    "severity",
)


def _csv_cell(value: Any) -> str:
    # jq's @csv: null is empty, booleans are true/false, numbers as numbers.
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e17:
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def csv_rows(
    reader: Reader, sessions: Sequence[Session], *, categories: Sequence[str]
) -> Iterator[list[str]]:
    """The seed's CSV export, ``[.timestamp, .operation, .duration_ms, .success]`` first, then more columns.

    Rows come file by file in file order (like ``cat … | jq``) when one category is asked for, and merged by
    time otherwise.
    """
    if len(categories) == 1:
        source: Iterator[tuple[str, Record]] = (
            (categories[0], record)
            for session in sessions
            for record in reader.records(session.path(categories[0]) or Path("/nonexistent"))
        )
    else:
        source = reader.merged(sessions, categories)
    for category, record in source:
        row: list[str] = []
        for column in CSV_COLUMNS:
            value = category if column == "category" else record.get(column)
            row.append(_csv_cell(value))
        yield row
