"""Write-behind: the store's writes are queued, coalesced, and applied by one task, retried while the database
is away.

* A write returns as soon as it is queued: the caller (a request, a loop) never waits for the row.
* Writes with the same key replace each other (the newest engine or stream row wins, a delete replaces a
  save), so the queue holds at most one entry per engine and per stream, plus stat snapshots.
* The queue is bounded (``max_pending``): past it, the oldest stat snapshots are dropped first (they are
  history); engines and streams are never dropped, and they are bounded by the fleet anyway.
* While the database is away the task retries with backoff (``retry_initial_s`` doubling to ``retry_max_s``);
  the state the service serves is its own, in memory, so nothing waits. When it answers again the queued
  writes land, in the order they were last queued.
* Reads call :meth:`WriteBehind.flush` first, so that a read sees every write queued before it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

__all__ = ["WriteBehind"]

logger = logging.getLogger(__name__)

_Op = TypeVar("_Op")


class WriteBehind(Generic[_Op]):
    """The pending writes and the task that applies them; ``apply`` writes a batch in one transaction."""

    def __init__(
        self,
        apply: Callable[[Sequence[_Op]], Awaitable[None]],
        *,
        is_transient: Callable[[BaseException], bool],
        on_failure: Callable[[BaseException, int], None],
        on_success: Callable[[int], None],
        max_pending: int = 10_000,
        batch: int = 200,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 5.0,
    ) -> None:
        self._apply = apply
        self._is_transient = is_transient
        self._on_failure = on_failure
        self._on_success = on_success
        self._max_pending = max_pending
        self._batch = batch
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._pending: dict[Hashable, _Op] = {}
        self._droppable: set[Hashable] = set()
        self._seq = 0
        self._wake = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        #: Stat snapshots dropped because the queue was full, since start.
        self.dropped = 0

    @property
    def pending(self) -> int:
        """How many writes wait for the database."""
        return len(self._pending)

    def start(self) -> None:
        """Start the writer task (in the running loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="store writer")

    def put(self, key: Hashable | None, op: _Op) -> None:
        """Queue a write; ``key=None`` for one that replaces nothing and may be dropped when the queue is full."""
        if key is None:
            self._seq += 1
            key = ("droppable", self._seq)
            self._droppable.add(key)
        else:
            self._pending.pop(key, None)
        self._pending[key] = op
        self._empty.clear()
        self._wake.set()
        while len(self._pending) > self._max_pending and self._droppable:
            oldest = next(k for k in self._pending if k in self._droppable)
            del self._pending[oldest]
            self._droppable.discard(oldest)
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("store: %d writes queued, the most a queue holds; dropped %d stat snapshots so far",
                               self._max_pending, self.dropped)

    async def flush(self) -> None:
        """Apply every queued write now; raises what the database raises (the writes stay queued)."""
        async with self._lock:
            while self._pending:
                keys = list(self._pending)[: self._batch]
                ops = [self._pending[k] for k in keys]
                try:
                    await self._apply(ops)
                except Exception as exc:
                    if self._is_transient(exc):
                        raise
                    # A statement that can never succeed: apply the others one by one and drop only it.
                    await self._apply_one_by_one(keys, ops, exc)
                    continue
                self._forget(keys, ops)
            self._empty.set()

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the queue to empty; whether it did."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def aclose(self) -> None:
        """Stop the writer task (queued writes stay queued: :meth:`drain` or :meth:`flush` first)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def _forget(self, keys: list[Hashable], ops: list[_Op]) -> None:
        for key, op in zip(keys, ops, strict=True):
            if self._pending.get(key) is op:  # not replaced by a newer write meanwhile
                del self._pending[key]
                self._droppable.discard(key)

    async def _apply_one_by_one(self, keys: list[Hashable], ops: list[_Op], first: BaseException) -> None:
        for key, op in zip(keys, ops, strict=True):
            try:
                await self._apply([op])
            except Exception as exc:
                if self._is_transient(exc):
                    raise
                logger.error("store: a write failed and is dropped: %s", exc)
            self._forget([key], [op])

    async def _run(self) -> None:
        delay = self._retry_initial_s
        failing = False
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                count = len(self._pending)
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - transient: keep the writes, retry
                if not self._is_transient(exc):
                    logger.exception("store: the writer failed")
                self._on_failure(exc, len(self._pending))
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_s)
                self._wake.set()
                continue
            if failing:
                self._on_success(count)
                failing = False
            delay = self._retry_initial_s
