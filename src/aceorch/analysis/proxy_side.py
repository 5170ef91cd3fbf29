"""The proxy's side of a debug log: its records and its viewers, from a standalone proxy's folder or from the
orchestrator's own session (the embedded proxy).

A standalone proxy (``aceorch proxy``) writes its own sessions, one file per category (``requests``,
``engine_selection``, ``provisioning``, ``streams``, ``clients``, ``stress``). The embedded proxy writes the same
records into the orchestrator's session, in the same categories, marked ``component: "proxy"``; logs of earlier
builds have them in ``streams`` with the operation prefixed ``proxy_`` and the category in ``proxy_category``.
:func:`proxy_records` reads all three shapes as the standalone one. The proxy's operations named here
(``provision_request``, ``first_byte_ready``, ``viewer_request``, …) are its own: the orchestrator writes none of
them, so a folder holding both sides is read by operation.

:func:`viewer_requests` turns them into one :class:`Viewer` per viewer request: when it started, what it asked
for, its time to first byte, or the status and error code it was refused with.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aceorch.analysis.fields import Record, format_timestamp, number, text, ts_seconds
from aceorch.analysis.reader import Reader
from aceorch.analysis.sessions import Session, parse_session_time
from aceorch.analysis.views import first_last_timestamps

__all__ = ["LEGACY_PREFIX", "Viewer", "proxy_records", "viewer_requests", "viewer_row", "session_viewers",
           "session_files"]

#: Viewers of the proxy's folder this far outside the orchestrator's sessions are not theirs.
_SPAN_SLACK_S = 60.0

#: Earlier builds' embedded records: ``proxy_<operation>`` in ``streams`` with ``proxy_category``.
LEGACY_PREFIX = "proxy_"


def _files(folder: Path, category: str, only: Iterable[Path] | None) -> list[Path]:
    if only is not None:
        return sorted(p for p in only if p.name.endswith(f"_{category}.jsonl"))
    return sorted(folder.glob(f"*_{category}.jsonl"))


def proxy_records(reader: Reader, folder: Path, category: str, operations: Iterable[str], *,
                  only: Iterable[Path] | None = None) -> Iterator[Record]:
    """The proxy's records of ``category`` whose operation is one of ``operations``, in the standalone shape.

    ``folder`` is a standalone proxy's folder or the orchestrator's (embedded); ``only`` limits the files read to
    these (the chosen sessions' files). Records of a legacy embedded log come back with their operation unprefixed.
    """
    ops = tuple(operations)
    paths = list(only) if only is not None else None
    for path in _files(folder, category, paths):
        for record in reader.records(path, needle=_needle(ops)):
            if record.get("operation") in ops:
                yield record
    legacy = {LEGACY_PREFIX + op: op for op in ops}
    for path in _files(folder, "streams", paths):
        for record in reader.records(path, needle=LEGACY_PREFIX):
            op = record.get("operation")
            if op in legacy and record.get("component") == "proxy" and record.get("proxy_category") in (
                    category, None):
                yield {**record, "operation": legacy[str(op)]}


def _needle(ops: tuple[str, ...]) -> str | None:
    """A substring every wanted line has (the operations' common prefix), so other lines are not parsed."""
    if not ops:
        return None
    first = ops[0]
    n = len(first)
    for op in ops[1:]:
        n = min(n, len(op))
        while n and op[:n] != first[:n]:
            n -= 1
    return first[:n] if n >= 4 else None


@dataclass
class Viewer:
    """One viewer request as the proxy saw it."""

    request_id: str | None
    #: When the request arrived (POSIX seconds) and the same as a record timestamp.
    t_start: float
    started: str
    stream_key: str | None = None
    #: The viewer's time to first byte, when it got one.
    ttfb_ms: float | None = None
    first_byte_at: str | None = None
    status: int | None = None
    error_code: str | None = None
    #: The whole request (until the viewer left or was answered).
    duration_ms: float | None = None
    path: str | None = None
    #: Whether this request asked the orchestrator for an engine (``provision_request``).
    provisioned: bool = False
    provision_ms: float | None = None
    provision_error: str | None = None

    @property
    def refused(self) -> bool:
        """Answered with an error status (no stream)."""
        return self.status is not None and self.status >= 400


def _start_of(record: Record) -> tuple[float, str] | None:
    t = ts_seconds(record.get("timestamp"))
    if t is None:
        return None
    took = number(record.get("duration_ms")) or 0.0
    begin = t - took / 1000.0
    return begin, format_timestamp(datetime.fromtimestamp(begin, UTC))


def viewer_requests(reader: Reader, folder: Path, *, only: Iterable[Path] | None = None) -> list[Viewer]:
    """Every viewer request of ``getstream`` / HLS playlists in ``folder``, oldest first.

    Joined by request id: ``first_byte_ready`` (the time to first byte), ``viewer_request`` (status, error code,
    duration) and the proxy's ``provision_request``/``provision_response``. A request without an id stands alone.
    """
    paths = list(only) if only is not None else None
    by_rid: dict[str, Viewer] = {}
    loose: list[Viewer] = []

    def viewer_for(record: Record) -> Viewer | None:
        rid = text(record.get("request_id"))
        if rid is not None and rid in by_rid:
            return by_rid[rid]
        start = _start_of(record)
        if start is None:
            return None
        v = Viewer(request_id=rid, t_start=start[0], started=start[1], stream_key=text(record.get("stream_key")))
        if rid is None:
            loose.append(v)
        else:
            by_rid[rid] = v
        return v

    for record in proxy_records(reader, folder, "requests", ("first_byte_ready", "viewer_request"), only=paths):
        op = record.get("operation")
        if op == "viewer_request" and not _is_viewer_path(record.get("path")):
            continue
        v = viewer_for(record)
        if v is None:
            continue
        start = _start_of(record)
        if start is not None and start[0] < v.t_start:
            v.t_start, v.started = start
        v.stream_key = v.stream_key or text(record.get("stream_key"))
        if op == "first_byte_ready":
            v.ttfb_ms = number(record.get("duration_ms"))
            v.first_byte_at = text(record.get("timestamp"))
        else:
            status = record.get("status")
            v.status = status if isinstance(status, int) and not isinstance(status, bool) else None
            v.error_code = text(record.get("error_code")) or v.error_code
            v.duration_ms = number(record.get("duration_ms"))
            v.path = text(record.get("path"))
    for record in proxy_records(reader, folder, "provisioning", ("provision_request", "provision_response"),
                                only=paths):
        rid = text(record.get("request_id"))
        v = by_rid.get(rid) if rid is not None else None
        if v is None:
            continue
        v.provisioned = True
        if record.get("operation") == "provision_response":
            v.provision_ms = number(record.get("duration_ms"))
            if record.get("success") is False:
                v.provision_error = text(record.get("error_code")) or "failed"
    out = [*by_rid.values(), *loose]
    out.sort(key=lambda v: v.t_start)
    return out


def _is_viewer_path(path: Any) -> bool:
    """A request for a stream (``/ace/getstream``, an HLS playlist), not a status or segment call."""
    return isinstance(path, str) and path in ("/ace/getstream", "/ace/manifest.m3u8")


def viewer_row(v: Viewer) -> dict[str, Any]:
    """A viewer request as a ``--json`` row."""
    return {
        "request_id": v.request_id,
        "started": v.started,
        "stream_key": v.stream_key,
        "ttfb_ms": None if v.ttfb_ms is None else round(v.ttfb_ms, 3),
        "first_byte_at": v.first_byte_at,
        "status": v.status,
        "error_code": v.error_code,
        "provisioned": v.provisioned,
        "provision_ms": None if v.provision_ms is None else round(v.provision_ms, 3),
    }


def session_viewers(reader: Reader, sessions: Sequence[Session], proxy_dir: Path) -> tuple[list[Viewer], bool]:
    """The proxy's viewer requests of ``sessions``: their own files when ``proxy_dir`` is their folder (the
    embedded proxy), else those of the proxy's folder that came within their time; (viewers, embedded)."""
    files = session_files(sessions, proxy_dir)
    if files is not None:
        return viewer_requests(reader, proxy_dir, only=files), True
    starts: list[float] = []
    ends: list[float] = []
    for s in sessions:
        starts.append(parse_session_time(s.session_id).timestamp())
        for path in s.files.values():
            last = first_last_timestamps(path)[1]
            t = ts_seconds(last)
            if t is not None:
                ends.append(t)
    lo = min(starts) - _SPAN_SLACK_S
    hi = max(ends or starts) + _SPAN_SLACK_S
    return [v for v in viewer_requests(reader, proxy_dir) if lo <= v.t_start <= hi], False


def session_files(sessions: Sequence[Session], proxy_dir: Path) -> list[Path] | None:
    """The sessions' files when ``proxy_dir`` is their folder (the embedded proxy's records are in them), else None."""
    folders = {p.parent.resolve() for s in sessions for p in s.files.values()}
    if proxy_dir.resolve() in folders:
        return [p for s in sessions for p in s.files.values()]
    return None
