"""``aceorch debug …``: offline analysis of debug-mode logs (debug-log.md "Analysis").

Every command reads a log folder (``--dir``, default ``$DEBUG_LOG_DIR`` or ``./debug_logs``), one session
(``--session ID``, default the latest) or ``--all`` of them, prints rich tables, or JSON with ``--json``. The
work is done by the pure functions of :mod:`aceorch.debuglog.analysis` and its siblings; this module only
parses options, draws a progress bar on large inputs (over ~50 MB) and renders results. Commands whose
output can be as long as the log (``slow``, ``timeline``, ``export-csv``) stream it instead of building it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from aceorch.debuglog import analysis, analysis_correlate, analysis_diagnose, analysis_files, htmlreport

__all__ = ["app"]

app = typer.Typer(
    help="Analyse debug-mode logs offline: reports, slow operations, stress, timeline, diagnosis.",
    no_args_is_help=True,
)

#: Inputs larger than this get a progress bar on stderr.
PROGRESS_THRESHOLD_BYTES = 50 * 1024 * 1024

DirOpt = Annotated[
    Path,
    typer.Option("--dir", envvar="DEBUG_LOG_DIR", help="Debug log folder.", show_default=True),
]
SessionOpt = Annotated[str | None, typer.Option("--session", help="Session id (default: the latest).")]
AllOpt = Annotated[bool, typer.Option("--all", help="Every session in the folder.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]

_DEFAULT_DIR = Path("./debug_logs")


def _out() -> Console:
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160, highlight=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False)


def _fail(message: str) -> typer.Exit:
    _err().print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


def _sessions(log_dir: Path, session: str | None, all_sessions: bool) -> list[analysis.Session]:
    try:
        found = analysis.discover_sessions(log_dir)
        return analysis.select_sessions(found, session_id=session, all_sessions=all_sessions)
    except analysis.AnalysisError as exc:
        raise _fail(str(exc)) from exc


@contextlib.contextmanager
def _reader(
    sessions: Sequence[analysis.Session], categories: Iterable[str] | None = None, passes: int = 1
) -> Iterator[analysis.Reader]:
    """A reader with a progress bar when the input is large (``passes`` = how often files are read)."""
    total = analysis.total_size(sessions, categories) * passes
    if total < PROGRESS_THRESHOLD_BYTES:
        yield analysis.Reader()
        return
    with Progress(
        TextColumn("reading logs"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=_err(),
        transient=True,
    ) as progress:
        task = progress.add_task("read", total=total)

        def advance(n: int) -> None:
            progress.advance(task, n)

        yield analysis.Reader(progress=advance)


def _json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _json_stream(items: Iterable[Any]) -> None:
    """A JSON array written item by item, so memory does not grow with the output."""
    write = sys.stdout.write
    write("[")
    first = True
    for item in items:
        write("\n  " if first else ",\n  ")
        write(json.dumps(item, ensure_ascii=False))
        first = False
    write("\n]\n" if not first else "]\n")
    sys.stdout.flush()


def _ms(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


# ----------------------------------------------------------------------------------------------------------
# sessions, report
# ----------------------------------------------------------------------------------------------------------


@app.command("sessions")
def sessions_cmd(
    log_dir: DirOpt = _DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """List sessions: start, end, duration, records per category, size."""
    try:
        found = analysis.discover_sessions(log_dir)
        chosen = analysis.select_sessions(found, session_id=session, all_sessions=False) if session else found
    except analysis.AnalysisError as exc:
        raise _fail(str(exc)) from exc
    with _reader(chosen) as reader:
        rows = analysis.session_summaries(reader, chosen)
    if as_json:
        _json(rows)
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
            _size(row["size_bytes"]),
        )
    _out().print(table)


@app.command("report")
def report_cmd(
    log_dir: DirOpt = _DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Per-operation latency (count, avg, min, max, p50, p95, success rate), stress, VPN outages, health."""
    chosen = _sessions(log_dir, session, all_sessions)
    with _reader(chosen) as reader:
        report = analysis.build_report(reader, chosen, workers=None)
    if as_json:
        _json(report)
        return
    out = _out()
    out.print(f"[bold]Performance Report[/bold] — sessions {', '.join(report['sessions'])}")
    avg = report["average_provisioning_ms"]
    out.print(f"Average provisioning time (start_acestream_success): {_ms(avg)} ms")
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
            _ms(op["avg_ms"]),
            _ms(op["min_ms"]),
            _ms(op["max_ms"]),
            _ms(op["p50_ms"]),
            _ms(op["p95_ms"]),
            _pct(op["success_rate"]),
        )
    out.print(table)
    seed = Table(title="Successful entries with a duration (the seed's Performance Report)")
    for column in ("category", "operation", "count", "avg ms", "min ms", "max ms"):
        seed.add_column(column, justify="left" if column in ("category", "operation") else "right")
    for op in report["operations"]:
        ok = op["successful"]
        if ok["count"]:
            seed.add_row(
                op["category"],
                op["operation"],
                str(ok["count"]),
                _ms(ok["avg_ms"]),
                _ms(ok["min_ms"]),
                _ms(ok["max_ms"]),
            )
    out.print(seed)
    stress = Table(title="Stress events by type")
    stress.add_column("event_type")
    stress.add_column("count", justify="right")
    for kind, count in report["stress"].items():
        stress.add_row(kind, str(count))
    out.print(stress if report["stress"] else "Stress events: none")
    if report["vpn_outages"]:
        vpn = Table(title="VPN outages")
        for column in ("start", "end", "duration", "signal", "engines restarted"):
            vpn.add_column(column)
        for o in report["vpn_outages"]:
            vpn.add_row(
                o["start"],
                o["end"] or "(still down)",
                "–" if o["duration_ms"] is None else f"{o['duration_ms'] / 1000:.1f}s",
                str(o["signal"] or ""),
                "" if o["engines_restarted"] is None else str(o["engines_restarted"]),
            )
        out.print(vpn)
    else:
        out.print("VPN outages: none")
    health = report["health"]
    if health["cycles"]:
        ht = Table(
            title=f"Health over time ({health['cycles']} sweeps, healthy {_pct(health['healthy_ratio'])})"
        )
        for column in (
            "from",
            "to",
            "sweeps",
            "healthy",
            "unhealthy",
            "total",
            "healthy ratio",
            "worst sweep",
        ):
            ht.add_column(column, justify="left" if column in ("from", "to") else "right")
        for b in health["over_time"]:
            ht.add_row(
                b["start"][11:19],
                b["end"][11:19],
                str(b["cycles"]),
                f"{b['healthy_avg']:.1f}",
                f"{b['unhealthy_avg']:.1f}",
                f"{b['total_avg']:.1f}",
                _pct(b["healthy_ratio"]),
                _pct(b["min_healthy_ratio"]),
            )
        out.print(ht)
    else:
        out.print("Health sweeps: none")
    if report["bad_lines"]:
        _err().print(f"[yellow]{report['bad_lines']} malformed line(s) skipped[/yellow]")


