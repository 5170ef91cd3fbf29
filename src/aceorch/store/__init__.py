"""Persistence of engines, streams and stat snapshots behind one Protocol (:mod:`aceorch.store.base`).

Only this package imports SQLAlchemy, and only when a store is made (:func:`make_store`), so importing
:class:`Store` costs nothing.
"""

from __future__ import annotations

from aceorch.store.base import Store, StoreError, StoreUnavailable

__all__ = ["Store", "StoreError", "StoreUnavailable", "make_store", "schema_history", "schema_revision",
           "upgrade_schema"]


def make_store(db_url: str) -> Store:
    """The store for ``DB_URL`` (``sqlite:///…`` or ``postgresql[+driver]://…``, run on aiosqlite or asyncpg);
    no I/O until ``open()``.

    Raises :class:`aceorch.errors.ConfigError` for a URL that is malformed or of another scheme.
    """
    from aceorch.store.sql import SqlStore

    return SqlStore(db_url)


async def upgrade_schema(db_url: str) -> tuple[str | None, str]:
    """Migrate the database to the newest revision (under the migration lock, stamping a store made before
    migrations); the revisions before and after."""
    from aceorch.store.sql import SqlStore

    store = SqlStore(db_url)
    try:
        await store.open()
        assert store.migrated is not None
        return store.migrated
    finally:
        await store.aclose()


async def schema_revision(db_url: str) -> tuple[str | None, bool, str]:
    """Without changing anything: the database's revision, whether it has the store's tables, and the newest
    revision the code knows."""
    from aceorch.store import migrate
    from aceorch.store.sql import SqlStore

    current, has_tables = await SqlStore(db_url).revision()
    return current, has_tables, migrate.head_revision()


def schema_history() -> list[str]:
    """Every revision the code knows, oldest first: ``<revision>: <what it does>``."""
    from aceorch.store import migrate

    return migrate.history()
