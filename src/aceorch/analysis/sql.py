"""``aceorch debug sql`` and ``debug export --parquet``: the session files as SQL views, one per category.

Each category of the selected sessions becomes a DuckDB view of the same name (``provisioning``, ``health``,
``vpn``, ``stress``, ``performance``, …) over its files, read with ``union_by_name`` (records of one category
differ in their fields). Fields the record schema declares get the schema's type; other fields get the type
DuckDB detects, and nested objects stay JSON. The view ``events`` is every category at once with the few
columns a timeline needs (``category``, ``timestamp``, ``seq``, ``type``, ``description``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aceorch.analysis.reader import Reader, json_source, sql_literal
from aceorch.analysis.sessions import AnalysisError, Session
from aceorch.debuglog import records as schema

__all__ = ["declared_types", "create_views", "run_query", "view_schema", "export_parquet"]

# Whole files are sampled for their fields below this many bytes per category; above it, DuckDB's default.
_FULL_SAMPLE_BYTES = 64 << 20

_DECLARED: dict[str, tuple[type, ...]] = {
    "session": (schema.SessionStartRecord, schema.SessionEndRecord),
    "provisioning": (schema.ProvisioningRecord,),
    "stress": (schema.StressRecord, schema.StressResolvedRecord),
    "errors": (schema.ErrorRecord,),
}
_SQL_TYPES: dict[type, str] = {str: "VARCHAR", int: "BIGINT", float: "DOUBLE", bool: "BOOLEAN"}


def _sql_type(hint: Any) -> str:
    """The DuckDB type of one field annotation (``X | None`` is ``X``; objects and lists are JSON)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        kinds = [a for a in typing.get_args(hint) if a is not type(None)]
        return _sql_type(kinds[0]) if len(kinds) == 1 else "JSON"
    if typing.get_origin(hint) is typing.Literal:
        values = typing.get_args(hint)
        return _SQL_TYPES.get(type(values[0]), "JSON") if values else "JSON"
    return _SQL_TYPES.get(hint, "JSON")


def declared_types(category: str) -> dict[str, str]:
    """Field name -> DuckDB type of the fields the record schema declares for ``category``."""
    out: dict[str, str] = {}
    for shape in (schema.CommonFields, *_DECLARED.get(category, ())):
        for name, hint in typing.get_type_hints(shape).items():
            out.setdefault(name, _sql_type(hint))
    return out


def _present(paths: Sequence[Path]) -> list[Path]:
    out = []
    for path in paths:
        try:
            if path.stat().st_size > 0:
                out.append(path)
        except OSError:
            pass
    return out


def _columns(reader: Reader, category: str, paths: list[Path]) -> dict[str, str]:
    """The view's columns: detected from the files, with the schema's types where it declares them."""
    declared = declared_types(category)
    size = sum(p.stat().st_size for p in paths)
    sample = "-1" if size < _FULL_SAMPLE_BYTES else "20480"
    files = ", ".join(sql_literal(str(p)) for p in paths)
    described = reader.query(
        f"DESCRIBE SELECT * FROM read_json([{files}], format='newline_delimited', union_by_name=true, "
        f"ignore_errors=true, sample_size={sample})"
    )
    columns: dict[str, str] = {name: declared[name] for name in schema.COMMON_FIELDS}
    for name, detected, *_rest in described:
        kind = declared.get(name)
        if kind is None:
            kind = "JSON" if any(t in detected for t in ("STRUCT", "MAP", "[]")) else detected
            kind = "VARCHAR" if kind == "NULL" else kind
        columns[name] = kind
    return columns


def create_views(reader: Reader, sessions: Sequence[Session]) -> dict[str, dict[str, str]]:
    """Create one view per category of ``sessions`` (and ``events``); returns each view's columns."""
    categories: list[str] = list(schema.CATEGORIES)
    for session in sessions:
        categories.extend(c for c in session.files if c not in categories)
    views: dict[str, dict[str, str]] = {}
    for category in categories:
        paths = _present([p for p in (s.path(category) for s in sessions) if p is not None])
        if paths:
            columns = _columns(reader, category, paths)
            source = json_source(paths, columns)
            reader.query(f'CREATE OR REPLACE VIEW "{category}" AS SELECT * FROM {source}')
        else:
            columns = declared_types(category)
            empty = ", ".join(f'NULL::{kind} AS "{name}"' for name, kind in columns.items())
            reader.query(f'CREATE OR REPLACE VIEW "{category}" AS SELECT {empty} WHERE false')
        views[category] = columns
    parts = []
    for category, columns in views.items():
        kind = [f'"{c}"' for c in ("event_type", "operation") if c in columns]
        type_sql = f"coalesce({', '.join(kind)})::VARCHAR" if kind else "NULL::VARCHAR"
        desc = '"description"::VARCHAR' if "description" in columns else "NULL::VARCHAR"
        parts.append(
            f"SELECT {sql_literal(category)} AS category, timestamp, seq, {type_sql} AS type, "
            f'{desc} AS description FROM "{category}"'
        )
    reader.query("CREATE OR REPLACE VIEW events AS " + " UNION ALL ".join(parts))
    views["events"] = {
        "category": "VARCHAR", "timestamp": "VARCHAR", "seq": "BIGINT", "type": "VARCHAR", "description": "VARCHAR"
    }
    return views


def view_schema(reader: Reader, sessions: Sequence[Session]) -> dict[str, list[tuple[str, str]]]:
    """Every view and its ``(column, type)`` list, as ``debug sql --schema`` shows them."""
    views = create_views(reader, sessions)
    return {name: list(columns.items()) for name, columns in views.items()}


def run_query(reader: Reader, sessions: Sequence[Session], query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """``(column names, rows)`` of one SQL query over the category views of ``sessions``."""
    import duckdb

    create_views(reader, sessions)
    try:
        result = reader.connection.execute(query)
    except duckdb.Error as exc:
        raise AnalysisError(f"SQL error: {exc}") from exc
    if result.description is None:
        return [], []
    names = [d[0] for d in result.description]
    return names, result.fetchall()


def export_parquet(reader: Reader, sessions: Sequence[Session], out_dir: Path) -> list[tuple[str, Path, int]]:
    """One Parquet file per category that has records (``<category>.parquet``); ``(category, path, rows)``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    views = create_views(reader, sessions)
    written: list[tuple[str, Path, int]] = []
    for category in views:
        if category == "events":
            continue
        rows = reader.query(f'SELECT count(*) FROM "{category}"')[0][0]
        if not rows:
            continue
        target = out_dir / f"{category}.parquet"
        reader.query(f'COPY (SELECT * FROM "{category}") TO {sql_literal(str(target))} (FORMAT parquet)')
        written.append((category, target, int(rows)))
    return written
