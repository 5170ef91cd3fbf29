"""The evidence ``aceorch debug diagnose`` works from, collected in one streaming pass per category.

The passes run in an order chosen so that each can classify its records with what the earlier ones found:
session (thresholds), vpn + stress (outages), circuit_breaker, errors, provisioning (kept as compact
:class:`Start` tuples: slow starts and failures only, plus counts), then health (which needs the started
engines). :mod:`aceorch.analysis.diagnose` turns the evidence into findings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aceorch.analysis.fields import Record, number, ts_seconds
from aceorch.analysis.reader import Reader
from aceorch.analysis.sessions import Session
from aceorch.analysis.signals import Outage, health_cycles, vpn_outages
from aceorch.analysis.thresholds import session_config, slow_threshold_ms, unhealthy_ratio

__all__ = [
    "EVIDENCE_CAP",
    "Finding",
    "Start",
    "Evidence",
    "collect",
    "outage_windows",
    "in_windows",
    "hms",
    "fmt_s",
]


# After a VPN outage ends, effects still count as caused by it for this long (engines restart after the
# stabilisation window, and a start that began in the outage finishes up to STARTUP_TIMEOUT_S later).
_VPN_AFTERMATH_S = 120.0
EVIDENCE_CAP = 10
_KEEP_CAP = 100_000

_START_OUTCOMES = {
    "start_acestream_success": True,
    "start_container_success": True,
    "start_acestream_failed": False,
    "start_container_failed": False,
}


@dataclass
class Finding:
    """One diagnosed problem: what, when, why (a causal chain), the evidence, and the settings to change."""

    kind: str
    severity: str
    title: str
    chain: list[str]
    evidence: list[dict[str, Any]]
    settings: list[dict[str, str]]
    first_seen: str | None = None
    #: The last output lines of the engine the finding is about, when a failed start recorded them.
    output_tail: list[str] | None = None
    #: The viewer request ids the finding is about (a finding from the proxy's side).
    request_ids: list[str] | None = None
    #: More fields of the ``--json`` item (the channels of a viewer finding).
    extra: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The finding as the ``diagnose --json`` item (``summary`` joins the chain)."""
        extra: dict[str, Any] = {} if self.output_tail is None else {"output_tail": self.output_tail}
        if self.request_ids is not None:
            extra["request_ids"] = self.request_ids
        extra.update(self.extra or {})
        return {
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "summary": "; ".join(self.chain),
            "chain": self.chain,
            "first_seen": self.first_seen,
            "evidence": self.evidence,
            "settings": self.settings,
            **extra,
        }


@dataclass(frozen=True)
class Start:
    """One finished start (success or failure), with its begin time estimated from its duration."""

    t_end: float
    t_begin: float
    timestamp: str
    operation: str
    duration_ms: float | None
    success: bool
    reason: str | None
    error: str | None
    container: str | None
    #: A failed start's engine exit code and last output lines, when the orchestrator could read them.
    exit_code: int | None = None
    output_tail: tuple[str, ...] = ()


@dataclass
class Evidence:
    """Everything the rules need, collected in one pass over the session files."""

    threshold_ms: float = 17500.0
    unhealthy_ratio: float = 0.3
    config: dict[str, Any] = field(default_factory=dict)
    outages: list[Outage] = field(default_factory=list)
    stress: list[Record] = field(default_factory=list)
    breaker_opens: list[Record] = field(default_factory=list)
    errors: list[Record] = field(default_factory=list)
    error_count: int = 0
    starts_total: int = 0
    starts_ok: int = 0
    slow: list[Start] = field(default_factory=list)
    slow_count: int = 0
    failures: list[Start] = field(default_factory=list)
    failure_count: int = 0
    # successes' end times (for "last success before the breaker opened")
    success_times: list[float] = field(default_factory=list)
    started: dict[str, Start] = field(default_factory=dict)
    probe_trouble: dict[str, Record] = field(default_factory=dict)
    health_peaks: list[tuple[float, str, int, int]] = field(default_factory=list)
    slow_perf: int = 0
    last_t: float = 0.0
    #: How long ``runtime.create`` (creating the container, pulling its image if needed) took, by container name.
    create_ms: dict[str, float] = field(default_factory=dict)


def hms(ts: str | None) -> str:
    """The ``HH:MM:SS`` of a record timestamp, or ``?``."""
    return ts[11:19] if isinstance(ts, str) and len(ts) >= 19 else "?"


def fmt_s(ms: float | None) -> str:
    """Milliseconds as seconds with two decimals (``17.50s``), or ``?``."""
    return "?" if ms is None else f"{ms / 1000.0:.2f}s"


