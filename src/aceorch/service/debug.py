"""Debug mode as the API drives it: status, enable, disable, bundles and stress events, all off the event loop."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

from aceorch.debuglog.stress import StressMonitor
from aceorch.debuglog.writer import DebugLog

__all__ = ["DebugControl"]


class DebugControl:
    """The debug log and the stress monitor, behind awaitable methods (their file work runs in a thread)."""

    def __init__(self, *, debuglog: DebugLog, stress: StressMonitor) -> None:
        self._debuglog = debuglog
        self._stress = stress

    async def status(self) -> dict[str, Any]:
        """Whether debug mode is on, the session, its files and counters."""
        return await asyncio.to_thread(self._debuglog.status)

    async def enable(self, by: str = "api") -> tuple[bool, dict[str, Any]]:
        """Start a debug session now; (changed, status). Raises DebugDirError when the folder is not writable."""
        changed = await asyncio.to_thread(self._debuglog.enable, by)
        return changed, await self.status()

    async def disable(self) -> tuple[bool, dict[str, Any]]:
        """End the debug session (its files stay); (changed, status)."""
        changed = await asyncio.to_thread(self._debuglog.disable)
        return changed, await self.status()

    async def bundle(self, session: str | None) -> Path:
        """A tar.gz of one session in a temporary file (the caller deletes it). Raises LookupError."""
        return await asyncio.to_thread(self._debuglog.bundle, session)

    def stress_events(
        self, *, since: datetime | None, limit: int, event_type: str | None, severity: str | None
    ) -> list[dict[str, Any]]:
        """The last stress events of this process, oldest first."""
        return self._stress.recent(since=since, limit=limit, event_type=event_type, severity=severity)

    def adopt_stress(self, **fields: Any) -> None:
        """A stress event the embedded proxy's detectors decided: into the session, ``/debug/stress`` and the
        event feed beside the orchestrator's own."""
        self._stress.adopt(**fields)

    def counters(self) -> tuple[int, int]:
        """Debug records written and dropped so far."""
        return self._debuglog.entries_written, self._debuglog.entries_dropped
