"""``aceorch debug correlate``: join the proxy's provisioning requests with the orchestrator's starts.

The debug-mode guide's script pairs every proxy ``provision_request`` with every orchestrator ``start_acestream_begin``
that follows it within one second. aceorch records carry the caller's ``X-Request-ID`` as ``request_id``, so
when both sides have it the join is exact; only requests without a usable id fall back to the debug-mode guide's rule
(and then one-to-one: each orchestrator start is claimed by the earliest proxy request that fits).

Each joined request gets three latencies: proxy request → orchestrator begin, begin → engine ready (the
``duration_ms`` of ``start_acestream_success``, which runs from begin until the engine API answers), and
proxy request → ready; beside them the viewer's own time to first byte (the proxy's ``first_byte_ready``
record of the same request id). Every viewer request of the proxy is listed too (``viewer_requests``), with
its time to first byte or the status it was refused with, and summarised (``viewer_ttfb``: p50/p95/max).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aceorch.analysis.fields import number, percentile, text, ts_seconds
from aceorch.analysis.proxy_side import proxy_records, session_files, session_viewers, viewer_row
from aceorch.analysis.reader import Reader
from aceorch.analysis.sessions import Session

__all__ = ["correlate", "orchestrator_starts", "OrchestratorStart", "StartOutcome", "WINDOW_S"]

#: The debug-mode guide's rule: the orchestrator start must follow the proxy request within this many seconds.
WINDOW_S = 1.0

_BEGINS = ("start_acestream_begin", "start_container_begin")
_OUTCOMES = {
    "start_acestream_success": ("start_acestream_begin", True),
    "start_acestream_failed": ("start_acestream_begin", False),
    "start_container_success": ("start_container_begin", True),
    "start_container_failed": ("start_container_begin", False),
}


@dataclass
class OrchestratorStart:
    """One ``start_*_begin`` of the orchestrator, with its outcome once paired."""

    t: float
    timestamp: str
    operation: str
    request_id: str | None
    container: str | None
    outcome: StartOutcome | None = None
    claimed: bool = False


@dataclass
class StartOutcome:
    """The ``start_*_success`` / ``start_*_failed`` of one start."""

    t: float
    timestamp: str
    success: bool
    duration_ms: float | None
    container_name: str | None
    container_id: str | None
    reason: str | None
    error: str | None


def orchestrator_starts(reader: Reader, sessions: Sequence[Session]) -> list[OrchestratorStart]:
    """Every start the orchestrator began in ``sessions``, oldest first, each paired with its outcome (by request
    id, else container name, else the begin its duration points to)."""
    begins: list[OrchestratorStart] = []
    by_rid: dict[str, list[OrchestratorStart]] = {}
    by_container: dict[str, list[OrchestratorStart]] = {}
    outcomes: list[tuple[str, StartOutcome, str | None]] = []
    for session in sessions:
        path = session.path("provisioning")
        if path is None:
            continue
        for record in reader.records(path, needle=b"start_"):
            op = record.get("operation")
            t = ts_seconds(record.get("timestamp"))
            if t is None or not isinstance(op, str):
                continue
            if op in _BEGINS:
                begin = OrchestratorStart(
                    t=t,
                    timestamp=str(record["timestamp"]),
                    operation=op,
                    request_id=text(record.get("request_id")),
                    container=text(record.get("container_name")),
                )
                begins.append(begin)
                if begin.request_id:
                    by_rid.setdefault(begin.request_id, []).append(begin)
                if begin.container:
                    by_container.setdefault(begin.container, []).append(begin)
            elif op in _OUTCOMES:
                outcome = StartOutcome(
                    t=t,
                    timestamp=str(record["timestamp"]),
                    success=_OUTCOMES[op][1],
                    duration_ms=number(record.get("duration_ms")),
                    container_name=text(record.get("container_name")),
                    container_id=text(record.get("container_id")),
                    reason=text(record.get("reason")),
                    error=text(record.get("error")),
                )
                outcomes.append((_OUTCOMES[op][0], outcome, text(record.get("request_id"))))
    begins.sort(key=lambda b: b.t)
    times = [b.t for b in begins]
    for begin_op, outcome, rid in outcomes:
        target: OrchestratorStart | None = None
        if rid is not None:
            target = next((b for b in by_rid.get(rid, ()) if b.outcome is None), None)
        if target is None and outcome.container_name:
            same = by_container.get(outcome.container_name, ())
            target = next((b for b in same if b.outcome is None), None)
        if target is None:
            # begin time = end time - duration (the duration runs from begin); take the closest open begin.
            estimate = outcome.t - (outcome.duration_ms or 0.0) / 1000.0
            lo = bisect.bisect_left(times, estimate - WINDOW_S)
            hi = bisect.bisect_right(times, outcome.t)
            candidates = [
                b
                for b in begins[lo:hi]
                if b.outcome is None and b.operation == begin_op and b.request_id == rid
            ]
            if candidates:
                target = min(candidates, key=lambda b: abs(b.t - estimate))
        if target is not None:
            target.outcome = outcome
    return begins


#: acexy's provisioning outcomes: it writes no ``provision_request`` and sends no request id.
ACEXY_OPERATIONS = ("provision_success", "provision_attempt_failed")


def _load_proxy(reader: Reader, proxy_dir: Path, only: list[Path] | None) -> tuple[list[dict[str, Any]], str]:
    """The proxy's provision requests, and the shape they came in (``aceorch`` or ``acexy``).

    acexy's files have only outcomes; each becomes a request at its timestamp minus its ``duration_ms``
    (when given), without a request id, so that it is paired by the 1 s window.
    """
    requests: list[dict[str, Any]] = []
    acexy: list[dict[str, Any]] = []
    for record in proxy_records(reader, proxy_dir, "provisioning", ("provision_request", *ACEXY_OPERATIONS),
                                only=only):
        op = record.get("operation")
        t = ts_seconds(record.get("timestamp"))
        if t is None:
            continue
        if op == "provision_request":
            requests.append({"t": t, "record": record})
        else:
            took = number(record.get("duration_ms")) or 0.0
            acexy.append({"t": t - took / 1000.0, "record": {**record, "request_id": None}})
    shape = "aceorch"
    if not requests and acexy:
        requests, shape = acexy, "acexy"
    requests.sort(key=lambda r: r["t"])
    return requests, shape


def _stats(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    return {
        "count": float(len(ordered)),
        "avg_ms": sum(ordered) / len(ordered) if ordered else None,
        "p50_ms": percentile(ordered, 50),
        "p95_ms": percentile(ordered, 95),
        "max_ms": ordered[-1] if ordered else None,
    }


def correlate(reader: Reader, sessions: Sequence[Session], proxy_dir: Path) -> dict[str, Any]:
    """Per proxy request: the matching orchestrator start, how it was matched, and its latencies."""
    begins = orchestrator_starts(reader, sessions)
    proxy, shape = _load_proxy(reader, proxy_dir, session_files(sessions, proxy_dir))
    viewers, _embedded = session_viewers(reader, sessions, proxy_dir)
    ttfb = {v.request_id: v for v in viewers if v.request_id is not None}
    by_rid: dict[str, list[OrchestratorStart]] = {}
    for begin in begins:
        if begin.request_id:
            by_rid.setdefault(begin.request_id, []).append(begin)
    proxy_rids = {
        rid for item in proxy if (rid := text(item["record"].get("request_id"))) is not None and rid in by_rid
    }
    times = [b.t for b in begins]
    span = (begins[0].t - 60.0, begins[-1].t + 60.0) if begins else None
    rows: list[dict[str, Any]] = []
    outside = 0
    for item in proxy:
        record = item["record"]
        t = item["t"]
        rid = text(record.get("request_id"))
        match: OrchestratorStart | None = None
        method = "unmatched"
        if rid is not None and rid in by_rid:
            match = next((b for b in by_rid[rid] if not b.claimed), None)
            method = "request_id" if match else "unmatched"
        else:
            # 1 ms of slack before: acexy's request time is computed (outcome time - duration) in floats.
            lo = bisect.bisect_left(times, t - 0.001)
            hi = bisect.bisect_right(times, t + WINDOW_S)
            for begin in begins[lo:hi]:
                # A begin that carries a request id the proxy also logged belongs to that request.
                if not begin.claimed and (begin.request_id is None or begin.request_id not in proxy_rids):
                    match = begin
                    method = "time_window"
                    break
        if match is None and span is not None and not span[0] <= t <= span[1]:
            outside += 1
            continue
        row: dict[str, Any] = {
            "proxy_time": record.get("timestamp"),
            "request_id": rid,
            "method": method,
            "orchestrator_begin": None,
            "proxy_to_orchestrator_ms": None,
            "ready_time": None,
            "begin_to_ready_ms": None,
            "proxy_to_ready_ms": None,
            "outcome": None,
            "container_name": None,
            "reason": None,
            "viewer_ttfb_ms": None,
            "viewer_status": None,
        }
        viewer = ttfb.get(rid) if rid is not None else None
        if viewer is not None:
            row["viewer_ttfb_ms"] = None if viewer.ttfb_ms is None else round(viewer.ttfb_ms, 3)
            row["viewer_status"] = viewer.status if viewer.status is not None else (
                200 if viewer.ttfb_ms is not None else None)
        if match is not None:
            match.claimed = True
            row["orchestrator_begin"] = match.timestamp
            row["proxy_to_orchestrator_ms"] = round((match.t - t) * 1000.0, 3)
            outcome = match.outcome
            if outcome is None:
                row["outcome"] = "pending"
            else:
                row["outcome"] = "ready" if outcome.success else "failed"
                row["container_name"] = outcome.container_name or outcome.container_id
                row["reason"] = outcome.reason
                if outcome.success:
                    row["ready_time"] = outcome.timestamp
                    begin_to_ready = (
                        outcome.duration_ms
                        if outcome.duration_ms is not None
                        else round((outcome.t - match.t) * 1000.0, 3)
                    )
                    row["begin_to_ready_ms"] = begin_to_ready
                    row["proxy_to_ready_ms"] = round(row["proxy_to_orchestrator_ms"] + begin_to_ready, 3)
        rows.append(row)
    def column(name: str) -> list[float]:
        return [r[name] for r in rows if r[name] is not None]

    served = [v.ttfb_ms for v in viewers if v.ttfb_ms is not None]
    methods: dict[str, int] = {"request_id": 0, "time_window": 0, "unmatched": 0}
    for row in rows:
        methods[row["method"]] += 1
    return {
        "sessions": [s.session_id for s in sessions],
        "proxy_dir": str(proxy_dir),
        "proxy_shape": shape,
        "pairing": "time_window" if shape == "acexy" else "request_id, else time_window",
        "proxy_requests": len(rows),
        "proxy_requests_outside_sessions": outside,
        "orchestrator_starts": len(begins),
        "orchestrator_starts_without_proxy_request": sum(1 for b in begins if not b.claimed),
        "matched": methods,
        "latency": {
            "proxy_to_orchestrator": _stats(column("proxy_to_orchestrator_ms")),
            "begin_to_ready": _stats(column("begin_to_ready_ms")),
            "proxy_to_ready": _stats(column("proxy_to_ready_ms")),
            "viewer_ttfb": _stats(served),
            "viewer_ttfb_provisioned": _stats(column("viewer_ttfb_ms")),
        },
        "viewers": {
            "total": len(viewers),
            "served": len(served),
            "refused": sum(1 for v in viewers if v.refused),
            "provisioned": sum(1 for v in viewers if v.provisioned),
        },
        "requests": rows,
        "viewer_requests": [viewer_row(v) for v in viewers],
    }
