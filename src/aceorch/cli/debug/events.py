"""``aceorch debug slow``, ``stress``, ``timeline`` and ``export-csv``: record views, streamed when long."""

from __future__ import annotations

import contextlib
import csv
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from aceorch.analysis import export, views
from aceorch.analysis.sessions import AnalysisError
from aceorch.cli.debug.common import (
    DEFAULT_DIR,
    AllOpt,
    DirOpt,
    JsonOpt,
    SessionOpt,
    console,
    err_console,
    fail,
    json_stream,
    open_reader,
    pick_sessions,
    print_json,
)
from aceorch.debuglog.records import CATEGORIES

__all__ = ["slow_cmd", "stress_cmd", "timeline_cmd", "export_csv_cmd"]


def slow_cmd(
    over: Annotated[float, typer.Option("--over", help="Threshold in ms: duration_ms > MS.")] = 10000.0,
    log_dir: DirOpt = DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Records with duration_ms over MS, in every category, in time order."""
    chosen = pick_sessions(log_dir, session, all_sessions)
    with open_reader(chosen) as reader:
        items = views.slow_records(reader, chosen, over_ms=over)
        if as_json:
            json_stream(items)
            return
        out = console()
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


def stress_cmd(
    event_type: Annotated[str | None, typer.Option("--type", help="Only this event_type.")] = None,
    log_dir: DirOpt = DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Stress events, grouped by type and listed in order."""
    chosen = pick_sessions(log_dir, session, all_sessions)
    with open_reader(chosen, ("stress",)) as reader:
        summary = views.stress_summary(reader, chosen, event_type=event_type)
    if as_json:
        print_json(summary)
        return
    out = console()
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


def timeline_cmd(
    types: Annotated[
        list[str] | None, typer.Option("--type", help="event_type/operation (repeatable, shell patterns).")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO time or HH:MM[:SS].")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO time or HH:MM[:SS].")] = None,
    log_dir: DirOpt = DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The merged, time-sorted view of events (the jq sort_by(.timestamp) recipe of the debug-mode guide)."""
    chosen = pick_sessions(log_dir, session, all_sessions)
    with open_reader(chosen) as reader:
        try:
            items = views.timeline(reader, chosen, types=types or (), since=since, until=until)
            if as_json:
                json_stream(items)
                return
            out = console()
            for item in items:
                out.print(
                    f"{item['time']}  {item['category']:<15} {item['type']:<30} {_describe(item)}",
                    markup=False,
                )
        except AnalysisError as exc:
            raise fail(str(exc)) from exc


def export_csv_cmd(
    category: Annotated[
        str, typer.Option("--category", help="A category, or 'all' (merged by time).")
    ] = "provisioning",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="CSV file (default: stdout).")] = None,
    header: Annotated[bool, typer.Option("--header/--no-header", help="Write a header row.")] = True,
    log_dir: DirOpt = DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """CSV of timestamp, operation, duration_ms, success, and more (the jq @csv export of the debug-mode guide)."""
    if category != "all" and category not in CATEGORIES:
        raise fail(f"unknown category {category!r}; one of: all, " + ", ".join(CATEGORIES))
    categories = CATEGORIES if category == "all" else (category,)
    chosen = pick_sessions(log_dir, session, all_sessions)
    with open_reader(chosen, categories) as reader:
        rows = export.csv_rows(reader, chosen, categories=categories)
        if as_json and output is None:
            json_stream(dict(zip(export.CSV_COLUMNS, row, strict=True)) for row in rows)
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
                writer.writerow(export.CSV_COLUMNS)
            for row in rows:
                writer.writerow(row)
                count += 1
    if output is not None:
        if as_json:
            print_json({"output": str(output), "rows": count, "columns": list(export.CSV_COLUMNS)})
        else:
            err_console().print(f"wrote {count} row(s) to {output}")
