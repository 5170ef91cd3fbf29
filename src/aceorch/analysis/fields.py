"""Coercing record fields: numbers, counts, strings and timestamps as the analysis reads them, and percentiles.

Records come from files that may be hand-edited, truncated or written by another version, so a field is
never trusted to have its schema type: each coercer returns ``None`` (or 0) for anything else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "Record",
    "number",
    "integer",
    "text",
    "parse_timestamp",
    "format_timestamp",
    "ts_seconds",
    "percentile",
]

#: One parsed JSONL line.
Record = dict[str, Any]


def number(value: Any) -> float | None:
    """A JSON number as a float; None for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def integer(value: Any) -> int:
    """A JSON number truncated to an int; 0 for anything else (booleans included)."""
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def text(value: Any) -> str | None:
    """A non-empty string; None for anything else."""
    return value if isinstance(value, str) and value else None


def parse_timestamp(text: str) -> datetime:
    """Parse a record timestamp (``YYYY-MM-DDTHH:MM:SS.ffffffZ``, or any ISO 8601 form with an offset)."""
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """A time in the records' fixed-width form, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ts_seconds(text: Any) -> float | None:
    """A record timestamp as POSIX seconds, or ``None`` if it is missing or malformed."""
    if not isinstance(text, str):
        return None
    try:
        return parse_timestamp(text).timestamp()
    except ValueError:
        return None


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100) by linear interpolation between closest ranks (numpy's default)."""
    n = len(sorted_values)
    if n == 0:
        return None
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac
