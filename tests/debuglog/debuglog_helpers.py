"""Helpers shared by the debug-log tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
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


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds (or fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.005)
