"""The store's Alembic migrations (``env.py`` and ``versions/``), shipped with the package.

Run them with ``aceorch db upgrade``, or let ``aceorch serve`` do it at start (:mod:`aceorch.store.migrate`).
"""
