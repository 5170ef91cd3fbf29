"""``aceorch debug correlate``, ``diagnose`` and ``html-report``: joined latencies, findings, a report page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from aceorch.analysis.correlate import correlate
from aceorch.analysis.diagnose import NO_PROBLEMS, diagnose
from aceorch.analysis.html import render_html_report
from aceorch.cli.debug.common import (
    DEFAULT_DIR,
    AllOpt,
    DirOpt,
    JsonOpt,
    ProxyDirOpt,
    SessionOpt,
    console,
    fmt_ms,
    human_size,
    open_reader,
    pick_sessions,
    print_json,
    proxy_dir_for,
)

__all__ = ["correlate_cmd", "diagnose_cmd", "html_report_cmd"]


def correlate_cmd(
    proxy_dir: ProxyDirOpt = None,
    log_dir: DirOpt = DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Join proxy provision_request records with orchestrator starts; print each latency and viewers' TTFB."""
    chosen = pick_sessions(log_dir, session, all_sessions)
    proxy_dir = proxy_dir_for(log_dir, proxy_dir)
    with open_reader(chosen, ("provisioning",)) as reader:
        result = correlate(reader, chosen, proxy_dir)
    if as_json:
        print_json(result)
        return
    out = console()
    table = Table(title="Proxy request → orchestrator begin → engine ready")
    for column in (
        "proxy request",
        "request id",
        "matched by",
        "orch begin",
        "proxy→orch",
        "begin→ready",
        "total",
        "viewer TTFB",
        "outcome",
    ):
        table.add_column(column)
    for r in result["requests"]:
        table.add_row(
            str(r["proxy_time"]),
            str(r["request_id"] or ""),
            r["method"],
            str(r["orchestrator_begin"] or "–"),
            fmt_ms(r["proxy_to_orchestrator_ms"], 1),
            fmt_ms(r["begin_to_ready_ms"], 1),
            fmt_ms(r["proxy_to_ready_ms"], 1),
            fmt_ms(r["viewer_ttfb_ms"], 1),
            str(r["outcome"] or "–"),
        )
    out.print(table)
    _print_viewers(out, result)
    m = result["matched"]
    out.print(
        f"{result['proxy_requests']} proxy request(s): {m['request_id']} by request_id, "
        f"{m['time_window']} by the 1 s window, {m['unmatched']} unmatched; "
        f"{result['orchestrator_starts_without_proxy_request']} orchestrator start(s) without a proxy request"
    )
    if result.get("proxy_shape") == "acexy":
        out.print("  acexy's records (no provision_request, no request id): paired by the 1 s window only")
    for name, stats in result["latency"].items():
        if stats["count"]:
            out.print(
                f"  {name}: avg {fmt_ms(stats['avg_ms'], 1)} ms, p50 {fmt_ms(stats['p50_ms'], 1)} ms, "
                f"p95 {fmt_ms(stats['p95_ms'], 1)} ms, max {fmt_ms(stats['max_ms'], 1)} ms"
            )


#: Viewer requests listed in the table output at most (``--json`` has them all).
VIEWER_ROWS = 200


def _print_viewers(out: Console, result: dict[str, Any]) -> None:
    """The viewers' side: each viewer request's time to first byte, or the status it was refused with."""
    rows = result["viewer_requests"]
    if not rows:
        return
    table = Table(title="Viewer requests: time to first byte (ms)")
    for column in ("started", "request id", "stream", "TTFB", "status", "provisioned"):
        table.add_column(column)
    for v in rows[:VIEWER_ROWS]:
        status = "" if v["status"] is None else str(v["status"])
        if v["error_code"]:
            status += f" {v['error_code']}"
        table.add_row(str(v["started"]), str(v["request_id"] or ""), str(v["stream_key"] or "")[:16],
                      fmt_ms(v["ttfb_ms"], 1), status.strip() or ("200" if v["ttfb_ms"] is not None else "–"),
                      "yes" if v["provisioned"] else "")
    out.print(table)
    if len(rows) > VIEWER_ROWS:
        out.print(f"… {len(rows) - VIEWER_ROWS} more viewer requests (--json lists them all)")
    n = result["viewers"]
    out.print(f"{n['total']} viewer request(s): {n['served']} got a first byte, {n['refused']} refused, "
              f"{n['provisioned']} asked for an engine")


def diagnose_cmd(
    log_dir: DirOpt = DEFAULT_DIR,
    proxy_dir: ProxyDirOpt = None,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Findings with evidence, timestamps, a causal chain and the setting to change; viewers' waits too."""
    chosen = pick_sessions(log_dir, session, all_sessions)
    found = proxy_dir_for(log_dir, proxy_dir)
    with open_reader(chosen) as reader:
        result = diagnose(reader, chosen, found)
    if as_json:
        print_json(result)
        return
    out = console()
    proxy = result.get("proxy")
    if proxy is not None and proxy["viewer_requests"]:
        where = "the orchestrator's session (embedded proxy)" if proxy["embedded"] else proxy["proxy_dir"]
        out.print(f"Viewers: {proxy['viewer_requests']} request(s) in {where}: {proxy['served']} served, "
                  f"{proxy['refused']} refused", markup=False)
    if not result["findings"]:
        out.print(f"[green]{NO_PROBLEMS}[/green] in {', '.join(result['sessions'])}.")
        return
    colours = {"critical": "red", "warning": "yellow", "info": "blue"}
    for index, finding in enumerate(result["findings"], 1):
        colour = colours.get(finding["severity"], "white")
        out.print(f"\n[bold {colour}]{index}. {finding['title']}[/] ({finding['severity']})")
        for step in finding["chain"]:
            out.print(f"   → {step}", markup=False)
        ids = finding.get("request_ids") or []
        if ids:
            more = f" and {len(ids) - 20} more (--json lists them all)" if len(ids) > 20 else ""
            out.print(f"   Request ids: {', '.join(ids[:20])}{more}", markup=False)
        if finding["evidence"]:
            out.print("   Evidence:")
            for e in finding["evidence"]:
                out.print(
                    f"     {e.get('timestamp')}  {e.get('type')}  {e.get('detail') or ''}", markup=False
                )
        if finding.get("output_tail"):
            out.print("   The engine's last output lines (recorded before its container was removed):")
            for line in finding["output_tail"]:
                out.print(f"     | {line}", markup=False)
        out.print("   Change:")
        for s in finding["settings"]:
            out.print(f"     {s['name']}: {s['advice']}", markup=False)


def html_report_cmd(
    output: Annotated[Path, typer.Option("-o", "--output", help="The HTML file to write.")],
    log_dir: DirOpt = DEFAULT_DIR,
    proxy_dir: ProxyDirOpt = None,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """One self-contained HTML file with plots (no network loads); its findings include the viewers'."""
    chosen = pick_sessions(log_dir, session, all_sessions)
    found = proxy_dir_for(log_dir, proxy_dir)
    with open_reader(chosen, passes=2) as reader:
        page = render_html_report(reader, chosen, found)
    output.write_text(page, encoding="utf-8")
    if as_json:
        print_json(
            {"output": str(output), "bytes": len(page.encode()), "sessions": [s.session_id for s in chosen]}
        )
    else:
        console().print(f"wrote {output} ({human_size(len(page.encode()))})")
