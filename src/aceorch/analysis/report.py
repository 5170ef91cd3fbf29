"""``aceorch debug report``: per-operation latency, stress counts, VPN outages and health over time.

The categories whose records carry ``operation`` and ``duration_ms`` are aggregated by one SQL query per
category in DuckDB (counts, sums, percentiles, the successful subset), so a large provisioning log is never
parsed in Python; the small ones (health, vpn, stress) are read as records.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aceorch.analysis.fields import Record, number, percentile
from aceorch.analysis.reader import Reader, json_source, sql_literal
from aceorch.analysis.sessions import Session
from aceorch.analysis.signals import HealthCycle, health_buckets, health_cycles, vpn_outages, vpn_signal

__all__ = ["OpStats", "build_report", "op_stats", "NUMBER_SQL"]

#: A JSON value as a DOUBLE when it is a JSON number (not a string, not a boolean), else NULL.
NUMBER_SQL = "CASE WHEN json_type({0}) IN ('DOUBLE', 'BIGINT', 'UBIGINT', 'HUGEINT') THEN {0}::DOUBLE END"
_TEXT_SQL = "CASE WHEN json_type({0}) = 'VARCHAR' THEN {0}->>'$' END"
_BOOL_SQL = "CASE WHEN json_type({0}) = 'BOOLEAN' THEN {0}::BOOLEAN END"


@dataclass
class OpStats:
    """The statistics of one operation in one category, as the SQL aggregate gives them."""

    category: str
    operation: str
    count: int = 0
    with_duration: int = 0
    total: float = 0.0
    min_ms: float | None = None
    max_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    succeeded: int = 0
    failed: int = 0
    ok_count: int = 0
    ok_total: float = 0.0
    ok_min: float = math.inf
    ok_max: float = -math.inf
    #: Durations of records folded in one by one (empty for entries the SQL aggregate built).
    values: list[float] = field(default_factory=list, repr=False)

    def add(self, duration: float | None, success: bool | None) -> None:
        """Fold in one record's duration and outcome (for the small categories read as records)."""
        self.count += 1
        if success is True:
            self.succeeded += 1
        elif success is False:
            self.failed += 1
        if duration is None:
            return
        self.values.append(duration)
        self.with_duration += 1
        self.total += duration
        if success:
            self.ok_count += 1
            self.ok_total += duration
            self.ok_min = min(self.ok_min, duration)
            self.ok_max = max(self.ok_max, duration)

    def as_dict(self) -> dict[str, Any]:
        """The ``report --json`` item: counts, latency percentiles, success rate and the successful subset."""
        if self.values:
            ordered = sorted(self.values)
            self.min_ms, self.max_ms = (ordered[0], ordered[-1]) if ordered else (None, None)
            self.p50_ms, self.p95_ms = percentile(ordered, 50), percentile(ordered, 95)
        n = self.with_duration
        decided = self.succeeded + self.failed
        return {
            "category": self.category,
            "operation": self.operation,
            "count": self.count,
            "with_duration": n,
            "avg_ms": self.total / n if n else None,
            "min_ms": self.min_ms if n else None,
            "max_ms": self.max_ms if n else None,
            "p50_ms": self.p50_ms if n else None,
            "p95_ms": self.p95_ms if n else None,
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


# Categories whose records carry ``operation`` + ``duration_ms`` and are aggregated in SQL.
_OP_CATEGORIES = ("provisioning", "performance", "autoscaler", "circuit_breaker", "streams", "errors")
_OP_COLUMNS = {name: "JSON" for name in ("operation", "duration_ms", "success", "seq", "component")}
#: The embedded proxy's records share ``provisioning``, ``streams`` and ``stress`` with the orchestrator's; its
#: operations are reported apart, as ``<operation> (proxy)``.
_PROXY_OP = " (proxy)"


def op_stats(reader: Reader, category: str, paths: Sequence[Path]) -> list[OpStats]:
    """Per-operation statistics of ``paths`` (one category) in one SQL pass, in order of first appearance.

    Fields are taken only when they have their schema's JSON type (a duration given as a string is no
    duration). A row DuckDB could not read (not JSON, or the unterminated last line of a file being
    written) has every column NULL; those are counted in ``reader.bad_lines``.
    """
    present = [p for p in paths if p.is_file() and p.stat().st_size > 0]
    if not present:
        return []
    order = {str(p): i for i, p in enumerate(present)}
    # Which file an operation first appears in matters only with several files; naming them costs time.
    if len(present) > 1:
        source, files_sql = json_source(present, _OP_COLUMNS, filename="true"), "array_agg(DISTINCT filename)"
    else:
        source, files_sql = json_source(present, _OP_COLUMNS), f"[{sql_literal(str(present[0]))}]"
    sql = f"""
        WITH raw AS (SELECT * FROM {source}),
        r AS (
            SELECT {"filename" if len(present) > 1 else "NULL AS filename"},
                CASE WHEN {_TEXT_SQL.format("component")} = 'proxy'
                     THEN {_TEXT_SQL.format("operation")} || {sql_literal(_PROXY_OP)}
                     ELSE {_TEXT_SQL.format("operation")} END AS op,
                {NUMBER_SQL.format("duration_ms")} AS d,
                {_BOOL_SQL.format("success")} AS s,
                CASE WHEN json_type(seq) IN ('BIGINT', 'UBIGINT') THEN seq::BIGINT END AS q,
                (operation IS NULL AND duration_ms IS NULL AND success IS NULL AND seq IS NULL) AS bad
            FROM raw)
        SELECT op, {files_sql} AS files, min(q), count(*), count(d), sum(d), min(d), max(d),
            quantile_cont(d, [0.5, 0.95]),
            count(*) FILTER (WHERE s), count(*) FILTER (WHERE NOT s),
            count(d) FILTER (WHERE s), sum(d) FILTER (WHERE s), min(d) FILTER (WHERE s), max(d) FILTER (WHERE s),
            count(*) FILTER (WHERE bad)
        FROM r GROUP BY op
    """
    # An aggregate needs no row order; not keeping it lowers DuckDB's peak memory on large files.
    reader.query("SET preserve_insertion_order = false")
    try:
        rows = reader.query(sql)
    finally:
        reader.query("RESET preserve_insertion_order")
    reader.advance(sum(p.stat().st_size for p in present))
    out: list[tuple[tuple[int, int], OpStats]] = []
    for row in rows:
        (op, files, first_seq, count, n, total, lo, hi, quantiles, ok, bad_outcome, ok_n, ok_total, ok_lo, ok_hi,
         bad) = row
        if op is None:
            reader.bad_lines += int(bad)
            continue
        entry = OpStats(
            category, op, count=count, with_duration=n, total=total or 0.0, min_ms=lo, max_ms=hi,
            p50_ms=quantiles[0] if quantiles else None, p95_ms=quantiles[1] if quantiles else None,
            succeeded=ok, failed=bad_outcome, ok_count=ok_n, ok_total=ok_total or 0.0,
            ok_min=ok_lo if ok_lo is not None else math.inf, ok_max=ok_hi if ok_hi is not None else -math.inf,
        )
        first_file = min(order.get(f, len(order)) for f in files)
        out.append(((first_file, first_seq if first_seq is not None else 0), entry))
    reader.count_incomplete(present)
    out.sort(key=lambda item: item[0])
    return [entry for _key, entry in out]


_START_SUCCESS = "('start_acestream_success', 'start_container_success')"


def engine_api_calls(reader: Reader, sessions: Sequence[Session]) -> dict[str, Any] | None:
    """``http.server`` calls (the engine's own API) split into readiness polling and the other calls.

    A call is readiness polling when it went to the port of an engine that was still starting: between the
    begin and the end of a successful start published on that port. Failures there are an engine not
    answering yet, which is expected; failures among the other calls are real. None without such calls.
    """
    perf = [p for p in (s.path("performance") for s in sessions) if p is not None and p.is_file()]
    prov = [p for p in (s.path("provisioning") for s in sessions) if p is not None and p.is_file()]
    perf = [p for p in perf if p.stat().st_size > 0]
    prov = [p for p in prov if p.stat().st_size > 0]
    if not perf:
        return None
    calls = json_source(perf, {"operation": "JSON", "timestamp": "JSON", "target": "JSON", "success": "JSON"})
    if prov:
        starts = json_source(prov, {"operation": "JSON", "timestamp": "JSON", "host_http_port": "JSON",
                                    "duration_ms": "JSON"})
        windows = f"""
            SELECT {NUMBER_SQL.format("host_http_port")}::BIGINT AS port,
                   TRY_CAST(rtrim({_TEXT_SQL.format("timestamp")}, 'Z') AS TIMESTAMP) AS t_end,
                   {NUMBER_SQL.format("duration_ms")} AS d
            FROM {starts} WHERE {_TEXT_SQL.format("operation")} IN {_START_SUCCESS}"""
    else:
        windows = "SELECT NULL::BIGINT AS port, NULL::TIMESTAMP AS t_end, NULL::DOUBLE AS d WHERE false"
    sql = f"""
        WITH s AS ({windows}),
        w AS (SELECT port, t_end - to_microseconds(CAST(d * 1000 AS BIGINT)) AS t_begin, t_end FROM s
              WHERE port IS NOT NULL AND d IS NOT NULL AND t_end IS NOT NULL),
        h AS (SELECT TRY_CAST(split_part({_TEXT_SQL.format("target")}, ':', -1) AS BIGINT) AS port,
                     TRY_CAST(rtrim({_TEXT_SQL.format("timestamp")}, 'Z') AS TIMESTAMP) AS t,
                     {_BOOL_SQL.format("success")} AS ok
              FROM {calls} WHERE {_TEXT_SQL.format("operation")} = 'http.server')
        SELECT EXISTS (SELECT 1 FROM w WHERE w.port = h.port AND h.t BETWEEN w.t_begin AND w.t_end) AS polling,
               count(*), count(*) FILTER (WHERE ok IS NOT TRUE)
        FROM h GROUP BY 1
    """
    rows = {bool(polling): (int(n), int(failed)) for polling, n, failed in reader.query(sql)}
    if not rows:
        return None
    poll_n, poll_failed = rows.get(True, (0, 0))
    other_n, other_failed = rows.get(False, (0, 0))
    return {
        "readiness_polls": poll_n,
        "readiness_polls_unanswered": poll_failed,
        "other_calls": other_n,
        "other_calls_failed": other_failed,
    }


def build_report(reader: Reader, sessions: Sequence[Session]) -> dict[str, Any]:
    """The "Performance Report" of the debug-mode guide and more: per operation, stress, VPN outages, health."""
    stats: dict[tuple[str, str], OpStats] = {}

    def feed(category: str, operation: str | None, duration: float | None, success: bool | None) -> None:
        if operation is None:
            return
        key = (category, operation)
        entry = stats.get(key)
        if entry is None:
            entry = stats[key] = OpStats(category, operation)
        entry.add(duration, success)

    for category in _OP_CATEGORIES:
        paths = [p for p in (s.path(category) for s in sessions) if p is not None]
        for entry in op_stats(reader, category, paths):
            stats[(category, entry.operation)] = entry

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
                number(record.get("duration_ms")),
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
                number(record.get("duration_ms")),
                success if isinstance(success, bool) else None,
            )
        if vpn_signal(record) is not None:
            vpn_records.append(record)
    outages = vpn_outages(vpn_records)

    operations = [entry.as_dict() for entry in stats.values()]
    starts = stats.get(("provisioning", "start_acestream_success"))
    cycles_total = sum(c.total for c in health)
    return {
        "sessions": [s.session_id for s in sessions],
        "operations": operations,
        "average_provisioning_ms": (starts.total / starts.with_duration) if starts and starts.with_duration else None,
        "stress": dict(sorted(stress_counts.items())),
        "vpn_outages": [o.as_dict() for o in outages],
        "engine_api": engine_api_calls(reader, sessions),
        "health": {
            "cycles": len(health),
            "healthy_ratio": (sum(c.healthy for c in health) / cycles_total) if cycles_total else None,
            "min_healthy_ratio": min((c.healthy / c.total for c in health if c.total), default=None),
            "over_time": health_buckets(health),
        },
        "bad_lines": reader.bad_lines,
        "incomplete_lines": reader.incomplete_lines,
    }
