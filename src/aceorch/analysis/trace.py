"""``aceorch debug trace <request-id>``: every record of one request across the orchestrator's and the proxy's
debug folders, in time order.

A record belongs to the request when its ``request_id`` or ``trace_id`` is the id, or when it lists the id among
its ``request_ids`` (a stress finding about several viewers). Files of any category are read, so that the
standalone proxy's own categories (``requests``, ``engine_selection``, ``clients``) are included.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aceorch.analysis.fields import ts_seconds
from aceorch.analysis.reader import Reader
from aceorch.debuglog.records import scan_sessions

__all__ = ["trace", "DETAIL_FIELDS"]

#: Fields shown after the operation in a timeline line, when present.
DETAIL_FIELDS = ("stream_key", "method", "path", "status", "chosen", "reason", "container_name", "container_id",
                 "success", "error_code", "duration_ms", "bytes", "description")


def trace(reader: Reader, folders: Sequence[tuple[str, Path]], request_id: str) -> list[dict[str, Any]]:
    """The request's records as timeline rows (``time``, ``side``, ``category``, ``operation``, ``record``),
    oldest first; ``folders`` are (side name, folder) pairs."""
    rows: list[tuple[float, int, dict[str, Any]]] = []
    n = 0
    for side, folder in folders:
        for session in scan_sessions(folder, any_category=True, files_only=True):
            for category, path in sorted(session.files.items()):
                for record in reader.records(path, needle=request_id):
                    rids = record.get("request_ids")
                    if request_id not in (record.get("request_id"), record.get("trace_id")) and not (
                        isinstance(rids, list) and request_id in rids
                    ):
                        continue
                    t = ts_seconds(record.get("timestamp"))
                    if t is None:
                        continue
                    n += 1
                    op = record.get("operation") or record.get("event_type") or ""
                    rows.append((t, n, {"time": record.get("timestamp"), "side": side, "category": category,
                                        "operation": str(op), "record": record}))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in rows]


def describe(row: dict[str, Any]) -> str:
    """One timeline line's details: ``key=value`` of the :data:`DETAIL_FIELDS` the record has."""
    record = row["record"]
    return " ".join(f"{k}={record[k]}" for k in DETAIL_FIELDS if record.get(k) is not None)
