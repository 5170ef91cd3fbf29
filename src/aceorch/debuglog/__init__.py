"""Debug mode: JSONL records per category (``writer``), stress detectors (``stress``), bundles (``bundle``).

The record schema lives in ``records`` so that the offline analysis (``analysis``) can read the files without
importing the service. ``DebugLog`` and ``StressMonitor`` are imported lazily for the same reason: importing
``aceorch.debuglog.analysis`` must not pull in the settings machinery. See spec/debug-log.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aceorch.debuglog.records import CATEGORIES, SEVERITIES

if TYPE_CHECKING:
    from aceorch.debuglog.stress import StressMonitor
    from aceorch.debuglog.writer import DebugLog

__all__ = ["CATEGORIES", "SEVERITIES", "DebugLog", "StressMonitor"]


def __getattr__(name: str) -> Any:
    if name == "DebugLog":
        from aceorch.debuglog.writer import DebugLog

        return DebugLog
    if name == "StressMonitor":
        from aceorch.debuglog.stress import StressMonitor

        return StressMonitor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
