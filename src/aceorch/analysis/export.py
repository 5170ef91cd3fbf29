"""``aceorch debug export-csv``: records as CSV rows, cells formatted as jq's ``@csv`` formats them."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from aceorch.analysis.fields import Record
from aceorch.analysis.reader import Reader
from aceorch.analysis.sessions import Session

__all__ = ["CSV_COLUMNS", "csv_rows"]


CSV_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "operation",
    "duration_ms",
    "success",
    "session_id",
    "category",
    "seq",
    "elapsed_seconds",
    "event_type",
    "component",
    "request_id",
    "container_id",
    "container_name",
    "reason",
    "error",
    "severity",
)


def _csv_cell(value: Any) -> str:
    # jq's @csv: null is empty, booleans are true/false, numbers as numbers.
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e17:
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def csv_rows(
    reader: Reader, sessions: Sequence[Session], *, categories: Sequence[str]
) -> Iterator[list[str]]:
    """The debug-mode guide's CSV export, ``[.timestamp, .operation, .duration_ms, .success]`` first, then more columns.

    Rows come file by file in file order (like ``cat … | jq``) when one category is asked for, and merged by
    time otherwise.
    """
    if len(categories) == 1:
        source: Iterator[tuple[str, Record]] = (
            (categories[0], record)
            for session in sessions
            for record in reader.records(session.path(categories[0]) or Path("/nonexistent"))
        )
    else:
        source = reader.merged(sessions, categories)
    for category, record in source:
        row: list[str] = []
        for column in CSV_COLUMNS:
            value = category if column == "category" else record.get(column)
            row.append(_csv_cell(value))
        yield row
