"""The SQLAlchemy store: a SQLite file by default, PostgreSQL with the same code.

Design:

* **Synchronous engine, one worker thread.** SQLAlchemy Core runs on a plain (synchronous) engine, and every
  call is handed to a dedicated single-thread :class:`~concurrent.futures.ThreadPoolExecutor` with
  ``loop.run_in_executor``. The event loop never waits on disk or network, and writes are serialised without
  a lock, which is what SQLite wants anyway.
* **SQLite.** ``sqlite:///./orchestrator.db`` is resolved against the working directory when the store opens,
  and the file's directories are created. Connections use WAL journaling (readers never block the writer),
  ``synchronous=NORMAL``, a busy timeout, and ``check_same_thread=False`` (the worker thread is not the thread
  that built the engine).
* **PostgreSQL.** ``postgresql://`` means ``postgresql+psycopg://`` (the ``aceorch[postgres]`` extra); the
  driver is imported by SQLAlchemy only when the store opens.
* **Times** are stored as aceorch's fixed-width text (:func:`aceorch.models.format_time`), which sorts like
  the time itself on every backend and reads back as an aware UTC datetime equal to what was saved.
* **Stats** live in their own table, keyed by an autoincrement id, and are trimmed to the newest ``keep``
  snapshots of their stream on every insert, so the table stays bounded however long a stream runs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as postgresql_dml
from sqlalchemy.dialects import sqlite as sqlite_dml
from sqlalchemy.engine import URL, Connection, Dialect
from sqlalchemy.engine import Engine as SaEngine

from aceorch.errors import ConfigError
from aceorch.models import Engine, HealthStatus, StatSnapshot, Stream, format_time, parse_time
from aceorch.store.base import StoreError, StoreUnavailable

__all__ = ["SqlStore"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: How long SQLite waits for a lock held by another process before failing, in seconds.
SQLITE_BUSY_TIMEOUT_S = 10.0


class UtcTime(sa.types.TypeDecorator[datetime]):
    """An aware datetime stored as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` text; naive values are taken as UTC."""

    impl = sa.String(32)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> str | None:
        """The datetime as fixed-width UTC text."""
        return format_time(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """The stored text as an aware UTC datetime."""
        if value is None:
            return None
        return parse_time(str(value))


metadata = sa.MetaData()

engines_table = sa.Table(
    "engines",
    metadata,
    sa.Column("container_id", sa.String(128), primary_key=True),
    sa.Column("container_name", sa.String(255), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("port", sa.Integer, nullable=False),
    sa.Column("host_http_port", sa.Integer, nullable=False),
    sa.Column("container_http_port", sa.Integer, nullable=False),
    sa.Column("container_https_port", sa.Integer, nullable=True),
    sa.Column("host_https_port", sa.Integer, nullable=True),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("first_seen", UtcTime, nullable=False),
    sa.Column("last_seen", UtcTime, nullable=False),
    sa.Column("streams", sa.JSON, nullable=False),
    sa.Column("health_status", sa.String(16), nullable=False),
    sa.Column("last_health_check", UtcTime, nullable=True),
    sa.Column("last_cache_cleanup", UtcTime, nullable=True),
    sa.Column("last_stream_usage", UtcTime, nullable=True),
    sa.Column("cache_size_bytes", sa.BigInteger, nullable=True),
    sa.Column("running", sa.Boolean, nullable=False),
    sa.Column("consecutive_failures", sa.Integer, nullable=False),
    sa.Column("unhealthy_since", UtcTime, nullable=True),
    sa.Column("created_at", UtcTime, nullable=False),
    sa.Column("p2p_port", sa.Integer, nullable=True),
)

streams_table = sa.Table(
    "streams",
    metadata,
    sa.Column("id", sa.String(1024), primary_key=True),
    sa.Column("key_type", sa.String(32), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("container_id", sa.String(300), nullable=False),
    sa.Column("playback_session_id", sa.Text, nullable=False),
    sa.Column("stat_url", sa.Text, nullable=False),
    sa.Column("command_url", sa.Text, nullable=False),
    sa.Column("is_live", sa.Boolean, nullable=False),
    sa.Column("started_at", UtcTime, nullable=False),
    sa.Column("ended_at", UtcTime, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("end_reason", sa.Text, nullable=True),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("collect_failures", sa.Integer, nullable=False),
    sa.Column("attached", sa.Boolean, nullable=False),
    sa.Index("ix_streams_started_at", "started_at"),
)

stats_table = sa.Table(
    "stream_stats",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("stream_id", sa.String(1024), nullable=False),
    sa.Column("ts", UtcTime, nullable=False),
    sa.Column("peers", sa.Integer, nullable=True),
    sa.Column("speed_down", sa.BigInteger, nullable=True),
    sa.Column("speed_up", sa.BigInteger, nullable=True),
    sa.Column("downloaded", sa.BigInteger, nullable=True),
    sa.Column("uploaded", sa.BigInteger, nullable=True),
    sa.Column("status", sa.Text, nullable=True),
    sa.Index("ix_stream_stats_stream_ts", "stream_id", "ts", "id"),
)

_ENGINE_FIELDS = [c.name for c in engines_table.columns]
_STREAM_FIELDS = [c.name for c in streams_table.columns]
_STAT_FIELDS = ["ts", "peers", "speed_down", "speed_up", "downloaded", "uploaded", "status"]

# Connection-level failures: the database is not there, not reachable, or locked beyond the busy timeout.
_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, OSError)


def parse_db_url(db_url: str) -> URL:
    """Parse ``DB_URL``: ``sqlite`` or ``postgresql[+driver]``; a bare ``postgresql`` means psycopg 3."""
    try:
        url = sa.make_url(db_url)
    except sa_exc.ArgumentError as exc:
        raise ConfigError([f"config error: DB_URL: not an SQLAlchemy URL: {exc}"]) from exc
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            [f"config error: DB_URL: scheme {url.drivername!r} is not supported (use sqlite or postgresql)"]
        )
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def _is_sqlite_file(url: URL) -> bool:
    database = url.database or ""
    if url.get_backend_name() != "sqlite":
        return False
    return database not in ("", ":memory:") and not database.startswith("file:")


def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


class SqlStore:
    """:class:`aceorch.store.base.Store` on SQLAlchemy Core.

    ``SqlStore("sqlite:///./orchestrator.db")`` does no I/O; :meth:`open` creates the file and tables.
    """

    def __init__(self, db_url: str) -> None:
        self._url = parse_db_url(db_url)
        self._engine: SaEngine | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def url(self) -> URL:
        """The normalised URL (a SQLite file path is absolute once the store is open)."""
        return self._url

    # ---- plumbing ----------------------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._engine is None or self._executor is None:
            raise StoreUnavailable("the store is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(fn, self._engine, *args))
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"store unavailable: {exc}") from exc
        except sa_exc.SQLAlchemyError as exc:
            raise StoreError(f"store error: {exc}") from exc

    def _build_engine(self) -> SaEngine:
        """Runs in the worker thread: make directories, create the engine and the tables."""
        url = self._url
        if url.get_backend_name() == "sqlite":
            if _is_sqlite_file(url):
                path = Path(url.database or "").expanduser().resolve()
                path.parent.mkdir(parents=True, exist_ok=True)
                url = url.set(database=str(path))
                self._url = url
            engine = sa.create_engine(
                url,
                connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
            )
            sa.event.listen(engine, "connect", _sqlite_on_connect)
        else:
            try:
                engine = sa.create_engine(url, pool_pre_ping=True)
            except ModuleNotFoundError as exc:
                raise StoreUnavailable(
                    f"the database driver for {url.drivername} is not installed ({exc.name}); "
                    "install aceorch[postgres]"
                ) from exc
        try:
            metadata.create_all(engine)
        except BaseException:
            engine.dispose()
            raise
        return engine

    # ---- lifecycle ---------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Build the engine and create missing tables on the worker thread. Idempotent."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        if self._engine is not None:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aceorch-store")
        loop = asyncio.get_running_loop()
        try:
            self._engine = await loop.run_in_executor(self._executor, self._build_engine)
        except StoreError:
            raise
        except (*_UNAVAILABLE, sa_exc.SQLAlchemyError) as exc:
            raise StoreUnavailable(f"cannot open the store {self._safe_url()}: {exc}") from exc
        logger.info("store open: %s", self._safe_url())

    async def aclose(self) -> None:
        """Dispose of the engine and let the worker thread end. Idempotent."""
        if self._closed:
            return
        self._closed = True
        engine, self._engine = self._engine, None
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if engine is not None:
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(executor, engine.dispose)
            except Exception:  # closing must not fail the shutdown
                logger.exception("store: error while closing the database")
        # The worker has nothing left to run; let it exit without waiting on the loop.
        executor.shutdown(wait=False)

    def _safe_url(self) -> str:
        return self._url.render_as_string(hide_password=True)

    async def ping(self) -> None:
        """Run ``SELECT 1``; :class:`StoreUnavailable` when the database does not answer."""
        await self._run(_ping)

    # ---- engines -----------------------------------------------------------------------------------------

    async def save_engine(self, engine: Engine) -> None:
        """Insert or replace the engine row."""
        row = {name: getattr(engine, name) for name in _ENGINE_FIELDS}
        row["health_status"] = engine.health_status.value
        row["labels"] = dict(engine.labels)
        row["streams"] = list(engine.streams)
        await self._run(_upsert, engines_table, row)

    async def delete_engine(self, container_id: str) -> None:
        """Delete the engine row, if any."""
        await self._run(_delete_engine, container_id)

    async def load_engines(self) -> list[Engine]:
        """Every engine row, ordered by ``first_seen``."""
        return await self._run(_load_engines)

    # ---- streams -----------------------------------------------------------------------------------------

    async def save_stream(self, stream: Stream) -> None:
        """Insert or replace the stream row."""
        row = {name: getattr(stream, name) for name in _STREAM_FIELDS}
        row["labels"] = dict(stream.labels)
        await self._run(_upsert, streams_table, row)

    async def load_streams(self) -> list[Stream]:
        """Every stream row, ordered by ``started_at``."""
        return await self._run(_load_streams)

    async def prune_streams(self, *, ended_before: datetime) -> int:
        """Delete streams that ended before ``ended_before``, and their stats; how many."""
        return await self._run(_prune_streams, ended_before)

    # ---- stats -------------------------------------------------------------------------------------------

    async def add_stat(self, stream_id: str, snap: StatSnapshot, *, keep: int) -> None:
        """Append a snapshot and trim the stream's snapshots to the newest ``keep``."""
        if keep < 1:
            raise ValueError("keep must be at least 1")
        row = {name: getattr(snap, name) for name in _STAT_FIELDS}
        row["stream_id"] = stream_id
        await self._run(_add_stat, row, keep)

    async def load_stats(
        self, stream_id: str, *, since: datetime | None = None, limit: int | None = None
    ) -> list[StatSnapshot]:
        """A stream's snapshots since ``since``, oldest first, at most the newest ``limit``."""
        if limit is not None and limit < 0:
            raise ValueError("limit must not be negative")
        return await self._run(_load_stats, stream_id, since, limit)


# ---- the synchronous half: runs only in the store's worker thread ----------------------------------------


def _ping(engine: SaEngine) -> None:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def _upsert(engine: SaEngine, table: sa.Table, row: dict[str, Any]) -> None:
    pk = [c.name for c in table.primary_key.columns]
    changes = {k: v for k, v in row.items() if k not in pk}
    with engine.begin() as conn:
        dialect = conn.dialect.name
        if dialect == "sqlite":
            sqlite_stmt = sqlite_dml.insert(table).values(row)
            conn.execute(sqlite_stmt.on_conflict_do_update(index_elements=pk, set_=changes))
            return
        if dialect == "postgresql":
            pg_stmt = postgresql_dml.insert(table).values(row)
            conn.execute(pg_stmt.on_conflict_do_update(index_elements=pk, set_=changes))
            return
        # Any other backend: update, else insert (writes are serialised by the worker thread).
        where = sa.and_(*(table.c[name] == row[name] for name in pk))
        if conn.execute(sa.update(table).where(where).values(changes)).rowcount == 0:
            conn.execute(sa.insert(table).values(row))


def _delete_engine(engine: SaEngine, container_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(engines_table).where(engines_table.c.container_id == container_id))


def _load_engines(engine: SaEngine) -> list[Engine]:
    t = engines_table
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t).order_by(t.c.first_seen, t.c.container_id)).mappings().all()
    engines = []
    for row in rows:
        values = dict(row)
        values["health_status"] = HealthStatus(values["health_status"])
        values["labels"] = dict(values["labels"] or {})
        values["streams"] = list(values["streams"] or [])
        engines.append(Engine(**values))
    return engines


def _load_streams(engine: SaEngine) -> list[Stream]:
    t = streams_table
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t).order_by(t.c.started_at, t.c.id)).mappings().all()
    streams = []
    for row in rows:
        values = dict(row)
        values["labels"] = dict(values["labels"] or {})
        streams.append(Stream(**values))
    return streams


def _prune_streams(engine: SaEngine, ended_before: datetime) -> int:
    t = streams_table
    condition = sa.and_(t.c.status == "ended", t.c.ended_at.is_not(None), t.c.ended_at < ended_before)
    with engine.begin() as conn:
        ids = list(conn.execute(sa.select(t.c.id).where(condition)).scalars())
        if not ids:
            return 0
        for start in range(0, len(ids), 500):  # stay under every backend's bound-parameter limit
            chunk = ids[start : start + 500]
            conn.execute(sa.delete(stats_table).where(stats_table.c.stream_id.in_(chunk)))
            conn.execute(sa.delete(t).where(t.c.id.in_(chunk)))
        return len(ids)


def _add_stat(engine: SaEngine, row: dict[str, Any], keep: int) -> None:
    s = stats_table
    with engine.begin() as conn:
        conn.execute(sa.insert(s).values(row))
        _trim_stats(conn, row["stream_id"], keep)


def _trim_stats(conn: Connection, stream_id: str, keep: int) -> None:
    """Delete every snapshot of the stream older than its ``keep``-th newest (by ts, then insertion order)."""
    s = stats_table
    newest_first = (s.c.ts.desc(), s.c.id.desc())
    query = sa.select(s.c.ts, s.c.id).where(s.c.stream_id == stream_id)
    cutoff = conn.execute(query.order_by(*newest_first).offset(keep).limit(1)).first()
    if cutoff is None:
        return
    cut_ts, cut_id = cutoff
    conn.execute(
        sa.delete(s).where(
            s.c.stream_id == stream_id,
            sa.or_(s.c.ts < cut_ts, sa.and_(s.c.ts == cut_ts, s.c.id <= cut_id)),
        )
    )


def _load_stats(
    engine: SaEngine, stream_id: str, since: datetime | None, limit: int | None
) -> list[StatSnapshot]:
    s = stats_table
    stmt = sa.select(*(s.c[name] for name in _STAT_FIELDS)).where(s.c.stream_id == stream_id)
    if since is not None:
        stmt = stmt.where(s.c.ts >= since)
    if limit is not None:
        stmt = stmt.order_by(s.c.ts.desc(), s.c.id.desc()).limit(limit)
    else:
        stmt = stmt.order_by(s.c.ts, s.c.id)
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    snaps = [StatSnapshot(**dict(row)) for row in rows]
    if limit is not None:
        snaps.reverse()
    return snaps
