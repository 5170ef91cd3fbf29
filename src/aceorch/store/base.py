"""The one boundary between aceorch and its database.

A :class:`Store` persists engines, streams and per-stream stat snapshots so that a restarted service can pick
up where it left off. Every method is a coroutine and never blocks the event loop. Writes are queued and
return at once; reads see every write queued before them. Times go in and come out as
timezone-aware UTC datetimes. Backends translate their own failures into :class:`StoreError` (and
:class:`StoreUnavailable` when the database cannot be reached at all), ``from`` the original error.

::

    AceorchError
    └── StoreError              the store failed to do what was asked
        └── StoreUnavailable    the database cannot be opened or reached, or the store is not open
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from aceorch.errors import AceorchError
from aceorch.models import Engine, StatSnapshot, Stream

__all__ = ["Store", "StoreError", "StoreUnavailable"]


class StoreError(AceorchError):
    """A store operation failed; ``str(exc)`` is safe to show."""


class StoreUnavailable(StoreError):
    """The database cannot be opened or reached."""


@runtime_checkable
class Store(Protocol):
    """An async database of engines, streams and stat snapshots; implemented by :class:`~aceorch.store.sql.SqlStore`."""

    async def open(self) -> None:
        """Create the database (a SQLite file and its directories) and bring its schema to the newest revision.

        Idempotent."""

    async def ping(self) -> None:
        """Return if the database answers, else raise :class:`StoreUnavailable`."""

    async def flush(self) -> None:
        """Write every queued write now; :class:`StoreUnavailable` while the database is away."""

    async def save_engine(self, engine: Engine) -> None:
        """Insert or replace the engine with this ``container_id`` (queued: returns before the row is written)."""

    async def delete_engine(self, container_id: str) -> None:
        """Forget an engine (queued); an unknown id is not an error."""

    async def load_engines(self) -> list[Engine]:
        """Every saved engine, ordered by ``first_seen``."""
        ...

    async def save_stream(self, stream: Stream) -> None:
        """Insert or replace the stream with this ``id`` (queued)."""

    async def load_streams(self) -> list[Stream]:
        """Every saved stream, ordered by ``started_at``."""
        ...

    async def add_stat(self, stream_id: str, snap: StatSnapshot, *, keep: int) -> None:
        """Append a snapshot, then keep only the newest ``keep`` snapshots (by ``ts``) of that stream (queued)."""

    async def load_stats(
        self, stream_id: str, *, since: datetime | None = None, limit: int | None = None
    ) -> list[StatSnapshot]:
        """Snapshots of a stream with ``ts >= since``, oldest first; with ``limit``, only the newest ones."""
        ...

    async def prune_streams(self, *, ended_before: datetime) -> int:
        """Delete ended streams with ``ended_at < ended_before``, and their stats; return how many."""
        ...

    async def aclose(self) -> None:
        """Let queued writes land (briefly), then release the connections. Idempotent."""
