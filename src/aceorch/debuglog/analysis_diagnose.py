"""``aceorch debug diagnose``: the seed's "Example Output Analysis" and "Common Patterns", automatically.

One streaming pass per category, in an order chosen so that each pass can classify its records with
what the earlier ones found: session (thresholds), vpn + stress (outages), circuit_breaker, errors,
provisioning (kept as compact tuples: slow starts and failures only, plus counts), then health (which needs
the started engines). Then a handful of rules each turn that evidence into a :class:`Finding` with a causal
chain and the settings to change. Rules, in the seed's terms:

* VPN drop → slow provisioning → unhealthy engines (Finding 1–3, Pattern 1).
* Circuit breaker opened, with the error of the failure that started its streak (Pattern 2).
* Capacity exhaustion (``max_capacity`` / ``port_pool_exhausted``).
* Everything slow and no error events: resource contention (Pattern 3).
* Engines that started fine and then stopped answering their health probes.
* Slow image pull / engine startup, and start timeouts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aceorch.debuglog.analysis import (
    Outage,
    Reader,
    Record,
    Session,
    config_value,
    health_cycles,
    session_config,
    slow_threshold_ms,
    ts_seconds,
    unhealthy_ratio,
    vpn_outages,
)

__all__ = ["Finding", "diagnose", "NO_PROBLEMS"]

NO_PROBLEMS = "No problems found"

# After a VPN outage ends, effects still count as caused by it for this long (engines restart after the
# stabilisation window, and a start that began in the outage finishes up to STARTUP_TIMEOUT_S later).
_VPN_AFTERMATH_S = 120.0
_EVIDENCE_CAP = 10
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

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "summary": "; ".join(self.chain),
            "chain": self.chain,
            "first_seen": self.first_seen,
            "evidence": self.evidence,
            "settings": self.settings,
        }


@dataclass(frozen=True)
class _Start:
    t_end: float
    t_begin: float
    timestamp: str
    operation: str
    duration_ms: float | None
    success: bool
    reason: str | None
    error: str | None
    container: str | None


@dataclass
class _Evidence:
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
    slow: list[_Start] = field(default_factory=list)
    slow_count: int = 0
    failures: list[_Start] = field(default_factory=list)
    failure_count: int = 0
    # successes' end times (for "last success before the breaker opened")
    success_times: list[float] = field(default_factory=list)
    started: dict[str, _Start] = field(default_factory=dict)
    probe_trouble: dict[str, Record] = field(default_factory=dict)
    health_peaks: list[tuple[float, str, int, int]] = field(default_factory=list)
    slow_perf: int = 0
    last_t: float = 0.0


def _hms(ts: str | None) -> str:
    return ts[11:19] if isinstance(ts, str) and len(ts) >= 19 else "?"


def _fmt_s(ms: float | None) -> str:
    return "?" if ms is None else f"{ms / 1000.0:.2f}s"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _collect(reader: Reader, sessions: Sequence[Session]) -> _Evidence:
    ev = _Evidence()
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

    for _c, record in reader.merged(sessions, ("errors",)):
        ev.error_count += 1
        if len(ev.errors) < _EVIDENCE_CAP:
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
            duration = _num(record.get("duration_ms"))
            container = record.get("container_name") or record.get("container_id")
            start = _Start(
                t_end=t_end,
                t_begin=t_end - (duration or 0.0) / 1000.0,
                timestamp=str(record.get("timestamp")),
                operation=str(record.get("operation")),
                duration_ms=duration,
                success=outcome,
                reason=record.get("reason") if isinstance(record.get("reason"), str) else None,
                error=record.get("error") if isinstance(record.get("error"), str) else None,
                container=str(container) if container else None,
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


def _windows(ev: _Evidence) -> list[tuple[float, float, Outage]]:
    end_default = ev.last_t or 0.0
    out = []
    for outage in ev.outages:
        start = outage.start_s()
        end = outage.end_s(max(end_default, start))
        out.append((start, end + _VPN_AFTERMATH_S, outage))
    return out


def _in_windows(t0: float, t1: float, windows: list[tuple[float, float, Outage]]) -> bool:
    return any(t0 <= w1 and t1 >= w0 for w0, w1, _o in windows)


def _vpn_finding(ev: _Evidence, windows: list[tuple[float, float, Outage]]) -> Finding | None:
    if not windows:
        return None
    chains: list[tuple[int, list[str], str]] = []
    evidence: list[dict[str, Any]] = []
    for w0, w1, outage in windows:
        chain = [
            f"VPN disconnected at {_hms(outage.start)}" + (f" ({outage.signal})" if outage.signal else "")
        ]
        score = 0
        slow = [s for s in ev.slow if s.t_begin <= w1 and s.t_end >= w0]
        if slow:
            first = min(slow, key=lambda s: s.t_end)
            worst = max(slow, key=lambda s: s.duration_ms or 0.0)
            lag = first.t_end - w0
            chain.append(
                f"provisioning slowed {lag:.0f} s later: {len(slow)} start(s) over the "
                f"{_fmt_s(ev.threshold_ms)} threshold "
                f"(worst {_fmt_s(worst.duration_ms)} at {_hms(worst.timestamp)})"
            )
            score += 1
            evidence.append(
                {
                    "timestamp": first.timestamp,
                    "type": first.operation,
                    "detail": f"duration_ms={first.duration_ms} container={first.container}",
                }
            )
        refused = [f for f in ev.failures if f.reason == "vpn_disconnected" and w0 <= f.t_end <= w1]
        if refused:
            chain.append(f"{len(refused)} provision(s) refused with vpn_disconnected")
            score += 1
        peaks = [p for p in ev.health_peaks if w0 <= p[0] <= w1]
        if peaks:
            worst_peak = max(peaks, key=lambda p: p[2] / p[3])
            pct = 100.0 * worst_peak[2] / worst_peak[3]
            chain.append(
                f"{pct:.0f}% of engines turned unhealthy at {_hms(worst_peak[1])} "
                f"({worst_peak[2]}/{worst_peak[3]})"
            )
            score += 1
            evidence.append(
                {
                    "timestamp": worst_peak[1],
                    "type": "health_monitor_cycle",
                    "detail": f"unhealthy={worst_peak[2]} total={worst_peak[3]}",
                }
            )
        else:
            stress_peaks = [
                r
                for r in ev.stress
                if r.get("event_type") == "high_unhealthy_engines"
                and w0 <= (ts_seconds(r.get("timestamp")) or -1.0) <= w1
            ]
            if stress_peaks:
                r = stress_peaks[0]
                chain.append(
                    f"{r.get('description') or 'engines turned unhealthy'} at {_hms(r.get('timestamp'))}"
                )
                score += 1
                evidence.append(
                    {
                        "timestamp": r.get("timestamp"),
                        "type": "high_unhealthy_engines",
                        "detail": r.get("description"),
                    }
                )
        if outage.end:
            chain.append(f"VPN recovered at {_hms(outage.end)} after {_fmt_s(outage.duration_ms)}")
        else:
            chain.append("VPN still down at the end of the log")
        evidence.insert(
            0,
            {
                "timestamp": outage.start,
                "type": "vpn_outage",
                "detail": f"until {outage.end or 'end of log'} ({_fmt_s(outage.duration_ms)})",
            },
        )
        chains.append((score, chain, outage.start))
    best = max(chains, key=lambda c: c[0])
    severity = "critical" if best[0] else "warning"
    count = len(windows)
    title = (
        "VPN drop → slow provisioning → unhealthy engines"
        if best[0]
        else f"VPN outage{'s' if count > 1 else ''} ({count}) without visible effect on engines"
    )
    if count > 1:
        best[1].append(f"{count} VPN outages in total")
    return Finding(
        kind="vpn_chain",
        severity=severity,
        title=title,
        chain=best[1],
        evidence=evidence[:_EVIDENCE_CAP],
        first_seen=chains[0][2],
        settings=[
            {
                "name": "GLUETUN_HEALTH_CHECK_INTERVAL_S",
                "advice": "check the VPN more often (e.g. 3) so provisioning pauses as soon as it drops",
            },
            {
                "name": "VPN_RECOVERY_STABILIZE_S",
                "advice": "wait longer for a stable VPN before engines are restarted (e.g. 60)",
            },
            {
                "name": "VPN_RESTART_ENGINES_ON_RECONNECT",
                "advice": "keep true so engines that lost the tunnel are restarted after recovery",
            },
        ],
    )


def _breaker_finding(ev: _Evidence) -> Finding | None:
    if not ev.breaker_opens:
        return None
    first_open = ev.breaker_opens[0]
    t_open = ts_seconds(first_open.get("timestamp")) or 0.0
    last_ok = max((t for t in ev.success_times if t <= t_open), default=float("-inf"))
    # The failure that trips the breaker is logged just after circuit_breaker_opened: count by start time.
    streak = [f for f in ev.failures if last_ok < f.t_end and f.t_begin <= t_open and f.reason not in _GATED]
    chain: list[str] = []
    evidence: list[dict[str, Any]] = []
    op_type = str(first_open.get("operation_type") or first_open.get("breaker") or "general")
    if streak:
        first = streak[0]
        chain.append(
            f"first failure at {_hms(first.timestamp)}: {first.error or 'no error text'} "
            f"(reason {first.reason or '?'})"
        )
        chain.append(f"{len(streak)} consecutive failed start(s)")
        evidence.append(
            {
                "timestamp": first.timestamp,
                "type": first.operation,
                "detail": f"error={first.error!r} reason={first.reason}",
            }
        )
    count = first_open.get("failure_count")
    chain.append(
        f"circuit breaker '{op_type}' opened at {_hms(first_open.get('timestamp'))}"
        + (f" after {count} failures" if count is not None else "")
    )
    evidence.append(
        {
            "timestamp": first_open.get("timestamp"),
            "type": "circuit_breaker_opened",
            "detail": first_open.get("description"),
        }
    )
    refused = sum(1 for f in ev.failures if f.reason == "circuit_breaker" and f.t_end >= t_open)
    if refused:
        chain.append(f"{refused} provision(s) refused while it was open")
    reopened = sum(1 for r in ev.breaker_opens if r.get("event_type") == "circuit_breaker_reopened")
    opened = len(ev.breaker_opens) - reopened
    if len(ev.breaker_opens) > 1:
        chain.append(f"opened {opened} time(s), re-opened {reopened} time(s) after failed trials")
    if op_type == "replacement":
        names = ("CIRCUIT_BREAKER_REPLACEMENT_THRESHOLD", "CIRCUIT_BREAKER_REPLACEMENT_TIMEOUT_S")
    else:
        names = ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S")
    threshold = config_value(ev.config, names[0])
    return Finding(
        kind="circuit_breaker",
        severity="critical",
        title="Circuit breaker storm" if len(ev.breaker_opens) > 1 else "Circuit breaker opened",
        chain=chain,
        evidence=evidence,
        first_seen=streak[0].timestamp if streak else str(first_open.get("timestamp")),
        settings=[
            {
                "name": names[0],
                "advice": f"raise it (now {threshold if threshold is not None else 'default'}, e.g. 10) if "
                "the failures are transient under load; fix the first failure's cause otherwise",
            },
            {"name": names[1], "advice": "lower it (e.g. 180) so a trial start is let through sooner"},
        ],
    )


def _capacity_finding(ev: _Evidence) -> Finding | None:
    refused = [f for f in ev.failures if f.reason in ("max_capacity", "port_pool_exhausted")]
    stress = [r for r in ev.stress if r.get("event_type") == "capacity_exhausted"]
    if not refused and not stress:
        return None
    first_ts = min([f.timestamp for f in refused] + [str(r.get("timestamp")) for r in stress])
    chain = [f"provisioning refused for capacity from {_hms(first_ts)}"]
    evidence: list[dict[str, Any]] = []
    pool = any(f.reason == "port_pool_exhausted" for f in refused)
    if refused:
        chain.append(f"{len(refused)} start(s) refused (max_capacity / port_pool_exhausted)")
        evidence.append(
            {"timestamp": refused[0].timestamp, "type": refused[0].operation, "detail": refused[0].error}
        )
    if stress:
        limit, running = stress[0].get("limit"), stress[0].get("running")
        chain.append(f"{len(stress)} capacity_exhausted event(s): {running} running of a limit of {limit}")
        evidence.append(
            {
                "timestamp": stress[0].get("timestamp"),
                "type": "capacity_exhausted",
                "detail": stress[0].get("description"),
            }
        )
    settings = [
        {"name": "MAX_REPLICAS", "advice": "raise it if the host has room for more engines"},
        {
            "name": "AUTO_DELETE",
            "advice": "set true (with a short ENGINE_GRACE_PERIOD_S) to free idle engines sooner",
        },
    ]
    if pool:
        settings.append({"name": "PORT_RANGE_HOST / MAX_ACTIVE_REPLICAS", "advice": "widen the port pool"})
    return Finding(
        kind="capacity_exhausted",
        severity="warning",
        title="Capacity exhausted",
        chain=chain,
        evidence=evidence,
        settings=settings,
        first_seen=first_ts,
    )


#: Refusals by a gate (api.md §4.1): the breaker does not count them, so neither does its streak.
_GATED = frozenset({"circuit_breaker", "max_capacity", "port_pool_exhausted", "vpn_disconnected"})


def _slow_findings(ev: _Evidence, windows: list[tuple[float, float, Outage]]) -> list[Finding]:
    slow_outside = [s for s in ev.slow if not _in_windows(s.t_begin, s.t_end, windows)]
    ok_outside = ev.starts_ok - (len(ev.slow) - len(slow_outside))
    timeouts = [f for f in ev.failures if f.reason == "startup_timeout"]
    crashes = [f for f in ev.failures if f.reason in ("engine_exited", "image_not_found")]
    error_events = ev.error_count > 0 or ev.failure_count > 0 or bool(ev.breaker_opens) or bool(windows)
    findings: list[Finding] = []
    if slow_outside and not error_events and ok_outside >= 3 and len(slow_outside) / ok_outside >= 0.5:
        durations = sorted(s.duration_ms or 0.0 for s in slow_outside)
        pct = 100.0 * len(slow_outside) / ok_outside
        findings.append(
            Finding(
                kind="resource_contention",
                severity="warning",
                title="Everything is slow and nothing failed: resource contention",
                chain=[
                    f"{len(slow_outside)} of {ok_outside} provisions ({pct:.0f}%) took longer than "
                    f"{_fmt_s(ev.threshold_ms)} (median {_fmt_s(durations[len(durations) // 2])}, "
                    f"worst {_fmt_s(durations[-1])})",
                    "no VPN outage, breaker, failed start or error record explains it",
                    "the Docker host is short of CPU, memory or disk I/O",
                ],
                evidence=[
                    {"timestamp": s.timestamp, "type": s.operation, "detail": f"duration_ms={s.duration_ms}"}
                    for s in slow_outside[:_EVIDENCE_CAP]
                ],
                first_seen=slow_outside[0].timestamp,
                settings=[
                    {"name": "MAX_REPLICAS", "advice": "lower it to stop overloading the host"},
                    {
                        "name": "MAX_CONCURRENT_PROVISIONS",
                        "advice": "lower it so fewer engines start at once",
                    },
                    {"name": "AUTO_DELETE", "advice": "set true to free resources faster"},
                    {"name": "host resources", "advice": "scale up the Docker host (CPU, memory, disk I/O)"},
                ],
            )
        )
    elif slow_outside or timeouts:
        chain: list[str] = []
        evidence: list[dict[str, Any]] = []
        if slow_outside:
            worst = max(slow_outside, key=lambda s: s.duration_ms or 0.0)
            chain.append(
                f"{len(slow_outside)} provision(s) took longer than {_fmt_s(ev.threshold_ms)} "
                f"outside any VPN outage (first at {_hms(slow_outside[0].timestamp)}, "
                f"worst {_fmt_s(worst.duration_ms)})"
            )
            evidence.extend(
                {"timestamp": s.timestamp, "type": s.operation, "detail": f"duration_ms={s.duration_ms}"}
                for s in slow_outside[:5]
            )
        by_reason: dict[str, int] = {}
        for f in timeouts:
            by_reason[f.reason or "?"] = by_reason.get(f.reason or "?", 0) + 1
        if timeouts:
            chain.append(
                "start failures: "
                + ", ".join(f"{n}× {reason}" for reason, n in sorted(by_reason.items()))
                + f" (first at {_hms(timeouts[0].timestamp)}: {timeouts[0].error or 'no error text'})"
            )
            evidence.extend(
                {
                    "timestamp": f.timestamp,
                    "type": f.operation,
                    "detail": f"reason={f.reason} error={f.error!r}",
                }
                for f in timeouts[:5]
            )
        chain.append("engines are slow to pull their image or to answer after start")
        settings = [
            {"name": "STARTUP_TIMEOUT_S", "advice": "raise it if engines do come up, only late"},
            {
                "name": "PROVISION_WAIT_FOR",
                "advice": "set to running so callers get an answer once the container runs",
            },
        ]
        findings.append(
            Finding(
                kind="slow_startup",
                severity="warning",
                title="Slow image pull or engine startup",
                chain=chain,
                evidence=evidence[:_EVIDENCE_CAP],
                first_seen=min([s.timestamp for s in slow_outside[:1]] + [f.timestamp for f in timeouts[:1]]),
                settings=settings,
            )
        )
    if crashes:
        by_reason = {}
        for f in crashes:
            by_reason[f.reason or "?"] = by_reason.get(f.reason or "?", 0) + 1
        crash_settings = [
            {"name": "TARGET_IMAGE", "advice": "check that the image exists locally and runs (docker run it once)"},
            {
                "name": "engine logs",
                "advice": "read the engine's own output: `docker logs <container>` while it restarts",
            },
        ]
        findings.append(
            Finding(
                kind="engine_exits",
                severity="warning",
                title="Engines exit or cannot start",
                chain=[
                    "start failures: "
                    + ", ".join(f"{n}× {reason}" for reason, n in sorted(by_reason.items()))
                    + f" (first at {_hms(crashes[0].timestamp)}: {crashes[0].error or 'no error text'})",
                    "the engine process ends during startup, or its image is missing: a configuration or image "
                    "problem, not load",
                ],
                evidence=[
                    {"timestamp": f.timestamp, "type": f.operation, "detail": f"reason={f.reason} error={f.error!r}"}
                    for f in crashes[:_EVIDENCE_CAP]
                ],
                first_seen=crashes[0].timestamp,
                settings=crash_settings,
            )
        )
    return findings


def _hanging_finding(ev: _Evidence, windows: list[tuple[float, float, Outage]]) -> Finding | None:
    hanging: list[tuple[str, _Start, Record]] = []
    seen: set[int] = set()
    for key, record in ev.probe_trouble.items():
        start = ev.started[key]
        t = ts_seconds(record.get("timestamp"))
        if t is None or t < start.t_end or _in_windows(t, t, windows) or id(start) in seen:
            continue
        seen.add(id(start))
        hanging.append((key, start, record))
    if not hanging:
        return None
    hanging.sort(key=lambda h: str(h[2].get("timestamp")))
    key, start, record = hanging[0]
    after = (ts_seconds(record.get("timestamp")) or start.t_end) - start.t_end
    return Finding(
        kind="engines_hanging",
        severity="warning",
        title="Engines hang after a successful start",
        chain=[
            f"{len(hanging)} engine(s) started fine and then failed their health probes",
            f"first: {start.container or key} ready at {_hms(start.timestamp)} "
            f"(took {_fmt_s(start.duration_ms)}), probes failing {after:.0f} s later",
            "no VPN outage at that time",
        ],
        evidence=[
            {
                "timestamp": r.get("timestamp"),
                "type": str(r.get("operation")),
                "detail": f"{s.container or k}: {r.get('error') or r.get('to') or ''}",
            }
            for k, s, r in hanging[:_EVIDENCE_CAP]
        ],
        first_seen=str(record.get("timestamp")),
        settings=[
            {"name": "HEALTH_FAILURE_THRESHOLD", "advice": "raise it if probes fail only briefly"},
            {"name": "HEALTH_CHECK_INTERVAL_S", "advice": "probe more often to catch hung engines sooner"},
            {
                "name": "HEALTH_UNHEALTHY_GRACE_PERIOD_S",
                "advice": "lower it so hung engines are replaced sooner",
            },
        ],
    )


def diagnose(reader: Reader, sessions: Sequence[Session]) -> dict[str, Any]:
    """Findings (most severe first) with evidence, causal chains and settings; or ``No problems found``."""
    ev = _collect(reader, sessions)
    windows = _windows(ev)
    findings: list[Finding] = []
    for candidate in (_vpn_finding(ev, windows), _breaker_finding(ev), _capacity_finding(ev)):
        if candidate is not None:
            findings.append(candidate)
    findings.extend(_slow_findings(ev, windows))
    hanging = _hanging_finding(ev, windows)
    if hanging is not None:
        findings.append(hanging)
    rank = {"critical": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda f: (rank.get(f.severity, 3), f.first_seen or ""))
    return {
        "sessions": [s.session_id for s in sessions],
        "threshold_ms": ev.threshold_ms,
        "provisions": {"total": ev.starts_total, "succeeded": ev.starts_ok, "slow": ev.slow_count},
        "findings": [f.as_dict() for f in findings],
        "verdict": NO_PROBLEMS if not findings else f"{len(findings)} problem(s) found",
    }
