"""``aceorch debug sessions`` and ``report``: the folder's sessions, and per-operation latency tables."""

from __future__ import annotations

from rich.table import Table

from aceorch.analysis import views
from aceorch.analysis.report import build_report
from aceorch.analysis.sessions import AnalysisError, discover_sessions, select_sessions
from aceorch.cli.debug.common import (
    DEFAULT_DIR,
    AllOpt,
    DirOpt,
    JsonOpt,
    SessionOpt,
    console,
    err_console,
    fail,
    fmt_ms,
    fmt_pct,
    human_size,
    open_reader,
    pick_sessions,
    print_json,
)

__all__ = ["sessions_cmd", "report_cmd"]


def sessions_cmd(
    log_dir: DirOpt = DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """List sessions: start, end, duration, records per category, size."""
    try:
        found = discover_sessions(log_dir)
        chosen = select_sessions(found, session_id=session, all_sessions=False) if session else found
    except AnalysisError as exc:
        raise fail(str(exc)) from exc
    with open_reader(chosen) as reader:
        rows = views.session_summaries(reader, chosen)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"Debug sessions in {log_dir}")
    for column in ("session", "start", "end", "duration", "records", "per category", "size"):
        table.add_column(column, justify="right" if column in ("duration", "records", "size") else "left")
    for row in rows:
        per = ", ".join(f"{k}={v}" for k, v in row["records"].items() if v)
        duration = "–" if row["duration_s"] is None else f"{row['duration_s']:.1f}s"
        end = row["end"] + ("" if row["ended_cleanly"] else " (open)")
        table.add_row(
            row["session_id"],
            row["start"],
            end,
            duration,
            str(row["total_records"]),
            per,
            human_size(row["size_bytes"]),
        )
    console().print(table)


def report_cmd(
    log_dir: DirOpt = DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Per-operation latency (count, avg, min, max, p50, p95, success rate), stress, VPN outages, health."""
    chosen = pick_sessions(log_dir, session, all_sessions)
    with open_reader(chosen) as reader:
        report = build_report(reader, chosen)
    if as_json:
        print_json(report)
        return
    out = console()
    out.print(f"[bold]Performance Report[/bold] — sessions {', '.join(report['sessions'])}")
    avg = report["average_provisioning_ms"]
    out.print(f"Average provisioning time (start_acestream_success): {fmt_ms(avg)} ms")
    table = Table(title="Operations (all records)")
    for column in (
        "category",
        "operation",
        "count",
        "avg ms",
        "min ms",
        "max ms",
        "p50 ms",
        "p95 ms",
        "success",
    ):
        table.add_column(column, justify="left" if column in ("category", "operation") else "right")
    for op in report["operations"]:
        table.add_row(
            op["category"],
            op["operation"],
            str(op["count"]),
            fmt_ms(op["avg_ms"]),
            fmt_ms(op["min_ms"]),
            fmt_ms(op["max_ms"]),
            fmt_ms(op["p50_ms"]),
            fmt_ms(op["p95_ms"]),
            fmt_pct(op["success_rate"]),
        )
    out.print(table)
    guide = Table(title="Successful entries with a duration (the debug-mode guide's Performance Report, in ms)")
    for column in ("category", "operation", "count", "avg ms", "min ms", "max ms"):
        guide.add_column(column, justify="left" if column in ("category", "operation") else "right")
    for op in report["operations"]:
        ok = op["successful"]
        if ok["count"]:
            guide.add_row(
                op["category"],
                op["operation"],
                str(ok["count"]),
                fmt_ms(ok["avg_ms"]),
                fmt_ms(ok["min_ms"]),
                fmt_ms(ok["max_ms"]),
            )
    out.print(guide)
    api = report.get("engine_api")
    if api:
        calls = Table(title="Engine API calls (http.server operation): readiness polling during starts vs. the rest")
        for column in ("calls", "count", "failed or unanswered", "what a failure means"):
            calls.add_column(column, justify="right" if column in ("count", "failed or unanswered") else "left")
        calls.add_row("readiness polls while an engine starts", str(api["readiness_polls"]),
                      str(api["readiness_polls_unanswered"]), "expected: the engine was not up yet")
        calls.add_row("other calls (health probes, stream API)", str(api["other_calls"]),
                      str(api["other_calls_failed"]), "real: a running engine did not answer")
        out.print(calls)
    stress = Table(title="Stress events by type")
    stress.add_column("event_type")
    stress.add_column("events", justify="right")
    for kind, count in report["stress"].items():
        stress.add_row(kind, str(count))
    out.print(stress if report["stress"] else "Stress events: none")
    if report["vpn_outages"]:
        vpn = Table(title="VPN outages")
        for column in ("start (UTC)", "end (UTC)", "duration (s)", "signal", "engines restarted"):
            vpn.add_column(column)
        for o in report["vpn_outages"]:
            vpn.add_row(
                o["start"],
                o["end"] or "(still down)",
                "–" if o["duration_ms"] is None else f"{o['duration_ms'] / 1000:.1f}",
                str(o["signal"] or ""),
                "" if o["engines_restarted"] is None else str(o["engines_restarted"]),
            )
        out.print(vpn)
    else:
        out.print("VPN outages: none")
    health = report["health"]
    if health["cycles"]:
        ht = Table(
            title=f"Health over time ({health['cycles']} sweeps, healthy {fmt_pct(health['healthy_ratio'])})"
        )
        for column in (
            "from (UTC)",
            "to (UTC)",
            "sweeps",
            "healthy engines (avg)",
            "unhealthy engines (avg)",
            "engines (avg)",
            "healthy ratio",
            "worst sweep",
        ):
            ht.add_column(column, justify="left" if column in ("from (UTC)", "to (UTC)") else "right")
        for b in health["over_time"]:
            ht.add_row(
                b["start"][11:19],
                b["end"][11:19],
                str(b["cycles"]),
                f"{b['healthy_avg']:.1f}",
                f"{b['unhealthy_avg']:.1f}",
                f"{b['total_avg']:.1f}",
                fmt_pct(b["healthy_ratio"]),
                fmt_pct(b["min_healthy_ratio"]),
            )
        out.print(ht)
    else:
        out.print("Health sweeps: none")
    if report["bad_lines"]:
        err_console().print(f"[yellow]{report['bad_lines']} malformed line(s) skipped[/yellow]")
