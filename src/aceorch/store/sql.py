"""The SQLAlchemy store: a SQLite file by default, PostgreSQL with the same code, both through asyncio drivers.

Design:

* **Async engine.** ``sqlalchemy.ext.asyncio`` with aiosqlite (SQLite) or asyncpg (PostgreSQL); ``DB_URL``
  names the backend, the store picks the driver (:func:`aceorch.store.schema.parse_db_url`).
* **Writes are behind** (:mod:`aceorch.store.writes`): ``save_*``, ``delete_engine`` and ``add_stat`` return once
  queued; one task writes them in batches. While the database is away they stay queued (bounded) and are
  retried; one WARNING line says so, one INFO line says when it answers again. Reads write the queue first.
* **Schema** by Alembic at :meth:`SqlStore.open` (:mod:`aceorch.store.migrate`), under a lock.
* **SQLite.** ``sqlite:///./orchestrator.db`` is resolved against the working directory when the store opens,
  and the file's directories are created. Connections use WAL journaling (readers never block the writer),
  ``synchronous=NORMAL`` and a busy timeout. A file that is not a readable database is moved aside
  (``<file>.corrupt-<UTC time>``) and a new one is made; the service then rebuilds its engines from the
  containers' labels.
* **Times** are stored as aceorch's fixed-width text (:func:`aceorch.models.format_time`), which sorts like
  the time itself on every backend and reads back as an aware UTC datetime equal to what was saved.
* **Stats** live in their own table, keyed by an autoincrement id, and are trimmed to the newest ``keep``
  snapshots of their stream on every insert, so the table stays bounded however long a stream runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as postgresql_dml
from sqlalchemy.dialects import sqlite as sqlite_dml
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from aceorch.models import Engine, HealthStatus, StatSnapshot, Stream, utcnow
from aceorch.store import migrate
from aceorch.store.base import StoreError, StoreUnavailable
from aceorch.store.schema import engines_table, is_unavailable, parse_db_url, stats_table, streams_table
from aceorch.store.writes import WriteBehind

__all__ = ["SqlStore"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
#: One queued write: statements run on the writer's connection, inside its transaction.
Write = Callable[[AsyncConnection], Awaitable[None]]

#: How long SQLite waits for a lock held by another process before failing, in seconds.
SQLITE_BUSY_TIMEOUT_S = 10.0
#: Opens of a SQLite file another process holds locked (both migrating at start-up), before giving up.
SQLITE_OPEN_ATTEMPTS = 5
#: How long connecting to PostgreSQL may take before the database counts as away, in seconds.
CONNECT_TIMEOUT_S = 5.0
#: How long closing the store waits for queued writes to land, in seconds.
CLOSE_DRAIN_S = 5.0

_ENGINE_FIELDS = [c.name for c in engines_table.columns]
_STREAM_FIELDS = [c.name for c in streams_table.columns]
_STAT_FIELDS = ["ts", "peers", "speed_down", "speed_up", "downloaded", "uploaded", "status"]


def _sqlite_file(url: URL) -> Path | None:
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve()


def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, StoreUnavailable) or is_unavailable(exc)


def _is_corrupt(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sa_exc.DatabaseError) and ("not a database" in text or "malformed" in text)


class SqlStore:
    """:class:`aceorch.store.base.Store` on SQLAlchemy Core (asyncio).

    ``SqlStore("sqlite:///./orchestrator.db")`` does no I/O; :meth:`open` creates the file and migrates it.
    """

    def __init__(self, db_url: str, *, max_pending: int = 10_000, retry_max_s: float = 5.0) -> None:
        self._url = parse_db_url(db_url)
        self._engine: AsyncEngine | None = None
        self._closed = False
        self._down = False
        self._retry_max_s = retry_max_s
        self._opener: asyncio.Task[None] | None = None
        #: The schema revision before and after :meth:`open` migrated (``None`` before: a new database, or
        #: one made before migrations).
        self.migrated: tuple[str | None, str] | None = None
        self._writes: WriteBehind[Write] = WriteBehind(
            self._apply, is_transient=_transient, on_failure=self._writes_failed,
            on_success=self._writes_landed, max_pending=max_pending, retry_max_s=retry_max_s,
        )

    @property
    def url(self) -> URL:
        """The normalised URL (a SQLite file path is absolute once the store is open)."""
        return self._url

    @property
    def pending_writes(self) -> int:
        """How many writes wait for the database."""
        return self._writes.pending

    # ---- lifecycle ---------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Build the engine, migrate to the newest schema under the lock, start the writer. Idempotent.

        A PostgreSQL server that does not answer raises :class:`StoreUnavailable`, and the store keeps trying in
        the background (every few seconds); meanwhile writes are queued, and they land once it opens.
        """
        if self._closed:
            raise StoreUnavailable("the store is closed")
        if self._engine is not None:
            return
        try:
            await self._open_sqlite_patiently() if self._url.get_backend_name() == "sqlite" else await self._open_once()
        except StoreUnavailable:
            if self._url.get_backend_name() == "postgresql" and self._opener is None and not self._closed:
                self._down = True  # the caller says so; the line saying it answers again comes from here
                self._opener = asyncio.create_task(self._open_later(), name="store open retry")
            raise

    async def _open_sqlite_patiently(self) -> None:
        """Open a SQLite file, trying again while another process holds it locked (two instances starting at once)."""
        for attempt in range(SQLITE_OPEN_ATTEMPTS):
            try:
                await self._open_once()
                return
            except StoreUnavailable as exc:
                if "database is locked" not in str(exc) or attempt == SQLITE_OPEN_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))

    async def _open_later(self) -> None:
        delay = 1.0
        while self._engine is None and not self._closed:
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max_s)
            try:
                await self._open_once()
            except StoreUnavailable:
                continue
            except Exception:  # noqa: BLE001 - a bug, not an outage: say so and stop trying
                logger.exception("store: opening the database failed")
                return
            self._mark_up()

    async def _open_once(self) -> None:
        path = _sqlite_file(self._url)
        if path is not None:
            try:
                await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(f"cannot open the store {self._safe_url()}: {exc}") from exc
            self._url = self._url.set(database=str(path))
        engine = self._make_engine()
        try:
            try:
                await self._check_and_migrate(engine, path)
            except sa_exc.DatabaseError as exc:
                if path is None or not _is_corrupt(exc):
                    raise
                await engine.dispose()
                await asyncio.to_thread(self._move_aside, path, exc)
                engine = self._make_engine()
                await self._check_and_migrate(engine, path)
        except StoreError:
            await engine.dispose()
            raise
        except (sa_exc.SQLAlchemyError, OSError, TimeoutError) as exc:
            await engine.dispose()
            raise StoreUnavailable(f"cannot open the store {self._safe_url()}: {exc}") from exc
        self._engine = engine
        self._writes.start()
        logger.info("store open: %s", self._safe_url())

    def _make_engine(self) -> AsyncEngine:
        url = self._url
        if url.get_backend_name() == "sqlite":
            engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
            sa.event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
            return engine
        return create_async_engine(url, pool_pre_ping=True, connect_args={"timeout": CONNECT_TIMEOUT_S})

    async def _check_and_migrate(self, engine: AsyncEngine, path: Path | None) -> None:
        if path is not None:
            async with engine.connect() as conn:
                result = (await conn.execute(sa.text("PRAGMA quick_check"))).scalar()
            if result != "ok":
                raise sa_exc.DatabaseError("PRAGMA quick_check", None,
                                           Exception(f"database disk image is malformed: {result}"))
        lock = path.with_name(path.name + ".migrate-lock") if path is not None else None
        self.migrated = await migrate.upgrade(engine, lock_path=lock)

    @staticmethod
    def _move_aside(path: Path, exc: BaseException) -> None:
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        path.rename(aside)
        for suffix in ("-wal", "-shm"):
            extra = path.with_name(path.name + suffix)
            if extra.exists():
                extra.rename(aside.with_name(aside.name + suffix))
        logger.error("store: %s is not a readable SQLite database (%s); moved it to %s and started an empty one; "
                     "engines are rebuilt from their containers' labels", path, str(exc).splitlines()[0], aside)

    async def revision(self) -> tuple[str | None, bool]:
        """Without migrating: the database's schema revision and whether it has the store's tables (a SQLite
        file that does not exist has neither)."""
        if self._closed or self._engine is not None:
            raise StoreUnavailable("revision() is for a store that is not open")
        path = _sqlite_file(self._url)
        if path is not None and not await asyncio.to_thread(path.is_file):
            return None, False
        engine = self._make_engine()
        try:
            return await migrate.current_revision(engine)
        except (sa_exc.SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"cannot read the store {self._safe_url()}: {exc}") from exc
        finally:
            await engine.dispose()

    async def aclose(self) -> None:
        """Let queued writes land (a few seconds at most, not at all while the database is known to be away),
        stop the writer and dispose of the engine. Idempotent."""
        if self._closed:
            return
        self._closed = True
        opener, self._opener = self._opener, None
        if opener is not None:
            opener.cancel()
            try:
                await opener
            except asyncio.CancelledError:
                pass
        if self._engine is None:
            if self._writes.pending:
                logger.warning("store: closing with %d writes that never reached the database (it never opened)",
                               self._writes.pending)
            return
        # A database known to be away is not waited for: shutdown stays prompt.
        wait_s = 0.0 if self._down else CLOSE_DRAIN_S
        if self._writes.pending and not await self._writes.drain(wait_s):
            logger.warning("store: closing with %d writes that never reached the database", self._writes.pending)
        await self._writes.aclose()
        engine, self._engine = self._engine, None
        try:
            await engine.dispose()
        except Exception:  # closing must not fail the shutdown
            logger.exception("store: error while closing the database")

    def _safe_url(self) -> str:
        return self._url.render_as_string(hide_password=True)

    # ---- plumbing ----------------------------------------------------------------------------------------

    def _live_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise StoreUnavailable("the store is not open")
        return self._engine

    async def _read(self, fn: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        engine = self._live_engine()
        try:
            await self._writes.flush()
            async with engine.connect() as conn:
                result = await fn(conn)
        except Exception as exc:
            raise self._translate(exc) from exc
        self._mark_up()
        return result

    async def _write(self, key: tuple[str, str] | None, op: Write) -> None:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        if self._opener is None:  # not open, and not trying to open
            self._live_engine()
        self._writes.put(key, op)
        await asyncio.sleep(0)  # a write is a suspension point, as any awaited call: callers may rely on it

    async def _apply(self, ops: Sequence[Write]) -> None:
        async with self._live_engine().begin() as conn:
            for op in ops:
                await op(conn)

    def _translate(self, exc: BaseException) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        if is_unavailable(exc):
            self._mark_down(exc)
            return StoreUnavailable(f"store unavailable: {exc}")
        return StoreError(f"store error: {exc}")

    def _mark_down(self, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            logger.warning("store: the database does not answer (%s); state is kept in memory and writes are "
                           "queued (%d now) until it does", str(exc).splitlines()[0], self._writes.pending)

    def _mark_up(self) -> None:
        if self._down:
            self._down = False
            logger.info("store: the database answers again; %d queued writes are being written",
                        self._writes.pending)

    def _writes_failed(self, exc: BaseException, pending: int) -> None:
        if is_unavailable(exc):
            self._mark_down(exc)

    def _writes_landed(self, count: int) -> None:
        self._mark_up()

    async def flush(self) -> None:
        """Write every queued write now; :class:`StoreUnavailable` while the database is away."""
        await self._read(_nothing)

    async def ping(self) -> None:
        """Run ``SELECT 1``; :class:`StoreUnavailable` when the database does not answer."""
        engine = self._live_engine()
        try:
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception as exc:
            raise self._translate(exc) from exc
        self._mark_up()

    # ---- engines -----------------------------------------------------------------------------------------

    async def save_engine(self, engine: Engine) -> None:
        """Queue: insert or replace the engine row."""
        row = {name: getattr(engine, name) for name in _ENGINE_FIELDS}
        row["health_status"] = engine.health_status.value
        row["labels"] = dict(engine.labels)
        row["streams"] = list(engine.streams)
        await self._write(("engine", engine.container_id), lambda conn: _upsert(conn, engines_table, row))

    async def delete_engine(self, container_id: str) -> None:
        """Queue: delete the engine row, if any."""
        stmt = sa.delete(engines_table).where(engines_table.c.container_id == container_id)
        await self._write(("engine", container_id), lambda conn: _execute(conn, stmt))

    async def load_engines(self) -> list[Engine]:
        """Every engine row, ordered by ``first_seen``."""
        return await self._read(_load_engines)

    # ---- streams -----------------------------------------------------------------------------------------

    async def save_stream(self, stream: Stream) -> None:
        """Queue: insert or replace the stream row."""
        row = {name: getattr(stream, name) for name in _STREAM_FIELDS}
        row["labels"] = dict(stream.labels)
        await self._write(("stream", stream.id), lambda conn: _upsert(conn, streams_table, row))

    async def load_streams(self) -> list[Stream]:
        """Every stream row, ordered by ``started_at``."""
        return await self._read(_load_streams)

    async def prune_streams(self, *, ended_before: datetime) -> int:
        """Delete streams that ended before ``ended_before``, and their stats; how many (0 while the database
        is away: the next prune does it)."""
        if self._down:
            return 0

        async def prune(conn: AsyncConnection) -> int:
            count = await _prune_streams(conn, ended_before)
            await conn.commit()
            return count

        return await self._read(prune)

    # ---- stats -------------------------------------------------------------------------------------------

    async def add_stat(self, stream_id: str, snap: StatSnapshot, *, keep: int) -> None:
        """Queue: append a snapshot and trim the stream's snapshots to the newest ``keep``."""
        if keep < 1:
            raise ValueError("keep must be at least 1")
        row = {name: getattr(snap, name) for name in _STAT_FIELDS}
        row["stream_id"] = stream_id
        await self._write(None, lambda conn: _add_stat(conn, row, keep))

    async def load_stats(
        self, stream_id: str, *, since: datetime | None = None, limit: int | None = None
    ) -> list[StatSnapshot]:
        """A stream's snapshots since ``since``, oldest first, at most the newest ``limit``."""
        if limit is not None and limit < 0:
            raise ValueError("limit must not be negative")
        return await self._read(lambda conn: _load_stats(conn, stream_id, since, limit))


# ---- statements ------------------------------------------------------------------------------------------


async def _nothing(conn: AsyncConnection) -> None:
    await conn.execute(sa.text("SELECT 1"))


async def _execute(conn: AsyncConnection, stmt: sa.Executable) -> None:
    await conn.execute(stmt)


async def _upsert(conn: AsyncConnection, table: sa.Table, row: dict[str, Any]) -> None:
    pk = [c.name for c in table.primary_key.columns]
    changes = {k: v for k, v in row.items() if k not in pk}
    if conn.dialect.name == "sqlite":
        sqlite_stmt = sqlite_dml.insert(table).values(row)
        await conn.execute(sqlite_stmt.on_conflict_do_update(index_elements=pk, set_=changes))
    else:
        pg_stmt = postgresql_dml.insert(table).values(row)
        await conn.execute(pg_stmt.on_conflict_do_update(index_elements=pk, set_=changes))


async def _load_engines(conn: AsyncConnection) -> list[Engine]:
    t = engines_table
    rows = (await conn.execute(sa.select(t).order_by(t.c.first_seen, t.c.container_id))).mappings().all()
    engines = []
    for row in rows:
        values = dict(row)
        values["health_status"] = HealthStatus(values["health_status"])
        values["labels"] = dict(values["labels"] or {})
        values["streams"] = list(values["streams"] or [])
        engines.append(Engine(**values))
    return engines


async def _load_streams(conn: AsyncConnection) -> list[Stream]:
    t = streams_table
    rows = (await conn.execute(sa.select(t).order_by(t.c.started_at, t.c.id))).mappings().all()
    streams = []
    for row in rows:
        values = dict(row)
        values["labels"] = dict(values["labels"] or {})
        streams.append(Stream(**values))
    return streams


async def _prune_streams(conn: AsyncConnection, ended_before: datetime) -> int:
    t = streams_table
    condition = sa.and_(t.c.status == "ended", t.c.ended_at.is_not(None), t.c.ended_at < ended_before)
    ids = list((await conn.execute(sa.select(t.c.id).where(condition))).scalars())
    for start in range(0, len(ids), 500):  # stay under every backend's bound-parameter limit
        chunk = ids[start : start + 500]
        await conn.execute(sa.delete(stats_table).where(stats_table.c.stream_id.in_(chunk)))
        await conn.execute(sa.delete(t).where(t.c.id.in_(chunk)))
    return len(ids)


async def _add_stat(conn: AsyncConnection, row: dict[str, Any], keep: int) -> None:
    await conn.execute(sa.insert(stats_table).values(row))
    await _trim_stats(conn, row["stream_id"], keep)


async def _trim_stats(conn: AsyncConnection, stream_id: str, keep: int) -> None:
    """Delete every snapshot of the stream older than its ``keep``-th newest (by ts, then insertion order)."""
    s = stats_table
    newest_first = (s.c.ts.desc(), s.c.id.desc())
    query = sa.select(s.c.ts, s.c.id).where(s.c.stream_id == stream_id)
    cutoff = (await conn.execute(query.order_by(*newest_first).offset(keep).limit(1))).first()
    if cutoff is None:
        return
    cut_ts, cut_id = cutoff
    await conn.execute(
        sa.delete(s).where(
            s.c.stream_id == stream_id,
            sa.or_(s.c.ts < cut_ts, sa.and_(s.c.ts == cut_ts, s.c.id <= cut_id)),
        )
    )


async def _load_stats(
    conn: AsyncConnection, stream_id: str, since: datetime | None, limit: int | None
) -> list[StatSnapshot]:
    s = stats_table
    stmt = sa.select(*(s.c[name] for name in _STAT_FIELDS)).where(s.c.stream_id == stream_id)
    if since is not None:
        stmt = stmt.where(s.c.ts >= since)
    if limit is not None:
        stmt = stmt.order_by(s.c.ts.desc(), s.c.id.desc()).limit(limit)
    else:
        stmt = stmt.order_by(s.c.ts, s.c.id)
    rows = (await conn.execute(stmt)).mappings().all()
    snaps = [StatSnapshot(**dict(row)) for row in rows]
    if limit is not None:
        snaps.reverse()
    return snaps