# ----------------------------------------------------------------------------------------------------------
# slow, stress, timeline, export-csv
# ----------------------------------------------------------------------------------------------------------


@app.command("slow")
def slow_cmd(
    over: Annotated[float, typer.Option("--over", help="Threshold in ms: duration_ms > MS.")] = 10000.0,
    log_dir: DirOpt = _DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Records with duration_ms over MS, in every category, in time order."""
    chosen = _sessions(log_dir, session, all_sessions)
    with _reader(chosen) as reader:
        items = analysis.slow_records(reader, chosen, over_ms=over)
        if as_json:
            _json_stream(items)
            return
        out = _out()
        count = 0
        for item in items:
            count += 1
            detail = " ".join(
                f"{k}={item[k]}"
                for k in ("container_name", "success", "error")
                if item.get(k) not in (None, "")
            )
            out.print(
                f"{item['timestamp']}  {item['category']:<13} {item['type'] or '?':<28} "
                f"{item['duration_ms']:>12,.2f} ms  {detail}",
                markup=False,
            )
        out.print(f"{count} record(s) with duration_ms > {over:g}")


@app.command("stress")
def stress_cmd(
    event_type: Annotated[str | None, typer.Option("--type", help="Only this event_type.")] = None,
    log_dir: DirOpt = _DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Stress events, grouped by type and listed in order."""
    chosen = _sessions(log_dir, session, all_sessions)
    with _reader(chosen, ("stress",)) as reader:
        summary = analysis.stress_summary(reader, chosen, event_type=event_type)
    if as_json:
        _json(summary)
        return
    out = _out()
    if not summary["events"]:
        out.print("No stress events.")
        return
    table = Table(title="Stress events by type")
    for column in ("event_type", "severity", "count", "resolved", "resolved total", "first", "last"):
        table.add_column(column)
    for g in summary["groups"]:
        table.add_row(
            g["event_type"],
            str(g["severity"] or ""),
            str(g["count"]),
            str(g["resolved"]),
            f"{g['resolved_duration_ms'] / 1000:.1f}s" if g["resolved"] else "–",
            str(g["first"] or ""),
            str(g["last"] or ""),
        )
    out.print(table)
    events = Table(title="Events")
    for column in ("time", "event_type", "severity", "description"):
        events.add_column(column)
    for e in summary["events"]:
        events.add_row(
            str(e["timestamp"]), e["event_type"], str(e["severity"] or ""), str(e["description"] or "")
        )
    out.print(events)


def _describe(item: dict[str, Any]) -> str:
    if item.get("desc"):
        return str(item["desc"])
    parts = []
    for key in ("container_name", "reason", "error"):
        if item.get(key):
            parts.append(f"{key}={item[key]}")
    if item.get("duration_ms") is not None:
        parts.append(f"{item['duration_ms']:.2f} ms")
    if item.get("success") is False:
        parts.append("failed")
    return " ".join(parts)


@app.command("timeline")
def timeline_cmd(
    types: Annotated[
        list[str] | None, typer.Option("--type", help="event_type/operation (repeatable, shell patterns).")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO time or HH:MM[:SS].")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO time or HH:MM[:SS].")] = None,
    log_dir: DirOpt = _DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The merged, time-sorted view of events (the seed's sort_by(.timestamp) recipe)."""
    chosen = _sessions(log_dir, session, all_sessions)
    with _reader(chosen) as reader:
        try:
            items = analysis.timeline(reader, chosen, types=types or (), since=since, until=until)
            if as_json:
                _json_stream(items)
                return
            out = _out()
            for item in items:
                out.print(
                    f"{item['time']}  {item['category']:<15} {item['type']:<30} {_describe(item)}",
                    markup=False,
                )
        except analysis.AnalysisError as exc:
            raise _fail(str(exc)) from exc


@app.command("export-csv")
def export_csv_cmd(
    category: Annotated[
        str, typer.Option("--category", help="A category, or 'all' (merged by time).")
    ] = "provisioning",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="CSV file (default: stdout).")] = None,
    header: Annotated[bool, typer.Option("--header/--no-header", help="Write a header row.")] = True,
    log_dir: DirOpt = _DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """CSV of timestamp, operation, duration_ms, success, and more (the seed's jq @csv export)."""
    if category != "all" and category not in analysis.CATEGORIES:
        raise _fail(f"unknown category {category!r}; one of: all, " + ", ".join(analysis.CATEGORIES))
    categories = analysis.CATEGORIES if category == "all" else (category,)
    chosen = _sessions(log_dir, session, all_sessions)
    with _reader(chosen, categories) as reader:
        rows = analysis.csv_rows(reader, chosen, categories=categories)
        if as_json and output is None:
            _json_stream(dict(zip(analysis.CSV_COLUMNS, row, strict=True)) for row in rows)
            return
        count = 0
        with contextlib.ExitStack() as stack:
            handle = (
                stack.enter_context(output.open("w", newline="", encoding="utf-8"))
                if output is not None
                else sys.stdout
            )
            writer = csv.writer(handle, lineterminator="\n")
            if header:
                writer.writerow(analysis.CSV_COLUMNS)
            for row in rows:
                writer.writerow(row)
                count += 1
    if output is not None:
        if as_json:
            _json({"output": str(output), "rows": count, "columns": list(analysis.CSV_COLUMNS)})
        else:
            _err().print(f"wrote {count} row(s) to {output}")


# ----------------------------------------------------------------------------------------------------------
# correlate, diagnose, html-report
# ----------------------------------------------------------------------------------------------------------


@app.command("correlate")
def correlate_cmd(
    proxy_dir: Annotated[Path, typer.Option("--proxy-dir", help="The proxy's debug log folder.")],
    log_dir: DirOpt = _DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Join proxy provision_request records with orchestrator starts; print each latency."""
    if not proxy_dir.is_dir():
        raise _fail(f"proxy log folder not found: {proxy_dir}")
    chosen = _sessions(log_dir, session, all_sessions)
    with _reader(chosen, ("provisioning",)) as reader:
        result = analysis_correlate.correlate(reader, chosen, proxy_dir)
    if as_json:
        _json(result)
        return
    out = _out()
    table = Table(title="Proxy request → orchestrator begin → engine ready")
    for column in (
        "proxy request",
        "request id",
        "matched by",
        "orch begin",
        "proxy→orch",
        "begin→ready",
        "total",
        "outcome",
    ):
        table.add_column(column)
    for r in result["requests"]:
        table.add_row(
            str(r["proxy_time"]),
            str(r["request_id"] or ""),
            r["method"],
            str(r["orchestrator_begin"] or "–"),
            _ms(r["proxy_to_orchestrator_ms"], 1),
            _ms(r["begin_to_ready_ms"], 1),
            _ms(r["proxy_to_ready_ms"], 1),
            str(r["outcome"] or "–"),
        )
    out.print(table)
    m = result["matched"]
    out.print(
        f"{result['proxy_requests']} proxy request(s): {m['request_id']} by request_id, "
        f"{m['time_window']} by the 1 s window, {m['unmatched']} unmatched; "
        f"{result['orchestrator_starts_without_proxy_request']} orchestrator start(s) without a proxy request"
    )
    for name, stats in result["latency"].items():
        if stats["count"]:
            out.print(
                f"  {name}: avg {_ms(stats['avg_ms'], 1)} ms, p50 {_ms(stats['p50_ms'], 1)} ms, "
                f"p95 {_ms(stats['p95_ms'], 1)} ms, max {_ms(stats['max_ms'], 1)} ms"
            )


@app.command("diagnose")
def diagnose_cmd(
    log_dir: DirOpt = _DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Findings with evidence, timestamps, a causal chain and the setting to change."""
    chosen = _sessions(log_dir, session, all_sessions)
    with _reader(chosen) as reader:
        result = analysis_diagnose.diagnose(reader, chosen)
    if as_json:
        _json(result)
        return
    out = _out()
    if not result["findings"]:
        out.print(f"[green]{analysis_diagnose.NO_PROBLEMS}[/green] in {', '.join(result['sessions'])}.")
        return
    colours = {"critical": "red", "warning": "yellow", "info": "blue"}
    for index, finding in enumerate(result["findings"], 1):
        colour = colours.get(finding["severity"], "white")
        out.print(f"\n[bold {colour}]{index}. {finding['title']}[/] ({finding['severity']})")
        for step in finding["chain"]:
            out.print(f"   → {step}", markup=False)
        if finding["evidence"]:
            out.print("   Evidence:")
            for e in finding["evidence"]:
                out.print(
                    f"     {e.get('timestamp')}  {e.get('type')}  {e.get('detail') or ''}", markup=False
                )
        out.print("   Change:")
        for s in finding["settings"]:
            out.print(f"     {s['name']}: {s['advice']}", markup=False)


@app.command("html-report")
def html_report_cmd(
    output: Annotated[Path, typer.Option("-o", "--output", help="The HTML file to write.")],
    log_dir: DirOpt = _DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """One self-contained HTML file with plots (no network loads)."""
    chosen = _sessions(log_dir, session, all_sessions)
    with _reader(chosen, passes=2) as reader:
        page = htmlreport.render_html_report(reader, chosen)
    output.write_text(page, encoding="utf-8")
    if as_json:
        _json(
            {"output": str(output), "bytes": len(page.encode()), "sessions": [s.session_id for s in chosen]}
        )
    else:
        _out().print(f"wrote {output} ({_size(len(page.encode()))})")


# ----------------------------------------------------------------------------------------------------------
# archive, prune
# ----------------------------------------------------------------------------------------------------------


@app.command("archive")
def archive_cmd(
    output: Annotated[Path | None, typer.Option("-o", "--output", help="tar.gz to write.")] = None,
    include_current: Annotated[
        bool, typer.Option("--include-current", help="Also archive the newest (possibly live) session.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
    log_dir: DirOpt = _DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """tar.gz of sessions (default: all but the newest, which may still be written)."""
    try:
        found = analysis.discover_sessions(log_dir)
        if session is not None:
            chosen = analysis.select_sessions(found, session_id=session, all_sessions=False)
        else:
            chosen = list(found) if include_current else list(found[:-1])
        if not chosen:
            raise analysis.AnalysisError(
                "nothing to archive: only the current session exists (pass --include-current)"
            )
        target = output or Path(analysis_files.default_archive_name(chosen))
        result = analysis_files.archive_sessions(log_dir, chosen, target, overwrite=force)
    except analysis.AnalysisError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        _json(result)
    else:
        _out().print(
            f"archived {len(result['sessions'])} session(s), {len(result['members'])} file(s) "
            f"({_size(result['input_bytes'])}) to {result['output']} ({_size(result['archive_bytes'])})"
        )


@app.command("prune")
def prune_cmd(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age: 7d, 12h, 30m (bare number = days).")
    ] = "7d",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be deleted.")] = False,
    include_current: Annotated[
        bool, typer.Option("--include-current", help="The newest session may be deleted too.")
    ] = False,
    log_dir: DirOpt = _DEFAULT_DIR,
    as_json: JsonOpt = False,
    now: Annotated[str | None, typer.Option("--now", hidden=True, help="Reference time (tests).")] = None,
) -> None:
    """Delete sessions older than an age, by the date in their id (never the newest without asking)."""
    try:
        age = analysis_files.parse_age(older_than)
        found = analysis.discover_sessions(log_dir)
        reference = analysis.parse_timestamp(now) if now else datetime.now(UTC)
        plan = analysis_files.prune_plan(
            found, older_than=age, now=reference, include_current=include_current
        )
        result = analysis_files.prune_sessions(plan, dry_run=dry_run)
    except analysis.AnalysisError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        _json(result)
        return
    out = _out()
    verb = "would delete" if dry_run else "deleted"
    for s in result["sessions"]:
        out.print(f"{verb} {s['session_id']} ({len(s['files'])} file(s), {_size(s['bytes'])})")
    out.print(f"{verb} {len(result['sessions'])} session(s), {_size(result['bytes'])}")