def collect(reader: Reader, sessions: Sequence[Session]) -> Evidence:
    """Read the sessions once per category and keep what the rules need (capped, so memory stays bounded)."""
    ev = Evidence()
    ev.config = session_config(reader, sessions)
    ev.threshold_ms = slow_threshold_ms(ev.config)
    ev.unhealthy_ratio = unhealthy_ratio(ev.config)

    signals: list[Record] = []
    for category, record in reader.merged(sessions, ("vpn", "stress")):
        if category == "stress":
            if len(ev.stress) < _KEEP_CAP:
                ev.stress.append(record)
            kind = record.get("event_type")
            if kind in ("circuit_breaker_opened", "circuit_breaker_reopened"):
                ev.breaker_opens.append(record)
        kind = record.get("operation") or record.get("event_type")
        if kind in ("transition", "health_check", "vpn_disconnection", "vpn_recovered"):
            signals.append(record)
    ev.outages = vpn_outages(signals)

    if not ev.breaker_opens:
        for _c, record in reader.merged(sessions, ("circuit_breaker",)):
            state = record.get("to") or record.get("state") or record.get("new_state")
            if state == "open":
                ev.breaker_opens.append(record)

    for session in sessions:
        path = session.path("performance")
        if path is None:
            continue
        for record in reader.records(path, needle="runtime.create"):
            name, duration = record.get("container_name"), number(record.get("duration_ms"))
            if record.get("operation") == "runtime.create" and isinstance(name, str) and duration is not None:
                if len(ev.create_ms) < _KEEP_CAP:
                    ev.create_ms[name] = duration

    for _c, record in reader.merged(sessions, ("errors",)):
        ev.error_count += 1
        if len(ev.errors) < EVIDENCE_CAP:
            ev.errors.append(record)

    for session in sessions:
        path = session.path("provisioning")
        if path is None:
            continue
        for record in reader.records(path, needle=b"start_"):
            outcome = _START_OUTCOMES.get(str(record.get("operation")))
            if outcome is None:
                continue
            t_end = ts_seconds(record.get("timestamp"))
            if t_end is None:
                continue
            duration = number(record.get("duration_ms"))
            container = record.get("container_name") or record.get("container_id")
            start = Start(
                t_end=t_end,
                t_begin=t_end - (duration or 0.0) / 1000.0,
                timestamp=str(record.get("timestamp")),
                operation=str(record.get("operation")),
                duration_ms=duration,
                success=outcome,
                reason=record.get("reason") if isinstance(record.get("reason"), str) else None,
                error=record.get("error") if isinstance(record.get("error"), str) else None,
                container=str(container) if container else None,
                exit_code=_exit_code(record.get("exit_code")),
                output_tail=_lines(record.get("output_tail")),
            )
            ev.starts_total += 1
            ev.last_t = max(ev.last_t, t_end)
            if outcome:
                ev.starts_ok += 1
                if len(ev.success_times) < _KEEP_CAP:
                    ev.success_times.append(t_end)
                for key in (record.get("container_id"), record.get("container_name")):
                    if isinstance(key, str) and key and len(ev.started) < _KEEP_CAP:
                        ev.started[key] = start
                if duration is not None and duration > ev.threshold_ms:
                    ev.slow_count += 1
                    if len(ev.slow) < _KEEP_CAP:
                        ev.slow.append(start)
            else:
                ev.failure_count += 1
                if len(ev.failures) < _KEEP_CAP:
                    ev.failures.append(start)

    health: list[Record] = []
    for _c, record in reader.merged(sessions, ("health",)):
        op = record.get("operation")
        if op == "health_monitor_cycle":
            health.append(record)
            continue
        trouble = op == "probe_failed" or (
            op == "status_transition" and str(record.get("to", "")).lower() == "unhealthy"
        )
        if not trouble:
            continue
        for key in (record.get("container_id"), record.get("container_name")):
            if isinstance(key, str) and key in ev.started:
                ev.probe_trouble.setdefault(key, record)
                break
    for cycle in health_cycles(health):
        ev.last_t = max(ev.last_t, cycle.t)
        if cycle.total and cycle.unhealthy / cycle.total > ev.unhealthy_ratio:
            ev.health_peaks.append((cycle.t, cycle.timestamp, cycle.unhealthy, cycle.total))
    return ev


def outage_windows(ev: Evidence) -> list[tuple[float, float, Outage]]:
    """``(start, end + aftermath, outage)`` per VPN outage: the time its effects are blamed on it."""
    end_default = ev.last_t or 0.0
    out = []
    for outage in ev.outages:
        start = outage.start_s()
        end = outage.end_s(max(end_default, start))
        out.append((start, end + _VPN_AFTERMATH_S, outage))
    return out


def in_windows(t0: float, t1: float, windows: list[tuple[float, float, Outage]]) -> bool:
    """Whether ``[t0, t1]`` overlaps any outage window."""
    return any(t0 <= w1 and t1 >= w0 for w0, w1, _o in windows)


def _exit_code(value: Any) -> int | None:
    """A recorded exit code (a JSON integer), or None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _lines(value: Any) -> tuple[str, ...]:
    """Recorded output lines (a JSON list of strings); anything else is none."""
    if not isinstance(value, list):
        return ()
    return tuple(str(line) for line in value)
