"""The write-behind queue on its own: coalescing by key, the bound (stats dropped first), retries while the
database is away, and a write that can never succeed dropped alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

import support
from aceorch.store.writes import WriteBehind


class Away(Exception):
    """The database is away (transient)."""


class Bad(Exception):
    """A statement that can never succeed (permanent)."""


class Db:
    """A fake database: applies batches of ``(key, value)`` writes, or raises while it is ``down``."""

    def __init__(self) -> None:
        self.rows: list[str] = []
        self.down = False
        self.batches = 0
        self.failures: list[int] = []
        self.recoveries = 0

    async def apply(self, ops: Sequence[str]) -> None:
        await asyncio.sleep(0)
        self.batches += 1
        if self.down:
            raise Away("connection refused")
        if any(op == "bad" for op in ops):
            raise Bad("constraint")
        self.rows.extend(ops)

    def queue(self, **kw: object) -> WriteBehind[str]:
        return WriteBehind(self.apply, is_transient=lambda exc: isinstance(exc, Away),
                           on_failure=lambda exc, n: self.failures.append(n),
                           on_success=lambda n: setattr(self, "recoveries", self.recoveries + 1),
                           retry_initial_s=0.01, retry_max_s=0.05, **kw)  # type: ignore[arg-type]


async def test_writes_with_the_same_key_coalesce_and_land_in_their_last_order() -> None:
    db = Db()
    q = db.queue()
    q.put(("engine", "a"), "a1")
    q.put(("engine", "b"), "b1")
    q.put(("engine", "a"), "a2")  # replaces a1, and is now after b1
    q.put(None, "stat1")
    assert q.pending == 3
    await q.flush()
    assert db.rows == ["b1", "a2", "stat1"]
    assert q.pending == 0


async def test_while_the_database_is_away_writes_wait_within_the_bound_then_land() -> None:
    db = Db()
    db.down = True
    q = db.queue(max_pending=5)
    q.start()
    try:
        q.put(("engine", "a"), "a")
        q.put(("stream", "s"), "s")
        for i in range(10):
            q.put(None, f"stat{i}")
        # The bound drops the oldest stat snapshots only; the engine and the stream stay.
        assert q.pending == 5 and q.dropped == 7
        await support.async_wait_until(lambda: len(db.failures) >= 3, "a few retries")
        assert db.rows == []
        db.down = False
        assert await q.drain(5)
    finally:
        await q.aclose()
    assert db.rows == ["a", "s", "stat7", "stat8", "stat9"]
    assert db.recoveries == 1


async def test_a_write_that_can_never_succeed_is_dropped_alone(caplog: pytest.LogCaptureFixture) -> None:
    db = Db()
    q = db.queue()
    for op in ("one", "bad", "two"):
        q.put(None, op)
    await q.flush()
    assert db.rows == ["one", "two"]
    assert "a write failed and is dropped" in caplog.text


async def test_flush_raises_while_the_database_is_away_and_keeps_the_writes() -> None:
    db = Db()
    q = db.queue()
    q.put(("engine", "a"), "a")
    db.down = True
    with pytest.raises(Away):
        await q.flush()
    assert q.pending == 1
    db.down = False
    await q.flush()
    assert db.rows == ["a"]
