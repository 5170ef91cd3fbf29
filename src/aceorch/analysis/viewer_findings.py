"""The viewers' findings of ``aceorch debug diagnose``: how long viewers waited for a channel, and why, from both
sides' records, naming the request ids involved.

The proxy's records (:mod:`aceorch.analysis.proxy_side`) give each viewer request: when it came, its time to first
byte, or the status and code it was refused with. Per channel (``stream_key``), a *wait* runs from the first
request that found no stream (refused, or waiting for a provision) to the first byte a viewer of it got. A wait
over :data:`SLOW_WAIT_MS` (the proxy's ``slow_request`` threshold), or with refused viewers, is a finding.

Its cause is joined from the orchestrator's records, by time and by request id (the proxy sends the viewer's id
as ``X-Request-ID``, so the orchestrator's ``start_acestream_*`` of that request carry it):

* a VPN outage overlapping the wait, or ending less than the VPN aftermath before it: "the VPN was down" (viewers
  refused ``vpn_disconnected`` while it was), or "provisioning was slow after a VPN drop" when the start that
  finally served the channel was slow;
* an open circuit breaker, or a capacity refusal;
* a slow start without either (over the slow-provisioning threshold), or an engine slow to send its first bytes.

Waits with the same cause (the same outage) make one finding, listing every channel and request id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aceorch.analysis.correlate import OrchestratorStart, orchestrator_starts
from aceorch.analysis.evidence import EVIDENCE_CAP, Evidence, Finding, fmt_s, hms
from aceorch.analysis.fields import format_timestamp, ts_seconds
from aceorch.analysis.proxy_side import Viewer, session_viewers
from aceorch.analysis.reader import Reader
from aceorch.analysis.sessions import Session
from aceorch.analysis.signals import Outage

__all__ = ["SLOW_WAIT_MS", "Wait", "channel_waits", "viewer_findings"]

#: A channel whose viewers waited longer than this for a first byte is slow to start (the proxy's slow_request).
SLOW_WAIT_MS = 5000.0
#: Request ids named in a chain line at most (the ``--json`` item lists them all).
_NAMED = 8

_VPN_CODES = frozenset({"vpn_disconnected"})
_BREAKER_CODES = frozenset({"circuit_breaker"})
_CAPACITY_CODES = frozenset({"max_capacity", "port_pool_exhausted"})


@dataclass
class Wait:
    """One channel's wait for its first byte: the viewers refused meanwhile and the one that got it first."""

    stream_key: str
    t_since: float
    first: Viewer
    refused: list[Viewer] = field(default_factory=list)
    waiting: list[Viewer] = field(default_factory=list)
    served: Viewer | None = None
    t_until: float | None = None
    #: Viewers who came while the channel was starting and got the same first bytes.
    joined: list[Viewer] = field(default_factory=list)

    @property
    def wait_ms(self) -> float:
        """From the first request to the first byte (or, never served, to the last refusal)."""
        end = self.t_until if self.t_until is not None else max(
            [v.t_start + (v.duration_ms or 0.0) / 1000.0 for v in self.refused] or [self.t_since])
        return max(0.0, (end - self.t_since) * 1000.0)

    @property
    def request_ids(self) -> list[str]:
        """Every request id of the wait, in time order."""
        viewers = sorted([*self.refused, *self.waiting, *([self.served] if self.served else []), *self.joined],
                         key=lambda v: v.t_start)
        out: list[str] = []
        for v in viewers:
            if v.request_id and v.request_id not in out:
                out.append(v.request_id)
        return out


