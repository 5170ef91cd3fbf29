"""The response models of streams: a stream, its stats, and what ending or stopping it did."""

from __future__ import annotations

from typing import Literal

from aceorch.api.schemas.common import Labels, Time, _Public

__all__ = ["StreamPublic", "StatSnapshotPublic", "StreamEndedPublic", "StreamStoppedPublic"]


class StreamPublic(_Public):
    """One stream a proxy reported: its key, engine, session URLs, times, status and labels."""

    id: str
    key_type: str
    key: str
    container_id: str
    playback_session_id: str
    stat_url: str
    command_url: str
    is_live: bool
    started_at: Time
    ended_at: Time | None
    status: Literal["started", "ended"]
    end_reason: str | None
    labels: Labels


class StatSnapshotPublic(_Public):
    """One stat collection of a stream; counters the engine did not give are null."""

    ts: Time
    peers: int | None
    speed_down: int | None
    speed_up: int | None
    downloaded: int | None
    uploaded: int | None
    status: str | None


class StreamEndedPublic(_Public):
    """Whether ``stream_ended`` changed anything, and the stream (null when unknown)."""

    updated: bool
    stream: StreamPublic | None


class StreamStoppedPublic(_Public):
    """Whether the engine confirmed the stop, and the stream, now ended."""

    stopped: bool
    stream: StreamPublic
