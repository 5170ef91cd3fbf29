"""Schema migrations: bring a database to the newest revision under a lock, stamp pre-migration stores, report.

* **The lock.** Two instances starting at once must not both migrate. PostgreSQL: a session advisory lock
  (:data:`ADVISORY_LOCK_KEY`) held on the migrating connection. A SQLite file: an exclusive ``flock`` on
  ``<file>.migrate-lock`` beside it, taken off the event loop.
* **Stores made before migrations.** A database with the ``engines`` table but no ``alembic_version`` was
  made by ``create_all`` with exactly the schema of revision ``0001``: it is stamped ``0001`` and upgraded from
  there, keeping its rows.
* Alembic's own functions are synchronous; they run on the async connection through ``run_sync``.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["ADVISORY_LOCK_KEY", "alembic_config", "current_revision", "head_revision", "history", "upgrade"]

logger = logging.getLogger(__name__)

#: The PostgreSQL advisory lock that serialises migrations (any constant; this one spells "aceorch" in hex-ish).
ADVISORY_LOCK_KEY = 0x0ACE0C4


def alembic_config() -> Config:
    """An Alembic configuration for the migrations shipped in this package (no ``alembic.ini`` needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    return cfg


def head_revision() -> str:
    """The newest revision the code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def history() -> list[str]:
    """Every revision, oldest first, as ``<rev>: <first line of its docstring>``."""
    script = ScriptDirectory.from_config(alembic_config())
    lines = [f"{rev.revision}: {(rev.doc or '').strip().splitlines()[0]}" for rev in script.walk_revisions()]
    return list(reversed(lines))


async def current_revision(engine: AsyncEngine) -> tuple[str | None, bool]:
    """The database's revision (``None`` when it was never migrated) and whether it has the store's tables."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current_and_tables_sync)


def _current_and_tables_sync(conn: Connection) -> tuple[str | None, bool]:
    return _current_sync(conn), sa.inspect(conn).has_table("engines")


async def upgrade(
    engine: AsyncEngine, *, lock_path: Path | None = None, revision: str = "head"
) -> tuple[str | None, str]:
    """Upgrade to ``revision`` (the newest by default) under the migration lock; return (before, after)."""
    async with _file_lock(lock_path), engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            await conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
            await conn.commit()
        try:
            before = await conn.run_sync(_upgrade_sync, revision)
            await conn.commit()
            after = await conn.run_sync(_current_sync)
        finally:
            if postgres:
                await _unlock(conn)
    if before != after:
        logger.info("store: schema upgraded from %s to %s", before or "nothing", after)
    return before, after or ""


async def _unlock(conn: AsyncConnection) -> None:
    try:
        await conn.rollback()
        await conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
        await conn.commit()
    except Exception:  # noqa: BLE001 - the lock goes with the connection anyway
        logger.debug("store: could not release the migration lock", exc_info=True)


def _current_sync(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _upgrade_sync(conn: Connection, revision: str) -> str | None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    before = _current_sync(conn)
    if before is None and sa.inspect(conn).has_table("engines"):
        logger.info("store: a database made before migrations; marking it as revision 0001, keeping its rows")
        command.stamp(cfg, "0001")
        before = "0001"
    command.upgrade(cfg, revision)
    return before


@asynccontextmanager
async def _file_lock(path: Path | None) -> AsyncIterator[None]:
    """An exclusive ``flock`` on ``path`` (none when ``path`` is None), acquired in a thread."""
    if path is None:
        yield
        return
    fd = await asyncio.to_thread(_lock_file, path)
    try:
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _lock_file(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd
