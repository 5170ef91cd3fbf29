"""``aceorch debug sessions``, ``slow``, ``stress`` and ``timeline``: views of records, streamed in time order.

Views whose output can be as long as the log (``slow``, ``timeline``) are generators.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from aceorch.analysis.fields import Record, format_timestamp, integer, number, parse_timestamp, ts_seconds
from aceorch.analysis.reader import Progress, Reader
from aceorch.analysis.sessions import AnalysisError, Session, parse_session_time
from aceorch.debuglog.records import CATEGORIES

__all__ = ["session_summaries", "slow_records", "stress_summary", "timeline", "first_last_timestamps"]


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


def first_last_timestamps(path: Path) -> tuple[str | None, str | None]:
    """The timestamps of a file's first and last records (its last 64 KiB are read for the last)."""
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
                first, last = first_last_timestamps(path)
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


def _kind(record: Record) -> str | None:
    kind = record.get("event_type") or record.get("operation")
    return kind if isinstance(kind, str) else None


def slow_records(reader: Reader, sessions: Sequence[Session], *, over_ms: float) -> Iterator[dict[str, Any]]:
    """``select(.duration_ms > MS)`` across every category, in time order."""
    for category, record in reader.merged(sessions, CATEGORIES, needle=b'"duration_ms"'):
        duration = number(record.get("duration_ms"))
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
            group["resolved_duration_ms"] += number(record.get("duration_ms")) or 0.0
            group["samples"] += integer(record.get("samples"))
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
                "duration_ms": number(record.get("duration_ms")),
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
    """The debug-mode guide's merged, time-sorted view: records with an ``event_type`` or ``operation``.

    Each item has the debug-mode guide's ``{time, type, desc}`` plus ``category``, ``seq`` and a few context fields.
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
            "duration_ms": number(record.get("duration_ms")),
            "success": record.get("success"),
            "container_name": record.get("container_name"),
            "error": record.get("error"),
            "reason": record.get("reason"),
            "request_id": record.get("request_id"),
        }
