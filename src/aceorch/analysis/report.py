"""``aceorch debug report``: per-operation latency, stress counts, VPN outages and health over time.

The categories whose records carry ``operation`` and ``duration_ms`` go through the fast paths of
:mod:`aceorch.analysis.fastpath`, in worker processes for files over :data:`PARALLEL_MIN_BYTES`; the small
ones (health, vpn, stress) are parsed fully.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import math
import multiprocessing
import operator
import os
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aceorch.analysis.fastpath import ChunkOp, block_stats, block_stats_at
from aceorch.analysis.fields import Record, number, percentile
from aceorch.analysis.reader import Reader
from aceorch.analysis.sessions import Session
from aceorch.analysis.signals import HealthCycle, health_buckets, health_cycles, vpn_outages, vpn_signal

__all__ = ["PARALLEL_MIN_BYTES", "OpStats", "build_report"]

# Files at least this large are aggregated by worker processes in ``report``.
PARALLEL_MIN_BYTES = 64 * 1024 * 1024


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
        """Fold in one record's duration and outcome."""
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

    def merge(self, part: ChunkOp) -> None:
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
        """The ``report --json`` item: counts, latency percentiles, success rate and the successful subset."""
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


# Categories whose records carry ``operation`` + ``duration_ms`` and go through the fast path.
_OP_CATEGORIES = ("provisioning", "performance", "autoscaler", "circuit_breaker", "streams", "errors")


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
) -> Iterator[tuple[dict[str, ChunkOp], int, int]]:
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
    Result = tuple[dict[str, ChunkOp], int, int]
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