def channel_waits(viewers: Sequence[Viewer]) -> list[Wait]:
    """Each channel's waits for a first byte, oldest first: a wait opens at a request that found no live stream
    (refused, or not served yet) and closes at the first first byte after it."""
    by_key: dict[str, list[Viewer]] = {}
    for v in viewers:
        by_key.setdefault(v.stream_key or "?", []).append(v)
    waits: list[Wait] = []
    for key, group in by_key.items():
        group.sort(key=lambda v: v.t_start)
        open_wait: Wait | None = None
        last: Wait | None = None
        for v in group:
            if v.ttfb_ms is not None:
                if open_wait is None and last is not None and last.t_until is not None and v.t_start <= last.t_until:
                    last.joined.append(v)  # it came while the channel was starting: the same wait
                    continue
                wait = open_wait or Wait(key, v.t_start, v)
                wait.served = v
                wait.t_until = v.t_start + v.ttfb_ms / 1000.0
                waits.append(wait)
                open_wait, last = None, wait
                continue
            if open_wait is None:
                open_wait = Wait(key, v.t_start, v)
            (open_wait.refused if v.refused else open_wait.waiting).append(v)
        if open_wait is not None:
            waits.append(open_wait)
    waits.sort(key=lambda w: w.t_since)
    return waits


@dataclass
class _Cause:
    kind: str
    because: str
    outage: Outage | None = None
    severity: str = "warning"


def _cause(w: Wait, ev: Evidence, windows: list[tuple[float, float, Outage]],
           starts: dict[str, OrchestratorStart]) -> _Cause:
    end = w.t_until if w.t_until is not None else w.t_since + w.wait_ms / 1000.0
    codes = {v.error_code or v.provision_error for v in w.refused} - {None}
    served_start = starts.get(w.served.request_id) if w.served and w.served.request_id else None
    start_ms = served_start.outcome.duration_ms if served_start and served_start.outcome else None
    slow_start = start_ms is not None and start_ms > ev.threshold_ms
    for _w0, w1, outage in windows:
        down_from = outage.start_s()
        down_to = outage.end_s(max(end, down_from))  # still down at the end of the log: down all along
        if w.t_since <= down_to and end >= down_from:
            if slow_start:
                return _Cause("vpn", "provisioning was slow after a VPN drop", outage, "critical")
            return _Cause("vpn", "the VPN was down", outage, "critical")
        if down_to < w.t_since <= w1 and (slow_start or w.wait_ms > SLOW_WAIT_MS):
            return _Cause("vpn", "provisioning was slow after a VPN drop", outage, "critical")
    if codes & _VPN_CODES:  # refused for the VPN, though no outage is in the orchestrator's records
        return _Cause("vpn", "the VPN was down", None, "critical")
    opens = [ts_seconds(r.get("timestamp")) for r in ev.breaker_opens]
    if codes & _BREAKER_CODES or any(t is not None and w.t_since - 1.0 <= t <= end for t in opens):
        return _Cause("breaker", "the circuit breaker was open", severity="critical")
    if codes & _CAPACITY_CODES:
        return _Cause("capacity", "no engine was free and none could be started (capacity)")
    if slow_start:
        return _Cause("slow_start", f"provisioning was slow (the engine took {fmt_s(start_ms)} to start)")
    if codes:
        return _Cause("refused", "the proxy could not get an engine (" + ", ".join(sorted(str(c) for c in codes))
                      + ")")
    if w.served is not None:
        engine = "the new engine" if w.served.provisioned else "the engine (no provision was needed)"
        return _Cause("first_bytes", f"{engine} was slow to send the stream's first bytes")
    return _Cause("unknown", "the logs show no orchestrator-side cause")


_SETTINGS: dict[str, list[dict[str, str]]] = {
    "vpn": [
        {"name": "GLUETUN_CONTAINER_NAMES", "advice": "add a second VPN so that new channels start on it while "
                                                      "one is down"},
        {"name": "MIN_FREE_REPLICAS", "advice": "keep engines started ahead so that a new channel needs no "
                                                "provision once the VPN is back"},
        {"name": "GLUETUN_HEALTH_CHECK_INTERVAL_S", "advice": "check the VPN more often (e.g. 3) so that its "
                                                              "recovery is seen sooner"},
        {"name": "VPN_RECOVERY_STABILIZE_S", "advice": "lower it if the tunnel is stable once back: viewers wait "
                                                       "for it"},
    ],
    "breaker": [
        {"name": "CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S", "advice": "lower it so a trial start is let through sooner"},
        {"name": "MIN_FREE_REPLICAS", "advice": "keep engines started ahead so that viewers need no provision"},
    ],
    "capacity": [
        {"name": "MAX_REPLICAS", "advice": "raise it if the host has room for more engines"},
        {"name": "MAX_STREAMS_PER_ENGINE", "advice": "raise it if the engines can carry more streams each"},
    ],
    "slow_start": [
        {"name": "MIN_FREE_REPLICAS", "advice": "keep engines started ahead so that a new channel needs no "
                                                "provision"},
        {"name": "MAX_CONCURRENT_PROVISIONS", "advice": "lower it if many starts at once slow each other"},
    ],
    "first_bytes": [
        {"name": "MIN_FREE_REPLICAS", "advice": "keep engines started ahead (a warm engine finds peers sooner)"},
        {"name": "PROXY_UPSTREAM_START_TIMEOUT_S", "advice": "how long the proxy waits for an engine's first "
                                                             "bytes before it tries another"},
    ],
}
_SETTINGS["refused"] = _SETTINGS["slow_start"]
_SETTINGS["unknown"] = _SETTINGS["first_bytes"]


