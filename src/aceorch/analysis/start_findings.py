"""The start findings of ``aceorch debug diagnose``: slow starts, start timeouts, engines that exit at start, and
engines that hang after a good start.

Slow starts outside any VPN outage are told apart: everything slow and nothing failed (resource contention), a
slow image pull (``runtime.create`` took most of the start) or a slow engine startup.
"""

from __future__ import annotations

from typing import Any

from aceorch.analysis.evidence import EVIDENCE_CAP, Evidence, Finding, Start, fmt_s, hms, in_windows
from aceorch.analysis.fields import Record, ts_seconds
from aceorch.analysis.signals import Outage

__all__ = ["slow_findings", "hanging_finding"]


def slow_findings(ev: Evidence, windows: list[tuple[float, float, Outage]]) -> list[Finding]:
    """Resource contention, slow starts and start timeouts outside VPN outages, and engines that exit at start."""
    slow_outside = [s for s in ev.slow if not in_windows(s.t_begin, s.t_end, windows)]
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
                    f"{fmt_s(ev.threshold_ms)} (median {fmt_s(durations[len(durations) // 2])}, "
                    f"worst {fmt_s(durations[-1])})",
                    "no VPN outage, breaker, failed start or error record explains it",
                    "the Docker host is short of CPU, memory or disk I/O",
                ],
                evidence=[
                    {"timestamp": s.timestamp, "type": s.operation, "detail": f"duration_ms={s.duration_ms}"}
                    for s in slow_outside[:EVIDENCE_CAP]
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
                f"{len(slow_outside)} provision(s) took longer than {fmt_s(ev.threshold_ms)} "
                f"outside any VPN outage (first at {hms(slow_outside[0].timestamp)}, "
                f"worst {fmt_s(worst.duration_ms)})"
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
                + f" (first at {hms(timeouts[0].timestamp)}: {timeouts[0].error or 'no error text'})"
            )
            evidence.extend(
                {
                    "timestamp": f.timestamp,
                    "type": f.operation,
                    "detail": f"reason={f.reason} error={f.error!r}",
                }
                for f in timeouts[:5]
            )
        cause, title = _slow_cause(ev, slow_outside)
        chain.append(cause)
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
                title=title,
                chain=chain,
                evidence=evidence[:EVIDENCE_CAP],
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
        ]
        told = next((f for f in crashes if f.exit_code is not None or f.output_tail), None)
        crash_chain: list[str] = []
        if told is not None:
            code = "unknown" if told.exit_code is None else str(told.exit_code)
            crash_chain.append(
                f"{told.container or 'the engine'} exited with exit code {code} at {hms(told.timestamp)}"
                + (f"; its last output line: {told.output_tail[-1]}" if told.output_tail else "")
            )
        else:
            crash_settings.append(
                {
                    "name": "engine output",
                    "advice": "no output was recorded for these starts: run the image once by hand to see it",
                }
            )
        findings.append(
            Finding(
                kind="engine_exits",
                severity="warning",
                title="Engines exit or cannot start",
                chain=[
                    "start failures: "
                    + ", ".join(f"{n}× {reason}" for reason, n in sorted(by_reason.items()))
                    + f" (first at {hms(crashes[0].timestamp)}: {crashes[0].error or 'no error text'})",
                    *crash_chain,
                    "the engine process ends during startup, or its image is missing: a configuration or image "
                    "problem, not load",
                ],
                output_tail=list(told.output_tail) if told is not None and told.output_tail else None,
                evidence=[
                    {"timestamp": f.timestamp, "type": f.operation, "detail": f"reason={f.reason} error={f.error!r}"}
                    for f in crashes[:EVIDENCE_CAP]
                ],
                first_seen=crashes[0].timestamp,
                settings=crash_settings,
            )
        )
    return findings


#: ``runtime.create`` slower than this share of the whole start is "slow to pull its image".
_CREATE_SHARE = 0.5


def _slow_cause(ev: Evidence, slow: list[Start]) -> tuple[str, str]:
    """Why the slow starts were slow, as far as ``runtime.create`` timings tell: (chain line, title)."""
    timed = [(s, ev.create_ms[s.container]) for s in slow if s.container and s.container in ev.create_ms]
    if not timed:
        return (
            "engines are slow to pull their image or to answer after start (no runtime.create timing recorded "
            "to tell which)",
            "Slow image pull or engine startup",
        )
    pulls = [(s, ms) for s, ms in timed if s.duration_ms and ms >= _CREATE_SHARE * s.duration_ms]
    if pulls:
        s, ms = max(pulls, key=lambda p: p[1])
        return (
            f"creating the container (runtime.create, which pulls the image) took {fmt_s(ms)} of "
            f"{fmt_s(s.duration_ms)} for {s.container}: the image is slow to pull",
            "Slow image pull",
        )
    s, ms = max(timed, key=lambda p: p[0].duration_ms or 0.0)
    return (
        f"creating the container took only {fmt_s(ms)} of {fmt_s(s.duration_ms)} for {s.container}: "
        "the engine itself is slow to start up and answer",
        "Slow engine startup",
    )


def hanging_finding(ev: Evidence, windows: list[tuple[float, float, Outage]]) -> Finding | None:
    """Engines that started fine and then failed their health probes, outside any VPN outage."""
    hanging: list[tuple[str, Start, Record]] = []
    seen: set[int] = set()
    for key, record in ev.probe_trouble.items():
        start = ev.started[key]
        t = ts_seconds(record.get("timestamp"))
        if t is None or t < start.t_end or in_windows(t, t, windows) or id(start) in seen:
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
            f"first: {start.container or key} ready at {hms(start.timestamp)} "
            f"(took {fmt_s(start.duration_ms)}), probes failing {after:.0f} s later",
            "no VPN outage at that time",
        ],
        evidence=[
            {
                "timestamp": r.get("timestamp"),
                "type": str(r.get("operation")),
                "detail": f"{s.container or k}: {r.get('error') or r.get('to') or ''}",
            }
            for k, s, r in hanging[:EVIDENCE_CAP]
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
