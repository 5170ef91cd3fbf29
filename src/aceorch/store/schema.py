"""The store's tables at the newest revision, the ``DB_URL`` parser, and how a database failure is classified.

The tables here are what the code reads and writes; the migrations in :mod:`aceorch.store.migrations` build
them. A change to a table here comes with a new revision there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Dialect

from aceorch.errors import ConfigError
from aceorch.models import format_time, parse_time

__all__ = [
    "UtcTime", "engines_table", "is_unavailable", "metadata", "parse_db_url", "stats_table", "streams_table",
]


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
    # Revision 0002: why an engine is unreachable and the address that was tried.
    sa.Column("unreachable_reason", sa.Text, nullable=True),
    sa.Column("unreachable_address", sa.String(300), nullable=True),
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

#: The async driver the store uses for each backend, whatever driver ``DB_URL`` names.
ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}

# A failure of the statement itself (a bad value, a violated constraint): retrying it cannot help.
_PERMANENT = (sa_exc.IntegrityError, sa_exc.DataError, sa_exc.ProgrammingError, sa_exc.NotSupportedError)


def parse_db_url(db_url: str) -> URL:
    """Parse ``DB_URL`` (``sqlite:///path``, ``postgresql://user@host:port/db``, any driver suffix) into the URL
    of the async driver for its backend: aiosqlite or asyncpg."""
    try:
        url = sa.make_url(db_url)
    except sa_exc.ArgumentError as exc:
        raise ConfigError([f"config error: DB_URL: not an SQLAlchemy URL: {exc}"]) from exc
    backend = url.get_backend_name()
    if backend not in ASYNC_DRIVERS:
        raise ConfigError(
            [f"config error: DB_URL: scheme {url.drivername!r} is not supported (use sqlite or postgresql)"]
        )
    return url.set(drivername=ASYNC_DRIVERS[backend])


def is_unavailable(exc: BaseException) -> bool:
    """Whether a failure means the database is away (worth retrying later) rather than a bad statement."""
    if isinstance(exc, _PERMANENT):
        return False
    return isinstance(exc, sa_exc.SQLAlchemyError | OSError | TimeoutError | ConnectionError)
