"""Persistence of engines, streams and stat snapshots behind one Protocol (:mod:`aceorch.store.base`).

Only this package imports SQLAlchemy, and only when a store is made (:func:`make_store`), so importing
:class:`Store` costs nothing.
"""

from __future__ import annotations

from aceorch.store.base import Store, StoreError, StoreUnavailable

__all__ = ["Store", "StoreError", "StoreUnavailable", "make_store"]


def make_store(db_url: str) -> Store:
    """The store for ``DB_URL`` (``sqlite:///…`` or ``postgresql[+driver]://…``, run on aiosqlite or asyncpg);
    no I/O until ``open()``.

    Raises :class:`aceorch.errors.ConfigError` for a URL that is malformed or of another scheme.
    """
    from aceorch.store.sql import SqlStore

    return SqlStore(db_url)
