"""``aceorch debug html-report``: one self-contained HTML file that explains a debug session.

The page starts with the findings of ``aceorch debug diagnose``, then two charts and the tables of
``aceorch debug report``. The charts are drawn in the page by one small shared module,
``analysis/static/chart.js``, from the data this module collects and embeds as JSON; the module, the data and
the stylesheet are inlined, so nothing is loaded from anywhere and the file can be mailed or opened offline.

* provisioning durations over time: a dot per finished start (hover: container, duration, failure reason), the
  slow-start threshold (``STARTUP_TIMEOUT_S`` × ``DEBUG_SLOW_PROVISIONING_RATIO`` of the session's config),
  stress markers with a legend, VPN outages as bands;
* engines over time: healthy and unhealthy counts of each health sweep as steps, engine restarts marked.

Very large sessions are thinned before embedding (every slow or failed start is kept), so the file stays small.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aceorch.analysis.diagnose import diagnose
from aceorch.analysis.fields import Record, number, ts_seconds
from aceorch.analysis.reader import Reader
from aceorch.analysis.report import build_report
from aceorch.analysis.sessions import Session
from aceorch.analysis.signals import health_cycles, vpn_outages
from aceorch.analysis.thresholds import session_config, slow_threshold_ms

__all__ = ["render_html_report", "chart_data", "CHART_JS"]

#: The chart module, inlined into every report.
CHART_JS = Path(__file__).with_name("static") / "chart.js"

_MAX_POINTS = 4000
_STARTS = {
    "start_acestream_success": True,
    "start_container_success": True,
    "start_acestream_failed": False,
    "start_container_failed": False,
}


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def chart_data(reader: Reader, sessions: Sequence[Session]) -> dict[str, Any]:
    """What the charts draw: starts, stress events, VPN outages, health sweeps and engine restarts (times in s)."""
    threshold = slow_threshold_ms(session_config(reader, sessions))
    starts: list[dict[str, Any]] = []
    for session in sessions:
        path = session.path("provisioning")
        if path is None:
            continue
        for record in reader.records(path, needle="start_"):
            outcome = _STARTS.get(str(record.get("operation")))
            duration = number(record.get("duration_ms"))
            t = ts_seconds(record.get("timestamp"))
            if outcome is None or t is None or duration is None:
                continue
            starts.append({
                "t": t, "ms": duration, "ok": outcome,
                "container": _text(record.get("container_name")) or _text(record.get("container_id")),
                "reason": _text(record.get("reason")), "error": _text(record.get("error")),
            })
    if len(starts) > _MAX_POINTS:
        step = len(starts) / _MAX_POINTS
        keep = {int(i * step) for i in range(_MAX_POINTS)}
        starts = [s for i, s in enumerate(starts) if i in keep or not s["ok"] or s["ms"] > threshold]
    stress: list[dict[str, Any]] = []
    restarts: list[dict[str, Any]] = []
    signals: list[Record] = []
    for category, record in reader.merged(sessions, ("vpn", "stress")):
        kind = record.get("operation") or record.get("event_type")
        t = ts_seconds(record.get("timestamp"))
        if kind in ("transition", "health_check", "vpn_disconnection", "vpn_recovered"):
            signals.append(record)
        if t is None:
            continue
        if category == "stress" and not str(record.get("event_type", "")).endswith("_resolved"):
            stress.append({"t": t, "type": str(record.get("event_type")), "severity": str(record.get("severity")),
                           "description": _text(record.get("description"))})
        if kind == "engine_restart":
            name = _text(record.get("container_name")) or _text(record.get("container_id")) or "an engine"
            note = "" if record.get("success") is not False else f" (failed: {record.get('error') or '?'})"
            restarts.append({"t": t, "label": f"{name} restarted after the VPN came back{note}"})
    if not restarts:  # no record per engine: mark the restarts a VPN recovery reports
        for record in signals:
            count = record.get("engines_restarted")
            t = ts_seconds(record.get("timestamp"))
            if record.get("event_type") == "vpn_recovered" and isinstance(count, int) and count > 0 and t is not None:
                restarts.append({"t": t, "label": f"{count} engine(s) restarted after the VPN came back"})
    outages = [
        {"start": o.start_s(), "end": ts_seconds(o.end) if o.end else None,
         "label": f"VPN outage {o.start[11:19]} → {o.end[11:19] if o.end else 'end of log'}"
                  + (f" ({o.duration_ms / 1000:.1f} s)" if o.duration_ms is not None else "")}
        for o in vpn_outages(signals)
    ]
    health_records = [r for _c, r in reader.merged(sessions, ("health",))
                      if r.get("operation") == "health_monitor_cycle"]
    cycles = health_cycles(health_records)
    step = max(1, len(cycles) // _MAX_POINTS)
    health = [{"t": c.t, "healthy": c.healthy, "unhealthy": c.unhealthy, "total": c.total} for c in cycles[::step]]
    times = [s["t"] for s in starts] + [s["t"] for s in stress] + [c["t"] for c in health]
    times += [o["start"] for o in outages] + [r["t"] for r in restarts]
    t0, t1 = (min(times), max(times)) if times else (0.0, 1.0)
    if t1 <= t0:
        t1 = t0 + 1.0
    return {"threshold_ms": threshold, "t0": t0, "t1": t1, "starts": starts, "stress": stress,
            "outages": outages, "health": health, "restarts": restarts}


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], cls: str) -> str:
    th = "".join(f"<th>{_esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _findings(result: dict[str, Any]) -> str:
    if not result["findings"]:
        return '<p class="verdict ok">No problems found.</p>'
    parts = [f'<p class="verdict">{_esc(result["verdict"])}</p>']
    for finding in result["findings"]:
        chain = "".join(f"<li>{_esc(step)}</li>" for step in finding["chain"])
        output = ""
        if finding.get("output_tail"):
            output = ("<p>The engine's last output lines:</p><pre>"
                      + _esc("\n".join(finding["output_tail"])) + "</pre>")
        if finding.get("request_ids"):
            output += "<p>Request ids: " + ", ".join(f"<code>{_esc(r)}</code>" for r in finding["request_ids"]) \
                + "</p>"
        settings = "".join(f"<li><code>{_esc(s['name'])}</code>: {_esc(s['advice'])}</li>"
                           for s in finding["settings"])
        parts.append(
            f'<section class="finding {_esc(finding["severity"])}"><h3>{_esc(finding["title"])} '
            f'<span class="severity">{_esc(finding["severity"])}</span></h3><ol class="chain">{chain}</ol>'
            f"{output}<p>What to change:</p><ul>{settings}</ul></section>"
        )
    return "".join(parts)


_CSS = """
:root{--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff}
body{font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);
background:var(--bg);margin:0 auto;padding:28px 32px 48px;max-width:1000px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:36px 0 8px;border-bottom:1px solid var(--line);
padding-bottom:4px}h3{font-size:16px;margin:0 0 6px}.muted,.lead{color:var(--muted)}
.finding{border-left:4px solid #e67e22;background:#fff8f0;padding:10px 16px;margin:12px 0;border-radius:4px}
.finding.critical{border-color:#c0392b;background:#fdf3f2}.finding.info{border-color:#2980b9;background:#f2f7fc}
.severity{font-size:12px;font-weight:500;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
.verdict{font-weight:600}.verdict.ok{color:#1a7f37}.chain{margin:4px 0 8px;padding-left:22px}
pre{background:#f6f8fa;border:1px solid var(--line);padding:8px 10px;font-size:12.5px;overflow:auto}
code{font-size:13px}table{border-collapse:collapse;font-size:13.5px;font-variant-numeric:tabular-nums;margin:8px 0}
td,th{border-bottom:1px solid var(--line);padding:4px 10px;text-align:right}th{font-weight:600}
td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}
svg{display:block;max-width:100%;height:auto;font:12px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
svg .tick{fill:#444;font-size:11.5px}svg .axis-label{fill:var(--muted);font-size:12px}
svg circle.provision,svg .stress,svg .restart,svg circle.sweep{cursor:pointer}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:6px 18px;padding:0;margin:6px 0 0;font-size:13px}
.legend li{display:flex;align-items:center;gap:6px}.swatch{display:inline-block;width:14px;height:14px}
.swatch.dot{border-radius:50%;background:var(--c);width:10px;height:10px}
.swatch.line{height:3px;background:var(--c)}.swatch.dash{height:0;border-top:2px dashed var(--c)}
.swatch.band{background:var(--c);opacity:.25}
.swatch.triangle{width:0;height:0;border-left:6px solid transparent;border-right:6px solid transparent;
border-top:10px solid var(--c)}
#chart-tip{position:absolute;z-index:10;background:#1f2328;color:#fff;padding:6px 9px;border-radius:4px;
font-size:12.5px;white-space:pre-line;pointer-events:none;max-width:420px}
"""


def _script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element."""
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


def render_html_report(reader: Reader, sessions: Sequence[Session], proxy_dir: Path | None = None) -> str:
    """The whole report as one HTML string."""
    data = chart_data(reader, sessions)
    report = build_report(reader, sessions)
    findings = diagnose(reader, sessions, proxy_dir)
    ids = ", ".join(s.session_id for s in sessions)
    threshold = data["threshold_ms"]
    starts = data["starts"]
    slow = sum(1 for s in starts if s["ms"] > threshold)
    operations = _table(
        ("category", "operation", "count", "avg (ms)", "min (ms)", "max (ms)", "p50 (ms)", "p95 (ms)", "success"),
        [(op["category"], op["operation"], op["count"], _fmt(op["avg_ms"]), _fmt(op["min_ms"]), _fmt(op["max_ms"]),
          _fmt(op["p50_ms"]), _fmt(op["p95_ms"]),
          "–" if op["success_rate"] is None else f"{op['success_rate'] * 100:.1f}%") for op in report["operations"]],
        "operations",
    )
    stress = (_table(("event type", "events"), list(report["stress"].items()), "stress")
              if report["stress"] else '<p class="muted">None.</p>')
    outages = (_table(("start (UTC)", "end (UTC)", "duration (s)", "signal"),
                      [(o["start"], o["end"] or "still down",
                        "–" if o["duration_ms"] is None else f"{o['duration_ms'] / 1000:.1f}", o["signal"] or "")
                       for o in report["vpn_outages"]], "outages")
               if report["vpn_outages"] else '<p class="muted">None.</p>')
    average = report["average_provisioning_ms"]
    prov_note = "" if starts or data["stress"] else '<p class="muted">No provisioning durations recorded.</p>'
    health_note = "" if data["health"] else '<p class="muted">No health sweeps recorded.</p>'
    script = CHART_JS.read_text(encoding="utf-8")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>aceorch debug report: {_esc(ids)}</title>
<style>{_CSS}</style></head><body>
<h1>aceorch debug report</h1>
<p class="lead">Sessions {_esc(ids)}: {len(starts)} finished starts, {slow} slower than the threshold of
{threshold / 1000.0:.1f} s; average successful start {_fmt(None if average is None else average / 1000.0)} s.</p>
<h2>Findings</h2>
{_findings(findings)}
<h2>Provisioning durations over time</h2>
<p class="muted">Hover a dot for its container, duration and failure reason.</p>
<div id="chart-provisioning" class="chart">{prov_note}</div>
<h2>Engines over time</h2>
<div id="chart-engines" class="chart">{health_note}</div>
<h2>Per-operation latency</h2>
{operations}
<h2>Stress events</h2>
{stress}
<h2>VPN outages</h2>
{outages}
<script id="chart-data" type="application/json">{_script_json(data)}</script>
<script>{script}</script>
<script>
(function () {{
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const byId = (id) => document.getElementById(id);
  if (data.starts.length || data.stress.length) AceCharts.provisioning(byId("chart-provisioning"), data);
  if (data.health.length) AceCharts.engines(document.getElementById("chart-engines"), data);
}})();
</script>
</body></html>
"""
