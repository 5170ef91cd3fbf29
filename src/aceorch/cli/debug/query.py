"""``aceorch debug sql`` and ``debug export --parquet``: SQL over the category views, and Parquet files."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from aceorch.analysis import sql
from aceorch.analysis.sessions import AnalysisError
from aceorch.cli.debug.common import (
    DEFAULT_DIR,
    AllOpt,
    DirOpt,
    JsonOpt,
    SessionOpt,
    console,
    fail,
    human_size,
    open_reader,
    pick_sessions,
    print_json,
)

__all__ = ["sql_cmd", "export_cmd"]


def _plain(value: Any) -> Any:
    """A DuckDB value as JSON can hold it (times as ISO text, decimals as numbers)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e17:
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(_plain(value), separators=(",", ":"))
    return str(value)


def sql_cmd(
    query: Annotated[str | None, typer.Argument(help="A SQL query; views are named after the categories.")] = None,
    schema: Annotated[bool, typer.Option("--schema", help="List every view and its columns.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV (with a header row).")] = False,
    log_dir: DirOpt = DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run SQL (DuckDB) over the logs: one view per category (provisioning, health, vpn, stress, …) and events."""
    if query is None and not schema:
        raise fail('give a query, e.g. "SELECT operation, count(*) FROM provisioning GROUP BY 1", or --schema')
    chosen = pick_sessions(log_dir, session, all_sessions)
    with open_reader(chosen) as reader:
        try:
            if schema:
                views = sql.view_schema(reader, chosen)
                if as_json:
                    print_json({name: dict(columns) for name, columns in views.items()})
                    return
                table = Table(title="Views (one per category) and their columns")
                table.add_column("view")
                table.add_column("columns (type)")
                for name, columns in views.items():
                    table.add_row(name, ", ".join(f"{c} ({t.lower()})" for c, t in columns))
                console().print(table)
                return
            assert query is not None
            names, rows = sql.run_query(reader, chosen, query)
        except AnalysisError as exc:
            raise fail(str(exc)) from exc
    if as_json:
        print_json([{n: _plain(v) for n, v in zip(names, row, strict=True)} for row in rows])
        return
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([_cell(v) for v in row] for row in rows)
        return
    table = Table(title=f"{len(rows)} row{'s' if len(rows) != 1 else ''}")
    for name in names:
        table.add_column(name)
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    console().print(table)


def export_cmd(
    parquet: Annotated[Path, typer.Option("--parquet", help="Folder to write <category>.parquet files into.")],
    log_dir: DirOpt = DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write one Parquet file per category (for pandas, Spark, Grafana's DuckDB or Parquet sources)."""
    chosen = pick_sessions(log_dir, session, all_sessions)
    with open_reader(chosen) as reader:
        try:
            written = sql.export_parquet(reader, chosen, parquet)
        except (AnalysisError, OSError) as exc:
            raise fail(str(exc)) from exc
    if as_json:
        print_json([{"category": c, "path": str(p), "rows": n} for c, p, n in written])
        return
    table = Table(title=f"Parquet files in {parquet}")
    for column in ("category", "file", "rows", "size"):
        table.add_column(column, justify="right" if column in ("rows", "size") else "left")
    for category, path, rows in written:
        table.add_row(category, path.name, str(rows), human_size(path.stat().st_size))
    console().print(table)