def _ts(t: float) -> str:
    return format_timestamp(datetime.fromtimestamp(t, UTC))


def _secs(seconds: float) -> str:
    """Seconds as an operator reads them: whole from 10 s on, else with one decimal."""
    return f"{seconds:.0f}" if seconds >= 10 else f"{seconds:.1f}"


def _names(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:_NAMED])
    return shown + (f" and {len(ids) - _NAMED} more" if len(ids) > _NAMED else "")


def _wait_lines(w: Wait, starts: dict[str, OrchestratorStart]) -> list[str]:
    lines: list[str] = []
    if w.refused:
        codes = sorted({f"{v.status} {v.error_code or ''}".strip() for v in w.refused})
        t0 = min(v.t_start for v in w.refused)
        t1 = max(v.t_start + (v.duration_ms or 0.0) / 1000.0 for v in w.refused)
        ids = [v.request_id for v in w.refused if v.request_id]
        lines.append(f"{len(w.refused)} viewer request(s) for channel {w.stream_key} refused with "
                     f"{', '.join(codes)} for {_secs(t1 - t0)} s ({hms(_ts(t0))}–{hms(_ts(t1))}): {_names(ids)}")
    if w.waiting:
        ids = [v.request_id for v in w.waiting if v.request_id]
        lines.append(f"{len(w.waiting)} viewer request(s) gave up waiting for channel {w.stream_key}: "
                     f"{_names(ids)}")
    s = w.served
    if s is not None:
        how = "asked again" if w.refused or w.waiting else "asked"
        line = f"{s.request_id or 'a viewer'} {how} at {hms(s.started)}"
        start = starts.get(s.request_id) if s.request_id else None
        if start is not None and start.outcome is not None:
            line += (f"; the orchestrator's start of it began at {hms(start.timestamp)} and took "
                     f"{fmt_s(start.outcome.duration_ms)}")
        elif s.provisioned:
            line += f"; its provision took {fmt_s(s.provision_ms)}"
        else:
            line += "; it needed no new engine"
        line += f"; first byte after {fmt_s(s.ttfb_ms)}"
        lines.append(line)
        if w.joined:
            lines.append(f"{len(w.joined)} more viewer(s) came while it started and waited with it: "
                         f"{_names([v.request_id for v in w.joined if v.request_id])}")
        lines.append(f"channel {w.stream_key} waited {w.wait_ms / 1000.0:.1f} s from the first request "
                     f"({w.first.request_id or '?'} at {hms(w.first.started)}) to the first byte "
                     f"({s.request_id or '?'} at {hms(s.first_byte_at)})")
    else:
        lines.append(f"channel {w.stream_key} never got a first byte in the log")
    return lines


