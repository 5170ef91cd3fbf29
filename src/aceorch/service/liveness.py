"""Whether the container runtime and the store answer: the last ping of each, and when the runtime last answered."""

from __future__ import annotations

import asyncio
import logging
import time

from aceorch.errors import RuntimeFailure
from aceorch.runtime.base import Runtime
from aceorch.service.timed import Recorder
from aceorch.store.base import Store

__all__ = ["Liveness"]

logger = logging.getLogger(__name__)


class Liveness:
    """The runtime's and the store's last answers; the monitor refreshes them, admission and readiness read them."""

    def __init__(self, *, runtime: Runtime, store: Store, record: Recorder, monitor_interval_s: float) -> None:
        self._runtime = runtime
        self._store = store
        self._record = record
        self._monitor_interval_s = monitor_interval_s
        #: The runtime answered its last ping.
        self.runtime_ok = False
        self.runtime_checked_at = 0.0
        #: The store answered its last ping (or opened).
        self.database_ok = False

    async def check_runtime(self) -> bool:
        """Ping the runtime (2 s at most); logs and records when it stops or starts answering."""
        try:
            await asyncio.wait_for(self._runtime.ping(), timeout=2.0)
        except (RuntimeFailure, TimeoutError, OSError):
            if self.runtime_ok:
                logger.error("the container runtime (%s) stopped answering", self._runtime.name)
                self._record("errors", component="runtime", operation="ping", error_type="RuntimeUnavailable",
                             error_message="container runtime unavailable", traceback=None)
            self.runtime_ok = False
            return False
        if not self.runtime_ok and self.runtime_checked_at:
            logger.info("the container runtime (%s) answers again", self._runtime.name)
        self.runtime_ok = True
        self.runtime_checked_at = time.monotonic()
        return True

    async def runtime_answers(self) -> bool:
        """For admission: a runtime that answered within the last second is not pinged again."""
        if self.runtime_ok and time.monotonic() - self.runtime_checked_at < 1.0:
            return True
        return await self.check_runtime()

    def runtime_lost(self) -> None:
        """A call failed with RuntimeUnavailable: the runtime is down until the next ping says otherwise."""
        self.runtime_ok = False

    def runtime_fresh(self) -> bool:
        """The runtime answered within the last monitor interval (plus 2 s)."""
        return self.runtime_ok and time.monotonic() - self.runtime_checked_at <= self._monitor_interval_s + 2

    async def check_store(self) -> bool:
        """Ping the store. A database that is down stops nothing: the store queues its writes and logs the
        outage (one WARNING line) and the recovery itself."""
        try:
            await self._store.ping()
            self.database_ok = True
        except Exception:  # noqa: BLE001 - any store failure means "down"
            self.database_ok = False
        return self.database_ok
