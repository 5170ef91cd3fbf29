"""The byte-regex fast paths of ``report``: per-operation counts and durations without parsing JSON.

Most lines of a large provisioning log only contribute an operation name, a duration and a success flag.

* :func:`chunk_aggregate` takes a whole block of lines at once, with C-level calls only, when the block
  proves simple enough for that to be exact;
* otherwise :func:`block_stats` takes each line through :func:`fast_fields`, which pulls the three fields
  out with byte regexes when they are provably top-level keys (they appear before any nested ``{``), and
  falls back to :func:`json.loads`.

Durations are kept in file order, so that ``report`` sums them left to right exactly as
``jq -s '… | add / length'`` does. Everything here is a module-level function of bytes, so that blocks can
be handed to worker processes.
"""

from __future__ import annotations

import collections
import itertools
import json
import operator
import re
from dataclasses import dataclass, field
from typing import Any

from aceorch.analysis.fields import number

__all__ = ["ChunkOp", "fast_fields", "chunk_aggregate", "block_stats", "block_stats_at"]

_OP_RE = re.compile(rb'"operation"\s*:\s*"((?:[^"\\]|\\.)*)"')
_DUR_RE = re.compile(rb'"duration_ms"\s*:\s*(null|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?=\s*[,}])')
_SUC_RE = re.compile(rb'"success"\s*:\s*(true|false|null)(?=\s*[,}])')
_MISSING = object()


def _fast_value(line: bytes, pattern: re.Pattern[bytes], key: bytes, limit: int) -> Any:
    """The raw match of a top-level key, ``None`` if the key is absent, ``_MISSING`` if unsure."""
    match = pattern.search(line)
    if match is None:
        return _MISSING if key in line else None
    if match.start() > limit:
        # Behind a nested object: it may belong to it (labels, config…); let json decide.
        return _MISSING
    return match.group(1)


def fast_fields(line: bytes) -> tuple[str | None, float | None, bool | None] | None:
    """``(operation, duration_ms, success)`` of one JSONL line without parsing it, or ``None`` when unsure.

    A key found by the regex is a real key (inside a JSON string every quote is escaped), and it is a
    top-level key when it comes before the first nested ``{``. Anything else (a key only after a nested
    object, an unexpected value type, an escaped operation name) returns ``None`` and the caller parses the
    line with :mod:`json`.
    """
    if not line.startswith(b"{") or not line.endswith(b"}"):
        return None
    nested = line.find(b"{", 1)
    limit = len(line) if nested < 0 else nested
    op_raw = _fast_value(line, _OP_RE, b'"operation"', limit)
    if op_raw is _MISSING:
        return None
    dur_raw = _fast_value(line, _DUR_RE, b'"duration_ms"', limit)
    if dur_raw is _MISSING:
        return None
    suc_raw = _fast_value(line, _SUC_RE, b'"success"', limit)
    if suc_raw is _MISSING:
        return None
    operation: str | None = None
    if op_raw is not None:
        if b"\\" in op_raw:
            return None
        operation = op_raw.decode("utf-8", "replace")
    duration = None if dur_raw is None or dur_raw == b"null" else float(dur_raw)
    success = None if suc_raw is None or suc_raw == b"null" else suc_raw == b"true"
    return operation, duration, success


@dataclass
class ChunkOp:
    """One operation's share of a block: counts, and its durations in file order."""

    count: int = 0
    succeeded: int = 0
    failed: int = 0
    durations: list[float] = field(default_factory=list)
    ok: list[float] = field(default_factory=list)


_CHUNK_OP_RE = re.compile(rb'"operation": ?"([^"\\\n]*)"')
_CHUNK_DUR_RE = re.compile(rb'"duration_ms": ?(-?\d[\d.eE+-]*|null)(?=[ ,}])')
_CHUNK_SUC_RE = re.compile(rb'"success": ?(true|false|null)(?=[ ,}])')
_CHUNK_NESTED_RE = re.compile(rb': ?\{([^{}\n]*)\}')
_KEYS = (b'"operation"', b'"duration_ms"', b'"success"')

