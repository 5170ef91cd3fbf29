"""VPN outages and health sweeps, derived from ``vpn``, ``stress`` and ``health`` records (small, parsed fully).

An outage is opened by any "down" signal and closed by the first "up" one; a health sweep is one
``health_monitor_cycle`` summary. Used by ``report``, ``diagnose`` and the HTML report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aceorch.analysis.fields import Record, format_timestamp, integer, number, ts_seconds

__all__ = ["Outage", "HealthCycle", "vpn_signal", "vpn_outages", "health_cycles", "health_buckets"]

_VPN_DOWN = frozenset(
    {"unhealthy", "down", "disconnected", "stopped", "exited", "error", "failed", "unreachable"}
)
_VPN_UP = frozenset({"healthy", "connected", "up"})


@dataclass
class Outage:
    """One VPN outage: from the first down signal to the first up signal after it (``end`` None: still down)."""

    start: str
    end: str | None = None
    duration_ms: float | None = None
    signal: str | None = None
    outage_ms: float | None = None  # what vpn_recovered reported, if anything
    engines_restarted: Any = None

    def start_s(self) -> float:
        """The start as POSIX seconds."""
        return ts_seconds(self.start) or 0.0

    def end_s(self, default: float) -> float:
        """The end as POSIX seconds, or ``default`` while the VPN is still down."""
        value = ts_seconds(self.end) if self.end else None
        return value if value is not None else default

    def as_dict(self) -> dict[str, Any]:
        """The outage as the ``report --json`` item."""
        return {
            "start": self.start,
            "end": self.end,
            "duration_ms": self.duration_ms,
            "signal": self.signal,
            "outage_ms": self.outage_ms,
            "engines_restarted": self.engines_restarted,
        }


def vpn_signal(record: Record) -> bool | None:
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
        up = vpn_signal(record)
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
            target.outage_ms = number(record.get("outage_ms"))
            target.engines_restarted = record.get("engines_restarted")
    return outages


@dataclass(frozen=True)
class HealthCycle:
    """One health sweep's summary: engine counts by state, at one time."""

    timestamp: str
    t: float
    healthy: int
    unhealthy: int
    unknown: int
    total: int


def health_cycles(records: Iterable[Record]) -> list[HealthCycle]:
    """The ``health_monitor_cycle`` summaries (one per sweep) of a stream of ``health`` records."""
    out: list[HealthCycle] = []
    for record in records:
        if record.get("operation") != "health_monitor_cycle":
            continue
        t = ts_seconds(record.get("timestamp"))
        if t is None:
            continue
        healthy, unhealthy, unknown = (integer(record.get(k)) for k in ("healthy", "unhealthy", "unknown"))
        total = integer(record.get("total")) or healthy + unhealthy + unknown
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
