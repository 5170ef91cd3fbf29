"""``aceorch debug html-report``: one self-contained HTML file with plots of a debug session.

The charts are inline SVG drawn here, in Python: no script, stylesheet, font or image is loaded from
anywhere, so the file can be mailed or opened offline. It shows

* provisioning durations over time (one dot per finished start, red when it failed) with the
  ``slow_provisioning`` threshold line (``STARTUP_TIMEOUT_S`` × ``DEBUG_SLOW_PROVISIONING_RATIO`` from the
  session's ``session_start`` config), stress events as markers along the top, and VPN outages as bands;
* healthy and unhealthy engines over time, from the ``health_monitor_cycle`` summaries, with the same bands;
* the per-operation latency table of ``aceorch debug report``.

Very large sessions are thinned before drawing (every slow or failed start is kept), so the file stays small.
"""

from __future__ import annotations

import html
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aceorch.analysis.fields import Record, ts_seconds
from aceorch.analysis.reader import Reader
from aceorch.analysis.report import build_report
from aceorch.analysis.sessions import Session
from aceorch.analysis.signals import HealthCycle, Outage, health_cycles, vpn_outages
from aceorch.analysis.thresholds import session_config, slow_threshold_ms

__all__ = ["render_html_report"]

_MAX_POINTS = 4000
_W, _H = 960, 320
_ML, _MR, _MT, _MB = 64, 16, 28, 36
_SEVERITY_COLOURS = {"critical": "#c0392b", "warning": "#e67e22", "info": "#2980b9"}
_STARTS = {
    "start_acestream_success": True,
    "start_container_success": True,
    "start_acestream_failed": False,
    "start_container_failed": False,
}


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _hms(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


class _Scale:
    def __init__(self, t0: float, t1: float, y_max: float) -> None:
        self.t0 = t0
        self.t1 = t1 if t1 > t0 else t0 + 1.0
        self.y_max = y_max if y_max > 0 else 1.0

    def x(self, t: float) -> float:
        return _ML + (t - self.t0) / (self.t1 - self.t0) * (_W - _ML - _MR)

    def y(self, v: float) -> float:
        return _H - _MB - v / self.y_max * (_H - _MT - _MB)


def _axes(scale: _Scale, y_label: str, y_fmt: str, y_ticks: Sequence[float] | None = None) -> list[str]:
    parts = [
        f'<line x1="{_ML}" y1="{_H - _MB}" x2="{_W - _MR}" y2="{_H - _MB}" stroke="#555"/>',
        f'<line x1="{_ML}" y1="{_MT}" x2="{_ML}" y2="{_H - _MB}" stroke="#555"/>',
        f'<text x="12" y="{_MT - 10}" font-size="11" fill="#333">{_esc(y_label)}</text>',
    ]
    for i in range(6):
        t = scale.t0 + (scale.t1 - scale.t0) * i / 5
        x = scale.x(t)
        parts.append(f'<line x1="{x:.1f}" y1="{_H - _MB}" x2="{x:.1f}" y2="{_H - _MB + 4}" stroke="#555"/>')
        # the first and last labels are anchored inside the chart, so neither is cut off at its edge
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        parts.append(
            f'<text x="{x:.1f}" y="{_H - _MB + 16}" font-size="10" text-anchor="{anchor}">{_hms(t)}</text>'
        )
    ticks = list(y_ticks) if y_ticks is not None else [scale.y_max * i / 4 for i in range(5)]
    for v in ticks:
        y = scale.y(v)
        parts.append(f'<line x1="{_ML}" y1="{y:.1f}" x2="{_W - _MR}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(
            f'<text x="{_ML - 6}" y="{y + 3:.1f}" font-size="10" text-anchor="end">{y_fmt.format(v)}</text>'
        )
    return parts


def _bands(scale: _Scale, outages: Sequence[Outage]) -> list[str]:
    parts = []
    for outage in outages:
        start = outage.start_s()
        end = outage.end_s(scale.t1)
        x0, x1 = scale.x(max(start, scale.t0)), scale.x(min(end, scale.t1))
        title = f"VPN outage {outage.start} → {outage.end or 'end of log'}"
        parts.append(
            f'<rect class="vpn-outage" x="{x0:.1f}" y="{_MT}" width="{max(x1 - x0, 2.0):.1f}" '
            f'height="{_H - _MT - _MB}" fill="#c0392b" fill-opacity="0.12">'
            f"<title>{_esc(title)}</title></rect>"
        )
    return parts


def _svg(parts: list[str], label: str) -> str:
    body = "\n".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{_esc(label)}" '
        f'viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" font-family="sans-serif">\n{body}\n</svg>'
    )


