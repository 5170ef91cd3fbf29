"""The schema of the stores made before migrations existed: engines, streams and stream_stats.

A database that has these tables but no ``alembic_version`` is stamped at this revision, then upgraded.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: Times are fixed-width UTC text (aceorch.models.format_time).
_TIME = sa.String(32)


def upgrade() -> None:
    """Create the three tables and their indexes."""
    op.create_table(
        "engines",
        sa.Column("container_id", sa.String(128), primary_key=True),
        sa.Column("container_name", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer, nullable=False),
        sa.Column("host_http_port", sa.Integer, nullable=False),
        sa.Column("container_http_port", sa.Integer, nullable=False),
        sa.Column("container_https_port", sa.Integer, nullable=True),
        sa.Column("host_https_port", sa.Integer, nullable=True),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("first_seen", _TIME, nullable=False),
        sa.Column("last_seen", _TIME, nullable=False),
        sa.Column("streams", sa.JSON, nullable=False),
        sa.Column("health_status", sa.String(16), nullable=False),
        sa.Column("last_health_check", _TIME, nullable=True),
        sa.Column("last_cache_cleanup", _TIME, nullable=True),
        sa.Column("last_stream_usage", _TIME, nullable=True),
        sa.Column("cache_size_bytes", sa.BigInteger, nullable=True),
        sa.Column("running", sa.Boolean, nullable=False),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("unhealthy_since", _TIME, nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("p2p_port", sa.Integer, nullable=True),
    )
    op.create_table(
        "streams",
        sa.Column("id", sa.String(1024), primary_key=True),
        sa.Column("key_type", sa.String(32), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("container_id", sa.String(300), nullable=False),
        sa.Column("playback_session_id", sa.Text, nullable=False),
        sa.Column("stat_url", sa.Text, nullable=False),
        sa.Column("command_url", sa.Text, nullable=False),
        sa.Column("is_live", sa.Boolean, nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("ended_at", _TIME, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("end_reason", sa.Text, nullable=True),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("collect_failures", sa.Integer, nullable=False),
        sa.Column("attached", sa.Boolean, nullable=False),
    )
    op.create_index("ix_streams_started_at", "streams", ["started_at"])
    op.create_table(
        "stream_stats",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("stream_id", sa.String(1024), nullable=False),
        sa.Column("ts", _TIME, nullable=False),
        sa.Column("peers", sa.Integer, nullable=True),
        sa.Column("speed_down", sa.BigInteger, nullable=True),
        sa.Column("speed_up", sa.BigInteger, nullable=True),
        sa.Column("downloaded", sa.BigInteger, nullable=True),
        sa.Column("uploaded", sa.BigInteger, nullable=True),
        sa.Column("status", sa.Text, nullable=True),
    )
    op.create_index("ix_stream_stats_stream_ts", "stream_stats", ["stream_id", "ts", "id"])


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("stream_stats")
    op.drop_table("streams")
    op.drop_table("engines")
