"""Engines remember why they are unreachable and the address that was tried.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``engines.unreachable_reason`` and ``engines.unreachable_address`` (both nullable)."""
    with op.batch_alter_table("engines") as batch:
        batch.add_column(sa.Column("unreachable_reason", sa.Text, nullable=True))
        batch.add_column(sa.Column("unreachable_address", sa.String(300), nullable=True))


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("engines") as batch:
        batch.drop_column("unreachable_address")
        batch.drop_column("unreachable_reason")