def _provisioning_chart(
    times: array[float],
    durations: array[float],
    ok: list[bool],
    threshold_ms: float,
    stress: list[tuple[float, str, str, str]],
    outages: Sequence[Outage],
    t0: float,
    t1: float,
) -> str:
    y_max = max([threshold_ms * 1.2] + [d * 1.05 for d in durations]) / 1000.0
    scale = _Scale(t0, t1, y_max)
    parts = _bands(scale, outages) + _axes(scale, "provisioning duration (s)", "{:.1f}")
    ty = scale.y(threshold_ms / 1000.0)
    parts.append(
        f'<line class="threshold" x1="{_ML}" y1="{ty:.1f}" x2="{_W - _MR}" y2="{ty:.1f}" '
        f'stroke="#c0392b" stroke-dasharray="6 4"/>'
        f'<text x="{_W - _MR - 4}" y="{ty - 4:.1f}" font-size="10" text-anchor="end" fill="#c0392b">'
        f"threshold {threshold_ms / 1000.0:.1f} s</text>"
    )
    indices: Sequence[int] = range(len(times))
    if len(times) > _MAX_POINTS:
        step = len(times) / _MAX_POINTS
        keep = {int(i * step) for i in range(_MAX_POINTS)}
        indices = [i for i in indices if i in keep or not ok[i] or durations[i] > threshold_ms]
    for i in indices:
        colour = "#2c7fb8" if ok[i] else "#c0392b"
        parts.append(
            f'<circle class="provision" cx="{scale.x(times[i]):.1f}" '
            f'cy="{scale.y(durations[i] / 1000.0):.1f}" '
            f'r="2.5" fill="{colour}"><title>{_hms(times[i])} {durations[i]:.0f} ms</title></circle>'
        )
    for t, kind, severity, description in stress:
        x = scale.x(t)
        colour = _SEVERITY_COLOURS.get(severity, "#7f8c8d")
        parts.append(
            f'<path class="stress" d="M{x:.1f} {_MT - 2} l-5 -9 h10 z" fill="{colour}">'
            f"<title>{_esc(_hms(t))} {_esc(kind)}: {_esc(description)}</title></path>"
        )
    return _svg(parts, "provisioning durations over time")


