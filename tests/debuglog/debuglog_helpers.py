"""Helpers shared by the debug-log tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


class FakeClock:
    """A wall clock and a monotonic clock that move only when told to."""

    def __init__(self, start: datetime = datetime(2025, 10, 18, 14, 44, 30, tzinfo=UTC)) -> None:
        self.now = start
        self.mono = 1000.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def session_records(directory: Path, session_id: str, category: str) -> list[dict[str, Any]]:
    return read_jsonl(directory / f"{session_id}_{category}.jsonl")

