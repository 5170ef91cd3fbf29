"""Streaming reads of session files: lines, blocks and records, and several files merged by time.

Files are read line by line in binary; nothing keeps a whole file in memory. Where a command needs a merged
view across categories the per-category files, each already in ``seq`` order, are merged lazily with
:func:`heapq.merge` on ``(timestamp, seq)``. Readers call an optional ``progress(bytes_read)`` callback every
few thousand lines; the CLI turns it into a progress bar on large inputs.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aceorch.analysis.fields import Record
from aceorch.analysis.sessions import Session

__all__ = ["Progress", "Reader"]

#: Called with the number of bytes read since the previous call.
Progress = Callable[[int], None]

# How often (in lines) readers report progress and check the file position.
_PROGRESS_EVERY = 8192


@dataclass
class Reader:
    """Reads session files line by line, counting malformed lines and reporting progress in bytes."""

    progress: Progress | None = None
    bad_lines: int = 0

    def lines(self, path: Path) -> Iterator[bytes]:
        """Non-blank lines of ``path`` (bytes, stripped). A missing file yields nothing."""
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return
        progress = self.progress
        with handle:
            reported = 0
            count = 0
            for line in handle:
                count += 1
                if progress is not None and count % _PROGRESS_EVERY == 0:
                    pos = handle.tell()
                    progress(pos - reported)
                    reported = pos
                line = line.strip()
                if line:
                    yield line
            if progress is not None:
                end = handle.tell()
                progress(end - reported)

    def chunks(self, path: Path, size: int = 4 << 20) -> Iterator[bytes]:
        """Blocks of whole lines (each ends with a newline, a final partial line gets one)."""
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return
        with handle:
            rest = b""
            while True:
                block = handle.read(size)
                if self.progress is not None and block:
                    self.progress(len(block))
                if not block:
                    if rest.strip():
                        yield rest + b"\n"
                    return
                block = rest + block
                cut = block.rfind(b"\n") + 1
                rest = block[cut:]
                if cut:
                    yield block[:cut]

    def records(self, path: Path, *, needle: bytes | None = None) -> Iterator[Record]:
        """Parsed records of ``path``. With ``needle``, lines that do not contain it are skipped unparsed."""
        for line in self.lines(path):
            if needle is not None and needle not in line:
                continue
            record = self.parse(line)
            if record is not None:
                yield record

    def parse(self, line: bytes) -> Record | None:
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
        needle: bytes | None = None,
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
        self, category: str, path: Path, needle: bytes | None
    ) -> Iterator[tuple[tuple[str, int], str, Record]]:
        for record in self.records(path, needle=needle):
            yield _order_key(record), category, record


def _order_key(record: Record) -> tuple[str, int]:
    ts = record.get("timestamp")
    seq = record.get("seq")
    seq_key = seq if isinstance(seq, int) and not isinstance(seq, bool) else 0
    return (ts if isinstance(ts, str) else "", seq_key)
