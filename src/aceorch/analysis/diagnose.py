"""``aceorch debug diagnose``: the debug-mode guide's "Example Output Analysis" and "Common Patterns", automatically.

A handful of rules each turn the evidence of :mod:`aceorch.analysis.evidence` into a :class:`Finding` with a
causal chain and the settings to change. Rules, in the debug-mode guide's terms:

* VPN drop → slow provisioning → unhealthy engines (Finding 1–3, Pattern 1).
* Circuit breaker opened, with the error of the failure that started its streak (Pattern 2).
* Capacity exhaustion (``max_capacity`` / ``port_pool_exhausted``).
* Everything slow and no error events: resource contention (Pattern 3).
* Engines that started fine and then stopped answering their health probes.
* Slow image pull / engine startup, and start timeouts (:mod:`aceorch.analysis.start_findings`).
* From the proxy's side, when its records are given: channels viewers waited for, with the cause joined from the
  orchestrator's records and the request ids (:mod:`aceorch.analysis.viewer_findings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aceorch.analysis.evidence import (
    EVIDENCE_CAP,
    Evidence,
    Finding,
    collect,
    fmt_s,
    hms,
    outage_windows,
)
from aceorch.analysis.failover import failover_finding
from aceorch.analysis.fields import ts_seconds
from aceorch.analysis.reader import Reader
from aceorch.analysis.sessions import Session
from aceorch.analysis.signals import Outage
from aceorch.analysis.start_findings import hanging_finding, slow_findings
from aceorch.analysis.thresholds import config_value
from aceorch.analysis.viewer_findings import viewer_findings

__all__ = ["Finding", "diagnose", "NO_PROBLEMS"]

NO_PROBLEMS = "No problems found"


def _vpn_finding(ev: Evidence, windows: list[tuple[float, float, Outage]]) -> Finding | None:
    if not windows:
        return None
    chains: list[tuple[int, list[str], str, set[str]]] = []
    evidence: list[dict[str, Any]] = []
    for w0, w1, outage in windows:
        chain = [
            f"VPN disconnected at {hms(outage.start)}" + (f" ({outage.signal})" if outage.signal else "")
        ]
        score = 0
        links: set[str] = set()
        # A slow start counts only when it ended after the drop (it was slowed by it, not before it).
        slow = [s for s in ev.slow if s.t_begin <= w1 and s.t_end >= w0]
        if slow:
            links.add("slow")
            first = min(slow, key=lambda s: s.t_end)
            worst = max(slow, key=lambda s: s.duration_ms or 0.0)
            lag = first.t_end - w0
            chain.append(
                f"provisioning slowed {lag:.0f} s later: {len(slow)} start(s) over the "
                f"{fmt_s(ev.threshold_ms)} threshold "
                f"(worst {fmt_s(worst.duration_ms)} at {hms(worst.timestamp)})"
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
            links.add("refused")
        peaks = [p for p in ev.health_peaks if w0 <= p[0] <= w1]
        if peaks:
            worst_peak = max(peaks, key=lambda p: p[2] / p[3])
            pct = 100.0 * worst_peak[2] / worst_peak[3]
            chain.append(
                f"{pct:.0f}% of engines turned unhealthy at {hms(worst_peak[1])} "
                f"({worst_peak[2]}/{worst_peak[3]})"
            )
            score += 1
            links.add("unhealthy")
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
                    f"{r.get('description') or 'engines turned unhealthy'} at {hms(r.get('timestamp'))}"
                )
                score += 1
                links.add("unhealthy")
                evidence.append(
                    {
                        "timestamp": r.get("timestamp"),
                        "type": "high_unhealthy_engines",
                        "detail": r.get("description"),
                    }
                )
        if outage.end:
            chain.append(f"VPN recovered at {hms(outage.end)} after {fmt_s(outage.duration_ms)}")
        else:
            chain.append("VPN still down at the end of the log")
        evidence.insert(
            0,
            {
                "timestamp": outage.start,
                "type": "vpn_outage",
                "detail": f"until {outage.end or 'end of log'} ({fmt_s(outage.duration_ms)})",
            },
        )
        chains.append((score, chain, outage.start, links))
    best = max(chains, key=lambda c: (c[0], len(c[3])))
    severity = "critical" if best[0] else "warning"
    count = len(windows)
    title = _vpn_title(best[3], count)
    if count > 1:
        best[1].append(f"{count} VPN outages in total")
    return Finding(
        kind="vpn_chain",
        severity=severity,
        title=title,
        chain=best[1],
        evidence=evidence[:EVIDENCE_CAP],
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


def _vpn_title(links: set[str], count: int) -> str:
    """The headline of a VPN finding: a link of the chain appears only when the data shows it."""
    steps = ["VPN drop"]
    if "slow" in links:
        steps.append("slow provisioning")
    if "unhealthy" in links:
        steps.append("unhealthy engines")
    if len(steps) > 1:
        return " → ".join(steps)
    if "refused" in links:
        return "VPN drop: provisioning paused while it was down (no slow start, no unhealthy engine)"
    return f"VPN outage{'s' if count > 1 else ''} ({count}) without visible effect on engines"


def _breaker_finding(ev: Evidence) -> Finding | None:
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
            f"first failure at {hms(first.timestamp)}: {first.error or 'no error text'} "
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
        f"circuit breaker '{op_type}' opened at {hms(first_open.get('timestamp'))}"
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


def _capacity_finding(ev: Evidence) -> Finding | None:
    refused = [f for f in ev.failures if f.reason in ("max_capacity", "port_pool_exhausted")]
    stress = [r for r in ev.stress if r.get("event_type") == "capacity_exhausted"]
    if not refused and not stress:
        return None
    first_ts = min([f.timestamp for f in refused] + [str(r.get("timestamp")) for r in stress])
    chain = [f"provisioning refused for capacity from {hms(first_ts)}"]
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


#: Refusals by a gate (VPN down, breaker open, capacity): the breaker does not count them, so neither does its
#: streak.
_GATED = frozenset({"circuit_breaker", "max_capacity", "port_pool_exhausted", "vpn_disconnected"})


def diagnose(reader: Reader, sessions: Sequence[Session], proxy_dir: Path | None = None) -> dict[str, Any]:
    """Findings (most severe first) with evidence, causal chains and settings; or ``No problems found``.

    With ``proxy_dir`` (a standalone proxy's folder, or the orchestrator's own for the embedded proxy), the
    viewers' side too: channels viewers waited for, why, and their request ids.
    """
    ev = collect(reader, sessions)
    windows = outage_windows(ev)
    findings: list[Finding] = []
    proxy: dict[str, Any] | None = None
    if proxy_dir is not None:
        viewers, proxy = viewer_findings(reader, sessions, proxy_dir, ev, windows)
        findings.extend(viewers)
    for candidate in (_vpn_finding(ev, windows), failover_finding(ev), _breaker_finding(ev), _capacity_finding(ev)):
        if candidate is not None:
            findings.append(candidate)
    findings.extend(slow_findings(ev, windows))
    hanging = hanging_finding(ev, windows)
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
        **({} if proxy is None else {"proxy": proxy}),
    }