def _evidence(w: Wait, starts: dict[str, OrchestratorStart]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for v in w.refused[:3]:
        out.append({"timestamp": v.started, "type": "viewer_request",
                    "detail": f"request_id={v.request_id} status={v.status} error_code={v.error_code}"})
    s = w.served
    if s is not None:
        start = starts.get(s.request_id) if s.request_id else None
        if start is not None and start.outcome is not None:
            out.append({"timestamp": start.outcome.timestamp, "type": "start_acestream_success" if
                        start.outcome.success else "start_acestream_failed",
                        "detail": f"request_id={s.request_id} duration_ms={start.outcome.duration_ms}"})
        out.append({"timestamp": s.first_byte_at, "type": "first_byte_ready",
                    "detail": f"request_id={s.request_id} duration_ms={s.ttfb_ms}"})
    return out


def _finding(cause: _Cause, group: list[Wait], starts: dict[str, OrchestratorStart]) -> Finding:
    worst = max(group, key=lambda w: w.wait_ms)
    chain: list[str] = []
    evidence: list[dict[str, Any]] = []
    o = cause.outage
    if o is not None:
        back = f"recovered at {hms(o.end)} after {fmt_s(o.duration_ms)}" if o.end else "was still down at the end"
        chain.append(f"VPN disconnected at {hms(o.start)}" + (f" ({o.signal})" if o.signal else "") + f" and {back}")
        evidence.append({"timestamp": o.start, "type": "vpn_outage",
                         "detail": f"until {o.end or 'end of log'} ({fmt_s(o.duration_ms)})"})
    for w in group:
        chain.extend(_wait_lines(w, starts))
        evidence.extend(_evidence(w, starts))
    refused = sum(len(w.refused) for w in group)
    served = [w for w in group if w.served is not None]
    if len(group) == 1:
        what = f"channel {worst.stream_key[:16]}{'…' if len(worst.stream_key) > 16 else ''}"
    else:
        what = f"{len(group)} channels"
    if served:
        title = f"Viewers waited {'up to ' if len(group) > 1 else ''}{_secs(worst.wait_ms / 1000.0)} s for {what} " \
                f"because {cause.because}"
    else:
        title = f"Viewers of {what} were refused for {_secs(worst.wait_ms / 1000.0)} s because {cause.because}"
    if refused and served:
        title += f" ({refused} refused first)"
    ids: list[str] = []
    for w in group:
        ids.extend(r for r in w.request_ids if r not in ids)
    channels = [{
        "stream_key": w.stream_key, "wait_ms": round(w.wait_ms, 1), "first_request": w.first.started,
        "first_request_id": w.first.request_id, "first_byte_at": w.served.first_byte_at if w.served else None,
        "served_request_id": w.served.request_id if w.served else None,
        "refused_request_ids": [v.request_id for v in w.refused if v.request_id],
        "request_ids": w.request_ids,
    } for w in group]
    return Finding(
        kind=f"viewer_wait_{cause.kind}", severity=cause.severity, title=title, chain=chain,
        evidence=evidence[:EVIDENCE_CAP], settings=_SETTINGS.get(cause.kind, []),
        first_seen=min(w.first.started for w in group), request_ids=ids, extra={"channels": channels},
    )


def viewer_findings(reader: Reader, sessions: Sequence[Session], proxy_dir: Path, ev: Evidence,
                    windows: list[tuple[float, float, Outage]]) -> tuple[list[Finding], dict[str, Any]]:
    """The viewers' findings, and a summary of the proxy's side (folder, viewers, refused, slow waits)."""
    viewers, embedded = session_viewers(reader, sessions, proxy_dir)
    starts = {b.request_id: b for b in orchestrator_starts(reader, sessions) if b.request_id}
    waits = [w for w in channel_waits(viewers) if w.refused or w.waiting or w.wait_ms > SLOW_WAIT_MS]
    groups: dict[tuple[str, str | None], tuple[_Cause, list[Wait]]] = {}
    for w in waits:
        cause = _cause(w, ev, windows, starts)
        key = (cause.kind + cause.because, cause.outage.start if cause.outage else None)
        groups.setdefault(key, (cause, []))[1].append(w)
    findings = [_finding(cause, group, starts) for cause, group in groups.values()]
    summary = {
        "proxy_dir": str(proxy_dir),
        "embedded": embedded,
        "viewer_requests": len(viewers),
        "served": sum(1 for v in viewers if v.ttfb_ms is not None),
        "refused": sum(1 for v in viewers if v.refused),
        "slow_waits": len(waits),
    }
    return findings, summary
