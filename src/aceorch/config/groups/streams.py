"""The ``streams`` and ``proxy`` groups: stream stats and their retention, and the built-in stream proxy."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, SecretStr

from aceorch.config.groups.base import Group
from aceorch.config.types import FLOAT, INT

__all__ = ["StreamSettings", "ProxySettings"]


class StreamSettings(Group):
    """Streams and their stats: how often stats are collected and how long they are kept."""

    model_config = ConfigDict(title="Streams and stats")

    collect_interval_s: Annotated[int, INT] = Field(
        5, ge=1, le=3600,
        description="Stats collection period, 1-3600 s, default 5 (three failures in a row end a stream as stale).",
    )
    stats_history_max: Annotated[int, INT] = Field(
        720, ge=1, le=100000,
        description="Snapshots kept per stream, bounding the memory and rows a long stream takes, 1-100000, "
        "default 720.",
    )
    stream_retention_s: Annotated[int, INT] = Field(
        86400, ge=60, le=31536000,
        description="How long ended streams and their stats are kept, 60-31536000 s, default 86400.",
    )
    stream_unattached_ttl_s: Annotated[int, INT] = Field(
        3600, ge=1, le=31536000,
        description="How long a started stream on an engine aceorch does not manage is kept before it is ended "
        "(reason unattached_expired) and forgotten, so that made-up stream events cannot pile up, 1-31536000 s, "
        "default 3600.",
    )
    max_unattached_streams: Annotated[int, INT] = Field(
        1000, ge=0, le=1000000,
        description="Most started streams on engines aceorch does not manage; one more is refused with 429 "
        "until one expires (STREAM_UNATTACHED_TTL_S), bounding the memory spoofed events can take, 0-1000000 "
        "(0 refuses them all), default 1000.",
    )


class ProxySettings(Group):
    """The built-in stream proxy: /ace/getstream fans one engine session out to many viewers."""

    model_config = ConfigDict(title="Stream proxy")

    proxy_buffer_mb: Annotated[float, FLOAT] = Field(
        8, gt=0, le=1024,
        description="Size of each stream's fan-out buffer, shared by all its viewers (a viewer further behind "
        "jumps to the live edge), 0 < MB <= 1024, default 8.",
    )
    proxy_client_stall_s: Annotated[float, FLOAT] = Field(
        15, gt=0, le=3600,
        description="A viewer that accepts no bytes for this long is disconnected (reason client_stalled), so "
        "that dead players do not hold streams open, 0 < s <= 3600, default 15.",
    )
    proxy_linger_s: Annotated[float, FLOAT] = Field(
        10, ge=0, le=3600,
        description="How long a stream's engine session is kept after its last viewer left, so that zapping back "
        "is instant; then it is stopped (reason no_viewers), 0-3600 s, default 10.",
    )
    proxy_upstream_stall_s: Annotated[float, FLOAT] = Field(
        10, gt=0, le=600,
        description="An engine stream that sends nothing for this long is retried once on the same engine, then "
        "moved to another engine, 0 < s <= 600, default 10.",
    )
    proxy_health_watch_s: Annotated[float, FLOAT] = Field(
        2, gt=0, le=60,
        description="How often the standalone proxy reads GET /engines, while it has streams, to move them off "
        "engines the orchestrator marked unhealthy or unreachable, 0 < s <= 60, default 2. The embedded proxy is "
        "notified at once and does not poll.",
    )
    proxy_upstream_start_timeout_s: Annotated[float, FLOAT] = Field(
        30, gt=0, le=600,
        description="How long the engine may take to answer a stream start and send its first bytes (an engine "
        "without peers holds the request open), 0 < s <= 600, default 30.",
    )
    max_streams_per_engine: Annotated[int, INT] = Field(
        1, ge=1, le=100,
        description="Most live proxy streams (different contents) on one engine; a new channel with every engine "
        "full provisions another, 1-100, default 1 (as acexy).",
    )
    proxy_api_key: SecretStr | None = Field(
        None,
        description="When set, the proxy routes (/ace/getstream, /ace/status) require ?token=<this key>, since "
        "players cannot send headers; default unset (open). Never logged (shown as ***).",
    )
    proxy_hls_cache_segments: Annotated[int, INT] = Field(
        12, ge=3, le=200,
        description="HLS segments (about 2 s each) kept in memory per stream and served to every HLS viewer; the "
        "playlist lists the newest 6 of them, 3-200, default 12.",
    )
    playlist_file: str | None = Field(
        None,
        description="An M3U of acestream:// links or content ids that GET /playlist.m3u rewrites into proxy URLs "
        "(names and tvg-* attributes kept); default unset (POST the M3U instead).",
    )
    proxy_port: Annotated[int, INT] = Field(
        8001, ge=1, le=65535,
        description="Listen port of the standalone proxy (aceorch proxy), 1-65535, default 8001; the embedded proxy "
        "uses APP_PORT.",
    )
    proxy_debug_log_dir: str | None = Field(
        None,
        description="Debug-log folder of the standalone proxy (aceorch proxy) when DEBUG_MODE is on: its own session "
        "files (requests, engine_selection, provisioning, streams, clients, stress) go there; default unset "
        "(DEBUG_LOG_DIR). The embedded proxy writes into the orchestrator's session instead.",
    )

    @property
    def buffer_bytes(self) -> int:
        """PROXY_BUFFER_MB in bytes, a whole number of 188-byte packets."""
        return max(188, int(self.proxy_buffer_mb * (1 << 20)) // 188 * 188)

    def api_key_value(self) -> str | None:
        """PROXY_API_KEY in clear, or None when the proxy routes are open."""
        return self.proxy_api_key.get_secret_value() if self.proxy_api_key else None