def _health_chart(cycles: Sequence[HealthCycle], outages: Sequence[Outage], t0: float, t1: float) -> str:
    top = max([c.total for c in cycles] + [1])
    scale = _Scale(t0, t1, top * 1.1)
    step_ticks = max(1, -(-top // 4))  # whole engines: at most five gridlines, each labelled exactly
    ticks = [float(v) for v in range(0, top + 1, step_ticks)]
    parts = _bands(scale, outages) + _axes(scale, "engines", "{:.0f}", ticks)
    step = max(1, len(cycles) // _MAX_POINTS)
    sample = list(cycles[::step])
    series: tuple[tuple[str, str, list[int]], ...] = (
        ("healthy", "#27ae60", [c.healthy for c in sample]),
        ("unhealthy", "#c0392b", [c.unhealthy for c in sample]),
    )
    for name, colour, values in series:
        points = " ".join(f"{scale.x(c.t):.1f},{scale.y(v):.1f}" for c, v in zip(sample, values, strict=True))
        parts.append(
            f'<polyline class="{name}" points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
        )
    parts.append(
        f'<text x="{_W - _MR - 4}" y="{_MT - 10}" font-size="11" text-anchor="end">'
        '<tspan fill="#27ae60">■ healthy</tspan> <tspan fill="#c0392b">■ unhealthy</tspan></text>'
    )
    return _svg(parts, "healthy and unhealthy engines over time")


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(report: dict[str, Any]) -> str:
    head = (
        "<tr><th>category</th><th>operation</th><th>count</th><th>avg ms</th><th>min ms</th><th>max ms</th>"
        "<th>p50 ms</th><th>p95 ms</th><th>success rate</th></tr>"
    )
    rows = []
    for op in report["operations"]:
        rate = op["success_rate"]
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{_esc(v)}</td>"
                for v in (
                    op["category"],
                    op["operation"],
                    op["count"],
                    _fmt(op["avg_ms"]),
                    _fmt(op["min_ms"]),
                    _fmt(op["max_ms"]),
                    _fmt(op["p50_ms"]),
                    _fmt(op["p95_ms"]),
                    "–" if rate is None else f"{rate * 100:.1f}%",
                )
            )
            + "</tr>"
        )
    return f'<table class="operations">{head}{"".join(rows)}</table>'


_CSS = """
body{font-family:sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:nth-child(-n+2),th{text-align:left}.muted{color:#777}
"""


def render_html_report(reader: Reader, sessions: Sequence[Session]) -> str:
    """The whole report as one HTML string."""
    config = session_config(reader, sessions)
    threshold = slow_threshold_ms(config)
    times: array[float] = array("d")
    durations: array[float] = array("d")
    ok: list[bool] = []
    for session in sessions:
        path = session.path("provisioning")
        if path is None:
            continue
        for record in reader.records(path, needle=b"start_"):
            outcome = _STARTS.get(str(record.get("operation")))
            duration = record.get("duration_ms")
            t = ts_seconds(record.get("timestamp"))
            if outcome is None or t is None or isinstance(duration, bool):
                continue
            if not isinstance(duration, int | float):
                continue
            times.append(t)
            durations.append(float(duration))
            ok.append(outcome)
    stress: list[tuple[float, str, str, str]] = []
    signals: list[Record] = []
    for category, record in reader.merged(sessions, ("vpn", "stress")):
        kind = record.get("operation") or record.get("event_type")
        if kind in ("transition", "health_check", "vpn_disconnection", "vpn_recovered"):
            signals.append(record)
        if category == "stress":
            t = ts_seconds(record.get("timestamp"))
            if t is not None and not str(record.get("event_type", "")).endswith("_resolved"):
                kind_text = str(record.get("event_type"))
                stress.append((t, kind_text, str(record.get("severity")), str(record.get("description"))))
    outages = vpn_outages(signals)
    health_records: list[Record] = []
    for _c, record in reader.merged(sessions, ("health",)):
        if record.get("operation") == "health_monitor_cycle":
            health_records.append(record)
    cycles = health_cycles(health_records)
    report = build_report(reader, sessions)

    all_t = list(times) + [s[0] for s in stress] + [c.t for c in cycles] + [o.start_s() for o in outages]
    t0, t1 = (min(all_t), max(all_t)) if all_t else (0.0, 1.0)
    ids = ", ".join(s.session_id for s in sessions)
    slow = sum(1 for d in durations if d > threshold)
    stress_items = "".join(f"<li>{_esc(k)}: {n}</li>" for k, n in report["stress"].items()) or "<li>none</li>"
    outage_items = (
        "".join(
            f"<li>{_esc(o['start'])} → {_esc(o['end'] or 'end of log')} ({_fmt(o['duration_ms'], 0)} ms)</li>"
            for o in report["vpn_outages"]
        )
        or "<li>none</li>"
    )
    prov = (
        _provisioning_chart(times, durations, ok, threshold, stress, outages, t0, t1)
        if len(times) or stress
        else '<p class="muted">No provisioning durations recorded.</p>'
    )
    health = (
        _health_chart(cycles, outages, t0, t1)
        if cycles
        else '<p class="muted">No health_monitor_cycle records.</p>'
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>aceorch debug report: {_esc(ids)}</title>
<style>{_CSS}</style></head><body>
<h1>aceorch debug report</h1>
<p>Sessions: {_esc(ids)}. {len(times)} finished provisions, {slow} over the threshold of
{threshold / 1000.0:.1f} s; average start_acestream_success {_fmt(report["average_provisioning_ms"])} ms.</p>
<h2>Provisioning durations over time</h2>
<p class="muted">Dots: finished starts (red = failed). Dashed line: slow_provisioning threshold. Triangles:
stress events. Shaded bands: VPN outages.</p>
{prov}
<h2>Engines over time</h2>
{health}
<h2>Per-operation latency</h2>
{_table(report)}
<h2>Stress events</h2><ul>{stress_items}</ul>
<h2>VPN outages</h2><ul>{outage_items}</ul>
</body></html>
"""
