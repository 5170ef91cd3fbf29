"""Alembic's environment: migrate on the connection :mod:`aceorch.store.migrate` hands in, under its lock.

The store always passes a connection (``config.attributes["connection"]``); migrations never open their own,
so the lock that keeps two instances from migrating at once is held by the caller for the whole run.
"""

from __future__ import annotations

from alembic import context

from aceorch.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the store's migrations with `aceorch db upgrade` (aceorch.store.migrate)")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