def chunk_aggregate(chunk: bytes) -> tuple[dict[str, ChunkOp], int] | None:
    """Per-operation counts and durations of a block of JSONL lines (and its line count), or ``None``.

    The block-level fast path of ``report``. Every step is a C-level call over the whole block or mapped
    over its lines (``findall``, ``filter``, ``map``, ``Counter``), so no Python bytecode runs per line.
    It is only used when the block proves simple enough for that to be exact: every line is one object
    whose nested objects are flat and hold none of the three keys, and every occurrence of the keys was
    matched (so none hides in an unusual form). ``None`` sends the caller to line-by-line parsing.
    """
    lines = chunk.count(b"\n")
    if not chunk.startswith(b"{") or chunk.count(b"\n{") != lines - 1:
        return None
    nested = _CHUNK_NESTED_RE.findall(chunk)
    if chunk.count(b"{") != lines + len(nested) or chunk.count(b"}") != lines + len(nested):
        return None
    if nested:
        inner = b"".join(nested)
        if any(key in inner for key in _KEYS):
            return None
    ops = _CHUNK_OP_RE.findall(chunk)
    if len(ops) != chunk.count(_KEYS[0]):
        return None
    timed = list(filter(_CHUNK_DUR_RE.search, chunk.split(b"\n")))
    if len(timed) != chunk.count(_KEYS[1]):
        return None
    op_matches = list(map(_CHUNK_OP_RE.search, timed))
    if None in op_matches:
        return None
    suc_matches = list(map(_CHUNK_SUC_RE.search, timed))
    suc_found = len(suc_matches) - suc_matches.count(None)
    if suc_found != chunk.count(_KEYS[2]):
        return None
    group1 = operator.methodcaller("group", 1)
    timed_ops: list[bytes] = list(map(group1, op_matches))
    raws: list[bytes] = [m.group(1) for m in map(_CHUNK_DUR_RE.search, timed) if m is not None]
    flags: list[bytes | None] = [m.group(1) if m is not None else None for m in suc_matches]
    counts = collections.Counter(ops)
    outcomes = collections.Counter(zip(timed_ops, flags, strict=True))
    out: dict[str, ChunkOp] = {}
    for key, count in counts.items():
        entry = ChunkOp(
            count=count, succeeded=outcomes.get((key, b"true"), 0), failed=outcomes.get((key, b"false"), 0)
        )
        if key in outcomes or any(k[0] == key for k in outcomes):
            mine = list(map(key.__eq__, timed_ops))
            durations = list(itertools.compress(raws, mine))
            ok_mask = [is_mine and flag == b"true" for is_mine, flag in zip(mine, flags, strict=True)]
            ok = list(itertools.compress(raws, ok_mask))
            entry.durations = [float(v) for v in durations if v != b"null"]
            entry.ok = [float(v) for v in ok if v != b"null"]
        out[key.decode("utf-8", "replace")] = entry
    return out, lines


def block_stats(chunk: bytes) -> tuple[dict[str, ChunkOp], int, int]:
    """``(per-operation aggregates, lines taken by the fast path, malformed lines)`` of one block.

    A module-level function of bytes only, so that ``report`` can hand blocks to worker processes.
    """
    fast = chunk_aggregate(chunk)
    if fast is not None:
        return fast[0], fast[1], 0
    out: dict[str, ChunkOp] = {}
    bad = 0
    for line in chunk.split(b"\n"):
        line = line.strip()
        if not line:
            continue
        fields = fast_fields(line)
        if fields is None:
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                bad += 1
                continue
            op_value = record.get("operation")
            success_value = record.get("success")
            fields = (
                op_value if isinstance(op_value, str) else None,
                number(record.get("duration_ms")),
                success_value if isinstance(success_value, bool) else None,
            )
        op, duration, success = fields
        if op is None:
            continue
        entry = out.get(op)
        if entry is None:
            entry = out[op] = ChunkOp()
        entry.count += 1
        if success is True:
            entry.succeeded += 1
        elif success is False:
            entry.failed += 1
        if duration is not None:
            entry.durations.append(duration)
            if success:
                entry.ok.append(duration)
    return out, 0, bad


def block_stats_at(path: str, start: int, end: int) -> tuple[dict[str, ChunkOp], int, int]:
    """``block_stats`` of bytes ``start:end`` of ``path`` (a worker reads its own block: nothing is piped)."""
    with open(path, "rb") as handle:
        handle.seek(start)
        return block_stats(handle.read(end - start))
