"""Domain values shared by every layer: times, engines, streams and their snapshots.

Times are always timezone-aware UTC datetimes inside aceorch, and leave it through :func:`format_time`, which
writes the fixed-width form ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` so that times sort as strings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "HealthStatus",
    "Engine",
    "Stream",
    "StatSnapshot",
    "StreamStart",
    "utcnow",
    "format_time",
    "parse_time",
]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def format_time(value: datetime | None) -> str | None:
    """``2025-10-18T14:45:23.456000Z``: always six fractional digits and a ``Z``; ``None`` stays ``None``."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time that carries an offset (``Z`` or ``±HH:MM``).

    A space where the sign belongs (an unencoded ``+`` in a query string) is read as ``+``.
    Raises :class:`ValueError` for a naive or malformed time.
    """
    raw = text.strip()
    if len(raw) > 6 and raw[-6] == " " and raw[-3] == ":":
        raw = raw[:-6] + "+" + raw[-5:]
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    parsed = datetime.fromisoformat(raw)
    if parsed.tzinfo is None:
        raise ValueError("time needs an offset (Z or ±HH:MM)")
    return parsed.astimezone(UTC)


class HealthStatus(enum.StrEnum):
    """An engine's health as the prober last saw it."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"
    #: Running, but its API does not answer from here (another network, a wrong advertised host): kept, never
    #: handed out, never replaced for that alone; it becomes healthy once it answers.
    UNREACHABLE = "unreachable"


@dataclass
class Engine:
    """One managed AceStream engine, as the service tracks it in memory."""

    container_id: str
    container_name: str
    host: str
    port: int
    host_http_port: int
    container_http_port: int
    container_https_port: int | None = None
    host_https_port: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    first_seen: datetime = field(default_factory=utcnow)
    last_seen: datetime = field(default_factory=utcnow)
    streams: list[str] = field(default_factory=list)
    health_status: HealthStatus = HealthStatus.UNKNOWN
    last_health_check: datetime | None = None
    last_cache_cleanup: datetime | None = None
    last_stream_usage: datetime | None = None
    cache_size_bytes: int | None = None
    #: CPU use (100 = one CPU busy) and memory in use, sampled in the background from the runtime; None unknown.
    cpu_percent: float | None = None
    memory_bytes: int | None = None
    # Internal bookkeeping, never shown as EngineState fields.
    running: bool = True
    consecutive_failures: int = 0
    unhealthy_since: datetime | None = None
    created_at: datetime = field(default_factory=utcnow)
    p2p_port: int | None = None
    #: Why the engine is unreachable and the address that was tried (None while it answers).
    unreachable_reason: str | None = None
    unreachable_address: str | None = None


@dataclass
class Stream:
    """One stream a proxy reported started on an engine, as the service tracks it."""

    id: str
    key_type: str
    key: str
    container_id: str
    playback_session_id: str
    stat_url: str
    command_url: str
    is_live: bool
    started_at: datetime
    ended_at: datetime | None = None
    status: str = "started"
    end_reason: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # Internal: consecutive failed stat collections; engine_attached is False for "host:port" streams.
    collect_failures: int = 0
    attached: bool = True


@dataclass
class StatSnapshot:
    """One stat collection of a stream: peers, speeds, byte counters and the engine's status word."""

    ts: datetime
    peers: int | None = None
    speed_down: int | None = None
    speed_up: int | None = None
    downloaded: int | None = None
    uploaded: int | None = None
    status: str | None = None


@dataclass(frozen=True)
class StreamStart:
    """A proxy's report that it started a stream: the engine it used, the stream's key and the playback session.

    ``container_id`` names the engine when the proxy knows it; otherwise ``engine_host``/``engine_port`` find it.
    The stream's id is the ``stream_id`` label when given, else ``<key>|<playback_session_id>``.
    """

    engine_host: str
    engine_port: int
    key_type: str
    key: str
    playback_session_id: str
    stat_url: str = ""
    command_url: str = ""
    is_live: bool = True
    container_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def stream_id(self) -> str:
        """The id the stream gets."""
        return self.labels.get("stream_id") or f"{self.key}|{self.playback_session_id}"
