"""Reading session files through DuckDB: records of one file, several files merged by time, and SQL.

Every ``aceorch debug`` command reads through one :class:`Reader`, which owns an in-process DuckDB
connection. Files are scanned by DuckDB's JSON reader with ``ignore_errors``: a line that is not JSON (a
hand-edit, or the incomplete last line of a file a running orchestrator is still writing) comes back as a
NULL row, which is skipped and counted in ``bad_lines`` (and, when it is the unterminated end of a file, in
``incomplete_lines``), never an error. Aggregations (``report``) run as SQL in DuckDB; views that need whole
records get each line's text from DuckDB in file order and parse it with :mod:`json`. Where a command needs
a merged view across categories, the per-category files, each already in ``seq`` order, are merged lazily
with :func:`heapq.merge` on ``(timestamp, seq)``. ``progress(bytes_read)`` is called as files are read.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from aceorch.analysis.fields import Record
from aceorch.analysis.sessions import Session

__all__ = ["Progress", "Reader", "sql_literal", "json_source"]

#: Called with the number of bytes read since the previous call.
Progress = Callable[[int], None]

# Rows fetched from DuckDB at a time (memory stays flat on any file size).
_BATCH = 8192
# The longest line DuckDB's JSON reader accepts (a record with a long traceback stays readable).
_MAX_OBJECT_BYTES = 1 << 20


def sql_literal(value: str) -> str:
    """``value`` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def json_source(paths: Sequence[Path], columns: dict[str, str] | None = None, **options: str) -> str:
    """A DuckDB ``read_json`` (with ``columns``) or ``read_ndjson_objects`` call over ``paths``."""
    files = "[" + ", ".join(sql_literal(str(p)) for p in paths) + "]"
    opts = [f"ignore_errors=true, maximum_object_size={_MAX_OBJECT_BYTES}"]
    opts.extend(f"{k}={v}" for k, v in options.items())
    if columns is None:
        return f"read_ndjson_objects({files}, {', '.join(opts)})"
    spec = "{" + ", ".join(f"{sql_literal(k)}: {sql_literal(v)}" for k, v in columns.items()) + "}"
    return f"read_json({files}, format='newline_delimited', columns={spec}, {', '.join(opts)})"


def unterminated(path: Path) -> bool:
    """Whether ``path`` ends with a line that has no newline yet and is not a JSON value (being written)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            back = min(size, 1 << 16)
            handle.seek(size - back)
            tail = handle.read(back)
    except OSError:
        return False
    if not tail or tail.endswith(b"\n"):
        return False
    last = tail.rsplit(b"\n", 1)[-1].strip()
    if not last:
        return False
    try:
        json.loads(last)
    except ValueError:
        return True
    return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@dataclass
class Reader:
    """Reads session files through DuckDB, counting malformed and incomplete lines and reporting progress."""

    progress: Progress | None = None
    bad_lines: int = 0
    incomplete_lines: int = 0
    _connection: duckdb.DuckDBPyConnection | None = field(default=None, repr=False)

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The in-process DuckDB database (created on first use, in memory)."""
        if self._connection is None:
            self._connection = duckdb.connect(":memory:")
        return self._connection

    def close(self) -> None:
        """Close the DuckDB connection (a later read opens a new one)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def advance(self, n: int) -> None:
        """Report ``n`` more bytes read."""
        if self.progress is not None and n:
            self.progress(n)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """All rows of one SQL query."""
        return self.connection.execute(sql, params or []).fetchall()

    def count_incomplete(self, paths: Iterable[Path]) -> int:
        """How many of ``paths`` end with an incomplete line (it is also one of the NULL rows counted as bad)."""
        found = sum(1 for p in paths if unterminated(p))
        self.incomplete_lines += found
        return found

    def texts(self, path: Path, *, needle: str | None = None) -> Iterator[str | None]:
        """Each line of ``path`` as DuckDB read it, in file order: its text, or None for a line that is not JSON."""
        if not path.is_file():
            return
        where = ""
        if needle is not None:
            # Lines without the needle are not looked at, so malformed ones among them are not counted.
            where = f" WHERE contains(json, {sql_literal(needle)})"
        cursor = self.connection.cursor()
        try:
            result = cursor.execute(f"SELECT json FROM {json_source([path])}{where}")
            while True:
                rows = result.fetchmany(_BATCH)
                if not rows:
                    break
                for (text,) in rows:
                    yield text
        finally:
            cursor.close()
            self.advance(_size(path))

    def records(self, path: Path, *, needle: bytes | str | None = None) -> Iterator[Record]:
        """Parsed records of ``path``. With ``needle``, only lines that contain it are parsed."""
        wanted = needle.decode() if isinstance(needle, bytes) else needle
        null_rows = 0
        for text in self.texts(path, needle=wanted):
            if text is None:
                null_rows += 1
                self.bad_lines += 1
                continue
            record = self.parse(text)
            if record is not None:
                yield record
        if null_rows:
            self.count_incomplete([path])

    def parse(self, line: str | bytes) -> Record | None:
        """One line as a record object, or None (counted in ``bad_lines``) when it is not a JSON object."""
        try:
            value = json.loads(line)
        except ValueError:
            self.bad_lines += 1
            return None
        if not isinstance(value, dict):
            self.bad_lines += 1
            return None
        return value

    def merged(
        self,
        sessions: Sequence[Session],
        categories: Iterable[str],
        *,
        needle: bytes | str | None = None,
    ) -> Iterator[tuple[str, Record]]:
        """``(category, record)`` of several files merged by ``(timestamp, seq)``, lazily."""
        wanted = list(categories)
        streams: list[Iterator[tuple[tuple[str, int], str, Record]]] = []
        for session in sessions:
            for category in wanted:
                path = session.path(category)
                if path is not None:
                    streams.append(self._keyed(category, path, needle))
        for _key, category, record in heapq.merge(*streams, key=lambda item: item[0]):
            yield category, record

    def _keyed(
        self, category: str, path: Path, needle: bytes | str | None
    ) -> Iterator[tuple[tuple[str, int], str, Record]]:
        for record in self.records(path, needle=needle):
            yield _order_key(record), category, record


def _order_key(record: Record) -> tuple[str, int]:
    ts = record.get("timestamp")
    seq = record.get("seq")
    seq_key = seq if isinstance(seq, int) and not isinstance(seq, bool) else 0
    return (ts if isinstance(ts, str) else "", seq_key)
